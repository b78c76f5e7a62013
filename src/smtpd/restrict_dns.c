/*
 * The restrictions that ask DNS: DNS lists (reject_rbl_client,
 * reject_rhsbl_*, permit_dnswl_client) with Postfix's default_rbl_reply /
 * rbl_reply_maps replies, and the "does this domain exist" checks. A DNS
 * failure never refuses: a list that cannot be asked is skipped (logged),
 * and an unknown-domain check that cannot be answered defers only if the
 * rest would have permitted (Postfix's defer_if_permit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "smtpd/access.h"
#include "smtpd/restrict_int.h"

struct rbl_vars {
    const char *domain, *reason, *what, *class_name;
    const struct restrict_facts *f;
    int code;
};

static const char *rbl_var(const struct rbl_vars *v, const char *name, char *num, size_t size)
{
    if (strcmp(name, "rbl_code") == 0) {
        snprintf(num, size, "%d", v->code);
        return num;
    }
    if (strcmp(name, "rbl_domain") == 0)
        return v->domain;
    if (strcmp(name, "rbl_reason") == 0 || strcmp(name, "rbl_txt") == 0)
        return v->reason;
    if (strcmp(name, "rbl_what") == 0)
        return v->what;
    if (strcmp(name, "rbl_class") == 0)
        return v->class_name;
    if (strcmp(name, "client_address") == 0)
        return v->f->addr;
    if (strcmp(name, "client_name") == 0)
        return v->f->host;
    if (strcmp(name, "helo_name") == 0)
        return v->f->helo ? v->f->helo : "";
    if (strcmp(name, "sender") == 0)
        return v->f->sender ? v->f->sender : "";
    if (strcmp(name, "recipient") == 0)
        return v->f->recipient ? v->f->recipient : "";
    return NULL;
}

/*
 * Expands a reply template: $name, ${name}, ${name?text}, ${name:text}
 * (text itself expanded), $$. -1 for an unknown name or bad syntax.
 */
static int rbl_expand(const struct rbl_vars *v, const char *t, struct buf *out, int depth)
{
    if (depth > 4)
        return -1;
    while (*t) {
        if (*t != '$') {
            buf_putc(out, *t++);
            continue;
        }
        t++;
        if (*t == '$') {
            buf_putc(out, *t++);
            continue;
        }
        char name[64];
        size_t n = 0;
        char op = 0;
        const char *alt = NULL;
        size_t alt_len = 0;
        int braced = *t == '{';
        if (braced)
            t++;
        while ((*t >= 'a' && *t <= 'z') || *t == '_' || (*t >= '0' && *t <= '9'))
            if (n < sizeof name - 1)
                name[n++] = *t++;
            else
                return -1;
        name[n] = '\0';
        if (braced) {
            if (*t == '?' || *t == ':') {
                op = *t++;
                alt = t;
                int nest = 0;
                while (*t && (*t != '}' || nest)) {
                    nest += *t == '{';
                    nest -= *t == '}';
                    t++;
                }
                alt_len = (size_t)(t - alt);
            }
            if (*t++ != '}')
                return -1;
        }
        char num[16];
        const char *val = n ? rbl_var(v, name, num, sizeof num) : NULL;
        if (!val)
            return -1;
        if (!op) {
            buf_puts(out, val);
        } else if ((op == '?') == (*val != '\0')) {
            char *sub = xstrndup(alt, alt_len);
            int rc = rbl_expand(v, sub, out, depth + 1);
            free(sub);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* The reply for a DNS list hit: rbl_reply_maps by "zone=filter" then "zone", else the default. */
static enum restrict_rc rbl_refuse(struct restrict_walk *w, const char *zone_spec,
                                   const char *reason, const char *what, const char *class_name)
{
    struct restrict_conf *rc = w->rs->rc;
    const struct config *cfg = rc->cfg;
    char zone[300];
    snprintf(zone, sizeof zone, "%s", zone_spec);
    char *eq = strchr(zone, '=');
    if (eq)
        *eq = '\0';
    if (rc->rbl_reply_maps_bad)
        return restrict_config_error(w, "rbl_reply_maps cannot be opened");
    struct buf tmpl = BUF_INIT, err = BUF_INIT;
    int found = 0;
    if (rc->rbl_reply_maps) {
        /* A pgsql: table is asked on the work queue: pending, then this walk again. */
        int mr = restrict_lookup_list(w->rs, rc->rbl_reply_maps, zone_spec, &tmpl, &err);
        if (mr == MAP_NOTFOUND && eq)
            mr = restrict_lookup_list(w->rs, rc->rbl_reply_maps, zone, &tmpl, &err);
        if (mr == RESTRICT_LOOKUP_PENDING) {
            buf_free(&tmpl);
            buf_free(&err);
            return RC_PENDING;
        }
        if (mr == MAP_TEMPFAIL) {
            enum restrict_rc out = restrict_config_error(w, "rbl_reply_maps lookup for %s: %s",
                                                         zone_spec, buf_cstr(&err));
            buf_free(&tmpl);
            buf_free(&err);
            return out;
        }
        found = mr == MAP_FOUND;
    }
    struct rbl_vars v = {zone, reason ? reason : "",
                         what, class_name,
                         w->f, (int)config_get_int(cfg, "maps_rbl_reject_code")};
    struct buf why = BUF_INIT;
    if (!found || rbl_expand(&v, buf_cstr(&tmpl), &why, 0) < 0) {
        if (found)
            log_warning("bad rbl reply template for domain %s: %s", zone_spec, buf_cstr(&tmpl));
        buf_reset(&why);
        if (rbl_expand(&v, config_get(cfg, "default_rbl_reply"), &why, 0) < 0) {
            log_warning("bad default_rbl_reply template: %s", config_get(cfg, "default_rbl_reply"));
            buf_set(&why, "450 4.7.1 Service unavailable");
        }
    }
    buf_free(&tmpl);
    buf_free(&err);
    const char *s = buf_cstr(&why);
    enum restrict_rc out;
    if ((s[0] != '4' && s[0] != '5') || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
        s[3] != ' ') {
        log_warning("rbl response code configuration error: %s", s);
        out = restrict_refuse(w, 450, "4.7.1", "Service unavailable");
    } else {
        char dsn[16];
        const char *text = s + 4;
        if (!access_dsn_split(text, dsn, sizeof dsn, &text))
            snprintf(dsn, sizeof dsn, "4.7.1");
        restrict_dsn_fix(dsn, class_name);
        out = restrict_refuse(w, atoi(s), dsn, "%s", *text ? text : "Service unavailable");
    }
    buf_free(&why);
    return out;
}

/*
 * Looks name up in a DNS list: 1 listed (with the TXT reason when there is
 * one, in *reason), 0 not, RC_PENDING through *rc. zone_spec "zone=a.b.c.d"
 * counts only that answer.
 */
static int rbl_listed(struct restrict_walk *w, const char *query, const char *zone_spec,
                      char **reason, enum restrict_rc *rc)
{
    const struct dns_answer *a = restrict_dns(w, query, DNS_T_A, rc);
    if (!a)
        return 0;
    if (a->status == DNS_TEMPFAIL || a->status == DNS_PERMFAIL) {
        log_warning("%s: RBL lookup error: %s", query, dns_status_str(a->status));
        return 0;
    }
    if (a->status != DNS_OK)
        return 0;
    const char *filter = strchr(zone_spec, '=');
    int hit = !filter;
    for (size_t i = 0; filter && i < a->count && !hit; i++)
        hit = strcmp(a->addrs[i], filter + 1) == 0;
    if (!hit)
        return 0;
    const struct dns_answer *t = restrict_dns(w, query, DNS_T_TXT, rc);
    if (!t)
        return 0;
    *reason = t->status == DNS_OK && t->count ? xstrdup(t->txt[0]) : NULL;
    return 1;
}

static void rbl_zone(const char *zone_spec, char *zone, size_t size)
{
    snprintf(zone, size, "%s", zone_spec);
    char *eq = strchr(zone, '=');
    if (eq)
        *eq = '\0';
}

/*
 * The query's answer as a verdict: listed and allow (permit_dnswl_client)
 * permits; listed otherwise refuses with what and class_name in the reply;
 * RC_PENDING while the lookup runs; RC_DUNNO when not listed.
 */
static enum restrict_rc rbl_verdict(struct restrict_walk *w, const char *zone_spec,
                                    const char *query, int allow, const char *what,
                                    const char *class_name)
{
    enum restrict_rc rc = RC_DUNNO;
    char *reason = NULL;
    int listed = rbl_listed(w, query, zone_spec, &reason, &rc);
    if (rc == RC_PENDING)
        return rc;
    if (listed) {
        if (allow) {
            free(reason);
            return RC_PERMIT;
        }
        rc = rbl_refuse(w, zone_spec, reason, what, class_name);
    }
    free(reason);
    return rc;
}

enum restrict_rc restrict_rbl_client(struct restrict_walk *w, const char *zone_spec, int allow)
{
    struct buf rev = BUF_INIT;
    if (dns_reverse_name(w->f->addr, &rev) < 0) {
        buf_free(&rev);
        return RC_DUNNO;
    }
    /* "2.0.0.127.in-addr.arpa" -> "2.0.0.127.zone" (RFC 5782 2.1). */
    const char *r = buf_cstr(&rev);
    const char *suffix = strstr(r, ".in-addr.arpa");
    if (!suffix)
        suffix = strstr(r, ".ip6.arpa");
    char zone[300], query[600];
    rbl_zone(zone_spec, zone, sizeof zone);
    snprintf(query, sizeof query, "%.*s.%s", suffix ? (int)(suffix - r) : (int)rev.len, r, zone);
    buf_free(&rev);
    return rbl_verdict(w, zone_spec, query, allow, w->f->addr, "Client host");
}

enum restrict_rc restrict_rhsbl(struct restrict_walk *w, const char *zone_spec, const char *domain,
                                const char *what, const char *class_name, int allow)
{
    char zone[300], query[600];
    rbl_zone(zone_spec, zone, sizeof zone);
    snprintf(query, sizeof query, "%s.%s", domain, zone);
    return rbl_verdict(w, zone_spec, query, allow, what, class_name);
}

/*
 * Whether a domain can receive mail (MX, else A, else AAAA): 1 yes, 0 it
 * does not exist, -1 DNS cannot tell now, -2 null MX (RFC 7505).
 */
static int domain_exists(struct restrict_walk *w, const char *domain, int mx, enum restrict_rc *rc)
{
    static const int types[] = {DNS_T_MX, DNS_T_A, DNS_T_AAAA};
    int tempfail = 0;
    for (size_t i = mx ? 0 : 1; i < 3; i++) {
        const struct dns_answer *a = restrict_dns(w, domain, types[i], rc);
        if (!a)
            return 0;
        if (a->status == DNS_OK) {
            if (types[i] == DNS_T_MX && a->count == 1 && a->mx[0].host[0] == '\0')
                return -2;
            return 1;
        }
        if (a->status == DNS_NXDOMAIN)
            return tempfail ? -1 : 0;
        if (a->status == DNS_TEMPFAIL)
            tempfail = 1;
    }
    return tempfail ? -1 : 0;
}

enum restrict_rc restrict_unknown_domain(struct restrict_walk *w, const char *addr, int sender)
{
    const char *at = strrchr(addr, '@');
    if (!at || !at[1] || at[1] == '[')
        return RC_DUNNO;
    enum restrict_rc rc = RC_DUNNO;
    int ex = domain_exists(w, at + 1, 1, &rc);
    if (rc == RC_PENDING)
        return rc;
    const char *cls = sender ? "Sender address" : "Recipient address";
    const char *dsn = sender ? "4.1.8" : "4.1.2";
    if (ex == 0)
        return restrict_refuse(w,
                               (int)config_get_int(w->rs->rc->cfg, "unknown_address_reject_code"),
                               dsn, "<%s>: %s rejected: Domain not found", addr, cls);
    if (ex == -2)
        return restrict_refuse(w, sender ? 550 : 556, sender ? "4.7.27" : "4.1.10",
                               "<%s>: %s rejected: Domain %s does not accept mail (nullMX)", addr,
                               cls, at + 1);
    if (ex == -1 && !w->defer_if_permit.code) {
        /* A DNS failure defers only a recipient that would otherwise be accepted. */
        struct restrict_reply keep = *w->reply;
        int warn = w->warn_next;
        w->warn_next = 0;
        restrict_refuse(w, 450, dsn, "<%s>: %s rejected: Domain not found", addr, cls);
        w->defer_if_permit = *w->reply;
        *w->reply = keep;
        w->warn_next = warn;
    }
    return RC_DUNNO;
}

enum restrict_rc restrict_unknown_helo(struct restrict_walk *w)
{
    const char *helo = w->f->helo;
    enum restrict_rc rc = RC_DUNNO;
    /* Postfix asks for an address first, then MX. */
    int ex = domain_exists(w, helo, 0, &rc);
    if (rc == RC_PENDING)
        return rc;
    if (ex == 0) {
        const struct dns_answer *mx = restrict_dns(w, helo, DNS_T_MX, &rc);
        if (!mx)
            return rc;
        if (mx->status == DNS_OK)
            return RC_DUNNO;
        return restrict_refuse(w,
                               (int)config_get_int(w->rs->rc->cfg, "unknown_hostname_reject_code"),
                               "4.7.1", "<%s>: Helo command rejected: Host not found", helo);
    }
    if (ex == -1 && !w->defer_if_permit.code) {
        struct restrict_reply keep = *w->reply;
        int warn = w->warn_next;
        w->warn_next = 0;
        restrict_refuse(w, 450, "4.7.1", "<%s>: Helo command rejected: Host not found", helo);
        w->defer_if_permit = *w->reply;
        *w->reply = keep;
        w->warn_next = warn;
    }
    return RC_DUNNO;
}
