/*
 * The journal's messages as the rest of the spool sees them (queue/journal.h
 * is the format): an index of the records not yet finished, by queue id,
 * which spool.c consults before active/ so that the queue manager and the
 * queue commands treat a journaled message as any queued one. Delivery owns
 * it (spool_journal_recover at its start): it appends the done-log, moves a
 * record that must stay queued into active/ files ("materializes" it),
 * quarantines damaged records and reclaims finished segments. Anyone else
 * (hongyan queue) only reads.
 *
 * Threads: the loop reads the index (lists, envelopes, hints) while results
 * are recorded on work-queue threads (finish, materialize), so every use
 * holds the index's mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/journal.h"
#include "queue/spool_int.h"

#define SPOOL_JOURNAL_BUCKETS 16384

struct jseg {
    uint64_t seq;
    uint64_t scanned; /* records before this offset are known (indexed, finished or damaged) */
    size_t pending;   /* indexed records not yet finished */
    int complete;     /* read to its end with no writer holding it: nothing more can come */
    struct journal_done_log done; /* its done-log, open once needed (owner only; fd -1 till then) */
    int done_unsynced;            /* records written since spool_journal_sync_done took it */
    struct jseg *next;
};

struct jent {
    char id[QUEUE_ID_MAX];
    struct jseg *seg;
    uint64_t offset, len;
    size_t data_len;
    char *env; /* the envelope text as recorded (CRC checked when indexed) */
    size_t env_len;
    struct jent *next;
};

struct spool_journal {
    pthread_mutex_t lock;
    int fd;    /* journal/, or -1 when there is none (yet) */
    int owner; /* delivery: may write done-logs, materialize, quarantine, reclaim */
    int loaded;
    int quarantined;   /* damaged records copied to corrupt/ (spool_journal_recover's count) */
    struct jseg *segs; /* oldest first */
    struct jent *buckets[SPOOL_JOURNAL_BUCKETS];
    size_t count;
    /*
     * What a scan reads, kept for the next (lock held): the queue manager
     * scans after every hint, and a new buffer of the records since the
     * last one each time (tens of KB) cost malloc_consolidate 1.4% of the
     * delivery process's CPU. One larger than SPOOL_JOURNAL_SCAN_KEEP (a
     * first scan of a whole segment) is given back.
     */
    struct buf scan;
};

#define SPOOL_JOURNAL_SCAN_KEEP (1u << 20)

/* What one segment's first scan needs: its done-log's finished offsets. */
struct jscan {
    const struct spool *s;
    struct jseg *seg;
    uint64_t *done;
    size_t ndone, cap;
    int first; /* the segment's first scan (at start, or by a queue command) */
};

static unsigned spool_journal_hash(const char *id)
{
    return hash_str(id) % SPOOL_JOURNAL_BUCKETS;
}

static struct jent *spool_journal_find(struct spool_journal *j, const char *id)
{
    for (struct jent *e = j->buckets[spool_journal_hash(id)]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void spool_journal_unlink_entry(struct spool_journal *j, struct jent *gone)
{
    for (struct jent **pp = &j->buckets[spool_journal_hash(gone->id)]; *pp; pp = &(*pp)->next) {
        if (*pp == gone) {
            *pp = gone->next;
            break;
        }
    }
    gone->seg->pending--;
    j->count--;
    free(gone->env);
    free(gone);
}

/* journal/, opened when it exists; a queue without one has no journaled mail. */
static int spool_journal_dir(const struct spool *s)
{
    struct spool_journal *j = s->jr;
    if (j->fd < 0) {
        char *p = spool_path(s->dir, JOURNAL_DIR, NULL);
        j->fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        free(p);
    }
    return j->fd;
}

struct spool_journal *spool_journal_new(void)
{
    struct spool_journal *j = xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->lock, NULL);
    j->fd = -1;
    return j;
}

static void spool_journal_reset(struct spool_journal *j);

void spool_journal_free(struct spool_journal *j)
{
    if (j == NULL)
        return;
    spool_journal_reset(j);
    buf_free(&j->scan);
    if (j->fd >= 0)
        close(j->fd);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

static struct jseg *spool_journal_seg(struct spool_journal *j, uint64_t seq)
{
    struct jseg **pp = &j->segs;
    while (*pp && (*pp)->seq < seq)
        pp = &(*pp)->next;
    if (*pp && (*pp)->seq == seq)
        return *pp;
    struct jseg *g = xcalloc(1, sizeof *g);
    g->seq = seq;
    g->scanned = JOURNAL_SEG_HEADER_SIZE;
    g->done.fd = -1;
    g->next = *pp;
    *pp = g;
    return g;
}

static int spool_journal_done(struct spool_journal *j, struct jseg *g, uint64_t offset,
                              enum journal_done_kind kind)
{
    if (g->done.fd < 0 && journal_done_open(j->fd, g->seq, &g->done) < 0)
        return -1;
    if (journal_done_write(&g->done, g->seq, offset, kind) < 0)
        return -1;
    g->done_unsynced = 1;
    return 0;
}

/* g's done-log synced now (lock held), and journal/ too after it was made. */
static int spool_journal_sync_seg_done(struct spool_journal *j, struct jseg *g)
{
    if (fdatasync(g->done.fd) < 0 || (g->done.created && fsync(j->fd) < 0))
        return -1;
    g->done.created = 0;
    g->done_unsynced = 0;
    return 0;
}

static void spool_journal_on_done(void *arg, uint64_t offset, enum journal_done_kind kind)
{
    struct jscan *sc = arg;
    if (sc->ndone == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        sc->done = xrealloc(sc->done, sc->cap * sizeof *sc->done);
    }
    sc->done[sc->ndone++] = offset;
}

static int spool_journal_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Is there a queued message id in active/ or hold/ (its envelope)? */
static int spool_journal_in_files(const struct spool *s, const char *id)
{
    const char *dirs[] = {s->active, s->hold};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        char *p = spool_path(dirs[i], id, NULL);
        int there = lstat(p, &st) == 0;
        free(p);
        if (there)
            return 1;
    }
    return 0;
}

/*
 * A damaged record (a valid header, a bad payload, valid records after it):
 * its bytes are copied to corrupt/ for the operator, logged, and it is
 * marked finished so that its segment can be reclaimed.
 */
static void spool_journal_quarantine(const struct spool *s, struct jseg *g,
                                     const struct journal_rec *rec, const char *bytes,
                                     uint64_t base)
{
    struct spool_journal *j = s->jr;
    char name[64];
    snprintf(name, sizeof name, "journal-%016" PRIx64 "-%" PRIu64, g->seq, rec->offset);
    char *path = spool_path(s->corrupt, name, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int ok =
        fd >= 0 && write_all(fd, bytes + (rec->offset - base), rec->len) == 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (ok || errno == EEXIST) {
        log_error("%s: journal record at %s/%016" PRIx64 ".seg offset %" PRIu64
                  " fails its checksum; copied to %s",
                  rec->id, JOURNAL_DIR, g->seq, rec->offset, path);
        j->quarantined++;
        if (spool_journal_done(j, g, rec->offset, JOURNAL_DONE) < 0)
            log_error("%s: cannot mark a damaged journal record: %s", rec->id, strerror(errno));
    } else {
        log_error("%s: damaged journal record; cannot copy it to %s: %s", rec->id, path,
                  strerror(errno));
    }
    free(path);
}

struct jfound {
    struct jscan *sc;
    const char *bytes;
    uint64_t base;
};

static void spool_journal_on_rec(void *arg, enum journal_found what, const struct journal_rec *rec)
{
    struct jfound *f = arg;
    struct jscan *sc = f->sc;
    const struct spool *s = sc->s;
    struct spool_journal *j = s->jr;
    if (sc->first && sc->ndone &&
        bsearch(&rec->offset, sc->done, sc->ndone, sizeof *sc->done, spool_journal_cmp_u64))
        return;
    if (what == JOURNAL_FOUND_DAMAGED) {
        if (j->owner)
            spool_journal_quarantine(s, sc->seg, rec, f->bytes, f->base);
        return;
    }
    if (spool_journal_find(j, rec->id) != NULL)
        return;
    /*
     * Moved to active/ before a crash lost its done-log record: the files
     * are the message now (materializing syncs them before it marks the
     * record).
     */
    if (sc->first && spool_journal_in_files(s, rec->id)) {
        if (j->owner && spool_journal_done(j, sc->seg, rec->offset, JOURNAL_MOVED) < 0)
            log_error("%s: cannot mark a journal record moved: %s", rec->id, strerror(errno));
        return;
    }
    struct jent *e = xcalloc(1, sizeof *e);
    str_copy(e->id, sizeof e->id, rec->id);
    e->seg = sc->seg;
    e->offset = rec->offset;
    e->len = rec->len;
    e->data_len = rec->data_len;
    e->env = xmalloc(rec->env_len + 1);
    memcpy(e->env, rec->env, rec->env_len);
    e->env[rec->env_len] = '\0';
    e->env_len = rec->env_len;
    unsigned h = spool_journal_hash(e->id);
    e->next = j->buckets[h];
    j->buckets[h] = e;
    j->count++;
    sc->seg->pending++;
}

/*
 * Reads segment g from where its last scan stopped, as far as may be read,
 * and indexes what is new. *live says whether smtpd still writes it.
 * Returns the number of new records indexed, or -1 when it cannot be read.
 */
static int spool_journal_scan_seg(const struct spool *s, struct jseg *g, int first, int *live)
{
    struct spool_journal *j = s->jr;
    struct jscan sc = {.s = s, .seg = g, .first = first};
    struct buf *bytes = &j->scan, log = BUF_INIT;
    *live = 0;
    if (g->complete)
        return 0;
    if (journal_segment_read(j->fd, g->seq, g->scanned, bytes, live) < 0)
        return -1;
    if (first && journal_done_read(j->fd, g->seq, &log) == 0) {
        journal_done_parse(log.data ? log.data : "", log.len, g->seq, spool_journal_on_done, &sc);
        if (sc.ndone > 1)
            qsort(sc.done, sc.ndone, sizeof *sc.done, spool_journal_cmp_u64);
    }
    size_t before = j->count;
    struct jfound f = {&sc, bytes->data, g->scanned};
    struct journal_scan_stats st;
    journal_scan(bytes->data ? bytes->data : "", bytes->len, g->scanned, g->seq,
                 spool_journal_on_rec, &f, &st);
    /*
     * A torn tail of a segment no writer holds is a round a crash cut
     * short (never acknowledged); of a live one it cannot be (only synced
     * bytes are read). Either way the scan goes on from the last valid
     * record next time.
     */
    if (st.torn && !*live && first)
        log_warning("journal: %s/%016" PRIx64 ".seg ends with %zu record(s) cut short by a crash "
                    "(never acknowledged); ignored",
                    JOURNAL_DIR, g->seq, st.torn);
    g->scanned = st.end;
    /* smtpd locks a segment before it names it, so one seen unlocked is never written again. */
    g->complete = !*live;
    free(sc.done);
    if (bytes->cap > SPOOL_JOURNAL_SCAN_KEEP)
        buf_free(bytes);
    buf_free(&log);
    return (int)(j->count - before);
}

/*
 * Gives back the segments whose records are all finished, that no writer
 * holds and that a newer segment follows, after a last look for records
 * written since the previous scan. Owner only, lock held.
 */
static void spool_journal_reclaim_idle(const struct spool *s)
{
    struct spool_journal *j = s->jr;
    for (struct jseg **pp = &j->segs; *pp && (*pp)->next;) {
        struct jseg *g = *pp;
        int live = 1;
        if (g->pending > 0 || spool_journal_scan_seg(s, g, 0, &live) != 0 || live) {
            pp = &g->next;
            continue;
        }
        journal_done_close(&g->done);
        if (journal_reclaim(j->fd, g->seq) < 0) {
            if (errno != EBUSY)
                log_warning("journal: cannot reclaim %016" PRIx64 ".seg: %s", g->seq,
                            strerror(errno));
            pp = &g->next;
            continue;
        }
        log_debug("journal: %016" PRIx64 ".seg reclaimed", g->seq);
        *pp = g->next;
        free(g);
    }
}

/* Finds segments not seen yet and reads what is new in each; lock held. */
static void spool_journal_poll_locked(const struct spool *s)
{
    struct spool_journal *j = s->jr;
    if (spool_journal_dir(s) < 0)
        return;
    int first = !j->loaded;
    j->loaded = 1;
    size_t n;
    uint64_t *seqs = journal_list(j->fd, ".seg", &n);
    int added = 0;
    for (size_t i = 0; i < n; i++) {
        struct jseg *known = NULL;
        for (struct jseg *g = j->segs; g; g = g->next)
            if (g->seq == seqs[i])
                known = g;
        /* Segments the last scan saw end: smtpd may have moved on. */
        if (known == NULL)
            added = 1;
        struct jseg *g = known ? known : spool_journal_seg(j, seqs[i]);
        int live;
        spool_journal_scan_seg(s, g, first, &live);
    }
    free(seqs);
    if (added && j->owner && !first)
        spool_journal_reclaim_idle(s);
}

/*
 * The hint's case: smtpd appended to the segment it holds, which is known
 * already. Returns 1 when that is all there can be: something new was
 * found there and smtpd still holds it (had it let go, it may have gone
 * on in a new segment, which only the directory shows).
 */
static int spool_journal_poll_known(const struct spool *s)
{
    struct spool_journal *j = s->jr;
    int found = 0, let_go = 0;
    for (struct jseg *g = j->segs; g; g = g->next) {
        if (g->complete)
            continue;
        int live, n = spool_journal_scan_seg(s, g, 0, &live);
        found += n > 0 ? n : 0;
        let_go |= !live;
    }
    return found > 0 && !let_go;
}

void spool_journal_poll(struct spool *s)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    if (!j->loaded || !spool_journal_poll_known(s))
        spool_journal_poll_locked(s);
    pthread_mutex_unlock(&j->lock);
}

/* Forgets what was indexed, so that the next poll reads every segment and done-log anew. */
static void spool_journal_reset(struct spool_journal *j)
{
    for (size_t b = 0; b < SPOOL_JOURNAL_BUCKETS; b++) {
        for (struct jent *e = j->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e->env);
            free(e);
        }
        j->buckets[b] = NULL;
    }
    for (struct jseg *g = j->segs, *next; g; g = next) {
        next = g->next;
        journal_done_close(&g->done);
        free(g);
    }
    j->segs = NULL;
    j->count = 0;
    j->loaded = 0;
}

int spool_journal_fd(const struct spool *s)
{
    return s->jr->fd;
}

int spool_journal_recover(struct spool *s)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    spool_journal_reset(j);
    j->owner = 1;
    j->quarantined = 0;
    if (spool_journal_dir(s) >= 0) {
        spool_journal_poll_locked(s);
        /* Done-logs whose segment is gone: a reclaim cut short after its rename. */
        size_t nlogs;
        uint64_t *logs = journal_list(j->fd, ".done", &nlogs);
        for (size_t i = 0; i < nlogs; i++) {
            struct jseg *g = j->segs;
            while (g && g->seq != logs[i])
                g = g->next;
            struct buf name = BUF_INIT;
            journal_done_name(logs[i], &name);
            if (g == NULL && unlinkat(j->fd, name.data, 0) == 0)
                log_info("journal: removed %s, the done-log of a reclaimed segment", name.data);
            buf_free(&name);
        }
        free(logs);
        spool_journal_reclaim_idle(s);
        if (j->count)
            log_info("journal: %zu queued message(s) in %s/", j->count, JOURNAL_DIR);
    }
    int bad = j->quarantined;
    pthread_mutex_unlock(&j->lock);
    return bad;
}

int spool_journal_has(const struct spool *s, const char *id)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    /* A queue command's first look: everything in the journal (delivery's comes at its start). */
    if (!j->loaded)
        spool_journal_poll_locked(s);
    int there = spool_journal_find(j, id) != NULL;
    pthread_mutex_unlock(&j->lock);
    return there;
}

struct envelope *spool_journal_envelope(struct spool *s, const char *id, struct buf *err)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    if (!j->loaded)
        spool_journal_poll_locked(s);
    struct jent *e = spool_journal_find(j, id);
    struct envelope *env = NULL;
    if (e == NULL)
        errno = ENOENT;
    else if ((env = envelope_decode(e->env, e->env_len, err)) == NULL)
        errno = EINVAL;
    pthread_mutex_unlock(&j->lock);
    return env;
}

void spool_journal_ids(struct spool *s, char ***list, size_t *n, size_t *cap)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    spool_journal_poll_locked(s);
    for (size_t b = 0; b < SPOOL_JOURNAL_BUCKETS; b++) {
        for (struct jent *e = j->buckets[b]; e; e = e->next) {
            if (*n + 2 > *cap) {
                *cap *= 2;
                *list = xrealloc(*list, *cap * sizeof **list);
            }
            (*list)[(*n)++] = xstrdup(e->id);
        }
    }
    pthread_mutex_unlock(&j->lock);
}

int spool_journal_where(const struct spool *s, const char *id, uint64_t *seq, uint64_t *data_off,
                        uint64_t *data_len)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    if (!j->loaded)
        spool_journal_poll_locked(s);
    struct jent *e = spool_journal_find(j, id);
    if (e) {
        *seq = e->seg->seq;
        *data_off = e->offset + JOURNAL_REC_HEADER_SIZE + e->env_len;
        *data_len = e->data_len;
    }
    pthread_mutex_unlock(&j->lock);
    if (e == NULL)
        errno = ENOENT;
    return e ? 0 : -1;
}

int spool_journal_finish(struct spool *s, const char *id)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    struct jent *e = spool_journal_find(j, id);
    int rc = -1, e_no = ENOENT;
    if (e != NULL && !j->owner) {
        e_no = EPERM;
    } else if (e != NULL) {
        /*
         * Not synced here: a discard or a local delivery done again after a
         * crash harms no one (Maildir's name makes it idempotent); after a
         * remote server's 250 the caller waits for the next round's
         * fdatasync of the done-logs (spool_finish_journaled) before the
         * message counts as gone (docs/queue.md, Results).
         */
        rc = spool_journal_done(j, e->seg, e->offset, JOURNAL_DONE);
        e_no = errno;
        if (rc == 0) {
            struct jseg *g = e->seg;
            spool_journal_unlink_entry(j, e);
            if (g->pending == 0)
                spool_journal_reclaim_idle(s);
        }
    }
    pthread_mutex_unlock(&j->lock);
    errno = e_no;
    return rc;
}

/* Writes name in dir durably enough to be renamed: created, written, fdatasync'd. */
static int spool_journal_write_file(const char *dir, const char *name, const char *suffix,
                                    const void *a, size_t alen, const void *b, size_t blen)
{
    char *p = spool_path(dir, name, suffix);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 || write_all(fd, a, alen) < 0 || write_all(fd, b, blen) < 0 || fdatasync(fd) < 0
                 ? -1
                 : 0;
    int e = errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    free(p);
    errno = e;
    return rc;
}

int spool_journal_materialize(struct spool *s, const char *id, const char *records, size_t len)
{
    struct spool_journal *j = s->jr;
    pthread_mutex_lock(&j->lock);
    struct jent *e = spool_journal_find(j, id);
    if (e == NULL || !j->owner) {
        pthread_mutex_unlock(&j->lock);
        errno = e == NULL ? ENOENT : EPERM;
        return -1;
    }
    int rc = -1, err = 0;
    /* The data, from the record (checked against its CRC again: it is read from disk anew). */
    struct journal_rec rec;
    struct buf seg_part = BUF_INIT;
    char *inc_data = spool_path(s->incoming, id, ".data"),
         *inc_env = spool_path(s->incoming, id, NULL);
    char *act_data = spool_path(s->active, id, ".data"), *act_env = spool_path(s->active, id, NULL);
    if (journal_record_read(j->fd, e->seg->seq, e->offset, e->len, &seg_part) < 0) {
        err = errno;
    } else if (journal_rec_parse(seg_part.data, seg_part.len, e->offset, e->offset, e->seg->seq,
                                 &rec) != JOURNAL_REC_VALID) {
        err = EIO;
    } else if (spool_journal_write_file(s->incoming, id, ".data", rec.data, rec.data_len, "", 0) <
                   0 ||
               spool_journal_write_file(s->incoming, id, NULL, e->env, e->env_len, records, len) <
                   0) {
        err = errno;
    } else if (rename(inc_data, act_data) < 0 || rename(inc_env, act_env) < 0 ||
               fsync_dir(s->active) < 0) {
        err = errno;
    } else {
        rc = 0;
    }
    if (rc < 0) {
        unlink(inc_data);
        unlink(inc_env);
        /* A rename that happened without its pair: the record is still the message. */
        struct stat st;
        if (lstat(act_env, &st) < 0)
            unlink(act_data);
    } else {
        /*
         * The files are durable; the mark is synced too, so that it reaches
         * the disk before a later removal of those files could.
         */
        struct jseg *g = e->seg;
        if (spool_journal_done(j, g, e->offset, JOURNAL_MOVED) < 0 ||
            spool_journal_sync_seg_done(j, g) < 0)
            log_warning("%s: moved from the journal to active/, but the journal's done-log "
                        "failed (%s): the next start notices the files",
                        id, strerror(errno));
        spool_journal_unlink_entry(j, e);
        if (g->pending == 0)
            spool_journal_reclaim_idle(s);
        log_debug("%s: moved from the journal to active/", id);
    }
    free(inc_data);
    free(inc_env);
    free(act_data);
    free(act_env);
    buf_free(&seg_part);
    pthread_mutex_unlock(&j->lock);
    errno = err;
    return rc;
}

int spool_journal_sync_done(struct spool *s)
{
    struct spool_journal *j = s->jr;
    size_t n = 0, cap = 0;
    int *fds = NULL, dir = 0, rc = 0, e = 0;
    /*
     * Taken under the lock, synced outside it: the loop reads the index
     * meanwhile. A duplicate descriptor, because a segment finished by
     * another thread meanwhile is reclaimed, its done-log closed (syncing
     * it then is harmless: the segment is gone durably first).
     */
    pthread_mutex_lock(&j->lock);
    for (struct jseg *g = j->segs; g; g = g->next) {
        if (!g->done_unsynced || g->done.fd < 0)
            continue;
        int fd = dup(g->done.fd);
        if (fd < 0) {
            rc = -1;
            e = errno;
            continue;
        }
        if (n == cap)
            fds = xrealloc(fds, (cap = cap ? cap * 2 : 4) * sizeof *fds);
        fds[n++] = fd;
        dir |= g->done.created; /* its name must reach the disk too, once */
        g->done.created = 0;
        g->done_unsynced = 0;
    }
    pthread_mutex_unlock(&j->lock);
    for (size_t i = 0; i < n; i++) {
        if (fdatasync(fds[i]) < 0 && rc == 0) {
            rc = -1;
            e = errno;
        }
        close(fds[i]);
    }
    if (dir && fsync(j->fd) < 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    free(fds);
    errno = e;
    return rc;
}
