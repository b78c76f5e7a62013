/*
 * A message held for the inbound checks (mailauth/inbound.h) between the
 * start of DATA and the verdict. It stays in memory while the worker-wide
 * budget (smtpd_inbound_memory_limit) allows; past the budget, or when
 * memory cannot be had, it moves to an unlinked file in the spool's
 * incoming/ directory and is mapped read-only at the end, so that the page
 * cache, which the kernel can reclaim, carries it instead of the heap. No
 * number of sessions can then exhaust the worker's memory, and a failed
 * allocation costs a file, not the worker.
 *
 * Ownership: the struct lives in the transaction; smtpd_hold_release()
 * frees what it holds and gives its bytes back to the budget. The view
 * from smtpd_hold_view() is valid until then.
 */
#ifndef HONGYAN_SMTPD_HOLD_H
#define HONGYAN_SMTPD_HOLD_H

#include <stddef.h>

#include "server/server.h" /* struct smtpd_hold_budget */

struct smtpd_hold {
    struct smtpd_hold_budget *budget;
    const char *spill_dir; /* where the file goes (borrowed) */
    char *mem;             /* in memory: mem[0..len), cap bytes charged to the budget */
    size_t len, cap;
    int fd;     /* spilled: the unlinked file, else -1 */
    char *wbuf; /* spilled: writes are gathered here */
    size_t wlen;
    size_t size; /* bytes appended in all */
    void *map;   /* the read-only mapping made by smtpd_hold_view() */
    size_t map_len;
};

void smtpd_hold_init(struct smtpd_hold *h, struct smtpd_hold_budget *budget, const char *spill_dir);
/* Appends; 0, or -1 with errno (ENOSPC when the spill file cannot grow). */
int smtpd_hold_append(struct smtpd_hold *h, const void *data, size_t len);
/* The whole message, contiguous; 0, or -1 with errno. */
int smtpd_hold_view(struct smtpd_hold *h, const char **msg, size_t *len);
/* Whether the message went to a file (for the log and the tests). */
int smtpd_hold_spilled(const struct smtpd_hold *h);
void smtpd_hold_release(struct smtpd_hold *h);

#endif
