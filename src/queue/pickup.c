/* Pickup of mail from maildrop/ into the spool; see pickup.h. */
#include "queue/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/resolve.h"
#include "queue/msghdr.h"

#define PICKUP_ENVELOPE_SLACK (4 * 1024 * 1024)
#define PICKUP_BATCH 200

void pickup_encode(const struct envelope *e, const char *msg, size_t len, struct buf *out)
{
    struct buf env = BUF_INIT;
    envelope_encode(e, &env);
    buf_printf(out, "%s %zu\n", PICKUP_MAGIC, env.len);
    buf_append(out, env.data, env.len);
    buf_append(out, msg, len);
    buf_free(&env);
}

int pickup_decode(const char *text, size_t len, struct envelope **env, size_t *msg_off,
                  struct buf *err)
{
    size_t ml = strlen(PICKUP_MAGIC);
    const char *nl = memchr(text, '\n', len < 64 ? len : 64);
    if (nl == NULL || len < ml + 2 || memcmp(text, PICKUP_MAGIC " ", ml + 1) != 0) {
        buf_puts(err, "not a maildrop file");
        return -1;
    }
    char num[32];
    size_t nlen = (size_t)(nl - text) - ml - 1;
    if (nlen == 0 || nlen >= sizeof num) {
        buf_puts(err, "bad maildrop header");
        return -1;
    }
    memcpy(num, text + ml + 1, nlen);
    num[nlen] = '\0';
    char *end;
    errno = 0;
    unsigned long long el = strtoull(num, &end, 10);
    size_t start = (size_t)(nl - text) + 1;
    if (errno || *end || el > len - start) {
        buf_puts(err, "bad maildrop envelope length");
        return -1;
    }
    /* The envelope must be whole: a torn line here is damage, not an interrupted append. */
    if (el == 0 || text[start + el - 1] != '\n') {
        buf_puts(err, "truncated maildrop envelope");
        return -1;
    }
    *env = envelope_decode(text + start, (size_t)el, err);
    if (*env == NULL)
        return -1;
    *msg_off = start + (size_t)el;
    return 0;
}

static void pickup_quarantine(struct spool *s, const char *name, const char *why)
{
    char *from = xasprintf("%s/%s", spool_maildrop_dir(s), name);
    char *to = xasprintf("%s/corrupt/maildrop-%s", spool_dir(s), name);
    if (rename(from, to) < 0) {
        log_error("maildrop/%s: %s; cannot move to corrupt/: %s", name, why, strerror(errno));
    } else {
        log_error("maildrop/%s: %s; moved to corrupt/", name, why);
    }
    free(from);
    free(to);
}

static int pickup_has_rcpt(const struct envelope *e, const char *addr)
{
    for (size_t i = 0; i < e->nrcpts; i++)
        if (str_eq_ci(e->rcpts[i].address, addr))
            return 1;
    return 0;
}

int pickup_prepare(struct spool *s, const struct config *cfg, struct resolver *r, const char *name,
                   struct spool_msg **out, struct pickup_info *info)
{
    char *path = xasprintf("%s/%s", spool_maildrop_dir(s), name);
    struct buf text = BUF_INIT, err = BUF_INIT, hdrs = BUF_INIT;
    struct envelope *in = NULL;
    struct spool_msg *m = NULL;
    size_t off = 0;
    int rc = 0;
    *out = NULL;
    struct stat st;
    long long limit = config_get_int(cfg, "message_size_limit");
    size_t cap = limit > 0 ? (size_t)limit + PICKUP_ENVELOPE_SLACK : SIZE_MAX / 2;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (errno != ENOENT && !S_ISREG(st.st_mode)) {
            pickup_quarantine(s, name, "not a regular file");
            rc = -1;
        }
        goto out;
    }
    if (read_file(path, &text, cap) < 0) {
        if (errno == EFBIG) {
            pickup_quarantine(s, name, "larger than message_size_limit");
            rc = -1;
        } else if (errno != ENOENT) {
            log_warning("maildrop/%s: cannot read: %s", name, strerror(errno));
        }
        goto out;
    }
    if (pickup_decode(text.data ? text.data : "", text.len, &in, &off, &err) < 0) {
        pickup_quarantine(s, name, buf_cstr(&err));
        rc = -1;
        goto out;
    }
    m = spool_msg_new(s, &err);
    if (m == NULL) {
        log_warning("maildrop/%s: %s", name, buf_cstr(&err));
        goto out;
    }
    struct envelope *e = spool_msg_envelope(m);
    free(e->sender);
    e->sender = xstrdup(in->sender);
    e->envid = in->envid ? xstrdup(in->envid) : NULL;
    e->ret = in->ret;
    e->smtputf8 = in->smtputf8;
    e->body_8bit = in->body_8bit;
    /* The time sendmail ran, unless implausible (the file is the user's to write). */
    if (in->arrival <= e->arrival && in->arrival > e->arrival - 7 * 86400)
        e->arrival = in->arrival;
    for (size_t i = 0; i < in->nrcpts; i++) {
        const char *a = in->rcpts[i].address;
        struct resolved_list rl = {NULL, 0};
        buf_reset(&err);
        enum map_result mr = resolver_expand(r, a, &rl, &err);
        if (mr == MAP_TEMPFAIL) {
            log_warning("maildrop/%s: recipient lookup failed, will retry: %s", name,
                        buf_cstr(&err));
            resolved_list_free(&rl);
            spool_msg_abort(m);
            m = NULL;
            goto out;
        }
        if (mr == MAP_NOTFOUND || rl.count == 0) {
            /* Kept as is: delivery finds it unknown and bounces it to the sender. */
            if (!pickup_has_rcpt(e, a)) {
                struct envelope_rcpt *nr = envelope_add_rcpt(e, a);
                nr->notify = in->rcpts[i].notify;
                nr->orcpt = in->rcpts[i].orcpt ? xstrdup(in->rcpts[i].orcpt) : NULL;
            }
        }
        for (size_t k = 0; mr == MAP_FOUND && k < rl.count; k++) {
            if (pickup_has_rcpt(e, rl.items[k].address))
                continue;
            struct envelope_rcpt *nr = envelope_add_rcpt(e, rl.items[k].address);
            nr->notify = in->rcpts[i].notify;
            nr->orcpt =
                in->rcpts[i].orcpt ? xstrdup(in->rcpts[i].orcpt) : xasprintf("rfc822;%s", a);
        }
        resolved_list_free(&rl);
    }
    if (e->nrcpts == 0) {
        spool_msg_abort(m);
        m = NULL;
        pickup_quarantine(s, name, "no recipients");
        rc = -1;
        goto out;
    }
    /* RFC 6409 8.2, 8.3: a submission server may add a missing Date and Message-ID. */
    const char *msg = text.data + off;
    size_t mlen = text.len - off;
    if (!msghdr_has(msg, mlen, "Message-ID"))
        msghdr_add_message_id(&hdrs, spool_msg_id(m), config_get(cfg, "myhostname"));
    if (!msghdr_has(msg, mlen, "Date"))
        msghdr_add_date(&hdrs, e->arrival);
    if ((hdrs.len && spool_msg_write(m, hdrs.data, hdrs.len) < 0) ||
        spool_msg_write(m, msg, mlen) < 0) {
        log_warning("maildrop/%s: cannot queue: %s", name, strerror(errno));
        spool_msg_abort(m);
        m = NULL;
        goto out;
    }
    str_copy(info->id, sizeof info->id, spool_msg_id(m));
    str_copy(info->sender, sizeof info->sender, e->sender);
    info->uid = (long)st.st_uid;
    info->size = spool_msg_size(m);
    info->nrcpt = e->nrcpts;
    *out = m;
    m = NULL;
    rc = 1;
out:
    envelope_free(in);
    buf_free(&text);
    buf_free(&err);
    buf_free(&hdrs);
    free(path);
    return rc;
}

void pickup_finish(struct spool *s, const char *name)
{
    /* Only once the spool holds the message durably may the maildrop copy go. */
    char *path = xasprintf("%s/%s", spool_maildrop_dir(s), name);
    unlink(path);
    fsync_dir(spool_maildrop_dir(s));
    free(path);
}

void pickup_log(const struct pickup_info *info)
{
    log_info("%s: uid=%ld from=<%s>", info->id, info->uid, info->sender);
    log_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", info->id, info->sender,
             info->size, info->nrcpt);
}

char **pickup_names(struct spool *s)
{
    size_t nn = 0;
    char **names = xcalloc(1, sizeof *names);
    DIR *d = opendir(spool_maildrop_dir(s));
    if (d == NULL)
        return names;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && nn < PICKUP_BATCH) {
        if (de->d_name[0] == '.')
            continue; /* "." "..", and sendmail's temporary files */
        names = xrealloc(names, (nn + 2) * sizeof *names);
        names[nn++] = xstrdup(de->d_name);
        names[nn] = NULL;
    }
    closedir(d);
    return names;
}

char **pickup_run(struct spool *s, const struct config *cfg, struct resolver *r)
{
    size_t n = 0;
    char **ids = xcalloc(1, sizeof *ids);
    char **names = pickup_names(s);
    for (char **p = names; *p; p++) {
        struct spool_msg *m;
        struct pickup_info info;
        if (pickup_prepare(s, cfg, r, *p, &m, &info) != 1)
            continue;
        struct buf err = BUF_INIT;
        if (spool_msg_commit_sync(m, &err) < 0) {
            log_warning("maildrop/%s: %s", *p, buf_cstr(&err));
            buf_free(&err);
            continue;
        }
        buf_free(&err);
        pickup_finish(s, *p);
        pickup_log(&info);
        ids = xrealloc(ids, (n + 2) * sizeof *ids);
        ids[n++] = xstrdup(info.id);
        ids[n] = NULL;
    }
    strlist_free(names);
    return ids;
}
