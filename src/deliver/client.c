/*
 * SMTP client state machine; see client.h. One function moves the state and
 * sets the stage's timeout; replies are read whole (smtp/response.c) and
 * dispatched by state. Texts follow Postfix's smtp(8) so that operators
 * recognise them: "host X[ip] said: ... (in reply to RCPT TO command)",
 * "lost connection with X[ip] while ...", "TLS is required, but was not
 * offered by host X[ip]".
 * LMTP (RFC 2033) differs in two places only: the greeting is answered with
 * LHLO, and the final dot gets one reply per accepted recipient.
 */
#include "deliver/client.h"

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
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "queue/envelope.h"

enum client_state {
    CS_CONNECTING,
    CS_TLS_WRAP, /* wrapper mode handshake */
    CS_GREETING,
    CS_EHLO,
    CS_HELO,
    CS_STARTTLS,
    CS_TLS_HANDSHAKE,
    CS_EHLO2, /* EHLO again after TLS (RFC 3207 4.2) */
    CS_AUTH,  /* AUTH PLAIN <ir> or the last LOGIN step sent */
    CS_AUTH_LOGIN_USER,
    CS_AUTH_LOGIN_PASS,
    CS_READY,     /* idle, between transactions */
    CS_LOCAL,     /* a transaction answered without the server (size, SMTPUTF8) */
    CS_TXN,       /* MAIL/RCPT/DATA replies being read */
    CS_DATA_BODY, /* streaming the message */
    CS_DOT,       /* waiting for the reply to the final dot */
    CS_RSET,
    CS_QUIT,
};

#define CLIENT_CHUNK 65536
#define CLIENT_OUT_HIGH (4 * CLIENT_CHUNK)

struct smtp_client {
    struct smtp_client_opts o;
    struct event_base *base;
    struct bufferevent *bev;
    enum client_state state;
    char *label;  /* host[ip]:port */
    char *hostip; /* host[ip] */
    struct smtp_response reply;
    struct smtp_ehlo ehlo;
    int tls;
    enum tls_trust trust; /* after the handshake */
    long verify_error;    /* SSL_get_verify_result() after the handshake */
    char *trust_why;      /* why trust is below VERIFIED, or NULL */
    struct event *kick;   /* deferred completion for CS_LOCAL and connect failures */
    int connect_errno;
    int depth; /* handlers running: a free inside a callback waits for them */
    int dead;  /* smtp_client_free() was called inside a handler */

    smtp_client_ready_cb ready_cb;
    void *ready_arg;
    smtp_client_reset_cb reset_cb;
    void *reset_arg;
    void (*idle_cb)(void *arg, struct smtp_client *c);
    void *idle_arg;

    /* The transaction in progress. */
    const struct smtp_msg *m;
    smtp_client_sent_cb sent_cb;
    void *sent_arg;
    struct smtp_rcpt_out *out;
    unsigned char *accepted;
    size_t naccepted;
    size_t reply_idx; /* 0: MAIL, 1..n: RCPT, n+1: DATA */
    int pipelining;
    int mail_ok;
    int data_fd;
    int at_bol;
    int after_cr;        /* the last chunk ended with a CR, not yet written */
    int dot_for_nothing; /* 354 with no recipient accepted: send "." and ignore */
    size_t dot_next;     /* LMTP: the recipient the next reply to the dot is for */
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

const char *smtp_client_label(const struct smtp_client *c)
{
    return c->label;
}

const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c)
{
    return &c->ehlo;
}

enum tls_trust smtp_client_tls_trust(const struct smtp_client *c, const char **why)
{
    if (why)
        *why = c->trust_why ? c->trust_why : c->tls ? "" : "no TLS";
    return c->tls ? c->trust : TLS_TRUST_ANONYMOUS;
}

long smtp_client_verify_error(const struct smtp_client *c)
{
    return c->tls ? c->verify_error : X509_V_OK;
}

int smtp_client_is_tls(const struct smtp_client *c)
{
    return c->tls;
}

static int client_timeout_for(const struct smtp_client *c, enum client_state st)
{
    switch (st) {
    case CS_CONNECTING:
        return c->o.connect_timeout;
    case CS_STARTTLS:
    case CS_TLS_HANDSHAKE:
    case CS_TLS_WRAP:
        return c->o.starttls_timeout;
    case CS_TXN:
        return c->o.rcpt_timeout > c->o.mail_timeout ? c->o.rcpt_timeout : c->o.mail_timeout;
    case CS_DATA_BODY:
        return c->o.data_xfer_timeout;
    case CS_DOT:
        return c->o.data_done_timeout;
    case CS_QUIT:
        return c->o.quit_timeout;
    case CS_READY:
        return 0; /* idle: the caller's cache timer decides */
    default:
        return c->o.helo_timeout;
    }
}

/* The one place the state changes: sets that stage's read/write timeout. */
static void client_state(struct smtp_client *c, enum client_state st)
{
    c->state = st;
    int secs = client_timeout_for(c, st);
    if (secs <= 0) {
        bufferevent_set_timeouts(c->bev, NULL, NULL);
        return;
    }
    struct timeval tv = {secs, 0};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/*
 * Where a conversation stood, for the log and the DSN: one row per step,
 * with the stage text Postfix's smtp(8) uses for a lost connection ("while
 * receiving the initial server greeting") and the command a refusal
 * answered ("in reply to RCPT TO command"); LMTP renames the handshake.
 */
enum client_step {
    STEP_CONNECT,
    STEP_GREETING,
    STEP_EHLO,
    STEP_HELO,
    STEP_STARTTLS,
    STEP_TLS,
    STEP_AUTH,
    STEP_MAIL,
    STEP_RCPT,
    STEP_DATA,
    STEP_BODY,
    STEP_DOT,
    STEP_RSET,
    STEP_IDLE,
};

static const struct {
    const char *stage, *lmtp_stage; /* lmtp_stage NULL: the same as stage */
    const char *command, *lmtp_command;
} client_steps[] = {
    [STEP_CONNECT] = {"while connecting", NULL, "QUIT", NULL},
    [STEP_GREETING] = {"while receiving the initial server greeting", NULL, NULL, NULL},
    [STEP_EHLO] = {"while performing the EHLO handshake", "while performing the LHLO handshake",
                   "EHLO", "LHLO"},
    [STEP_HELO] = {"while performing the EHLO handshake", "while performing the LHLO handshake",
                   "HELO", NULL},
    [STEP_STARTTLS] = {"while performing the TLS handshake", NULL, "STARTTLS", NULL},
    [STEP_TLS] = {"while performing the TLS handshake", NULL, "QUIT", NULL},
    [STEP_AUTH] = {"while authenticating", NULL, "AUTH", NULL},
    [STEP_MAIL] = {"while sending MAIL FROM", NULL, "MAIL FROM", NULL},
    [STEP_RCPT] = {"while sending RCPT TO", NULL, "RCPT TO", NULL},
    [STEP_DATA] = {"while sending DATA command", NULL, "DATA", NULL},
    [STEP_BODY] = {"while sending message body", NULL, "QUIT", NULL},
    [STEP_DOT] = {"while sending end of data -- message may be sent more than once", NULL,
                  "end of DATA", NULL},
    [STEP_RSET] = {"while sending RSET", NULL, "RSET", NULL},
    [STEP_IDLE] = {"while idle", NULL, "QUIT", NULL},
};

static enum client_step client_step(const struct smtp_client *c)
{
    switch (c->state) {
    case CS_CONNECTING:
        return STEP_CONNECT;
    case CS_GREETING:
        return STEP_GREETING;
    case CS_EHLO:
    case CS_EHLO2:
        return STEP_EHLO;
    case CS_HELO:
        return STEP_HELO;
    case CS_STARTTLS:
        return STEP_STARTTLS;
    case CS_TLS_HANDSHAKE:
    case CS_TLS_WRAP:
        return STEP_TLS;
    case CS_AUTH:
    case CS_AUTH_LOGIN_USER:
    case CS_AUTH_LOGIN_PASS:
        return STEP_AUTH;
    case CS_TXN:
        if (c->reply_idx == 0)
            return STEP_MAIL;
        if (c->m && c->reply_idx <= c->m->nrcpts)
            return STEP_RCPT;
        return STEP_DATA;
    case CS_DATA_BODY:
        return STEP_BODY;
    case CS_DOT:
        return STEP_DOT;
    case CS_RSET:
        return STEP_RSET;
    default:
        return STEP_IDLE;
    }
}

/* "while receiving the initial server greeting" and friends, for lost connections. */
static const char *client_stage_text(const struct smtp_client *c)
{
    enum client_step st = client_step(c);
    if (c->o.lmtp && client_steps[st].lmtp_stage)
        return client_steps[st].lmtp_stage;
    return client_steps[st].stage;
}

/* "(in reply to X command)" for server refusals; NULL for the greeting. */
static const char *client_cmd_text(const struct smtp_client *c)
{
    enum client_step st = client_step(c);
    if (c->o.lmtp && client_steps[st].lmtp_command)
        return client_steps[st].lmtp_command;
    return client_steps[st].command;
}

/* "host X[ip] said: 550 5.1.1 text (in reply to RCPT TO command)" into out. */
static void client_said(const struct smtp_client *c, struct buf *out)
{
    buf_printf(out, "host %s said: ", c->hostip);
    smtp_response_format(&c->reply, out);
    const char *cmd = client_cmd_text(c);
    if (cmd)
        buf_printf(out, " (in reply to %s command)", cmd);
}

static void client_send(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_send(struct smtp_client *c, const char *fmt, ...)
{
    struct buf line = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&line, fmt, ap);
    va_end(ap);
    /*
     * One call, one command line: a CR or LF in a field would start another
     * command on the server (smuggling). smtp_client_send refuses such a
     * message before any command goes out; this is the last line of defence.
     */
    size_t cut = strcspn(buf_cstr(&line), "\r\n");
    if (cut < line.len) {
        log_error("%s: refusing to send a command line with CR or LF", c->label);
        line.len = cut;
    }
    if (log_debug_enabled())
        log_debug("%s: > %s", c->label,
                  str_prefix_ci(buf_cstr(&line), "AUTH") ? "AUTH (redacted)" : buf_cstr(&line));
    buf_puts(&line, "\r\n");
    bufferevent_write(c->bev, line.data, line.len);
    if (line.data)
        explicit_bzero(line.data, line.len);
    buf_free(&line);
}

/* ---- Session set-up ---- */

/* EHLO, or for LMTP LHLO (RFC 2033 4.1), which takes its place everywhere. */
static void client_hello(struct smtp_client *c, enum client_state st)
{
    client_send(c, "%s %s", c->o.lmtp ? "LHLO" : "EHLO", c->o.helo_name);
    client_state(c, st);
}

static void client_ready_fail(struct smtp_client *c, enum smtp_client_fail fail, int permanent,
                              const char *dsn, const char *why)
{
    smtp_client_ready_cb cb = c->ready_cb;
    c->ready_cb = NULL;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (cb)
        cb(c->ready_arg, c, 0, fail, permanent, dsn, why);
}

/* A server refusal during set-up: "host X said ..." with its dsn. */
static void client_ready_refused(struct smtp_client *c, const char *prefix)
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

static void client_ready_ok(struct smtp_client *c)
{
    client_state(c, CS_READY);
    smtp_client_ready_cb cb = c->ready_cb;
    c->ready_cb = NULL;
    if (cb)
        cb(c->ready_arg, c, 1, SMTP_FAIL_NONE, 0, "2.0.0", NULL);
}

static void client_start_tls(struct smtp_client *c, enum client_state st)
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
static int client_tls_done(struct smtp_client *c)
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
static void client_after_ehlo(struct smtp_client *c)
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

/* ---- Transactions ---- */

static void client_xtext(const char *s, struct buf *out)
{
    /* RFC 3461 4: xtext, "+" HEX for '+', '=', and octets outside 33..126. */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
            buf_printf(out, "+%02X", *p);
        else
            buf_putc(out, (char)*p);
    }
}

static void client_txn_finish(struct smtp_client *c, int conn_ok, const char *why)
{
    const struct smtp_msg *m = c->m;
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (!c->out[i].reply) {
            c->out[i].status = DELIVERY_TEMPFAIL;
            str_copy(c->out[i].dsn, sizeof c->out[i].dsn, "4.4.2");
            c->out[i].reply = xstrdup(why ? why : "no reply from the server");
        }
    }
    if (c->data_fd >= 0)
        close(c->data_fd);
    c->data_fd = -1;
    free(c->accepted);
    c->accepted = NULL;
    struct smtp_rcpt_out *out = c->out;
    smtp_client_sent_cb cb = c->sent_cb;
    void *arg = c->sent_arg;
    c->out = NULL;
    c->m = NULL;
    c->sent_cb = NULL;
    if (conn_ok)
        client_state(c, CS_READY);
    else
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    cb(arg, c, conn_ok, out);
}

static void client_rcpt_result(struct smtp_client *c, size_t i, int with_said)
{
    struct smtp_rcpt_out *o = &c->out[i];
    struct buf text = BUF_INIT;
    if (c->reply.code / 100 == 2) {
        o->status = DELIVERY_OK;
        smtp_response_format(&c->reply, &text);
    } else {
        o->status = c->reply.code >= 500 ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL;
        if (with_said)
            client_said(c, &text);
        else
            smtp_response_format(&c->reply, &text);
    }
    smtp_response_dsn(&c->reply, o->dsn);
    free(o->reply);
    o->reply = buf_steal(&text);
}

static void client_send_rcpt(struct smtp_client *c, size_t i)
{
    const struct smtp_msg_rcpt *r = &c->m->rcpts[i];
    struct buf cmd = BUF_INIT;
    buf_printf(&cmd, "RCPT TO:<%s>", r->address);
    if (c->ehlo.ext & SMTP_EHLO_DSN) {
        if (r->notify & DSN_NOTIFY_NEVER) {
            buf_puts(&cmd, " NOTIFY=NEVER");
        } else if (r->notify) {
            const char *sep = " NOTIFY=";
            if (r->notify & DSN_NOTIFY_SUCCESS)
                buf_printf(&cmd, "%sSUCCESS", sep), sep = ",";
            if (r->notify & DSN_NOTIFY_FAILURE)
                buf_printf(&cmd, "%sFAILURE", sep), sep = ",";
            if (r->notify & DSN_NOTIFY_DELAY)
                buf_printf(&cmd, "%sDELAY", sep);
        }
        if (r->orcpt && *r->orcpt) {
            const char *semi = strchr(r->orcpt, ';');
            if (semi) {
                buf_printf(&cmd, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
                client_xtext(semi + 1, &cmd);
            }
        }
    }
    client_send(c, "%s", buf_cstr(&cmd));
    buf_free(&cmd);
}

static void client_send_mail(struct smtp_client *c)
{
    const struct smtp_msg *m = c->m;
    struct buf cmd = BUF_INIT;
    buf_printf(&cmd, "MAIL FROM:<%s>", m->sender);
    if (c->ehlo.ext & SMTP_EHLO_SIZE)
        buf_printf(&cmd, " SIZE=%llu", m->size);
    if (m->body_8bit && (c->ehlo.ext & SMTP_EHLO_8BITMIME))
        buf_puts(&cmd, " BODY=8BITMIME");
    if (m->smtputf8 && (c->ehlo.ext & SMTP_EHLO_SMTPUTF8))
        buf_puts(&cmd, " SMTPUTF8");
    if (c->ehlo.ext & SMTP_EHLO_DSN) {
        if (m->ret == DSN_RET_FULL)
            buf_puts(&cmd, " RET=FULL");
        else if (m->ret == DSN_RET_HDRS)
            buf_puts(&cmd, " RET=HDRS");
        if (m->envid && *m->envid) {
            buf_puts(&cmd, " ENVID=");
            client_xtext(m->envid, &cmd);
        }
    }
    client_send(c, "%s", buf_cstr(&cmd));
    buf_free(&cmd);
}

/* Whether s (may be NULL) stays inside one command line: no CR or LF. */
static int client_field_ok(const char *s)
{
    return s == NULL || strcspn(s, "\r\n") == strlen(s);
}

/* The field of m that would break a command line, or NULL when none does. */
static const char *client_msg_unsafe(const struct smtp_msg *m, const char **dsn)
{
    *dsn = "5.1.7"; /* RFC 3463: bad sender's mailbox address syntax */
    if (!client_field_ok(m->sender))
        return "sender address";
    if (!client_field_ok(m->envid))
        return "ENVID";
    *dsn = "5.1.3"; /* bad destination mailbox address syntax */
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!client_field_ok(m->rcpts[i].address) || !client_field_ok(m->rcpts[i].orcpt))
            return "recipient address";
    return NULL;
}

/*
 * Appends queue file bytes as the wire wants them: a line that starts with
 * "." gets another one (RFC 5321 4.5.2), and every line ends with CRLF. The
 * queue holds CRLF only (the SMTP server refuses bare CR and LF, pickup
 * normalises), so a bare CR or LF here is damage: it goes out as CRLF, and
 * no end-of-data sequence a lenient receiver might accept passes through
 * us. CRLF, the usual case, costs no extra copy.
 */
static void client_data_chunk(struct smtp_client *c, struct evbuffer *out, const char *chunk,
                              size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = chunk[i];
        if (c->after_cr) {
            /* Only at i == 0: the previous chunk ended with a CR. */
            c->after_cr = 0;
            evbuffer_add(out, "\r\n", 2);
            c->at_bol = 1;
            start = ch == '\n' ? i + 1 : i;
            if (ch == '\n')
                continue;
        }
        if (ch == '\r') {
            if (i + 1 < n && chunk[i + 1] == '\n') {
                i++; /* CRLF, written in place */
                c->at_bol = 1;
                continue;
            }
            evbuffer_add(out, chunk + start, i - start);
            start = i + 1;
            if (i + 1 == n) {
                c->after_cr = 1; /* CRLF split across chunks, or a bare CR */
                continue;
            }
            evbuffer_add(out, "\r\n", 2);
            c->at_bol = 1;
            continue;
        }
        if (ch == '\n') {
            evbuffer_add(out, chunk + start, i - start);
            evbuffer_add(out, "\r\n", 2);
            start = i + 1;
            c->at_bol = 1;
            continue;
        }
        if (c->at_bol && ch == '.') {
            evbuffer_add(out, chunk + start, i - start);
            evbuffer_add(out, ".", 1);
            start = i;
        }
        c->at_bol = 0;
    }
    evbuffer_add(out, chunk + start, n - start);
}

/* Pushes message data while the output buffer is short; at the end the final dot. */
static void client_pump(struct smtp_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char chunk[CLIENT_CHUNK];
    while (c->state == CS_DATA_BODY && evbuffer_get_length(out) < CLIENT_OUT_HIGH) {
        ssize_t n = read(c->data_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            struct buf why = BUF_INIT;
            buf_printf(&why, "error reading the queue file: %s", strerror(errno));
            log_error("%s: %s", c->o.queue_id ? c->o.queue_id : "-", buf_cstr(&why));
            /* Never end DATA with a truncated message: drop the connection. */
            client_txn_finish(c, 0, buf_cstr(&why));
            buf_free(&why);
            return;
        }
        if (n == 0) {
            /* RFC 5321 4.1.1.4: the data ends with CRLF . CRLF. */
            if (c->after_cr) {
                c->after_cr = 0;
                c->at_bol = 0; /* the CRLF below ends that line */
            }
            if (!c->at_bol)
                evbuffer_add(out, "\r\n", 2);
            evbuffer_add(out, ".\r\n", 3);
            close(c->data_fd);
            c->data_fd = -1;
            client_state(c, CS_DOT);
            return;
        }
        client_data_chunk(c, out, chunk, (size_t)n);
    }
}

static void client_kick_inner(struct smtp_client *c)
{
    if (c->state == CS_LOCAL) {
        client_txn_finish(c, 1, NULL);
    } else if (c->state == CS_CONNECTING && c->connect_errno) {
        struct buf why = BUF_INIT;
        buf_printf(&why, "connect to %s: %s", c->label, strerror(c->connect_errno));
        log_info("%s%s%s", c->o.queue_id ? c->o.queue_id : "", c->o.queue_id ? ": " : "",
                 buf_cstr(&why));
        client_ready_fail(c, SMTP_FAIL_CONNECT, 0, "4.4.1", buf_cstr(&why));
        buf_free(&why);
    }
}

static int client_needs_utf8(const struct smtp_msg *m)
{
    for (const unsigned char *p = (const unsigned char *)m->sender; *p; p++)
        if (*p >= 0x80)
            return 1;
    for (size_t i = 0; i < m->nrcpts; i++)
        for (const unsigned char *p = (const unsigned char *)m->rcpts[i].address; *p; p++)
            if (*p >= 0x80)
                return 1;
    return 0;
}

static void client_local_fail(struct smtp_client *c, enum delivery_status st, const char *dsn,
                              const char *why)
{
    for (size_t i = 0; i < c->m->nrcpts; i++) {
        c->out[i].status = st;
        str_copy(c->out[i].dsn, sizeof c->out[i].dsn, dsn);
        c->out[i].reply = xstrdup(why);
    }
    c->state = CS_LOCAL;
    struct timeval zero = {0, 0};
    event_add(c->kick, &zero);
}

void smtp_client_send(struct smtp_client *c, const struct smtp_msg *m, smtp_client_sent_cb cb,
                      void *arg)
{
    c->m = m;
    c->sent_cb = cb;
    c->sent_arg = arg;
    c->out = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *c->out);
    c->accepted = xcalloc(m->nrcpts ? m->nrcpts : 1, 1);
    c->naccepted = 0;
    c->reply_idx = 0;
    c->mail_ok = 0;
    c->data_fd = -1;
    c->at_bol = 1;
    c->after_cr = 0;
    c->dot_for_nothing = 0;
    c->dot_next = 0;
    c->pipelining = (c->ehlo.ext & SMTP_EHLO_PIPELINING) != 0;
    struct buf why = BUF_INIT;
    const char *unsafe_dsn, *unsafe = client_msg_unsafe(m, &unsafe_dsn);
    if (unsafe != NULL) {
        buf_printf(&why, "refusing to send: the %s contains CR or LF", unsafe);
        log_error("%s: %s", c->label, buf_cstr(&why));
        client_local_fail(c, DELIVERY_PERMFAIL, unsafe_dsn, buf_cstr(&why));
    } else if (m->smtputf8 && !(c->ehlo.ext & SMTP_EHLO_SMTPUTF8) && client_needs_utf8(m)) {
        /* RFC 6531 3.2: a message that needs SMTPUTF8 cannot go to a server without it. */
        buf_printf(&why, "SMTPUTF8 is required, but was not offered by host %s", c->hostip);
        client_local_fail(c, DELIVERY_PERMFAIL, "5.6.7", buf_cstr(&why));
    } else if ((c->ehlo.ext & SMTP_EHLO_SIZE) && c->ehlo.size > 0 && m->size > c->ehlo.size) {
        /* RFC 1870 6: do not send what the server announced it will refuse. */
        buf_printf(&why, "message size %llu exceeds size limit %llu of server %s", m->size,
                   c->ehlo.size, c->hostip);
        client_local_fail(c, DELIVERY_PERMFAIL, "5.3.4", buf_cstr(&why));
    } else if ((c->data_fd = open(m->data_path, O_RDONLY | O_CLOEXEC)) < 0) {
        buf_printf(&why, "cannot open the queue file %s: %s", m->data_path, strerror(errno));
        log_error("%s", buf_cstr(&why));
        client_local_fail(c, DELIVERY_TEMPFAIL, "4.3.0", buf_cstr(&why));
    } else {
        client_state(c, CS_TXN);
        client_send_mail(c);
        if (c->pipelining) {
            /* RFC 2920 3.1: MAIL, RCPT... and DATA may go in one group, DATA last. */
            for (size_t i = 0; i < m->nrcpts; i++)
                client_send_rcpt(c, i);
            client_send(c, "DATA");
        }
    }
    buf_free(&why);
}

/* A complete reply while in CS_TXN. */
static void client_txn_reply(struct smtp_client *c)
{
    const struct smtp_msg *m = c->m;
    size_t n = m->nrcpts;
    size_t idx = c->reply_idx;
    if (idx == 0) {
        c->mail_ok = c->reply.code / 100 == 2;
        if (!c->mail_ok) {
            for (size_t i = 0; i < n; i++)
                client_rcpt_result(c, i, 1);
        }
        c->reply_idx++;
        if (!c->pipelining) {
            if (!c->mail_ok) {
                client_txn_finish(c, 1, NULL);
                return;
            }
            client_send_rcpt(c, 0);
        }
        return;
    }
    if (idx <= n) {
        size_t i = idx - 1;
        if (c->mail_ok) {
            if (c->reply.code / 100 == 2) {
                c->accepted[i] = 1;
                c->naccepted++;
            } else {
                client_rcpt_result(c, i, 1);
            }
        }
        c->reply_idx++;
        if (!c->pipelining) {
            if (i + 1 < n) {
                client_send_rcpt(c, i + 1);
            } else if (c->naccepted == 0) {
                client_txn_finish(c, 1, NULL);
            } else {
                client_send(c, "DATA");
            }
        }
        return;
    }
    /* The DATA reply. */
    c->reply_idx++;
    if (c->reply.code == 354) {
        if (c->naccepted == 0) {
            /* RFC 2920 3.1: a server that says 354 with no recipient gets an empty message. */
            c->dot_for_nothing = 1;
            client_send(c, ".");
            client_state(c, CS_DOT);
            return;
        }
        client_state(c, CS_DATA_BODY);
        client_pump(c);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (c->accepted[i])
            client_rcpt_result(c, i, 1);
    client_txn_finish(c, 1, NULL);
}

/* The next recipient at or after i that RCPT accepted, or nrcpts. */
static size_t client_next_accepted(const struct smtp_client *c, size_t i)
{
    while (i < c->m->nrcpts && !c->accepted[i])
        i++;
    return i;
}

static void client_dot_reply(struct smtp_client *c)
{
    if (c->o.lmtp && !c->dot_for_nothing) {
        /*
         * RFC 2033 4.2: one reply per recipient accepted at RCPT time, in
         * that order. Each settles its recipient at once, so a connection
         * lost before the last leaves only the unanswered ones open.
         */
        size_t i = client_next_accepted(c, c->dot_next);
        if (i < c->m->nrcpts)
            client_rcpt_result(c, i, c->reply.code / 100 != 2);
        c->dot_next = client_next_accepted(c, i + 1);
        if (c->dot_next < c->m->nrcpts)
            return; /* more replies to come, each within data_done_timeout */
        client_txn_finish(c, 1, NULL);
        return;
    }
    if (!c->dot_for_nothing) {
        for (size_t i = 0; i < c->m->nrcpts; i++)
            if (c->accepted[i])
                client_rcpt_result(c, i, c->reply.code / 100 != 2);
    }
    client_txn_finish(c, 1, NULL);
}

/* ---- Reading ---- */

/* Dispatches one complete reply by state. */
static void client_reply(struct smtp_client *c)
{
    int code = c->reply.code;
    switch (c->state) {
    case CS_GREETING:
        if (code != 220) {
            client_ready_refused(c, NULL);
            return;
        }
        client_hello(c, CS_EHLO);
        return;
    case CS_EHLO:
    case CS_EHLO2:
        if (code / 100 == 2) {
            smtp_ehlo_parse(&c->reply, &c->ehlo);
            client_after_ehlo(c);
        } else if (code >= 500 && c->state == CS_EHLO && !c->o.lmtp) {
            /* RFC 5321 3.2: an old server that does not know EHLO gets HELO. */
            client_send(c, "HELO %s", c->o.helo_name);
            client_state(c, CS_HELO);
        } else {
            client_ready_refused(c, NULL);
        }
        return;
    case CS_HELO:
        if (code / 100 != 2) {
            client_ready_refused(c, NULL);
            return;
        }
        memset(&c->ehlo, 0, sizeof c->ehlo);
        client_after_ehlo(c);
        return;
    case CS_STARTTLS:
        if (code == 220) {
            /* RFC 3207 5: anything already buffered came before TLS: refuse it. */
            if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
                struct buf why = BUF_INIT;
                buf_printf(&why, "host %s sent data after its STARTTLS reply", c->hostip);
                client_ready_fail(c, SMTP_FAIL_PROTOCOL, 0, "4.7.5", buf_cstr(&why));
                buf_free(&why);
                return;
            }
            client_start_tls(c, CS_TLS_HANDSHAKE);
            return;
        }
        if (c->o.level == TLS_LEVEL_MAY) {
            /* Opportunistic: a refused STARTTLS leaves the session as it was. */
            c->o.no_starttls = 1;
            client_after_ehlo(c);
            return;
        }
        client_ready_refused(c, NULL);
        return;
    case CS_AUTH_LOGIN_USER:
    case CS_AUTH_LOGIN_PASS:
        if (code == 334) {
            struct buf enc = BUF_INIT;
            const char *v = c->state == CS_AUTH_LOGIN_USER ? c->o.sasl_user : c->o.sasl_pass;
            base64_encode(v ? v : "", v ? strlen(v) : 0, &enc);
            client_send(c, "%s", buf_cstr(&enc));
            if (enc.data)
                explicit_bzero(enc.data, enc.len);
            buf_free(&enc);
            client_state(c, c->state == CS_AUTH_LOGIN_USER ? CS_AUTH_LOGIN_PASS : CS_AUTH);
            return;
        }
        /* A refusal: handled as for the last step. */
        __attribute__((fallthrough));
    case CS_AUTH:
        if (code == 235) {
            log_info("%s%ssuccessful SASL authentication to %s as %s",
                     c->o.queue_id ? c->o.queue_id : "", c->o.queue_id ? ": " : "", c->hostip,
                     c->o.sasl_user);
            client_ready_ok(c);
            return;
        }
        {
            struct buf why = BUF_INIT;
            buf_printf(&why, "SASL authentication failed; server %s said: ", c->hostip);
            smtp_response_format(&c->reply, &why);
            log_warning("%s%s%s", c->o.queue_id ? c->o.queue_id : "", c->o.queue_id ? ": " : "",
                        buf_cstr(&why));
            char dsn[16];
            /* A wrong password may be fixed: never a bounce (permanent 0). */
            client_ready_fail(c, SMTP_FAIL_REPLY, 0,
                              c->reply.enh[0] ? smtp_response_dsn(&c->reply, dsn) : "4.7.0",
                              buf_cstr(&why));
            buf_free(&why);
        }
        return;
    case CS_TXN:
        client_txn_reply(c);
        return;
    case CS_DOT:
        client_dot_reply(c);
        return;
    case CS_RSET: {
        smtp_client_reset_cb cb = c->reset_cb;
        c->reset_cb = NULL;
        if (code / 100 == 2) {
            client_state(c, CS_READY);
            cb(c->reset_arg, c, 1);
        } else {
            bufferevent_disable(c->bev, EV_READ | EV_WRITE);
            cb(c->reset_arg, c, 0);
        }
        return;
    }
    case CS_QUIT:
        smtp_client_free(c);
        return;
    default:
        return;
    }
}

/* The connection is not usable any more: tell whoever waits, by state. */
static void client_broken(struct smtp_client *c, enum smtp_client_fail fail, const char *why)
{
    switch (c->state) {
    case CS_CONNECTING:
    case CS_TLS_WRAP:
    case CS_GREETING:
    case CS_EHLO:
    case CS_HELO:
    case CS_STARTTLS:
    case CS_TLS_HANDSHAKE:
    case CS_EHLO2:
    case CS_AUTH:
    case CS_AUTH_LOGIN_USER:
    case CS_AUTH_LOGIN_PASS:
        client_ready_fail(c, fail, 0,
                          fail == SMTP_FAIL_TLS       ? "4.7.5"
                          : c->state == CS_CONNECTING ? "4.4.1"
                                                      : "4.4.2",
                          why);
        return;
    case CS_TXN:
    case CS_DATA_BODY:
    case CS_DOT:
        client_txn_finish(c, 0, why);
        return;
    case CS_RSET: {
        smtp_client_reset_cb cb = c->reset_cb;
        c->reset_cb = NULL;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        cb(c->reset_arg, c, 0);
        return;
    }
    case CS_READY: {
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        if (c->idle_cb)
            c->idle_cb(c->idle_arg, c);
        return;
    }
    case CS_QUIT:
        smtp_client_free(c);
        return;
    default:
        return;
    }
}

static void client_read_inner(struct smtp_client *c, struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (c->state == CS_DATA_BODY || c->state == CS_LOCAL || c->state == CS_TLS_HANDSHAKE ||
            c->state == CS_TLS_WRAP || c->state == CS_CONNECTING)
            return; /* replies are read when we are ready for them */
        if (c->state == CS_READY) {
            if (evbuffer_get_length(in) > 0) {
                /* Unasked-for data on an idle connection (often a 421 before close). */
                evbuffer_drain(in, evbuffer_get_length(in));
                client_broken(c, SMTP_FAIL_CONNECT, "server spoke while idle");
            }
            return;
        }
        size_t len = 0;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (evbuffer_get_length(in) > SMTP_RESPONSE_LINE_MAX + 2) {
                struct buf why = BUF_INIT;
                buf_printf(&why, "host %s sent a reply line longer than %d octets", c->hostip,
                           SMTP_RESPONSE_LINE_MAX);
                client_broken(c, SMTP_FAIL_PROTOCOL, buf_cstr(&why));
                buf_free(&why);
            }
            return;
        }
        if (log_debug_enabled())
            log_debug("%s: < %.*s", c->label, (int)(len > 200 ? 200 : len), line);
        struct buf err = BUF_INIT;
        enum smtp_response_feed st = smtp_response_feed(&c->reply, line, len, &err);
        free(line);
        if (st == SMTP_RESPONSE_ERROR) {
            struct buf why = BUF_INIT;
            buf_printf(&why, "host %s: %s %s", c->hostip, buf_cstr(&err), client_stage_text(c));
            client_broken(c, SMTP_FAIL_PROTOCOL, buf_cstr(&why));
            buf_free(&why);
            buf_free(&err);
            return;
        }
        buf_free(&err);
        if (st == SMTP_RESPONSE_DONE) {
            client_reply(c);
            /* A callback may have freed c (deferred until we return: see depth). */
            if (c->dead)
                return;
        }
    }
}

static void client_write_inner(struct smtp_client *c, struct bufferevent *bev)
{
    if (c->state == CS_DATA_BODY)
        client_pump(c);
}

static void client_event_inner(struct smtp_client *c, struct bufferevent *bev, short what)
{
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == CS_CONNECTING) {
            if (c->o.wrappermode && c->o.tls) {
                client_start_tls(c, CS_TLS_WRAP);
            } else {
                client_state(c, CS_GREETING);
            }
            return;
        }
        if (c->state == CS_TLS_HANDSHAKE || c->state == CS_TLS_WRAP) {
            if (client_tls_done(c) < 0)
                return;
            /* Replies may already wait (wrapper mode greeting). */
            if (c->state == CS_GREETING && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
                client_read_inner(c, c->bev);
            return;
        }
        return;
    }
    struct buf why = BUF_INIT;
    enum smtp_client_fail fail = SMTP_FAIL_CONNECT;
    if (c->state == CS_CONNECTING) {
        int e = EVUTIL_SOCKET_ERROR();
        if (what & BEV_EVENT_TIMEOUT)
            buf_printf(&why, "connect to %s: Connection timed out", c->label);
        else
            buf_printf(&why, "connect to %s: %s", c->label,
                       e ? evutil_socket_error_to_string(e) : "Connection refused");
    } else if ((c->state == CS_TLS_HANDSHAKE || c->state == CS_TLS_WRAP) &&
               !(what & BEV_EVENT_TIMEOUT)) {
        fail = SMTP_FAIL_TLS;
        buf_printf(&why, "TLS handshake failed with host %s", c->hostip);
        unsigned long e;
        const char *sep = ": ";
        while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
            char tmp[256];
            ERR_error_string_n(e, tmp, sizeof tmp);
            buf_printf(&why, "%s%s", sep, tmp);
            sep = "; ";
        }
    } else if (what & BEV_EVENT_TIMEOUT) {
        buf_printf(&why, "conversation with %s timed out %s", c->hostip, client_stage_text(c));
    } else {
        buf_printf(&why, "lost connection with %s %s", c->hostip, client_stage_text(c));
    }
    if (c->state != CS_READY && c->state != CS_QUIT)
        log_info("%s%s%s", c->o.queue_id ? c->o.queue_id : "", c->o.queue_id ? ": " : "",
                 buf_cstr(&why));
    client_broken(c, fail, buf_cstr(&why));
    buf_free(&why);
}

/*
 * The entry points from libevent: count the handlers running so that a
 * callback that frees the client only marks it, and the last handler to
 * return frees it for real.
 */
static void client_leave(struct smtp_client *c)
{
    if (--c->depth == 0 && c->dead) {
        c->dead = 0;
        smtp_client_free(c);
    }
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    client_read_inner(c, bev);
    client_leave(c);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    if (!c->dead)
        client_write_inner(c, bev);
    client_leave(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    if (!c->dead)
        client_event_inner(c, bev, what);
    client_leave(c);
}

static void client_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    if (!c->dead)
        client_kick_inner(c);
    client_leave(c);
}

/* ---- Life cycle ---- */

struct smtp_client *smtp_client_connect(const struct smtp_client_opts *o, const struct sockaddr *sa,
                                        socklen_t salen, const char *label, smtp_client_ready_cb cb,
                                        void *arg)
{
    struct smtp_client *c = xcalloc(1, sizeof *c);
    c->o = *o;
    /* DANE with no usable TLSA record to match is opportunistic TLS (RFC 7672 2.2). */
    if (c->o.level == TLS_LEVEL_DANE && (!c->o.dane || c->o.dane->n == 0)) {
        c->o.level = TLS_LEVEL_MAY;
        c->o.dane = NULL;
    }
    c->base = o->base;
    c->label = xstrdup(label);
    const char *rb = strrchr(label, ']');
    c->hostip = rb ? xstrndup(label, (size_t)(rb - label + 1)) : xstrdup(label);
    c->ready_cb = cb;
    c->ready_arg = arg;
    c->data_fd = -1;
    c->kick = event_new(c->base, -1, 0, client_kick_cb, c);
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_CHUNK, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    client_state(c, CS_CONNECTING);
    /*
     * libevent reports an immediate connect failure through the event
     * callback before returning; keep callbacks off until connect returns so
     * that cb never runs before we do, and report it from the loop instead.
     */
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    errno = 0;
    int r = bufferevent_socket_connect(c->bev, sa, (int)salen);
    c->connect_errno = r < 0 ? (errno ? errno : ECONNREFUSED) : 0;
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    if (r < 0) {
        struct timeval zero = {0, 0};
        event_add(c->kick, &zero);
    }
    return c;
}

void smtp_client_reset(struct smtp_client *c, smtp_client_reset_cb cb, void *arg)
{
    c->reset_cb = cb;
    c->reset_arg = arg;
    c->idle_cb = NULL;
    client_send(c, "RSET");
    client_state(c, CS_RSET);
}

void smtp_client_watch_idle(struct smtp_client *c, void (*closed)(void *arg, struct smtp_client *c),
                            void *arg)
{
    c->idle_cb = closed;
    c->idle_arg = arg;
}

void smtp_client_quit(struct smtp_client *c)
{
    if (!c)
        return;
    if (c->state != CS_READY) {
        smtp_client_free(c);
        return;
    }
    c->idle_cb = NULL;
    client_send(c, "QUIT");
    client_state(c, CS_QUIT);
}

void smtp_client_free(struct smtp_client *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        c->dead = 1;
        c->ready_cb = NULL;
        c->idle_cb = NULL;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
        return;
    }
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->kick)
        event_free(c->kick);
    if (c->data_fd >= 0)
        close(c->data_fd);
    if (c->out) {
        for (size_t i = 0; c->m && i < c->m->nrcpts; i++)
            free(c->out[i].reply);
        free(c->out);
    }
    free(c->accepted);
    smtp_response_clear(&c->reply);
    free(c->label);
    free(c->trust_why);
    free(c->hostip);
    free(c);
}
