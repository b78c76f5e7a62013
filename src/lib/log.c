/*
 * Mail log writer; see log.h. Formatting happens into a local buffer so that
 * concurrent threads never interleave within a line.
 *
 * A worker's event-loop thread writes its info lines in one write(2) per
 * loop iteration (log_batch_thread, log_flush): smtpd logs three lines per
 * session, and each write(2) to an ext4 file costs about 2 us (a journal
 * handle for the file's times), three times what the same bytes cost in one
 * write. Lines wait at most for the end of the iteration that logged them;
 * warnings, errors and any other thread's line first write out what waits,
 * so the file keeps the order in which lines were logged.
 */
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

static char log_service[32] = "hongyan";
static char log_syslog_name[64] = "hongyan";
static __thread const char *log_thread_service;
static char log_hostname[256] = "localhost";
static int log_fd = -1;
static int log_to_stderr = 1;
static int log_debug_on = 0;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* Lines the loop thread logged in this iteration, and any line on its way out (log_lock). */
static struct buf log_batch = BUF_INIT;
static __thread int log_batching;
/* Beyond this, a batch is written at once: a long iteration must not hold a large buffer. */
#define LOG_BATCH_MAX 16384

/* Writes what log_batch holds to every destination; log_lock held. */
static void log_batch_write(void)
{
    if (log_batch.len == 0)
        return;
    if (log_to_stderr)
        write_all(STDERR_FILENO, log_batch.data, log_batch.len);
    if (log_fd >= 0)
        write_all(log_fd, log_batch.data, log_batch.len);
    log_batch.len = 0;
}

void log_flush(void)
{
    pthread_mutex_lock(&log_lock);
    log_batch_write();
    pthread_mutex_unlock(&log_lock);
}

static void log_batch_hooks(void)
{
    /* Before fork: a child forked with lines waiting would write them a second time. */
    pthread_atfork(log_flush, NULL, NULL);
    atexit(log_flush);
}

void log_batch_thread(void)
{
    static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
    pthread_once(&hooks_once, log_batch_hooks);
    log_batching = 1;
}

void log_set_service(const char *service)
{
    pthread_mutex_lock(&log_lock);
    str_copy(log_service, sizeof log_service, service);
    pthread_mutex_unlock(&log_lock);
}

void log_set_syslog_name(const char *name)
{
    pthread_mutex_lock(&log_lock);
    str_copy(log_syslog_name, sizeof log_syslog_name, name && *name ? name : "hongyan");
    pthread_mutex_unlock(&log_lock);
}

const char *log_scope(const char *service)
{
    const char *old = log_thread_service;
    log_thread_service = service;
    return old;
}

void log_set_hostname(const char *hostname)
{
    pthread_mutex_lock(&log_lock);
    str_copy(log_hostname, sizeof log_hostname, hostname);
    pthread_mutex_unlock(&log_lock);
}

int log_open_file(const char *path, struct buf *err)
{
    int fd = -1;
    if (path && *path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            buf_printf(err, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    pthread_mutex_lock(&log_lock);
    log_batch_write(); /* to the file they were logged for */
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int log_file_fd(void)
{
    return log_fd;
}

void log_adopt_fd(int fd)
{
    pthread_mutex_lock(&log_lock);
    log_batch_write();
    if (log_fd >= 0 && log_fd != fd)
        close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
}

void log_set_stderr(int enabled)
{
    log_to_stderr = enabled;
}

void log_set_debug(int enabled)
{
    log_debug_on = enabled;
}

int log_debug_enabled(void)
{
    return log_debug_on;
}

/* "Dec  7 10:59:27", formatted once a second per thread (localtime_r reads the zone each time). */
static const char *log_stamp(void)
{
    static __thread time_t stamp_second = (time_t)-1;
    static __thread char stamp[32];
    time_t now = time(NULL);
    if (now != stamp_second) {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
        stamp_second = now;
    }
    return stamp;
}

static void log_write(const char *severity, const char *fmt, va_list ap)
{
    char line[8192];
    const char *stamp = log_stamp();

    pid_t pid = own_pid();
    pthread_mutex_lock(&log_lock);
    int n =
        snprintf(line, sizeof line, "%s %s %s/%s[%ld]: %s", stamp, log_hostname, log_syslog_name,
                 log_thread_service ? log_thread_service : log_service, (long)pid, severity);
    pthread_mutex_unlock(&log_lock);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* Remote text may contain control bytes; a log line must stay one line. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len++] = '\n';

    /* Behind what waits; written now unless the loop thread's info line can wait too. */
    pthread_mutex_lock(&log_lock);
    if (log_batch.len + len > LOG_BATCH_MAX)
        log_batch_write();
    buf_append(&log_batch, line, len);
    if (!log_batching || severity[0] != '\0')
        log_batch_write();
    pthread_mutex_unlock(&log_lock);
}

#define LOG_DEFINE(name, severity, guard)                                                          \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        if (!(guard))                                                                              \
            return;                                                                                \
        int saved = errno;                                                                         \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_write(severity, fmt, ap);                                                              \
        va_end(ap);                                                                                \
        errno = saved;                                                                             \
    }

LOG_DEFINE(log_info, "", 1)
LOG_DEFINE(log_warning, "warning: ", 1)
LOG_DEFINE(log_error, "error: ", 1)
LOG_DEFINE(log_debug, "debug: ", log_debug_on)

void log_as(const char *service, const char *fmt, ...)
{
    int saved = errno;
    const char *old = log_scope(service);
    va_list ap;
    va_start(ap, fmt);
    log_write("", fmt, ap);
    va_end(ap);
    log_scope(old);
    errno = saved;
}

/* Written by the loop thread at start and reload, read by any thread that logs. */
static _Atomic int log_delay_decimals = 2;

void log_set_delay_resolution(int decimals)
{
    log_delay_decimals = decimals < 0 ? 0 : decimals > 6 ? 6 : decimals;
}

void log_format_delay(struct buf *out, long long usec)
{
    if (usec < 0)
        usec = 0;
    long long sec = usec / 1000000;
    usec %= 1000000;
    long long step = 1000000; /* the resolution shown, in microseconds */
    for (int i = log_delay_decimals; i > 0; i--)
        step /= 10;
    /* Two significant digits: a coarser step for larger values (0.26, 2.1, 37). */
    if (step < 1000000) {
        if (sec > 0)
            step = sec >= 10 ? 1000000 : 100000;
        else
            while (usec >= 100 * step)
                step *= 10;
    }
    usec += step / 2; /* rounded to the step; a carry into the next second keeps the step */
    if (usec >= 1000000) {
        sec++;
        usec -= 1000000;
    }
    buf_printf(out, "%lld", sec);
    if (usec < step)
        return;
    buf_putc(out, '.');
    for (long long rem = usec, unit = 100000; rem >= step && unit > 0; unit /= 10) {
        buf_putc(out, (char)('0' + rem / unit));
        rem %= unit;
    }
}
