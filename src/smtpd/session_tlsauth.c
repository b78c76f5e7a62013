/*
 * The SMTP server session's STARTTLS (RFC 3207) and AUTH (RFC 4954): the
 * offers in EHLO, the handshake on the session's connection, the SASL
 * exchange and the password check; the rules of when each is offered or
 * required live in smtpd/submission.c.
 */
#include "smtpd/session_int.h"

/* ---- STARTTLS (RFC 3207) and AUTH (RFC 4954): the rules live in smtpd/submission.c ---- */

/* A whole reply line from the submission/SASL/auth modules ("535 5.7.8 text"). */
void smtpd_reply_line(struct smtpd_session *s, const char *line)
{
    evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
    if (line[0] >= '4')
        s->errors++;
}

int smtpd_offer_starttls(const struct smtpd_session *s)
{
    return submission_starttls_offered(s->gen->cfg, s->kind, s->gen->tls != NULL, s->tls);
}

int smtpd_offer_auth(const struct smtpd_session *s)
{
    auth_refresh(s->srv->auth);
    return submission_auth_offered(s->gen->cfg, s->kind, s->srv->auth, s->tls) && !s->authenticated;
}

int smtpd_tlsauth_check_mail(struct smtpd_session *s)
{
    if (!s->tls && submission_tls_required(s->gen->cfg, s->kind)) {
        smtpd_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return -1;
    }
    /* RFC 6409 section 4.3: submission needs a login. */
    if (!s->authenticated && submission_auth_required(s->kind)) {
        smtpd_reply(s, 530, "5.7.0", "Authentication required");
        return -1;
    }
    return 0;
}

int smtpd_tlsauth_check_sender(struct smtpd_session *s, const char *addr, size_t len)
{
    if (!s->authenticated)
        return 0;
    char *sender = xstrndup(addr, len);
    struct restrict_reply r;
    /* A pgsql: login map is asked on the work queue: the MAIL command runs again after. */
    enum restrict_status st = restrict_sender_login(s->rs, sender, s->auth_user, &r);
    if (st == RESTRICT_PENDING)
        s->restrict_wait = 1;
    if (st == RESTRICT_REFUSE) {
        smtpd_reply(s, r.code, r.dsn, "%s", r.text);
        log_as("smtpd", "NOQUEUE: reject: MAIL from %s[%s]: %d %s %s; from=<%s> proto=%s helo=<%s>",
               s->host, s->addr, r.code, r.dsn, r.text, sender, smtpd_proto_name(s),
               s->helo ? s->helo : "");
    }
    free(sender);
    return st == RESTRICT_PASS ? 0 : -1;
}

void smtpd_tlsauth_received(struct smtpd_session *s, struct buf *h)
{
    struct buf c = BUF_INIT;
    submission_received_comment(s->gen->cfg, tls_bev_ssl(s->bev),
                                s->authenticated ? s->auth_user : NULL, &c);
    if (c.len)
        buf_printf(h, "\r\n\t%s", buf_cstr(&c));
    buf_free(&c);
}

/* Forgets what the client said in the clear (RFC 3207 section 4.2), AUTH included. */
static void tlsauth_forget(struct smtpd_session *s)
{
    smtpd_tx_free(s);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    s->ext = 0;
    s->authenticated = 0;
    s->auth_step = 0;
    free(s->auth_user);
    s->auth_user = NULL;
    if (s->sasl)
        sasl_reset(s->sasl);
    smtpd_session_enter(s, SMTPD_STATE_CONNECTED);
}

int smtpd_cmd_starttls(struct smtpd_session *s, const char *args, size_t len)
{
    if (s->tls) {
        smtpd_reply(s, 554, "5.5.1", "Error: TLS already active");
        return -1;
    }
    if (!smtpd_offer_starttls(s)) {
        smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_NEWTLS))
        return -1;
    smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
    /*
     * CVE-2011-0411: what was pipelined behind STARTTLS came in the clear
     * and is dropped, and nothing more is read until TLS is up; the
     * handshake starts in smtpd_session_on_write once the 220 has been written.
     */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_disable(s->bev, EV_READ);
    s->starttls_wait = 1;
    return 0;
}

void smtpd_tlsauth_starttls_go(struct smtpd_session *s)
{
    s->starttls_wait = 0;
    smtpd_session_direct_write_end(s); /* the TLS bufferevent writes its own records */
    if (tls_server_starttls(s->gen->tls, &s->bev) < 0) {
        log_warning("cannot start TLS for %s[%s]: out of resources", s->host, s->addr);
        s->dead = 1;
        smtpd_session_close(s);
        return;
    }
    s->tls = 1;
    bufferevent_setcb(s->bev, smtpd_session_on_read, smtpd_session_on_write, smtpd_session_on_event,
                      s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    long long idle = config_get_time(s->gen->cfg, "smtpd_timeout");
    if (idle > 0) {
        struct timeval tv = {(time_t)idle, 0};
        bufferevent_set_timeouts(s->bev, &tv, &tv);
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    tlsauth_forget(s);
}

void smtpd_tlsauth_handshake_done(struct smtpd_session *s)
{
    s->tls_up = 1;
    SSL *ssl = tls_bev_ssl(s->bev);
    struct buf d = BUF_INIT;
    tls_describe(ssl, &d);
    const char *sni = tls_sni_name(ssl);
    /* Postfix's line, which log tools know; the SNI name when the client sent one. */
    log_info("Anonymous TLS connection established from %s[%s]: %s%s%.255s", s->host, s->addr,
             buf_cstr(&d), sni ? " sni=" : "", sni ? sni : "");
    buf_free(&d);
    metrics_tls_handshake(METRICS_IN, SSL_get_version(ssl));
}

void smtpd_tlsauth_handshake_failed(struct smtpd_session *s)
{
    unsigned long e = bufferevent_get_openssl_error(s->bev);
    char why[256] = "connection closed";
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    log_info("SSL_accept error from %s[%s]: %s", s->host, s->addr, why);
}

static void tlsauth_auth_done(void *arg, enum auth_result r)
{
    struct smtpd_session *s = arg;
    s->auth_q = NULL;
    const char *mech = sasl_mechanism(s->sasl);
    char client[INET6_ADDRSTRLEN + 64];
    snprintf(client, sizeof client, "%s[%s]", s->host, s->addr);
    metrics_auth(r == AUTH_OK);
    if (r == AUTH_OK) {
        s->authenticated = 1;
        /* The password is gone; keep the mechanism for the log (sasl_method=). */
        log_debug("%s: SASL %s login as %s", client, mech, s->auth_user);
    } else {
        auth_log_failure(client, mech, s->auth_user, r);
        free(s->auth_user);
        s->auth_user = NULL;
    }
    smtpd_reply_line(s, auth_result_reply(r));
    if (r == AUTH_REFUSED) {
        smtpd_session_close(s);
        return;
    }
    if (!s->in_run)
        smtpd_session_run(s);
}

/* The SASL machine answered: challenge, check, or an error. */
static void tlsauth_sasl_status(struct smtpd_session *s, enum sasl_status st)
{
    switch (st) {
    case SASL_CHALLENGE:
        s->auth_step = 1;
        evbuffer_add_printf(bufferevent_get_output(s->bev), "334 %s\r\n", sasl_challenge(s->sasl));
        return;
    case SASL_CHECK:
        s->auth_step = 0;
        free(s->auth_user);
        s->auth_user = xstrdup(sasl_user(s->sasl));
        s->auth_q = auth_check(s->srv->auth, s->auth_user, sasl_password(s->sasl), s->addr,
                               tlsauth_auth_done, s);
        /* auth_check copied the password: wipe ours now, keep the mechanism name. */
        explicit_bzero((char *)sasl_password(s->sasl), strlen(sasl_password(s->sasl)));
        return;
    case SASL_ERR_AUTHZ: {
        char client[INET6_ADDRSTRLEN + 64];
        snprintf(client, sizeof client, "%s[%s]", s->host, s->addr);
        auth_log_failure(client, sasl_mechanism(s->sasl), "", AUTH_FAIL);
        break;
    }
    case SASL_ERR_MECH:
    case SASL_ERR_SYNTAX:
    case SASL_ABORTED:
        break;
    }
    s->auth_step = 0;
    smtpd_reply_line(s, sasl_status_reply(st));
}

int smtpd_cmd_auth(struct smtpd_session *s, const char *args, size_t len)
{
    const char *no =
        submission_auth_refusal(s->gen->cfg, s->kind, s->srv->auth, s->tls, s->authenticated);
    if (no) {
        smtpd_reply_line(s, no);
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_AUTH))
        return -1;
    /* AUTH mechanism [initial-response] (RFC 4954 section 4). */
    char mech[32], *initial = NULL;
    const char *sp = memchr(args, ' ', len);
    size_t mlen = sp ? (size_t)(sp - args) : len;
    if (mlen == 0 || mlen >= sizeof mech) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return -1;
    }
    memcpy(mech, args, mlen);
    mech[mlen] = '\0';
    if (sp) {
        size_t ilen = len - mlen - 1;
        initial = xstrndup(sp + 1, ilen);
    }
    if (!s->sasl)
        s->sasl = sasl_new();
    tlsauth_sasl_status(s, sasl_start(s->sasl, mech, initial));
    if (initial) {
        explicit_bzero(initial, strlen(initial));
        free(initial);
    }
    return s->auth_step || s->auth_q ? 0 : -1;
}

void smtpd_tlsauth_sasl_line(struct smtpd_session *s, const char *line, size_t len)
{
    tlsauth_sasl_status(s, sasl_step(s->sasl, line, len));
}
