/*
 * Authentication-Results (RFC 8601): building the header field that tells
 * our users what SPF, DKIM and DMARC found, and removing fields from the
 * outside that claim to come from us (section 5), since a reader trusts a
 * field by its authserv-id.
 *
 * Ownership: authres_new() returns a builder freed with authres_free().
 */
#ifndef HONGYAN_MAILAUTH_AUTHRES_H
#define HONGYAN_MAILAUTH_AUTHRES_H

#include <stddef.h>

#include "lib/buf.h"

struct authres;

/* A builder for one header field; authserv_id is copied. */
struct authres *authres_new(const char *authserv_id);
void authres_free(struct authres *ar);

/*
 * Adds a resinfo: "method=result", an optional comment (NULL for none, put
 * in parentheses after the result), an optional reason (NULL for none,
 * reason="..."), then property/value pairs ("smtp.mailfrom", "a@b", ...)
 * ended by NULL. Values that are not RFC 2045 tokens (or local@domain) are
 * quoted; pairs with a NULL or empty value are left out.
 */
void authres_add(struct authres *ar, const char *method, const char *result, const char *comment,
                 const char *reason, ...) __attribute__((sentinel));

/*
 * Appends the whole field, "Authentication-Results: ID;\r\n\tspf=..." with
 * one resinfo per line, folded at 78 columns where a resinfo is longer, and
 * a final CRLF. With no resinfo the field says "ID; none" (RFC 8601 2.2).
 */
void authres_format(const struct authres *ar, struct buf *out);

/*
 * The authserv-id of an Authentication-Results field body (after the
 * colon), without comments, quotes and the optional version; into id.
 * -1 when the body has none.
 */
int authres_field_id(const char *body, size_t len, struct buf *id);

/*
 * Copies msg (CRLF) to out without the Authentication-Results fields of the
 * header whose authserv-id is ours (case-insensitive, with or without a
 * version: RFC 8601 5). Returns how many fields were removed.
 */
size_t authres_strip(const char *msg, size_t len, const char *authserv_id, struct buf *out);

#endif
