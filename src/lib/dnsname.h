/*
 * The one check of a DNS name's syntax (RFC 1035 2.3.4 lengths, RFC 1123
 * 2.1 letters-digits-hyphens) that every module asks, with the variations
 * each needs as flags rather than as another copy of the loop.
 */
#ifndef HONGYAN_LIB_DNSNAME_H
#define HONGYAN_LIB_DNSNAME_H

#include <stddef.h>

enum dnsname_flags {
    DNSNAME_UNDERSCORE = 1 << 0,     /* '_' in labels: DKIM selectors, _dmarc, SRV-style names */
    DNSNAME_UTF8 = 1 << 1,           /* octets >= 0x80 (U-labels in mail, RFC 6531) */
    DNSNAME_ROOT_DOT = 1 << 2,       /* one trailing '.' (an absolute name) is allowed */
    DNSNAME_NO_EDGE_HYPHEN = 1 << 3, /* no label starts or ends with '-' (RFC 1123 2.1) */
};

/*
 * 1 when s[0..n) is a DNS name: labels of 1 to 63 octets joined by single
 * dots, 253 octets at most (not counting an allowed trailing dot), each
 * octet a letter, digit or '-' plus what the flags allow; else 0.
 */
int dnsname_ok(const char *s, size_t n, unsigned flags);

#endif
