/* Ownership and modes of maildrop/ and public/; see maildrop.h. */
#include "queue/maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens dfd/name (made if missing) as a directory, never through a link, and sets it up. */
static int maildrop_dir(int dfd, const char *queue_dir, const char *name, mode_t mode, uid_t owner,
                        gid_t group, struct buf *err)
{
    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
        buf_printf(err, "%s/%s: %s", queue_dir, name, strerror(errno));
        return -1;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        buf_printf(err, "%s/%s: %s", queue_dir, name,
                   errno == ELOOP || errno == ENOTDIR ? "not a directory (a symbolic link?)"
                                                      : strerror(errno));
        return -1;
    }
    if (fchown(fd, owner, group) < 0 || fchmod(fd, mode) < 0) {
        buf_printf(err, "%s/%s: %s", queue_dir, name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int maildrop_prepare(const char *queue_dir, uid_t owner, gid_t group, struct buf *err)
{
    int qfd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (qfd < 0) {
        buf_printf(err, "%s: %s", queue_dir, strerror(errno));
        return -1;
    }
    int rc = -1;
    int md = maildrop_dir(qfd, queue_dir, "maildrop", MAILDROP_DIR_MODE, owner, group, err);
    int pub = md < 0
                  ? -1
                  : maildrop_dir(qfd, queue_dir, "public", MAILDROP_PUBLIC_MODE, owner, group, err);
    if (pub >= 0) {
        if (mkfifoat(pub, "flush", MAILDROP_FIFO_MODE) < 0 && errno != EEXIST) {
            buf_printf(err, "%s/public/flush: %s", queue_dir, strerror(errno));
        } else {
            /* Opening a FIFO to read, without blocking, works with no writer. */
            int ff = openat(pub, "flush", O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
            struct stat st;
            if (ff < 0 || fstat(ff, &st) < 0 || !S_ISFIFO(st.st_mode)) {
                buf_printf(err, "%s/public/flush: %s", queue_dir,
                           ff < 0 ? strerror(errno) : "not a FIFO");
            } else if (fchown(ff, owner, group) < 0 || fchmod(ff, MAILDROP_FIFO_MODE) < 0) {
                buf_printf(err, "%s/public/flush: %s", queue_dir, strerror(errno));
            } else {
                rc = 0;
            }
            if (ff >= 0)
                close(ff);
        }
    }
    if (md >= 0)
        close(md);
    if (pub >= 0)
        close(pub);
    close(qfd);
    return rc;
}
