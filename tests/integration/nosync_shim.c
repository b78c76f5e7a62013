/*
 * An LD_PRELOAD library that turns sync calls into no-ops that report
 * success, as a disk that lies about flushes would. The power-cut tests run
 * the server under it to show that they can fail: without its syncs,
 * acknowledged mail must be lost when the power goes, and a relayed message
 * sent again (tests/integration/test_powercut.py). Built by the test with
 * cc -shared.
 *
 * pwritev2 loses its RWF_DSYNC (the journal's segments are synced so).
 * With HONGYAN_NOSYNC_SUFFIX set, only the calls on files whose name ends
 * with it are no-ops (".done": the journal's done-logs); every other sync
 * call is the real one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int nosync_skips(int fd)
{
    const char *suffix = getenv("HONGYAN_NOSYNC_SUFFIX");
    if (suffix == NULL)
        return 1;
    char link[64], name[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, name, sizeof name - 1);
    if (n < 0)
        return 0;
    name[n] = '\0';
    size_t len = strlen(suffix);
    return (size_t)n >= len && strcmp(name + n - len, suffix) == 0;
}

int fsync(int fd)
{
    if (nosync_skips(fd))
        return 0;
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    if (nosync_skips(fd))
        return 0;
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int syncfs(int fd)
{
    if (getenv("HONGYAN_NOSYNC_SUFFIX") == NULL)
        return 0;
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    return real(fd);
}

void sync(void)
{
    if (getenv("HONGYAN_NOSYNC_SUFFIX") == NULL)
        return;
    void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "sync");
    real();
}

/* The server is built with 64-bit file offsets: its pwritev2 is glibc's pwritev64v2. */
static ssize_t nosync_pwritev2(const char *name, int fd, const struct iovec *iov, int iovcnt,
                               off_t offset, int flags)
{
    if (nosync_skips(fd))
        flags &= ~RWF_DSYNC;
    ssize_t (*real)(int, const struct iovec *, int, off_t, int) =
        (ssize_t(*)(int, const struct iovec *, int, off_t, int))dlsym(RTLD_NEXT, name);
    return real(fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
    return nosync_pwritev2("pwritev2", fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
    return nosync_pwritev2("pwritev64v2", fd, iov, iovcnt, offset, flags);
}
