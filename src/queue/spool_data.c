/*
 * Reading a queued message's data (spool.h, struct spool_data): the one
 * seam between where the spool keeps a message's bytes and everyone who
 * reads them (delivery agents, bounces, the CLI, the gauges).
 */
#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "queue/journal.h"
#include "queue/spool_int.h"

/* Opens a whole data file as the range of its size; 0 or -1 with errno. */
static int spool_data_open_file(const char *path, struct spool_data *d)
{
    d->fd = -1;
    d->offset = 0;
    d->length = 0;
    /* O_NONBLOCK: a FIFO put in the file's place must not hang the reader. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    int bad = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (bad) {
        close(fd);
        errno = bad;
        return -1;
    }
    d->fd = fd;
    d->length = st.st_size;
    return 0;
}

int spool_data_open(const struct spool *s, const char *id, enum spool_where where,
                    struct spool_data *d, struct buf *err)
{
    d->fd = -1;
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        if (err)
            buf_printf(err, "%s: not a queue id", id);
        return -1;
    }
    /* A journaled message: its data is a range of its segment (docs/queue.md, The journal). */
    uint64_t seq, off, len;
    if (where == SPOOL_ACTIVE && spool_journal_where(s, id, &seq, &off, &len) == 0) {
        d->fd = journal_segment_open(spool_journal_fd(s), seq);
        if (d->fd >= 0) {
            d->offset = (off_t)off;
            d->length = (off_t)len;
            return 0;
        }
        int e = errno;
        if (err)
            buf_printf(err, "%s: journal segment %016" PRIx64 ": %s", id, seq, strerror(e));
        errno = e;
        return -1;
    }
    struct buf path = BUF_INIT;
    spool_data_path(s, id, where, &path);
    int rc = spool_data_open_file(buf_cstr(&path), d);
    int e = errno;
    if (rc < 0 && err)
        buf_printf(err, "%s: %s", buf_cstr(&path), strerror(e));
    buf_free(&path);
    errno = e;
    return rc;
}

int spool_msg_data_open(struct spool_msg *m, struct spool_data *d)
{
    d->fd = -1;
    if (m->failed_errno || spool_msg_flush(m) < 0) {
        errno = m->failed_errno;
        return -1;
    }
    /* The receiving descriptor is write-only: the data is read through its name. */
    char *path = spool_path(m->s->incoming, m->id, ".data");
    int rc = spool_data_open_file(path, d);
    int e = errno;
    free(path);
    errno = e;
    return rc;
}

void spool_data_close(struct spool_data *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

int spool_data_size(const struct spool *s, const char *id, enum spool_where where,
                    unsigned long long *size)
{
    if (!spool_valid_id(id)) {
        errno = ENOENT;
        return -1;
    }
    uint64_t seq, off, len;
    if (where == SPOOL_ACTIVE && spool_journal_where(s, id, &seq, &off, &len) == 0) {
        *size = len;
        return 0;
    }
    struct buf path = BUF_INIT;
    struct stat st;
    spool_data_path(s, id, where, &path);
    int rc = lstat(buf_cstr(&path), &st);
    int e = errno;
    buf_free(&path);
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        rc = -1;
        e = EINVAL;
    }
    if (rc == 0)
        *size = (unsigned long long)st.st_size;
    errno = e;
    return rc;
}

ssize_t spool_data_pread(const struct spool_data *d, off_t pos, void *out, size_t len)
{
    if (pos < 0 || pos > d->length) {
        errno = EINVAL;
        return -1;
    }
    if ((unsigned long long)(d->length - pos) < len)
        len = (size_t)(d->length - pos);
    if (len == 0)
        return 0;
    for (;;) {
        ssize_t n = pread(d->fd, out, len, d->offset + pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            errno = EIO; /* the file ends before the message does */
            return -1;
        }
        return n;
    }
}

int spool_data_read(const struct spool_data *d, struct buf *out, size_t max)
{
    return read_fd_range(d->fd, d->offset, d->length, out, max);
}

int spool_data_copy(const struct spool_data *d, int out_fd)
{
    return copy_fd_range(d->fd, d->offset, (size_t)d->length, out_fd);
}
