/*
 * msghdr_from: the domains of the From: field of a message header, the
 * author domains DMARC evaluates (RFC 7489 6.6.1) and the domain the DKIM
 * signer picks its key by. Comments and quoted strings are understood, so
 * "a@b" (x@y) <c@d> names d.
 */
#ifndef HONGYAN_SMTP_MSGHDR_FROM_H
#define HONGYAN_SMTP_MSGHDR_FROM_H

#include <stddef.h>

#include "lib/buf.h"

/* At most this many distinct domains are returned for one From: field. */
#define MSGHDR_FROM_MAX_DOMAINS 8

/*
 * Every domain of the one From: field of msg (CRLF or LF lines), lower
 * case, without a trailing dot, each once, in field order, at most
 * MSGHDR_FROM_MAX_DOMAINS. Returns the array (the caller frees each and the
 * array) with its length in *count, or NULL with the reason in why (no or
 * several From: fields, a mailbox without a usable domain).
 */
char **msghdr_from_domains(const char *msg, size_t len, size_t *count, struct buf *why);

/*
 * The one domain of the From: field: as msghdr_from_domains(), but NULL
 * (with the reason in why) also when its mailboxes have different domains.
 * The caller frees the result.
 */
char *msghdr_from_domain(const char *msg, size_t len, struct buf *why);

#endif
