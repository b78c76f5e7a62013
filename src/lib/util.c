/* Shared helpers; see util.h. */
#include "lib/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/safedir.h"
#include "lib/xalloc.h"

size_t str_copy(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

void str_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

int str_eq_ci(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

int str_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *str_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

void str_span_trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n'))
        (*e)--;
}

char **strlist_split(const char *s, size_t *count)
{
    size_t n = 0, cap = 4;
    char **list = xmalloc(cap * sizeof *list);
    const char *p = s ? s : "";
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        int depth = 0;
        while (*p && (depth > 0 || (*p != ',' && !isspace((unsigned char)*p)))) {
            if (*p == '{')
                depth++;
            else if (*p == '}' && depth > 0)
                depth--;
            p++;
        }
        if (n + 2 > cap) {
            cap *= 2;
            list = xrealloc(list, cap * sizeof *list);
        }
        list[n++] = xstrndup(start, (size_t)(p - start));
    }
    list[n] = NULL;
    if (count)
        *count = n;
    return list;
}

void strlist_free(char **list)
{
    if (list == NULL)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

int str_to_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_file(const char *path, struct buf *out, size_t max)
{
    return read_file_flags(path, 0, out, max);
}

/* Reads fd to its end (at most max bytes) into out and closes it; 0 or -1 with errno. */
static int read_fd_all(int fd, struct buf *out, size_t max)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
        buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    return 0;
}

int read_file_flags(const char *path, int flags, struct buf *out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return -1;
    return read_fd_all(fd, out, max);
}

int read_fd_whole(int fd, struct buf *out, size_t max)
{
    return read_fd_range(fd, 0, -1, out, max);
}

int read_fd_range(int fd, off_t offset, off_t length, struct buf *out, size_t max)
{
    if (length >= 0 && (unsigned long long)length > max) {
        errno = EFBIG;
        return -1;
    }
    char chunk[65536];
    off_t done = 0;
    for (;;) {
        size_t want = sizeof chunk;
        if (length >= 0 && (unsigned long long)(length - done) < want)
            want = (size_t)(length - done);
        if (want == 0)
            return 0;
        ssize_t n = pread(fd, chunk, want, offset + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0 && length < 0)
            return 0;
        if (n == 0) {
            errno = EIO; /* the file ends before the range does */
            return -1;
        }
        if (out->len + (size_t)n > max) {
            errno = EFBIG;
            return -1;
        }
        buf_append(out, chunk, (size_t)n);
        done += n;
    }
}

int copy_fd_range(int in, off_t offset, size_t len, int out)
{
    loff_t off_in = offset;
    size_t left = len;
    while (left > 0) {
        ssize_t n = copy_file_range(in, &off_in, out, NULL, left, 0);
        if (n < 0 &&
            (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) &&
            left == len)
            break; /* not between these files (file systems, kernel): plain copy below */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO; /* in ends before the range does */
            return -1;
        }
        left -= (size_t)n;
    }
    char b[65536];
    while (left > 0) {
        ssize_t n = pread(in, b, left < sizeof b ? left : sizeof b, off_in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        if (write_all(out, b, (size_t)n) < 0)
            return -1;
        off_in += n;
        left -= (size_t)n;
    }
    return 0;
}

int read_file_trusted(const char *path, uid_t trusted_uid, struct buf *out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != trusted_uid)) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return read_fd_all(fd, out, max);
}

char *path_split(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        *base = path;
        return xstrdup(".");
    }
    *base = slash + 1;
    return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (str_copy(tmp, sizeof tmp, path) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int write_file_atomic_owned(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                            gid_t gid)
{
    const char *base;
    char *dir = path_split(path, &base);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dirfd < 0)
        return -1;
    int rc = safedir_write_file_at(dirfd, base, data, len, mode, uid, gid);
    int e = errno;
    close(dirfd);
    errno = e;
    return rc;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    return write_file_atomic_owned(path, data, len, mode, (uid_t)SAFEDIR_KEEP_ID,
                                   (gid_t)SAFEDIR_KEEP_ID);
}

static _Atomic pid_t own_pid_cached; /* threads may race to fill it: the same value */
static pthread_once_t own_pid_once = PTHREAD_ONCE_INIT;

static void own_pid_forget(void)
{
    own_pid_cached = 0;
}

static void own_pid_watch_forks(void)
{
    pthread_atfork(NULL, NULL, own_pid_forget);
}

pid_t own_pid(void)
{
    pthread_once(&own_pid_once, own_pid_watch_forks);
    if (own_pid_cached == 0)
        own_pid_cached = getpid();
    return own_pid_cached;
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            xalloc_die("getrandom failed");
        }
        p += n;
        len -= (size_t)n;
    }
}

int client_addr_bytes(const struct sockaddr *sa, int v6_prefix, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return -1;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    memcpy(key, a, 16);
    if (IN6_IS_ADDR_V4MAPPED(a))
        return 0; /* an IPv4 client on a dual-stack socket: its whole address */
    if (v6_prefix < 0)
        v6_prefix = 0;
    for (int bit = v6_prefix; bit < 128; bit++)
        key[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
    return 0;
}

void client_addr_key(const char *addr, int v6_prefix, char *key, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len;
    unsigned char b[16];
    if (sockaddr_from_ip(addr, 0, &ss, &len) != 0 ||
        client_addr_bytes((const struct sockaddr *)&ss, v6_prefix, b) != 0) {
        str_copy(key, size, addr);
        return;
    }
    if (ss.ss_family == AF_INET ||
        IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&ss)->sin6_addr)) {
        inet_ntop(AF_INET, b + 12, key, (socklen_t)size);
        return;
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, b, text, sizeof text);
    if (v6_prefix >= 128)
        str_copy(key, size, text);
    else
        snprintf(key, size, "%s/%d", text, v6_prefix < 0 ? 0 : v6_prefix);
}

int sockaddr_from_ip(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

static int dir_names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **dir_names(const char *path, const char *suffix, size_t max, size_t *count)
{
    size_t n = 0, slen = strlen(suffix);
    char **out = xcalloc(1, sizeof *out);
    DIR *dh = opendir(path);
    struct dirent *de;
    while (dh != NULL && n < max && (de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= slen || strcmp(de->d_name + l - slen, suffix) != 0)
            continue;
        out = xrealloc(out, (n + 2) * sizeof *out);
        out[n++] = xstrndup(de->d_name, l - slen);
        out[n] = NULL;
    }
    if (dh != NULL)
        closedir(dh);
    qsort(out, n, sizeof *out, dir_names_cmp);
    if (count)
        *count = n;
    return out;
}

size_t str_split_tabs(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab || n == max)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

unsigned hash_bytes(const void *data, size_t len)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = data; len > 0; p++, len--)
        h = (h ^ *p) * 16777619u;
    return h;
}
