/*
 * The queue manager's state, shared by its two files: qmgr.c (the message
 * list, deliveries, results) and qmgr_pickup.c (maildrop pickup and the
 * flush FIFO). Not for other modules: they use qmgr.h.
 */
#ifndef HONGYAN_QMGR_QMGR_INT_H
#define HONGYAN_QMGR_QMGR_INT_H

#include <event2/event.h>
#include <stdint.h>
#include <time.h>

#include "queue/envelope.h"
#include "qmgr/qmgr.h"

struct server;
struct qpick;

struct qmsg {
    char id[QUEUE_ID_MAX];
    time_t next_try;
    int busy;
    /*
     * Found in the spool rather than handed over on arrival (a restart, a
     * release): an earlier attempt may have delivered without recording it,
     * so local delivery checks for its own earlier copy (maildir.h).
     */
    int found_by_scan;
    struct qmsg *next, *prev;   /* arrival order */
    struct qmsg *hnext;         /* hash chain by id */
    struct qmsg *rnext, *rprev; /* the ready list, when in_ready */
    int in_ready;
};

#define QMGR_BUCKETS 16384
#define QMGR_DEST_BUCKETS 1024
/* Messages admitted per turn of the loop (qmgr_run): envelopes are read on the loop. */
#define QMGR_ADMIT_BATCH 128

struct qdest;

/*
 * One delivery waiting for, or holding, a slot at its next hop
 * (qmgr_dest.c): start() runs when the slot is granted; the owner calls
 * qmgr_dest_done() when the delivery has finished. cancel() runs instead of
 * start() for a delivery still waiting when the queue manager stops.
 */
struct qslot {
    void (*start)(struct qslot *s);
    void (*cancel)(struct qslot *s);
    struct qdest *dest;
    struct qslot *next;
};

struct qmgr {
    struct server *srv;
    struct qmsg *msgs, *msgs_tail;
    /*
     * Messages due now and not busy, in the order they became due: what
     * qmgr_run() starts, so a completion costs O(1), not a walk of every
     * message. Deferred messages join it from the one-second tick.
     */
    struct qmsg *ready, *ready_tail;
    struct qmsg *buckets[QMGR_BUCKETS];
    struct event *tick, *fifo_ev;
    struct event *admit_ev; /* the next batch of a backlog, on the next turn of the loop */
    int fifo_fd;
    time_t last_scan;
    int inflight, stopping; /* inflight: delivery rounds and pickups under way */
    /*
     * The per-next-hop lines (qmgr_dest.c): running counts deliveries that
     * hold a slot, at most process_limit (default_process_limit); dest_ready
     * lists next hops that wait only for that global limit, oldest first.
     */
    struct qdest *dest_buckets[QMGR_DEST_BUCKETS];
    struct qdest *dest_ready, *dest_ready_tail;
    int running, process_limit;
    size_t ndests;
    struct qpick *picking; /* maildrop files being committed */
    /*
     * Pickup and the flush FIFO (qmgr_pickup.c): one batch is read on the
     * work queue at a time; wake-ups from the FIFO are coalesced to one
     * pickup and scan per second (wake_ev fires for the one left pending),
     * and a flush waits for an authorized requester (authorized_flush_users).
     */
    int pickup_running;
    struct event *wake_ev;
    uint64_t last_wake_ms;
    int wake_pending, flush_pending;
    char fifo_carry[64];
    size_t fifo_carry_len;
    long flush_uids[8];
    int nflush_uids;
    void (*stop_done)(void *);
    void *stop_arg;
};

/* qmgr.c */
struct qmsg *qmgr_add(struct qmgr *q, const char *id, time_t next_try);
void qmgr_scan(struct qmgr *q, int all_now);
void qmgr_run(struct qmgr *q);
/* A delivery or pickup step finished: finishes a pending stop, or runs the queue. */
void qmgr_inflight_done(struct qmgr *q);

/* qmgr_dest.c */
/*
 * Puts s in the line of next hop key, which runs at most limit deliveries at
 * once; s->start() may run before this returns.
 */
void qmgr_dest_submit(struct qmgr *q, const char *key, int limit, struct qslot *s);
/* s's delivery has finished: its slot goes to the next delivery waiting. */
void qmgr_dest_done(struct qmgr *q, struct qslot *s);
/* Stopping: every delivery still waiting is cancelled (those running go on). */
void qmgr_dest_cancel_waiting(struct qmgr *q);
void qmgr_dest_free_all(struct qmgr *q);

/* qmgr_pickup.c */
/* Starts reading a batch of maildrop/ on the work queue, unless one is being read. */
void qmgr_pickup(struct qmgr *q);
/* The tick's part: a wake-up left pending by the once-a-second coalescing. */
void qmgr_pickup_tick(struct qmgr *q);
int qmgr_fifo_open(struct qmgr *q);
void qmgr_pickup_free(struct qmgr *q);

#endif
