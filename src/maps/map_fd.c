/*
 * The registry of table files opened by the supervisor (map_fd.h): a small
 * array under a mutex, looked up by path when a table is opened. Lookups
 * happen when a table generation is built, not per query.
 */
#include "maps/map_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

static pthread_mutex_t map_fd_mu = PTHREAD_MUTEX_INITIALIZER;
static struct map_fd_file *map_fd_files;
static size_t map_fd_count;

void map_fd_files_free(struct map_fd_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (files[i].fd >= 0)
            close(files[i].fd);
        free(files[i].path);
    }
    free(files);
}

void map_fd_replace(struct map_fd_file *files, size_t n)
{
    pthread_mutex_lock(&map_fd_mu);
    struct map_fd_file *old = map_fd_files;
    size_t old_n = map_fd_count;
    map_fd_files = files;
    map_fd_count = files ? n : 0;
    pthread_mutex_unlock(&map_fd_mu);
    map_fd_files_free(old, old_n);
}

int map_fd_get(const char *path, int *fd)
{
    int found = 0, e = 0;
    *fd = -1;
    pthread_mutex_lock(&map_fd_mu);
    for (size_t i = 0; i < map_fd_count && !found; i++) {
        if (strcmp(map_fd_files[i].path, path) != 0)
            continue;
        found = 1;
        if (map_fd_files[i].fd < 0)
            e = map_fd_files[i].error ? map_fd_files[i].error : ENOENT;
        else if ((*fd = fcntl(map_fd_files[i].fd, F_DUPFD_CLOEXEC, 3)) < 0)
            e = errno;
    }
    pthread_mutex_unlock(&map_fd_mu);
    if (e)
        errno = e;
    return found;
}

int map_fd_read_file(const char *path, struct buf *out, size_t max)
{
    int fd;
    if (!map_fd_get(path, &fd))
        return read_file(path, out, max);
    if (fd < 0)
        return -1;
    int rc = read_fd_whole(fd, out, max);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int map_fd_private_copy(int fd, size_t max)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return -1;
    }
    int copy = memfd_create("hongyan-table", MFD_CLOEXEC);
    if (copy < 0)
        return -1;
    char chunk[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof chunk, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return copy;
        if (n < 0 || (size_t)off + (size_t)n > max || write_all(copy, chunk, (size_t)n) < 0) {
            int e = n >= 0 && (size_t)off + (size_t)n > max ? EFBIG : errno;
            close(copy);
            errno = e;
            return -1;
        }
        off += n;
    }
}
