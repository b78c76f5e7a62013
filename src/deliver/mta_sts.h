/*
 * MTA-STS (RFC 8461) for delivery by MX: the policy parser and MX pattern
 * match (mta_sts_policy.c, pure functions with a fuzz target), the HTTPS
 * fetch on libcurl's multi interface (mta_sts_fetch.c), and the lookup that
 * ties the _mta-sts TXT record, the policy cache under data_directory and
 * the fetch together (mta_sts.c). Everything runs on the event loop.
 *
 * Ownership: a struct mta_sts_policy from mta_sts_policy_parse() or
 * mta_sts_policy_dup() is the caller's, freed with mta_sts_policy_free().
 * The result handed to a mta_sts_cb is valid during the call only.
 */
#ifndef HONGYAN_DELIVER_MTA_STS_H
#define HONGYAN_DELIVER_MTA_STS_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

struct config;
struct dns;
struct event_base;
struct workq;

enum mta_sts_mode {
    MTA_STS_NONE,
    MTA_STS_TESTING,
    MTA_STS_ENFORCE,
};

/* RFC 8461 3.2: the largest max_age a policy may carry (about one year). */
#define MTA_STS_MAX_AGE_LIMIT 31557600L
/* RFC 8461 3.3: a policy body is at most 64 KB. */
#define MTA_STS_BODY_LIMIT 65536

struct mta_sts_policy {
    enum mta_sts_mode mode;
    long max_age; /* seconds */
    char **mx;    /* NULL-terminated patterns ("mail.example.com", "*.example.net"); may be empty */
    size_t nmx;
};

/*
 * Parses a policy body (RFC 8461 3.2): "key: value" lines ended by CRLF or
 * LF, version STSv1, mode enforce/testing/none, max_age 0..31557600, one or
 * more mx patterns (none allowed for mode none); unknown keys are ignored,
 * the first of a repeated single-valued key counts. 0 with *out filled, or
 * -1 with err saying what is wrong.
 */
int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *out, struct buf *err);
void mta_sts_policy_clear(struct mta_sts_policy *p);
struct mta_sts_policy *mta_sts_policy_dup(const struct mta_sts_policy *p);
void mta_sts_policy_free(struct mta_sts_policy *p);
const char *mta_sts_mode_name(enum mta_sts_mode m);

/*
 * RFC 8461 4.1: whether an MX host name (trailing dot allowed) matches one
 * of the policy's patterns, case-insensitively; "*.example.com" matches
 * exactly one extra leftmost label.
 */
int mta_sts_mx_match(const struct mta_sts_policy *p, const char *host);

/*
 * The id of a _mta-sts TXT RRset (RFC 8461 3.1): records not starting with
 * "v=STSv1" are dropped; exactly one must remain and be well-formed
 * (";"-separated key=value fields, v first, id of 1 to 32 letters and
 * digits). 0 with the id copied into id (33 bytes), else -1.
 */
int mta_sts_txt_id(char *const *txt, size_t count, char id[33]);

/*
 * The policy cache file: "id: ID", "fetched: EPOCH", an empty line, then the
 * policy body as fetched. Parses the whole file and the body in it; 0 or -1.
 */
int mta_sts_cache_parse(const char *text, size_t len, char id[33], time_t *fetched,
                        struct mta_sts_policy *out, const char **body, size_t *body_len);

/* A domain usable as a cache file name and in a URL: LDH labels only, 1..253 bytes. */
int mta_sts_domain_ok(const char *domain);

/* ---- The HTTPS fetch (mta_sts_fetch.c) ---- */

enum mta_sts_fetch_fail {
    MTA_STS_FETCH_OK,
    MTA_STS_FETCH_ERROR,  /* connect, timeout, HTTP status, content type, size:
                             sts-policy-fetch-error */
    MTA_STS_FETCH_WEBPKI, /* the server's certificate did not verify: sts-webpki-invalid */
};

/* body is the response (ok) and may be taken with buf_steal; why says what failed otherwise. */
typedef void (*mta_sts_fetch_cb)(void *arg, enum mta_sts_fetch_fail fail, struct buf *body,
                                 const char *why);

/*
 * GET https://host[:port]/.well-known/mta-sts.txt from the address ip (already
 * resolved by our resolver), certificate checked for host against the
 * system CAs plus cafile (may be NULL or ""), no redirects, 200 with
 * Content-Type text/plain only, at most MTA_STS_BODY_LIMIT bytes, within
 * timeout seconds. cb runs later from the loop, exactly once.
 */
void mta_sts_fetch(struct event_base *base, const char *host, const char *ip, int port,
                   const char *cafile, int timeout, mta_sts_fetch_cb cb, void *arg);

/* ---- The lookup (mta_sts.c) ---- */

enum mta_sts_problem {
    MTA_STS_PROBLEM_NONE,
    MTA_STS_PROBLEM_FETCH,   /* the TXT record was there, the policy could not be fetched */
    MTA_STS_PROBLEM_WEBPKI,  /* ... because the HTTPS certificate did not verify */
    MTA_STS_PROBLEM_INVALID, /* ... or it was fetched and did not parse */
};

struct mta_sts_result {
    const char *domain;
    /* The policy that applies (from the cache or just fetched), or NULL: none. */
    const struct mta_sts_policy *policy;
    const char *id; /* the policy's id, when policy is set */
    int cached;     /* the policy was not fetched for this lookup */
    enum mta_sts_problem problem;
    const char *why; /* the problem, for the log; NULL without one */
};

typedef void (*mta_sts_cb)(void *arg, const struct mta_sts_result *r);

/*
 * The policy for a recipient domain, per RFC 8461 5.1: the _mta-sts TXT
 * record is asked every time (the resolver honours its TTL); an id that is
 * not the cached policy's means a fetch before the answer; a fetch that
 * fails leaves the cached policy in force until it expires; a cached policy
 * past half its max_age is refreshed in the background. The cache lives in
 * $data_directory/mta-sts/. cb runs later from the loop, exactly once.
 */
void mta_sts_lookup(struct event_base *base, struct workq *wq, struct dns *dns,
                    const struct config *cfg, const char *domain, mta_sts_cb cb, void *arg);

#endif
