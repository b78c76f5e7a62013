/*
 * Directories and files that root creates and hands to a less privileged
 * owner, by descriptor: every step is openat(O_NOFOLLOW) relative to a
 * directory already opened and checked, and ownership changes go through
 * fchown/fchmod on the open descriptor, so a symbolic link or a renamed
 * directory planted by another user is refused instead of followed.
 */
#ifndef HONGYAN_LIB_SAFEDIR_H
#define HONGYAN_LIB_SAFEDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

/* "Leave this id as it is" for the uid/gid arguments below, as chown(2) takes it. */
#define SAFEDIR_KEEP_ID ((unsigned)-1)

/*
 * Opens the directory named name inside dirfd without following a symbolic
 * link, creating it with mode create_mode when it is missing and
 * create_mode is not 0 (the mode is then set exactly, whatever the umask).
 * The directory must be owned by root, by the caller's uid or by
 * trusted_uid; anything else (a symlink, a file, a directory owned by
 * someone else) is refused with a message naming display. *created (may be
 * NULL) tells whether it was made here. Returns the descriptor (O_CLOEXEC)
 * or -1; with create_mode 0 a missing directory is -1 with errno ENOENT and
 * nothing in err.
 */
int safedir_open_at(int dirfd, const char *name, const char *display, uid_t trusted_uid,
                    mode_t create_mode, int *created, struct buf *err);

/*
 * Opens an absolute or relative directory path for a privileged caller: it
 * walks one component at a time with safedir_open_at's rules (missing parts
 * are created mode 0755, the last one with create_mode when that is not 0).
 * A symbolic link is followed only where it sits in a directory owned by
 * root that nobody else can write (an administrator's /var/lib -> /srv),
 * never in one that trusted_uid or anybody else could have changed. ".." is
 * refused. Same results as safedir_open_at.
 */
int safedir_open(const char *path, uid_t trusted_uid, mode_t create_mode, int *created,
                 struct buf *err);

/*
 * A directory of one owner inside a directory of another: the keeper's
 * key directories in mail_owner's data_directory. The path up to the
 * parent is walked with parent_uid trusted, the last component with
 * trusted_uid (so one that parent_uid's user made in its place is refused).
 * Same results as safedir_open.
 */
int safedir_open_owned(const char *path, uid_t parent_uid, uid_t trusted_uid, mode_t create_mode,
                       struct buf *err);

/*
 * Durably replaces name inside dirfd with data: a fresh temp file made with
 * O_CREAT|O_EXCL|O_NOFOLLOW under a random name, fchown'd (uid/gid may be
 * SAFEDIR_KEEP_ID) and fchmod'd to mode before any byte is written, fsync,
 * renameat, fsync the directory. 0 or -1 with errno; on failure nothing
 * half-written remains and name is untouched.
 */
int safedir_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                          uid_t uid, gid_t gid);

/*
 * Creates a temp file in dirfd named prefix plus a random suffix with
 * O_CREAT|O_EXCL|O_NOFOLLOW and the given mode (set exactly); the name is
 * stored in name (size bytes). Returns the descriptor (O_RDWR|O_CLOEXEC)
 * or -1 with errno.
 */
int safedir_create_temp(int dirfd, const char *prefix, mode_t mode, char *name, size_t size);

#endif
