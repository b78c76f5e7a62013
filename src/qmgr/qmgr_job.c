/*
 * The queue manager's delivery round for one message (qmgr_int.h): the
 * envelope read afresh, each pending recipient resolved on the work queue,
 * the recipients split into a local part and one part per next hop, each
 * part started when its next hop's line grants a slot (qmgr_dest.c), and
 * the agents' answers gathered for qmgr_record.c.
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

static void qjob_resolve_work(void *arg);
static void qjob_resolved(void *arg);

void qmgr_job_free(struct qjob *j)
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
        spool_data_close(&p->data);
        free(p);
    }
    free(j->bounced);
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

static void qjob_part_done(struct qjob *j);

/* A delivery is over: its slot goes to the next in line, then the round may be recorded. */
static void qpart_finish(struct qpart *p)
{
    spool_data_close(&p->data); /* the agent is done with it */
    if (p->slot.dest)
        qmgr_dest_done(p->j->q, &p->slot);
    qjob_part_done(p->j);
}

static void qjob_part_done(struct qjob *j)
{
    if (--j->outstanding > 0)
        return;
    if (qmgr_job_record_light(j)) {
        /* Nothing to write but the removal, which a round makes: record_done returns at once. */
        qmgr_job_record_work(j);
        qmgr_job_record_done(j);
        return;
    }
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
    int too_big = limit > 0 && (long long)j->local_part->data.length > limit;
    for (size_t k = 0; too_big && k < j->nlocal; k++) {
        char *why = xasprintf("message is larger than mailbox_size_limit (%lld bytes)", limit);
        qjob_set(j, j->local[k], DELIVERY_PERMFAIL, "5.2.2", why, "local");
        j->res[j->local[k]].handoff = j->local_part->handoff;
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
            maildir_deliver(j->mailboxes[k], &j->local_part->data, j->env->sender,
                            j->env->rcpts[i].address, &once, dsn, &reason, NULL);
        qjob_set(j, i, st, dsn, buf_cstr(&reason), "local");
        j->res[i].handoff = j->local_part->handoff; /* no session: delays= c is 0 */
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
            j->res[results[k].rcpt].handoff = p->handoff;
            j->res[results[k].rcpt].setup_done = results[k].setup_done;
            /* A discard is not a peer's 250: repeating it after a crash is harmless. */
            j->remote_ok |= results[k].status == DELIVERY_OK && !results[k].repeatable;
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
    gettimeofday(&p->handoff, NULL);
    /*
     * The data is opened when the delivery starts, not when the message is
     * admitted: messages waiting in a next hop's line hold no descriptor,
     * so a backlog of qmgr_message_active_limit costs none. The agent
     * borrows it; qpart_finish closes it. Deliveries without a session
     * (error:, discard:) do not read it.
     */
    struct buf err = BUF_INIT;
    if (p->key[0] &&
        spool_data_open(j->q->srv->spool, j->qm->id, SPOOL_ACTIVE, &p->data, &err) < 0) {
        /* What an agent that cannot read the message would answer: try again later. */
        char *why = xasprintf("cannot open the queue file %s", buf_cstr(&err));
        log_error("%s: %s", j->qm->id, why);
        buf_free(&err);
        for (size_t k = 0; k < (p->local ? j->nlocal : p->n); k++)
            qjob_set(j, p->local ? j->local[k] : p->rcpts[k], DELIVERY_TEMPFAIL, "4.3.0", why,
                     p->local ? "local" : "none");
        free(why);
        qpart_finish(p);
        return;
    }
    buf_free(&err);
    if (p->local) {
        workq_submit(j->q->srv->workq, qjob_local_work, qjob_local_done, j);
        return;
    }
    p->req.srv = j->q->srv;
    p->req.env = j->env;
    p->req.queue_id = j->env->queue_id;
    p->req.data = &p->data;
    p->req.rcpts = p->rcpts;
    p->req.nrcpts = p->n;
    p->req.rcpt_class = p->rcpt_class;
    p->req.routes = p->routes; /* NULL: remote_deliver() decides them */
    remote_deliver(&p->req, qjob_remote_done, p);
}

/* Starts one delivery round for m; 0 when started, -1 when the message is gone. */
int qmgr_start_delivery(struct qmgr *q, struct qmsg *m)
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
    qmgr_gauge_track(q, m);
    q->inflight++;
    j->resolved = xcalloc(e->nrcpts + 1, sizeof *j->resolved);
    /*
     * Routes are decided once, here, with the expansion: they name each
     * recipient's line (qmgr_dest.c) and go with it to remote_deliver().
     */
    j->routing = remote_routing_hold(q->srv);
    j->routes = xcalloc(e->nrcpts + 1, sizeof *j->routes);
    /* A table that may wait on the network (pgsql:) is asked off the loop. */
    if (remote_routing_may_block(j->routing) || resolver_expand_may_block(j->gen->resolver) ||
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
        if (rs->mr == MAP_FOUND && rs->rl.count) {
            const struct resolved_rcpt *it = qjob_pick(&rs->rl, e->rcpts[i].address);
            remote_routing_decide(j->routing, e->sender, e->rcpts[i].address, qjob_route_class(it),
                                  &j->routes[i]);
        }
    }
}

int qmgr_clamp(long long n, int max)
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
    p->data.fd = -1;
    p->rcpts = xcalloc(j->env->nrcpts + 1, sizeof *p->rcpts);
    p->rcpt_class = xcalloc(j->env->nrcpts + 1, 1);
    *pp = p;
    return p;
}

/* Recipient i goes to an agent: to the delivery of the next hop its decided route names. */
static void qjob_add_remote(struct qjob *j, size_t i, int cls)
{
    struct buf key = BUF_INIT;
    if (!remote_decided_destination(&j->routes[i], &key))
        buf_reset(&key);
    struct qpart *p = qjob_part(j, buf_cstr(&key));
    if (!p->routes)
        p->routes = xcalloc(j->env->nrcpts + 1, sizeof *p->routes);
    p->routes[p->n] = j->routes[i];
    memset(&j->routes[i], 0, sizeof j->routes[i]);
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
            if (it->cls == RESOLVE_LOCAL && remote_route_is_agent(&j->routes[i])) {
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
