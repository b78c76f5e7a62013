/*
 * The spool on disk (see spool.h): queue ids, receiving into incoming/,
 * the durable commit into active/ with group commit on the work queue,
 * appended results and operator moves. Start-up recovery is in
 * spool_recover.c, DKIM's read-back and prepend in spool_prepend.c, the
 * version marker in spool_disk.c.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
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
#include "queue/journal.h"
#include "queue/maildrop.h"
#include "queue/spool_int.h"
#include "metrics/metrics.h"

struct spool_commit {
    struct spool_msg *m;
    spool_commit_cb cb;
    void *arg;
    struct buf env_text;
    int result, err_code;
    uint64_t started_ms; /* for the commit latency metric */
    int journaled;       /* committed to the journal: the round's syncfs is not its sync */
    struct spool_commit *next;
};

struct spool_waiter {
    spool_sync_cb cb;
    void *arg;
    /* spool_finish_journaled: the message removed in the round, and whether its record is synced */
    char finish[QUEUE_ID_MAX];
    int durable;
    int err_code, sync_err;
    struct spool_waiter *next;
};

/* What one sync round works on: the commits and the spool_sync() callers queued before it. */
struct spool_round {
    struct spool *s;
    struct spool_commit *commits;
    struct spool_waiter *waiters;
    struct spool_round *next_taken; /* on s->taken */
    int synced; /* it called syncfs (a round of failed commits alone does not) */
};

char *spool_path(const char *dir, const char *name, const char *suffix)
{
    return xasprintf("%s/%s%s", dir, name, suffix ? suffix : "");
}

static int spool_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0)
        return chmod(path, mode); /* mkdir is subject to the umask; 1733 must be exact */
    return errno == EEXIST ? 0 : -1;
}

const char *const spool_writers[2] = {SPOOL_INCOMING_SMTPD, SPOOL_INCOMING_DELIVERY};

struct spool *spool_open(const char *queue_dir, const char *incoming, struct buf *err)
{
    struct spool *s = xcalloc(1, sizeof *s);
    s->sync_fd = -1;
    pthread_mutex_init(&s->round_lock, NULL);
    pthread_mutex_init(&s->round_serial, NULL);
    s->jr = spool_journal_new();
    s->dir = xstrdup(queue_dir);
    s->writer = strcmp(incoming, SPOOL_INCOMING_DELIVERY) == 0;
    if (strcmp(incoming, spool_writers[s->writer]) != 0) {
        buf_printf(err, "%s: not an incoming directory of the spool", incoming);
        goto fail;
    }
    s->incoming = spool_path(queue_dir, incoming, NULL);
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
    journal_writer_free(s->jw);
    spool_journal_free(s->jr);
    free(s->dir);
    free(s->incoming);
    free(s->active);
    free(s->hold);
    free(s->corrupt);
    free(s->maildrop);
    free(s->public_dir);
    free(s->fifo);
    pthread_mutex_destroy(&s->round_lock);
    pthread_mutex_destroy(&s->round_serial);
    free(s);
}

void spool_attach(struct spool *s, struct event_base *base, struct workq *wq)
{
    s->base = base;
    s->wq = wq;
}

int spool_journal_enable(struct spool *s, struct buf *err)
{
    if (s->jw == NULL)
        s->jw = journal_writer_open(s->dir, err);
    return s->jw ? 0 : -1;
}

void spool_refresh(struct spool *s)
{
    spool_journal_poll(s);
}

int spool_journaled(const struct spool *s, const char *id)
{
    return spool_journal_has(s, id);
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

struct spool_msg *spool_msg_new(struct spool *s, struct buf *err)
{
    /*
     * Zeroed but for the 64 KB receive buffer, which is only ever read up
     * to wlen: clearing it was a memset of 64 KB per message.
     */
    struct spool_msg *m = xmalloc(sizeof *m);
    memset(m, 0, offsetof(struct spool_msg, wbuf));
    m->wlen = 0;
    m->s = s;
    m->fd = -1;
    if (s->jw != NULL) {
        /*
         * No file yet: a message that fits in the receive buffer is
         * committed to the journal without ever having one. The id is
         * unique without O_EXCL: spool_new_id never repeats one in this
         * process, and the other writer's differ in their last bit.
         */
        spool_new_writer_id(m->id, s->writer);
    }
    for (int tries = 0; tries < 10 && m->fd < 0 && s->jw == NULL; tries++) {
        spool_new_writer_id(m->id, s->writer);
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
    if (m->fd < 0 && s->jw == NULL) {
        buf_puts(err, "cannot find a free queue id");
        free(m);
        errno = EEXIST;
        return NULL;
    }
    m->env = envelope_new();
    str_copy(m->env->queue_id, sizeof m->env->queue_id, m->id);
    /* The same moment as the id's, so that a delivery's delay= can be told to the microsecond. */
    struct timeval made;
    m->env->arrival = spool_id_time(m->id, &made) == 0 ? made.tv_sec : time(NULL);
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

int spool_msg_flush(struct spool_msg *m)
{
    /* The data file, made when something needs it: more than the buffer, DKIM, a commit to files.
     */
    if (m->fd < 0) {
        char *path = spool_path(m->s->incoming, m->id, ".data");
        m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        free(path);
        if (m->fd < 0) {
            m->failed_errno = errno;
            return -1;
        }
    }
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

/*
 * Does this commit go to the journal? smtpd's messages whose data never
 * left the receive buffer (so no file was made for them), not headed for
 * hold/, and small enough for a record. The rest take today's files.
 */
static int spool_journal_fits(const struct spool *s, const struct spool_commit *c)
{
    const struct spool_msg *m = c->m;
    return s->jw != NULL && m->fd < 0 && !m->env->hold && strlen(m->id) < JOURNAL_ID_FIELD &&
           journal_writer_fits(s->jw, c->env_text.len, m->wlen);
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
 * One sync round, on a pool thread. The messages that fit the journal
 * (spool_journal_fits) are appended to its segment with one pwritev2 that
 * makes them durable (RWF_DSYNC: journal.h). The others are written and
 * renamed into active/, then one syncfs(2) makes all of that durable at
 * once: the files, the renames, and whatever spool_sync() callers wrote
 * before asking. So a round costs one fdatasync, one syncfs, or both,
 * however many messages it carries; smtpd's small messages need no syncfs.
 * The journaled messages that spool_finish_journaled() removes get their
 * done-log records first; a round whose only other business is making
 * those durable (after a remote 250) syncs just the done-logs written
 * since the last one, with fdatasync (spool_journal_sync_done).
 *
 * A crash before the syncfs returns may leave in active/ a message whose
 * files are not all on disk; it was never acknowledged, and recovery
 * recognises it by its commit record (missing, or naming a size its data
 * file does not have) and removes it. Until the round is done, spool_list()
 * hides its messages, so the queue manager cannot start on one early.
 */
static void spool_round_write(struct spool_round *r)
{
    struct spool *s = r->s;
    int any = 0, done_logs = 0;
    for (struct spool_waiter *w = r->waiters; w; w = w->next) {
        if (!w->finish[0]) {
            any = 1;
            continue;
        }
        w->err_code = spool_remove(s, w->finish) < 0 ? errno : 0;
        done_logs |= w->durable && w->err_code == 0;
    }
    size_t ncommits = 0, nj = 0;
    for (struct spool_commit *c = r->commits; c; c = c->next)
        ncommits++;
    struct journal_item *items = s->jw ? xcalloc(ncommits + 1, sizeof *items) : NULL;
    struct spool_commit **journaled = s->jw ? xcalloc(ncommits + 1, sizeof *journaled) : NULL;
    for (struct spool_commit *c = r->commits; c; c = c->next) {
        errno = 0;
        if (c->m->failed_errno) {
            c->result = -1;
            c->err_code = c->m->failed_errno;
            spool_unlink_incoming(s, c->m->id);
            continue;
        }
        if (spool_journal_fits(s, c)) {
            items[nj] = (struct journal_item){.id = c->m->id,
                                              .env = c->env_text.data,
                                              .env_len = c->env_text.len,
                                              .data = c->m->wbuf,
                                              .data_len = c->m->wlen};
            journaled[nj++] = c;
            c->journaled = 1;
            continue;
        }
        c->result = spool_commit_write(s, c->m, &c->env_text, 0);
        if (c->result == 0)
            c->result = spool_commit_publish(s, c->m);
        c->err_code = c->result < 0 ? errno : 0;
        any |= c->result == 0;
    }
    if (nj > 0) {
        /* One pwritev and one fdatasync of the segment for all of them. */
        int rc = journal_writer_commit(s->jw, items, nj), e = errno;
        for (size_t i = 0; i < nj; i++) {
            struct spool_commit *c = journaled[i];
            if (rc == 0 || items[i].durable) {
                c->result = 0;
                c->err_code = 0;
            } else if (items[i].seq == 0) {
                /* Never written (no segment could be taken): today's files instead. */
                c->journaled = 0;
                errno = 0;
                c->result = spool_commit_write(s, c->m, &c->env_text, 0);
                if (c->result == 0)
                    c->result = spool_commit_publish(s, c->m);
                c->err_code = c->result < 0 ? errno : 0;
                any |= c->result == 0;
            } else {
                c->result = -1;
                c->err_code = e;
            }
        }
        r->synced = 1;
    }
    free(items);
    free(journaled);
    if (!any && done_logs) {
        /* Only the done-logs: their fdatasync, no syncfs (which would cover them too). */
        r->synced = 1;
        int rc = spool_journal_sync_done(s), e = errno;
        for (struct spool_waiter *w = r->waiters; w; w = w->next)
            w->sync_err = rc < 0 ? e : 0;
        return;
    }
    if (!any)
        return;
    r->synced = 1;
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
        w->sync_err = rc < 0 ? e : 0;
    if (rc == 0)
        return;
    for (struct spool_commit *c = r->commits; c; c = c->next) {
        if (c->result == 0 && !c->journaled) {
            spool_uncommit(s, c->m->id);
            c->result = -1;
            c->err_code = e;
        }
    }
}

/* Moves what is waiting into r; round_lock held. */
static void spool_round_take(struct spool *s, struct spool_round *r)
{
    r->commits = s->pending;
    /* Waiters were pushed on the front: put them back in the order they came. */
    for (struct spool_waiter *w = s->waiting, *next; w; w = next) {
        next = w->next;
        w->next = r->waiters;
        r->waiters = w;
    }
    s->pending = s->pending_tail = NULL;
    s->waiting = NULL;
    r->next_taken = s->taken;
    s->taken = r;
}

/*
 * A round's job on a pool thread. Rounds write one at a time, and each
 * takes its batch when it may start, not when it was queued: while one
 * syncs, the next waits here and then takes everything that came
 * meanwhile at once, with no trip through the event loop in between
 * (which cost 0.35 ms per round at 20 sessions: docs/queue.md).
 */
static void spool_round_work(void *arg)
{
    struct spool_round *r = arg;
    struct spool *s = r->s;
    pthread_mutex_lock(&s->round_serial);
    pthread_mutex_lock(&s->round_lock);
    spool_round_take(s, r);
    s->round_queued = 0;
    pthread_mutex_unlock(&s->round_lock);
    spool_round_write(r);
    pthread_mutex_unlock(&s->round_serial);
}

/* Back on the loop: the round's callbacks, in the order its batch came. */
static void spool_round_done(void *arg)
{
    struct spool_round *r = arg;
    struct spool *s = r->s;
    s->rounds++;
    if (r->synced)
        metrics_spool_synced();
    pthread_mutex_lock(&s->round_lock);
    struct spool_round **pp = &s->taken;
    while (*pp != r)
        pp = &(*pp)->next_taken;
    *pp = r->next_taken;
    pthread_mutex_unlock(&s->round_lock);
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
        if (!w->finish[0]) {
            w->cb(w->arg, w->sync_err);
        } else {
            if (w->durable && w->err_code == 0 && w->sync_err)
                log_warning("%s: cannot sync its removal from the journal: %s", w->finish,
                            strerror(w->sync_err));
            w->cb(w->arg, w->err_code);
        }
        free(w);
        w = next;
    }
    free(r);
}

int spool_in_round(const struct spool *s, const char *id)
{
    int found = 0;
    pthread_mutex_t *lock = (pthread_mutex_t *)&s->round_lock; /* the list, not s, changes */
    pthread_mutex_lock(lock);
    for (const struct spool_round *r = s->taken; r && !found; r = r->next_taken)
        for (const struct spool_commit *c = r->commits; c && !found; c = c->next)
            found = strcmp(c->m->id, id) == 0;
    pthread_mutex_unlock(lock);
    return found;
}

/*
 * Something was added to the next round (round_lock held by the caller,
 * released here): a round is queued unless one is that has not taken its
 * batch yet. Without a work queue (the CLI) the round runs now.
 */
static void spool_round_request(struct spool *s)
{
    int queue_one = s->wq != NULL && !s->round_queued;
    if (queue_one)
        s->round_queued = 1;
    pthread_mutex_unlock(&s->round_lock);
    if (s->wq != NULL && !queue_one)
        return;
    struct spool_round *r = xcalloc(1, sizeof *r);
    r->s = s;
    if (s->wq == NULL) {
        spool_round_work(r);
        spool_round_done(r);
    } else {
        workq_submit(s->wq, spool_round_work, spool_round_done, r);
    }
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
    pthread_mutex_lock(&s->round_lock);
    if (s->pending_tail)
        s->pending_tail->next = c;
    else
        s->pending = c;
    s->pending_tail = c;
    spool_round_request(s);
}

static void spool_wait_round(struct spool *s, struct spool_waiter *w)
{
    pthread_mutex_lock(&s->round_lock);
    w->next = s->waiting;
    s->waiting = w;
    spool_round_request(s);
}

void spool_sync(struct spool *s, spool_sync_cb cb, void *arg)
{
    struct spool_waiter *w = xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    spool_wait_round(s, w);
}

void spool_finish_journaled(struct spool *s, const char *id, int durable, spool_sync_cb cb,
                            void *arg)
{
    struct spool_waiter *w = xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    str_copy(w->finish, sizeof w->finish, id);
    w->durable = durable;
    spool_wait_round(s, w);
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
