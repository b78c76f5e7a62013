/*
 * SMTP client, from the greeting to ready: EHLO (or LHLO, or HELO after a
 * refusal), STARTTLS with the peer's certificate checked as the policy asks
 * (RFC 3207, RFC 7672), and AUTH PLAIN or LOGIN (RFC 4954), never in clear.
 */
#include "deliver/client.h"
#include "deliver/client_int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"

/* ---- Session set-up ---- */

/* EHLO, or for LMTP LHLO (RFC 2033 4.1), which takes its place everywhere. */
void client_hello(struct smtp_client *c, enum client_state st)
{
    client_send(c, "%s %s", c->o.lmtp ? "LHLO" : "EHLO", c->o.helo_name);
    client_state(c, st);
}

void client_ready_fail(struct smtp_client *c, enum smtp_client_fail fail, int permanent,
                       const char *dsn, const char *why)
{
    smtp_client_ready_cb cb = c->ready_cb;
    c->ready_cb = NULL;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (cb)
        cb(c->ready_arg, c, 0, fail, permanent, dsn, why);
}

/* A server refusal during set-up: "host X said ..." with its dsn. */
void client_ready_refused(struct smtp_client *c, const char *prefix)
{
    struct buf why = BUF_INIT;
    char dsn[16];
    if (prefix)
        buf_puts(&why, prefix);
    client_said(c, &why);
    smtp_response_dsn(&c->reply, dsn);
    int permanent = c->reply.code >= 500;
    client_ready_fail(c, SMTP_FAIL_REPLY, permanent, dsn, buf_cstr(&why));
    buf_free(&why);
}

void client_ready_ok(struct smtp_client *c)
{
    client_state(c, CS_READY);
    smtp_client_ready_cb cb = c->ready_cb;
    c->ready_cb = NULL;
    if (cb)
        cb(c->ready_arg, c, 1, SMTP_FAIL_NONE, 0, "2.0.0", NULL);
}

void client_start_tls(struct smtp_client *c, enum client_state st)
{
    const char *name = c->o.match_name ? c->o.match_name : c->o.server_name;
    SSL *ssl = c->o.level == TLS_LEVEL_DANE ? tls_client_ssl_dane(c->o.tls, c->o.dane, name)
               : c->o.webpki                ? tls_client_ssl_webpki(c->o.tls, c->o.server_name)
               : c->o.match_names
                   ? tls_client_ssl_names(c->o.tls, c->o.level, c->o.server_name, c->o.match_names)
                   : tls_client_ssl(c->o.tls, c->o.level, c->o.server_name, name);
    if (!ssl) {
        struct buf why = BUF_INIT;
        buf_puts(&why, "cannot start TLS: ");
        tls_client_errors(&why);
        client_ready_fail(c, SMTP_FAIL_TLS, 0, "4.7.5", buf_cstr(&why));
        buf_free(&why);
        return;
    }
    struct bufferevent *f = bufferevent_openssl_filter_new(
        c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!f) {
        SSL_free(ssl);
        client_ready_fail(c, SMTP_FAIL_TLS, 0, "4.7.5", "cannot start TLS: no memory");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
    c->bev = f;
    bufferevent_setcb(f, client_read_cb, client_write_cb, client_event_cb, c);
    bufferevent_setwatermark(f, EV_WRITE, CLIENT_CHUNK, 0);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    client_state(c, st);
}

/* 0: go on; -1: the caller was called back and c may be gone. */
int client_tls_done(struct smtp_client *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    struct buf summary = BUF_INIT, why = BUF_INIT;
    enum tls_trust trust = tls_client_result(ssl, c->o.level, &summary, &why);
    c->tls = 1;
    c->trust = trust;
    c->verify_error = SSL_get_verify_result(ssl);
    free(c->trust_why);
    c->trust_why = why.len ? xstrdup(buf_cstr(&why)) : NULL;
    log_info("%s TLS connection established to %s: %s", tls_trust_name(trust), c->label,
             buf_cstr(&summary));
    metrics_tls_handshake(METRICS_OUT, SSL_get_version(ssl));
    int wrap = c->state == CS_TLS_WRAP;
    if ((c->o.level == TLS_LEVEL_VERIFY || c->o.level == TLS_LEVEL_SECURE ||
         c->o.level == TLS_LEVEL_DANE) &&
        trust != TLS_TRUST_VERIFIED) {
        struct buf msg = BUF_INIT;
        buf_printf(&msg, "Server certificate not verified: host %s: %s", c->hostip, buf_cstr(&why));
        log_info("%s", buf_cstr(&msg));
        client_ready_fail(c, SMTP_FAIL_POLICY, 0, "4.7.5", buf_cstr(&msg));
        buf_free(&msg);
        buf_free(&summary);
        buf_free(&why);
        return -1;
    }
    if (wrap)
        client_state(c, CS_GREETING);
    else
        client_hello(c, CS_EHLO2);
    buf_free(&summary);
    buf_free(&why);
    return 0;
}

/* After EHLO/HELO: STARTTLS, the TLS policy, then AUTH, then ready. */
void client_after_ehlo(struct smtp_client *c)
{
    int want_tls = c->o.tls && c->o.level != TLS_LEVEL_NONE && !c->o.no_starttls;
    int need_tls = c->o.level == TLS_LEVEL_ENCRYPT || c->o.level == TLS_LEVEL_VERIFY ||
                   c->o.level == TLS_LEVEL_SECURE || c->o.level == TLS_LEVEL_DANE;
    if (!c->tls && want_tls && (c->ehlo.ext & SMTP_EHLO_STARTTLS)) {
        client_send(c, "STARTTLS");
        client_state(c, CS_STARTTLS);
        return;
    }
    if (!c->tls && need_tls) {
        struct buf why = BUF_INIT;
        buf_printf(&why, "TLS is required, but was not offered by host %s", c->hostip);
        log_info("%s%s%s", c->o.queue_id ? c->o.queue_id : "", c->o.queue_id ? ": " : "",
                 buf_cstr(&why));
        client_ready_fail(c, SMTP_FAIL_POLICY, 0, "4.7.4", buf_cstr(&why));
        buf_free(&why);
        return;
    }
    if (c->o.sasl_user && (c->ehlo.ext & SMTP_EHLO_AUTH)) {
        if (!c->tls && c->o.sasl_noplaintext) {
            /* smtp_sasl_security_options noplaintext: no password in the clear. */
            struct buf why = BUF_INIT;
            buf_printf(&why,
                       "SASL authentication failed; cannot authenticate to server %s: no "
                       "mechanism available (the connection is not encrypted and "
                       "smtp_sasl_security_options has noplaintext)",
                       c->hostip);
            log_warning("%s", buf_cstr(&why));
            client_ready_fail(c, SMTP_FAIL_POLICY, 0, "4.7.0", buf_cstr(&why));
            buf_free(&why);
            return;
        }
        if (c->ehlo.auth & SMTP_EHLO_AUTH_PLAIN) {
            /* RFC 4616 2: authzid NUL authcid NUL passwd, as an initial response (RFC 4954 4). */
            struct buf raw = BUF_INIT, enc = BUF_INIT;
            buf_putc(&raw, '\0');
            buf_puts(&raw, c->o.sasl_user);
            buf_putc(&raw, '\0');
            buf_puts(&raw, c->o.sasl_pass ? c->o.sasl_pass : "");
            base64_encode(raw.data, raw.len, &enc);
            client_send(c, "AUTH PLAIN %s", buf_cstr(&enc));
            explicit_bzero(raw.data, raw.len);
            explicit_bzero(enc.data, enc.len);
            buf_free(&raw);
            buf_free(&enc);
            client_state(c, CS_AUTH);
            return;
        }
        if (c->ehlo.auth & SMTP_EHLO_AUTH_LOGIN) {
            client_send(c, "AUTH LOGIN");
            client_state(c, CS_AUTH_LOGIN_USER);
            return;
        }
        struct buf why = BUF_INIT;
        buf_printf(&why,
                   "SASL authentication failed; cannot authenticate to server %s: no mechanism "
                   "available (the server offers neither PLAIN nor LOGIN)",
                   c->hostip);
        log_warning("%s", buf_cstr(&why));
        client_ready_fail(c, SMTP_FAIL_POLICY, 0, "4.7.0", buf_cstr(&why));
        buf_free(&why);
        return;
    }
    client_ready_ok(c);
}
