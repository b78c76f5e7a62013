/* Descriptor-based directory and file helpers for privileged code; see safedir.h. */
#include "lib/safedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"

#define SAFEDIR_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static int safedir_owner_ok(uid_t owner, uid_t trusted_uid)
{
    return owner == 0 || owner == geteuid() || owner == trusted_uid;
}

/* A directory whose entries only root can change: a symlink in it is the administrator's. */
static int safedir_is_root_only(int dirfd)
{
    struct stat st;
    return fstat(dirfd, &st) == 0 && st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* Explains why openat(O_NOFOLLOW|O_DIRECTORY) of name failed; errno is preserved. */
static void safedir_explain(int dirfd, const char *name, const char *display, struct buf *err)
{
    int e = errno;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        buf_printf(err,
                   "%s is a symbolic link; refusing to follow it as root (make it a directory)",
                   display);
    else if (e == ENOTDIR || e == ELOOP)
        buf_printf(err, "%s is not a directory", display);
    else
        buf_printf(err, "%s: %s", display, strerror(e));
    errno = e;
}

static int safedir_check_owner(int fd, const char *display, uid_t trusted_uid, struct buf *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        buf_printf(err, "%s: %s", display, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        buf_printf(err, "%s is not a directory", display);
        errno = ENOTDIR;
        return -1;
    }
    if (!safedir_owner_ok(st.st_uid, trusted_uid)) {
        buf_printf(err,
                   "%s is owned by uid %ld, not by root or uid %ld (the mail owner, or the "
                   "keeper for its key directories); refusing to use it "
                   "(chown it, or pick another directory)",
                   display, (long)st.st_uid, (long)trusted_uid);
        errno = EPERM;
        return -1;
    }
    return 0;
}

int safedir_open_at(int dirfd, const char *name, const char *display, uid_t trusted_uid,
                    mode_t create_mode, int *created, struct buf *err)
{
    if (created)
        *created = 0;
    int fd = openat(dirfd, name, SAFEDIR_DIR_FLAGS);
    if (fd < 0 && errno == ENOENT && create_mode != 0) {
        if (mkdirat(dirfd, name, create_mode) == 0) {
            fd = openat(dirfd, name, SAFEDIR_DIR_FLAGS);
            /* mkdir is subject to the umask; the mode we hand over must be exact. */
            if (fd >= 0 && fchmod(fd, create_mode) < 0) {
                buf_printf(err, "%s: chmod: %s", display, strerror(errno));
                close(fd);
                return -1;
            }
            if (fd >= 0 && created)
                *created = 1;
        } else if (errno == EEXIST) {
            fd = openat(dirfd, name, SAFEDIR_DIR_FLAGS);
        } else {
            buf_printf(err, "cannot create %s: %s", display, strerror(errno));
            return -1;
        }
    }
    if (fd < 0) {
        if (errno == ENOENT && create_mode == 0)
            return -1;
        safedir_explain(dirfd, name, display, err);
        return -1;
    }
    if (safedir_check_owner(fd, display, trusted_uid, err) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int safedir_open(const char *path, uid_t trusted_uid, mode_t create_mode, int *created,
                 struct buf *err)
{
    if (created)
        *created = 0;
    if (path[0] == '\0') {
        buf_printf(err, "empty directory name");
        errno = EINVAL;
        return -1;
    }
    int fd = open(path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        buf_printf(err, "%s: %s", path[0] == '/' ? "/" : ".", strerror(errno));
        return -1;
    }
    char *copy = xstrdup(path);
    struct buf shown = BUF_INIT; /* the path walked so far, for messages */
    if (path[0] == '/')
        buf_putc(&shown, '/');
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    while (part != NULL) {
        char *next_part = strtok_r(NULL, "/", &save);
        int last = next_part == NULL;
        if (strcmp(part, ".") == 0) {
            part = next_part;
            continue;
        }
        if (shown.len > 0 && shown.data[shown.len - 1] != '/')
            buf_putc(&shown, '/');
        buf_append(&shown, part, strlen(part));
        if (strcmp(part, "..") == 0) {
            buf_printf(err, "%s: \"..\" is not allowed in a directory that root hands over", path);
            errno = EINVAL;
            goto fail;
        }
        mode_t mode = last ? create_mode : (create_mode ? 0755 : 0);
        struct buf why = BUF_INIT;
        int sub = safedir_open_at(fd, part, buf_cstr(&shown), trusted_uid, mode,
                                  last ? created : NULL, &why);
        if (sub < 0 && (errno == ELOOP || errno == ENOTDIR) && safedir_is_root_only(fd)) {
            /* The administrator's symlink: follow it, then check what it leads to. */
            buf_reset(&why);
            sub = openat(fd, part, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                buf_printf(&why, "%s: %s", buf_cstr(&shown), strerror(errno));
            else if (safedir_check_owner(sub, buf_cstr(&shown), trusted_uid, &why) < 0) {
                close(sub);
                sub = -1;
            }
        }
        if (sub < 0) {
            if (why.len == 0)
                buf_printf(&why, "%s: %s", buf_cstr(&shown), strerror(errno));
            buf_append(err, why.data, why.len);
            buf_free(&why);
            goto fail;
        }
        buf_free(&why);
        close(fd);
        fd = sub;
        part = next_part;
    }
    free(copy);
    buf_free(&shown);
    return fd;
fail : {
    int e = errno;
    close(fd);
    free(copy);
    buf_free(&shown);
    errno = e;
    return -1;
}
}

int safedir_create_temp(int dirfd, const char *prefix, mode_t mode, char *name, size_t size)
{
    /* O_EXCL on a random name: a planted file or symlink makes us pick another, never use it. */
    for (int tries = 0; tries < 16; tries++) {
        unsigned char rnd[6];
        random_bytes(rnd, sizeof rnd);
        int n = snprintf(name, size, "%s.tmp.%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1],
                         rnd[2], rnd[3], rnd[4], rnd[5]);
        if (n < 0 || (size_t)n >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return -1;
        if (fchmod(fd, mode) < 0) {
            int e = errno;
            close(fd);
            unlinkat(dirfd, name, 0);
            errno = e;
            return -1;
        }
        return fd;
    }
    errno = EEXIST;
    return -1;
}

int safedir_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                          uid_t uid, gid_t gid)
{
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    if (base != name) {
        errno = EINVAL; /* a name, not a path: the directory is dirfd */
        return -1;
    }
    char tmp[512];
    int fd = safedir_create_temp(dirfd, name, mode, tmp, sizeof tmp);
    if (fd < 0)
        return -1;
    /* Owner before content: the data is never readable by anyone it is not for. */
    if ((uid != (uid_t)SAFEDIR_KEEP_ID || gid != (gid_t)SAFEDIR_KEEP_ID) &&
        fchown(fd, uid, gid) < 0)
        goto fail;
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (renameat(dirfd, tmp, dirfd, name) < 0)
        goto fail;
    return fsync(dirfd);
fail : {
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
}
}

int safedir_open_owned(const char *path, uid_t parent_uid, uid_t trusted_uid, mode_t create_mode,
                       struct buf *err)
{
    const char *base;
    char *parent = path_split(path, &base);
    int pfd = safedir_open(parent, parent_uid, 0755, NULL, err);
    int fd = pfd >= 0 ? safedir_open_at(pfd, base, path, trusted_uid, create_mode, NULL, err) : -1;
    if (pfd >= 0)
        close(pfd);
    free(parent);
    return fd;
}
