/*
 * DSN construction (RFC 3464, RFC 3461, RFC 6522 multipart/report) for
 * local and remote failures alike; see bounce.h. Success DSNs
 * (NOTIFY=SUCCESS) are not generated in this version: RFC 3461 5.2.2 makes
 * them optional, and the log records every delivery.
 */
#include "queue/bounce.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"

#define BOUNCE_ORIG_MAX (10 * 1024 * 1024)

int bounce_wanted(const struct envelope *env, const struct envelope_rcpt *r, int success)
{
    if (env->is_bounce || env->sender == NULL || env->sender[0] == '\0')
        return 0;
    unsigned n = r->notify;
    if (n & DSN_NOTIFY_NEVER)
        return 0;
    if (success)
        return 0; /* optional (RFC 3461 5.2.2); not generated */
    return n == 0 || (n & DSN_NOTIFY_FAILURE);
}

static void bounce_date(time_t t, struct buf *out)
{
    struct tm tm;
    char s[64];
    localtime_r(&t, &tm);
    strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S %z", &tm);
    buf_puts(out, s);
}

/* One header field value on one line: CR, LF and other controls become spaces. */
static void bounce_put_clean(struct buf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        buf_putc(out, (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p);
}

static int bounce_is_8bit(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if (*p >= 0x80)
            return 1;
    return 0;
}

void bounce_build(const struct envelope *env, const char *msg, size_t len, const size_t *rcpts,
                  size_t nrcpts, const char *hostname, time_t now, struct buf *out)
{
    /*
     * RFC 6533: when an address is not ASCII (SMTPUTF8 mail), the report is
     * message/global-delivery-status with utf-8 address types, and the
     * returned content message/global or message/global-headers.
     */
    int intl = bounce_is_8bit(env->sender);
    for (size_t i = 0; i < nrcpts; i++)
        intl |= bounce_is_8bit(env->rcpts[rcpts[i]].address);
    struct buf boundary = BUF_INIT;
    buf_printf(&boundary, "%s.%lld/%s", env->queue_id, (long long)now, hostname);
    buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", hostname);
    buf_puts(out, "To: <");
    bounce_put_clean(out, env->sender);
    buf_puts(out, ">\r\nSubject: Undelivered Mail Returned to Sender\r\nDate: ");
    bounce_date(now, out);
    buf_printf(out, "\r\nMessage-ID: <%s.%lld.bounce@%s>\r\n", env->queue_id, (long long)now,
               hostname);
    /* RFC 3834 5: automatic responses are marked so nobody replies to them. */
    buf_puts(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    buf_printf(out,
               "Content-Type: multipart/report; report-type=delivery-status;\r\n"
               "\tboundary=\"%s\"\r\n\r\n",
               buf_cstr(&boundary));
    buf_puts(out, "This is a MIME-encapsulated message.\r\n\r\n");

    /* The human part. */
    buf_printf(out,
               "--%s\r\nContent-Description: Notification\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n",
               buf_cstr(&boundary));
    buf_printf(out,
               "This is the mail system at host %s.\r\n\r\n"
               "I'm sorry to have to inform you that your message could not\r\n"
               "be delivered to one or more recipients. It's attached below.\r\n\r\n",
               hostname);
    for (size_t i = 0; i < nrcpts; i++) {
        const struct envelope_rcpt *r = &env->rcpts[rcpts[i]];
        buf_puts(out, "<");
        bounce_put_clean(out, r->address);
        buf_puts(out, ">: ");
        bounce_put_clean(out, r->last_error ? r->last_error : "delivery failed");
        buf_puts(out, "\r\n");
    }
    buf_puts(out, "\r\n");

    /* RFC 3464 2.2: per-message fields. */
    buf_printf(out,
               "--%s\r\nContent-Description: Delivery report\r\n"
               "Content-Type: %s\r\n\r\n",
               buf_cstr(&boundary),
               intl ? "message/global-delivery-status" : "message/delivery-status");
    buf_printf(out, "Reporting-MTA: dns; %s\r\nX-Hongyan-Queue-ID: %s\r\n", hostname,
               env->queue_id);
    if (env->envid) {
        buf_puts(out, "Original-Envelope-Id: ");
        bounce_put_clean(out, env->envid);
        buf_puts(out, "\r\n");
    }
    if (env->sender && env->sender[0]) {
        buf_puts(out, "X-Hongyan-Sender: rfc822; ");
        bounce_put_clean(out, env->sender);
        buf_puts(out, "\r\n");
    }
    buf_puts(out, "Arrival-Date: ");
    bounce_date(env->arrival, out);
    buf_puts(out, "\r\n");
    /* RFC 3464 2.3: per-recipient fields, each block preceded by a blank line. */
    for (size_t i = 0; i < nrcpts; i++) {
        const struct envelope_rcpt *r = &env->rcpts[rcpts[i]];
        int ok = r->state == RCPT_DELIVERED;
        buf_printf(out, "\r\nFinal-Recipient: %s; ",
                   bounce_is_8bit(r->address) ? "utf-8" : "rfc822");
        bounce_put_clean(out, r->address);
        buf_puts(out, "\r\n");
        if (r->orcpt && strchr(r->orcpt, ';')) {
            buf_puts(out, "Original-Recipient: ");
            bounce_put_clean(out, r->orcpt);
            buf_puts(out, "\r\n");
        }
        buf_printf(out, "Action: %s\r\nStatus: %s\r\n", ok ? "delivered" : "failed",
                   r->dsn_status ? r->dsn_status : (ok ? "2.0.0" : "5.0.0"));
        if (r->last_error) {
            /* A remote reply keeps its SMTP code; a local reason is x-unix, as Postfix. */
            const char *e = r->last_error;
            int smtp = strlen(e) >= 4 && e[0] >= '2' && e[0] <= '5' && e[1] >= '0' && e[1] <= '9' &&
                       e[2] >= '0' && e[2] <= '9' && (e[3] == ' ' || e[3] == '-');
            buf_printf(out, "Diagnostic-Code: %s; ", smtp ? "smtp" : "x-unix");
            bounce_put_clean(out, e);
            buf_puts(out, "\r\n");
        }
    }
    buf_puts(out, "\r\n");

    /* The original: headers only unless RET=FULL (RFC 3461 4.3). */
    size_t hlen = len;
    const char *hend = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(msg + i, "\r\n\r\n", 4) == 0) {
            hend = msg + i + 2;
            break;
        }
    }
    if (hend)
        hlen = (size_t)(hend - msg);
    int full = env->ret == DSN_RET_FULL;
    buf_printf(out, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n",
               buf_cstr(&boundary), full ? "Undelivered Message" : "Undelivered Message Headers",
               full ? (intl ? "message/global" : "message/rfc822")
                    : (intl ? "message/global-headers" : "text/rfc822-headers"));
    size_t take = full ? len : hlen;
    buf_append(out, msg, take);
    if (take >= 2 && memcmp(msg + take - 2, "\r\n", 2) != 0)
        buf_puts(out, "\r\n");
    buf_printf(out, "\r\n--%s--\r\n", buf_cstr(&boundary));
    buf_free(&boundary);
}

int bounce_queue(struct spool *s, const struct envelope *env, const char *data_path,
                 const size_t *rcpts, size_t nrcpts, const char *hostname,
                 char id_out[QUEUE_ID_MAX], struct buf *err)
{
    struct buf orig = BUF_INIT, text = BUF_INIT;
    if (read_file(data_path, &orig, BOUNCE_ORIG_MAX) < 0) {
        if (errno != EFBIG) {
            buf_printf(err, "cannot read %s: %s", data_path, strerror(errno));
            buf_free(&orig);
            return -1;
        }
        orig.len = 0; /* too large to quote in full: fall back to what we can say */
    }
    struct envelope copy = *env;
    if (orig.len >= BOUNCE_ORIG_MAX / 2)
        copy.ret = DSN_RET_HDRS;
    bounce_build(&copy, orig.data ? orig.data : "", orig.len, rcpts, nrcpts, hostname, time(NULL),
                 &text);
    buf_free(&orig);
    struct spool_msg *m = spool_msg_new(s, err);
    if (m == NULL) {
        buf_free(&text);
        return -1;
    }
    struct envelope *b = spool_msg_envelope(m);
    free(b->sender);
    b->sender = xstrdup("");
    b->is_bounce = 1;
    b->smtputf8 = env->smtputf8;
    struct envelope_rcpt *r = envelope_add_rcpt(b, env->sender);
    r->notify = DSN_NOTIFY_NEVER;
    str_copy(id_out, QUEUE_ID_MAX, spool_msg_id(m));
    if (spool_msg_write(m, text.data, text.len) < 0) {
        buf_printf(err, "cannot write bounce: %s", strerror(errno));
        spool_msg_abort(m);
        buf_free(&text);
        return -1;
    }
    buf_free(&text);
    return spool_msg_commit_sync(m, err);
}
