/*
 * dns: the resolver every module asks, on libunbound. Asynchronous queries
 * run on the process's libevent loop (ub_fd() watched by an event); a
 * synchronous form serves the command-line tools. One struct dns per loop.
 *
 * Ownership: dns_new() returns a resolver freed with dns_free(). An answer
 * passed to a dns_cb is valid during the call only; dns_query_sync()'s
 * answer is the caller's, freed with dns_answer_free().
 */
#ifndef HONGYAN_DNS_DNS_H
#define HONGYAN_DNS_DNS_H

#include <stddef.h>

#include "lib/buf.h"

struct event_base;
struct dns;
struct dns_query;

/* RR types by number (RFC 1035, 3596, 6698), for readers of this header. */
enum {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_CNAME = 5,
    DNS_T_SOA = 6,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_TLSA = 52,
};

/*
 * resolver is the dns_resolver key: "" (or NULL) asks the system's
 * resolvers from /etc/resolv.conf (and /etc/hosts); "host[:port]" (an
 * address, "[v6]:port" for IPv6) forwards every query to exactly that
 * server over UDP with TCP fallback. Each struct dns has its own fresh
 * cache. base may be NULL for a resolver used only with dns_query_sync().
 * On error returns NULL and says why in err.
 */
struct dns *dns_new(struct event_base *base, const char *resolver, struct buf *err);
/*
 * As dns_new(), but validating DNSSEC (answers then carry secure/bogus)
 * against a trust-anchor file (zone-file DS or DNSKEY lines, as Debian's
 * /usr/share/dns/root.key): the environment variable
 * HONGYAN_DNS_TRUST_ANCHOR when set (for tests), else anchor_file when not
 * empty, else root.key. NULL with err when that file cannot be read or
 * parsed. dns_new() never validates, so that a forwarder which strips
 * signatures does not make ordinary answers bogus; DANE uses this one.
 */
struct dns *dns_new_dnssec(struct event_base *base, const char *resolver, const char *anchor_file,
                           struct buf *err);
/* The trust-anchor file dns_new_dnssec() would use for anchor_file. */
const char *dns_trust_anchor(const char *anchor_file);
/* Cancels pending queries (their callbacks are not called) and frees. Not from a dns_cb. */
void dns_free(struct dns *dns);
/* Bound on one query, in milliseconds (default 5000): then DNS_TEMPFAIL. */
void dns_set_timeout(struct dns *dns, unsigned ms);

enum dns_status {
    DNS_OK,       /* the name has records of this type: count >= 1 */
    DNS_NXDOMAIN, /* the name does not exist (RCODE 3) */
    DNS_NODATA,   /* the name exists, no records of this type */
    DNS_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, network, DNSSEC bogus: try later */
    DNS_PERMFAIL, /* malformed answer or name, other RCODEs: will not get better */
};

struct dns_mx {
    unsigned pref;
    char *host; /* without the trailing dot, "" for the null MX "." (RFC 7505) */
};

struct dns_answer {
    enum dns_status status;
    int secure; /* DNSSEC validated (only from dns_new_dnssec(): see docs/dns.md) */
    int bogus;  /* DNSSEC validation failed; status is then DNS_TEMPFAIL */
    int rrtype;
    unsigned ttl;
    size_t count;      /* records of rrtype in the answer; the arrays below have count entries */
    char **txt;        /* TXT: each record's character-strings concatenated (RFC 7208 3.3) */
    struct dns_mx *mx; /* MX, in answer order */
    char **addrs;      /* A/AAAA as text ("192.0.2.1", "2001:db8::1") */
    char **names;      /* PTR, CNAME, NS: without the trailing dot */
    unsigned char **rdata; /* every type: the raw RDATA (TLSA and others) */
    size_t *rdlen;
    char *canonname; /* the name after CNAMEs, or NULL */
};

/* ans is valid during the call only. */
typedef void (*dns_cb)(void *arg, const struct dns_answer *ans);

/*
 * Starts a query (the resolver must have an event base); cb runs later
 * from the event loop, exactly once, unless
 * the query is cancelled or the resolver freed first. Never calls cb before
 * returning. The handle is valid until cb starts or dns_cancel().
 */
struct dns_query *dns_query(struct dns *dns, const char *name, int rrtype, dns_cb cb, void *arg);
/* Cancels a pending query: cb will not be called. NULL does nothing. */
void dns_cancel(struct dns_query *q);

/* A deep copy of ans, to keep an answer past its callback; dns_answer_free() it. */
struct dns_answer *dns_answer_copy(const struct dns_answer *ans);
/* The event base given to dns_new() (NULL for a synchronous-only resolver). */
struct event_base *dns_base(const struct dns *dns);

/* Blocks until the answer or the timeout. Never NULL. */
struct dns_answer *dns_query_sync(struct dns *dns, const char *name, int rrtype);
void dns_answer_free(struct dns_answer *ans);

/* "NOERROR"-style words for logs and messages: "ok", "nxdomain", ... */
const char *dns_status_str(enum dns_status st);

/*
 * The PTR query name for an address: "1.2.0.192.in-addr.arpa" or the
 * nibble form under ip6.arpa (RFC 3596 2.5). 0, or -1 if addr is not an IP.
 */
int dns_reverse_name(const char *addr, struct buf *out);

#endif
