/*
 * The spool on disk (see spool.h): queue ids, receiving into incoming/,
 * the durable commit into active/ with group commit on the work queue,
 * appended results, operator moves and start-up recovery.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "queue/maildrop.h"
#include "metrics/metrics.h"

#define SPOOL_ENVELOPE_MAX (64 * 1024 * 1024)
#define SPOOL_WBUF 65536

struct spool_commit;
struct spool_waiter;

struct spool {
    char *dir, *incoming, *active, *hold, *corrupt, *maildrop, *public_dir, *fifo;
    struct event_base *base;
    struct workq *wq;
    struct spool_commit *pending, *pending_tail; /* waiting for the next round */
    struct spool_waiter *waiting;                /* spool_sync() callers for the next round */
    struct spool_round *running;                 /* the round on the work queue, if any */
    int round_running;
    unsigned long rounds;
    /*
     * Opened once, before anything is written, and used by the sync rounds
     * only (one at a time): syncfs(2) reports on it every writeback error
     * of the filesystem since the previous round (Linux >= 5.8 errseq).
     */
    int sync_fd;
    dev_t dev;
    int last_sync_failed; /* the previous round's syncfs failed (round thread only) */
    /* spool_free_space()'s cache: statvfs at most once a second. */
    time_t free_checked;
    long long free_bytes;
};

struct spool_msg {
    struct spool *s;
    char id[QUEUE_ID_MAX];
    int fd;
    int failed_errno; /* a write failed: the commit must fail */
    size_t size;
    struct envelope *env;
    char wbuf[SPOOL_WBUF];
    size_t wlen;
};

struct spool_commit {
    struct spool_msg *m;
    spool_commit_cb cb;
    void *arg;
    struct buf env_text;
    int result, err_code;
    uint64_t started_ms; /* for the commit latency metric */
    struct spool_commit *next;
};

struct spool_waiter {
    spool_sync_cb cb;
    void *arg;
    int err_code;
    struct spool_waiter *next;
};

/* What one sync round works on: the commits and the spool_sync() callers queued before it. */
struct spool_round {
    struct spool *s;
    struct spool_commit *commits;
    struct spool_waiter *waiters;
};

static char *spool_path(const char *dir, const char *name, const char *suffix)
{
    return xasprintf("%s/%s%s", dir, name, suffix ? suffix : "");
}

static int spool_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0)
        return chmod(path, mode); /* mkdir is subject to the umask; 1733 must be exact */
    return errno == EEXIST ? 0 : -1;
}

struct spool *spool_open(const char *queue_dir, struct buf *err)
{
    struct spool *s = xcalloc(1, sizeof *s);
    s->sync_fd = -1;
    s->dir = xstrdup(queue_dir);
    s->incoming = spool_path(queue_dir, "incoming", NULL);
    s->active = spool_path(queue_dir, "active", NULL);
    s->hold = spool_path(queue_dir, "hold", NULL);
    s->corrupt = spool_path(queue_dir, "corrupt", NULL);
    s->maildrop = spool_path(queue_dir, "maildrop", NULL);
    s->public_dir = spool_path(queue_dir, "public", NULL);
    s->fifo = spool_path(s->public_dir, "flush", NULL);
    if (mkdir_p(queue_dir, 0755) < 0) {
        buf_printf(err, "%s: %s", queue_dir, strerror(errno));
        goto fail;
    }
    /* Before anything below creates or changes a file in a queue it may not understand. */
    if (spool_version_check(queue_dir, err) < 0)
        goto fail;
    /*
     * maildrop/ and public/ are the local submission boundary
     * (queue/maildrop.h): only mail_owner and the setgid helper's group may
     * enter. Run as root, the supervisor gives them that group.
     */
    const struct {
        const char *path;
        mode_t mode;
    } dirs[] = {{s->incoming, 0700},
                {s->active, 0700},
                {s->hold, 0700},
                {s->corrupt, 0700},
                {s->maildrop, MAILDROP_DIR_MODE},
                {s->public_dir, MAILDROP_PUBLIC_MODE}};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (spool_mkdir(dirs[i].path, dirs[i].mode) < 0) {
            buf_printf(err, "%s: %s", dirs[i].path, strerror(errno));
            goto fail;
        }
    }
    /*
     * A layout from before the boundary (maildrop 1733, public 0711, FIFO
     * 0622) is closed by its owner here; run as root, the supervisor does it.
     */
    const struct {
        const char *path;
        mode_t mode;
    } tighten[] = {{s->maildrop, MAILDROP_DIR_MODE},
                   {s->public_dir, MAILDROP_PUBLIC_MODE},
                   {s->fifo, MAILDROP_FIFO_MODE}};
    for (size_t i = 0; i < sizeof tighten / sizeof tighten[0]; i++) {
        struct stat ts;
        if (lstat(tighten[i].path, &ts) == 0 && !S_ISLNK(ts.st_mode) && ts.st_uid == geteuid() &&
            (ts.st_mode & 07777) != tighten[i].mode)
            chmod(tighten[i].path, tighten[i].mode);
    }
    if (mkfifo(s->fifo, MAILDROP_FIFO_MODE) == 0) {
        if (chmod(s->fifo, MAILDROP_FIFO_MODE) < 0) {
            buf_printf(err, "%s: %s", s->fifo, strerror(errno));
            goto fail;
        }
    } else if (errno != EEXIST) {
        buf_printf(err, "%s: %s", s->fifo, strerror(errno));
        goto fail;
    }
    struct stat st;
    s->sync_fd = open(s->active, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->sync_fd < 0 || fstat(s->sync_fd, &st) < 0) {
        buf_printf(err, "%s: %s", s->active, strerror(errno));
        goto fail;
    }
    s->dev = st.st_dev;
    return s;
fail:
    spool_free(s);
    return NULL;
}

void spool_free(struct spool *s)
{
    if (s == NULL)
        return;
    if (s->sync_fd >= 0)
        close(s->sync_fd);
    free(s->dir);
    free(s->incoming);
    free(s->active);
    free(s->hold);
    free(s->corrupt);
    free(s->maildrop);
    free(s->public_dir);
    free(s->fifo);
    free(s);
}

void spool_attach(struct spool *s, struct event_base *base, struct workq *wq)
{
    s->base = base;
    s->wq = wq;
}

const char *spool_dir(const struct spool *s)
{
    return s->dir;
}

const char *spool_fifo_path(const struct spool *s)
{
    return s->fifo;
}

const char *spool_maildrop_dir(const struct spool *s)
{
    return s->maildrop;
}

const char *spool_incoming_dir(const struct spool *s)
{
    return s->incoming;
}

unsigned long spool_sync_rounds(const struct spool *s)
{
    return s->rounds;
}

dev_t spool_device(const struct spool *s)
{
    return s->dev;
}

long long spool_free_space(struct spool *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (s->free_checked != 0 && now.tv_sec == s->free_checked)
        return s->free_bytes;
    struct statvfs st;
    if (fstatvfs(s->sync_fd, &st) < 0)
        return -1; /* not cached: the next caller asks again */
    /* f_bavail: what this (unprivileged) process may still use. */
    s->free_bytes = (long long)st.f_bavail * (long long)st.f_frsize;
    s->free_checked = now.tv_sec ? now.tv_sec : 1;
    return s->free_bytes;
}

/* RFC 4648 base32hex upper case: the digits sort in the same order as the values. */
static const char spool_b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

void spool_new_id(char id[QUEUE_ID_MAX])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long sec = (unsigned long long)tv.tv_sec;
    unsigned long usec = (unsigned long)tv.tv_usec;
    unsigned char rnd[3];
    random_bytes(rnd, sizeof rnd);
    unsigned long r = ((unsigned long)rnd[0] << 16 | (unsigned long)rnd[1] << 8 | rnd[2]) & 0xfffff;
    int n = 0;
    for (int i = 6; i >= 0; i--)
        id[n++] = spool_b32[(sec >> (5 * i)) & 31];
    for (int i = 3; i >= 0; i--)
        id[n++] = spool_b32[(usec >> (5 * i)) & 31];
    for (int i = 3; i >= 0; i--)
        id[n++] = spool_b32[(r >> (5 * i)) & 31];
    id[n] = '\0';
}

int spool_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 10 || n > 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z')))
            return 0;
    return 1;
}

struct spool_msg *spool_msg_new(struct spool *s, struct buf *err)
{
    struct spool_msg *m = xcalloc(1, sizeof *m);
    m->s = s;
    m->fd = -1;
    for (int tries = 0; tries < 10 && m->fd < 0; tries++) {
        spool_new_id(m->id);
        char *path = spool_path(s->incoming, m->id, ".data");
        m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int e = errno;
        free(path);
        if (m->fd < 0 && e != EEXIST) {
            buf_printf(err, "cannot create a queue file in %s: %s", s->incoming, strerror(e));
            free(m);
            errno = e;
            return NULL;
        }
    }
    if (m->fd < 0) {
        buf_puts(err, "cannot find a free queue id");
        free(m);
        errno = EEXIST;
        return NULL;
    }
    m->env = envelope_new();
    str_copy(m->env->queue_id, sizeof m->env->queue_id, m->id);
    m->env->arrival = time(NULL);
    return m;
}

const char *spool_msg_id(const struct spool_msg *m)
{
    return m->id;
}

struct envelope *spool_msg_envelope(struct spool_msg *m)
{
    return m->env;
}

size_t spool_msg_size(const struct spool_msg *m)
{
    return m->size;
}

static int spool_msg_flush(struct spool_msg *m)
{
    if (m->wlen == 0)
        return 0;
    if (write_all(m->fd, m->wbuf, m->wlen) < 0) {
        m->failed_errno = errno;
        return -1;
    }
    m->wlen = 0;
    return 0;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
    if (m->failed_errno) {
        errno = m->failed_errno;
        return -1;
    }
    if (m->wlen + len > sizeof m->wbuf && spool_msg_flush(m) < 0)
        return -1;
    if (len > sizeof m->wbuf) {
        if (write_all(m->fd, data, len) < 0) {
            m->failed_errno = errno;
            return -1;
        }
    } else {
        memcpy(m->wbuf + m->wlen, data, len);
        m->wlen += len;
    }
    m->size += len;
    return 0;
}

static void spool_msg_free(struct spool_msg *m)
{
    if (m->fd >= 0)
        close(m->fd);
    envelope_free(m->env);
    free(m);
}

static void spool_unlink_incoming(struct spool *s, const char *id)
{
    char *p = spool_path(s->incoming, id, ".data");
    unlink(p);
    free(p);
    p = spool_path(s->incoming, id, NULL);
    unlink(p);
    free(p);
}

void spool_msg_abort(struct spool_msg *m)
{
    if (m == NULL)
        return;
    spool_unlink_incoming(m->s, m->id);
    spool_msg_free(m);
}

/*
 * The first half of a commit, on a pool thread: the data and the envelope
 * are written beside each other in incoming/, without syncing: the caller
 * makes them durable (one syncfs for a whole round, or sync_self: syncfs
 * on the message's own descriptor, which reports every writeback error of
 * the filesystem since the message was opened) and only then publishes
 * them. On failure nothing of the message remains; -1 with errno.
 */
static int spool_commit_write(struct spool *s, struct spool_msg *m, const struct buf *env,
                              int sync_self)
{
    int fd = -1, e;
    char *inc_env = spool_path(s->incoming, m->id, NULL);
    if (spool_msg_flush(m) < 0)
        goto fail;
    fd = open(inc_env, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, env->data, env->len) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (sync_self && syncfs(m->fd) < 0)
        goto fail;
    if (close(m->fd) < 0) {
        m->fd = -1;
        goto fail;
    }
    m->fd = -1;
    free(inc_env);
    return 0;
fail:
    e = errno ? errno : EIO;
    if (m->failed_errno)
        e = m->failed_errno;
    if (fd >= 0)
        close(fd);
    free(inc_env);
    spool_unlink_incoming(s, m->id);
    errno = e;
    return -1;
}

/*
 * The second half, once both files are on disk: rename the data, then the
 * envelope, into active/ (the envelope last: its presence there marks a
 * complete message). The directory sync that makes the renames durable is
 * the caller's, once per round. -1 with errno and nothing left behind.
 */
static int spool_commit_publish(struct spool *s, struct spool_msg *m)
{
    int rc = -1, e;
    char *inc_data = spool_path(s->incoming, m->id, ".data");
    char *inc_env = spool_path(s->incoming, m->id, NULL);
    /* A message a milter quarantined goes straight to hold/ (Postfix's hold queue). */
    const char *dir = m->env->hold ? s->hold : s->active;
    char *act_data = spool_path(dir, m->id, ".data");
    char *act_env = spool_path(dir, m->id, NULL);
    if (rename(inc_data, act_data) < 0) {
        e = errno;
        spool_unlink_incoming(s, m->id);
        errno = e;
    } else if (rename(inc_env, act_env) < 0) {
        e = errno;
        unlink(act_data);
        spool_unlink_incoming(s, m->id);
        errno = e;
    } else {
        rc = 0;
    }
    free(inc_data);
    free(inc_env);
    free(act_data);
    free(act_env);
    return rc;
}

/* Undoes a commit whose directory sync failed: the renames may not be durable. */
static void spool_uncommit(struct spool *s, const char *id)
{
    const char *dirs[] = {s->active, s->hold};
    for (size_t i = 0; i < 2; i++) {
        char *p = spool_path(dirs[i], id, NULL);
        unlink(p);
        free(p);
        p = spool_path(dirs[i], id, ".data");
        unlink(p);
        free(p);
    }
}

/* The envelope as committed: its records, then the commit record with the data's size. */
static void spool_encode(struct spool_msg *m, struct buf *out)
{
    envelope_encode(m->env, out);
    envelope_encode_commit((long long)m->size, out);
}

static void spool_commit_prepare(struct spool_commit *c)
{
    buf_init(&c->env_text);
    spool_encode(c->m, &c->env_text);
}

/*
 * One sync round, on a pool thread: every message of the batch is written
 * and renamed into active/, then one syncfs(2) makes all of it durable at
 * once: the files, the renames, and whatever spool_sync() callers wrote
 * before asking. One sync call per round, however many messages it carries.
 *
 * A crash before the syncfs returns may leave in active/ a message whose
 * files are not all on disk; it was never acknowledged, and recovery
 * recognises it by its commit record (missing, or naming a size its data
 * file does not have) and removes it. Until the round is done, spool_list()
 * hides its messages, so the queue manager cannot start on one early.
 */
static void spool_round_work(void *arg)
{
    struct spool_round *r = arg;
    struct spool *s = r->s;
    int any = r->waiters != NULL;
    for (struct spool_commit *c = r->commits; c; c = c->next) {
        errno = 0;
        if (c->m->failed_errno) {
            c->result = -1;
            c->err_code = c->m->failed_errno;
            spool_unlink_incoming(s, c->m->id);
            continue;
        }
        c->result = spool_commit_write(s, c->m, &c->env_text, 0);
        if (c->result == 0)
            c->result = spool_commit_publish(s, c->m);
        c->err_code = c->result < 0 ? errno : 0;
        any |= c->result == 0;
    }
    if (!any)
        return;
    int rc = syncfs(s->sync_fd), e = errno;
    /*
     * syncfs reports a writeback error once. One that the previous round's
     * syncfs reported may have hit pages written for this round (they were
     * dirty then already), so a failed round fails the next one too.
     */
    int prev_failed = s->last_sync_failed;
    s->last_sync_failed = rc < 0;
    if (rc == 0 && prev_failed) {
        rc = -1;
        e = EIO;
    }
    for (struct spool_waiter *w = r->waiters; w; w = w->next)
        w->err_code = rc < 0 ? e : 0;
    if (rc == 0)
        return;
    for (struct spool_commit *c = r->commits; c; c = c->next) {
        if (c->result == 0) {
            spool_uncommit(s, c->m->id);
            c->result = -1;
            c->err_code = e;
        }
    }
}

static void spool_round_start(struct spool *s);

static void spool_round_done(void *arg)
{
    struct spool_round *r = arg;
    struct spool *s = r->s;
    s->rounds++;
    s->round_running = 0;
    s->running = NULL;
    struct spool_commit *c = r->commits;
    while (c) {
        struct spool_commit *next = c->next;
        char id[QUEUE_ID_MAX];
        str_copy(id, sizeof id, c->m->id);
        if (c->result < 0)
            log_warning("%s: queue file commit failed: %s", id, strerror(c->err_code));
        else
            metrics_spool_committed((now_ms() - c->started_ms) * 1000, c->m->size);
        c->cb(c->arg, c->result, c->err_code, id);
        buf_free(&c->env_text);
        spool_msg_free(c->m);
        free(c);
        c = next;
    }
    struct spool_waiter *w = r->waiters;
    while (w) {
        struct spool_waiter *next = w->next;
        w->cb(w->arg, w->err_code);
        free(w);
        w = next;
    }
    free(r);
    /* Commits that arrived during this round form the next one. */
    if (s->pending || s->waiting)
        spool_round_start(s);
}

static struct spool_round *spool_round_take(struct spool *s)
{
    struct spool_round *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->commits = s->pending;
    /* Waiters were pushed on the front: put them back in the order they came. */
    for (struct spool_waiter *w = s->waiting, *next; w; w = next) {
        next = w->next;
        w->next = r->waiters;
        r->waiters = w;
    }
    s->pending = s->pending_tail = NULL;
    s->waiting = NULL;
    return r;
}

static void spool_round_start(struct spool *s)
{
    s->round_running = 1;
    s->running = spool_round_take(s);
    workq_submit(s->wq, spool_round_work, spool_round_done, s->running);
}

/* Is id being committed by the running round (in active/ but not yet durable)? */
static int spool_in_round(const struct spool *s, const char *id)
{
    if (s->running == NULL)
        return 0;
    for (const struct spool_commit *c = s->running->commits; c; c = c->next)
        if (strcmp(c->m->id, id) == 0)
            return 1;
    return 0;
}

static void spool_round_now(struct spool *s)
{
    struct spool_round *r = spool_round_take(s);
    spool_round_work(r);
    s->round_running = 0;
    spool_round_done(r);
}

void spool_msg_commit(struct spool_msg *m, spool_commit_cb cb, void *arg)
{
    struct spool *s = m->s;
    struct spool_commit *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->cb = cb;
    c->arg = arg;
    c->started_ms = now_ms();
    spool_commit_prepare(c);
    if (s->pending_tail)
        s->pending_tail->next = c;
    else
        s->pending = c;
    s->pending_tail = c;
    if (s->wq == NULL)
        spool_round_now(s);
    else if (!s->round_running)
        spool_round_start(s);
}

void spool_sync(struct spool *s, spool_sync_cb cb, void *arg)
{
    struct spool_waiter *w = xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->next = s->waiting;
    s->waiting = w;
    if (s->wq == NULL)
        spool_round_now(s);
    else if (!s->round_running)
        spool_round_start(s);
}

int spool_msg_commit_sync(struct spool_msg *m, struct buf *err)
{
    struct spool *s = m->s;
    struct buf env = BUF_INIT;
    spool_encode(m, &env);
    int rc = -1, e = m->failed_errno;
    if (e == 0) {
        errno = 0;
        rc = spool_commit_write(s, m, &env, 1);
        if (rc == 0)
            rc = spool_commit_publish(s, m);
        e = errno;
        if (rc == 0 && fsync_dir(s->active) < 0) {
            e = errno;
            spool_uncommit(s, m->id);
            rc = -1;
        }
    } else {
        spool_unlink_incoming(s, m->id);
    }
    if (rc < 0)
        buf_printf(err, "%s: cannot queue: %s", m->id, strerror(e));
    buf_free(&env);
    spool_msg_free(m);
    errno = e;
    return rc;
}

static const char *spool_where_dir(const struct spool *s, enum spool_where w)
{
    return w == SPOOL_HOLD ? s->hold : s->active;
}

void spool_data_path(const struct spool *s, const char *id, enum spool_where where, struct buf *out)
{
    buf_reset(out);
    buf_printf(out, "%s/%s.data", spool_where_dir(s, where), id);
}

struct envelope *spool_read_envelope(struct spool *s, const char *id, enum spool_where *where,
                                     struct buf *err)
{
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        return NULL;
    }
    struct buf text = BUF_INIT;
    enum spool_where w = SPOOL_ACTIVE;
    char *p = spool_path(s->active, id, NULL);
    int rc = read_file(p, &text, SPOOL_ENVELOPE_MAX);
    free(p);
    if (rc < 0 && errno == ENOENT) {
        w = SPOOL_HOLD;
        p = spool_path(s->hold, id, NULL);
        rc = read_file(p, &text, SPOOL_ENVELOPE_MAX);
        free(p);
    }
    if (rc < 0) {
        int e = errno;
        buf_printf(err, "%s: %s", id, strerror(e));
        buf_free(&text);
        errno = e;
        return NULL;
    }
    struct envelope *env = envelope_decode(text.data ? text.data : "", text.len, err);
    buf_free(&text);
    if (env == NULL) {
        errno = EINVAL;
        return NULL;
    }
    env->hold = w == SPOOL_HOLD;
    if (where)
        *where = w;
    return env;
}

int spool_append(struct spool *s, const char *id, const char *records, size_t len)
{
    return spool_append_sync(s, id, records, len, 1);
}

int spool_append_sync(struct spool *s, const char *id, const char *records, size_t len, int sync)
{
    char *p = spool_path(s->active, id, NULL);
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (write_all(fd, records, len) < 0 || (sync && fdatasync(fd) < 0)) {
        int e = errno;
        /* Cut a partial record off so the next append starts on a fresh line. */
        if (ftruncate(fd, st.st_size) == 0)
            (void)fdatasync(fd);
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

/* Moves a message between directories: envelope first out of active/, data first into it. */
static int spool_move(struct spool *s, const char *id, const char *from, const char *to,
                      int env_first)
{
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        return -1;
    }
    char *fe = spool_path(from, id, NULL), *fd = spool_path(from, id, ".data");
    char *te = spool_path(to, id, NULL), *td = spool_path(to, id, ".data");
    int rc;
    if (env_first) {
        rc = rename(fe, te);
        if (rc == 0 && rename(fd, td) < 0 && errno != ENOENT)
            rc = -1;
    } else {
        struct stat st;
        rc = stat(fe, &st);
        if (rc == 0 && rename(fd, td) < 0 && errno != ENOENT)
            rc = -1;
        if (rc == 0)
            rc = rename(fe, te);
    }
    int e = errno;
    if (rc == 0) {
        fsync_dir(to);
        fsync_dir(from);
    }
    free(fe);
    free(fd);
    free(te);
    free(td);
    errno = e;
    return rc;
}

int spool_hold(struct spool *s, const char *id)
{
    return spool_move(s, id, s->active, s->hold, 1);
}

int spool_release(struct spool *s, const char *id)
{
    return spool_move(s, id, s->hold, s->active, 0);
}

int spool_delete(struct spool *s, const char *id)
{
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        return -1;
    }
    const char *dirs[] = {s->active, s->hold};
    for (size_t i = 0; i < 2; i++) {
        char *e = spool_path(dirs[i], id, NULL), *d = spool_path(dirs[i], id, ".data");
        int rc = unlink(e);
        if (rc == 0)
            unlink(d);
        free(e);
        free(d);
        if (rc == 0) {
            fsync_dir(dirs[i]);
            return 0;
        }
    }
    errno = ENOENT;
    return -1;
}

int spool_remove(struct spool *s, const char *id)
{
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        return -1;
    }
    /* The envelope first: without it the data is an orphan that recovery removes. */
    char *e = spool_path(s->active, id, NULL), *d = spool_path(s->active, id, ".data");
    int rc = unlink(e);
    int err = errno;
    if (rc == 0)
        unlink(d);
    free(e);
    free(d);
    errno = err;
    return rc;
}

static int spool_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **spool_list(struct spool *s, enum spool_where where, size_t *count)
{
    size_t n = 0, cap = 16;
    char **list = xmalloc(cap * sizeof *list);
    DIR *d = opendir(spool_where_dir(s, where));
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!spool_valid_id(de->d_name))
                continue;
            if (where == SPOOL_ACTIVE && spool_in_round(s, de->d_name))
                continue;
            if (n + 2 > cap) {
                cap *= 2;
                list = xrealloc(list, cap * sizeof *list);
            }
            list[n++] = xstrdup(de->d_name);
        }
        closedir(d);
    }
    list[n] = NULL;
    qsort(list, n, sizeof *list, spool_cmp);
    if (count)
        *count = n;
    return list;
}

static void spool_quarantine(struct spool *s, const char *dir, const char *name, const char *why)
{
    char *from = spool_path(dir, name, NULL);
    char *to = spool_path(s->corrupt, name, NULL);
    if (rename(from, to) < 0)
        log_error("%s: cannot move to %s: %s", from, s->corrupt, strerror(errno));
    else
        log_error("%s: %s; moved to %s", name, why, s->corrupt);
    free(from);
    free(to);
}

/*
 * Cuts a torn tail (a crash or power cut in the middle of an unsynced
 * append: a partial line, NULs) off an envelope, keeping its first keep
 * bytes, so that the next append starts after the last complete record.
 */
static void spool_trim_torn(const char *path, size_t keep, size_t len)
{
    if (keep >= len)
        return;
    if (truncate(path, (off_t)keep) == 0) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fdatasync(fd);
            close(fd);
        }
        log_warning("%s: cut a torn tail of %zu bytes off the envelope (an append cut short by "
                    "a crash); its complete records are kept and the message is retried",
                    path, len - keep);
    } else {
        log_warning("%s: cannot cut a torn tail off the envelope: %s", path, strerror(errno));
    }
}

/*
 * Was this envelope left by a commit round that a crash cut short before its
 * syncfs returned (so never acknowledged)? Then it is empty, or a version 2
 * envelope without its commit record, or its data file is shorter than the
 * record says. An acknowledged message is never in any of these states.
 */
static int spool_cut_short(const struct buf *text, const char *data_path)
{
    static const char v2[] = "HONGYAN-ENVELOPE 2\n";
    /*
     * Empty, or starting with NUL bytes: its size reached the disk but not
     * its first page. The round's syncfs, before any 250, writes both.
     */
    if (text->len == 0 || text->data[0] == '\0')
        return 1;
    if (text->len < sizeof v2 - 1 || memcmp(text->data, v2, sizeof v2 - 1) != 0)
        return 0; /* version 1, or not an envelope at all: not ours to judge */
    long long size = -1;
    const char *p = text->data, *end = text->data + text->len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break; /* a torn last line does not count */
        if (eol - p > 2 && p[0] == 'C' && p[1] == ' ') {
            char num[32];
            size_t n = (size_t)(eol - p - 2);
            if (n < sizeof num) {
                memcpy(num, p + 2, n);
                num[n] = '\0';
                char *e;
                long long v = strtoll(num, &e, 10);
                if (*e == '\0' && v >= 0)
                    size = v;
            }
            break;
        }
        p = eol + 1;
    }
    if (size < 0)
        return 1;
    struct stat st;
    return stat(data_path, &st) == 0 && (long long)st.st_size < size;
}

static int spool_recover_dir(struct spool *s, const char *dir, const char *other)
{
    int bad = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        size_t len = strlen(name);
        struct stat st;
        char *self = spool_path(dir, name, NULL);
        int present = lstat(self, &st) == 0;
        free(self);
        if (!present)
            continue; /* moved along with its envelope already */
        if (len > 5 && strcmp(name + len - 5, ".data") == 0) {
            char *id = xstrndup(name, len - 5);
            char *env = spool_path(dir, id, NULL);
            char *env_other = spool_path(other, id, NULL);
            if (!spool_valid_id(id)) {
                spool_quarantine(s, dir, name, "unexpected file in the queue");
                bad++;
            } else if (stat(env, &st) == 0) {
                /* complete pair */
            } else if (stat(env_other, &st) == 0) {
                /* A hold or release was cut short between its two renames. */
                char *from = spool_path(dir, name, NULL), *to = spool_path(other, name, NULL);
                if (rename(from, to) == 0)
                    log_warning("%s: rejoined its envelope in %s", id, other);
                free(from);
                free(to);
            } else {
                /* A commit cut short before its envelope rename: never acknowledged. */
                char *p = spool_path(dir, name, NULL);
                unlink(p);
                log_warning("%s: removed data without an envelope (interrupted commit)", id);
                free(p);
            }
            free(id);
            free(env);
            free(env_other);
            continue;
        }
        if (!spool_valid_id(name)) {
            spool_quarantine(s, dir, name, "unexpected file in the queue");
            bad++;
            continue;
        }
        char *path = spool_path(dir, name, NULL);
        char *data = spool_path(dir, name, ".data");
        char *data_other = spool_path(other, name, ".data");
        struct buf text = BUF_INIT, err = BUF_INIT;
        struct envelope *e = NULL;
        size_t intact = 0;
        if (stat(data, &st) < 0 && stat(data_other, &st) == 0 && rename(data_other, data) == 0)
            log_warning("%s: rejoined its data file", name);
        int rrc = read_file(path, &text, SPOOL_ENVELOPE_MAX);
        if (rrc == 0 && spool_cut_short(&text, data)) {
            unlink(path);
            unlink(data);
            log_warning("%s: removed a commit cut short by a crash (never acknowledged)", name);
            goto next;
        }
        if (rrc < 0) {
            buf_printf(&err, "cannot read: %s", strerror(errno));
        } else if ((e = envelope_decode_prefix(text.data ? text.data : "", text.len, &intact,
                                               &err)) != NULL) {
            if (strcmp(e->queue_id, name) != 0) {
                buf_puts(&err, "queue id does not match the file name");
            } else if (stat(data, &st) < 0) {
                buf_puts(&err, "data file missing");
            } else {
                spool_trim_torn(path, intact, text.len);
                envelope_free(e);
                e = NULL;
                goto next;
            }
        }
        envelope_free(e);
        spool_quarantine(s, dir, name, buf_cstr(&err));
        if (stat(data, &st) == 0) {
            char *dn = xasprintf("%s.data", name);
            spool_quarantine(s, dir, dn, "data of a quarantined envelope");
            free(dn);
        }
        bad++;
    next:
        buf_free(&text);
        buf_free(&err);
        free(path);
        free(data);
        free(data_other);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return bad;
}

int spool_recover(struct spool *s)
{
    DIR *d = opendir(s->incoming);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char *p = spool_path(s->incoming, de->d_name, NULL);
            if (unlink(p) == 0)
                log_info("%s: removed unfinished incoming file", de->d_name);
            free(p);
        }
        closedir(d);
    }
    spool_check_filesystem(s->dir, s->sync_fd);
    int bad = spool_recover_dir(s, s->active, s->hold);
    bad += spool_recover_dir(s, s->hold, s->active);
    fsync_dir(s->active);
    fsync_dir(s->hold);
    fsync_dir(s->corrupt);
    return bad;
}

/* ---- DKIM at spool entry: reading back and prepending (see spool.h) ---- */

int spool_msg_read(struct spool_msg *m, struct buf *out, size_t max)
{
    if (m->failed_errno || spool_msg_flush(m) < 0) {
        errno = m->failed_errno;
        return -1;
    }
    if (m->size > max) {
        errno = EFBIG;
        return -1;
    }
    char *path = spool_path(m->s->incoming, m->id, ".data");
    int rc = read_file(path, out, max);
    free(path);
    return rc;
}

int spool_msg_truncate(struct spool_msg *m)
{
    if (m->failed_errno) {
        errno = m->failed_errno;
        return -1;
    }
    m->wlen = 0;
    if (ftruncate(m->fd, 0) < 0 || lseek(m->fd, 0, SEEK_SET) < 0) {
        m->failed_errno = errno;
        return -1;
    }
    m->size = 0;
    return 0;
}

/* Copies the first len bytes of in to the end of out, in the kernel when it can. */
static int spool_copy_fd(int in, int out, size_t len)
{
    loff_t off_in = 0;
    size_t left = len;
    while (left > 0) {
        ssize_t n = copy_file_range(in, &off_in, out, NULL, left, 0);
        if (n < 0 &&
            (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) &&
            off_in == 0)
            break; /* not on this file system: plain copy below */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO; /* the file is shorter than what we wrote */
            return -1;
        }
        left -= (size_t)n;
    }
    char b[SPOOL_WBUF];
    while (left > 0) {
        ssize_t n = pread(in, b, left < sizeof b ? left : sizeof b, off_in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        if (write_all(out, b, (size_t)n) < 0)
            return -1;
        off_in += n;
        left -= (size_t)n;
    }
    return 0;
}

int spool_msg_prepend(struct spool_msg *m, const void *data, size_t len)
{
    if (m->failed_errno || spool_msg_flush(m) < 0) {
        errno = m->failed_errno;
        return -1;
    }
    if (len == 0)
        return 0;
    char *data_path = spool_path(m->s->incoming, m->id, ".data");
    char *pre_path = spool_path(m->s->incoming, m->id, ".pre");
    int in = -1, out = -1, e;
    out = open(pre_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        goto fail;
    /* The data file is write-only (the receiving fd); read it through its name. */
    in = open(data_path, O_RDONLY | O_CLOEXEC);
    if (in < 0 || write_all(out, data, len) < 0 || spool_copy_fd(in, out, m->size) < 0)
        goto fail;
    if (rename(pre_path, data_path) < 0)
        goto fail;
    close(in);
    close(m->fd);
    m->fd = out; /* the commit syncs and renames the new file */
    m->size += len;
    free(data_path);
    free(pre_path);
    return 0;
fail:
    e = errno;
    if (in >= 0)
        close(in);
    if (out >= 0) {
        close(out);
        unlink(pre_path);
    }
    free(data_path);
    free(pre_path);
    errno = e;
    return -1;
}
