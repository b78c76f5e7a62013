/*
 * DSN construction (RFC 3464, RFC 3461, RFC 6522 multipart/report) for
 * local and remote failures alike, and delay notices (delay_warning_time,
 * RFC 3464 2.3.3 "delayed"); see bounce.h. Success DSNs
 * (NOTIFY=SUCCESS) are not generated in this version: RFC 3461 5.2.2 makes
 * them optional, and the log records every delivery.
 */
#include "queue/bounce.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtp/address.h"

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

int bounce_wanted_delay(const struct envelope *env, const struct envelope_rcpt *r)
{
    if (env->is_bounce || env->sender == NULL || env->sender[0] == '\0')
        return 0;
    unsigned n = r->notify;
    if (n & DSN_NOTIFY_NEVER)
        return 0;
    return n == 0 || (n & DSN_NOTIFY_DELAY);
}

static void bounce_date(time_t t, struct buf *out)
{
    struct tm tm;
    char s[64];
    localtime_r(&t, &tm);
    strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S %z", &tm);
    buf_puts(out, s);
}

/*
 * One header field value on one line: CR, LF and other controls become
 * spaces, and bytes that are not UTF-8 text (a remote server's reply may
 * have any) '?'.
 */
static void bounce_put_clean(struct buf *out, const char *s)
{
    char *text = xstrdup(s ? s : "");
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    buf_puts(out, smtp_printable(text, '?'));
    free(text);
}

static int bounce_is_8bit(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if (*p >= 0x80)
            return 1;
    return 0;
}

/* A delay's Status: the last error's when it is 4.x.x, else 4.0.0 (RFC 3463 2). */
static const char *bounce_delay_status(const struct envelope_rcpt *r)
{
    const char *d = r->dsn_status;
    return d && d[0] == '4' && d[1] == '.' ? d : "4.0.0";
}

void bounce_build(const struct envelope *env, const char *msg, size_t len, const size_t *rcpts,
                  size_t nrcpts, const char *hostname, time_t now, struct buf *out)
{
    bounce_build_opts(env, msg, len, rcpts, nrcpts, hostname, now, NULL, out);
}

void bounce_build_opts(const struct envelope *env, const char *msg, size_t len, const size_t *rcpts,
                       size_t nrcpts, const char *hostname, time_t now,
                       const struct bounce_opts *opts, struct buf *out)
{
    int delayed = opts && opts->delayed;
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
    buf_printf(out, ">\r\nSubject: %s\r\nDate: ",
               delayed ? "Delayed Mail (still being retried)"
                       : "Undelivered Mail Returned to Sender");
    bounce_date(now, out);
    buf_printf(out, "\r\nMessage-ID: <%s.%lld.%s@%s>\r\n", env->queue_id, (long long)now,
               delayed ? "delay" : "bounce", hostname);
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
    buf_printf(out, "This is the mail system at host %s.\r\n\r\n", hostname);
    if (delayed) {
        buf_puts(out, "####### THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. "
                      "#######\r\n\r\n");
        long long hours = (long long)(now - env->arrival) / 3600;
        buf_printf(out,
                   "Your message could not be delivered for %lld hour%s (since the arrival "
                   "date below)\r\nto one or more recipients; the mail system will keep "
                   "trying",
                   hours, hours == 1 ? "" : "s");
        if (opts->will_retry_until) {
            buf_puts(out, " until\r\n");
            bounce_date(opts->will_retry_until, out);
        }
        buf_puts(out, ".\r\nThe headers of the message are attached below.\r\n\r\n");
    } else {
        buf_puts(out, "I'm sorry to have to inform you that your message could not\r\n"
                      "be delivered to one or more recipients. It's attached below.\r\n\r\n");
    }
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
        if (delayed)
            buf_printf(out, "Action: delayed\r\nStatus: %s\r\n", bounce_delay_status(r));
        else
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
        if (delayed && opts->will_retry_until) {
            buf_puts(out, "Will-Retry-Until: ");
            bounce_date(opts->will_retry_until, out);
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
    /* A delay notice returns the headers only, as Postfix: the message is still on its way. */
    int full = env->ret == DSN_RET_FULL && !delayed;
    buf_printf(out, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n\r\n",
               buf_cstr(&boundary),
               delayed ? "Delayed Message Headers"
               : full  ? "Undelivered Message"
                       : "Undelivered Message Headers",
               full ? (intl ? "message/global" : "message/rfc822")
                    : (intl ? "message/global-headers" : "text/rfc822-headers"));
    size_t take = full ? len : hlen;
    buf_append(out, msg, take);
    if (take >= 2 && memcmp(msg + take - 2, "\r\n", 2) != 0)
        buf_puts(out, "\r\n");
    buf_printf(out, "\r\n--%s--\r\n", buf_cstr(&boundary));
    buf_free(&boundary);
}

int bounce_queue(struct spool *s, const struct envelope *env, const struct spool_data *orig,
                 const size_t *rcpts, size_t nrcpts, const char *hostname,
                 char id_out[QUEUE_ID_MAX], struct buf *err)
{
    return bounce_queue_opts(s, env, orig, rcpts, nrcpts, hostname, NULL, id_out, err);
}

int bounce_queue_opts(struct spool *s, const struct envelope *env, const struct spool_data *orig,
                      const size_t *rcpts, size_t nrcpts, const char *hostname,
                      const struct bounce_opts *opts, char id_out[QUEUE_ID_MAX], struct buf *err)
{
    struct buf quoted = BUF_INIT, text = BUF_INIT;
    if (spool_data_read(orig, &quoted, BOUNCE_ORIG_MAX) < 0) {
        if (errno != EFBIG) {
            buf_printf(err, "cannot read the original message: %s", strerror(errno));
            buf_free(&quoted);
            return -1;
        }
        buf_reset(&quoted); /* too large to quote in full: fall back to what we can say */
    }
    struct envelope copy = *env;
    if (quoted.len >= BOUNCE_ORIG_MAX / 2)
        copy.ret = DSN_RET_HDRS;
    bounce_build_opts(&copy, quoted.data ? quoted.data : "", quoted.len, rcpts, nrcpts, hostname,
                      time(NULL), opts, &text);
    buf_free(&quoted);
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
