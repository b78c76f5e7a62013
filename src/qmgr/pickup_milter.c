/* non_smtpd_milters over picked-up mail; see pickup_milter.h. */
#include "qmgr/pickup_milter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "server/server.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "milter/milter.h"
#include "queue/bounce.h"
#include "server/smtpd_milter.h"

/* The most we hold in memory for the filters; beyond, the message is not filtered. */
#define PICKUP_MILTER_HOLD_MAX (64u * 1024 * 1024)

struct pickup_job {
    struct server *srv;
    struct server_gen *gen;
    struct spool_msg *m;
    pickup_milter_cb cb;
    void *arg;
    struct buf msg; /* read back from the queue file (work queue) */
    int read_errno;
    struct milter_session *ms;
    struct smtpd_milter_info info;
    struct milter_msg mm;
    size_t rcpt_i;
    char *rcpt_addr;
    int hold;
    char *reply; /* a 5xx refusal, to bounce with */
    char bounce_id[QUEUE_ID_MAX];
    int bounce_ok;
};

static void job_end(struct pickup_job *j, enum pickup_milter_outcome o)
{
    milter_session_free(j->ms);
    milter_msg_free(&j->mm);
    buf_free(&j->msg);
    if (o != PICKUP_MILTER_GO) {
        spool_msg_abort(j->m);
        j->m = NULL;
    }
    j->cb(j->arg, j->m, o, j->bounce_ok ? j->bounce_id : NULL);
    free(j->rcpt_addr);
    free(j->reply);
    free(j);
}

/* The DSN for a refused message: every recipient failed with the filter's reply (work queue). */
static void bounce_work(void *arg)
{
    struct pickup_job *j = arg;
    struct envelope *env = spool_msg_envelope(j->m);
    size_t *idx = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof *idx);
    const char *text = j->reply + 4;
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct envelope_rcpt *r = &env->rcpts[i];
        r->state = RCPT_BOUNCED;
        free(r->last_error);
        r->last_error = xstrdup(j->reply);
        free(r->dsn_status);
        r->dsn_status = strchr(text, ' ') && text[0] == '5'
                            ? xstrndup(text, (size_t)(strchr(text, ' ') - text))
                            : xstrdup("5.7.1");
        idx[i] = i;
    }
    struct buf err = BUF_INIT;
    /* The message as it came, not yet committed. */
    struct spool_data data;
    if (spool_msg_data_open(j->m, &data) < 0)
        buf_printf(&err, "cannot read the original message: %s", strerror(errno));
    j->bounce_ok = !env->is_bounce && env->sender[0] && data.fd >= 0 &&
                   bounce_queue(j->srv->spool, env, &data, idx, env->nrcpts,
                                config_get(j->gen->cfg, "myhostname"), j->bounce_id, &err) == 0;
    if (!j->bounce_ok && err.len)
        log_error("%s: cannot queue the bounce: %s", spool_msg_id(j->m), buf_cstr(&err));
    spool_data_close(&data);
    buf_free(&err);
    free(idx);
}

static void bounce_done(void *arg)
{
    job_end(arg, PICKUP_MILTER_DROPPED);
}

static void job_log(struct pickup_job *j, const char *action, const char *where, const char *text)
{
    smtpd_milter_log(spool_msg_id(j->m), action, where, "localhost", "127.0.0.1", text,
                     spool_msg_envelope(j->m)->sender, NULL, "ESMTP", "localhost");
}

/* What a filter's verdict means for sendmail mail (Postfix's cleanup_milter_apply). */
static int job_verdict(struct pickup_job *j, const struct milter_result *res, const char *where)
{
    if (res->hold && !j->hold) {
        j->hold = 1;
        job_log(j, "milter-hold", where, res->hold_reason);
    }
    if (res->verdict == MILTER_CONTINUE)
        return 0;
    if (res->verdict == MILTER_DISCARD) {
        job_log(j, "milter-discard", where, "milter triggers DISCARD action");
        job_end(j, PICKUP_MILTER_DROPPED);
        return 1;
    }
    const char *reply =
        res->verdict == MILTER_SHUTDOWN ? "421 4.7.0 Service unavailable" : res->reply;
    job_log(j, "milter-reject", where, reply);
    if (reply[0] == '5' && strcmp(where, "RCPT") != 0) {
        j->reply = xstrdup(reply);
        workq_submit(j->srv->workq, bounce_work, bounce_done, j);
        return 1;
    }
    if (strcmp(where, "RCPT") == 0)
        log_warning("%s: milter configuration error: can't reject recipient in non-smtpd(8) "
                    "submission; message not accepted, try again later",
                    spool_msg_id(j->m));
    job_end(j, PICKUP_MILTER_LATER);
    return 1;
}

static void on_message(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "END-OF-MESSAGE"))
        return;
    struct envelope *env = spool_msg_envelope(j->m);
    smtpd_milter_apply_envelope(&j->mm, env, j->gen->resolver, spool_msg_id(j->m));
    env->hold = j->hold;
    struct buf out = BUF_INIT;
    milter_msg_serialize(&j->mm, &out);
    int rc = spool_msg_truncate(j->m) == 0 ? spool_msg_write(j->m, out.data, out.len) : -1;
    buf_free(&out);
    if (rc < 0) {
        log_warning("%s: cannot rewrite the message after the milters: %s", spool_msg_id(j->m),
                    strerror(errno));
        job_end(j, PICKUP_MILTER_LATER);
        return;
    }
    job_end(j, PICKUP_MILTER_GO);
}

static void on_data(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "DATA"))
        return;
    milter_msg_parse(&j->mm, j->msg.data ? j->msg.data : "", j->msg.len);
    buf_free(&j->msg);
    milter_message(j->ms, &j->mm, on_message, j);
}

static void on_rcpt(void *arg, const struct milter_result *res);

static void next_rcpt(struct pickup_job *j)
{
    struct envelope *env = spool_msg_envelope(j->m);
    if (j->rcpt_i >= env->nrcpts) {
        milter_data(j->ms, on_data, j);
        return;
    }
    free(j->rcpt_addr);
    j->rcpt_addr = xstrdup(env->rcpts[j->rcpt_i++].address);
    j->info.rcpt_addr = j->rcpt_addr;
    char *rcpt = xasprintf("<%s>", j->rcpt_addr);
    const char *argv[] = {rcpt, NULL};
    milter_rcpt(j->ms, argv, on_rcpt, j);
    free(rcpt);
}

static void on_rcpt(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "RCPT"))
        return;
    next_rcpt(j);
}

static void on_mail(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "MAIL"))
        return;
    next_rcpt(j);
}

static void on_helo(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "EHLO"))
        return;
    char *from = xasprintf("<%s>", spool_msg_envelope(j->m)->sender);
    const char *argv[] = {from, NULL};
    milter_mail(j->ms, argv, on_mail, j);
    free(from);
}

static void on_connect(void *arg, const struct milter_result *res)
{
    struct pickup_job *j = arg;
    if (job_verdict(j, res, "CONNECT"))
        return;
    milter_helo(j->ms, "localhost", on_helo, j);
}

static void read_work(void *arg)
{
    struct pickup_job *j = arg;
    j->read_errno = spool_msg_read(j->m, &j->msg, PICKUP_MILTER_HOLD_MAX) < 0 ? errno : 0;
}

static void read_done(void *arg)
{
    struct pickup_job *j = arg;
    if (j->read_errno) {
        log_warning("%s: cannot read the message for the milters: %s", spool_msg_id(j->m),
                    strerror(j->read_errno));
        job_end(j, PICKUP_MILTER_LATER);
        return;
    }
    struct smtpd_milter_info *in = &j->info;
    in->myhostname = config_get(j->gen->cfg, "myhostname");
    in->daemon_name = config_get(j->gen->cfg, "milter_macro_daemon_name");
    in->version = config_get(j->gen->cfg, "milter_macro_v");
    in->client_addr = "127.0.0.1";
    in->client_name = in->client_ptr = "localhost";
    str_copy(in->daemon_addr, sizeof in->daemon_addr, "127.0.0.1");
    in->helo = "localhost";
    in->queue_id = spool_msg_id(j->m);
    in->mail_addr = spool_msg_envelope(j->m)->sender;
    j->ms = milter_session_new(j->srv->base, j->gen->non_smtpd_milters, smtpd_milter_macro, in);
    milter_connect(j->ms, "localhost", "127.0.0.1", AF_INET, 0, on_connect, j);
}

void pickup_milter_run(struct server *srv, struct server_gen *gen, struct spool_msg *m,
                       pickup_milter_cb cb, void *arg)
{
    if (!gen->non_smtpd_milters || gen->non_smtpd_milters->count == 0) {
        cb(arg, m, PICKUP_MILTER_GO, NULL);
        return;
    }
    struct pickup_job *j = xcalloc(1, sizeof *j);
    j->srv = srv;
    j->gen = gen;
    j->m = m;
    j->cb = cb;
    j->arg = arg;
    workq_submit(srv->workq, read_work, read_done, j);
}
