/*
 * Small header-block helpers for locally submitted mail (sendmail, pickup):
 * find a header field, and make the Date and Message-ID that RFC 6409 8.2
 * and 8.3 let a submission server add when they are missing.
 */
#ifndef HONGYAN_SMTP_MSGHDR_H
#define HONGYAN_SMTP_MSGHDR_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

/* Length of the header block including its terminating blank line (or len when there is none). */
size_t msghdr_block_len(const char *msg, size_t len);
/* Whether the header block has a field called name (case-insensitive). */
int msghdr_has(const char *msg, size_t len, const char *name);
#define MSGHDR_DATE_MAX 64
/* An RFC 5322 3.3 date-time in local time, as Date: and Received: carry it. */
void msghdr_date(time_t t, char out[MSGHDR_DATE_MAX]);
/* Appends "Date: <RFC 5322 3.3 date>\r\n". */
void msghdr_add_date(struct buf *out, time_t t);
/* Appends "Message-ID: <unique@host>\r\n". */
void msghdr_add_message_id(struct buf *out, const char *id, const char *host);

#endif
