/*
 * The queue gauges (qmgr_int.h): the queue manager keeps the count and the
 * bytes of its active and deferred messages, and how many are being
 * delivered, as messages enter, change state and leave, and publishes them
 * into the shared metrics region at once (metrics_queue_publish_counts),
 * where smtpd, which serves the page, reads them. The oldest deferred
 * message is published (one envelope read) when a message older than the
 * one published becomes deferred; only when the published one leaves that
 * state is the next one looked for, on the next tick, by a walk in arrival
 * order that stops at the first deferred message. Nothing else costs in
 * proportion to the queue.
 */
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "metrics/metrics.h"
#include "qmgr/qmgr_int.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "server/server.h"

/* Envelopes read at most per recomputation when the first deferred ones are gone. */
#define QMGR_GAUGE_OLDEST_TRIES 8

void qmgr_gauge_size(struct qmgr *q, struct qmsg *m)
{
    /* Gone already (deleted, held): it counts as empty until the queue manager forgets it. */
    if (spool_data_size(q->srv->spool, m->id, SPOOL_ACTIVE, &m->size) < 0)
        m->size = 0;
}

static void qmgr_gauge_count(struct qmgr *q, const struct qmsg *m, int sign)
{
    struct metrics_queue_counts *g = &q->gauges;
    int s = m->gauge_state;
    /* Unsigned arithmetic: a subtraction is the addition of the two's complement. */
    g->messages[s] += (unsigned long long)(long long)sign;
    g->bytes[s] += sign > 0 ? m->size : -m->size;
    g->in_flight += (unsigned long long)(long long)(sign * m->gauge_busy);
}

static int qmgr_gauge_describe(struct qmgr *q, const struct qmsg *m, struct metrics_oldest *o);

/* m has just become deferred: the oldest now if older than the one published. */
static void qmgr_gauge_deferred(struct qmgr *q, struct qmsg *m)
{
    if (q->oldest_dirty || (q->oldest && q->oldest->order < m->order))
        return; /* unknown until the tick (which will weigh m too), or an older one is shown */
    struct metrics_oldest o;
    if (qmgr_gauge_describe(q, m, &o) < 0) {
        q->oldest_dirty = 1; /* gone meanwhile: the tick looks for the next one */
        return;
    }
    q->oldest = m;
    metrics_queue_publish_oldest(&o);
}

/* m leaves the deferred state (or the queue): if it was the one shown, the tick finds the next. */
static void qmgr_gauge_undeferred(struct qmgr *q, struct qmsg *m)
{
    if (q->oldest == m) {
        q->oldest = NULL;
        q->oldest_dirty = 1;
    }
}

void qmgr_gauge_track(struct qmgr *q, struct qmsg *m)
{
    /* Deferred: idle, not due and not waiting for a turn (as the page has always shown it). */
    int state = m->busy || m->in_ready || m->next_try <= time(NULL) ? QMGR_GAUGE_ACTIVE
                                                                    : QMGR_GAUGE_DEFERRED;
    int busy = m->busy != 0;
    if (m->gauge_counted && state == m->gauge_state && busy == m->gauge_busy)
        return;
    int was_deferred = m->gauge_counted && m->gauge_state == QMGR_GAUGE_DEFERRED;
    if (m->gauge_counted)
        qmgr_gauge_count(q, m, -1);
    m->gauge_state = state;
    m->gauge_busy = busy;
    m->gauge_counted = 1;
    qmgr_gauge_count(q, m, +1);
    /* The oldest first: a reader that sees the new count sees it too. */
    if (was_deferred && state != QMGR_GAUGE_DEFERRED)
        qmgr_gauge_undeferred(q, m);
    else if (!was_deferred && state == QMGR_GAUGE_DEFERRED)
        qmgr_gauge_deferred(q, m);
    metrics_queue_publish_counts(&q->gauges);
}

void qmgr_gauge_leave(struct qmgr *q, struct qmsg *m)
{
    if (!m->gauge_counted)
        return;
    qmgr_gauge_count(q, m, -1);
    m->gauge_counted = 0;
    qmgr_gauge_undeferred(q, m);
    metrics_queue_publish_counts(&q->gauges);
}

/* Fills o from m's envelope: 0, or -1 when it cannot be read (gone meanwhile). */
static int qmgr_gauge_describe(struct qmgr *q, const struct qmsg *m, struct metrics_oldest *o)
{
    struct buf err = BUF_INIT;
    struct envelope *e = spool_read_envelope(q->srv->spool, m->id, NULL, &err);
    buf_free(&err);
    if (e == NULL)
        return -1;
    memset(o, 0, sizeof *o);
    str_copy(o->id, sizeof o->id, e->queue_id);
    o->arrival = e->arrival;
    for (size_t r = 0; r < e->nrcpts; r++) {
        if (e->rcpts[r].state != RCPT_PENDING)
            continue;
        str_copy(o->recipient, sizeof o->recipient, e->rcpts[r].address);
        str_copy(o->reason, sizeof o->reason,
                 e->rcpts[r].last_error ? e->rcpts[r].last_error : "(not tried yet)");
        break;
    }
    envelope_free(e);
    return 0;
}

void qmgr_gauge_oldest(struct qmgr *q)
{
    if (!q->oldest_dirty)
        return;
    q->oldest_dirty = 0;
    q->oldest = NULL;
    struct metrics_oldest o;
    memset(&o, 0, sizeof o);
    int tries = 0;
    /* The list is in arrival order: the first deferred message readable is the oldest. */
    for (struct qmsg *m = q->msgs; m && q->gauges.messages[QMGR_GAUGE_DEFERRED]; m = m->next) {
        if (!m->gauge_counted || m->gauge_state != QMGR_GAUGE_DEFERRED)
            continue;
        if (qmgr_gauge_describe(q, m, &o) == 0) {
            q->oldest = m;
            break;
        }
        memset(&o, 0, sizeof o);
        if (++tries == QMGR_GAUGE_OLDEST_TRIES) {
            q->oldest_dirty = 1; /* the next tick goes on, after the scan has forgotten them */
            break;
        }
    }
    metrics_queue_publish_oldest(&o);
}

void qmgr_gauge_start(struct qmgr *q)
{
    /* A restarted delivery process finds its predecessor's numbers in the region: replaced. */
    metrics_queue_publish_counts(&q->gauges);
    q->oldest_dirty = 1;
    qmgr_gauge_oldest(q);
}
