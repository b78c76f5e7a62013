/*
 * Inside the spool (src/queue/spool*.c only): its state and the helpers its
 * files share. Everyone else uses queue/spool.h.
 */
#ifndef HONGYAN_QUEUE_SPOOL_INT_H
#define HONGYAN_QUEUE_SPOOL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
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
struct spool_journal;
struct journal_writer;

struct spool {
    char *dir, *incoming, *active, *hold, *corrupt, *maildrop, *public_dir, *fifo;
    unsigned writer; /* index of incoming in spool_writers: the low bit of its ids' last char */
    struct event_base *base;
    struct workq *wq;
    /*
     * The group commit (spool.c, spool_round_work). round_lock guards the
     * four below, shared by the loop (which adds) and the round on a pool
     * thread (which takes); round_serial is held by the round writing.
     */
    pthread_mutex_t round_lock, round_serial;
    struct spool_commit *pending, *pending_tail; /* waiting for the next round */
    struct spool_waiter *waiting;                /* spool_sync() callers for the next round */
    struct spool_round *taken; /* rounds that took their batch, not yet reported back */
    int round_queued;          /* a round is on the work queue that has not taken its batch */
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
    /* smtpd's: small messages are committed to the journal (spool_journal_enable). */
    struct journal_writer *jw;
    /* The journal's queued messages as delivery and the queue commands see them. */
    struct spool_journal *jr;
};

struct spool_msg {
    struct spool *s;
    char id[QUEUE_ID_MAX];
    int fd; /* incoming/ID.data; -1 while the data fits in wbuf and nothing needed a file */
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
/* Is id being committed by the running round (in active/ but not yet durable)? */
int spool_in_round(const struct spool *s, const char *id);

/*
 * The journal's index (spool_journal.c). Every function locks it: the loop
 * and work-queue threads both use it.
 */
struct spool_journal *spool_journal_new(void);
void spool_journal_free(struct spool_journal *j);
/*
 * Delivery's start: it becomes the journal's owner (done-logs, moves,
 * quarantine, reclaiming), reads every segment and its done-log, and
 * reclaims what is finished. Returns the number of records quarantined.
 */
int spool_journal_recover(struct spool *s);
/*
 * Indexes records committed since the last look (cheap: only new bytes
 * are read, and the directory only when the known segments had none).
 */
void spool_journal_poll(struct spool *s);
int spool_journal_has(const struct spool *s, const char *id);
/* NULL with errno ENOENT (not journaled) or EINVAL and err. */
struct envelope *spool_journal_envelope(struct spool *s, const char *id, struct buf *err);
/* Appends the journaled ids to *list (spool_list's array: *n used, *cap allocated), after a poll.
 */
void spool_journal_ids(struct spool *s, char ***list, size_t *n, size_t *cap);
/* Where id's data is: segment, offset and length; -1 with ENOENT when not journaled. */
int spool_journal_where(const struct spool *s, const char *id, uint64_t *seq, uint64_t *data_off,
                        uint64_t *data_len);
/* journal/ open, or -1. */
int spool_journal_fd(const struct spool *s);
/* Every recipient finished: marked done (not synced). -1 with ENOENT when not journaled. */
int spool_journal_finish(struct spool *s, const char *id);
/*
 * fdatasync of every done-log written since the last call (and of journal/
 * once after one was made): what a durable spool_finish_journaled() needs.
 * 0 or -1 with errno.
 */
int spool_journal_sync_done(struct spool *s);
/*
 * The message must stay queued: written to active/ as today's two files,
 * with records appended to its envelope, synced, then marked moved. -1
 * with ENOENT when not journaled, another errno when it could not be done
 * (the record is still the message).
 */
int spool_journal_materialize(struct spool *s, const char *id, const char *records, size_t len);

#endif
