/*
 * The journal's files (queue/journal.h): smtpd's writer, which takes a
 * segment (a free one to write over, or a new one filled with zeros), appends
 * a round's records with one pwritev2 that syncs them (RWF_DSYNC);
 * and the file operations delivery and the queue commands use: reading a
 * segment no further than its writer synced, the done-log, reclaiming.
 *
 * Who may read how far: smtpd holds an exclusive flock(2) on the segment it
 * writes, taken before the segment gets its name, so a segment without the
 * lock belongs to no running writer and may be read whole, and one with it
 * only up to the synced end its header names.
 */
#include "queue/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "version.h"

struct journal_writer {
    int dir_fd;  /* journal/ */
    int free_fd; /* journal/free/ */
    int seg_fd; /* the segment being written, locked; -1 before the first round or after an error */
    uint64_t seq, end;
    uint64_t seg_size;  /* JOURNAL_SEGMENT_SIZE; smaller in tests of recycling */
    time_t retry_after; /* no segment could be taken: none is tried before then */
    int take_errno;
};

/* How long after a failure to take a segment (disk full) rounds go without the journal. */
#define JOURNAL_RETRY_SECONDS 10

/* The highest number among names ending in suffix in the directory open on fd; 0 when none. */
static uint64_t journal_max_seq(int fd, const char *suffix)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        return 0;
    }
    rewinddir(d);
    uint64_t max = 0, seq;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (journal_name_seq(de->d_name, suffix, &seq) == 0 && seq > max)
            max = seq;
    closedir(d);
    return max;
}

/* Sorted numbers of the names ending in suffix in the directory open on fd. */
static uint64_t *journal_seqs(int fd, const char *suffix, size_t *n)
{
    size_t count = 0, cap = 8;
    uint64_t *out = xmalloc(cap * sizeof *out), seq;
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL && dup_fd >= 0)
        close(dup_fd);
    if (d != NULL) {
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (journal_name_seq(de->d_name, suffix, &seq) < 0)
                continue;
            if (count == cap) {
                cap *= 2;
                out = xrealloc(out, cap * sizeof *out);
            }
            size_t i = count++;
            while (i > 0 && out[i - 1] > seq) { /* insertion: a handful of segments */
                out[i] = out[i - 1];
                i--;
            }
            out[i] = seq;
        }
        closedir(d);
    }
    *n = count;
    return out;
}

uint64_t *journal_list(int journal_fd, const char *suffix, size_t *n)
{
    return journal_seqs(journal_fd, suffix, n);
}

struct journal_writer *journal_writer_open(const char *queue_dir, struct buf *err)
{
    struct journal_writer *w = xcalloc(1, sizeof *w);
    w->dir_fd = w->free_fd = w->seg_fd = -1;
    w->seg_size = JOURNAL_SEGMENT_SIZE;
#if HONGYAN_TEST_HOOKS
    /* The test build can make small segments, so that a short test fills and recycles many. */
    const char *size = getenv("HONGYAN_TEST_JOURNAL_SEGMENT_SIZE");
    long long want = size ? atoll(size) : 0;
    if (want >= 2 * JOURNAL_SEG_HEADER_SIZE && want <= JOURNAL_SEGMENT_SIZE)
        w->seg_size = (uint64_t)want;
#endif
    char *jdir = xasprintf("%s/%s", queue_dir, JOURNAL_DIR);
    char *fdir = xasprintf("%s/%s", queue_dir, JOURNAL_FREE_DIR);
    const char *bad = NULL;
    /* A directory made here is synced into its parent before any record in it is acknowledged. */
    int made_j = mkdir(jdir, 0700) == 0, made_f = 0;
    if ((!made_j && errno != EEXIST) ||
        (w->dir_fd = open(jdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
        (made_j && fsync_dir(queue_dir) < 0))
        bad = jdir;
    else if (((made_f = mkdir(fdir, 0700) == 0) == 0 && errno != EEXIST) ||
             (w->free_fd = open(fdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
             (made_f && fsync(w->dir_fd) < 0))
        bad = fdir;
    if (bad != NULL) {
        buf_printf(err, "%s: %s", bad, strerror(errno));
        free(jdir);
        free(fdir);
        journal_writer_free(w);
        return NULL;
    }
    free(jdir);
    free(fdir);
    /* A segment being filled with zeros when a writer stopped: never named, never used. */
    int dup_fd = dup(w->dir_fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL && dup_fd >= 0)
        close(dup_fd);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, ".new.", 5) == 0)
                unlinkat(w->dir_fd, de->d_name, 0);
        closedir(d);
    }
    return w;
}

void journal_writer_free(struct journal_writer *w)
{
    if (w == NULL)
        return;
    if (w->seg_fd >= 0)
        close(w->seg_fd); /* releases the lock: delivery may now read the segment whole */
    if (w->free_fd >= 0)
        close(w->free_fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w);
}

/* Leaves the current segment: nothing more is ever written to it. */
static void journal_writer_abandon(struct journal_writer *w)
{
    if (w->seg_fd >= 0)
        close(w->seg_fd);
    w->seg_fd = -1;
}

/*
 * Writes len zeros at from. Written out, not fallocate'd, for the reason
 * below: later writes over them must change no metadata.
 */
static int journal_pwritev_all(int fd, struct iovec *iov, size_t n, off_t off, int flags);

static int journal_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    struct iovec iov = {(void *)buf, len};
    return journal_pwritev_all(fd, &iov, 1, off, 0);
}

static int journal_write_zeros(int fd, uint64_t from, uint64_t len)
{
    static const unsigned char zeros[65536];
    for (uint64_t off = 0; off < len; off += sizeof zeros) {
        size_t n = len - off < sizeof zeros ? (size_t)(len - off) : sizeof zeros;
        if (journal_pwrite_all(fd, zeros, n, (off_t)(from + off)) < 0)
            return -1;
    }
    return 0;
}

/*
 * A new file of seg_size zeros, synced, open and locked on *fd,
 * named tmp in journal/. Written out, not fallocate'd: an extent still
 * "unwritten" turns written at the first write over it, a metadata change
 * that each round's fdatasync would have to commit.
 */
static int journal_segment_create(struct journal_writer *w, const char *tmp, int *fd)
{
    int f = openat(w->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0)
        return -1;
    if (flock(f, LOCK_EX) < 0)
        goto fail;
    if (journal_write_zeros(f, 0, w->seg_size) < 0)
        goto fail;
    if (fdatasync(f) < 0)
        goto fail;
    *fd = f;
    return 0;
fail:;
    int e = errno;
    close(f);
    unlinkat(w->dir_fd, tmp, 0);
    errno = e;
    return -1;
}

/*
 * Takes a segment numbered above every number in journal/ and free/ (so
 * the numbers never repeat, even when every segment was reclaimed): the
 * oldest free segment, or a new one. Its name is synced before any record
 * in it may be acknowledged.
 */
static int journal_writer_take(struct journal_writer *w)
{
    uint64_t seq = journal_max_seq(w->dir_fd, ".seg");
    uint64_t other = journal_max_seq(w->dir_fd, ".done");
    if (other > seq)
        seq = other;
    other = journal_max_seq(w->free_fd, ".seg");
    if (other > seq)
        seq = other;
    if (w->seq > seq)
        seq = w->seq;
    seq++;
    struct buf name = BUF_INIT, old = BUF_INIT;
    journal_seg_name(seq, &name);
    int fd = -1, from_free = 0;
    size_t nfree;
    uint64_t *frees = journal_seqs(w->free_fd, ".seg", &nfree);
    for (size_t i = 0; i < nfree && fd < 0; i++) {
        journal_seg_name(frees[i], &old);
        int f = openat(w->free_fd, old.data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (f < 0)
            continue; /* delivery removed it meanwhile (more than it keeps) */
        /* Locked before it has its new name: no reader ever sees it unlocked there. */
        if (flock(f, LOCK_EX) < 0 || fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(f);
            continue;
        }
        if (st.st_size != (off_t)w->seg_size) {
            /* Made for another segment size (a test build's): not reused. */
            unlinkat(w->free_fd, old.data, 0);
            close(f);
            continue;
        }
        if (renameat(w->free_fd, old.data, w->dir_fd, name.data) < 0) {
            close(f);
            continue;
        }
        fd = f;
        from_free = 1;
    }
    free(frees);
    int rc = 0;
    if (fd < 0) {
        struct buf tmp = BUF_INIT;
        buf_printf(&tmp, ".new.%s", name.data);
        rc = journal_segment_create(w, tmp.data, &fd);
        if (rc == 0 && renameat(w->dir_fd, tmp.data, w->dir_fd, name.data) < 0) {
            int e = errno;
            close(fd);
            unlinkat(w->dir_fd, tmp.data, 0);
            errno = e;
            rc = -1;
        }
        buf_free(&tmp);
    }
    if (rc == 0) {
        struct journal_seg_header h = {.seq = seq, .synced_end = JOURNAL_SEG_HEADER_SIZE};
        unsigned char enc[JOURNAL_SEG_HEADER_ENC];
        journal_seg_header_encode(&h, enc);
        if (pwrite(fd, enc, sizeof enc, 0) != (ssize_t)sizeof enc || fsync(w->dir_fd) < 0 ||
            (from_free && fsync(w->free_fd) < 0)) {
            int e = errno ? errno : EIO;
            close(fd);
            errno = e;
            rc = -1;
        }
    }
    buf_free(&name);
    buf_free(&old);
    if (rc < 0)
        return -1;
    w->seg_fd = fd;
    w->seq = seq;
    w->end = JOURNAL_SEG_HEADER_SIZE;
    return 0;
}

/*
 * pwritev2 until everything is written (short writes and IOV_MAX); 0 or -1
 * with errno. flags: 0, or RWF_DSYNC to make each write durable as it
 * returns (the range it wrote only).
 */
static int journal_pwritev_all(int fd, struct iovec *iov, size_t n, off_t off, int flags)
{
    while (n > 0) {
        int chunk = n > IOV_MAX ? IOV_MAX : (int)n;
        ssize_t got = pwritev2(fd, iov, chunk, off, flags);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (got == 0) {
            errno = EIO;
            return -1;
        }
        off += got;
        while (n > 0 && (size_t)got >= iov->iov_len) {
            got -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + got;
            iov->iov_len -= (size_t)got;
        }
    }
    return 0;
}

/* Writes items[0..n) at the segment's end and syncs them: one pwritev2 with RWF_DSYNC. */
static int journal_writer_flush(struct journal_writer *w, struct journal_item *items, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char(*hdrs)[JOURNAL_REC_HEADER_SIZE + JOURNAL_REC_TRAILER_SIZE] =
        xmalloc(n * sizeof *hdrs);
    struct iovec *iov = xmalloc(4 * n * sizeof *iov);
    size_t k = 0;
    uint64_t off = w->end;
    for (size_t i = 0; i < n; i++) {
        struct journal_item *it = &items[i];
        unsigned char *hdr = hdrs[i], *trailer = hdrs[i] + JOURNAL_REC_HEADER_SIZE;
        journal_rec_header_encode(hdr, w->seq, it->id, it->env_len, it->data_len);
        uint32_t crc = crc32c(0, hdr, JOURNAL_REC_HEADER_SIZE);
        crc = crc32c(crc, it->env, it->env_len);
        crc = crc32c(crc, it->data, it->data_len);
        journal_put_u32(trailer, crc);
        iov[k++] = (struct iovec){hdr, JOURNAL_REC_HEADER_SIZE};
        iov[k++] = (struct iovec){(void *)it->env, it->env_len};
        if (it->data_len > 0)
            iov[k++] = (struct iovec){(void *)it->data, it->data_len};
        iov[k++] = (struct iovec){trailer, JOURNAL_REC_TRAILER_SIZE};
        it->seq = w->seq;
        it->offset = off;
        it->len = journal_rec_size(it->env_len, it->data_len);
        off += it->len;
    }
    /*
     * RWF_DSYNC syncs the range written, as fdatasync would the whole
     * file: the same write and cache flush, but not the header block that
     * the previous round dirtied (below), which needs no sync.
     */
    int rc = journal_pwritev_all(w->seg_fd, iov, k, (off_t)w->end, RWF_DSYNC);
    int e = errno;
    free(iov);
    free(hdrs);
    if (rc < 0) {
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        items[i].durable = 1;
    w->end = off;
    /*
     * Tells readers how far they may go while we hold the segment; not
     * synced (after a crash the records speak for themselves). A failure
     * here changes nothing durable, but the next round takes a new segment.
     */
    struct journal_seg_header h = {.seq = w->seq, .synced_end = w->end};
    unsigned char enc[JOURNAL_SEG_HEADER_ENC];
    journal_seg_header_encode(&h, enc);
    if (pwrite(w->seg_fd, enc, sizeof enc, 0) != (ssize_t)sizeof enc)
        journal_writer_abandon(w);
    return 0;
}

int journal_writer_fits(const struct journal_writer *w, size_t env_len, size_t data_len)
{
    uint64_t size = journal_rec_size(env_len, data_len);
    return size != 0 && size <= w->seg_size - JOURNAL_SEG_HEADER_SIZE;
}

int journal_writer_commit(struct journal_writer *w, struct journal_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i].seq = items[i].offset = items[i].len = 0, items[i].durable = 0;
    size_t first = 0;
    uint64_t batch = 0;
    for (size_t i = 0; i <= n; i++) {
        uint64_t need = i < n ? journal_rec_size(items[i].env_len, items[i].data_len) : 0;
        if (i < n && need == 0) {
            errno = EFBIG;
            return -1;
        }
        if (i < n && need > w->seg_size - JOURNAL_SEG_HEADER_SIZE) {
            errno = EFBIG;
            return -1;
        }
        int full = w->seg_fd >= 0 && w->end + batch + need > w->seg_size;
        if (i == n || full || w->seg_fd < 0) {
            if (w->seg_fd >= 0 && journal_writer_flush(w, items + first, i - first) < 0) {
                journal_writer_abandon(w);
                return -1;
            }
            if (i == n)
                break;
            first = i;
            batch = 0;
            /* A full segment is left as it is: delivery reclaims it once its records are done. */
            if (full)
                journal_writer_abandon(w);
            if (w->seg_fd < 0) {
                /* After a failure, not before a pause: a full disk must not cost a try per round.
                 */
                time_t now = time(NULL);
                if (w->retry_after > now) {
                    errno = w->take_errno;
                    return -1;
                }
                if (journal_writer_take(w) < 0) {
                    w->take_errno = errno ? errno : EIO;
                    w->retry_after = now + JOURNAL_RETRY_SECONDS;
                    log_warning("journal: cannot take a segment: %s; small messages take files "
                                "for %d s",
                                strerror(w->take_errno), JOURNAL_RETRY_SECONDS);
                    errno = w->take_errno;
                    return -1;
                }
                w->retry_after = 0;
            }
        }
        batch += need;
    }
    return 0;
}

static int journal_open_seg(int journal_fd, uint64_t seq, int flags)
{
    struct buf name = BUF_INIT;
    journal_seg_name(seq, &name);
    /*
     * Not through a symbolic link, and without blocking on a FIFO put in
     * its place: the queue commands read the journal as root, in a
     * directory mail_owner writes.
     */
    int fd = openat(journal_fd, name.data, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    int e = errno;
    buf_free(&name);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        e = S_ISREG(st.st_mode) ? errno : EINVAL;
        close(fd);
        fd = -1;
    }
    errno = e;
    return fd;
}

/* Reads len bytes of fd from offset from into out (replaced); 0 or -1 with errno. */
static int journal_pread_range(int fd, uint64_t from, uint64_t len, struct buf *out)
{
    buf_reset(out);
    buf_reserve(out, len + 1);
    while (out->len < len) {
        ssize_t got = pread(fd, out->data + out->len, len - out->len, (off_t)(from + out->len));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break; /* shorter than expected: what is there is what the scan sees */
        out->len += (size_t)got;
    }
    out->data[out->len] = '\0';
    return 0;
}

int journal_segment_read(int journal_fd, uint64_t seq, uint64_t from, struct buf *out, int *live)
{
    int fd = journal_open_seg(journal_fd, seq, O_RDONLY);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    uint64_t limit = (uint64_t)st.st_size;
    *live = flock(fd, LOCK_SH | LOCK_NB) < 0;
    if (*live) {
        /* Held by smtpd: only what its rounds synced, as its header says. */
        unsigned char enc[JOURNAL_SEG_HEADER_ENC];
        struct journal_seg_header h;
        if (pread(fd, enc, sizeof enc, 0) != (ssize_t)sizeof enc ||
            journal_seg_header_decode(enc, sizeof enc, &h) < 0 || h.seq != seq)
            limit = JOURNAL_SEG_HEADER_SIZE;
        else if (h.synced_end < limit)
            limit = h.synced_end;
    }
    int rc = journal_pread_range(fd, from, limit > from ? limit - from : 0, out);
    int e = errno;
    close(fd); /* and the shared lock with it */
    errno = e;
    return rc;
}

int journal_segment_open(int journal_fd, uint64_t seq)
{
    return journal_open_seg(journal_fd, seq, O_RDONLY);
}

int journal_record_read(int journal_fd, uint64_t seq, uint64_t offset, uint64_t len,
                        struct buf *out)
{
    int fd = journal_open_seg(journal_fd, seq, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = journal_pread_range(fd, offset, len, out);
    int e = errno;
    close(fd);
    if (rc == 0 && out->len != len) {
        rc = -1;
        e = EIO;
    }
    errno = e;
    return rc;
}

int journal_done_open(int journal_fd, uint64_t seq, struct journal_done_log *out)
{
    struct buf name = BUF_INIT, bytes = BUF_INIT;
    journal_done_name(seq, &name);
    *out = (struct journal_done_log){.fd = -1};
    int fd = openat(journal_fd, name.data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd =
            openat(journal_fd, name.data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        out->created = fd >= 0;
    }
    int e = errno;
    buf_free(&name);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        rc = -1;
        errno = EINVAL;
    }
    /*
     * Written by an earlier run: the next record goes after the last slot
     * in use (one written before preallocation, or torn, included).
     */
    if (rc == 0 && st.st_size > 0)
        rc = journal_pread_range(fd, 0, (uint64_t)st.st_size, &bytes);
    if (rc == 0) {
        out->next = journal_done_used(bytes.data ? bytes.data : "", bytes.len);
        out->alloc = (uint64_t)st.st_size;
    }
    e = errno;
    buf_free(&bytes);
    if (rc < 0) {
        close(fd);
        errno = e;
        return -1;
    }
    out->fd = fd;
    return 0;
}

int journal_done_write(struct journal_done_log *d, uint64_t seq, uint64_t offset,
                       enum journal_done_kind kind)
{
    unsigned char rec[JOURNAL_DONE_REC_SIZE];
    journal_done_encode(rec, seq, offset, kind);
    if (d->next + sizeof rec > d->alloc) {
        uint64_t grow = JOURNAL_DONE_CHUNK - d->alloc % JOURNAL_DONE_CHUNK;
        if (journal_write_zeros(d->fd, d->alloc, grow) < 0)
            return -1;
        d->alloc += grow;
    }
    if (journal_pwrite_all(d->fd, rec, sizeof rec, (off_t)d->next) < 0)
        return -1;
    d->next += sizeof rec;
    return 0;
}

void journal_done_close(struct journal_done_log *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

int journal_done_append(int journal_fd, uint64_t seq, uint64_t offset, enum journal_done_kind kind)
{
    struct journal_done_log d;
    if (journal_done_open(journal_fd, seq, &d) < 0)
        return -1;
    int rc = journal_done_write(&d, seq, offset, kind);
    int e = errno;
    journal_done_close(&d);
    errno = e;
    return rc;
}

int journal_done_read(int journal_fd, uint64_t seq, struct buf *out)
{
    struct buf name = BUF_INIT;
    journal_done_name(seq, &name);
    int fd = openat(journal_fd, name.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    buf_free(&name);
    buf_reset(out);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        rc = -1;
        errno = EINVAL;
    }
    if (rc == 0)
        rc = journal_pread_range(fd, 0, (uint64_t)st.st_size, out);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int journal_reclaim(int journal_fd, uint64_t seq)
{
    int fd = journal_open_seg(journal_fd, seq, O_RDONLY);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        errno = EBUSY;
        return -1;
    }
    struct buf name = BUF_INIT, done = BUF_INIT;
    journal_seg_name(seq, &name);
    journal_done_name(seq, &done);
    int free_fd = openat(journal_fd, "free", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = -1;
    if (free_fd >= 0) {
        size_t nfree;
        free(journal_seqs(free_fd, ".seg", &nfree));
        if (nfree >= JOURNAL_FREE_KEEP)
            rc = unlinkat(journal_fd, name.data, 0);
        else
            rc = renameat(journal_fd, name.data, free_fd, name.data);
        /* Durable before the done-log goes: the records must not come back without it. */
        if (rc == 0)
            rc = fsync(journal_fd);
        if (rc == 0)
            rc = fsync(free_fd);
        if (rc == 0 && unlinkat(journal_fd, done.data, 0) < 0 && errno != ENOENT)
            rc = -1;
    }
    int e = errno;
    if (free_fd >= 0)
        close(free_fd);
    close(fd);
    buf_free(&name);
    buf_free(&done);
    errno = e;
    return rc;
}
