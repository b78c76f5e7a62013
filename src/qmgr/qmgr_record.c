/*
 * The queue manager's results of a delivery round (qmgr_int.h), on the work
 * queue: bounces first, delay notices, then the appended result records, then
 * the removal of a finished message; back on the loop, the next try
 * (exponential backoff between minimal_backoff_time and maximal_backoff_time).
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

static long long qmgr_backoff(const struct qjob *j, int attempts)
{
    long long d = j->min_backoff > 0 ? j->min_backoff : 1;
    for (int i = 1; i < attempts && d < j->max_backoff; i++)
        d *= 2;
    return d > j->max_backoff ? j->max_backoff : d;
}

/*
 * On a pool thread, once the results are folded into the envelope: when
 * recipients are still deferred and the message is older than
 * delay_warning_time, queue one delay notice (RFC 3464 "delayed") to the
 * sender for those that want it (bounce_wanted_delay). 1 when it was
 * queued: the caller records that (synced), so a restart does not send
 * another; a crash in between can duplicate the notice, never lose it.
 */
/*
 * Queues a DSN (opts NULL: a non-delivery report) for rcpts, quoting the
 * original from its data, opened here: the round's deliveries closed
 * theirs. 0, or -1 with err.
 */
static int qjob_queue_notice(struct qjob *j, const size_t *rcpts, size_t n,
                             const struct bounce_opts *opts, char id_out[QUEUE_ID_MAX],
                             struct buf *err)
{
    struct spool *s = j->q->srv->spool;
    struct spool_data orig;
    if (spool_data_open(s, j->qm->id, SPOOL_ACTIVE, &orig, err) < 0)
        return -1;
    int rc = bounce_queue_opts(s, j->env, &orig, rcpts, n, j->hostname, opts, id_out, err);
    spool_data_close(&orig);
    return rc;
}

static int qjob_delay_notice(struct qjob *j, time_t now)
{
    struct envelope *e = j->env;
    if (j->delay_warning <= 0 || e->delay_warned || e->is_bounce || e->sender[0] == '\0' ||
        now - e->arrival < j->delay_warning)
        return 0;
    size_t *want = xcalloc(e->nrcpts + 1, sizeof *want), n = 0;
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct envelope_rcpt *r = &e->rcpts[i];
        if (r->state == RCPT_PENDING && r->last_error && bounce_wanted_delay(e, r))
            want[n++] = i;
    }
    int done = 0;
    if (n > 0) {
        struct bounce_opts opts = {.delayed = 1, .will_retry_until = e->arrival + j->lifetime};
        struct buf err = BUF_INIT;
        if (qjob_queue_notice(j, want, n, &opts, j->delay_id, &err) == 0) {
            e->delay_warned = now;
            done = 1;
        } else {
            /* Not recorded as sent: tried again after the next deferral. */
            log_error("%s: cannot queue a delay notification: %s", e->queue_id, buf_cstr(&err));
            j->delay_id[0] = '\0';
        }
        buf_free(&err);
    }
    free(want);
    return done;
}

int qmgr_job_record_light(const struct qjob *j)
{
    const struct envelope *e = j->env;
    if (!spool_journaled(j->q->srv->spool, e->queue_id))
        return 0;
    for (size_t i = 0; i < e->nrcpts; i++)
        if (e->rcpts[i].state == RCPT_PENDING &&
            !(j->res[i].have && j->res[i].status == DELIVERY_OK))
            return 0;
    return 1;
}

/*
 * On a pool thread (or the loop: qmgr_job_record_light): fold the results
 * into the envelope, queue the DSN for new failures (before recording
 * them, so a crash can duplicate a DSN but never lose one), append the
 * records durably, and remove a finished message.
 */
void qmgr_job_record_work(void *arg)
{
    struct qjob *j = arg;
    struct envelope *e = j->env;
    struct spool *s = j->q->srv->spool;
    time_t now = time(NULL);
    struct buf rec = BUF_INIT, err = BUF_INIT;
    int pending = 0, untried = 0;
    j->bounced = xcalloc(e->nrcpts + 1, sizeof *j->bounced);
    size_t *dsn_for = xcalloc(e->nrcpts + 1, sizeof *dsn_for);
    size_t ndsn = 0;
    for (size_t i = 0; i < e->nrcpts; i++) {
        struct envelope_rcpt *r = &e->rcpts[i];
        struct qresult *q = &j->res[i];
        if (r->state != RCPT_PENDING)
            continue;
        if (!q->have) {
            pending++;
            untried++;
            continue;
        }
        r->attempts++;
        free(r->dsn_status);
        r->dsn_status = xstrdup(q->dsn);
        free(r->last_error);
        r->last_error = xstrdup(q->reply);
        if (q->status == DELIVERY_OK) {
            r->state = RCPT_DELIVERED;
        } else if (q->status == DELIVERY_PERMFAIL) {
            r->state = RCPT_BOUNCED;
        } else if (now - e->arrival >= j->lifetime) {
            /* RFC 3463 4.4.7: delivery time expired. */
            r->state = RCPT_BOUNCED;
            char *why = xasprintf("message expired in the queue; last error: %s", q->reply);
            free(r->last_error);
            r->last_error = why;
            free(r->dsn_status);
            r->dsn_status = xstrdup("4.4.7");
            free(q->reply);
            q->reply = xstrdup(why);
            str_copy(q->dsn, sizeof q->dsn, "4.4.7");
            q->status = DELIVERY_PERMFAIL;
        } else {
            pending++;
        }
        if (r->state == RCPT_BOUNCED) {
            j->bounced[j->nbounced++] = i;
            if (bounce_wanted(e, r, 0))
                dsn_for[ndsn++] = i;
        }
    }
    if (ndsn > 0) {
        buf_free(&err);
        if (qjob_queue_notice(j, dsn_for, ndsn, NULL, j->bounce_id, &err) < 0) {
            /*
             * No DSN, no bounce: those recipients stay pending and are tried
             * (and bounced) again later; the other results are still recorded
             * so nobody is delivered twice.
             */
            log_error("%s: cannot queue a non-delivery notification: %s", e->queue_id,
                      buf_cstr(&err));
            j->bounce_id[0] = '\0';
            for (size_t k = 0; k < ndsn; k++) {
                e->rcpts[dsn_for[k]].state = RCPT_PENDING;
                j->res[dsn_for[k]].status = DELIVERY_TEMPFAIL;
                pending++;
            }
        }
    }
    free(dsn_for);
    /*
     * A finished journaled message: its done-log record is its last result
     * (no record is encoded or appended). The next round writes it
     * (record_done hands the message over: spool_finish_journaled) and,
     * after a remote server's 250, syncs it before the message counts as
     * gone, as files do: an fdatasync of the done-logs, no syncfs.
     */
    if (!pending && spool_journaled(s, e->queue_id)) {
        j->finish_journaled = 1;
        buf_free(&err);
        return;
    }
    int warned = pending && qjob_delay_notice(j, now);
    for (size_t i = 0; i < e->nrcpts; i++)
        if (j->res[i].have)
            envelope_encode_result(e, i, &rec);
    if (warned)
        envelope_encode_delay_warned(e, &rec);
    if (pending && untried) {
        /* A stop cancelled part of the round before it ran: no attempt, due at the next start. */
        e->next_try = now;
        envelope_encode_schedule(e, &rec);
    } else if (pending) {
        e->attempts++;
        e->next_try = now + qmgr_backoff(j, e->attempts);
        envelope_encode_schedule(e, &rec);
    }
    /*
     * A finished message is removed without recording its last results (a
     * crash brings it back and delivers again, which Maildir delivery makes
     * idempotent for messages found by scan: maildir.h; a bounce would be
     * sent again, never lost). A recipient a remote server accepted is
     * recorded durably first: with fdatasync when the message stays, or,
     * when it is finished, in the next group-commit round before the
     * removal (qjob_record_synced), so a busy relay shares one syncfs among
     * many messages. The results of a message that stays queued (deferrals,
     * bounces, local deliveries) change what is sent next: they are written
     * without a sync and join the next round too (qjob_results_synced), so
     * a power cut seconds later neither repeats them nor resets the
     * backoff. Recovery copes with their loss anyway (a torn tail).
     */
    int finish_in_round = !pending && j->remote_ok;
    int sync_now = (j->remote_ok && !finish_in_round) || warned;
    if (rec.len && (pending || j->remote_ok) &&
        spool_append_sync(s, e->queue_id, rec.data, rec.len, sync_now) < 0) {
        if (errno == ENOENT)
            j->gone = 1; /* deleted or held by the operator meanwhile */
        else
            log_error("%s: cannot record delivery results: %s", e->queue_id, strerror(errno));
        j->record_failed = 1;
    } else if (rec.len && pending && !sync_now) {
        j->sync_results = 1;
    }
    if (!j->record_failed && finish_in_round) {
        j->sync_then_remove = 1;
    } else if (!j->record_failed && !pending) {
        if (spool_remove(s, e->queue_id) == 0)
            j->removed = 1;
        else
            j->gone = 1;
    }
    buf_free(&rec);
    buf_free(&err);
}

static const char *qmgr_status_word(enum delivery_status st)
{
    return st == DELIVERY_OK ? "sent" : st == DELIVERY_TEMPFAIL ? "deferred" : "bounced";
}

static void qjob_remove_work(void *arg)
{
    struct qjob *j = arg;
    if (spool_remove(j->q->srv->spool, j->env->queue_id) == 0)
        j->removed = 1;
    else
        j->gone = 1;
}

static void qjob_record_synced(void *arg, int err_code)
{
    struct qjob *j = arg;
    if (err_code) {
        /* Not known durable: keep the message; its next round reads what did reach the disk. */
        log_error("%s: cannot record delivery results: %s", j->env->queue_id, strerror(err_code));
        j->record_failed = 1;
        qmgr_job_record_done(j);
        return;
    }
    workq_submit(j->q->srv->workq, qjob_remove_work, qmgr_job_record_done, j);
}

static void qjob_finished(void *arg, int err_code)
{
    struct qjob *j = arg;
    if (err_code == 0)
        j->removed = 1;
    else
        j->gone = 1; /* deleted or held by the operator meanwhile */
    qmgr_job_record_done(j);
}

static void qjob_results_synced(void *arg, int err_code)
{
    struct qjob *j = arg;
    /* Not fatal: what did not reach the disk only means an earlier retry. */
    if (err_code)
        log_warning("%s: cannot sync delivery results: %s", j->env->queue_id, strerror(err_code));
    qmgr_job_record_done(j);
}

/* to - from in microseconds; 0 when from was never set. */
static long long qmgr_usec_between(const struct timeval *from, const struct timeval *to)
{
    if (from->tv_sec == 0)
        return 0;
    return (long long)(to->tv_sec - from->tv_sec) * 1000000 + (to->tv_usec - from->tv_usec);
}

/*
 * "delay=T, delays=a/b/c/d" as Postfix's log has them (log_format_delay):
 * a before the queue manager (arrival until the message became due: for a
 * first attempt receiving and committing it, for a retry the time it
 * waited), b in the queue manager (until its agent got it), c connection
 * setup (DNS, connect, greeting, TLS, AUTH), d transmission. Without a
 * session c is 0 and d the agent's whole time; without an agent (a route
 * that failed, an unknown user) b runs until now. The parts add up to T.
 */
static void qjob_log_times(struct buf *out, const struct qresult *r, const struct timeval *arrived,
                           const struct timeval *ready, const struct timeval *now)
{
    const struct timeval *due = ready->tv_sec ? ready : arrived;
    const struct timeval *handoff = r->handoff.tv_sec ? &r->handoff : now;
    const struct timeval *setup = r->setup_done.tv_sec ? &r->setup_done : handoff;
    buf_puts(out, "delay=");
    log_format_delay(out, qmgr_usec_between(arrived, now));
    buf_puts(out, ", delays=");
    log_format_delay(out, qmgr_usec_between(arrived, due));
    buf_puts(out, "/");
    log_format_delay(out, qmgr_usec_between(due, handoff));
    buf_puts(out, "/");
    log_format_delay(out, qmgr_usec_between(handoff, setup));
    buf_puts(out, "/");
    log_format_delay(out, qmgr_usec_between(setup, now));
}

void qmgr_job_record_done(void *arg)
{
    struct qjob *j = arg;
    struct qmgr *q = j->q;
    struct envelope *e = j->env;
    if (j->sync_then_remove) {
        j->sync_then_remove = 0;
        spool_sync(q->srv->spool, qjob_record_synced, j);
        return;
    }
    if (j->sync_results) {
        j->sync_results = 0;
        spool_sync(q->srv->spool, qjob_results_synced, j);
        return;
    }
    if (j->finish_journaled) {
        j->finish_journaled = 0;
        spool_finish_journaled(q->srv->spool, e->queue_id, j->remote_ok, qjob_finished, j);
        return;
    }
    struct timeval now, arrived;
    gettimeofday(&now, NULL);
    /*
     * From the arrival to the microsecond when the queue id tells it (the
     * envelope's arrival is whole seconds: counting from its start would add
     * up to a second to every delay= and to the delivery-time metric).
     */
    if (spool_id_time(e->queue_id, &arrived) < 0 || arrived.tv_sec != e->arrival)
        arrived = (struct timeval){e->arrival, 0};
    long long delay_us = qmgr_usec_between(&arrived, &now);
    double delay = delay_us < 0 ? 0 : (double)delay_us / 1e6;
    struct buf times = BUF_INIT;
    for (size_t i = 0; i < e->nrcpts; i++) {
        struct qresult *r = &j->res[i];
        if (!r->have)
            continue;
        struct buf orig = BUF_INIT;
        const char *oc = e->rcpts[i].orcpt;
        if (oc && strchr(oc, ';')) {
            const char *a = strchr(oc, ';') + 1;
            while (*a == ' ')
                a++;
            if (strcmp(a, e->rcpts[i].address) != 0)
                buf_printf(&orig, ", orig_to=<%s>", a);
        }
        /* Maildir delivery is virtual(8)'s job in Postfix; routes with no agent are error(8)'s. */
        const char *service = r->service                               ? r->service
                              : r->relay && !strcmp(r->relay, "local") ? "virtual"
                                                                       : "error";
        buf_reset(&times);
        qjob_log_times(&times, r, &arrived, &j->qm->ready_since, &now);
        log_as(service, "%s: to=<%s>%s, relay=%s, %s, dsn=%s, status=%s (%s)", e->queue_id,
               e->rcpts[i].address, buf_cstr(&orig), r->relay ? r->relay : "none", buf_cstr(&times),
               r->dsn, qmgr_status_word(r->status), r->reply);
        metrics_delivery((enum metrics_outcome)r->status, r->relay, e->rcpts[i].address, r->reply,
                         delay);
        buf_free(&orig);
    }
    buf_free(&times);
    if (j->delay_id[0]) {
        log_as("bounce", "%s: sender delay notification: %s", e->queue_id, j->delay_id);
        qmgr_add(q, j->delay_id, 0);
    }
    if (j->bounce_id[0]) {
        log_as("bounce", "%s: sender non-delivery notification: %s", e->queue_id, j->bounce_id);
        qmgr_add(q, j->bounce_id, 0);
    } else {
        for (size_t k = 0; k < j->nbounced; k++)
            if (e->is_bounce)
                log_info("%s: bounce to <%s> failed for good; dropped", e->queue_id,
                         e->rcpts[j->bounced[k]].address);
    }
    j->qm->busy = 0;
    if (j->removed) {
        log_as("qmgr", "%s: removed", e->queue_id);
        qmgr_forget(q, j->qm);
    } else if (j->gone) {
        qmgr_forget(q, j->qm);
    } else {
        if (j->record_failed)
            j->qm->next_try = time(NULL) + (time_t)j->min_backoff;
        else
            j->qm->next_try = e->next_try;
        qmgr_due(q, j->qm, time(NULL));
        qmgr_gauge_track(q, j->qm); /* not due: deferred now */
    }
    qmgr_job_free(j);
    qmgr_inflight_done(q);
}
