/*
 * spf: RFC 7208 check_host(). The evaluation is written as plain recursive
 * code over a cache of DNS answers; when it needs an answer it does not
 * have yet, it starts the query and unwinds, and it runs again from the
 * top once every query in flight has answered. Each run is deterministic
 * given the cache, so the result is that of a blocking evaluation, while
 * the SMTP server's loop never blocks.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/spf.h"
#include "mailauth/spf_int.h"

#define SPF_MAX_LOOKUPS 10  /* RFC 7208 4.6.4: DNS-querying terms */
#define SPF_MAX_VOIDS 2     /* RFC 7208 4.6.4: void lookups */
#define SPF_MAX_NAMES 10    /* RFC 7208 4.6.4: MX names, PTR names */
#define SPF_MAX_QUERIES 400 /* our cap on distinct queries in one check */
#define SPF_PENDING 100     /* internal: waiting for DNS */
#define SPF_MAX_MS 20000    /* RFC 7208 4.6.4: bound the whole check, 20 s at least */

const char *spf_result_str(enum spf_result r)
{
    switch (r) {
    case SPF_NONE:
        return "none";
    case SPF_NEUTRAL:
        return "neutral";
    case SPF_PASS:
        return "pass";
    case SPF_FAIL:
        return "fail";
    case SPF_SOFTFAIL:
        return "softfail";
    case SPF_TEMPERROR:
        return "temperror";
    case SPF_PERMERROR:
        return "permerror";
    }
    return "permerror";
}

/* ---- addresses --------------------------------------------------------- */

static int spf_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* ---- evaluation --------------------------------------------------------- */

struct spf_entry {
    char *name;
    int type;
    struct dns_answer *ans; /* NULL while in flight */
    struct dns_query *q;
    struct spf_check *chk;
    struct spf_entry *next;
};

struct spf_check {
    struct dns *dns;
    spf_cb cb;
    void *arg;
    struct event *kick;

    struct spf_ip ip;
    char *ip_text;
    char *helo;
    char *sender;
    char *local;
    char *sender_domain;
    char *domain;
    char *receiver;
    long long now;
    uint64_t started; /* now_ms() at the start, for SPF_MAX_MS */

    struct spf_entry *cache;
    size_t entries;
    size_t inflight;

    /* Per run. */
    int lookups;
    int voids;
    struct buf problem;
};

struct spf_exp {
    char *spec;   /* the exp= domain-spec of the record that failed */
    char *domain; /* that record's domain */
};

static void spf_exp_clear(struct spf_exp *e)
{
    free(e->spec);
    free(e->domain);
    e->spec = e->domain = NULL;
}

static void spf_on_answer(void *arg, const struct dns_answer *ans);

/* Query names: no trailing dot, lower case (the cache key). */
static char *spf_qname(const char *name)
{
    char *n = xstrdup(name);
    size_t len = strlen(n);
    if (len > 0 && n[len - 1] == '.')
        n[len - 1] = '\0';
    str_lower(n);
    return n;
}

/*
 * The cached answer for (name, type), or NULL after starting the query
 * (the caller returns SPF_PENDING). *status is set either way.
 */
static const struct dns_answer *spf_lookup(struct spf_check *c, const char *name, int type)
{
    char *key = spf_qname(name);
    for (struct spf_entry *e = c->cache; e != NULL; e = e->next) {
        if (e->type == type && strcmp(e->name, key) == 0) {
            free(key);
            return e->ans;
        }
    }
    if (c->entries >= SPF_MAX_QUERIES) {
        free(key);
        return NULL;
    }
    struct spf_entry *e = xcalloc(1, sizeof(*e));
    e->name = key;
    e->type = type;
    e->chk = c;
    e->next = c->cache;
    c->cache = e;
    c->entries++;
    c->inflight++;
    e->q = dns_query(c->dns, key, type, spf_on_answer, e);
    return NULL;
}

/* Expanded target names (RFC 7208 7.3): no trailing dot, at most 253 octets. */
static void spf_target_fix(struct buf *name)
{
    if (name->len > 0 && name->data[name->len - 1] == '.')
        buf_truncate(name, name->len - 1);
    while (name->len > 253) {
        char *dot = memchr(name->data, '.', name->len);
        if (dot == NULL)
            break;
        buf_consume(name, (size_t)(dot - name->data) + 1);
    }
}

/*
 * Whether TXT record i holds no NUL octet: the text form stops at the
 * first one, so compare its length with the character-strings' total.
 */
static int spf_txt_whole(const struct dns_answer *a, size_t i)
{
    size_t total = 0;
    for (size_t k = 0; k < a->rdlen[i]; k += 1 + a->rdata[i][k])
        total += a->rdata[i][k];
    return strlen(a->txt[i]) == total;
}

/* RFC 7208 4.3: the domain is a multi-label name with labels of 1..63 octets. */
static int spf_domain_ok(const char *d)
{
    size_t n = strlen(d);
    if (n > 0 && d[n - 1] == '.')
        n--;
    if (n == 0 || n > 253 || d[0] == '[' || memchr(d, '.', n) == NULL)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)d[i];
        if (ch <= ' ' || ch == 0x7f)
            return 0;
        if (ch == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (++label > 63) {
            return 0;
        }
    }
    return label > 0;
}

/* Whether name is domain or below it (case-insensitive, trailing dots ignored). */
static int spf_subdomain(const char *name, const char *domain)
{
    size_t n = strlen(name), d = strlen(domain);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (d > 0 && domain[d - 1] == '.')
        d--;
    if (n < d || strncasecmp(name + n - d, domain, d) != 0)
        return 0;
    return n == d || name[n - d - 1] == '.';
}

static int spf_addr_in(const struct dns_answer *a, const struct spf_ip *ip, int bits)
{
    size_t want = ip->v6 ? 16 : 4;
    for (size_t i = 0; i < a->count; i++)
        if (a->rdlen[i] == want && spf_prefix_eq(a->rdata[i], ip->b, bits))
            return 1;
    return 0;
}

/*
 * The validated domain name of the client (RFC 7208 7.3 "p"), preferring
 * domain itself, then a subdomain of it; "unknown" when none validates.
 * NULL when waiting for DNS.
 */
static const char *spf_validated(struct spf_check *c, const char *domain, struct buf *out)
{
    struct buf rev = BUF_INIT;
    dns_reverse_name(c->ip_text, &rev);
    const struct dns_answer *ptr = spf_lookup(c, buf_cstr(&rev), DNS_T_PTR);
    buf_free(&rev);
    if (ptr == NULL)
        return NULL;
    buf_set(out, "unknown");
    if (ptr->status != DNS_OK)
        return buf_cstr(out);
    size_t n = ptr->count < SPF_MAX_NAMES ? ptr->count : SPF_MAX_NAMES;
    int pending = 0;
    const struct dns_answer **addrs = xcalloc(n + 1, sizeof(*addrs));
    for (size_t i = 0; i < n; i++) {
        addrs[i] = spf_lookup(c, ptr->names[i], c->ip.v6 ? DNS_T_AAAA : DNS_T_A);
        if (addrs[i] == NULL)
            pending = 1;
    }
    if (pending) {
        free(addrs);
        return NULL;
    }
    int best = 0; /* 3: equal to domain, 2: below it, 1: other */
    for (size_t i = 0; i < n; i++) {
        if (addrs[i]->status != DNS_OK || !spf_addr_in(addrs[i], &c->ip, c->ip.v6 ? 128 : 32))
            continue;
        int score = str_eq_ci(ptr->names[i], domain)       ? 3
                    : spf_subdomain(ptr->names[i], domain) ? 2
                                                           : 1;
        if (score > best) {
            best = score;
            buf_set(out, ptr->names[i]);
        }
    }
    free(addrs);
    return buf_cstr(out);
}

/* Expands a domain-spec for the current domain into out; SPF_PENDING possible. */
static int spf_expand_target(struct spf_check *c, const char *spec, const char *domain,
                             enum spf_macro_mode mode, struct buf *out)
{
    struct buf p = BUF_INIT;
    struct spf_macro_ctx ctx = {c->sender, c->local,    c->sender_domain, domain, c->ip_text,
                                c->helo,   c->receiver, c->now,           NULL};
    if (spf_macro_uses_p(spec)) {
        ctx.validated = spf_validated(c, domain, &p);
        if (ctx.validated == NULL) {
            buf_free(&p);
            return SPF_PENDING;
        }
    }
    buf_reset(out);
    int rc = spf_macro_expand(spec, &ctx, mode, out);
    buf_free(&p);
    if (rc != SPF_MACRO_OK)
        return SPF_PERMERROR;
    if (mode == SPF_MACRO_DOMAIN)
        spf_target_fix(out);
    return 0;
}

enum { SPF_NOMATCH = 200, SPF_MATCH = 201 };

static int spf_check_host(struct spf_check *c, const char *domain, int depth, struct spf_exp *exp);

/* A void lookup (RFC 7208 4.6.4): NXDOMAIN or no records. */
static int spf_void(struct spf_check *c)
{
    if (++c->voids > SPF_MAX_VOIDS) {
        buf_set(&c->problem, "too many void DNS lookups");
        return SPF_PERMERROR;
    }
    return SPF_NOMATCH;
}

static int spf_dns_error(struct spf_check *c, const char *name, int type)
{
    buf_reset(&c->problem);
    buf_printf(&c->problem, "DNS error looking up %s %s", name,
               type == DNS_T_TXT  ? "TXT"
               : type == DNS_T_MX ? "MX"
               : type == DNS_T_A  ? "A"
                                  : "AAAA");
    return SPF_TEMPERROR;
}

static int spf_match(struct spf_check *c, const struct spf_mech *m, const char *domain, int depth)
{
    struct buf target = BUF_INIT;
    int rc = SPF_NOMATCH;
    int atype = c->ip.v6 ? DNS_T_AAAA : DNS_T_A;
    int bits = c->ip.v6 ? m->cidr6 : m->cidr4;
    const struct dns_answer *a;

    if (m->type != SPF_MECH_ALL && m->type != SPF_MECH_IP4 && m->type != SPF_MECH_IP6) {
        if (m->domain_spec != NULL) {
            rc = spf_expand_target(c, m->domain_spec, domain, SPF_MACRO_DOMAIN, &target);
            if (rc != 0)
                goto out;
            rc = SPF_NOMATCH;
        } else {
            buf_set(&target, domain);
        }
    }
    const char *name = buf_cstr(&target);

    switch (m->type) {
    case SPF_MECH_ALL:
        rc = SPF_MATCH;
        break;
    case SPF_MECH_IP4:
        rc = !c->ip.v6 && spf_prefix_eq(c->ip.b, m->ip, m->cidr4) ? SPF_MATCH : SPF_NOMATCH;
        break;
    case SPF_MECH_IP6:
        rc = c->ip.v6 && spf_prefix_eq(c->ip.b, m->ip, m->cidr6) ? SPF_MATCH : SPF_NOMATCH;
        break;
    case SPF_MECH_INCLUDE: {
        struct spf_exp ignored = {NULL, NULL};
        int r = spf_check_host(c, name, depth + 1, &ignored);
        spf_exp_clear(&ignored);
        /* RFC 7208 5.2: the table of include results. */
        switch (r) {
        case SPF_PASS:
            rc = SPF_MATCH;
            break;
        case SPF_FAIL:
        case SPF_SOFTFAIL:
        case SPF_NEUTRAL:
            rc = SPF_NOMATCH;
            break;
        case SPF_TEMPERROR:
        case SPF_PENDING:
            rc = r;
            break;
        default:
            if (r == SPF_NONE) {
                buf_reset(&c->problem);
                buf_printf(&c->problem, "include:%s has no SPF record", name);
            }
            rc = SPF_PERMERROR;
            break;
        }
        break;
    }
    case SPF_MECH_A:
    case SPF_MECH_EXISTS: {
        /* exists always asks for A records (RFC 7208 5.7). */
        int type = m->type == SPF_MECH_EXISTS ? DNS_T_A : atype;
        if ((a = spf_lookup(c, name, type)) == NULL) {
            rc = SPF_PENDING;
            break;
        }
        if (a->status == DNS_TEMPFAIL)
            rc = spf_dns_error(c, name, type);
        else if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA)
            rc = spf_void(c);
        else if (a->status != DNS_OK)
            rc = SPF_NOMATCH;
        else if (m->type == SPF_MECH_EXISTS)
            rc = SPF_MATCH;
        else
            rc = spf_addr_in(a, &c->ip, bits) ? SPF_MATCH : SPF_NOMATCH;
        break;
    }
    case SPF_MECH_MX: {
        if ((a = spf_lookup(c, name, DNS_T_MX)) == NULL) {
            rc = SPF_PENDING;
            break;
        }
        if (a->status == DNS_TEMPFAIL) {
            rc = spf_dns_error(c, name, DNS_T_MX);
            break;
        }
        if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA) {
            rc = spf_void(c);
            break;
        }
        if (a->status != DNS_OK)
            break;
        if (a->count > SPF_MAX_NAMES) {
            buf_reset(&c->problem);
            buf_printf(&c->problem, "more than %d MX records for %s", SPF_MAX_NAMES, name);
            rc = SPF_PERMERROR;
            break;
        }
        /* Ask for every exchange's addresses at once, then look in order. */
        const struct dns_answer *addr[SPF_MAX_NAMES];
        int pending = 0;
        for (size_t i = 0; i < a->count; i++) {
            addr[i] = NULL;
            if (a->mx[i].host[0] == '\0') /* null MX (RFC 7505) */
                continue;
            if ((addr[i] = spf_lookup(c, a->mx[i].host, atype)) == NULL)
                pending = 1;
        }
        if (pending) {
            rc = SPF_PENDING;
            break;
        }
        for (size_t i = 0; i < a->count && rc == SPF_NOMATCH; i++) {
            if (a->mx[i].host[0] == '\0')
                continue;
            if (addr[i]->status == DNS_TEMPFAIL)
                rc = spf_dns_error(c, a->mx[i].host, atype);
            else if (addr[i]->status == DNS_OK && spf_addr_in(addr[i], &c->ip, bits))
                rc = SPF_MATCH;
        }
        break;
    }
    case SPF_MECH_PTR: {
        struct buf rev = BUF_INIT;
        dns_reverse_name(c->ip_text, &rev);
        a = spf_lookup(c, buf_cstr(&rev), DNS_T_PTR);
        buf_free(&rev);
        if (a == NULL) {
            rc = SPF_PENDING;
            break;
        }
        /* RFC 7208 5.5: a DNS error here is no match, not temperror. */
        if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA) {
            rc = spf_void(c);
            break;
        }
        if (a->status != DNS_OK)
            break;
        size_t n = a->count < SPF_MAX_NAMES ? a->count : SPF_MAX_NAMES;
        const struct dns_answer *addr[SPF_MAX_NAMES];
        int pending = 0;
        for (size_t i = 0; i < n; i++) {
            addr[i] = NULL;
            /* Only names at or below the target can match: validate just those. */
            if (!spf_subdomain(a->names[i], name))
                continue;
            if ((addr[i] = spf_lookup(c, a->names[i], atype)) == NULL)
                pending = 1;
        }
        if (pending) {
            rc = SPF_PENDING;
            break;
        }
        for (size_t i = 0; i < n && rc == SPF_NOMATCH; i++)
            if (addr[i] != NULL && addr[i]->status == DNS_OK &&
                spf_addr_in(addr[i], &c->ip, c->ip.v6 ? 128 : 32))
                rc = SPF_MATCH;
        break;
    }
    }
out:
    buf_free(&target);
    return rc;
}

static int spf_check_host(struct spf_check *c, const char *domain, int depth, struct spf_exp *exp)
{
    struct buf err = BUF_INIT;
    struct spf_record *rec = NULL;
    int result;

    /* RFC 7208 4.3: a malformed or single-label domain has no policy. */
    if (!spf_domain_ok(domain)) {
        buf_reset(&c->problem);
        buf_printf(&c->problem, "'%s' is not a valid domain", domain);
        return SPF_NONE;
    }
    const struct dns_answer *a = spf_lookup(c, domain, DNS_T_TXT);
    if (a == NULL)
        return SPF_PENDING;
    if (a->status == DNS_TEMPFAIL)
        return spf_dns_error(c, domain, DNS_T_TXT);
    if (a->status != DNS_OK) {
        buf_reset(&c->problem);
        buf_printf(&c->problem, "no SPF record at %s", domain);
        return SPF_NONE;
    }
    /* RFC 7208 4.5: exactly one record that starts with "v=spf1". */
    const char *text = NULL;
    for (size_t i = 0; i < a->count; i++) {
        if (!spf_is_record(a->txt[i]))
            continue;
        if (text != NULL || !spf_txt_whole(a, i)) {
            buf_reset(&c->problem);
            buf_printf(&c->problem, "%s SPF record at %s",
                       text != NULL ? "more than one" : "a NUL octet in the", domain);
            return SPF_PERMERROR;
        }
        text = a->txt[i];
    }
    if (text == NULL) {
        buf_reset(&c->problem);
        buf_printf(&c->problem, "no SPF record at %s", domain);
        return SPF_NONE;
    }
    if ((rec = spf_record_parse(text, &err)) == NULL) {
        buf_reset(&c->problem);
        buf_printf(&c->problem, "%s: %s", domain, buf_cstr(&err));
        buf_free(&err);
        return SPF_PERMERROR;
    }
    buf_free(&err);

    for (size_t i = 0; i < rec->count; i++) {
        const struct spf_mech *m = &rec->mechs[i];
        if (m->type == SPF_MECH_INCLUDE || m->type == SPF_MECH_A || m->type == SPF_MECH_MX ||
            m->type == SPF_MECH_PTR || m->type == SPF_MECH_EXISTS) {
            if (++c->lookups > SPF_MAX_LOOKUPS) {
                buf_set(&c->problem, "more than 10 DNS-querying terms");
                result = SPF_PERMERROR;
                goto out;
            }
        }
        int r = spf_match(c, m, domain, depth);
        if (r == SPF_NOMATCH)
            continue;
        if (r == SPF_MATCH) {
            result = (int)m->qualifier;
            if (result == SPF_FAIL && rec->exp != NULL) {
                spf_exp_clear(exp);
                exp->spec = xstrdup(rec->exp);
                exp->domain = xstrdup(domain);
            }
            goto out;
        }
        result = r; /* temperror, permerror, pending */
        goto out;
    }

    if (rec->redirect != NULL) {
        /* RFC 7208 6.1: redirect counts as a lookup; no record there is permerror. */
        if (++c->lookups > SPF_MAX_LOOKUPS) {
            buf_set(&c->problem, "more than 10 DNS-querying terms");
            result = SPF_PERMERROR;
            goto out;
        }
        struct buf target = BUF_INIT;
        result = spf_expand_target(c, rec->redirect, domain, SPF_MACRO_DOMAIN, &target);
        if (result == 0) {
            /* The redirect target's exp= applies, not ours (RFC 7208 6.2). */
            result = spf_check_host(c, buf_cstr(&target), depth + 1, exp);
            if (result == SPF_NONE) {
                buf_reset(&c->problem);
                buf_printf(&c->problem, "redirect=%s has no SPF record", buf_cstr(&target));
                result = SPF_PERMERROR;
            }
        }
        buf_free(&target);
        goto out;
    }
    result = SPF_NEUTRAL;
out:
    spf_record_free(rec);
    return result;
}

/* RFC 7208 6.2: the explanation; any problem means there is none. */
static int spf_explain(struct spf_check *c, const struct spf_exp *exp, struct buf *out)
{
    struct buf name = BUF_INIT;
    struct buf p = BUF_INIT;
    int rc = spf_expand_target(c, exp->spec, exp->domain, SPF_MACRO_DOMAIN, &name);
    if (rc != 0 || name.len == 0) {
        buf_free(&name);
        return rc == SPF_PENDING ? SPF_PENDING : -1;
    }
    const struct dns_answer *a = spf_lookup(c, buf_cstr(&name), DNS_T_TXT);
    buf_free(&name);
    if (a == NULL)
        return SPF_PENDING;
    if (a->status != DNS_OK || a->count != 1 || !spf_txt_whole(a, 0))
        return -1;
    struct spf_macro_ctx ctx = {c->sender, c->local,    c->sender_domain, exp->domain, c->ip_text,
                                c->helo,   c->receiver, c->now,           NULL};
    if (spf_macro_uses_p(a->txt[0])) {
        ctx.validated = spf_validated(c, exp->domain, &p);
        if (ctx.validated == NULL) {
            buf_free(&p);
            return SPF_PENDING;
        }
    }
    buf_reset(out);
    rc = spf_macro_expand(a->txt[0], &ctx, SPF_MACRO_EXPLAIN, out);
    buf_free(&p);
    return rc == SPF_MACRO_OK ? 0 : -1;
}

static void spf_check_free(struct spf_check *c)
{
    struct spf_entry *e = c->cache;
    while (e != NULL) {
        struct spf_entry *next = e->next;
        dns_cancel(e->q);
        dns_answer_free(e->ans);
        free(e->name);
        free(e);
        e = next;
    }
    if (c->kick != NULL)
        event_free(c->kick);
    free(c->ip_text);
    free(c->helo);
    free(c->sender);
    free(c->local);
    free(c->sender_domain);
    free(c->domain);
    free(c->receiver);
    buf_free(&c->problem);
    free(c);
}

static void spf_finish(struct spf_check *c, int result, const char *explanation)
{
    struct spf_outcome out = {(enum spf_result)result, c->domain, NULL, NULL};
    struct buf problem = BUF_INIT;
    if (explanation != NULL)
        out.explanation = (char *)explanation;
    /* The problem quotes remote data: make it safe for logs and terminals. */
    if (c->problem.len > 0 && result != SPF_PASS && result != SPF_FAIL && result != SPF_SOFTFAIL &&
        result != SPF_NEUTRAL) {
        spf_put_safe(&problem, c->problem.data, c->problem.len);
        out.problem = problem.data;
    }
    c->cb(c->arg, &out);
    buf_free(&problem);
    spf_check_free(c);
}

/* One run of the whole evaluation over the cache. */
static void spf_run(struct spf_check *c)
{
    struct spf_exp exp = {NULL, NULL};
    struct buf text = BUF_INIT;

    c->lookups = 0;
    c->voids = 0;
    buf_reset(&c->problem);

    int result;
    if (c->ip_text == NULL) {
        buf_set(&c->problem, "the client address is not an IP address");
        result = SPF_PERMERROR;
    } else {
        result = spf_check_host(c, c->domain, 0, &exp);
    }
    int have_exp = 0;
    if (result == SPF_FAIL && exp.spec != NULL) {
        int r = spf_explain(c, &exp, &text);
        if (r == SPF_PENDING)
            result = SPF_PENDING;
        else
            have_exp = r == 0;
    }
    spf_exp_clear(&exp);
    if (result == SPF_PENDING) {
        buf_free(&text);
        if (c->inflight > 0 && now_ms() - c->started <= SPF_MAX_MS)
            return; /* spf_on_answer runs us again */
        buf_set(&c->problem, c->inflight > 0 ? "the check took too long" : "too many DNS queries");
        result = SPF_TEMPERROR;
    }
    spf_finish(c, result, have_exp ? buf_cstr(&text) : NULL);
    buf_free(&text);
}

static void spf_on_answer(void *arg, const struct dns_answer *ans)
{
    struct spf_entry *e = arg;
    struct spf_check *c = e->chk;
    e->q = NULL;
    e->ans = dns_answer_copy(ans);
    if (--c->inflight == 0)
        spf_run(c);
}

static void spf_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    spf_run(arg);
}

struct spf_check *spf_check_start(struct dns *dns, const struct spf_request *req, spf_cb cb,
                                  void *arg)
{
    struct spf_check *c = xcalloc(1, sizeof(*c));
    c->dns = dns;
    c->cb = cb;
    c->arg = arg;
    c->now = (long long)time(NULL);
    c->started = now_ms();
    c->helo = xstrdup(req->helo != NULL ? req->helo : "");
    c->receiver = xstrdup(req->receiver != NULL && req->receiver[0] ? req->receiver : "unknown");
    if (spf_ip_parse(req->ip, &c->ip) == 0) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(c->ip.v6 ? AF_INET6 : AF_INET, c->ip.b, text, sizeof(text));
        c->ip_text = xstrdup(text);
    }

    /*
     * RFC 7208 2.3/2.4: the HELO identity, or MAIL FROM; with the null
     * sender, MAIL FROM is postmaster@HELO. No local part: "postmaster".
     */
    const char *from = req->mailfrom != NULL ? req->mailfrom : "";
    if (req->helo_identity || from[0] == '\0') {
        c->local = xstrdup("postmaster");
        c->sender_domain = xstrdup(c->helo);
    } else {
        const char *at = strrchr(from, '@');
        if (at == NULL) {
            c->local = xstrdup("postmaster");
            c->sender_domain = xstrdup(from);
        } else {
            c->local = at == from ? xstrdup("postmaster") : xstrndup(from, (size_t)(at - from));
            c->sender_domain = xstrdup(at + 1);
        }
    }
    c->sender = xasprintf("%s@%s", c->local, c->sender_domain);
    c->domain = xstrdup(c->sender_domain);

    /* cb must not run before we return: start from the loop. */
    c->kick = evtimer_new(dns_base(dns), spf_on_kick, c);
    if (c->kick == NULL)
        xalloc_die("spf timer");
    struct timeval zero = {0, 0};
    evtimer_add(c->kick, &zero);
    return c;
}

void spf_check_cancel(struct spf_check *c)
{
    if (c != NULL)
        spf_check_free(c);
}

struct spf_sync {
    int done;
    struct spf_outcome *out;
};

static void spf_sync_cb(void *arg, const struct spf_outcome *o)
{
    struct spf_sync *s = arg;
    s->done = 1;
    s->out->result = o->result;
    s->out->domain = o->domain != NULL ? xstrdup(o->domain) : NULL;
    s->out->explanation = o->explanation != NULL ? xstrdup(o->explanation) : NULL;
    s->out->problem = o->problem != NULL ? xstrdup(o->problem) : NULL;
}

int spf_check_sync(const char *resolver, const struct spf_request *req, struct spf_outcome *out,
                   struct buf *err)
{
    memset(out, 0, sizeof(*out));
    struct event_base *base = event_base_new();
    if (base == NULL) {
        buf_puts(err, "cannot create an event loop");
        return -1;
    }
    struct dns *dns = dns_new(base, resolver, err);
    if (dns == NULL) {
        event_base_free(base);
        return -1;
    }
    struct spf_sync s = {0, out};
    spf_check_start(dns, req, spf_sync_cb, &s);
    /* Bounded: every query has a timeout and the number of queries is capped. */
    while (!s.done)
        event_base_loop(base, EVLOOP_ONCE);
    dns_free(dns);
    event_base_free(base);
    return 0;
}

void spf_outcome_clear(struct spf_outcome *out)
{
    free(out->domain);
    free(out->explanation);
    free(out->problem);
    memset(out, 0, sizeof(*out));
}
