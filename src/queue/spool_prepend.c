/*
 * DKIM at spool entry (see spool.h): reading a message back before its
 * commit, and prepending a signature to it.
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

int spool_msg_read(struct spool_msg *m, struct buf *out, size_t max)
{
    if (m->failed_errno) {
        errno = m->failed_errno;
        return -1;
    }
    /* Still all in the receive buffer (a journal candidate): no file to make or read. */
    if (m->fd < 0 && m->wlen == m->size) {
        if (m->size > max) {
            errno = EFBIG;
            return -1;
        }
        buf_append(out, m->wbuf, m->wlen);
        return 0;
    }
    struct spool_data d;
    if (spool_msg_data_open(m, &d) < 0)
        return -1;
    int rc = spool_data_read(&d, out, max);
    int e = errno;
    spool_data_close(&d);
    errno = e;
    return rc;
}

int spool_msg_truncate(struct spool_msg *m)
{
    if (m->failed_errno) {
        errno = m->failed_errno;
        return -1;
    }
    m->wlen = 0;
    if (m->fd < 0) {
        m->size = 0;
        return 0;
    }
    if (ftruncate(m->fd, 0) < 0 || lseek(m->fd, 0, SEEK_SET) < 0) {
        m->failed_errno = errno;
        return -1;
    }
    m->size = 0;
    return 0;
}

int spool_msg_prepend(struct spool_msg *m, const void *data, size_t len)
{
    if (m->failed_errno == 0 && len == 0)
        return 0;
    if (m->failed_errno == 0 && m->fd < 0 && m->wlen == m->size && len <= SPOOL_WBUF - m->wlen) {
        /* Signature and message still fit the receive buffer: the journal may take them. */
        memmove(m->wbuf + len, m->wbuf, m->wlen);
        memcpy(m->wbuf, data, len);
        m->wlen += len;
        m->size += len;
        return 0;
    }
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
    if (in < 0 || write_all(out, data, len) < 0 || copy_fd_range(in, 0, m->size, out) < 0)
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
