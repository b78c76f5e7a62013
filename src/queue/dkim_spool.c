/*
 * DKIM signing of a message being received, before its commit (see
 * dkim_spool.h): read back, sign and prepend on a work-queue thread; the
 * outcome is logged on the loop thread.
 */
#include "queue/dkim_spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "mailauth/dkim.h"
#include "smtp/msghdr.h"
#include "queue/spool.h"

struct dkim_spool_job {
    const struct dkim_signer *signer; /* NULL: only the fix-ups */
    const char *fixup_host;
    struct spool_msg *m;
    dkim_spool_done_fn done;
    void *arg;
    enum dkim_sign_status st;
    int io_errno;      /* the queue file could not be read, or the new fields stored */
    struct buf fields; /* the DKIM-Signature field(s) */
    struct buf fixups; /* Date / Message-ID added to submitted mail */
    int added_message_id, added_date;
    struct buf err;
};

/* On a pool thread: touches only the job and its message. */
static void dkim_spool_work(void *arg)
{
    struct dkim_spool_job *j = arg;
    struct buf msg = BUF_INIT;
    /* The session and pickup already capped the size at message_size_limit. */
    if (spool_msg_read(j->m, &msg, spool_msg_size(j->m)) < 0) {
        j->io_errno = errno ? errno : EIO;
        buf_free(&msg);
        return;
    }
    if (j->fixup_host) {
        const char *text = msg.data ? msg.data : "";
        j->added_message_id = !msghdr_has(text, msg.len, "Message-ID");
        if (j->added_message_id)
            msghdr_add_message_id(&j->fixups, spool_msg_id(j->m), j->fixup_host);
        j->added_date = !msghdr_has(text, msg.len, "Date");
        if (j->added_date)
            msghdr_add_date(&j->fixups, time(NULL));
    }
    if (j->signer) {
        /* Sign what will be stored: the fix-ups on top of the message. */
        struct buf whole = BUF_INIT;
        buf_append(&whole, j->fixups.data ? j->fixups.data : "", j->fixups.len);
        buf_append(&whole, msg.data ? msg.data : "", msg.len);
        j->st = dkim_sign(j->signer, whole.data, whole.len, time(NULL), &j->fields, &j->err);
        buf_free(&whole);
    }
    buf_free(&msg);
    if (j->st != DKIM_SIGN_OK)
        buf_reset(&j->fields);
    /* One prepend for both: the signature(s) first, then the fields they cover. */
    struct buf top = BUF_INIT;
    buf_append(&top, j->fields.data ? j->fields.data : "", j->fields.len);
    buf_append(&top, j->fixups.data ? j->fixups.data : "", j->fixups.len);
    if (top.len && spool_msg_prepend(j->m, top.data, top.len) < 0)
        j->io_errno = errno ? errno : EIO;
    buf_free(&top);
}

/* How many signature fields the signer made (one per key), for the metrics. */
static unsigned dkim_spool_count(const struct buf *fields)
{
    unsigned n = 0;
    for (const char *p = fields->data, *end = fields->data + fields->len; p && p < end; n++) {
        p = memmem(p + 1, (size_t)(end - p - 1), "\r\nDKIM-Signature:", 17);
    }
    return n;
}

/* Appends " d=DOMAIN s=SELECTOR" for each signature field, for the log. */
static void dkim_spool_describe(const struct buf *fields, struct buf *out)
{
    const char *p = fields->data, *end = fields->data + fields->len;
    while (p < end) {
        const char *next = memmem(p + 1, (size_t)(end - p - 1), "\r\nDKIM-Signature:", 17);
        const char *stop = next ? next : end;
        const char *tags[] = {"d=", "s="};
        for (size_t t = 0; t < 2; t++) {
            /* A tag starts after ';' and folding white space (RFC 6376 3.2). */
            for (const char *q = p; q + 2 <= stop; q++) {
                if (memcmp(q, tags[t], 2) != 0 || q == p ||
                    (q[-1] != ' ' && q[-1] != '\t' && q[-1] != ';'))
                    continue;
                const char *v = q + 2, *e = v;
                while (e < stop && *e != ';' && *e != '\r' && *e != ' ')
                    e++;
                buf_printf(out, "%s%s%.*s", t == 0 ? " (" : ", ", tags[t], (int)(e - v), v);
                break;
            }
        }
        buf_puts(out, ")");
        p = next ? next + 2 : end;
    }
}

/* On the loop thread. */
static void dkim_spool_finish(void *arg)
{
    struct dkim_spool_job *j = arg;
    const char *id = spool_msg_id(j->m);
    if (j->io_errno) {
        /*
         * Neither sent unsigned nor without its Date: a message we cannot
         * finish is refused (4xx) and removed by the caller; the client
         * tries again later (a full disk: 452 4.3.1).
         */
        log_warning("%s: cannot %s: %s; the message is refused", id,
                    j->signer ? "DKIM-sign the message or add its missing header fields"
                              : "add the missing header fields",
                    strerror(j->io_errno));
    } else if (j->fixups.len) {
        log_info("%s: added missing %s%s%s", id, j->added_message_id ? "Message-ID" : "",
                 j->added_message_id && j->added_date ? " and " : "", j->added_date ? "Date" : "");
    }
    if (j->signer == NULL || j->io_errno) {
        /* nothing more to say */
    } else if (j->st == DKIM_SIGN_OK) {
        struct buf d = BUF_INIT;
        dkim_spool_describe(&j->fields, &d);
        log_info("%s: DKIM-Signature field added%s", id, buf_cstr(&d));
        metrics_dkim_signed(dkim_spool_count(&j->fields));
        buf_free(&d);
    } else if (j->st == DKIM_SIGN_ERROR) {
        log_warning("%s: not DKIM-signed: %s", id, buf_cstr(&j->err));
    } else if (log_debug_enabled()) {
        log_debug("%s: not DKIM-signed: %s", id, buf_cstr(&j->err));
    }
    dkim_spool_done_fn done = j->done;
    void *darg = j->arg;
    struct spool_msg *m = j->m;
    int err_code = j->io_errno;
    buf_free(&j->fields);
    buf_free(&j->fixups);
    buf_free(&j->err);
    free(j);
    done(darg, m, err_code);
}

void dkim_spool_sign(struct workq *q, const struct dkim_signer *signer, const char *fixup_host,
                     struct spool_msg *m, dkim_spool_done_fn done, void *arg)
{
    /* A broken domain is not idle: its mail is read so the warning names the message. */
    if (signer && dkim_signer_key_count(signer) == 0 &&
        dkim_signer_domain_error(signer, NULL) == NULL)
        signer = NULL;
    if (signer == NULL && fixup_host == NULL) {
        done(arg, m, 0);
        return;
    }
    struct dkim_spool_job *j = xcalloc(1, sizeof *j);
    j->signer = signer;
    j->fixup_host = fixup_host;
    j->m = m;
    j->done = done;
    j->arg = arg;
    buf_init(&j->fields);
    buf_init(&j->fixups);
    buf_init(&j->err);
    if (q == NULL) {
        dkim_spool_work(j);
        dkim_spool_finish(j);
        return;
    }
    workq_submit(q, dkim_spool_work, dkim_spool_finish, j);
}
