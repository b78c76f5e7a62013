/*
 * RFC 5321 paths and mailboxes (4.1.2), with the SMTPUTF8 extension of
 * RFC 6531 3.3. Pure functions: no I/O, no allocation, fuzzed by
 * fuzz/fuzz_address.c. The output is a normalised "local@domain" string in a
 * fixed array, so callers keep it on the stack.
 */
#ifndef HONGYAN_SMTP_ADDRESS_H
#define HONGYAN_SMTP_ADDRESS_H

#include <stddef.h>

#include "smtp/reply.h"

/* RFC 5321 4.5.3.1.1-3; the path limit counts the angle brackets. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

/* Options: what the caller allows. */
enum smtp_addr_opt {
    SMTP_ADDR_ALLOW_NULL = 1,       /* "<>" (MAIL FROM only) */
    SMTP_ADDR_ALLOW_UTF8 = 2,       /* the client said SMTPUTF8 (RFC 6531) */
    SMTP_ADDR_ALLOW_POSTMASTER = 4, /* "<Postmaster>" without a domain (RCPT, 4.1.1.3) */
    /* Any local part without a domain: the submission server completes it (RFC 6409 8.1). */
    SMTP_ADDR_ALLOW_UNQUALIFIED = 8,
};

/* Flags: what the address turned out to be. */
enum smtp_addr_flag {
    SMTP_ADDR_NULL = 1,       /* the null path; addr is "" */
    SMTP_ADDR_UTF8 = 2,       /* has octets above 127 */
    SMTP_ADDR_ROUTE = 4,      /* had a source route, dropped (RFC 5321 appendix C) */
    SMTP_ADDR_LITERAL = 8,    /* the domain is an address literal */
    SMTP_ADDR_QUOTED = 16,    /* the local part needs quoting (kept quoted in addr) */
    SMTP_ADDR_NO_DOMAIN = 32, /* "Postmaster" alone, or an allowed unqualified local part */
};

struct smtp_path {
    char addr[SMTP_PATH_MAX + 1]; /* normalised: local@domain, domain lower-cased ASCII */
    size_t len;
    size_t at; /* offset of the '@' in addr, or len when there is none */
    unsigned flags;
};

/*
 * Parses a path "<...>" at the start of s. On success returns 0 and sets
 * *end to the number of bytes consumed (just past '>'). On failure returns
 * -1 with a reply in err (501 syntax, 553 5.6.7 UTF-8 without SMTPUTF8).
 */
int smtp_path_parse(const char *s, size_t len, unsigned opts, struct smtp_path *out, size_t *end,
                    struct smtp_reply *err);

/* Parses the whole of s as a bare mailbox "local@domain"; 0 or -1 with err. */
int smtp_mailbox_parse(const char *s, size_t len, unsigned opts, struct smtp_path *out,
                       struct smtp_reply *err);

/* Whether s is a syntactically valid domain or address literal (RFC 5321 4.1.2). */
int smtp_domain_valid(const char *s, size_t len, int allow_utf8);

/* Length of the well-formed UTF-8 sequence (2-4 octets) at s, or 0 (RFC 3629). */
size_t smtp_utf8_seq(const unsigned char *s, size_t len);
/*
 * Postfix's printable(): replaces, in place, each byte of s that is neither
 * printable ASCII nor part of a well-formed UTF-8 sequence with repl ('?').
 * For text from the client (HELO name, AUTH user) that goes into a header
 * we write or a log line. Returns s.
 */
char *smtp_printable(char *s, char repl);

#endif
