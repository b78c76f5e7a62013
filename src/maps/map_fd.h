/*
 * Table files opened for this process by its supervisor: the files of
 * smtp_sasl_password_maps stay root:root 0600, as Postfix keeps
 * sasl_passwd, and the root supervisor opens them and hands the descriptors
 * to the process that delivers (daemon/mapfd.c, docs/security.md). A path
 * in this registry is read from its descriptor and never opened by name; a
 * path the supervisor could not open (missing, a symbolic link it refused)
 * is registered with its errno, so the table fails as an open of our own
 * would have, without following that path here. Paths not in the registry
 * are opened by name, as everywhere else.
 *
 * Ownership: map_fd_replace takes the files it is given; map_fd_get returns
 * a descriptor of the caller's own.
 */
#ifndef HONGYAN_MAPS_MAP_FD_H
#define HONGYAN_MAPS_MAP_FD_H

#include <stddef.h>

#include "lib/buf.h"

struct map_fd_file {
    char *path; /* as the table reads it: FILE for texthash:/pgsql:, FILE.lmdb for hash:/lmdb: */
    int fd;     /* open read-only, or -1 */
    int error;  /* when fd is -1: the errno of the supervisor's open */
};

/*
 * Replaces the registry with files[0..n) (the array, its paths and
 * descriptors are taken over; NULL/0 empties it). The previous descriptors
 * are closed: tables already open hold copies of their own, so a table
 * generation built before a reload keeps answering from the old file.
 * Thread-safe.
 */
void map_fd_replace(struct map_fd_file *files, size_t n);
/* Closes and frees files[0..n) that are not handed to map_fd_replace. */
void map_fd_files_free(struct map_fd_file *files, size_t n);
/*
 * 1 when path is registered: *fd is then a new descriptor of it (dup,
 * close-on-exec), or -1 with errno set to the supervisor's error. 0 when
 * it is not registered (open it by name).
 */
int map_fd_get(const char *path, int *fd);
/* read_file() for a table's file: from the registered descriptor, else by name. 0 or -1 with errno.
 */
int map_fd_read_file(const char *path, struct buf *out, size_t max);
/*
 * A private copy of the file open on fd (at most max bytes) in a memfd, for
 * a library that opens by name (LMDB): /proc/self/fd/N of the copy opens
 * for this process, where reopening the root-owned original would be
 * refused. The memfd (close-on-exec), or -1 with errno.
 */
int map_fd_private_copy(int fd, size_t max);

#endif
