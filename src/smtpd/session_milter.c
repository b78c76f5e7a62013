/*
 * The SMTP server session's smtpd_milters (milter/milter.h): one connection
 * per filter, an event per command gating it, the message's content at its
 * end, and the filters' verdicts (reject, discard, quarantine to hold/).
 */
#include "smtpd/session_int.h"

/* ---- milters (smtpd_milters: milter/milter.h, smtpd/smtpd_milter.h) ---- */

/* One connection per filter for the session, opened at the connect event. */
void smtpd_session_milter_start(struct smtpd_session *s, int fd)
{
    const struct milter_conf *mc = s->gen->smtpd_milters;
    if (!mc || mc->count == 0)
        return;
    smtpd_milter_info_init(&s->minfo, s->gen->cfg, s->addr, &s->peer, fd);
    s->milter = milter_session_new(s->srv->base, mc, smtpd_milter_macro, &s->minfo);
}

/* The macros' values as the session stands now. */
static void session_milter_info(struct smtpd_session *s)
{
    struct smtpd_milter_info *in = &s->minfo;
    in->client_name = s->host;
    in->client_ptr = s->host_name ? s->host_name : s->ptr_name ? s->ptr_name : "unknown";
    in->helo = s->helo;
    in->queue_id = s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : NULL;
    in->auth_type = s->authenticated ? sasl_mechanism(s->sasl) : NULL;
    in->auth_authen = s->authenticated ? s->auth_user : NULL;
    in->mail_addr = s->tx ? s->tx->sender : NULL;
    in->rcpt_addr = in->rcpt_mailer = in->rcpt_host = NULL;
    SSL *ssl = s->tls_up ? tls_bev_ssl(s->bev) : NULL;
    in->tls_version = ssl ? SSL_get_version(ssl) : NULL;
    in->cipher = ssl ? SSL_get_cipher_name(ssl) : NULL;
    in->cipher_bits = ssl ? SSL_get_cipher_bits(ssl, NULL) : 0;
}

/* Postfix's line: "QUEUEID: milter-reject: MAIL from host[addr]: 550 ...; from=<...> ..." */
static void session_milter_log(struct smtpd_session *s, const char *action, const char *where,
                               const char *text)
{
    const char *from = s->tx                           ? s->tx->sender
                       : s->milter_ev == MILTER_C_MAIL ? s->milter_addr
                                                       : NULL;
    const char *to = s->milter_ev == MILTER_C_RCPT ? s->milter_addr : NULL;
    smtpd_milter_log(s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "NOQUEUE", action, where,
                     s->host, s->addr, text, from, to, smtpd_proto_name(s), s->helo ? s->helo : "");
}

static void session_milter_hold(struct smtpd_session *s, const struct milter_result *res,
                                const char *where)
{
    if (!res->hold || s->milter_hold)
        return;
    s->milter_hold = 1;
    free(s->milter_hold_reason);
    s->milter_hold_reason = xstrdup(res->hold_reason);
    session_milter_log(s, "milter-hold", where, res->hold_reason);
}

/* The transaction is over: the filters forget it, and so do we. */
void smtpd_session_milter_tx_end(struct smtpd_session *s)
{
    milter_abort(s->milter);
    s->milter_hold = 0;
    s->milter_discard = 0;
}

static void session_milter_gate_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    char ev = s->milter_ev;
    s->milter_wait = 0;
    session_milter_hold(s, res, smtpd_milter_where(ev));
    int shutdown = res->verdict == MILTER_SHUTDOWN ||
                   (res->verdict == MILTER_REJECT && strncmp(res->reply, "421", 3) == 0);
    if (shutdown) {
        const char *r =
            res->verdict == MILTER_SHUTDOWN ? "421 4.7.0 Server closing connection" : res->reply;
        session_milter_log(s, "milter-reject", smtpd_milter_where(ev), r);
        smtpd_reply_line(s, r);
        smtpd_session_close(s);
    } else if (res->verdict == MILTER_REJECT && ev != MILTER_C_HELO) {
        /* (Sendmail compatibility: a rejected HELO still gets its 250; MAIL meets the reply.) */
        session_milter_log(s, "milter-reject", smtpd_milter_where(ev), res->reply);
        smtpd_reply_line(s, res->reply);
        if (ev == MILTER_C_MAIL)
            milter_abort(s->milter);
    } else {
        if (res->verdict == MILTER_DISCARD && !s->milter_discard) {
            s->milter_discard = 1;
            session_milter_log(s, "milter-discard", smtpd_milter_where(ev),
                               "milter triggers DISCARD action");
        }
        s->milter_pass = 1;
        s->milter_redo(s, s->milter_args, s->milter_args_len);
        s->milter_pass = 0;
    }
    if (!s->in_run)
        smtpd_session_run(s);
}

/*
 * A command's milter event, once its own checks have passed (Postfix's
 * order). 1: the command waits; it runs again, whole, when the filters
 * agree, and then gets past this point (milter_pass).
 */
int smtpd_session_milter_gate(struct smtpd_session *s, char ev, const char *addr, const char *args,
                              size_t len, int (*redo)(struct smtpd_session *, const char *, size_t))
{
    if (!s->milter || s->milter_discard)
        return 0;
    if (s->milter_pass) {
        s->milter_pass = 0;
        return 0;
    }
    free(s->milter_args);
    s->milter_args = xstrndup(args, len);
    s->milter_args_len = len;
    s->milter_redo = redo;
    s->milter_ev = ev;
    free(s->milter_addr);
    s->milter_addr = addr ? xstrdup(addr) : NULL;
    s->milter_wait = 1;
    session_milter_info(s);
    if (ev == MILTER_C_HELO) {
        milter_helo(s->milter, addr, session_milter_gate_done, s);
    } else if (ev == MILTER_C_MAIL || ev == MILTER_C_RCPT) {
        char **argv = smtpd_milter_argv(addr, args, len);
        if (ev == MILTER_C_MAIL) {
            s->minfo.mail_addr = s->milter_addr;
            milter_mail(s->milter, (const char *const *)argv, session_milter_gate_done, s);
        } else {
            s->minfo.rcpt_addr = s->milter_addr;
            int local = s->rcpt_local; /* classified by smtpd_cmd_rcpt, maybe off the loop */
            const char *at = strrchr(addr, '@');
            s->minfo.rcpt_mailer = local ? "local" : "smtp";
            s->minfo.rcpt_host = local ? s->myhostname : at ? at + 1 : NULL;
            milter_rcpt(s->milter, (const char *const *)argv, session_milter_gate_done, s);
        }
        strlist_free(argv);
    } else {
        milter_data(s->milter, session_milter_gate_done, s);
    }
    return 1;
}

static void session_milter_greet_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    s->milter_wait = 0;
    s->milter_ev = MILTER_C_CONNECT;
    /* Postfix: 421 closes; a 5xx is "554 not accepting"; else the 220, and the reply waits at MAIL.
     */
    if (res->verdict == MILTER_SHUTDOWN ||
        (res->verdict == MILTER_REJECT && strncmp(res->reply, "421", 3) == 0)) {
        session_milter_log(s, "milter-reject", "CONNECT", res->reply ? res->reply : "421 4.7.0");
        smtpd_reply(s, 421, NULL, "%s Service unavailable - try again later", s->myhostname);
        smtpd_session_close(s);
        return;
    }
    if (res->verdict == MILTER_REJECT) {
        session_milter_log(s, "milter-reject", "CONNECT", res->reply);
        if (res->reply[0] == '5')
            smtpd_reply(s, 554, NULL, "%s ESMTP not accepting connections", s->myhostname);
        else
            smtpd_reply(s, 220, NULL, "%s", config_get(s->gen->cfg, "smtpd_banner"));
    } else {
        smtpd_reply(s, 220, NULL, "%s", config_get(s->gen->cfg, "smtpd_banner"));
    }
    s->greeted = 1;
    if (s->eof || evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        smtpd_session_run(s);
}

void smtpd_session_milter_greet(struct smtpd_session *s)
{
    s->milter_wait = 1;
    session_milter_info(s);
    int family = s->peer.ss_family;
    if (family == AF_INET6 && strchr(s->addr, ':') == NULL)
        family = AF_INET; /* a v4 client on a dual-stack socket */
    milter_connect(s->milter, s->host, s->addr, family, s->minfo.client_port,
                   session_milter_greet_done, s);
}

/*
 * The filters' envelope changes go into the queue file, then the commit.
 * Recipients a filter added are resolved as at RCPT, so with tables that
 * may wait on the network (pgsql:) that runs on the work queue while the
 * session waits (commit_pending); session_milter_queue() then goes on.
 */
static void session_milter_queue(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    struct envelope *env = spool_msg_envelope(tx->msg);
    env->hold = s->milter_hold;
    struct buf out = BUF_INIT;
    milter_msg_serialize(&tx->milter_msg, &out);
    int rc = spool_msg_write(tx->msg, out.data, out.len);
    buf_free(&out);
    if (rc == 0) {
        smtpd_message_commit(s);
        return;
    }
    smtpd_reply_write_error(s, errno);
    s->commit_pending = 0;
    smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
    if (!s->in_run)
        smtpd_session_run(s);
}

static void session_milter_envelope_work(void *arg)
{
    struct smtpd_session *s = arg;
    smtpd_milter_apply_envelope(&s->tx->milter_msg, spool_msg_envelope(s->tx->msg),
                                s->gen->resolver, spool_msg_id(s->tx->msg));
}

static void session_milter_envelope_done(void *arg)
{
    struct smtpd_session *s = arg;
    if (smtpd_session_end_if_dead(s))
        return;
    session_milter_queue(s);
}

static void session_milter_content_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    struct smtpd_tx *tx = s->tx;
    if (smtpd_session_end_if_dead(s))
        return;
    s->milter_ev = MILTER_C_BODYEOB;
    session_milter_hold(s, res, "END-OF-MESSAGE");
    if (res->verdict == MILTER_REJECT || res->verdict == MILTER_SHUTDOWN) {
        const char *r =
            res->verdict == MILTER_SHUTDOWN ? "421 4.7.0 Server closing connection" : res->reply;
        session_milter_log(s, "milter-reject", "END-OF-MESSAGE", r);
        smtpd_reply_line(s, r);
        if (res->verdict == MILTER_SHUTDOWN || strncmp(r, "421", 3) == 0)
            smtpd_session_close(s);
    } else if (res->verdict == MILTER_DISCARD || s->milter_discard) {
        /* Accepted and dropped, as Postfix does: the client sees a 250. */
        if (res->verdict == MILTER_DISCARD)
            session_milter_log(s, "milter-discard", "END-OF-MESSAGE",
                               "milter triggers DISCARD action");
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", spool_msg_id(tx->msg));
    } else {
        struct resolver *resolver = s->gen->resolver;
        if (resolver_class_may_block(resolver) || resolver_expand_may_block(resolver)) {
            workq_submit(server_map_workq(s->srv), session_milter_envelope_work,
                         session_milter_envelope_done, s);
            return;
        }
        smtpd_milter_apply_envelope(&tx->milter_msg, spool_msg_envelope(tx->msg), resolver,
                                    spool_msg_id(tx->msg));
        session_milter_queue(s);
        return;
    }
    s->commit_pending = 0;
    smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
    if (!s->in_run)
        smtpd_session_run(s);
}

/* With BDAT the filters get their DATA event now, before the content (Postfix's order). */
static void session_milter_data_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    if (res->verdict == MILTER_CONTINUE && !s->dead) {
        session_milter_hold(s, res, "DATA");
        milter_message(s->milter, &s->tx->milter_msg, session_milter_content_done, s);
        return;
    }
    session_milter_content_done(s, res);
}

/*
 * The held message goes to the filters, then (edited) into the queue
 * file; the session waits as for a commit. Our Received: field is already
 * in the queue file: the filters do not see it, as with Postfix.
 */
void smtpd_session_milter_content(struct smtpd_session *s, const char *msg, size_t len)
{
    struct smtpd_tx *tx = s->tx;
    smtpd_session_enter(s, SMTPD_STATE_COMMIT);
    s->commit_pending = 1;
    milter_msg_parse(&tx->milter_msg, msg, len); /* a copy: the held message can go */
    smtpd_hold_release(&tx->hold);
    session_milter_info(s);
    if (s->milter_discard) {
        struct milter_result none = {.verdict = MILTER_CONTINUE};
        session_milter_content_done(s, &none);
    } else if (tx->bdat) {
        milter_data(s->milter, session_milter_data_done, s);
    } else {
        milter_message(s->milter, &tx->milter_msg, session_milter_content_done, s);
    }
}
