/*
 * spf_int: what the parts of the SPF code share (spf.c evaluates,
 * spf_record.c parses, spf_macro.c expands). Not for use outside mailauth/spf*.
 */
#ifndef HONGYAN_MAILAUTH_SPF_INT_H
#define HONGYAN_MAILAUTH_SPF_INT_H

#include <stddef.h>

#include "lib/buf.h"
#include "mailauth/spf.h"

/* An IPv4 or IPv6 address as its network-order bytes (4 or 16 used). */
struct spf_ip {
    int v6;
    unsigned char b[16];
};

/* Parses an IPv4 or IPv6 address text into ip; 0 on success, -1 if not one. */
int spf_ip_parse(const char *text, struct spf_ip *ip);

/*
 * The macro scanner behind expansion and syntax checks (spf_macro.c; the
 * record parser runs it over a placeholder context). ends_with_macro (may be NULL) tells whether
 * the text ends in a macro-expand, for domain-end (RFC 7208 7.1).
 */
int spf_macro_run(const char *text, const struct spf_macro_ctx *ctx, enum spf_macro_mode mode,
                  struct buf *out, int *ends_with_macro);

/* Appends n bytes of remote text for logs, non-printable bytes as \xHH. */
void spf_put_safe(struct buf *b, const char *s, size_t n);

#endif
