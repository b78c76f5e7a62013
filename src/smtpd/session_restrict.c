/*
 * The SMTP server session's hooks into Postfix's smtpd_*_restrictions
 * (smtpd/restrict.h) and the anvil rate limits: a check at each stage, the
 * wait for DNS lists or a policy server, and the command run again after.
 */
#include "smtpd/session_int.h"

/* ---- restrictions (Postfix's smtpd_*_restrictions: smtpd/restrict.h) ---- */

void smtpd_restrict_log(void *arg, const struct restrict_facts *f, const char *whatsup,
                        const char *text)
{
    struct smtpd_session *s = arg;
    struct buf tail = BUF_INIT;
    if (f->sender)
        buf_printf(&tail, " from=<%s>", f->sender);
    if (f->recipient)
        buf_printf(&tail, " to=<%s>", f->recipient);
    /* Postfix's line, which log tools know: "NOQUEUE: reject: RCPT from host[addr]: ...". */
    log_as("smtpd", "%s: %s: %s from %s[%s]: %s;%s proto=%s helo=<%s>",
           s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "NOQUEUE", whatsup,
           s->last_cmd ? s->last_cmd : "CONNECT", s->host, s->addr, text, buf_cstr(&tail),
           smtpd_proto_name(s), s->helo ? s->helo : "");
    buf_free(&tail);
}

/* A DNS list, policy server or table answered: the command that waited runs again. */
void smtpd_restrict_resume(void *arg)
{
    struct smtpd_session *s = arg;
    int waited = s->restrict_wait;
    s->restrict_wait = 0;
    if (s->dead) {
        smtpd_session_close(s);
        return;
    }
    if (!waited)
        return; /* a table lookup the check gave up waiting for (restrict_lookup_abandon) */
    if (!s->greeted) {
        smtpd_session_greet(s);
    } else if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT) {
        smtpd_message_checked(s);
        if (!s->restrict_wait && !s->in_run)
            smtpd_session_run(s);
    } else if (!s->in_run) {
        smtpd_session_run(s);
    }
}

int smtpd_restrict_at(struct smtpd_session *s, enum restrict_point point, const char *rcpt)
{
    struct smtpd_tx *tx = s->tx;
    char instance[64];
    snprintf(instance, sizeof instance, "%lx.%llx", (unsigned long)own_pid(),
             tx ? tx->instance : 0ULL);
    struct restrict_facts f = {
        .sa = (const struct sockaddr *)&s->peer,
        .addr = s->addr,
        .host = s->host,
        .reverse = s->host_name ? s->host_name : s->ptr_name,
        .helo = s->helo,
        .sender = tx ? tx->sender : NULL,
        .recipient = rcpt,
        .sasl_user = s->authenticated ? s->auth_user : NULL,
        .sasl_method = s->sasl ? sasl_mechanism(s->sasl) : "",
        .proto = smtpd_proto_name(s),
        .queue_id = tx && tx->msg ? spool_msg_id(tx->msg) : "",
        .mynetworks = s->trusted_net,
        .tls = s->tls,
        .ill_pipelining = s->ill_pipelining,
        .smtputf8 = tx ? tx->smtputf8 : 0,
        .rcpt_count = tx ? tx->nrcpt : 0,
        .size = tx && tx->msg ? spool_msg_size(tx->msg) : 0,
        .instance = instance,
    };
    SSL *ssl = s->tls_up ? tls_bev_ssl(s->bev) : NULL;
    if (ssl) {
        f.tls_protocol = SSL_get_version(ssl);
        f.tls_cipher = SSL_get_cipher_name(ssl);
        f.tls_bits = SSL_get_cipher_bits(ssl, NULL);
    }
    if (s->peer.ss_family == AF_INET)
        f.client_port = ntohs(((const struct sockaddr_in *)&s->peer)->sin_port);
    else if (s->peer.ss_family == AF_INET6)
        f.client_port = ntohs(((const struct sockaddr_in6 *)&s->peer)->sin6_port);
    struct restrict_reply r;
    switch (restrict_check(s->rs, point, &f, &r)) {
    case RESTRICT_PASS:
        return 0;
    case RESTRICT_PENDING:
        s->restrict_wait = 1;
        return -1;
    case RESTRICT_REFUSE:
        break;
    }
    if (point == RESTRICT_CONNECT) {
        /* smtpd_delay_reject = no: the refusal greets, and answers every command after. */
        s->access_denied = xasprintf("%d %s %s", r.code, r.dsn, r.text);
        return -1;
    }
    smtpd_reply(s, r.code, r.dsn, "%s", r.text);
    /* As Postfix: a 421 or 521 (from an access table or policy server) ends the session. */
    if (r.code == 421 || r.code == 521)
        smtpd_session_close(s);
    return -1;
}

int smtpd_rate_limited(struct smtpd_session *s, enum anvil_event ev)
{
    struct buf r = BUF_INIT;
    int over = !s->replaying && anvil_session_event(s->gen->cfg, (const struct sockaddr *)&s->peer,
                                                    ev, s->host, s->addr, &r);
    if (over)
        smtpd_reply_line(s, buf_cstr(&r));
    buf_free(&r);
    return over;
}

/*
 * DISCARD and REDIRECT, applied as the message is handed to the spool.
 * 1 when the message was discarded (answered as queued, as Postfix does).
 */
int smtpd_restrict_tx_effects(struct smtpd_session *s)
{
    const struct restrict_effects *fx = restrict_effects(s->rs);
    struct smtpd_tx *tx = s->tx;
    if (fx->discard) {
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", spool_msg_id(tx->msg));
        s->commit_pending = 0; /* set when the inbound checks ran first */
        smtpd_tx_reset(s);     /* aborts the queue file */
        if (!s->in_run)
            smtpd_session_run(s);
        return 1;
    }
    if (fx->redirect) {
        struct envelope *env = spool_msg_envelope(tx->msg);
        for (size_t i = 1; i < env->nrcpts; i++) {
            free(env->rcpts[i].address);
            free(env->rcpts[i].orcpt);
        }
        env->nrcpts = env->nrcpts ? 1 : 0;
        if (env->nrcpts) {
            free(env->rcpts[0].address);
            env->rcpts[0].address = xstrdup(fx->redirect);
        }
    }
    return 0;
}
