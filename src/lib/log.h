/*
 * The operator's mail log: one line per event, shaped like Postfix's so that
 * pflogsumm and grep habits keep working:
 *   Nov 28 08:48:03 HOST hongyan/SERVICE[PID]: QUEUEID: to=<...>, status=sent (...)
 * Lines go to stderr and, when maillog_file is set, to that file. Debug
 * tracing is separate (log_debug, off unless enabled) and never carries
 * secrets: callers redact AUTH payloads before logging anything.
 * Safe to call from any thread: each line is written with one write(2).
 */
#ifndef HONGYAN_LIB_LOG_H
#define HONGYAN_LIB_LOG_H

#include "lib/buf.h"

void log_set_service(const char *service); /* "smtpd", "qmgr", "sendmail", ... */
void log_set_hostname(const char *hostname);
/* Opens (append) the extra log file; -1 with a message in err. NULL closes it. */
int log_open_file(const char *path, struct buf *err);
void log_set_stderr(int enabled);
void log_set_debug(int enabled);
int log_debug_enabled(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * An info line under another program name than the process's, where log
 * readers key on it: pflogsumm counts a message received only from a
 * "smtpd" line with client=, as Postfix's smtpd(8) writes it.
 */
void log_info_as(const char *service, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
