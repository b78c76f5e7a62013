/*
 * Inside the spool (src/queue/spool*.c only): its state and the helpers its
 * files share. Everyone else uses queue/spool.h.
 */
#ifndef HONGYAN_QUEUE_SPOOL_INT_H
#define HONGYAN_QUEUE_SPOOL_INT_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "queue/envelope.h"
#include "queue/spool.h"

#define SPOOL_ENVELOPE_MAX (64 * 1024 * 1024)
#define SPOOL_WBUF 65536

/* Every writer's incoming directory; a writer's index is in the ids it makes. */
extern const char *const spool_writers[2];
/* spool_new_id with writer (its index in spool_writers) in the last character's low bit. */
void spool_new_writer_id(char id[QUEUE_ID_MAX], unsigned writer);

struct spool_commit;
struct spool_waiter;

struct spool {
    char *dir, *incoming, *active, *hold, *corrupt, *maildrop, *public_dir, *fifo;
    unsigned writer; /* index of incoming in spool_writers: the low bit of its ids' last char */
    struct event_base *base;
    struct workq *wq;
    struct spool_commit *pending, *pending_tail; /* waiting for the next round */
    struct spool_waiter *waiting;                /* spool_sync() callers for the next round */
    struct spool_round *running;                 /* the round on the work queue, if any */
    int round_running;
    unsigned long rounds;
    /*
     * Opened once, before anything is written, and used by the sync rounds
     * only (one at a time): syncfs(2) reports on it every writeback error
     * of the filesystem since the previous round (Linux >= 5.8 errseq).
     */
    int sync_fd;
    dev_t dev;
    int last_sync_failed; /* the previous round's syncfs failed (round thread only) */
    /* spool_free_space()'s cache: statvfs at most once a second. */
    time_t free_checked;
    long long free_bytes;
};

struct spool_msg {
    struct spool *s;
    char id[QUEUE_ID_MAX];
    int fd;
    int failed_errno; /* a write failed: the commit must fail */
    size_t size;
    struct envelope *env;
    char wbuf[SPOOL_WBUF];
    size_t wlen;
};

/* dir/name + suffix (suffix may be NULL), allocated. */
char *spool_path(const char *dir, const char *name, const char *suffix);
/* Writes out the receive buffer; -1 (and the message failed) on error. */
int spool_msg_flush(struct spool_msg *m);

#endif
