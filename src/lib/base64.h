/*
 * Base64 (RFC 4648 section 4, the standard alphabet with padding): the one
 * codec that SMTP AUTH (both sides) and DKIM share. Decoding writes into a
 * caller's fixed buffer so that secrets need no heap copy.
 */
#ifndef HONGYAN_LIB_BASE64_H
#define HONGYAN_LIB_BASE64_H

#include <stddef.h>

#include "lib/buf.h"

enum base64_flags {
    /* Skip white space anywhere (DKIM's b=, bh= and p= may be folded, RFC 6376 3.5). */
    BASE64_FWS = 1,
    /* Refuse non-canonical input: unused bits of the last quantum set (RFC 4648 3.5). */
    BASE64_CANONICAL = 2,
};

/* The decoded length of len base64 characters can be no more than this. */
#define BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 3)

/* Appends the base64 of data to out. */
void base64_encode(const void *data, size_t len, struct buf *out);

/*
 * Decodes in[0..len) into out (at most max bytes). Returns the number of
 * bytes, or -1 when the input is not base64 (a bad character, data after
 * padding, a length that is not a whole number of quanta) or is too long.
 */
long base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t max);
/* The same, appending to a buf. 0 or -1. */
int base64_decode_buf(const char *in, size_t len, unsigned flags, struct buf *out);

#endif
