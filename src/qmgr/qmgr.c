/*
 * The queue manager (see qmgr.h): a list of known messages with their next
 * try, run from a one-second tick on the worker's event loop. A delivery
 * reads the envelope afresh from active/ (so operator moves by rename are
 * simply noticed), splits pending recipients into local (Maildir, on the
 * work queue) and the rest (remote_deliver: remote domains, and local ones
 * that transport_maps, mailbox_transport or virtual_transport send to LMTP
 * or elsewhere), then records all results on the
 * work queue: bounces first, then the appended result records, then the
 * removal of a finished message. Mail from sendmail is picked up from
 * maildrop/ on the tick and whenever the flush FIFO is written
 * (qmgr_pickup.c).
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

/* Per-recipient outcome gathered before it is recorded. */
struct qresult {
    int have;
    enum delivery_status status;
    char dsn[16];
    char *reply, *relay;
    const char *service; /* the agent's name in the log; NULL: from relay */
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
    struct qpart *next;
};

struct qjob {
    struct qmgr *q;
    struct qmsg *qm;
    struct envelope *env;
    struct config *cfg; /* the generation's config, held for the job */
    struct server_gen *gen;
    struct buf data_path;
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

struct qjob;
static void qjob_resolve_work(void *arg);
static void qjob_resolved(void *arg);

static struct config *qmgr_cfg(struct qmgr *q)
{
    return q->srv->gen->cfg;
}

static unsigned qmgr_hash(const char *id)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % QMGR_BUCKETS;
}

static struct qmsg *qmgr_find(struct qmgr *q, const char *id)
{
    for (struct qmsg *m = q->buckets[qmgr_hash(id)]; m; m = m->hnext)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

static void qmgr_ready_remove(struct qmgr *q, struct qmsg *m)
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
}

/* Puts m on the ready list when it is due and idle. */
static void qmgr_due(struct qmgr *q, struct qmsg *m, time_t now)
{
    if (m->in_ready || m->busy || m->next_try > now)
        return;
    m->in_ready = 1;
    m->rnext = NULL;
    m->rprev = q->ready_tail;
    if (q->ready_tail)
        q->ready_tail->rnext = m;
    else
        q->ready = m;
    q->ready_tail = m;
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
    qmgr_due(q, m, time(NULL));
    return m;
}

static void qmgr_forget(struct qmgr *q, struct qmsg *gone)
{
    qmgr_ready_remove(q, gone);
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
    q->process_limit = 100;  /* set from default_process_limit by each qmgr_run() */
    srv->queued = qmgr_kick; /* smtpd/ reaches the queue manager only through this */
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

/* Adds every message in active/ we do not know yet, at the next try its envelope names. */
void qmgr_scan(struct qmgr *q, int all_now)
{
    size_t n;
    char **ids = spool_list(q->srv->spool, SPOOL_ACTIVE, &n);
    for (size_t i = 0; i < n; i++) {
        struct qmsg *m = qmgr_find(q, ids[i]);
        if (m) {
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
}

void qmgr_start(struct qmgr *q)
{
    struct spool *s = q->srv->spool;
    int bad = spool_recover(s);
    if (bad)
        log_warning("queue recovery: %d file(s) moved to corrupt/", bad);
    qmgr_scan(q, 0);
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

size_t qmgr_view(struct qmgr *q, struct qmgr_view **out, int *inflight)
{
    size_t n = 0, cap = 0;
    time_t now = time(NULL);
    *out = NULL;
    *inflight = 0;
    for (struct qmsg *m = q->msgs; m; m = m->next) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        str_copy((*out)[n].id, sizeof(*out)[n].id, m->id);
        (*out)[n].deferred = !m->busy && !m->in_ready && m->next_try > now;
        *inflight += m->busy != 0;
        n++;
    }
    return n;
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

static void qmgr_job_free(struct qjob *j)
{
    if (j->res) {
        for (size_t i = 0; i < j->env->nrcpts; i++) {
            free(j->res[i].reply);
            free(j->res[i].relay);
        }
    }
    free(j->res);
    for (size_t i = 0; i < j->nlocal; i++)
        free(j->mailboxes[i]);
    free(j->mailboxes);
    free(j->local);
    for (size_t i = 0; j->routes && i < j->env->nrcpts; i++)
        delivery_route_clear(&j->routes[i]);
    free(j->routes);
    if (j->routing)
        remote_routing_release(j->routing);
    while (j->parts) {
        struct qpart *p = j->parts;
        j->parts = p->next;
        for (size_t k = 0; p->routes && k < p->n; k++)
            delivery_route_clear(&p->routes[k]);
        free(p->routes);
        free(p->key);
        free(p->rcpts);
        free(p->rcpt_class);
        free(p);
    }
    free(j->bounced);
    buf_free(&j->data_path);
    envelope_free(j->env);
    server_gen_unref(j->gen);
    free(j);
}

static void qjob_set(struct qjob *j, size_t i, enum delivery_status st, const char *dsn,
                     const char *reply, const char *relay)
{
    struct qresult *r = &j->res[i];
    free(r->reply);
    free(r->relay);
    r->have = 1;
    r->status = st;
    str_copy(r->dsn, sizeof r->dsn, dsn);
    r->reply = xstrdup(reply ? reply : "");
    r->relay = relay ? xstrdup(relay) : NULL;
    r->service = NULL;
}

static void qmgr_job_record_work(void *arg);
static void qmgr_job_record_done(void *arg);
static void qjob_part_done(struct qjob *j);

/* A delivery is over: its slot goes to the next in line, then the round may be recorded. */
static void qpart_finish(struct qpart *p)
{
    if (p->slot.dest)
        qmgr_dest_done(p->j->q, &p->slot);
    qjob_part_done(p->j);
}

static void qjob_part_done(struct qjob *j)
{
    if (--j->outstanding == 0)
        workq_submit(j->q->srv->workq, qmgr_job_record_work, qmgr_job_record_done, j);
}

static void qjob_local_work(void *arg)
{
    struct qjob *j = arg;
    struct buf reason = BUF_INIT;
    /*
     * Postfix's mailbox_size_limit caps what local delivery writes; for a
     * Maildir that is one file per message, so a larger message bounces
     * (5.2.2, as local(8) reports "File too large") instead of being cut.
     */
    long long limit = config_get_int(j->cfg, "mailbox_size_limit");
    struct stat st_data;
    int too_big = limit > 0 && stat(buf_cstr(&j->data_path), &st_data) == 0 &&
                  (long long)st_data.st_size > limit;
    for (size_t k = 0; too_big && k < j->nlocal; k++) {
        char *why = xasprintf("message is larger than mailbox_size_limit (%lld bytes)", limit);
        qjob_set(j, j->local[k], DELIVERY_PERMFAIL, "5.2.2", why, "local");
        free(why);
    }
    for (size_t k = 0; !too_big && k < j->nlocal; k++) {
        size_t i = j->local[k];
        char dsn[16], stem[QUEUE_ID_MAX + 48];
        /* Arrival time first keeps names sortable by age, as Maildir readers expect. */
        snprintf(stem, sizeof stem, "%lld.Q%sR%zu", (long long)j->env->arrival, j->qm->id, i);
        struct maildir_once once = {.stem = stem,
                                    .check_cur = j->qm->found_by_scan,
                                    .sync_dev = spool_device(j->q->srv->spool),
                                    .sync_deferred = &j->sync_deferred};
        enum delivery_status st =
            maildir_deliver_file(j->mailboxes[k], buf_cstr(&j->data_path), j->env->sender,
                                 j->env->rcpts[i].address, &once, dsn, &reason, NULL);
        qjob_set(j, i, st, dsn, buf_cstr(&reason), "local");
    }
    buf_free(&reason);
}

/* The Maildir files are on disk (or not: then the deliveries are deferred). */
static void qjob_local_synced(void *arg, int err_code)
{
    struct qjob *j = arg;
    if (err_code) {
        char *why = xasprintf("cannot sync the mailbox: %s", strerror(err_code));
        for (size_t k = 0; k < j->nlocal; k++) {
            size_t i = j->local[k];
            if (j->res[i].have && j->res[i].status == DELIVERY_OK)
                qjob_set(j, i, DELIVERY_TEMPFAIL, "4.3.0", why, "local");
        }
        free(why);
    }
    qpart_finish(j->local_part);
}

static void qjob_local_done(void *arg)
{
    struct qjob *j = arg;
    /* One syncfs shared with the spool's commit round, instead of two fsyncs per file. */
    if (j->sync_deferred)
        spool_sync(j->q->srv->spool, qjob_local_synced, j);
    else
        qpart_finish(j->local_part);
}

static void qjob_remote_done(void *arg, struct delivery_rcpt_result *results, size_t count)
{
    struct qpart *p = arg;
    struct qjob *j = p->j;
    for (size_t k = 0; k < count; k++) {
        if (results[k].rcpt < j->env->nrcpts) {
            qjob_set(j, results[k].rcpt, results[k].status, results[k].dsn, results[k].reply,
                     results[k].relay);
            j->res[results[k].rcpt].service = results[k].service;
            j->remote_ok |= results[k].status == DELIVERY_OK;
        }
    }
    delivery_results_free(results, count);
    qpart_finish(p);
}

/* The queue manager stops before the slot came: the round is recorded without this part. */
static void qpart_cancel(struct qslot *s)
{
    qjob_part_done(((struct qpart *)s)->j);
}

/* The slot is granted: the agent starts. */
static void qpart_start(struct qslot *s)
{
    struct qpart *p = (struct qpart *)s;
    struct qjob *j = p->j;
    if (p->local) {
        workq_submit(j->q->srv->workq, qjob_local_work, qjob_local_done, j);
        return;
    }
    p->req.srv = j->q->srv;
    p->req.env = j->env;
    p->req.queue_id = j->env->queue_id;
    p->req.data_path = buf_cstr(&j->data_path);
    p->req.rcpts = p->rcpts;
    p->req.nrcpts = p->n;
    p->req.rcpt_class = p->rcpt_class;
    p->req.routes = p->routes; /* NULL: remote_deliver() decides them */
    remote_deliver(&p->req, qjob_remote_done, p);
}

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
        if (bounce_queue_opts(j->q->srv->spool, e, buf_cstr(&j->data_path), want, n, j->hostname,
                              &opts, j->delay_id, &err) == 0) {
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

/*
 * On a pool thread: fold the results into the envelope, queue the DSN for
 * new failures (before recording them, so a crash can duplicate a DSN but
 * never lose one), append the records durably, and remove a finished
 * message.
 */
static void qmgr_job_record_work(void *arg)
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
        if (bounce_queue(s, e, buf_cstr(&j->data_path), dsn_for, ndsn, j->hostname, j->bounce_id,
                         &err) < 0) {
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

static void qjob_results_synced(void *arg, int err_code)
{
    struct qjob *j = arg;
    /* Not fatal: what did not reach the disk only means an earlier retry. */
    if (err_code)
        log_warning("%s: cannot sync delivery results: %s", j->env->queue_id, strerror(err_code));
    qmgr_job_record_done(j);
}

static void qmgr_job_record_done(void *arg)
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
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /*
     * From the arrival to the microsecond when the queue id tells it (the
     * envelope's arrival is whole seconds: counting from its start would add
     * up to a second to every delay= and to the delivery-time metric).
     */
    struct timeval arrived;
    double delay = (double)(tv.tv_sec - e->arrival) + tv.tv_usec / 1e6;
    if (spool_id_time(e->queue_id, &arrived) == 0 && arrived.tv_sec == e->arrival)
        delay = (double)(tv.tv_sec - arrived.tv_sec) + (tv.tv_usec - arrived.tv_usec) / 1e6;
    if (delay < 0)
        delay = 0;
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
        log_as(service, "%s: to=<%s>%s, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", e->queue_id,
               e->rcpts[i].address, buf_cstr(&orig), r->relay ? r->relay : "none", delay, r->dsn,
               qmgr_status_word(r->status), r->reply);
        metrics_delivery((enum metrics_outcome)r->status, r->relay, e->rcpts[i].address, r->reply,
                         delay);
        buf_free(&orig);
    }
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
    }
    qmgr_job_free(j);
    qmgr_inflight_done(q);
}

/* Starts one delivery round for m; 0 when started, -1 when the message is gone. */
static int qmgr_start_delivery(struct qmgr *q, struct qmsg *m)
{
    struct buf err = BUF_INIT;
    enum spool_where where;
    struct envelope *e = spool_read_envelope(q->srv->spool, m->id, &where, &err);
    if (e == NULL || where != SPOOL_ACTIVE) {
        if (e == NULL && errno != ENOENT)
            log_error("%s: unreadable envelope (%s); will be quarantined at next start", m->id,
                      buf_cstr(&err));
        envelope_free(e);
        buf_free(&err);
        return -1;
    }
    struct qjob *j = xcalloc(1, sizeof *j);
    j->q = q;
    j->qm = m;
    j->env = e;
    j->gen = server_gen_ref(q->srv);
    j->cfg = j->gen->cfg;
    spool_data_path(q->srv->spool, m->id, SPOOL_ACTIVE, &j->data_path);
    j->res = xcalloc(e->nrcpts + 1, sizeof *j->res);
    j->local = xcalloc(e->nrcpts + 1, sizeof *j->local);
    j->mailboxes = xcalloc(e->nrcpts + 1, sizeof *j->mailboxes);
    str_copy(j->hostname, sizeof j->hostname, config_get(j->cfg, "myhostname"));
    j->min_backoff = config_get_time(j->cfg, "minimal_backoff_time");
    j->max_backoff = config_get_time(j->cfg, "maximal_backoff_time");
    j->lifetime =
        config_get_time(j->cfg, e->is_bounce ? "bounce_queue_lifetime" : "maximal_queue_lifetime");
    j->delay_warning = config_get_time(j->cfg, "delay_warning_time");
    if (j->max_backoff < j->min_backoff)
        j->max_backoff = j->min_backoff;
    buf_free(&err);
    qmgr_ready_remove(q, m);
    m->busy = 1;
    q->inflight++;
    j->resolved = xcalloc(e->nrcpts + 1, sizeof *j->resolved);
    j->routing = remote_routing_hold(q->srv);
    if (remote_routing_may_block(j->routing)) {
        j->routes = xcalloc(e->nrcpts + 1, sizeof *j->routes);
    } else {
        remote_routing_release(j->routing);
        j->routing = NULL;
    }
    /* A table that may wait on the network (pgsql:) is asked off the loop. */
    if (j->routing || resolver_expand_may_block(j->gen->resolver) ||
        resolver_class_may_block(j->gen->resolver)) {
        workq_submit(server_map_workq(q->srv), qjob_resolve_work, qjob_resolved, j);
        return 0;
    }
    qjob_resolve_work(j);
    qjob_resolved(j);
    return 0;
}

/* Envelopes hold final recipients: of an expansion, the item that is this address, else the first.
 */
static const struct resolved_rcpt *qjob_pick(const struct resolved_list *rl, const char *address)
{
    const struct resolved_rcpt *it = &rl->items[0];
    for (size_t k = 0; k < rl->count; k++)
        if (str_eq_ci(rl->items[k].address, address))
            it = &rl->items[k];
    return it;
}

/* The enum route_class (agent.h) of a resolved recipient. */
static int qjob_route_class(const struct resolved_rcpt *it)
{
    if (it->cls != RESOLVE_LOCAL)
        return ROUTE_CLASS_REMOTE;
    return it->virtual_domain ? ROUTE_CLASS_VIRTUAL : ROUTE_CLASS_MYDEST;
}

/* Expands every pending recipient (thread-safe: resolve.h); the loop acts on the answers. */
static void qjob_resolve_work(void *arg)
{
    struct qjob *j = arg;
    const struct envelope *e = j->env;
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (e->rcpts[i].state != RCPT_PENDING)
            continue;
        struct qresolve *rs = &j->resolved[i];
        buf_init(&rs->err);
        rs->mr = resolver_expand(j->gen->resolver, e->rcpts[i].address, &rs->rl, &rs->err);
        if (j->routing && rs->mr == MAP_FOUND && rs->rl.count) {
            const struct resolved_rcpt *it = qjob_pick(&rs->rl, e->rcpts[i].address);
            remote_routing_decide(j->routing, e->sender, e->rcpts[i].address, qjob_route_class(it),
                                  &j->routes[i]);
        }
    }
}

static int qmgr_clamp(long long n, int max)
{
    return n < 1 ? 1 : n > max ? max : (int)n;
}

/* The round's delivery for next hop key ("" : answered without a session), made on first use. */
static struct qpart *qjob_part(struct qjob *j, const char *key)
{
    struct qpart **pp = &j->parts;
    for (; *pp; pp = &(*pp)->next)
        if (!(*pp)->local && strcmp((*pp)->key, key) == 0)
            return *pp;
    struct qpart *p = xcalloc(1, sizeof *p);
    p->j = j;
    p->key = xstrdup(key);
    p->rcpts = xcalloc(j->env->nrcpts + 1, sizeof *p->rcpts);
    p->rcpt_class = xcalloc(j->env->nrcpts + 1, 1);
    *pp = p;
    return p;
}

/*
 * Recipient i goes to an agent: to the delivery of its next hop. A route
 * decided ahead on the work queue (tables that may block) names the next
 * hop and goes with the recipient; otherwise remote_destination() decides
 * it here, from tables that answer at once.
 */
static void qjob_add_remote(struct qjob *j, size_t i, int cls)
{
    struct buf key = BUF_INIT;
    int session = j->routes ? remote_decided_destination(&j->routes[i], &key)
                            : remote_destination(j->q->srv, j->env->sender,
                                                 j->env->rcpts[i].address, cls, &key);
    if (!session)
        buf_reset(&key);
    struct qpart *p = qjob_part(j, buf_cstr(&key));
    if (j->routes) {
        if (!p->routes)
            p->routes = xcalloc(j->env->nrcpts + 1, sizeof *p->routes);
        p->routes[p->n] = j->routes[i];
        memset(&j->routes[i], 0, sizeof j->routes[i]);
    }
    p->rcpt_class[p->n] = (unsigned char)cls;
    p->rcpts[p->n++] = i;
    buf_free(&key);
}

/* Sorts the resolved recipients into local and remote deliveries, then starts them. */
static void qjob_resolved(void *arg)
{
    struct qjob *j = arg;
    struct qmgr *q = j->q;
    struct envelope *e = j->env;
    for (size_t i = 0; i < e->nrcpts; i++) {
        struct envelope_rcpt *r = &e->rcpts[i];
        if (r->state != RCPT_PENDING)
            continue;
        struct resolved_list rl = j->resolved[i].rl;
        struct buf err = j->resolved[i].err;
        enum map_result mr = j->resolved[i].mr;
        if (mr == MAP_NOTFOUND) {
            char *why = xasprintf("unknown user: \"%s\"%s%s", r->address, err.len ? ": " : "",
                                  buf_cstr(&err));
            qjob_set(j, i, DELIVERY_PERMFAIL, "5.1.1", why, "local");
            free(why);
        } else if (mr == MAP_TEMPFAIL || rl.count == 0) {
            char *why =
                xasprintf("recipient lookup failed: %s", err.len ? buf_cstr(&err) : "no result");
            qjob_set(j, i, DELIVERY_TEMPFAIL, "4.3.0", why, "none");
            free(why);
        } else {
            const struct resolved_rcpt *it = qjob_pick(&rl, r->address);
            /* Postfix: transport_maps, then mailbox_transport/virtual_transport (route.h). */
            int cls = qjob_route_class(it);
            if (it->cls == RESOLVE_LOCAL &&
                (j->routes ? remote_route_is_agent(&j->routes[i])
                           : remote_routes_local(q->srv, e->sender, r->address, cls))) {
                qjob_add_remote(j, i, cls);
            } else if (it->cls == RESOLVE_LOCAL && it->mailbox) {
                j->mailboxes[j->nlocal] = xstrdup(it->mailbox);
                j->local[j->nlocal++] = i;
            } else if (it->cls == RESOLVE_LOCAL) {
                qjob_set(j, i, DELIVERY_PERMFAIL, "5.3.5", "no mailbox for local recipient",
                         "local");
            } else {
                qjob_add_remote(j, i, ROUTE_CLASS_REMOTE);
            }
        }
        resolved_list_free(&rl);
        buf_free(&err);
    }
    free(j->resolved);
    j->resolved = NULL;
    if (j->nlocal) {
        j->local_part = qjob_part(j, "local");
        j->local_part->local = 1;
    }
    /*
     * One reference held while launching, so a synchronous agent cannot
     * finish us early. Maildir delivery takes a slot in the "local" line
     * (default_destination_concurrency_limit), SMTP and LMTP one in their
     * next hop's (smtp_destination_concurrency_limit, which LMTP shares).
     */
    j->outstanding = 1;
    for (struct qpart *p = j->parts; p; p = p->next) {
        j->outstanding++;
        p->slot.start = qpart_start;
        p->slot.cancel = qpart_cancel;
        if (q->stopping) { /* resolved on the work queue after a stop began */
            qpart_cancel(&p->slot);
            continue;
        }
        if (!p->key[0]) {
            qpart_start(&p->slot);
            continue;
        }
        const char *limit_key = p->local ? "default_destination_concurrency_limit"
                                         : "smtp_destination_concurrency_limit";
        qmgr_dest_submit(q, p->key, qmgr_clamp(config_get_int(j->cfg, limit_key), 1000), &p->slot);
    }
    qjob_part_done(j);
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
