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
#include "lib/util.h"
#include "lib/xalloc.h"

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
void client_state(struct smtp_client *c, enum client_state st)
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
        if (c->rset_first)
            return STEP_RSET;
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
void client_said(const struct smtp_client *c, struct buf *out)
{
    buf_printf(out, "host %s said: ", c->hostip);
    smtp_response_format(&c->reply, out);
    const char *cmd = client_cmd_text(c);
    if (cmd)
        buf_printf(out, " (in reply to %s command)", cmd);
}

void client_send(struct smtp_client *c, const char *fmt, ...)
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
        c->reuse_failed = c->rset_first; /* before RSET's reply: it died while idle */
        c->rset_first = 0;
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

void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    client_read_inner(c, bev);
    client_leave(c);
}

void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    c->depth++;
    if (!c->dead)
        client_write_inner(c, bev);
    client_leave(c);
}

void client_event_cb(struct bufferevent *bev, short what, void *arg)
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
