/*
 * The committed queue (see spool.h): reading a queued message's envelope,
 * appending its results, removing it, the operator's moves and the
 * listings. A message is either two files in active/ or hold/, or a record
 * in the journal (spool_journal.c), which every function here consults
 * first.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/spool_int.h"

static const char *spool_where_dir(const struct spool *s, enum spool_where w)
{
    return w == SPOOL_HOLD ? s->hold : s->active;
}

int spool_is_active(const struct spool *s, const char *id)
{
    if (!spool_valid_id(id))
        return 0;
    if (spool_journal_has(s, id))
        return 1;
    struct stat st;
    char *env = spool_path(s->active, id, NULL);
    int there = lstat(env, &st) == 0 && S_ISREG(st.st_mode);
    free(env);
    return there;
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
    struct envelope *journaled = spool_journal_envelope(s, id, err);
    if (journaled != NULL || errno != ENOENT) {
        if (journaled != NULL && where)
            *where = SPOOL_ACTIVE; /* a journaled message is queued; hold/ is files only */
        return journaled;
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
    /* A journaled message that stays queued moves to active/ with these records (synced). */
    int moved = spool_journal_materialize(s, id, records, len);
    if (moved == 0 || errno != ENOENT)
        return moved;
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

/*
 * Operator actions on a journaled message: refused (EBUSY) rather than
 * raced with a delivery that reads it from the journal; it is in active/
 * as files after its first deferral (docs/queue.md, hongyan queue).
 */
static int spool_journal_refuse(struct spool *s, const char *id)
{
    spool_journal_poll(s);
    if (!spool_journal_has(s, id))
        return 0;
    errno = EBUSY;
    return -1;
}

int spool_hold(struct spool *s, const char *id)
{
    if (spool_journal_refuse(s, id) < 0)
        return -1;
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
    if (spool_journal_refuse(s, id) < 0)
        return -1;
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
    int finished = spool_journal_finish(s, id);
    if (finished == 0 || errno != ENOENT)
        return finished;
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
    if (where == SPOOL_ACTIVE)
        spool_journal_ids(s, &list, &n, &cap);
    qsort(list, n, sizeof *list, spool_cmp);
    /* A message moving from the journal to active/ meanwhile is listed once. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && strcmp(list[kept - 1], list[i]) == 0)
            free(list[i]);
        else
            list[kept++] = list[i];
    }
    n = kept;
    list[n] = NULL;
    if (count)
        *count = n;
    return list;
}
