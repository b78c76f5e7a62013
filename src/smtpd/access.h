/*
 * access(5) results and lookup keys, as Postfix's check_*_access: what a
 * table value (or a policy server's action=) means, and which keys a client,
 * HELO name or address is looked up under. Pure functions: no I/O, so the
 * parser can be fuzzed (fuzz/fuzz_access.c).
 */
#ifndef HONGYAN_SMTPD_ACCESS_H
#define HONGYAN_SMTPD_ACCESS_H

#include <stddef.h>

#include "lib/buf.h"

enum access_action {
    ACCESS_DUNNO,           /* no decision: the next restriction */
    ACCESS_OK,              /* OK, RELAY or all digits: permit this list */
    ACCESS_REJECT,          /* REJECT [text], 5NN [text] */
    ACCESS_DEFER,           /* DEFER [text], 4NN [text] */
    ACCESS_DEFER_IF_PERMIT, /* DEFER_IF_PERMIT [text] */
    ACCESS_DEFER_IF_REJECT, /* DEFER_IF_REJECT [text] */
    ACCESS_HOLD,            /* HOLD [text]: the message goes to hold/ */
    ACCESS_DISCARD,         /* DISCARD [text]: accepted and dropped */
    ACCESS_PREPEND,         /* PREPEND header: text */
    ACCESS_REDIRECT,        /* REDIRECT user@domain */
    ACCESS_WARN,            /* WARN [text]: logged only */
    ACCESS_INFO,            /* INFO [text]: logged only */
    ACCESS_UNSUPPORTED,     /* FILTER, BCC, DELAY...: logged, then as DUNNO */
    ACCESS_RESTRICTIONS,    /* anything else: a restriction list (class names...) */
    ACCESS_BAD,             /* malformed (bad code, a table name): a configuration error */
};

struct access_result {
    enum access_action action;
    int code;         /* REJECT/DEFER*: the SMTP code (0: the configured default) */
    char dsn[16];     /* the enhanced status code given, or "" for the default */
    const char *text; /* the rest of the value (points into it), "" when none */
};

/*
 * Parses a table value or policy action. Never fails: what it cannot read
 * is ACCESS_BAD (the caller logs it and answers 451 4.3.5), so a typo in
 * a table never permits.
 */
void access_parse(const char *value, struct access_result *out);

/* The action word as Postfix logs it ("hold", "discard", ...). */
const char *access_action_name(enum access_action a);

/*
 * Lookup keys, in Postfix's order, appended to keys (strlist-style: each a
 * heap string, the array NULL-terminated). For a host name: the name, then
 * its parent domains ("mail.example.com", "example.com", "com"). For an
 * address: "user@domain", the domain and its parents, then "user@". For an
 * IP address: the address, then shorter prefixes ("192.0.2.1", "192.0.2",
 * "192.0", "192"; IPv6 drops ":field"s from the right).
 */
char **access_keys_host(const char *name, size_t *count);
char **access_keys_addr(const char *addr, size_t *count);
char **access_keys_ip(const char *ip, size_t *count);

/*
 * Splits "d.d.d text" into an enhanced status and text: when text starts
 * with a valid RFC 3463 code, it is copied to dsn and *rest points after it.
 */
int access_dsn_split(const char *text, char *dsn, size_t dsn_size, const char **rest);

#endif
