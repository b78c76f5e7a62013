/*
 * The queue manager's state, shared by its files: qmgr.c (the message list,
 * the scan, the tick), qmgr_job.c (a delivery round: resolving, the parts
 * per next hop, the agents), qmgr_record.c (the round's results: bounces,
 * delay notices, result records, removal), qmgr_dest.c (the per-next-hop
 * lines) and qmgr_pickup.c (maildrop pickup and the flush FIFO). Not for
 * other modules: they use qmgr.h.
 */
#ifndef HONGYAN_QMGR_QMGR_INT_H
#define HONGYAN_QMGR_QMGR_INT_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "deliver/agent.h"
#include "lib/buf.h"
#include "metrics/metrics.h"
#include "queue/envelope.h"
#include "queue/resolve.h"
#include "queue/spool.h"
#include "qmgr/qmgr.h"

struct server;
struct server_gen;
struct config;
struct remote_gen;
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
    /* The queue gauges (qmgr_gauge.c): the data file's size, and how m is counted now. */
    unsigned long long size;
    unsigned long long order; /* when it joined the list: arrival order */
    int gauge_counted, gauge_state, gauge_busy;
    unsigned scan_mark; /* the last qmgr_scan() that listed it in active/ */
    /*
     * When it last became due (joined the ready list): Postfix's entry into
     * the active queue, where the log's delays= a ends and b begins.
     */
    struct timeval ready_since;
};

enum { QMGR_GAUGE_ACTIVE, QMGR_GAUGE_DEFERRED };

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
    /*
     * The queue gauges as published (qmgr_gauge.c), and the oldest deferred
     * message published: oldest, or, when oldest_dirty, unknown since the
     * one published left the deferred state (the tick finds the next).
     */
    struct metrics_queue_counts gauges;
    struct qmsg *oldest;
    int oldest_dirty;
    unsigned long long next_order;
    unsigned scan_gen;
};

/* The delivery round (qmgr_job.c, qmgr_record.c). */

/* Per-recipient outcome gathered before it is recorded. */
struct qresult {
    int have;
    enum delivery_status status;
    char dsn[16];
    char *reply, *relay;
    const char *service; /* the agent's name in the log; NULL: from relay */
    /* For delays=: when its agent got it, when that agent's session was ready (zero: none). */
    struct timeval handoff, setup_done;
};

/*
 * One delivery of a round: the message's Maildir recipients, or its
 * recipients that share one next hop, waiting for or holding a slot in
 * that next hop's line (qmgr_dest.c). Recipients that get their answer
 * without a session (error:, discard:) go to the agent at once, with no slot.
 */
struct qpart {
    struct qslot slot; /* first: the line hands back &slot */
    struct qjob *j;
    int local;
    char *key;
    size_t *rcpts;
    unsigned char *rcpt_class;     /* per entry: enum route_class (agent.h) */
    struct delivery_route *routes; /* per entry, when decided ahead (qjob.routes); else NULL */
    size_t n;
    struct delivery_request req;
    struct timeval handoff; /* when the slot came and the agent got it */
    struct spool_data data; /* open while its agent runs (qpart_start to qpart_finish), else -1 */
    struct qpart *next;
};

struct qjob {
    struct qmgr *q;
    struct qmsg *qm;
    struct envelope *env;
    struct config *cfg; /* the generation's config, held for the job */
    struct server_gen *gen;
    struct qresult *res; /* env->nrcpts entries */
    size_t *local, nlocal;
    char **mailboxes;
    struct qpart *parts, *local_part;
    int outstanding;
    /*
     * Local delivery left its Maildir syncs to a spool_sync() round
     * (maildir.h); remote_ok: a remote server accepted a recipient, which a
     * crash must not make us deliver again, so its record is synced.
     */
    int sync_deferred, remote_ok;
    /* Filled by the record step. */
    int gone, removed, record_failed;
    /* A finished message with remotely accepted recipients: its records join a sync round,
     * then it is removed (qjob_record_synced). */
    int sync_then_remove;
    /* A message that stays queued: its results, written unsynced, join the next sync round. */
    int sync_results;
    /*
     * A finished journaled message: removed by the next round
     * (spool_finish_journaled), its done-log record synced there first when
     * a remote server took it.
     */
    int finish_journaled;
    char bounce_id[QUEUE_ID_MAX];
    char delay_id[QUEUE_ID_MAX]; /* the delay notice queued in this round, or "" */
    size_t *bounced, nbounced;   /* recipients bounced in this round */
    struct qresolve *resolved;   /* per recipient, between resolving and launching */
    /*
     * When transport_maps or sender_dependent_relayhost_maps may wait on the
     * network (pgsql:), routes are decided on the work queue with the held
     * routing tables: routes per envelope recipient, then moved to their
     * next hop's delivery (qpart.routes, its request's routes).
     */
    struct remote_gen *routing;
    struct delivery_route *routes;
    char hostname[256];
    long long min_backoff, max_backoff, lifetime, delay_warning;
};

/* One recipient's expansion, made before the delivery round starts (qjob_resolve_work). */
struct qresolve {
    enum map_result mr;
    struct resolved_list rl;
    struct buf err;
};

/* qmgr.c */
struct qmsg *qmgr_add(struct qmgr *q, const char *id, time_t next_try);
void qmgr_scan(struct qmgr *q, int all_now);
void qmgr_run(struct qmgr *q);
/* A delivery or pickup step finished: finishes a pending stop, or runs the queue. */
void qmgr_inflight_done(struct qmgr *q);
void qmgr_ready_remove(struct qmgr *q, struct qmsg *m);
void qmgr_due(struct qmgr *q, struct qmsg *m, time_t now);
void qmgr_forget(struct qmgr *q, struct qmsg *gone);

/* qmgr_job.c */
/* Starts one delivery round for m; 0 when started, -1 when the message is gone. */
int qmgr_start_delivery(struct qmgr *q, struct qmsg *m);
void qmgr_job_free(struct qjob *j);
/* n within 1..max (a limit from the configuration). */
int qmgr_clamp(long long n, int max);

/* qmgr_record.c */
/* On the work queue (qjob as arg): bounces, then the result records, then the removal. */
void qmgr_job_record_work(void *arg);
/*
 * 1 when j's record step writes nothing itself: a journaled message whose
 * recipients all got through, which the next round removes. No DSN, no
 * record, no file: it runs on the loop, without a trip to a pool thread.
 */
int qmgr_job_record_light(const struct qjob *j);
/* Back on the loop: the sync rounds the records wait for, the log lines, the next try. */
void qmgr_job_record_done(void *arg);

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

/* qmgr_gauge.c */
/* Learns the size of a message new to the queue manager (one stat of its data file). */
void qmgr_gauge_size(struct qmgr *q, struct qmsg *m);
/* m's busy, in_ready or next_try may have changed: recounts and publishes if its state did. */
void qmgr_gauge_track(struct qmgr *q, struct qmsg *m);
/* m is being forgotten: it leaves the counts. */
void qmgr_gauge_leave(struct qmgr *q, struct qmsg *m);
/* On the tick: when the oldest deferred message left that state, finds and publishes the next. */
void qmgr_gauge_oldest(struct qmgr *q);
/* After the start-up scan: replaces whatever a previous delivery process left published. */
void qmgr_gauge_start(struct qmgr *q);

/* qmgr_pickup.c */
/* Starts reading a batch of maildrop/ on the work queue, unless one is being read. */
void qmgr_pickup(struct qmgr *q);
/* The tick's part: a wake-up left pending by the once-a-second coalescing. */
void qmgr_pickup_tick(struct qmgr *q);
int qmgr_fifo_open(struct qmgr *q);
void qmgr_pickup_free(struct qmgr *q);

#endif
