/* Messages held for the inbound checks, in memory within a budget, else in a file; see hold.h. */
#include "smtpd/hold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/safedir.h"
#include "lib/util.h"

/* First allocation in memory; it doubles from there. */
#define SMTPD_HOLD_FIRST (64u * 1024)
/* Writes to the spill file are gathered up to this. */
#define SMTPD_HOLD_WBUF (64u * 1024)

void smtpd_hold_init(struct smtpd_hold *h, struct smtpd_hold_budget *budget, const char *spill_dir)
{
    memset(h, 0, sizeof *h);
    h->budget = budget;
    h->spill_dir = spill_dir;
    h->fd = -1;
}

/* An unlinked file for the message: nothing to clean up after a crash. */
static int smtpd_hold_open_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    char name[128];
    fd = safedir_create_temp(dirfd, ".hold", 0600, name, sizeof name);
    if (fd >= 0)
        unlinkat(dirfd, name, 0);
    int e = errno;
    close(dirfd);
    errno = e;
    return fd;
}

static int smtpd_hold_flush(struct smtpd_hold *h)
{
    if (h->wlen == 0)
        return 0;
    if (write_all(h->fd, h->wbuf, h->wlen) < 0)
        return -1;
    h->wlen = 0;
    return 0;
}

static void smtpd_hold_free_mem(struct smtpd_hold *h)
{
    if (h->budget)
        h->budget->used -= h->cap;
    free(h->mem);
    h->mem = NULL;
    h->len = h->cap = 0;
}

/* Moves what is in memory to a file; from now on everything goes there. */
static int smtpd_hold_spill(struct smtpd_hold *h)
{
    h->wbuf = malloc(SMTPD_HOLD_WBUF);
    if (h->wbuf == NULL)
        return -1;
    h->fd = smtpd_hold_open_file(h->spill_dir);
    if (h->fd < 0 || write_all(h->fd, h->mem ? h->mem : "", h->len) < 0) {
        int e = errno;
        free(h->wbuf);
        h->wbuf = NULL;
        if (h->fd >= 0)
            close(h->fd);
        h->fd = -1;
        errno = e;
        return -1;
    }
    smtpd_hold_free_mem(h);
    return 0;
}

/* Room for extra more bytes in memory within the budget; -1 when the message must spill. */
static int smtpd_hold_grow(struct smtpd_hold *h, size_t extra)
{
    if (extra > SIZE_MAX / 4 - h->len)
        return -1;
    size_t need = h->len + extra;
    if (need <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : SMTPD_HOLD_FIRST;
    while (cap < need)
        cap *= 2;
    size_t others = h->budget->used - h->cap;
    if (cap > h->budget->limit || others > h->budget->limit - cap)
        return -1;
    char *p = realloc(h->mem, cap);
    if (p == NULL)
        return -1; /* out of memory: the file takes it, the worker goes on */
    h->mem = p;
    h->budget->used = others + cap;
    h->cap = cap;
    return 0;
}

int smtpd_hold_append(struct smtpd_hold *h, const void *data, size_t len)
{
    if (h->fd < 0 && smtpd_hold_grow(h, len) < 0 && smtpd_hold_spill(h) < 0)
        return -1;
    h->size += len;
    if (h->fd < 0) {
        memcpy(h->mem + h->len, data, len);
        h->len += len;
        return 0;
    }
    if (h->wlen + len > SMTPD_HOLD_WBUF && smtpd_hold_flush(h) < 0)
        return -1;
    if (len >= SMTPD_HOLD_WBUF)
        return write_all(h->fd, data, len);
    memcpy(h->wbuf + h->wlen, data, len);
    h->wlen += len;
    return 0;
}

int smtpd_hold_view(struct smtpd_hold *h, const char **msg, size_t *len)
{
    if (h->fd < 0) {
        *msg = h->mem ? h->mem : "";
        *len = h->len;
        return 0;
    }
    if (h->map == NULL) {
        if (smtpd_hold_flush(h) < 0)
            return -1;
        free(h->wbuf);
        h->wbuf = NULL;
        /* size > 0: a message spills only while something is appended. */
        void *p = mmap(NULL, h->size, PROT_READ, MAP_SHARED, h->fd, 0);
        if (p == MAP_FAILED)
            return -1;
        h->map = p;
        h->map_len = h->size;
    }
    *msg = h->map;
    *len = h->map_len;
    return 0;
}

int smtpd_hold_spilled(const struct smtpd_hold *h)
{
    return h->fd >= 0;
}

void smtpd_hold_release(struct smtpd_hold *h)
{
    smtpd_hold_free_mem(h);
    if (h->map)
        munmap(h->map, h->map_len);
    h->map = NULL;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    free(h->wbuf);
    h->wbuf = NULL;
    h->wlen = h->size = 0;
}
