/*
 * hongyan-postdrop: the setgid helper through which `sendmail`, run by any
 * local user, writes into maildrop/ and public/flush, as Postfix's postdrop
 * does. Those are mode 1730 and 0710, group setgid_group: nobody else can
 * list, read or write there. The helper adds one trusted line, the caller's
 * real uid, in front of the bytes it copies; the server parses everything
 * after that line as untrusted input (src/queue/pickup.c).
 *
 * It links with libc only, reads no configuration and no environment, and
 * touches only paths under the queue directory it is given, by descriptor,
 * without following a symbolic link in the last component. The group's
 * privilege is only "create a file in a maildrop": a directory given on
 * the command line is used only when its group is the one we run with and
 * nobody else may enter it. Root needs no group to write there: run by
 * root, the helper need not be setgid (a build not yet installed, as in
 * the README's tour), and gives its file the directory's group itself.
 *
 *   hongyan-postdrop QUEUE_DIR      stdin (sendmail's maildrop format) into maildrop/
 *   hongyan-postdrop -w QUEUE_DIR   wake the server (pick up now)
 *   hongyan-postdrop -f QUEUE_DIR   ask the server to flush the queue
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

/* The server refuses anything over message_size_limit; this only bounds a runaway writer. */
#define POSTDROP_MAX_BYTES (1LL << 30)

static int postdrop_fail(int code, const char *what, int err)
{
    fprintf(stderr, "hongyan-postdrop: %s: %s\n", what, strerror(err));
    return code;
}

/*
 * Opens QUEUE_DIR/sub as a path descriptor (search permission is all the
 * group has) and checks that it is ours to write in: a directory of our
 * effective group (any group for root), closed to other users. *gid (when
 * not NULL): the directory's group, which the server reads the files through.
 */
static int postdrop_open_dir(const char *queue_dir, const char *sub, int *out, gid_t *gid)
{
    int qfd = open(queue_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0)
        return postdrop_fail(EX_TEMPFAIL, queue_dir, errno);
    int dfd = openat(qfd, sub, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(qfd);
    if (dfd < 0) {
        fprintf(stderr, "hongyan-postdrop: %s/%s: %s (has the server been started once?)\n",
                queue_dir, sub, strerror(saved));
        return EX_TEMPFAIL;
    }
    struct stat st;
    if (fstat(dfd, &st) < 0) {
        close(dfd);
        return postdrop_fail(EX_TEMPFAIL, sub, errno);
    }
    if ((st.st_gid != getegid() && geteuid() != 0) || (st.st_mode & 07) != 0) {
        fprintf(stderr,
                "hongyan-postdrop: %s/%s is not a drop directory of this helper's group (gid %ld, "
                "mode %04o): the helper must be installed setgid to the setgid_group "
                "(scripts/install.sh does it)\n",
                queue_dir, sub, (long)st.st_gid, (unsigned)(st.st_mode & 07777));
        close(dfd);
        return EX_NOPERM;
    }
    *out = dfd;
    if (gid)
        *gid = st.st_gid;
    return 0;
}

/* A file name no other submission picks: seconds, microseconds, randomness (hex). */
static void postdrop_name(char *out, size_t size)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned int rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (unsigned int)getpid();
    snprintf(out, size, "%010llX%05lX%08X", (unsigned long long)tv.tv_sec,
             (unsigned long)tv.tv_usec, rnd);
}

static int postdrop_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int postdrop_copy(int fd)
{
    char buf[65536];
    long long total = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        total += n;
        if (total > POSTDROP_MAX_BYTES) {
            errno = EFBIG;
            return -1;
        }
        if (postdrop_write_all(fd, buf, (size_t)n) < 0)
            return -1;
    }
}

static int postdrop_drop(const char *queue_dir)
{
    int dfd;
    gid_t gid;
    int rc = postdrop_open_dir(queue_dir, "maildrop", &dfd, &gid);
    if (rc != 0)
        return rc;
    char name[64], tmp[80];
    postdrop_name(name, sizeof name);
    /* Names starting with '.' are not picked up: the file appears whole, by rename. */
    snprintf(tmp, sizeof tmp, ".tmp.%s", name);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = postdrop_fail(EX_TEMPFAIL, "maildrop", errno);
        close(dfd);
        return rc;
    }
    char head[64];
    int hl = snprintf(head, sizeof head, "HONGYAN-POSTDROP uid=%lu\n", (unsigned long)getuid());
    /*
     * fchmod: the caller's umask must not decide who may read the file. The
     * server reads it through the group (root's file gets it by fchown, a
     * setgid helper's has it already); syncfs covers the rename, as we
     * cannot open the directory (no read permission) to fsync it.
     */
    if ((gid != getegid() && fchown(fd, (uid_t)-1, gid) < 0) || fchmod(fd, 0640) < 0 ||
        postdrop_write_all(fd, head, (size_t)hl) < 0 || postdrop_copy(fd) < 0 || fsync(fd) < 0 ||
        renameat(dfd, tmp, dfd, name) < 0 || syncfs(fd) < 0) {
        rc = postdrop_fail(errno == EFBIG ? EX_DATAERR : EX_TEMPFAIL, "maildrop", errno);
        unlinkat(dfd, tmp, 0);
    }
    if (close(fd) < 0 && rc == 0)
        rc = postdrop_fail(EX_TEMPFAIL, "maildrop", errno);
    close(dfd);
    return rc;
}

/*
 * One record on the FIFO, tagged with the caller's uid so that the server
 * can apply authorized_flush_users. Records are shorter than PIPE_BUF, so
 * concurrent writers never interleave. No reader (server down) is not an
 * error for a wake-up: pickup runs at start.
 */
static int postdrop_poke(const char *queue_dir, char what)
{
    int dfd;
    int rc = postdrop_open_dir(queue_dir, "public", &dfd, NULL);
    if (rc != 0)
        return rc;
    int fd = openat(dfd, "flush", O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(dfd);
    if (fd < 0)
        return saved == ENXIO ? EX_UNAVAILABLE : postdrop_fail(EX_TEMPFAIL, "public/flush", saved);
    struct stat st;
    char rec[64];
    int n = snprintf(rec, sizeof rec, "%c %lu\n", what, (unsigned long)getuid());
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || postdrop_write_all(fd, rec, (size_t)n) < 0)
        rc = EX_TEMPFAIL;
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    /* A closed reader must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && argv[1][0] != '-') {
        int rc = postdrop_drop(argv[1]);
        if (rc == 0)
            postdrop_poke(argv[1], 'W'); /* no server running is fine: it picks up at start */
        return rc;
    }
    if (argc == 3 && (strcmp(argv[1], "-w") == 0 || strcmp(argv[1], "-f") == 0))
        return postdrop_poke(argv[2], argv[1][1] == 'w' ? 'W' : 'F');
    fprintf(stderr, "usage: hongyan-postdrop [-w | -f] QUEUE_DIR\n");
    return EX_USAGE;
}
