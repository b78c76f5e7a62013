/*
 * The queue manager's pickup of maildrop/ and its flush FIFO (see
 * qmgr_int.h). Files are read and checked on the work queue
 * (pickup_read_batch: nothing a local user puts in maildrop/ can block the
 * loop), then expanded, signed and committed like any submission. FIFO
 * records ("W uid" wake, "F uid" flush, from hongyan-postdrop; the uid is
 * absent when root or mail_owner writes) are coalesced: at most one pickup
 * and one scan per second, and back-off is reset only for a requester that
 * authorized_flush_users allows.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "server/server.h"
#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "queue/dkim_spool.h"
#include "queue/resolve.h"
#include "queue/localuser.h"
#include "queue/pickup.h"
#include "qmgr/pickup_milter.h"
#include "qmgr/qmgr_int.h"
#include "queue/spool.h"

#define QMGR_WAKE_INTERVAL_MS 1000

/* One picked-up message on its way through signing and the commit. */
struct qpick {
    struct qmgr *q;
    struct server_gen *gen; /* held while the message is being signed */
    char *name;
    struct pickup_info info;
    char bounce_id[QUEUE_ID_MAX]; /* a milter refused it: the DSN queued instead */
    time_t retry_at;              /* a milter deferred it: left in maildrop/ until then */
    struct pickup_file *file;     /* read by the batch; owned until prepared */
    struct spool_msg *m;          /* from pickup_prepare() */
    int prepared;                 /* its result: 1 ready to filter, sign and commit */
    struct qpick *next;
};

static void qpick_free(struct qpick *p)
{
    struct qmgr *q = p->q;
    for (struct qpick **pp = &q->picking; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p->name);
    free(p);
}

static void qpick_unlink_work(void *arg)
{
    struct qpick *p = arg;
    pickup_finish(p->q->srv->spool, p->name);
}

static void qpick_unlink_done(void *arg)
{
    struct qpick *p = arg;
    struct qmgr *q = p->q;
    const char *svc = log_scope("pickup");
    pickup_log(&p->info);
    log_scope(svc);
    qmgr_add(q, p->info.id, 0);
    qpick_free(p);
    qmgr_inflight_done(q);
}

static void qpick_committed(void *arg, int result, int err_code, const char *queue_id)
{
    struct qpick *p = arg;
    struct qmgr *q = p->q;
    if (result == 0) {
        metrics_message_picked_up();
        workq_submit(q->srv->workq, qpick_unlink_work, qpick_unlink_done, p);
        return;
    }
    log_warning("maildrop/%s: cannot queue, will retry: %s", p->name, strerror(err_code));
    qpick_free(p);
    qmgr_inflight_done(q);
}

/*
 * DKIM-signed (or left unsigned, logged): now the commit. When the queue
 * file could not be finished (a full disk) the maildrop file stays for the
 * next pickup.
 */
static void qpick_signed(void *arg, struct spool_msg *m, int err_code)
{
    struct qpick *p = arg;
    server_gen_unref(p->gen);
    p->gen = NULL;
    if (err_code) {
        spool_msg_abort(m);
        qpick_committed(p, -1, err_code, NULL);
        return;
    }
    spool_msg_commit(m, qpick_committed, p);
}

static void qpick_dropped_done(void *arg)
{
    struct qpick *p = arg;
    struct qmgr *q = p->q;
    if (p->bounce_id[0])
        qmgr_add(q, p->bounce_id, 0);
    qpick_free(p);
    qmgr_inflight_done(q);
}

/* non_smtpd_milters have had their say (qmgr/pickup_milter.h); then signing and the commit. */
static void qpick_filtered(void *arg, struct spool_msg *m, enum pickup_milter_outcome o,
                           const char *bounce_id)
{
    struct qpick *p = arg;
    struct qmgr *q = p->q;
    if (o == PICKUP_MILTER_GO) {
        dkim_spool_sign(q->srv->workq, p->gen->dkim, NULL, m, qpick_signed, p);
        return;
    }
    server_gen_unref(p->gen);
    p->gen = NULL;
    if (o == PICKUP_MILTER_DROPPED) {
        str_copy(p->bounce_id, sizeof p->bounce_id, bounce_id ? bounce_id : "");
        workq_submit(q->srv->workq, qpick_unlink_work, qpick_dropped_done, p);
        return;
    }
    /* Deferred: the file stays, and is not offered to the filters again for a minute. */
    p->retry_at = time(NULL) + 60;
    qmgr_inflight_done(q);
}

/* A batch of maildrop files, read on the work queue. */
struct qpick_batch {
    struct qmgr *q;
    struct pickup_limits lim;
    char **busy; /* names whose commit was in progress when the batch started */
    struct strset busy_set;
    struct pickup_file *files;
    int more;
};

static int qpick_batch_skip(const char *name, void *arg)
{
    struct qpick_batch *b = arg;
    return strset_has(&b->busy_set, name);
}

static void qpick_batch_work(void *arg)
{
    struct qpick_batch *b = arg;
    b->files = pickup_read_batch(b->q->srv->spool, &b->lim, qpick_batch_skip, b, &b->more);
}

/* Expands, signs and commits one file (on the loop: the resolver's tables are the loop's). */
/* Expands one file's recipients: on the work queue when a table may wait on the network. */
static void qpick_prepare_work(void *arg)
{
    struct qpick *p = arg;
    p->prepared =
        pickup_prepare(p->q->srv->spool, p->gen->cfg, p->gen->resolver, p->file, &p->m, &p->info);
}

static void qpick_prepared(void *arg)
{
    struct qpick *p = arg;
    struct qmgr *q = p->q;
    pickup_file_free(p->file);
    p->file = NULL;
    if (p->prepared != 1) {
        server_gen_unref(p->gen);
        p->gen = NULL;
        qpick_free(p); /* left in maildrop/ for the next scan */
        qmgr_inflight_done(q);
        return;
    }
    /* non_smtpd_milters, then signing and the commit (qpick_filtered). */
    pickup_milter_run(q->srv, p->gen, p->m, qpick_filtered, p);
}

/* Takes f: expands, filters, signs and commits it. */
static void qmgr_pickup_one(struct qmgr *q, struct pickup_file *f)
{
    struct qpick *p = xcalloc(1, sizeof *p);
    p->q = q;
    p->name = xstrdup(f->name);
    p->file = f;
    p->next = q->picking;
    q->picking = p;
    q->inflight++;
    /*
     * sendmail mail is ours: signed at spool entry like an authenticated
     * submission (docs/dkim.md). The generation is held for its tables and
     * its signer.
     */
    p->gen = server_gen_ref(q->srv);
    if (resolver_expand_may_block(p->gen->resolver) || resolver_class_may_block(p->gen->resolver)) {
        workq_submit(server_map_workq(q->srv), qpick_prepare_work, qpick_prepared, p);
    } else {
        qpick_prepare_work(p);
        qpick_prepared(p);
    }
}

static void qpick_batch_done(void *arg)
{
    struct qpick_batch *b = arg;
    struct qmgr *q = b->q;
    q->pickup_running = 0;
    while (b->files) {
        struct pickup_file *f = b->files;
        b->files = f->next;
        if (!q->stopping)
            qmgr_pickup_one(q, f); /* takes f */
        else
            pickup_file_free(f);
    }
    int more = b->more;
    pickup_limits_free(&b->lim);
    strset_free(&b->busy_set);
    strlist_free(b->busy);
    free(b);
    if (more && !q->stopping)
        qmgr_pickup(q);
    qmgr_inflight_done(q);
}

void qmgr_pickup(struct qmgr *q)
{
    if (q->pickup_running || q->stopping)
        return;
    struct qpick_batch *b = xcalloc(1, sizeof *b);
    b->q = q;
    pickup_limits_init(&b->lim, q->srv->gen->cfg);
    /* A file a milter deferred is offered again once its pause is over. */
    time_t now = time(NULL);
    for (struct qpick *p = q->picking, *next; p; p = next) {
        next = p->next;
        if (p->retry_at && now >= p->retry_at)
            qpick_free(p);
    }
    size_t n = 0;
    for (struct qpick *p = q->picking; p; p = p->next)
        n++;
    b->busy = xcalloc(n + 1, sizeof *b->busy);
    n = 0;
    for (struct qpick *p = q->picking; p; p = p->next) {
        b->busy[n] = xstrdup(p->name);
        strset_add(&b->busy_set, b->busy[n++]);
    }
    q->pickup_running = 1;
    q->inflight++;
    workq_submit(q->srv->workq, qpick_batch_work, qpick_batch_done, b);
}

/* Whether any pending flush request comes from a user authorized_flush_users allows. */
static int qmgr_flush_allowed(struct qmgr *q)
{
    const struct config *cfg = q->srv->gen->cfg;
    int allowed = 0;
    for (int i = 0; i < q->nflush_uids && !allowed; i++) {
        long uid = q->flush_uids[i];
        if (uid < 0) {
            allowed = 1; /* written by root or mail_owner, who alone may open the FIFO directly */
            break;
        }
        char user[64];
        struct buf err = BUF_INIT;
        localuser_name((uid_t)uid, user, sizeof user);
        int ok = localuser_authorized(config_get(cfg, "authorized_flush_users"),
                                      config_get(cfg, "mail_owner"), (uid_t)uid, user, &err);
        if (ok < 0)
            log_warning("authorized_flush_users: %s", buf_cstr(&err));
        else if (ok == 0)
            log_warning("flush request from uid=%ld (%s) refused by authorized_flush_users", uid,
                        user);
        allowed = ok > 0;
        buf_free(&err);
    }
    q->nflush_uids = 0;
    return allowed;
}

/* Does what the FIFO asked for, at most once per QMGR_WAKE_INTERVAL_MS. */
static void qmgr_wake(struct qmgr *q)
{
    if (q->stopping)
        return;
    uint64_t now = now_ms();
    if (q->last_wake_ms != 0 && now - q->last_wake_ms < QMGR_WAKE_INTERVAL_MS) {
        if (!q->wake_pending) {
            uint64_t wait = QMGR_WAKE_INTERVAL_MS - (now - q->last_wake_ms);
            struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
            q->wake_pending = 1;
            event_add(q->wake_ev, &tv);
        }
        return;
    }
    q->last_wake_ms = now;
    q->wake_pending = 0;
    int flush = q->flush_pending && qmgr_flush_allowed(q);
    q->flush_pending = 0;
    qmgr_pickup(q);
    qmgr_scan(q, 0);
    if (flush)
        qmgr_flush(q);
    else
        qmgr_run(q);
}

static void qmgr_on_wake_timer(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    q->wake_pending = 0;
    qmgr_wake(q);
}

void qmgr_pickup_tick(struct qmgr *q)
{
    if (q->wake_pending && !event_pending(q->wake_ev, EV_TIMEOUT, NULL))
        qmgr_wake(q);
}

/* One record: "W" or "F", then optionally " UID". Anything else is ignored. */
static void qmgr_fifo_record(struct qmgr *q, const char *rec, size_t len)
{
    if (len == 0 || (rec[0] != 'W' && rec[0] != 'F'))
        return;
    long uid = -1;
    if (len > 2 && rec[1] == ' ') {
        uid = 0;
        for (size_t i = 2; i < len && uid >= 0; i++)
            uid =
                rec[i] >= '0' && rec[i] <= '9' && uid < 100000000 ? uid * 10 + (rec[i] - '0') : -2;
        if (uid < 0)
            return;
    } else if (len != 1) {
        return;
    }
    if (rec[0] == 'F') {
        q->flush_pending = 1;
        /* A few distinct requesters per second are plenty; more only wake. */
        int known = 0;
        for (int i = 0; i < q->nflush_uids; i++)
            known |= q->flush_uids[i] == uid;
        if (!known && q->nflush_uids < (int)(sizeof q->flush_uids / sizeof q->flush_uids[0]))
            q->flush_uids[q->nflush_uids++] = uid;
    }
}

static void qmgr_on_fifo(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    char b[512];
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (b[i] == '\n') {
                qmgr_fifo_record(q, q->fifo_carry, q->fifo_carry_len);
                q->fifo_carry_len = 0;
            } else if (q->fifo_carry_len < sizeof q->fifo_carry) {
                q->fifo_carry[q->fifo_carry_len++] = b[i];
            }
        }
    }
    /* Any write is a wake-up: new maildrop files, a release, or a flush. */
    qmgr_wake(q);
}

int qmgr_fifo_open(struct qmgr *q)
{
    struct spool *s = q->srv->spool;
    q->wake_ev = event_new(q->srv->base, -1, 0, qmgr_on_wake_timer, q);
    /* O_RDWR: the FIFO never reports end-of-file when the last writer goes. */
    q->fifo_fd = open(spool_fifo_path(s), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (q->fifo_fd < 0) {
        log_warning("cannot open %s: %s", spool_fifo_path(s), strerror(errno));
        return -1;
    }
    q->fifo_ev = event_new(q->srv->base, q->fifo_fd, EV_READ | EV_PERSIST, qmgr_on_fifo, q);
    event_add(q->fifo_ev, NULL);
    return 0;
}

void qmgr_pickup_free(struct qmgr *q)
{
    if (q->fifo_ev)
        event_free(q->fifo_ev);
    if (q->wake_ev)
        event_free(q->wake_ev);
    if (q->fifo_fd >= 0)
        close(q->fifo_fd);
    while (q->picking)
        qpick_free(q->picking);
}
