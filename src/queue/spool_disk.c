/*
 * What the spool asks of its disk (see spool.h): the on-disk version
 * marker, read before anything else touches the queue, the owner of its
 * directories when root prepares them, and the start-up check that the
 * filesystem can keep the promise behind a 250.
 */
#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"

#define SPOOL_VERSION_FILE "spool-version"
#define SPOOL_VERSION_TAG "hongyan-spool "
#define SPOOL_EXT4_MAGIC 0xEF53

long spool_version_parse(const char *text, size_t len)
{
    size_t tag = sizeof SPOOL_VERSION_TAG - 1;
    /* At most 9 digits: no overflow, and far more versions than will ever be. */
    if (len < tag + 2 || len > tag + 10 || memcmp(text, SPOOL_VERSION_TAG, tag) != 0 ||
        text[len - 1] != '\n')
        return 0;
    long v = 0;
    for (size_t i = tag; i < len - 1; i++) {
        char c = text[i];
        if (c < '0' || c > '9' || (i == tag && c == '0'))
            return 0;
        v = v * 10 + (c - '0');
    }
    return v;
}

int spool_version_check(const char *queue_dir, struct buf *err)
{
    char *path = xasprintf("%s/%s", queue_dir, SPOOL_VERSION_FILE);
    struct buf text = BUF_INIT;
    int rc = -1;
    /*
     * Root reads it too (the supervisor, `hongyan queue`) in a directory
     * mail_owner writes: never through a symbolic link, never blocking on a FIFO.
     */
    int write_marker = 0;
    if (read_file_flags(path, O_NOFOLLOW | O_NONBLOCK, &text, 64) == 0) {
        long v = spool_version_parse(text.data ? text.data : "", text.len);
        if (v == 0)
            buf_printf(err,
                       "%s: not a spool version marker (expected \"%s%d\"); not touching "
                       "this queue",
                       path, SPOOL_VERSION_TAG, SPOOL_VERSION);
        else if (v > SPOOL_VERSION)
            buf_printf(err,
                       "%s: the queue was written by a newer hongyan (spool version %ld; "
                       "this one reads up to %d); run that release to drain it",
                       path, v, SPOOL_VERSION);
        else
            /*
             * Version 1 (two files per message) is read as it is: version
             * 2 only adds journal/. The marker says so, so that a release
             * that cannot read the journal refuses the queue.
             */
            write_marker = v < SPOOL_VERSION;
        rc = v >= 1 && v <= SPOOL_VERSION ? 0 : -1;
    } else if (errno == ENOENT) {
        /*
         * No marker: a new queue, or one written by a release from before
         * the marker, whose layout is version 1: nothing to migrate. The
         * marker is written durably so the next release can tell.
         */
        write_marker = 1;
    } else {
        buf_printf(err, "%s: %s", path, strerror(errno));
    }
    if (write_marker) {
        struct buf want = BUF_INIT;
        buf_printf(&want, "%s%d\n", SPOOL_VERSION_TAG, SPOOL_VERSION);
        rc = write_file_atomic(path, want.data, want.len, 0644);
        if (rc < 0)
            buf_printf(err, "%s: cannot write the spool version marker: %s", path, strerror(errno));
        buf_free(&want);
    }
    buf_free(&text);
    free(path);
    return rc;
}

int spool_dirs_hand_over(int qfd, const char *queue_dir, uid_t owner, gid_t group,
                         mode_t create_mode, struct buf *err)
{
    static const char *const names[] = {
        SPOOL_INCOMING_SMTPD, SPOOL_INCOMING_DELIVERY, "active", "hold", "corrupt", "journal"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof names / sizeof names[0]; i++) {
        char *display = xasprintf("%s/%s", queue_dir, names[i]);
        int fd = safedir_open_at(qfd, names[i], display, owner, create_mode, NULL, err);
        if (fd >= 0) {
            if (fchown(fd, owner, group) < 0) {
                buf_printf(err, "cannot give %s to its owner: %s", display, strerror(errno));
                rc = -1;
            }
            close(fd);
        } else if (create_mode != 0 || errno != ENOENT) {
            rc = -1; /* missing with create_mode 0: the worker makes it as owner */
        }
        free(display);
    }
    return rc;
}

/*
 * Does the spool sit on ext4 without a journal? Such a filesystem keeps
 * neither promise the spool relies on: its metadata is not crash-safe
 * (a crash needs fsck, which may drop directory entries), and every file created after many deleted
 * costs a scan of recently freed inodes (ext4 checks them only without a journal), so the cost per
 * message grows with the load. The kernel says whether a journal runs in
 * /sys/fs/ext4/DEV/journal_task ("<none>" without one). -1: cannot tell.
 */
static int spool_ext4_without_journal(int dir_fd)
{
    struct statfs sf;
    struct stat st;
    if (fstatfs(dir_fd, &sf) < 0 || sf.f_type != SPOOL_EXT4_MAGIC || fstat(dir_fd, &st) < 0)
        return -1;
    char *uevent = xasprintf("/sys/dev/block/%u:%u/uevent", major(st.st_dev), minor(st.st_dev));
    struct buf text = BUF_INIT;
    int rc = -1;
    if (read_file(uevent, &text, 4096) == 0) {
        const char *name = strstr(buf_cstr(&text), "DEVNAME=");
        if (name != NULL) {
            name += 8;
            size_t n = strcspn(name, "\n");
            char *task = xasprintf("/sys/fs/ext4/%.*s/journal_task", (int)n, name);
            struct buf jt = BUF_INIT;
            if (n > 0 && memchr(name, '/', n) == NULL && read_file(task, &jt, 64) == 0)
                rc = strncmp(buf_cstr(&jt), "<none>", 6) == 0;
            buf_free(&jt);
            free(task);
        }
    }
    buf_free(&text);
    free(uevent);
    return rc;
}

void spool_check_filesystem(const char *queue_dir, int dir_fd)
{
    if (spool_ext4_without_journal(dir_fd) == 1)
        log_warning("queue_directory %s is on ext4 without a journal: after a crash its "
                    "directories need fsck and may lose entries, and creating queue files "
                    "slows down as deleted ones pile up; use a journaled filesystem "
                    "(docs/queue.md, Durability)",
                    queue_dir);
}
