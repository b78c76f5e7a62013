/*
 * Start-up recovery of the spool (see spool.h, spool_recover_incoming and
 * spool_recover; docs/queue.md, Recovery): a writer's unfinished receipts
 * removed by that writer; commits a crash cut short removed, split pairs
 * rejoined, torn tails cut off, the unreadable quarantined in corrupt/ by
 * the committed queue's owner.
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

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/spool_int.h"

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

/*
 * Is id's envelope still in a writer's incoming directory, so that its data
 * file in dir is a commit another process is making right now (data
 * renamed, envelope not yet)? Each rename is atomic and an envelope goes
 * from incoming to dir (or other) only, so looking in dir and other again
 * after the incoming directories misses no envelope that moved meanwhile.
 */
static int spool_commit_in_progress(const struct spool *s, const char *dir, const char *other,
                                    const char *id)
{
    struct stat st;
    int found = 0;
    for (size_t i = 0; !found && i < sizeof spool_writers / sizeof spool_writers[0]; i++) {
        char *path = xasprintf("%s/%s/%s", s->dir, spool_writers[i], id);
        found = stat(path, &st) == 0;
        free(path);
    }
    char *env = spool_path(dir, id, NULL), *env_other = spool_path(other, id, NULL);
    found = found || stat(env, &st) == 0 || stat(env_other, &st) == 0;
    free(env);
    free(env_other);
    return found;
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
            } else if (spool_commit_in_progress(s, dir, other, id)) {
                /* A writer's commit between its two renames: its envelope comes next. */
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

int spool_recover_incoming(struct spool *s)
{
    int removed = 0;
    DIR *d = opendir(s->incoming);
    if (d == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        /*
         * An envelope still here whose data is already in active/ or hold/:
         * this writer's commit stopped between its two renames, so it was
         * never acknowledged. The id carries this writer's bit, so that
         * data file is ours to remove, and no other writer's.
         */
        if (spool_valid_id(de->d_name)) {
            const char *const published[] = {s->active, s->hold};
            for (size_t i = 0; i < 2; i++) {
                char *data = spool_path(published[i], de->d_name, ".data");
                if (unlink(data) == 0) {
                    log_warning("%s: removed data without an envelope (interrupted commit)",
                                de->d_name);
                    removed++;
                }
                free(data);
            }
        }
        char *p = spool_path(s->incoming, de->d_name, NULL);
        if (unlink(p) == 0) {
            log_info("%s: removed unfinished incoming file", de->d_name);
            removed++;
        }
        free(p);
    }
    closedir(d);
    return removed;
}

int spool_recover(struct spool *s)
{
    int bad = spool_recover_dir(s, s->active, s->hold);
    bad += spool_recover_dir(s, s->hold, s->active);
    /* After the files: a record whose files a move to active/ left there is marked moved. */
    bad += spool_journal_recover(s);
    fsync_dir(s->active);
    fsync_dir(s->hold);
    fsync_dir(s->corrupt);
    return bad;
}
