/*
 * Small helpers shared by every module: bounded string copies, lists as
 * main.cf writes them, and the one durable-write path (temp file, write,
 * fsync, rename, fsync the directory) that everything on disk goes through.
 */
#ifndef HONGYAN_LIB_UTIL_H
#define HONGYAN_LIB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lib/buf.h"

/* Copies at most size-1 bytes and always terminates; returns strlen(src). */
size_t str_copy(char *dst, size_t size, const char *src);
void str_lower(char *s);
int str_eq_ci(const char *a, const char *b);
/* The whole of s as a decimal number within [min, max]: 0, or -1 (nothing else taken). */
int str_to_long(const char *s, long min, long max, long *out);
int str_prefix_ci(const char *s, const char *prefix);
/* Trims ASCII white space in place; returns s advanced past leading space. */
char *str_trim(char *s);
/* Narrows [*s, *e) past white space (SP, HT, CR, LF: folding) at both ends. */
void str_span_trim(const char **s, const char **e);

/*
 * Splits a main.cf list: items separated by commas and/or white space, with
 * braces kept whole ("inline:{a=b, c=d}" is one item). Returns a
 * NULL-terminated array; free it with strlist_free(). *count may be NULL.
 */
char **strlist_split(const char *s, size_t *count);
/*
 * Splits line in place at tabs into at most max fields (the last keeps any
 * further tabs); returns how many. For the report journals' records.
 */
size_t str_split_tabs(char *line, char **fields, size_t max);
void strlist_free(char **list);
/*
 * The names in directory path that end in suffix ("" for all), without the
 * suffix, leaving out dot files; sorted, at most max. NULL-terminated, for
 * strlist_free(); empty when the directory cannot be read.
 */
char **dir_names(const char *path, const char *suffix, size_t max, size_t *count);

/* Writes everything, retrying on EINTR; 0 or -1 with errno. */
int write_all(int fd, const void *data, size_t len);
/* Reads a whole file (at most max bytes) into out; 0 or -1 with errno (EFBIG when too big). */
int read_file(const char *path, struct buf *out, size_t max);
/* The same with extra open(2) flags, such as O_NOFOLLOW for root reading where others write. */
int read_file_flags(const char *path, int flags, struct buf *out, size_t max);
/*
 * The same, for a file that only root or trusted_uid may have written (the
 * keeper reading its files in a directory the worker can write): not
 * through a symbolic link, and -1 with EPERM when another user owns it.
 */
int read_file_trusted(const char *path, uid_t trusted_uid, struct buf *out, size_t max);
/*
 * Reads the whole file open on fd (at most max bytes) into out with pread
 * from offset 0, leaving fd open and its offset alone: for a descriptor
 * shared by several readers (a table file the supervisor opened). 0 or -1
 * with errno (EFBIG when too big).
 */
int read_fd_whole(int fd, struct buf *out, size_t max);
/*
 * The same for bytes [offset, offset + length) of fd (length -1: to the
 * end of the file): -1 with EFBIG at once when length > max, with EIO when
 * the file ends before the range does.
 */
int read_fd_range(int fd, off_t offset, off_t length, struct buf *out, size_t max);
/*
 * Copies len bytes of in from offset to out at out's file position (which
 * advances), in the kernel (copy_file_range: a reflink or in-kernel copy)
 * where the two files allow it, by pread/write otherwise; in's offset is
 * left alone. 0, or -1 with errno (EIO when in ends before the range does).
 */
int copy_fd_range(int in, off_t offset, size_t len, int out);
/*
 * Splits path into its directory (returned, caller frees: "." when path has
 * no slash, "/" for a file at the root) and its last component (*base,
 * pointing into path).
 */
char *path_split(const char *path, const char **base);
/* mkdir -p with mode for the created parts; 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode);
int fsync_dir(const char *dir);
/*
 * Durably replaces path with data: a temp file in the same directory,
 * write, fsync, rename, fsync the directory. 0 or -1 with errno; on failure
 * nothing half-written remains.
 */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/*
 * The same, for root writing a file another user owns: the temp file is made
 * with O_CREAT|O_EXCL|O_NOFOLLOW under a random name and fchown'd to uid:gid
 * (SAFEDIR_KEEP_ID, (unsigned)-1, keeps either) before any byte is written,
 * so nothing planted in the directory is ever followed or reused.
 */
int write_file_atomic_owned(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                            gid_t gid);

uint64_t now_ms(void); /* monotonic */
/*
 * getpid(), once per process (glibc no longer caches it, and smtpd asked
 * six times per message); forgotten in a child after fork(2).
 */
pid_t own_pid(void);
/* FNV-1a of a string or of len bytes: the hash of every in-memory table keyed by ids or names. */
unsigned hash_str(const char *s);
unsigned hash_bytes(const void *data, size_t len);
/* An IPv4 or IPv6 address literal ("192.0.2.1", "2001:db8::1") and port as a socket address; -1 if
 * ip is neither. */
int sockaddr_from_ip(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len);
void random_bytes(void *out, size_t len); /* getrandom(2); aborts only if the kernel has none */
/*
 * The key a client counts under for per-client limits: an IPv4 address as
 * it is; an IPv6 address cut to its first v6_prefix bits (0..128), since one
 * host usually owns a whole /64 and must not multiply its share by rotating
 * addresses inside it. IPv4-mapped IPv6 addresses count as their IPv4
 * address. client_addr_bytes() gives it as 16 bytes (IPv4 as
 * ::ffff:a.b.c.d), -1 for a family that is neither; client_addr_key() as
 * text, an IPv6 key written "ADDR/PREFIX" below 128 and anything that is
 * not an address as it is. key gets at most size-1 bytes.
 */
int client_addr_bytes(const struct sockaddr *sa, int v6_prefix, unsigned char key[16]);
void client_addr_key(const char *addr, int v6_prefix, char *key, size_t size);

#endif
