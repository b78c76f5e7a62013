/*
 * The queue manager (see qmgr.h): a list of known messages with their next
 * try, run from a one-second tick on delivery's event loop. A delivery
 * reads the envelope afresh from active/ (so operator moves by rename are
 * simply noticed), splits pending recipients into local (Maildir, on the
 * work queue) and the rest (remote_deliver: remote domains, and local ones
 * that transport_maps, mailbox_transport or virtual_transport send to LMTP
 * or elsewhere), then records all results on the
 * work queue: bounces first, then the appended result records, then the
 * removal of a finished message. Mail from sendmail is picked up from
 * maildrop/ on the tick and whenever the flush FIFO is written
 * (qmgr_pickup.c).
 *
 * This part holds the message list, the ready list, the scan and the tick;
 * a delivery round is in qmgr_job.c and its results in qmgr_record.c.
 */
#include "qmgr/qmgr.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "server/server.h"
#include "deliver/agent.h"
#include "deliver/maildir.h"
#include "deliver/route.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "queue/dkim_spool.h"
#include "queue/resolve.h"
#include "queue/bounce.h"
#include "queue/envelope.h"
#include "qmgr/qmgr_int.h"
#include "queue/spool.h"

static struct config *qmgr_cfg(struct qmgr *q)
{
    return q->srv->gen->cfg;
}

static unsigned qmgr_hash(const char *id)
{
    return hash_str(id) % QMGR_BUCKETS;
}

static struct qmsg *qmgr_find(struct qmgr *q, const char *id)
{
    for (struct qmsg *m = q->buckets[qmgr_hash(id)]; m; m = m->hnext)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

void qmgr_ready_remove(struct qmgr *q, struct qmsg *m)
{
    if (!m->in_ready)
        return;
    if (m->rprev)
        m->rprev->rnext = m->rnext;
    else
        q->ready = m->rnext;
    if (m->rnext)
        m->rnext->rprev = m->rprev;
    else
        q->ready_tail = m->rprev;
    m->rnext = m->rprev = NULL;
    m->in_ready = 0;
    qmgr_gauge_track(q, m);
}

/* Puts m on the ready list when it is due and idle. */
void qmgr_due(struct qmgr *q, struct qmsg *m, time_t now)
{
    if (m->in_ready || m->busy || m->next_try > now)
        return;
    m->in_ready = 1;
    gettimeofday(&m->ready_since, NULL);
    m->rnext = NULL;
    m->rprev = q->ready_tail;
    if (q->ready_tail)
        q->ready_tail->rnext = m;
    else
        q->ready = m;
    q->ready_tail = m;
    qmgr_gauge_track(q, m);
}

struct qmsg *qmgr_add(struct qmgr *q, const char *id, time_t next_try)
{
    struct qmsg *m = qmgr_find(q, id);
    if (m) {
        if (next_try < m->next_try)
            m->next_try = next_try;
        qmgr_due(q, m, time(NULL));
        return m;
    }
    m = xcalloc(1, sizeof *m);
    str_copy(m->id, sizeof m->id, id);
    m->next_try = next_try;
    unsigned h = qmgr_hash(m->id);
    m->hnext = q->buckets[h];
    q->buckets[h] = m;
    /* Appended, so that messages are tried in the order they arrived. */
    m->prev = q->msgs_tail;
    if (q->msgs_tail)
        q->msgs_tail->next = m;
    else
        q->msgs = m;
    q->msgs_tail = m;
    m->scan_mark = q->scan_gen;
    m->order = q->next_order++;
    qmgr_gauge_size(q, m);
    qmgr_due(q, m, time(NULL));
    qmgr_gauge_track(q, m); /* when not due: deferred */
    return m;
}

void qmgr_forget(struct qmgr *q, struct qmsg *gone)
{
    qmgr_ready_remove(q, gone);
    qmgr_gauge_leave(q, gone);
    for (struct qmsg **pp = &q->buckets[qmgr_hash(gone->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == gone) {
            *pp = gone->hnext;
            break;
        }
    }
    if (gone->prev)
        gone->prev->next = gone->next;
    else
        q->msgs = gone->next;
    if (gone->next)
        gone->next->prev = gone->prev;
    else
        q->msgs_tail = gone->prev;
    free(gone);
}

struct qmgr *qmgr_new(struct server *srv)
{
    struct qmgr *q = xcalloc(1, sizeof *q);
    q->srv = srv;
    q->fifo_fd = -1;
    q->process_limit = 100; /* set from default_process_limit by each qmgr_run() */
    return q;
}

void qmgr_inflight_done(struct qmgr *q)
{
    q->inflight--;
    if (q->stopping) {
        if (q->inflight == 0 && q->stop_done) {
            void (*done)(void *) = q->stop_done;
            q->stop_done = NULL;
            done(q->stop_arg);
        }
        return;
    }
    qmgr_run(q);
}

/*
 * Known messages that the scan did not list and that are not being
 * delivered: deleted or put on hold by the operator. Each is confirmed
 * gone with a stat (a listing cut short must not drop a queued message)
 * before it is forgotten, so the gauges stop counting it now rather than
 * at its next try. A held message is found again by the scan after its
 * release.
 */
static void qmgr_prune(struct qmgr *q)
{
    struct qmsg *next;
    for (struct qmsg *m = q->msgs; m; m = next) {
        next = m->next;
        if (m->busy || m->scan_mark == q->scan_gen || spool_is_active(q->srv->spool, m->id))
            continue;
        log_debug("%s: no longer in active/: forgotten", m->id);
        qmgr_forget(q, m);
    }
}

/* Adds every message in active/ we do not know yet, at the next try its envelope names. */
void qmgr_scan(struct qmgr *q, int all_now)
{
    size_t n;
    char **ids = spool_list(q->srv->spool, SPOOL_ACTIVE, &n);
    q->scan_gen++;
    for (size_t i = 0; i < n; i++) {
        struct qmsg *m = qmgr_find(q, ids[i]);
        if (m) {
            m->scan_mark = q->scan_gen;
            if (all_now && !m->busy) {
                m->next_try = 0;
                qmgr_due(q, m, 0);
            }
            continue;
        }
        struct buf err = BUF_INIT;
        struct envelope *e = spool_read_envelope(q->srv->spool, ids[i], NULL, &err);
        if (e) {
            qmgr_add(q, ids[i], all_now ? 0 : e->next_try)->found_by_scan = 1;
            envelope_free(e);
        }
        buf_free(&err);
    }
    strlist_free(ids);
    qmgr_prune(q);
    q->last_scan = time(NULL);
}

static void qmgr_on_admit(evutil_socket_t fd, short what, void *arg)
{
    qmgr_run(arg);
}

static void qmgr_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    if (q->stopping)
        return;
    /* Deferred messages whose time has come (once a second, not per completion). */
    time_t now = time(NULL);
    for (struct qmsg *m = q->msgs; m; m = m->next)
        qmgr_due(q, m, now);
    qmgr_pickup_tick(q);
    qmgr_pickup(q);
    if (time(NULL) - q->last_scan >= config_get_time(qmgr_cfg(q), "queue_run_delay"))
        qmgr_scan(q, 0);
    qmgr_run(q);
    qmgr_gauge_oldest(q);
}

void qmgr_start(struct qmgr *q)
{
    struct spool *s = q->srv->spool;
    /* Our own unfinished writes (bounces, pickup), then the committed queue we own. */
    spool_recover_incoming(s);
    int bad = spool_recover(s);
    if (bad)
        log_warning("queue recovery: %d file(s) moved to corrupt/", bad);
    qmgr_scan(q, 0);
    qmgr_gauge_start(q);
    qmgr_fifo_open(q);
    q->tick = event_new(q->srv->base, -1, EV_PERSIST, qmgr_on_tick, q);
    q->admit_ev = event_new(q->srv->base, -1, 0, qmgr_on_admit, q);
    struct timeval tv = {1, 0};
    event_add(q->tick, &tv);
    qmgr_pickup(q);
    qmgr_run(q);
}

void qmgr_kick(struct qmgr *q, const char *queue_id)
{
    if (q == NULL)
        return;
    qmgr_add(q, queue_id, 0);
    qmgr_run(q);
}

void qmgr_hint(struct qmgr *q, const char *queue_id)
{
    /*
     * A message already known keeps its schedule: a hint must not make a
     * deferred message be tried before its time (smtpd could send many).
     */
    if (q->stopping || !spool_valid_id(queue_id) || qmgr_find(q, queue_id) != NULL)
        return;
    if (!spool_is_active(q->srv->spool, queue_id)) {
        /* Committed to the journal since the last look: read what smtpd synced since. */
        spool_refresh(q->srv->spool);
        if (!spool_is_active(q->srv->spool, queue_id)) {
            log_debug("%s: queued hint for a message not in the queue: ignored", queue_id);
            return;
        }
    }
    qmgr_kick(q, queue_id);
}

void qmgr_scan_soon(struct qmgr *q)
{
    q->last_scan = 0; /* the next tick, within a second */
}

void qmgr_flush(struct qmgr *q)
{
    /* As postqueue -f: next hops found dead are tried again too. */
    remote_flush_dead();
    for (struct qmsg *m = q->msgs; m; m = m->next) {
        if (!m->busy) {
            m->next_try = 0;
            qmgr_due(q, m, 0);
        }
    }
    qmgr_run(q);
}

void qmgr_stop(struct qmgr *q, void (*done)(void *arg), void *arg)
{
    q->stopping = 1;
    /* Deliveries still waiting for a slot do not start: only those running are waited for. */
    qmgr_dest_cancel_waiting(q);
    if (q->tick)
        event_del(q->tick);
    if (q->fifo_ev)
        event_del(q->fifo_ev);
    if (q->wake_ev)
        event_del(q->wake_ev);
    if (q->inflight == 0) {
        if (done)
            done(arg);
        return;
    }
    q->stop_done = done;
    q->stop_arg = arg;
}

void qmgr_free(struct qmgr *q)
{
    if (q == NULL)
        return;
    if (q->tick)
        event_free(q->tick);
    if (q->admit_ev)
        event_free(q->admit_ev);
    qmgr_pickup_free(q);
    qmgr_dest_free_all(q);
    while (q->msgs) {
        struct qmsg *m = q->msgs;
        q->msgs = m->next;
        free(m);
    }
    free(q);
}

void qmgr_run(struct qmgr *q)
{
    if (q->stopping)
        return;
    time_t now = time(NULL);
    const struct config *cfg = qmgr_cfg(q);
    /*
     * Messages are admitted up to qmgr_message_active_limit (their envelopes
     * in memory, their deliveries in the lines of their next hops); what
     * runs at once is bounded per next hop and by default_process_limit.
     */
    int limit = qmgr_clamp(config_get_int(cfg, "qmgr_message_active_limit"), 1000000);
    q->process_limit = qmgr_clamp(config_get_int(cfg, "default_process_limit"), 100000);
    /*
     * Each admission reads an envelope on the loop: a backlog (a restart
     * with thousands due) is taken in batches, the rest on the next turn of
     * the loop, so sessions are not held up meanwhile.
     */
    int batch = QMGR_ADMIT_BATCH;
    while (q->ready && q->inflight < limit && batch > 0) {
        struct qmsg *m = q->ready;
        qmgr_ready_remove(q, m);
        if (m->busy || m->next_try > now)
            continue; /* rescheduled since it became due; the tick brings it back */
        batch--;
        if (qmgr_start_delivery(q, m) < 0)
            qmgr_forget(q, m);
    }
    if (q->ready && q->inflight < limit && batch == 0 && q->admit_ev)
        event_active(q->admit_ev, EV_TIMEOUT, 0);
}
