/*
 * SMTP client transactions: MAIL FROM with its parameters (SIZE, BODY,
 * SMTPUTF8, RET, ENVID), RCPT TO with NOTIFY and ORCPT (RFC 3461), DATA or
 * the pipelined batch (RFC 2920), the message body dot-stuffed as it
 * streams (RFC 5321 4.5.2), and the replies to each.
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

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/envelope.h"

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

void client_txn_finish(struct smtp_client *c, int conn_ok, const char *why)
{
    const struct smtp_msg *m = c->m;
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (!c->out[i].reply) {
            c->out[i].status = DELIVERY_TEMPFAIL;
            str_copy(c->out[i].dsn, sizeof c->out[i].dsn, "4.4.2");
            c->out[i].reply = xstrdup(why ? why : "no reply from the server");
        }
    }
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
        buf_printf(&cmd, " SIZE=%llu", (unsigned long long)m->data.length);
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
 * How many bytes from chunk[0] on are whole lines that need nothing done:
 * each ends with CRLF, holds no other CR or LF, and does not start with a
 * dot. The usual message is all of that, and is found so with memchr
 * rather than byte by byte (a 4 KB message cost the delivery process 4.6%
 * of its time in the loop below). Only at the beginning of a line.
 */
static size_t client_plain_lines(const char *chunk, size_t n)
{
    size_t i = 0;
    while (i < n && chunk[i] != '.') {
        const char *lf = memchr(chunk + i, '\n', n - i);
        if (lf == NULL)
            break;
        size_t end = (size_t)(lf - chunk); /* the LF */
        if (end == i || chunk[end - 1] != '\r' || memchr(chunk + i, '\r', end - 1 - i) != NULL)
            break;
        i = end + 1;
    }
    return i;
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
        /* Lines that need nothing stay in the span that goes out as it is. */
        if (c->at_bol && !c->after_cr) {
            i += client_plain_lines(chunk + i, n - i);
            if (i == n)
                break;
        }
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
void client_pump(struct smtp_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char chunk[CLIENT_CHUNK];
    while (c->state == CS_DATA_BODY && evbuffer_get_length(out) < CLIENT_OUT_HIGH) {
        /* The message's range only: the file may hold other messages after it. */
        ssize_t n = spool_data_pread(&c->m->data, c->data_pos, chunk, sizeof chunk);
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
            client_state(c, CS_DOT);
            return;
        }
        c->data_pos += n;
        client_data_chunk(c, out, chunk, (size_t)n);
    }
}

void client_kick_inner(struct smtp_client *c)
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
    c->data_pos = 0;
    c->at_bol = 1;
    c->after_cr = 0;
    c->dot_for_nothing = 0;
    c->dot_next = 0;
    c->pipelining = (c->ehlo.ext & SMTP_EHLO_PIPELINING) != 0;
    int rset_first = c->rset_first;
    c->rset_first = 0;
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
    } else if ((c->ehlo.ext & SMTP_EHLO_SIZE) && c->ehlo.size > 0 &&
               (unsigned long long)m->data.length > c->ehlo.size) {
        /* RFC 1870 6: do not send what the server announced it will refuse. */
        buf_printf(&why, "message size %llu exceeds size limit %llu of server %s",
                   (unsigned long long)m->data.length, c->ehlo.size, c->hostip);
        client_local_fail(c, DELIVERY_PERMFAIL, "5.3.4", buf_cstr(&why));
    } else {
        client_state(c, CS_TXN);
        if (rset_first) {
            c->rset_first = 1;
            client_send(c, "RSET");
        }
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

int smtp_client_send_reused(struct smtp_client *c, const struct smtp_msg *m, smtp_client_sent_cb cb,
                            void *arg)
{
    if (!(c->ehlo.ext & SMTP_EHLO_PIPELINING))
        return 0;
    c->idle_cb = NULL;
    c->reuse_failed = 0;
    c->rset_first = 1;
    smtp_client_send(c, m, cb, arg);
    return 1;
}

int smtp_client_reuse_failed(const struct smtp_client *c)
{
    return c->reuse_failed;
}

/* A complete reply while in CS_TXN. */
void client_txn_reply(struct smtp_client *c)
{
    if (c->rset_first) {
        c->rset_first = 0;
        if (c->reply.code / 100 != 2) {
            /* Not the idle connection it seemed: whatever follows is not heard. */
            c->reuse_failed = 1;
            client_txn_finish(c, 0, "RSET not accepted on a cached connection");
        }
        return;
    }
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

void client_dot_reply(struct smtp_client *c)
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
