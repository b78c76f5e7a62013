/* Pickup of mail from maildrop/ into the spool; see pickup.h. */
#include "queue/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/resolve.h"
#include "queue/localuser.h"
#include "smtp/msghdr.h"
#include "smtp/address.h"

#define PICKUP_ENVELOPE_SLACK (4 * 1024 * 1024)
#define PICKUP_BATCH 200
/* Leftovers of a helper killed mid-write ('.tmp.' files) are removed after this long. */
#define PICKUP_STALE_TMP_SECONDS 3600

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
    if (errno || *end || num[0] < '0' || num[0] > '9' || el > len - start) {
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

int pickup_parse(const char *text, size_t len, long *uid, struct envelope **env, size_t *msg_off,
                 struct buf *err)
{
    size_t pl = strlen(PICKUP_POSTDROP_MAGIC);
    *uid = -1;
    if (len < pl || memcmp(text, PICKUP_POSTDROP_MAGIC, pl) != 0)
        return pickup_decode(text, len, env, msg_off, err);
    /* The helper writes "uid=DIGITS\n": nothing else is accepted on this line. */
    long long v = 0;
    size_t i = pl;
    while (i < len && i < pl + 10 && text[i] >= '0' && text[i] <= '9')
        v = v * 10 + (text[i++] - '0');
    if (i == pl || i >= len || text[i] != '\n' || v > INT_MAX) {
        buf_puts(err, "bad postdrop line");
        return -1;
    }
    i++;
    if (pickup_decode(text + i, len - i, env, msg_off, err) < 0)
        return -1;
    *msg_off += i;
    *uid = (long)v;
    return 0;
}

/* A DSN field (ENVID, ORCPT): printable US-ASCII or UTF-8, no controls (RFC 3461 4). */
static int pickup_field_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Parses addr as the SMTP server parses a path's mailbox, and replaces it with the normal form. */
static int pickup_address(char **addr, int allow_null, struct buf *err, const char *what)
{
    if ((*addr)[0] == '\0' && allow_null)
        return 0;
    struct smtp_path path;
    struct smtp_reply rep;
    if (smtp_mailbox_parse(*addr, strlen(*addr), SMTP_ADDR_ALLOW_UTF8, &path, &rep) < 0 ||
        (path.flags & SMTP_ADDR_NO_DOMAIN)) {
        buf_printf(err, "bad %s address", what);
        return -1;
    }
    free(*addr);
    *addr = xstrdup(path.addr);
    return 0;
}

int pickup_validate(struct envelope *e, size_t max_rcpts, struct buf *err)
{
    if (pickup_address(&e->sender, 1, err, "sender") < 0)
        return -1;
    if (e->envid && !pickup_field_ok(e->envid)) {
        buf_puts(err, "bad ENVID");
        return -1;
    }
    if (max_rcpts > 0 && e->nrcpts > max_rcpts) {
        buf_printf(err, "too many recipients (%zu, smtpd_recipient_limit is %zu)", e->nrcpts,
                   max_rcpts);
        return -1;
    }
    struct strset seen = STRSET_INIT;
    size_t kept = 0;
    int rc = 0;
    for (size_t i = 0; i < e->nrcpts; i++) {
        struct envelope_rcpt *r = &e->rcpts[i];
        if (pickup_address(&r->address, 0, err, "recipient") < 0 ||
            (r->orcpt && !pickup_field_ok(r->orcpt))) {
            if (err->len == 0)
                buf_puts(err, "bad ORCPT");
            rc = -1;
            break;
        }
        if (!strset_add(&seen, r->address))
            continue; /* a duplicate: the slot is reused by the next recipient */
        if (kept != i) {
            struct envelope_rcpt tmp = e->rcpts[kept];
            e->rcpts[kept] = *r;
            *r = tmp;
        }
        kept++;
    }
    strset_free(&seen);
    /* Duplicates were swapped to the end; envelope_free still frees them by count. */
    if (rc == 0) {
        for (size_t i = kept; i < e->nrcpts; i++) {
            free(e->rcpts[i].address);
            free(e->rcpts[i].orcpt);
            free(e->rcpts[i].last_error);
            free(e->rcpts[i].dsn_status);
        }
        e->nrcpts = kept;
    }
    return rc;
}

void pickup_normalize(const char *msg, size_t len, struct buf *out)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] != '\r' && msg[i] != '\n')
            continue;
        buf_append(out, msg + start, i - start);
        buf_puts(out, "\r\n");
        if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    buf_append(out, msg + start, len - start);
    /* The last line ends too, so that the end of data is always CRLF . CRLF. */
    if (len > 0 && msg[len - 1] != '\n' && msg[len - 1] != '\r')
        buf_puts(out, "\r\n");
}

void pickup_file_free(struct pickup_file *f)
{
    if (f == NULL)
        return;
    free(f->name);
    envelope_free(f->env);
    buf_free(&f->body);
    free(f);
}

static void pickup_random_hex(char *out, size_t size)
{
    unsigned char r[7];
    random_bytes(r, sizeof r);
    for (size_t i = 0; i < sizeof r && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* Moves maildrop/NAME to corrupt/, by descriptors, and says why in the log. */
static void pickup_quarantine(struct spool *s, int dfd, const char *name, const char *why)
{
    char *to = xasprintf("%s/corrupt/maildrop-%s", spool_dir(s), name);
    /* corrupt/ keeps everything: a second file of the same name gets a suffix. */
    int rc = renameat2(dfd, name, AT_FDCWD, to, RENAME_NOREPLACE);
    if (rc < 0 && errno == EEXIST) {
        char suffix[16];
        pickup_random_hex(suffix, sizeof suffix);
        free(to);
        to = xasprintf("%s/corrupt/maildrop-%s.%s", spool_dir(s), name, suffix);
        rc = renameat2(dfd, name, AT_FDCWD, to, RENAME_NOREPLACE);
    }
    if (rc < 0)
        log_error("maildrop/%s: %s; cannot move to corrupt/: %s", name, why, strerror(errno));
    else
        log_error("maildrop/%s: %s; moved to corrupt/", name, why);
    free(to);
}

/*
 * Reads one file. O_NONBLOCK: a FIFO swapped in under the name cannot
 * block the open or the read; O_NOFOLLOW: no link is followed; the checks
 * are on the descriptor, so no swap after them matters. 1 read, 0 leave,
 * -1 quarantined.
 */
static int pickup_read_one(struct spool *s, int dfd, const char *name,
                           const struct pickup_limits *lim, struct pickup_file **out)
{
    struct buf text = BUF_INIT, err = BUF_INIT;
    struct envelope *env = NULL;
    int rc = -1;
    const char *why = NULL;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EINTR) {
            /* Our own shortage, not the file's fault: the next round tries again. */
            log_warning("maildrop/%s: cannot open, will retry: %s", name, strerror(errno));
            return 0;
        }
        buf_printf(&err, "cannot open: %s", errno == ELOOP ? "a symbolic link" : strerror(errno));
        why = buf_cstr(&err);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        why = "not a regular file";
        goto out;
    }
    if (st.st_nlink != 1) {
        why = "has more than one link";
        goto out;
    }
    size_t cap = lim->max_message ? lim->max_message + PICKUP_ENVELOPE_SLACK : SIZE_MAX / 2;
    if ((size_t)st.st_size > cap) {
        why = "larger than message_size_limit";
        goto out;
    }
    buf_reserve(&text, (size_t)st.st_size + 1);
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            buf_printf(&err, "cannot read: %s", strerror(errno));
            why = buf_cstr(&err);
            goto out;
        }
        if (n == 0)
            break;
        buf_append(&text, chunk, (size_t)n);
        if (text.len > cap) {
            why = "larger than message_size_limit";
            goto out;
        }
    }
    long uid;
    size_t off;
    if (pickup_parse(text.data ? text.data : "", text.len, &uid, &env, &off, &err) < 0) {
        why = buf_cstr(&err);
        goto out;
    }
    /*
     * The helper's uid must be the file's owner, or the file ours (root
     * hands the queue to mail_owner at start). A file from before the
     * helper has only its owner to say who wrote it.
     */
    if (uid < 0)
        uid = (long)st.st_uid;
    else if ((uid_t)uid != st.st_uid && st.st_uid != geteuid()) {
        buf_printf(&err, "owner uid %ld is not the submitter uid %ld", (long)st.st_uid, uid);
        why = buf_cstr(&err);
        goto out;
    }
    if (pickup_validate(env, lim->max_rcpts, &err) < 0) {
        why = buf_cstr(&err);
        goto out;
    }
    if (env->nrcpts == 0) {
        why = "no recipients";
        goto out;
    }
    if (lim->max_message && text.len - off > lim->max_message) {
        why = "larger than message_size_limit";
        goto out;
    }
    char user[64];
    localuser_name((uid_t)uid, user, sizeof user);
    int ok = localuser_authorized(lim->submit_users, lim->mail_owner, (uid_t)uid, user, &err);
    if (ok < 0) {
        log_warning("maildrop/%s: authorized_submit_users: %s; will retry", name, buf_cstr(&err));
        rc = 0;
        goto out;
    }
    if (ok == 0) {
        /*
         * sendmail refused already (as Postfix's postdrop does); a file that
         * got here anyway was written past it. Kept aside, not delivered.
         */
        buf_reset(&err);
        buf_printf(&err, "uid=%ld (%s) is not allowed by authorized_submit_users", uid, user);
        why = buf_cstr(&err);
        goto out;
    }
    struct pickup_file *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->uid = (uid_t)uid;
    str_copy(f->user, sizeof f->user, user);
    pickup_normalize(text.data + off, text.len - off, &f->body);
    f->env = env;
    env = NULL;
    *out = f;
    rc = 1;
out:
    if (fd >= 0)
        close(fd);
    if (why != NULL)
        pickup_quarantine(s, dfd, name, why);
    envelope_free(env);
    buf_free(&text);
    buf_free(&err);
    return rc;
}

/* Removes what a helper killed between create and rename left behind. */
static void pickup_remove_stale(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_mtime < time(NULL) - PICKUP_STALE_TMP_SECONDS)
        unlinkat(dfd, name, 0);
}

struct pickup_file *pickup_read_batch(struct spool *s, const struct pickup_limits *lim,
                                      int (*skip)(const char *name, void *arg), void *skip_arg,
                                      int *more)
{
    struct pickup_file *head = NULL, **tail = &head;
    *more = 0;
    int dfd = open(spool_maildrop_dir(s), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return NULL;
    int lfd = dup(dfd);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (d == NULL) {
        if (lfd >= 0)
            close(lfd);
        close(dfd);
        return NULL;
    }
    size_t nfiles = 0, bytes = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            if (strncmp(de->d_name, ".tmp.", 5) == 0)
                pickup_remove_stale(dfd, de->d_name);
            continue;
        }
        if (skip && skip(de->d_name, skip_arg))
            continue;
        if (nfiles >= PICKUP_BATCH || bytes >= lim->max_batch_bytes) {
            *more = 1;
            break;
        }
        struct pickup_file *f = NULL;
        if (pickup_read_one(s, dfd, de->d_name, lim, &f) == 1) {
            *tail = f;
            tail = &f->next;
            bytes += f->body.len;
        }
        nfiles++;
    }
    closedir(d);
    close(dfd);
    return head;
}

void pickup_limits_init(struct pickup_limits *lim, const struct config *cfg)
{
    long long msg = config_get_int(cfg, "message_size_limit");
    long long rcpts = config_get_int(cfg, "smtpd_recipient_limit");
    lim->max_message = msg > 0 ? (size_t)msg : 0;
    lim->max_rcpts = rcpts > 0 ? (size_t)rcpts : 0;
    /* A batch holds its messages in memory: a few messages' worth at most. */
    lim->max_batch_bytes = lim->max_message ? 4 * lim->max_message : 64 * 1024 * 1024;
    lim->submit_users = xstrdup(config_get(cfg, "authorized_submit_users"));
    lim->mail_owner = xstrdup(config_get(cfg, "mail_owner"));
}

void pickup_limits_free(struct pickup_limits *lim)
{
    free(lim->submit_users);
    free(lim->mail_owner);
}

int pickup_prepare(struct spool *s, const struct config *cfg, struct resolver *r,
                   struct pickup_file *f, struct spool_msg **out, struct pickup_info *info)
{
    struct buf err = BUF_INIT, hdrs = BUF_INIT;
    struct envelope *in = f->env;
    *out = NULL;
    struct spool_msg *m = spool_msg_new(s, &err);
    if (m == NULL) {
        log_warning("maildrop/%s: %s", f->name, buf_cstr(&err));
        buf_free(&err);
        return 0;
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
    struct strset have = STRSET_INIT;
    for (size_t i = 0; i < in->nrcpts; i++) {
        const char *a = in->rcpts[i].address;
        struct resolved_list rl = {0};
        buf_reset(&err);
        enum map_result mr = resolver_expand(r, a, &rl, &err);
        if (mr == MAP_TEMPFAIL) {
            log_warning("maildrop/%s: recipient lookup failed, will retry: %s", f->name,
                        buf_cstr(&err));
            resolved_list_free(&rl);
            strset_free(&have);
            spool_msg_abort(m);
            buf_free(&err);
            return 0;
        }
        if (mr == MAP_NOTFOUND || rl.count == 0) {
            /* Kept as is: delivery finds it unknown and bounces it to the sender. */
            if (!strset_has(&have, a)) {
                struct envelope_rcpt *nr = envelope_add_rcpt(e, a);
                nr->notify = in->rcpts[i].notify;
                nr->orcpt = in->rcpts[i].orcpt ? xstrdup(in->rcpts[i].orcpt) : NULL;
                strset_add(&have, nr->address);
            }
        }
        for (size_t k = 0; mr == MAP_FOUND && k < rl.count; k++) {
            if (strset_has(&have, rl.items[k].address))
                continue;
            struct envelope_rcpt *nr = envelope_add_rcpt(e, rl.items[k].address);
            nr->notify = in->rcpts[i].notify;
            nr->orcpt =
                in->rcpts[i].orcpt ? xstrdup(in->rcpts[i].orcpt) : xasprintf("rfc822;%s", a);
            strset_add(&have, nr->address);
        }
        resolved_list_free(&rl);
    }
    strset_free(&have);
    /*
     * Postfix's shape: "Received: by HOST (Postfix, from userid 1000)". The
     * uid is the helper's record, which the user cannot forge.
     */
    char date[MSGHDR_DATE_MAX];
    msghdr_date(time(NULL), date);
    buf_printf(&hdrs, "Received: by %s (%s, from userid %ld)\r\n\tid %s; %s\r\n",
               config_get(cfg, "myhostname"), config_get(cfg, "mail_name"), (long)f->uid,
               spool_msg_id(m), date);
    /* RFC 6409 8.2, 8.3: a submission server may add a missing Date and Message-ID. */
    const char *msg = f->body.data ? f->body.data : "";
    size_t mlen = f->body.len;
    if (!msghdr_has(msg, mlen, "Message-ID"))
        msghdr_add_message_id(&hdrs, spool_msg_id(m), config_get(cfg, "myhostname"));
    if (!msghdr_has(msg, mlen, "Date"))
        msghdr_add_date(&hdrs, e->arrival);
    if (spool_msg_write(m, hdrs.data, hdrs.len) < 0 || spool_msg_write(m, msg, mlen) < 0) {
        log_warning("maildrop/%s: cannot queue: %s", f->name, strerror(errno));
        spool_msg_abort(m);
        buf_free(&err);
        buf_free(&hdrs);
        return 0;
    }
    str_copy(info->id, sizeof info->id, spool_msg_id(m));
    str_copy(info->sender, sizeof info->sender, e->sender);
    info->uid = (long)f->uid;
    info->size = spool_msg_size(m);
    info->nrcpt = e->nrcpts;
    *out = m;
    buf_free(&err);
    buf_free(&hdrs);
    return 1;
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
            continue; /* "." "..", and the helper's temporary files */
        names = xrealloc(names, (nn + 2) * sizeof *names);
        names[nn++] = xstrdup(de->d_name);
        names[nn] = NULL;
    }
    closedir(d);
    return names;
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
