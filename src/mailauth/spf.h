/*
 * spf: Sender Policy Framework, RFC 7208. The record parser, macro
 * expansion (section 7) and check_host() (section 4) as an asynchronous
 * evaluation on the dns module, so the SMTP server runs it on its loop; a
 * synchronous wrapper serves the command line.
 *
 * Ownership: spf_record_parse() returns a record freed with
 * spf_record_free(). A struct spf_outcome handed to a callback is valid
 * during the call only; one filled by spf_check_sync() is cleared with
 * spf_outcome_clear().
 */
#ifndef HONGYAN_MAILAUTH_SPF_H
#define HONGYAN_MAILAUTH_SPF_H

#include <stddef.h>

#include "lib/buf.h"

struct dns;

enum spf_result {
    SPF_NONE,
    SPF_NEUTRAL,
    SPF_PASS,
    SPF_FAIL,
    SPF_SOFTFAIL,
    SPF_TEMPERROR,
    SPF_PERMERROR,
};

/* "pass", "fail", ... as RFC 7208 2.6 and RFC 8601 spell them. */
const char *spf_result_str(enum spf_result r);

/* ---- records (RFC 7208 4.6, 5, 6) ------------------------------------ */

enum spf_mech_type {
    SPF_MECH_ALL,
    SPF_MECH_INCLUDE,
    SPF_MECH_A,
    SPF_MECH_MX,
    SPF_MECH_PTR,
    SPF_MECH_IP4,
    SPF_MECH_IP6,
    SPF_MECH_EXISTS,
};

struct spf_mech {
    enum spf_result qualifier; /* SPF_PASS, SPF_FAIL, SPF_SOFTFAIL or SPF_NEUTRAL */
    enum spf_mech_type type;
    char *domain_spec;    /* unexpanded, or NULL when absent (a, mx, ptr) */
    int cidr4, cidr6;     /* prefix lengths: 32 and 128 when absent */
    unsigned char ip[16]; /* ip4: first 4 bytes; ip6: all 16 */
};

struct spf_record {
    struct spf_mech *mechs;
    size_t count;
    char *redirect; /* domain-spec of redirect=, or NULL */
    char *exp;      /* domain-spec of exp=, or NULL */
};

/*
 * Parses an SPF record ("v=spf1 ..."). Any syntax error anywhere makes it
 * NULL, with the reason in err (a permerror, RFC 7208 4.6). Macro syntax in
 * every domain-spec and unknown modifier is checked here too.
 */
struct spf_record *spf_record_parse(const char *text, struct buf *err);
void spf_record_free(struct spf_record *rec);
/* Whether a TXT record is an SPF version 1 record (RFC 7208 4.5). */
int spf_is_record(const char *txt);

/* ---- macros (RFC 7208 7) --------------------------------------------- */

struct spf_macro_ctx {
    const char *sender;        /* s: "local@domain" */
    const char *local;         /* l */
    const char *sender_domain; /* o */
    const char *domain;        /* d: the current domain */
    const char *ip;            /* the client address as text (i, c, v derive from it) */
    const char *helo;          /* h */
    const char *receiver;      /* r (explanations only), NULL: "unknown" */
    long long now;             /* t (explanations only) */
    const char *validated;     /* p, NULL: not known yet (expansion returns SPF_MACRO_NEED_P) */
};

enum spf_macro_mode {
    SPF_MACRO_DOMAIN,  /* a domain-spec: c, r and t are errors */
    SPF_MACRO_EXPLAIN, /* an explain-string (exp= TXT): c, r, t allowed, spaces kept */
};

enum {
    SPF_MACRO_OK = 0,
    SPF_MACRO_SYNTAX = -1,
    SPF_MACRO_NEED_P = -2, /* the text uses %{p} and ctx->validated is NULL */
};

/* Expands text into out (appended). Returns one of SPF_MACRO_*. */
int spf_macro_expand(const char *text, const struct spf_macro_ctx *ctx, enum spf_macro_mode mode,
                     struct buf *out);
/* Whether text uses the p macro (and so needs DNS before expansion). */
int spf_macro_uses_p(const char *text);

/* ---- evaluation (RFC 7208 4) ----------------------------------------- */

struct spf_request {
    const char *ip;       /* the SMTP client's address */
    const char *helo;     /* the HELO/EHLO argument */
    const char *mailfrom; /* MAIL FROM without <>; "" or NULL: the null sender */
    const char *receiver; /* our host name for %{r}; NULL: "unknown" */
    int helo_identity;    /* check the HELO identity (RFC 7208 2.3) instead of MAIL FROM */
};

struct spf_outcome {
    enum spf_result result;
    char *domain;      /* the domain checked */
    char *explanation; /* for fail, from exp= (RFC 7208 6.2), or NULL */
    char *problem;     /* why (permerror, temperror, none), for logs, or NULL */
};

typedef void (*spf_cb)(void *arg, const struct spf_outcome *out);

struct spf_check;

/*
 * Starts check_host() for the request. cb runs exactly once, later, from
 * dns's event loop (never before spf_check_start returns), unless the check
 * is cancelled first. The handle is valid until cb starts or cancellation.
 * The request's strings are copied.
 */
struct spf_check *spf_check_start(struct dns *dns, const struct spf_request *req, spf_cb cb,
                                  void *arg);
void spf_check_cancel(struct spf_check *chk);

/*
 * The same, blocking, on a private loop with a resolver from the
 * dns_resolver key's value (resolver). Fills out (clear it with
 * spf_outcome_clear); -1 with err if the resolver cannot be set up.
 */
int spf_check_sync(const char *resolver, const struct spf_request *req, struct spf_outcome *out,
                   struct buf *err);
void spf_outcome_clear(struct spf_outcome *out);

#endif
