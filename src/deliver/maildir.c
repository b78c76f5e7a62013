/*
 * Maildir delivery (see maildir.h). The message keeps the CRLF line ends it
 * was received with: Dovecot and other Maildir readers accept both, and
 * the bytes stay exactly those the sender's DKIM signature covers.
 */
#include "deliver/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"

static atomic_uint maildir_seq;

/* Disk full, quota, I/O: try again later. Anything about the path itself: give up. */
static enum delivery_status maildir_classify(int e, char dsn[16], struct buf *reason,
                                             const char *what, const char *path)
{
    buf_reset(reason);
    buf_printf(reason, "cannot %s %s: %s", what, path, strerror(e));
    switch (e) {
    case ENOSPC:
        str_copy(dsn, 16, "4.3.1");
        return DELIVERY_TEMPFAIL;
    case EDQUOT:
        str_copy(dsn, 16, "4.2.2");
        return DELIVERY_TEMPFAIL;
    case EACCES:
    case EPERM:
    case ENOTDIR:
    case EROFS:
    case ELOOP:
    case ENAMETOOLONG:
    case EEXIST:
    case EISDIR:
        str_copy(dsn, 16, "5.2.0");
        return DELIVERY_PERMFAIL;
    default:
        str_copy(dsn, 16, "4.3.0");
        return DELIVERY_TEMPFAIL;
    }
}

/*
 * The host part of a unique name, with '/' and ':' escaped as the Maildir
 * spec asks; worked out once per process (gethostname is a system call).
 */
static char maildir_hostpart[1100];
static pthread_once_t maildir_host_once = PTHREAD_ONCE_INIT;

static void maildir_host_init(void)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    size_t n = 0;
    for (const char *p = host; *p && n + 5 < sizeof maildir_hostpart; p++) {
        const char *esc = *p == '/' ? "\\057" : *p == ':' ? "\\072" : NULL;
        if (esc) {
            memcpy(maildir_hostpart + n, esc, 4);
            n += 4;
        } else {
            maildir_hostpart[n++] = *p;
        }
    }
    maildir_hostpart[n] = '\0';
}

static void maildir_host(struct buf *out)
{
    pthread_once(&maildir_host_once, maildir_host_init);
    buf_puts(out, maildir_hostpart);
}

/*
 * Creates tmp/ new/ cur/ (and the mailbox above them). Called only when
 * creating or renaming a file failed with ENOENT, so a mailbox that exists
 * costs no mkdir calls. 0, or a delivery status with dsn and reason set.
 */
static int maildir_make(const struct buf *dir, char dsn[16], struct buf *reason,
                        enum delivery_status *st)
{
    const char *subs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", buf_cstr(dir), subs[i]);
        if (mkdir_p(p, 0700) < 0) {
            *st = maildir_classify(errno, dsn, reason, "create", p);
            free(p);
            return -1;
        }
        free(p);
    }
    return 0;
}

/* Is there an entry in dir whose name is prefix followed by ',' or ':' (Maildir info)? */
static int maildir_has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t n = strlen(prefix);
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL)
        found = strncmp(de->d_name, prefix, n) == 0 &&
                (de->d_name[n] == ',' || de->d_name[n] == ':' || de->d_name[n] == '\0');
    closedir(d);
    return found;
}

enum delivery_status maildir_deliver(const char *mailbox, const struct spool_data *data,
                                     const char *sender, const char *rcpt,
                                     const struct maildir_once *once, char dsn[16],
                                     struct buf *reason, struct buf *path_out)
{
    enum delivery_status st;
    struct buf dir = BUF_INIT, tmp = BUF_INIT, fin = BUF_INIT, name = BUF_INIT, hdr = BUF_INIT;
    int out = -1;
    if (mailbox == NULL || mailbox[0] != '/') {
        buf_reset(reason);
        buf_printf(reason, "mailbox path is not absolute: %s", mailbox ? mailbox : "(none)");
        str_copy(dsn, 16, "5.3.5");
        return DELIVERY_PERMFAIL;
    }
    buf_puts(&dir, mailbox);
    while (dir.len > 1 && dir.data[dir.len - 1] == '/')
        buf_truncate(&dir, dir.len - 1);
    /* RFC 5321 4.4: Return-Path is added at final delivery. */
    buf_printf(&hdr, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, rcpt);
    if (once) {
        buf_printf(&name, "%s.", once->stem);
        maildir_host(&name);
        if (once->check_cur) {
            char *cur = xasprintf("%s/cur", buf_cstr(&dir));
            int seen = maildir_has_entry(cur, buf_cstr(&name));
            free(cur);
            if (seen) {
                st = DELIVERY_OK;
                str_copy(dsn, 16, "2.0.0");
                buf_set(reason, "delivered to maildir (found from an earlier attempt)");
                goto done;
            }
        }
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        buf_printf(&name, "%lld.M%ldP%ldQ%u.", (long long)tv.tv_sec, (long)tv.tv_usec,
                   (long)own_pid(), atomic_fetch_add(&maildir_seq, 1) + 1);
        maildir_host(&name);
    }
    buf_printf(&tmp, "%s/tmp/%s", buf_cstr(&dir), buf_cstr(&name));
    /* A stable name may have a leftover from a crashed attempt in tmp/: it is ours. */
    int oflags = O_WRONLY | O_CREAT | (once ? O_TRUNC : O_EXCL) | O_CLOEXEC;
    out = open(buf_cstr(&tmp), oflags, 0600);
    if (out < 0 && errno == ENOENT) {
        if (maildir_make(&dir, dsn, reason, &st) < 0)
            goto done;
        out = open(buf_cstr(&tmp), oflags, 0600);
    }
    if (out < 0) {
        st = maildir_classify(errno, dsn, reason, "create", buf_cstr(&tmp));
        goto done;
    }
    size_t size = hdr.len;
    if (write_all(out, hdr.data, hdr.len) < 0)
        goto write_error;
    /* Only the message's range: the file may hold other messages before and after it. */
    if (spool_data_copy(data, out) < 0)
        goto write_error;
    size += (size_t)data->length;
    struct stat ost;
    int defer =
        once && once->sync_deferred && fstat(out, &ost) == 0 && ost.st_dev == once->sync_dev;
    if (!defer && fsync(out) < 0)
        goto write_error;
    if (close(out) < 0) {
        out = -1;
        goto write_error;
    }
    out = -1;
    /* The S= size lets readers skip a stat (a common Maildir++ extension). */
    buf_printf(&fin, "%s/new/%s,S=%zu", buf_cstr(&dir), buf_cstr(&name), size);
    int rrc = rename(buf_cstr(&tmp), buf_cstr(&fin));
    if (rrc < 0 && errno == ENOENT) {
        /* new/ went away (or cur/ with it): make them again. */
        if (maildir_make(&dir, dsn, reason, &st) < 0)
            goto unlink_tmp;
        rrc = rename(buf_cstr(&tmp), buf_cstr(&fin));
    }
    if (rrc < 0) {
        st = maildir_classify(errno, dsn, reason, "rename into", buf_cstr(&fin));
        goto unlink_tmp;
    }
    int drc = 0, de = 0;
    if (defer) {
        *once->sync_deferred = 1;
    } else {
        char *newdir = xasprintf("%s/new", buf_cstr(&dir));
        drc = fsync_dir(newdir);
        de = errno;
        free(newdir);
    }
    if (drc < 0) {
        unlink(buf_cstr(&fin));
        st = maildir_classify(de, dsn, reason, "sync", buf_cstr(&dir));
        goto done;
    }
    st = DELIVERY_OK;
    str_copy(dsn, 16, "2.0.0");
    buf_set(reason, "delivered to maildir");
    if (path_out)
        buf_set(path_out, buf_cstr(&fin));
    goto done;
write_error:
    st = maildir_classify(errno, dsn, reason, "write", buf_cstr(&tmp));
unlink_tmp:
    unlink(buf_cstr(&tmp));
done:
    if (out >= 0)
        close(out);
    buf_free(&dir);
    buf_free(&tmp);
    buf_free(&fin);
    buf_free(&name);
    buf_free(&hdr);
    return st;
}
