/*
 * The operator's mail log: one line per event, shaped like Postfix's so that
 * pflogsumm and grep habits keep working:
 *   Nov 28 08:48:03 HOST hongyan/SERVICE[PID]: QUEUEID: to=<...>, status=sent (...)
 * SERVICE is Postfix's for the event (smtpd, cleanup, qmgr, smtp, ...: what
 * pflogsumm keys on), "hongyan" is syslog_name.
 * Lines go to stderr and, when maillog_file is set, to that file. Debug
 * tracing is separate (log_debug, off unless enabled) and never carries
 * secrets: callers redact AUTH payloads before logging anything.
 * Safe to call from any thread: each line is written whole, with one
 * write(2) or in a loop thread's batch (log_batch_thread).
 */
#ifndef HONGYAN_LIB_LOG_H
#define HONGYAN_LIB_LOG_H

#include "lib/buf.h"

void log_set_service(const char *service); /* "smtpd", "qmgr", "sendmail", ... */
/* The first part of the program name, NAME/SERVICE (syslog_name; default "hongyan"). */
void log_set_syslog_name(const char *name);
/*
 * Postfix's service name for the lines this thread writes until the next
 * call (smtpd, cleanup, qmgr, pickup, smtp, lmtp, virtual, bounce); NULL goes
 * back to the process's. Returns the one it replaces, to restore it after.
 * Static strings only.
 */
const char *log_scope(const char *service);
/* One info line as SERVICE, for call sites that speak for one service. */
void log_as(const char *service, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_set_hostname(const char *hostname);
/*
 * Appends a duration (microseconds; negative counts as 0) the way Postfix
 * writes delay= and delays=: two significant digits, never finer than
 * delay_logging_resolution_limit decimals (default 2: 0.01 s), whole
 * seconds from 10 s on, no trailing zeros: 0, 0.04, 0.3, 2.1, 37. Log
 * readers (pflogsumm, grep habits) see what Postfix would have written.
 */
void log_format_delay(struct buf *out, long long usec);
/* delay_logging_resolution_limit: 0 to 6 decimals (out of range is clamped). */
void log_set_delay_resolution(int decimals);
/* Opens (append) the extra log file; -1 with a message in err. NULL closes it. */
int log_open_file(const char *path, struct buf *err);
/*
 * The open log file's descriptor (-1 when none), and taking one over: the
 * worker, exec'd as mail_owner, writes to the file root opened for it.
 */
int log_file_fd(void);
void log_adopt_fd(int fd);
void log_set_stderr(int enabled);
/*
 * The calling thread (a worker's event loop) keeps its info lines until
 * log_flush(), which its loop calls after every iteration; any other line,
 * or another thread's, writes them out first. Also written before fork(2)
 * and at exit.
 */
void log_batch_thread(void);
void log_flush(void);
void log_set_debug(int enabled);
int log_debug_enabled(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
