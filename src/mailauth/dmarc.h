/*
 * DMARC (RFC 7489): the policy record parser (6.3), policy discovery at the
 * From: domain and then at its organisational domain (6.6.3, the public
 * suffix list through libpsl), identifier alignment (3.1) and the policy
 * to apply (6.6.4, with sp= and pct=). The evaluation is asynchronous on a
 * TXT-lookup seam: the DNS layer on the event loop in the server, a fake in
 * tests; a synchronous wrapper serves the command line.
 *
 * Ownership: dmarc_record_parse() fills a record cleared with
 * dmarc_record_clear(). A struct dmarc_outcome handed to a callback is
 * valid during the call only; one filled by dmarc_check_sync() is the
 * caller's, cleared with dmarc_outcome_clear().
 */
#ifndef HONGYAN_MAILAUTH_DMARC_H
#define HONGYAN_MAILAUTH_DMARC_H

#include <stddef.h>

#include "dns/txt.h"
#include "lib/buf.h"

struct dns;

/* ---- the record (RFC 7489 6.3) ------------------------------------------ */

enum dmarc_policy {
    DMARC_POLICY_NONE,
    DMARC_POLICY_QUARANTINE,
    DMARC_POLICY_REJECT,
};
const char *dmarc_policy_str(enum dmarc_policy p); /* "none", "quarantine", "reject" */

enum dmarc_align {
    DMARC_ALIGN_RELAXED, /* r: organisational domains equal (the default) */
    DMARC_ALIGN_STRICT,  /* s: exactly the same domain */
};

struct dmarc_record {
    enum dmarc_policy p;
    enum dmarc_policy sp; /* = p when sp= is absent or invalid */
    enum dmarc_policy np; /* RFC 9091 non-existent subdomains; = sp when np= is absent or invalid */
    int have_np;          /* np= was given (and valid) */
    int p_fallback;       /* p= missing or invalid, acting as p=none for rua= (6.6.3) */
    int pct;              /* 0..100, 100 when absent or invalid */
    enum dmarc_align adkim, aspf;
    char *rua, *ruf;  /* as written, or NULL */
    char *fo;         /* "0" when absent */
    char *rf;         /* "afrf" when absent */
    unsigned long ri; /* 86400 when absent */
};

enum dmarc_parse_status {
    DMARC_PARSE_OK,
    DMARC_PARSE_NOT_DMARC, /* does not start with v=DMARC1: not a DMARC record at all */
    DMARC_PARSE_INVALID,   /* a DMARC record without a usable p= and no valid rua= */
};

/*
 * Parses a TXT record. Unknown tags are ignored; an invalid value of an
 * optional tag falls back to its default (6.3: "syntax errors in the
 * remainder of the record SHOULD be discarded in favor of default values");
 * a missing or invalid p= (or an invalid sp=) makes the record act as
 * p=none when rua= holds a valid URI, and INVALID otherwise (6.6.3). err
 * (may be NULL) gets a note on what was wrong, also for OK records whose
 * optional tags were ignored. Clear rec with dmarc_record_clear() whatever
 * the status.
 */
enum dmarc_parse_status dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec,
                                           struct buf *err);
void dmarc_record_clear(struct dmarc_record *rec);

/* ---- domains ---------------------------------------------------------------- */

/*
 * The organisational domain of a domain (RFC 7489 3.2): its registrable
 * domain by the public suffix list (Debian's file through libpsl, or the
 * list built into libpsl), lower case, without a trailing dot. A name that
 * is itself a public suffix is its own organisational domain. Caller frees.
 */
char *dmarc_org_domain(const char *domain);

/* Identifier alignment (RFC 7489 3.1.1, 3.1.2): 1 aligned, 0 not. */
int dmarc_aligned(const char *from_domain, const char *id_domain, enum dmarc_align mode);

/*
 * The author domains (RFC 7489 6.6.1) come from msghdr_from_domains() in
 * smtp/msghdr_from.h, the From: parser DKIM signing shares.
 */

/* ---- the TXT lookup seam (dns/txt.h, shared with DKIM) ------------------------- */
/*
 * Policy records are looked up through a struct txt_lookup: txt_dns_lookup()
 * in the server, a fake in tests. TXT_NOTFOUND is no record; TXT_TEMPFAIL
 * and TXT_MALFORMED are a temperror (a malformed answer may be a broken
 * middlebox: not proof of absence).
 */

/* ---- evaluation (RFC 7489 6.6) ------------------------------------------------ */

/* The outcome of SPF or of one DKIM signature, as DMARC needs it. */
enum dmarc_auth {
    DMARC_AUTH_NONE, /* not evaluated, or no record */
    DMARC_AUTH_PASS,
    DMARC_AUTH_FAIL,      /* any other final result: fail, softfail, neutral, permerror */
    DMARC_AUTH_TEMPERROR, /* might have passed with working DNS */
};

struct dmarc_identifier {
    enum dmarc_auth result;
    const char *domain; /* SPF: the MAIL FROM (or HELO) domain; DKIM: d= */
};

struct dmarc_request {
    const char *from_domain; /* the RFC5322.From domain (msghdr_from_domain()) */
    struct dmarc_identifier spf;
    const struct dmarc_identifier *dkim; /* one per signature */
    size_t ndkim;
    /*
     * The pct= draw (6.6.4): returns 0..99, and a message is subject to the
     * policy when the draw is below pct. NULL: arc4random_uniform(100).
     */
    unsigned (*random)(void *arg);
    void *random_arg;
};

enum dmarc_result {
    DMARC_RESULT_NONE,      /* no policy record (or more than one: 6.6.3) */
    DMARC_RESULT_PASS,      /* an aligned identifier passed */
    DMARC_RESULT_FAIL,      /* none did */
    DMARC_RESULT_TEMPERROR, /* the record could not be fetched, or an aligned check had a
                               temporary error and nothing passed */
    DMARC_RESULT_PERMERROR, /* an unusable record, or no usable From: domain */
};
const char *dmarc_result_str(enum dmarc_result r); /* RFC 8601 words */

struct dmarc_outcome {
    enum dmarc_result result;
    int have_record;          /* a usable policy record was found */
    enum dmarc_policy policy; /* the published policy that applies: p=, or sp= for a
                                 subdomain whose record came from its organisational domain,
                                 or np= (RFC 9091) when that subdomain does not exist */
    int nonexistent;          /* np= applied: the From domain does not exist */
    /*
     * What the receiver should do (6.6.4): the policy when the result is
     * fail and the pct= draw selected the message; one step milder
     * (reject -> quarantine -> none) when the draw did not; none otherwise.
     */
    enum dmarc_policy disposition;
    int sampled_out; /* the pct= draw spared the message */
    int pct;
    int spf_aligned;     /* SPF passed for an aligned domain */
    int dkim_aligned;    /* a DKIM signature passed for an aligned domain */
    char *from_domain;   /* lower case */
    char *org_domain;    /* the From domain's organisational domain */
    char *record_domain; /* where the record was found (From or organisational domain), or NULL */
    /* The record's published values, for aggregate reports (RFC 7489 appendix C). */
    enum dmarc_policy p, sp;
    enum dmarc_align adkim, aspf;
    char *rua;    /* the record's rua=, or NULL */
    char *reason; /* one line on why, for logs and replies; never NULL */
};

void dmarc_outcome_clear(struct dmarc_outcome *out);

typedef void (*dmarc_cb)(void *arg, const struct dmarc_outcome *out);
struct dmarc_check;

/*
 * Starts policy discovery and evaluation. cb runs exactly once, unless the
 * check is cancelled; it may run before dmarc_check_start() returns (when
 * the lookup answers at once), and then NULL is returned. Otherwise the
 * handle is valid until cb starts or dmarc_check_cancel(). The request's
 * strings are copied; lk is copied.
 */
struct dmarc_check *dmarc_check_start(const struct txt_lookup *lk, const struct dmarc_request *req,
                                      dmarc_cb cb, void *arg);
/* Cancels a pending check: cb is not called. NULL does nothing. */
void dmarc_check_cancel(struct dmarc_check *chk);

/*
 * The same, blocking, with a resolver from a dns_resolver value (NULL or ""
 * the system's). Fills out; -1 with err if the resolver cannot be set up.
 */
int dmarc_check_sync(const char *resolver, const struct dmarc_request *req,
                     struct dmarc_outcome *out, struct buf *err);

#endif
