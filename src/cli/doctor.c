/*
 * hongyan doctor [DOMAIN]: checks the domain's DNS and network set-up as
 * SPEC.md's doctor section lists it (A/AAAA, MX, PTR/FCrDNS, SPF evaluated,
 * DKIM against the local keys, DMARC, outbound port 25 or the relay), one
 * line per check, then the zone-file lines to publish. --json for machines.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "config/config.h"
#include "deliver/route.h"
#include "dns/dns.h"
#include "lib/dnsname.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "maps/maps.h"
#include "deliver/client.h"
#include "tls/tls_client.h"

#define DOCTOR_USAGE                                                                               \
    "doctor [-c FILE] [DOMAIN] [--json] [--public-address IP] [--probe HOST[:PORT]]"
/* Short: a probe that hangs is a blocked port, and the operator is waiting. */
#define DOCTOR_NET_TIMEOUT_MS 5000
#define DOCTOR_DNS_TIMEOUT_MS 4000
#define DOCTOR_TEMPFAIL "could not check: DNS temporary failure"

enum {
    CHK_A,
    CHK_MX,
    CHK_PTR,
    CHK_SPF,
    CHK_DKIM,
    CHK_DMARC,
    CHK_TLSA,
    CHK_STS,
    CHK_TLSRPT,
    CHK_NET,
    CHK_COUNT
};
static const char *const doctor_names[CHK_COUNT] = {
    "a", "mx", "ptr", "spf", "dkim", "dmarc", "tlsa", "mta-sts", "tlsrpt", "network"};

struct doctor {
    struct config *cfg;
    char *domain;
    const char *myhostname;
    const char *resolver;
    struct dns *dns;
    char *public_addr; /* NULL: unknown */
    const char *public_source;
    const char *probe;
    const char *relayhost; /* "" when unset */
    struct doctor_check chk[CHK_COUNT];
};

/* ---- small helpers ---- */

static struct dns_answer *doctor_query(struct doctor *d, const char *name, int type)
{
    return dns_query_sync(d->dns, name, type);
}

static int doctor_same_addr(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1)
        return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
    if (inet_pton(AF_INET6, a, x) == 1)
        return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
    return 0;
}

static int doctor_is_ip(const char *s)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

static int doctor_is_v6(const char *a)
{
    return strchr(a, ':') != NULL;
}

/* The A/AAAA addresses of name; *tempfail when either lookup failed for now. */
static char **doctor_addrs(struct doctor *d, const char *name, int *tempfail, size_t *n)
{
    char **out = NULL;
    *n = 0;
    *tempfail = 0;
    unsigned char tmp[16];
    if (inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1) {
        doctor_push(&out, n, xstrdup(name));
        return out;
    }
    const int types[2] = {DNS_T_A, DNS_T_AAAA};
    for (int t = 0; t < 2; t++) {
        struct dns_answer *a = doctor_query(d, name, types[t]);
        if (a->status == DNS_TEMPFAIL)
            *tempfail = 1;
        if (a->status == DNS_OK)
            for (size_t i = 0; i < a->count; i++)
                doctor_push(&out, n, xstrdup(a->addrs[i]));
        dns_answer_free(a);
    }
    return out;
}

static void doctor_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void doctor_join(char *const *list, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(out, ", ");
        buf_puts(out, list[i]);
    }
}

static char *doctor_addr_line(const char *name, const char *addr)
{
    if (addr == NULL)
        return xasprintf("%s. IN A <this host's public IPv4 address>", name);
    return xasprintf("%s. IN %s %s", name, doctor_is_v6(addr) ? "AAAA" : "A", addr);
}

static const char *doctor_no_public =
    "the public address of this host is unknown (no global address on its interfaces); set "
    "doctor_public_address or give --public-address IP";

/* ---- 1. A/AAAA of myhostname ---- */

static void doctor_check_a(struct doctor *d, struct doctor_check *c)
{
    int tf;
    size_t n;
    char **addrs = doctor_addrs(d, d->myhostname, &tf, &n);
    struct buf f = BUF_INIT, e = BUF_INIT;
    if (d->public_addr)
        buf_printf(&e, "%s has A/AAAA %s (this host's public address)", d->myhostname,
                   d->public_addr);
    else
        buf_printf(&e, "%s has an A/AAAA record with this host's public address", d->myhostname);
    if (n == 0 && tf) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (A/AAAA of %s)", d->myhostname);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (n == 0) {
        buf_printf(&f, "%s has no A or AAAA record", d->myhostname);
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_record(c, doctor_addr_line(d->myhostname, d->public_addr));
    } else {
        buf_printf(&f, "%s has ", d->myhostname);
        doctor_join(addrs, n, &f);
        int match = 0;
        for (size_t i = 0; i < n && d->public_addr; i++)
            match |= doctor_same_addr(addrs[i], d->public_addr);
        if (d->public_addr == NULL) {
            buf_printf(&f, "; %s", doctor_no_public);
            doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        } else if (match) {
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
        } else {
            buf_puts(&f, ", not this host's address");
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_record(c, doctor_addr_line(d->myhostname, d->public_addr));
        }
    }
    doctor_free_list(addrs, n);
    buf_free(&f);
    buf_free(&e);
}

/* ---- 2. MX ---- */

static int doctor_domain_is_local(struct doctor *d)
{
    static const char *const keys[] = {"mydestination", "virtual_mailbox_domains"};
    int local = 0;
    for (size_t k = 0; k < 2 && !local; k++) {
        size_t n = 0;
        char **l = config_get_list(d->cfg, keys[k], &n);
        for (size_t i = 0; i < n; i++)
            local |= str_eq_ci(l[i], d->domain);
        strlist_free(l);
    }
    return local;
}

static void doctor_check_mx(struct doctor *d, struct doctor_check *c, const char *relay_host)
{
    struct dns_answer *a = doctor_query(d, d->domain, DNS_T_MX);
    struct buf f = BUF_INIT, e = BUF_INIT;
    buf_printf(&e, "MX of %s pointing to %s", d->domain, d->myhostname);
    char *line = xasprintf("%s. IN MX 10 %s.", d->domain, d->myhostname);
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (MX of %s)", d->domain);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (a->status != DNS_OK || a->count == 0) {
        buf_printf(&f, "%s has no MX record (%s)", d->domain, dns_status_str(a->status));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_record(c, line);
        line = NULL;
    } else if (a->count == 1 && a->mx[0].host[0] == '\0') {
        buf_printf(&f, "%s has a null MX (RFC 7505): a send-only domain that receives no mail",
                   d->domain);
        doctor_set(c, doctor_domain_is_local(d) ? DOCTOR_FAIL : DOCTOR_WARN, buf_cstr(&f),
                   buf_cstr(&e));
        if (doctor_domain_is_local(d)) {
            doctor_record(c, line);
            line = NULL;
        }
    } else {
        int ours = 0, relay = 0;
        buf_printf(&f, "%s MX ", d->domain);
        for (size_t i = 0; i < a->count; i++) {
            buf_printf(&f, "%s%u %s", i ? ", " : "", a->mx[i].pref, a->mx[i].host);
            ours |= str_eq_ci(a->mx[i].host, d->myhostname);
            relay |= relay_host[0] && str_eq_ci(a->mx[i].host, relay_host);
        }
        if (ours || relay) {
            if (!ours)
                buf_puts(&f, " (the relay)");
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
        } else if (doctor_domain_is_local(d)) {
            buf_printf(&f, ", not %s: mail for %s does not reach this host", d->myhostname,
                       d->domain);
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_record(c, line);
            line = NULL;
        } else {
            buf_printf(&f,
                       ", not %s: another server receives %s's mail (%s is not in "
                       "mydestination: a send-only set-up)",
                       d->myhostname, d->domain, d->domain);
            doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        }
    }
    free(line);
    dns_answer_free(a);
    buf_free(&f);
    buf_free(&e);
}

/* ---- 3. PTR and FCrDNS ---- */

static void doctor_ptr_advice(struct doctor *d, struct doctor_check *c, const char *rev)
{
    doctor_advise(c, xasprintf("The PTR record of %s is set at the provider that owns the address "
                               "(the hosting or cloud provider's control panel, or its support), "
                               "not at the domain registrar; ask for: %s. IN PTR %s.",
                               d->public_addr, rev, d->myhostname));
}

static void doctor_check_ptr(struct doctor *d, struct doctor_check *c)
{
    struct buf f = BUF_INIT, e = BUF_INIT, rev = BUF_INIT;
    if (d->public_addr == NULL) {
        doctor_set(c, DOCTOR_WARN, doctor_no_public, "PTR of the public address -> myhostname");
        return;
    }
    buf_printf(&e, "PTR of %s -> %s -> %s (FCrDNS)", d->public_addr, d->myhostname, d->public_addr);
    dns_reverse_name(d->public_addr, &rev);
    struct dns_answer *a = doctor_query(d, buf_cstr(&rev), DNS_T_PTR);
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (PTR %s)", buf_cstr(&rev));
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (a->status != DNS_OK || a->count == 0) {
        buf_printf(&f, "%s has no PTR record (%s)", d->public_addr, dns_status_str(a->status));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_ptr_advice(d, c, buf_cstr(&rev));
    } else {
        int named = 0;
        buf_printf(&f, "PTR of %s is ", d->public_addr);
        doctor_join(a->names, a->count, &f);
        for (size_t i = 0; i < a->count; i++)
            named |= str_eq_ci(a->names[i], d->myhostname);
        if (!named) {
            buf_printf(&f, ", not %s", d->myhostname);
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_ptr_advice(d, c, buf_cstr(&rev));
        } else {
            int tf;
            size_t n;
            char **addrs = doctor_addrs(d, d->myhostname, &tf, &n);
            int back = 0;
            for (size_t i = 0; i < n; i++)
                back |= doctor_same_addr(addrs[i], d->public_addr);
            if (back) {
                buf_printf(&f, ", which resolves back to %s", d->public_addr);
                doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
            } else if (tf) {
                buf_printf(&f, "; forward lookup: " DOCTOR_TEMPFAIL);
                doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
            } else {
                buf_printf(&f, ", but %s does not resolve back to %s (no FCrDNS)", d->myhostname,
                           d->public_addr);
                doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
                doctor_record(c, doctor_addr_line(d->myhostname, d->public_addr));
            }
            doctor_free_list(addrs, n);
        }
    }
    dns_answer_free(a);
    buf_free(&f);
    buf_free(&e);
    buf_free(&rev);
}

/* ---- 4. SPF ---- */

/* Relays whose documentation names the SPF include customers publish. */
static const struct {
    const char *suffix;
    const char *include;
} doctor_relays[] = {
    {"mailjet.com", "spf.mailjet.com"},
    {"sendgrid.net", "sendgrid.net"},
    {"amazonaws.com", "amazonses.com"},
    {"mailgun.org", "mailgun.org"},
    {"postmarkapp.com", "spf.mtasv.net"},
    {"gmail.com", "_spf.google.com"},
    {"office365.com", "spf.protection.outlook.com"},
};

/*
 * The domain whose SPF record authorises a relay's sending addresses: the
 * provider table above, else the relay host's registered domain when that
 * domain publishes an SPF record of its own (providers document exactly
 * that include). NULL when neither is known. Caller frees.
 */
static char *doctor_relay_include(struct doctor *d, const char *host)
{
    size_t hl = strlen(host);
    for (size_t i = 0; i < sizeof(doctor_relays) / sizeof(doctor_relays[0]); i++) {
        size_t sl = strlen(doctor_relays[i].suffix);
        if (hl >= sl && str_eq_ci(host + hl - sl, doctor_relays[i].suffix) &&
            (hl == sl || host[hl - sl - 1] == '.'))
            return xstrdup(doctor_relays[i].include);
    }
    char *org = dmarc_org_domain(host);
    if (org == NULL || str_eq_ci(org, d->domain)) {
        free(org);
        return NULL;
    }
    struct dns_answer *a = doctor_query(d, org, DNS_T_TXT);
    int has_spf = 0;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        has_spf |= spf_is_record(a->txt[i]);
    dns_answer_free(a);
    if (!has_spf) {
        free(org);
        return NULL;
    }
    return org;
}

/*
 * The SPF record to publish: the existing one with our term added, or a
 * fresh one. A term that cannot be known from here (the relay's include, or
 * this host's public address) is never written into the line meant to be
 * pasted: the record says what is known and the advice says what to add.
 */
static void doctor_spf_suggest(struct doctor *d, struct doctor_check *c, const char *existing,
                               const char *relay_host)
{
    struct buf term = BUF_INIT;
    if (relay_host && *relay_host) {
        char *inc = doctor_relay_include(d, relay_host);
        if (inc)
            buf_printf(&term, "include:%s ", inc);
        else
            doctor_advise(c, xasprintf("Add to this record, before its last term, the "
                                       "include: term that the provider of %s documents for "
                                       "its sending addresses.",
                                       relay_host));
        free(inc);
    } else if (d->public_addr) {
        buf_printf(&term, "%s:%s ", doctor_is_v6(d->public_addr) ? "ip6" : "ip4", d->public_addr);
    } else {
        doctor_advise(c, xasprintf("Add this host's public address to this record as an ip4: "
                                   "(or ip6:) term before its last term: %s",
                                   doctor_no_public));
    }
    char *rec;
    if (existing != NULL && strlen(existing) > 6)
        rec = xasprintf("v=spf1 %s%s", buf_cstr(&term), existing + 7);
    else
        rec = xasprintf("v=spf1 mx %s~all", buf_cstr(&term));
    buf_free(&term);
    struct buf out = BUF_INIT;
    doctor_txt_line(d->domain, rec, &out);
    free(rec);
    doctor_record(c, buf_steal(&out));
}

/* Evaluates SPF for ip as mail from postmaster@DOMAIN; -1 when the evaluation could not start. */
static int doctor_spf_eval(struct doctor *d, const char *ip, struct spf_outcome *out,
                           struct buf *err)
{
    struct buf from = BUF_INIT;
    buf_printf(&from, "postmaster@%s", d->domain);
    struct spf_request req = {
        .ip = ip, .helo = d->myhostname, .mailfrom = buf_cstr(&from), .receiver = d->myhostname};
    int r = spf_check_sync(d->resolver, &req, out, err);
    buf_free(&from);
    return r;
}

static int doctor_spf_has_include(const struct spf_record *rec, const char *inc)
{
    for (size_t i = 0; i < rec->count; i++)
        if (rec->mechs[i].type == SPF_MECH_INCLUDE && rec->mechs[i].domain_spec &&
            str_eq_ci(rec->mechs[i].domain_spec, inc))
            return 1;
    return 0;
}

static void doctor_check_spf(struct doctor *d, struct doctor_check *c, const char *relay_host)
{
    struct dns_answer *a = doctor_query(d, d->domain, DNS_T_TXT);
    struct buf f = BUF_INIT, e = BUF_INIT, err = BUF_INIT;
    struct spf_record *rec = NULL;
    const char *spf = NULL;
    size_t nspf = 0;
    int relay = relay_host && *relay_host;
    if (relay)
        buf_printf(&e, "one SPF record at %s that authorises the relay %s", d->domain, relay_host);
    else
        buf_printf(&e, "one SPF record at %s that passes for %s", d->domain,
                   d->public_addr ? d->public_addr : "this host");
    if (a->status == DNS_OK)
        for (size_t i = 0; i < a->count; i++)
            if (spf_is_record(a->txt[i])) {
                spf = spf ? spf : a->txt[i];
                nspf++;
            }
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (TXT of %s)", d->domain);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    if (nspf == 0) {
        buf_printf(&f, "%s has no SPF record", d->domain);
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_spf_suggest(d, c, NULL, relay_host);
        goto out;
    }
    if (nspf > 1) {
        buf_printf(&f, "%s has %zu SPF records (a permerror, RFC 7208 4.5)", d->domain, nspf);
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_advise(
            c, xasprintf("Merge the SPF records of %s into one and delete the others.", d->domain));
        goto out;
    }
    rec = spf_record_parse(spf, &err);
    if (rec == NULL) {
        buf_printf(&f, "\"%s\" does not parse: %s", spf, buf_cstr(&err));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_spf_suggest(d, c, NULL, relay_host);
        goto out;
    }
    buf_printf(&f, "\"%s\"", spf);

    /* Which addresses send: this host's, or the relay's. */
    char **ips = NULL;
    size_t nips = 0;
    int tf = 0;
    if (relay) {
        ips = doctor_addrs(d, relay_host, &tf, &nips);
    } else if (d->public_addr) {
        doctor_push(&ips, &nips, xstrdup(d->public_addr));
    } else {
        buf_printf(&f, " parses; not evaluated: %s", doctor_no_public);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    struct spf_outcome o = {0};
    enum spf_result best = SPF_NONE;
    struct buf problem = BUF_INIT;
    const char *pass_ip = NULL, *last_ip = NULL;
    for (size_t i = 0; i < nips && pass_ip == NULL; i++) {
        buf_reset(&err);
        if (doctor_spf_eval(d, ips[i], &o, &err) != 0) {
            buf_set(&problem, buf_cstr(&err));
            best = SPF_TEMPERROR;
            continue;
        }
        last_ip = ips[i];
        best = o.result;
        buf_set(&problem, o.problem ? o.problem : "");
        if (o.result == SPF_PASS)
            pass_ip = ips[i];
        spf_outcome_clear(&o);
    }
    char *inc = relay ? doctor_relay_include(d, relay_host) : NULL;
    if (pass_ip) {
        buf_printf(&f, " evaluates to pass for %s%s%s", pass_ip, relay ? ", the relay " : "",
                   relay ? relay_host : "");
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
    } else if (best == SPF_PERMERROR) {
        buf_printf(&f, " is a permerror: %s", buf_cstr(&problem));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        if (strstr(buf_cstr(&problem), "DNS-querying") || strstr(buf_cstr(&problem), "void"))
            doctor_advise(c, xasprintf("SPF allows at most 10 DNS-querying terms (include, a, "
                                       "mx, ptr, exists, redirect; RFC 7208 4.6.4): replace "
                                       "some with ip4:/ip6: terms."));
    } else if (best == SPF_TEMPERROR) {
        buf_printf(&f, " parses; " DOCTOR_TEMPFAIL " (%s)", buf_cstr(&problem));
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (relay && inc && doctor_spf_has_include(rec, inc)) {
        buf_printf(&f,
                   " has include:%s, the SPF record %s documents (its submission address "
                   "is not one of its sending addresses)",
                   inc, relay_host);
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
    } else if (relay && nips == 0) {
        buf_printf(&f, " parses; the relay %s has no address to evaluate it for%s", relay_host,
                   tf ? " (" DOCTOR_TEMPFAIL ")" : "");
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (relay && inc == NULL) {
        buf_printf(&f,
                   " evaluates to %s for the relay's address %s; the relay sends from "
                   "addresses its provider documents, which cannot be checked from here",
                   spf_result_str(best), last_ip ? last_ip : relay_host);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        doctor_advise(c, xasprintf("Make sure the SPF record of %s has the include: term your "
                                   "relay provider documents.",
                                   d->domain));
    } else {
        buf_printf(&f, " evaluates to %s for %s", spf_result_str(best),
                   last_ip ? last_ip : "this host");
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_spf_suggest(d, c, spf, relay_host);
    }
    buf_free(&problem);
    doctor_free_list(ips, nips);
    free(inc);
out:
    spf_record_free(rec);
    dns_answer_free(a);
    buf_free(&f);
    buf_free(&e);
    buf_free(&err);
}

/* ---- 5. DKIM ---- */

static void doctor_check_dkim(struct doctor *d, struct doctor_check *c)
{
    const char *kdir = config_get(d->cfg, "dkim_key_directory");
    char *dir = xasprintf("%s/%s", kdir, d->domain);
    size_t nsels = 0;
    char **sels = dir_names(dir, ".pem", 64, &nsels);
    struct buf f = BUF_INIT, e = BUF_INIT, err = BUF_INIT, rec = BUF_INIT;
    if (nsels == 0) {
        buf_printf(&f, "no DKIM key for %s under %s", d->domain, dir);
        buf_printf(&e, "a key %s/SELECTOR.pem and its record at SELECTOR._domainkey.%s", dir,
                   d->domain);
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        doctor_advise(c, xasprintf("Make a key with: hongyan dkim keygen %s (it prints the TXT "
                                   "record to publish; hongyan dkim show %s prints it again).",
                                   d->domain, d->domain));
        goto out;
    }
    buf_printf(&e, "the TXT record at SELECTOR._domainkey.%s matches each key in %s", d->domain,
               dir);
    doctor_set(c, DOCTOR_OK, NULL, buf_cstr(&e));
    int have_rsa = 0, have_ed = 0;
    for (size_t i = 0; i < nsels; i++) {
        char *path = xasprintf("%s/%s.pem", dir, sels[i]);
        char *name = xasprintf("%s._domainkey.%s", sels[i], d->domain);
        buf_reset(&f);
        buf_reset(&err);
        buf_reset(&rec);
        EVP_PKEY *key = dkim_load_private_key(path, &err);
        if (key == NULL || dkim_key_record(key, &rec) != 0) {
            buf_printf(&f, "%s: %s", path, err.len ? buf_cstr(&err) : "unusable key");
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), NULL);
        } else {
            int ed = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
            have_ed |= ed;
            have_rsa |= !ed;
            struct dns_answer *a = doctor_query(d, name, DNS_T_TXT);
            int match = 0;
            struct buf why = BUF_INIT;
            for (size_t j = 0; a->status == DNS_OK && j < a->count && !match; j++) {
                buf_reset(&why);
                match = dkim_key_record_matches(key, a->txt[j], strlen(a->txt[j]), &why);
            }
            if (a->status == DNS_TEMPFAIL) {
                buf_printf(&f, "%s: " DOCTOR_TEMPFAIL, name);
                doctor_set(c, DOCTOR_WARN, buf_cstr(&f), NULL);
            } else if (match) {
                buf_printf(&f, "%s matches %s (%s)", name, path, ed ? "ed25519" : "rsa");
                doctor_set(c, DOCTOR_OK, buf_cstr(&f), NULL);
            } else {
                if (a->status != DNS_OK || a->count == 0)
                    buf_printf(&f, "%s has no TXT record (%s)", name, dns_status_str(a->status));
                else
                    buf_printf(&f, "%s does not match %s: %s", name, path, buf_cstr(&why));
                doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), NULL);
                struct buf line = BUF_INIT;
                dkim_key_record_zone(name, buf_cstr(&rec), &line);
                doctor_record(c, buf_steal(&line));
                doctor_advise(c, xasprintf("Publish the record that hongyan dkim show %s prints.",
                                           d->domain));
            }
            buf_free(&why);
            dns_answer_free(a);
        }
        EVP_PKEY_free(key);
        free(path);
        free(name);
    }
    /* An algorithm dkim_algorithm asks for, with no key of that kind: mail goes out without it. */
    size_t nalg = 0;
    char **algs = config_get_list(d->cfg, "dkim_algorithm", &nalg);
    for (size_t i = 0; i < nalg; i++) {
        int ed = strcmp(algs[i], "ed25519") == 0;
        if ((ed && !have_ed) || (!ed && !have_rsa)) {
            buf_reset(&f);
            buf_printf(&f, "no %s key although dkim_algorithm lists it", algs[i]);
            doctor_set(c, DOCTOR_WARN, buf_cstr(&f), NULL);
            doctor_advise(c, xasprintf("Make it with: hongyan dkim keygen %s --algorithm %s "
                                       "--selector %s-%s",
                                       d->domain, algs[i], config_get(d->cfg, "dkim_selector"),
                                       algs[i]));
        }
    }
    strlist_free(algs);
out:
    strlist_free(sels);
    free(dir);
    buf_free(&f);
    buf_free(&e);
    buf_free(&err);
    buf_free(&rec);
}

/* ---- 6. DMARC ---- */

static void doctor_check_dmarc(struct doctor *d, struct doctor_check *c)
{
    char *name = xasprintf("_dmarc.%s", d->domain);
    struct dns_answer *a = doctor_query(d, name, DNS_T_TXT);
    struct buf f = BUF_INIT, e = BUF_INIT, why = BUF_INIT, note = BUF_INIT;
    buf_printf(&e, "one DMARC record at %s (p=none to start, then p=quarantine or p=reject)", name);
    /* Records that do not start with v=DMARC1 are not DMARC records (RFC 7489 6.6.3). */
    const char *txt = NULL;
    enum dmarc_parse_status st = DMARC_PARSE_NOT_DMARC;
    struct dmarc_record rec = {0};
    size_t n = 0;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++) {
        struct dmarc_record r;
        buf_reset(&note);
        enum dmarc_parse_status s1 = dmarc_record_parse(a->txt[i], strlen(a->txt[i]), &r, &note);
        if (s1 != DMARC_PARSE_NOT_DMARC && n++ == 0) {
            txt = a->txt[i];
            st = s1;
            rec = r;
            buf_set(&why, buf_cstr(&note));
        } else {
            dmarc_record_clear(&r);
        }
    }
    char *suggest = xasprintf("v=DMARC1; p=none; rua=mailto:postmaster@%s", d->domain);
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (TXT of %s)", name);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (n != 1 || st != DMARC_PARSE_OK) {
        if (n == 0)
            buf_printf(&f, "%s has no DMARC record", name);
        else if (n > 1)
            buf_printf(&f, "%s has %zu DMARC records (receivers then apply none, RFC 7489 6.6.3)",
                       name, n);
        else
            buf_printf(&f, "\"%s\" does not parse: %s", txt, buf_cstr(&why));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        struct buf line = BUF_INIT;
        doctor_txt_line(name, suggest, &line);
        doctor_record(c, buf_steal(&line));
        doctor_advise(c, xasprintf("This record is the first step: p=none changes nothing for "
                                   "receivers and brings the aggregate reports to rua=. The "
                                   "next step, once the reports show only your own mail, "
                                   "passing: p=quarantine."));
    } else {
        buf_printf(&f, "\"%s\"", txt);
        if (why.len)
            buf_printf(&f, " (%s)", buf_cstr(&why));
        if (rec.p_fallback || rec.p == DMARC_POLICY_NONE) {
            /* p=none is the first step doctor itself recommends: not a
             * problem, but the next step is said with it. */
            buf_puts(&f, rec.p_fallback ? " (acts as p=none, RFC 7489 6.6.3: monitoring only)"
                                        : " (p=none: monitoring only)");
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
            doctor_advise(c, xasprintf("Next step, once the aggregate reports show only your "
                                       "own mail, passing: p=quarantine."));
        } else {
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
        }
    }
    dmarc_record_clear(&rec);
    free(suggest);
    free(name);
    dns_answer_free(a);
    buf_free(&f);
    buf_free(&e);
    buf_free(&why);
    buf_free(&note);
}

/* ---- 7. TLSA (DANE, RFC 7672) ---- */

#define DOCTOR_CERTS_MAX 16

/* The certificates of the server's cert file (leaf first); how many, 0 if none. */
static size_t doctor_load_certs(const char *path, X509 **certs)
{
    BIO *bio = BIO_new_file(path, "r");
    size_t n = 0;
    if (!bio)
        return 0;
    while (n < DOCTOR_CERTS_MAX && (certs[n] = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        n++;
    BIO_free(bio);
    ERR_clear_error();
    return n;
}

/*
 * The TLSA records at _25._tcp.myhostname must match the certificate the
 * server presents, or senders that use DANE defer all mail to it. None is
 * fine (DANE is optional, and needs a DNSSEC-signed zone): the record to
 * publish is then advice, not a requirement.
 */
static void doctor_check_tlsa(struct doctor *d, struct doctor_check *c)
{
    const char *cfgfile = config_get(d->cfg, "smtpd_tls_cert_file");
    char *path = cfgfile && *cfgfile
                     ? xstrdup(cfgfile)
                     : xasprintf("%s/tls/cert.pem", config_get(d->cfg, "data_directory"));
    char *name = xasprintf("_25._tcp.%s", d->myhostname);
    struct buf f = BUF_INIT, e = BUF_INIT, hex = BUF_INIT, data = BUF_INIT;
    X509 *certs[DOCTOR_CERTS_MAX];
    size_t ncerts = doctor_load_certs(path, certs);
    char *line = NULL;
    if (ncerts > 0) {
        tls_tlsa_data(certs[0], 1, 1, &data);
        for (size_t i = 0; i < data.len; i++)
            buf_printf(&hex, "%02x", (unsigned char)data.data[i]);
        line = xasprintf("%s. IN TLSA 3 1 1 %s", name, buf_cstr(&hex));
        buf_printf(&e, "no TLSA records at %s, or one matching the certificate in %s (3 1 1 %s)",
                   name, path, buf_cstr(&hex));
    } else {
        buf_printf(&e, "no TLSA records at %s, or one matching the certificate in %s", name, path);
    }
    struct dns_answer *a = doctor_query(d, name, DNS_T_TLSA);
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, DOCTOR_TEMPFAIL " (TLSA of %s)", name);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else if (a->status != DNS_OK) {
        buf_printf(&f, "no TLSA records at %s (DANE not published)", name);
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
        if (line)
            doctor_advise(c, xasprintf("Optional: with a DNSSEC-signed zone, publish \"%s\" so "
                                       "that senders using DANE (RFC 7672) require TLS with this "
                                       "key; add the new key's record before changing keys.",
                                       line));
    } else if (ncerts == 0) {
        buf_printf(&f,
                   "%zu TLSA record(s) at %s, but no server certificate readable in %s to "
                   "compare (the server makes one when it first starts)",
                   a->count, name, path);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    } else {
        int matched = 0;
        size_t usable = 0;
        for (size_t i = 0; i < a->count && !matched; i++) {
            struct tls_tlsa t;
            if (tls_tlsa_parse(a->rdata[i], a->rdlen[i], &t) != 0 || !tls_tlsa_usable(&t))
                continue;
            usable++;
            /* DANE-EE(3) names the server's own certificate; DANE-TA(2) one of its issuers. */
            size_t from = t.usage == 3 ? 0 : 1, to = t.usage == 3 ? 1 : ncerts;
            for (size_t k = from; k < to && !matched; k++) {
                if (tls_tlsa_matches(&t, certs[k])) {
                    matched = 1;
                    buf_printf(&f, "TLSA %u %u %u at %s matches the certificate in %s", t.usage,
                               t.selector, t.mtype, name, path);
                }
            }
        }
        if (matched) {
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
        } else {
            buf_printf(&f,
                       "%zu TLSA record(s) at %s (%zu usable for SMTP), none matching the "
                       "certificate in %s",
                       a->count, name, usable, path);
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_record(c, line);
            line = NULL;
            doctor_advise(c, xasprintf("Senders that use DANE defer all mail to %s until a TLSA "
                                       "record matches its certificate: publish the record "
                                       "above (or remove the stale ones).",
                                       d->myhostname));
        }
    }
    for (size_t i = 0; i < ncerts; i++)
        X509_free(certs[i]);
    dns_answer_free(a);
    free(line);
    buf_free(&f);
    buf_free(&e);
    buf_free(&hex);
    buf_free(&data);
    free(name);
    free(path);
}

/* ---- 8. network ---- */

static const char *doctor_relay_advice =
    "Many clouds block outbound port 25: ask the provider to open it, or send through a relay on "
    "port 587 (main.cf: relayhost = [smtp.provider.example]:587, smtp_sasl_auth_enable = yes, "
    "smtp_sasl_password_maps = hash:/etc/hongyan/sasl_passwd).";

static void doctor_check_port25(struct doctor *d, struct doctor_check *c)
{
    struct buf host = BUF_INIT, f = BUF_INIT, e = BUF_INIT;
    int port = (int)config_get_int(d->cfg, "smtp_tcp_port"), br = 0;
    if (d->probe != NULL) {
        doctor_parse_hostport(d->probe, 25, &host, &port, &br);
    } else {
        struct dns_answer *a = doctor_query(d, d->domain, DNS_T_MX);
        size_t best = 0;
        for (size_t i = 1; a->status == DNS_OK && i < a->count; i++)
            if (a->mx[i].pref < a->mx[best].pref)
                best = i;
        if (a->status == DNS_OK && a->count > 0 && a->mx[best].host[0] != '\0')
            buf_puts(&host, a->mx[best].host);
        dns_answer_free(a);
    }
    buf_printf(&e, "outbound TCP port %d reachable", port);
    if (host.len == 0) {
        buf_printf(&f, "not checked: %s has no MX host to try; give --probe HOST", d->domain);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    int tf;
    size_t n;
    char **addrs = doctor_addrs(d, buf_cstr(&host), &tf, &n);
    if (n == 0) {
        buf_printf(&f, "not checked: %s has no address%s", buf_cstr(&host),
                   tf ? " (" DOCTOR_TEMPFAIL ")" : "");
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    }
    /* Two addresses at most: the check is about our network, not their servers. */
    for (size_t i = 0; i < n && i < 2; i++) {
        struct buf detail = BUF_INIT;
        int r = doctor_smtp_probe(addrs[i], port, DOCTOR_NET_TIMEOUT_MS, &detail);
        buf_reset(&f);
        buf_printf(&f, "%s %s[%s]:%d: %s", r == 0 ? "connected to" : "cannot reach",
                   doctor_is_ip(buf_cstr(&host)) ? "" : buf_cstr(&host), addrs[i], port,
                   buf_cstr(&detail));
        buf_free(&detail);
        if (r == 0) {
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
            c->status = DOCTOR_OK;
            break;
        }
        if (i + 1 == n || i == 1) {
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_advise(c, xstrdup(doctor_relay_advice));
        }
    }
    doctor_free_list(addrs, n);
out:
    buf_free(&host);
    buf_free(&f);
    buf_free(&e);
}

/* smtp_sasl_password_maps as route.h's lookup seam (the delivery agent's key order). */
static int doctor_table_lookup(void *ctx, const char *table, const char *key, struct buf *value,
                               struct buf *err)
{
    (void)table;
    return (int)map_list_lookup(ctx, key, value, err);
}

struct doctor_relay_run {
    struct buf *found;
    enum doctor_status st;
    const char *user; /* NULL: no AUTH configured */
    const char *label;
};

static void doctor_relay_ready(void *arg, struct smtp_client *c, int ok, enum smtp_client_fail fail,
                               int permanent, const char *dsn, const char *why)
{
    struct doctor_relay_run *r = arg;
    (void)fail;
    (void)permanent;
    (void)dsn;
    if (!ok) {
        buf_printf(r->found, "%s: %s", r->label, why);
        r->st = DOCTOR_FAIL;
        smtp_client_free(c);
        return;
    }
    const struct smtp_ehlo *e = smtp_client_ehlo(c);
    if (r->user != NULL && !(e->ext & SMTP_EHLO_AUTH)) {
        /* The client skips AUTH when the server does not offer it: that is not a pass. */
        buf_printf(r->found, "%s: TLS ok, but no AUTH offered for %s", r->label, r->user);
        r->st = DOCTOR_FAIL;
    } else if (r->user != NULL) {
        buf_printf(r->found, "%s: TLS ok, AUTH as %s accepted", r->label, r->user);
        r->st = DOCTOR_OK;
    } else {
        buf_printf(r->found, "%s: TLS ok (smtp_sasl_auth_enable = no: AUTH not tried)", r->label);
        r->st = DOCTOR_OK;
    }
    smtp_client_quit(c);
}

/* Connects with the SMTP client (src/deliver/client.h): STARTTLS required, AUTH, QUIT; no mail. */
static enum doctor_status doctor_relay_session(struct doctor *d, const char *server, const char *ip,
                                               int port, const char *user, const char *pass,
                                               struct buf *found)
{
    struct buf err = BUF_INIT;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sockaddr_from_ip(ip, port, &ss, &sl) < 0) {
        buf_printf(found, "'%s' is not an IP address", ip);
        return DOCTOR_FAIL;
    }
    struct tls_client *tls = tls_client_new(d->cfg, &err);
    if (tls == NULL) {
        buf_printf(found, "TLS client: %s", buf_cstr(&err));
        buf_free(&err);
        return DOCTOR_FAIL;
    }
    struct event_base *base = event_base_new();
    if (base == NULL) {
        tls_client_free(tls);
        buf_puts(found, "cannot make an event loop");
        return DOCTOR_FAIL;
    }
    char *label = xasprintf("%s[%s]:%d", doctor_is_ip(server) ? "" : server, ip, port);
    struct smtp_client_opts o = {0};
    o.base = base;
    o.tls = tls;
    /* The check is that the relay takes TLS: at least encrypt, stricter if configured. */
    o.level = tls_level_parse(config_get(d->cfg, "smtp_tls_security_level"));
    if (o.level < TLS_LEVEL_ENCRYPT || o.level == TLS_LEVEL_DANE)
        o.level = TLS_LEVEL_ENCRYPT;
    o.wrappermode = config_get_bool(d->cfg, "smtp_tls_wrappermode");
    o.helo_name = config_get(d->cfg, "smtp_helo_name");
    o.server_name = server;
    o.match_name = server;
    o.sasl_user = user;
    o.sasl_pass = pass;
    o.sasl_noplaintext = 1;
    int t = DOCTOR_NET_TIMEOUT_MS / 1000;
    o.connect_timeout = o.helo_timeout = o.starttls_timeout = o.mail_timeout = t;
    o.rcpt_timeout = o.data_init_timeout = o.data_xfer_timeout = o.data_done_timeout = t;
    o.quit_timeout = t;
    struct doctor_relay_run run = {.found = found, .st = DOCTOR_FAIL, .user = user, .label = label};
    /* The report says what happened; the client's log lines would only repeat it. */
    log_set_stderr(0);
    smtp_client_connect(&o, (struct sockaddr *)&ss, sl, label, doctor_relay_ready, &run);
    event_base_dispatch(base);
    log_set_stderr(1);
    event_base_free(base);
    tls_client_free(tls);
    free(label);
    buf_free(&err);
    return run.st;
}

static void doctor_check_relay(struct doctor *d, struct doctor_check *c, const struct route *rt)
{
    struct buf f = BUF_INIT, e = BUF_INIT, server = BUF_INIT;
    int auth = config_get_bool(d->cfg, "smtp_sasl_auth_enable");
    buf_printf(&e, "relayhost %s accepts STARTTLS%s", d->relayhost,
               auth ? " and the configured credentials" : "");
    /* host and host:port name a domain whose MX is the relay (Postfix relayhost). */
    buf_puts(&server, rt->host);
    if (rt->mx && !rt->literal) {
        struct dns_answer *a = doctor_query(d, rt->host, DNS_T_MX);
        if (a->status == DNS_OK && a->count > 0 && a->mx[0].host[0] != '\0')
            buf_set(&server, a->mx[0].host);
        dns_answer_free(a);
    }
    int tf;
    size_t n;
    char **addrs = doctor_addrs(d, buf_cstr(&server), &tf, &n);
    struct buf user = BUF_INIT, pass = BUF_INIT, key = BUF_INIT, err = BUF_INIT;
    struct map_list *ml = NULL;
    if (n == 0) {
        buf_printf(&f, "not checked: the relay %s has no address%s", buf_cstr(&server),
                   tf ? " (" DOCTOR_TEMPFAIL ")" : "");
        doctor_set(c, tf ? DOCTOR_WARN : DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    int have_user = 0;
    if (auth) {
        ml = map_list_open(config_get(d->cfg, "smtp_sasl_password_maps"), &err);
        if (ml == NULL) {
            buf_printf(&f, "smtp_sasl_password_maps: %s", buf_cstr(&err));
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        struct route_tables tables = {.lookup = doctor_table_lookup, .ctx = ml};
        int r = route_sasl_lookup(&tables, rt, buf_cstr(&server), &user, &pass, &key, &err);
        if (r == MAP_TEMPFAIL) {
            buf_printf(&f, "smtp_sasl_password_maps: %s", buf_cstr(&err));
            doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        if (r != MAP_FOUND) {
            char **keys = route_sasl_keys(rt, buf_cstr(&server));
            buf_puts(&f, "smtp_sasl_password_maps has no entry for ");
            for (size_t i = 0; keys[i] != NULL; i++)
                buf_printf(&f, "%s%s", i ? ", " : "", keys[i]);
            strlist_free(keys);
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        have_user = 1;
    }
    enum doctor_status st = doctor_relay_session(d, buf_cstr(&server), addrs[0], rt->port,
                                                 have_user ? buf_cstr(&user) : NULL,
                                                 have_user ? buf_cstr(&pass) : NULL, &f);
    doctor_set(c, st, buf_cstr(&f), buf_cstr(&e));
    if (st == DOCTOR_FAIL)
        doctor_advise(c, xasprintf("Check relayhost, the relay's TLS, and the user:password for "
                                   "it in smtp_sasl_password_maps (rebuild a hash: table with "
                                   "hongyan map build)."));
out:
    if (pass.data)
        memset(pass.data, 0, pass.len);
    map_list_free(ml);
    doctor_free_list(addrs, n);
    buf_free(&user);
    buf_free(&pass);
    buf_free(&key);
    buf_free(&err);
    buf_free(&f);
    buf_free(&e);
    buf_free(&server);
}

/* ---- the public address ---- */

static char *doctor_interfaces_public(void)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return NULL;
    char **list = NULL;
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        char text[INET6_ADDRSTRLEN];
        int fam = i->ifa_addr->sa_family;
        const void *src = NULL;
        if (fam == AF_INET)
            src = &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
        else if (fam == AF_INET6)
            src = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
        if (src != NULL && inet_ntop(fam, src, text, sizeof(text)) != NULL)
            doctor_push(&list, &n, xstrdup(text));
    }
    freeifaddrs(ifa);
    const char *pick = doctor_pick_public(list, n);
    char *out = pick ? xstrdup(pick) : NULL;
    doctor_free_list(list, n);
    return out;
}

/* ---- output ---- */

static void doctor_print_text(struct doctor *d)
{
    printf("hongyan doctor: %s (myhostname %s, public address %s%s%s)\n", d->domain, d->myhostname,
           d->public_addr ? d->public_addr : "unknown", d->public_addr ? " from " : "",
           d->public_addr ? d->public_source : "");
    for (int i = 0; i < CHK_COUNT; i++) {
        struct doctor_check *c = &d->chk[i];
        printf("%-4s  %-7s found: %s; expected: %s\n", doctor_status_str(c->status), c->name,
               buf_cstr(&c->found), buf_cstr(&c->expected));
    }
    int nrec = 0, nadv = 0;
    for (int i = 0; i < CHK_COUNT; i++) {
        nrec += (int)d->chk[i].nrecords;
        nadv += (int)d->chk[i].nadvice;
    }
    if (nrec) {
        printf("\nPublish these records (zone-file lines):\n");
        for (int i = 0; i < CHK_COUNT; i++)
            for (size_t j = 0; j < d->chk[i].nrecords; j++)
                printf("%s\n", d->chk[i].records[j]);
    }
    if (nadv) {
        printf("\nAlso:\n");
        for (int i = 0; i < CHK_COUNT; i++)
            for (size_t j = 0; j < d->chk[i].nadvice; j++)
                printf("- %s: %s\n", d->chk[i].name, d->chk[i].advice[j]);
    }
}

static void doctor_json_list(char *const *list, size_t n, struct buf *out)
{
    buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(out, ", ");
        doctor_json_string(list[i], out);
    }
    buf_putc(out, ']');
}

static void doctor_print_json(struct doctor *d, int failed)
{
    struct buf o = BUF_INIT;
    buf_puts(&o, "{\"domain\": ");
    doctor_json_string(d->domain, &o);
    buf_puts(&o, ", \"myhostname\": ");
    doctor_json_string(d->myhostname, &o);
    buf_puts(&o, ", \"public_address\": ");
    if (d->public_addr) {
        doctor_json_string(d->public_addr, &o);
        buf_puts(&o, ", \"public_address_source\": ");
        doctor_json_string(d->public_source, &o);
    } else {
        buf_puts(&o, "null, \"public_address_source\": null");
    }
    buf_printf(&o, ", \"failed\": %s, \"checks\": [", failed ? "true" : "false");
    for (int i = 0; i < CHK_COUNT; i++) {
        struct doctor_check *c = &d->chk[i];
        buf_puts(&o, i ? ",\n  {\"name\": " : "\n  {\"name\": ");
        doctor_json_string(c->name, &o);
        buf_puts(&o, ", \"status\": ");
        doctor_json_string(doctor_status_str(c->status), &o);
        buf_puts(&o, ", \"found\": ");
        doctor_json_string(buf_cstr(&c->found), &o);
        buf_puts(&o, ", \"expected\": ");
        doctor_json_string(buf_cstr(&c->expected), &o);
        buf_puts(&o, ", \"records_to_publish\": ");
        doctor_json_list(c->records, c->nrecords, &o);
        buf_puts(&o, ", \"advice\": ");
        doctor_json_list(c->advice, c->nadvice, &o);
        buf_putc(&o, '}');
    }
    buf_puts(&o, "\n]}\n");
    fwrite(o.data, 1, o.len, stdout);
    buf_free(&o);
}

/* ---- main ---- */

static int doctor_domain_ok(const char *s)
{
    return dnsname_ok(s, strlen(s), DNSNAME_UNDERSCORE | DNSNAME_ROOT_DOT | DNSNAME_NO_EDGE_HYPHEN);
}

int cli_doctor_main(int argc, char **argv)
{
    const char *domain = NULL, *public_opt = NULL, *probe = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--public-address") == 0 && i + 1 < argc)
            public_opt = argv[++i];
        else if (strcmp(argv[i], "--probe") == 0 && i + 1 < argc)
            probe = argv[++i];
        else if (argv[i][0] != '-' && domain == NULL)
            domain = argv[i];
        else
            return cli_usage(DOCTOR_USAGE);
    }
    if (public_opt && !doctor_is_ip(public_opt)) {
        fprintf(stderr, "hongyan: doctor: --public-address: '%s' is not an IP address\n",
                public_opt);
        return EX_USAGE;
    }
    struct buf ph = BUF_INIT;
    int pport, pbr;
    if (probe && doctor_parse_hostport(probe, 25, &ph, &pport, &pbr) != 0) {
        fprintf(stderr, "hongyan: doctor: --probe: '%s' is not HOST[:PORT]\n", probe);
        buf_free(&ph);
        return EX_USAGE;
    }
    buf_free(&ph);

    struct config *cfg = cli_config();
    struct doctor d = {.cfg = cfg, .probe = probe};
    d.domain = xstrdup(domain ? domain : config_get(cfg, "mydomain"));
    str_lower(d.domain);
    size_t dl = strlen(d.domain);
    while (dl > 0 && d.domain[dl - 1] == '.')
        d.domain[--dl] = '\0';
    if (!doctor_domain_ok(d.domain)) {
        fprintf(stderr, "hongyan: doctor: '%s' is not a domain name\n",
                domain ? domain : config_get(cfg, "mydomain"));
        free(d.domain);
        return domain ? EX_USAGE : EX_CONFIG;
    }
    d.myhostname = config_get(cfg, "myhostname");
    d.resolver = config_get(cfg, "dns_resolver");
    d.relayhost = config_get(cfg, "relayhost");
    const char *cfg_public = config_get(cfg, "doctor_public_address");
    if (cfg_public[0] && !doctor_is_ip(cfg_public)) {
        fprintf(stderr, "hongyan: %s: doctor_public_address: '%s' is not an IP address\n",
                config_file(cfg) ? config_file(cfg) : "(embedded default)", cfg_public);
        free(d.domain);
        return EX_CONFIG;
    }
    struct route rt = {0};
    struct buf rerr = BUF_INIT;
    if (d.relayhost[0] && route_parse_nexthop(d.relayhost, 25, &rt, &rerr) != 0) {
        fprintf(stderr, "hongyan: %s: relayhost: %s\n",
                config_file(cfg) ? config_file(cfg) : "(embedded default)", buf_cstr(&rerr));
        free(d.domain);
        buf_free(&rerr);
        return EX_CONFIG;
    }
    buf_free(&rerr);
    const char *relay_host = rt.host ? rt.host : "";
    /* An explicit address wins: the interfaces cannot see the NAT in front of them. */
    if (public_opt) {
        d.public_addr = xstrdup(public_opt);
        d.public_source = "--public-address";
    } else if (cfg_public[0]) {
        d.public_addr = xstrdup(cfg_public);
        d.public_source = "doctor_public_address";
    } else if ((d.public_addr = doctor_interfaces_public()) != NULL) {
        d.public_source = "the host's interfaces";
    }
    struct buf err = BUF_INIT;
    d.dns = dns_new(NULL, d.resolver, &err);
    if (d.dns == NULL) {
        fprintf(stderr, "hongyan: dns_resolver: %s\n", buf_cstr(&err));
        buf_free(&err);
        free(d.domain);
        free(d.public_addr);
        route_clear(&rt);
        return EX_CONFIG;
    }
    buf_free(&err);
    dns_set_timeout(d.dns, DOCTOR_DNS_TIMEOUT_MS);
    for (int i = 0; i < CHK_COUNT; i++)
        d.chk[i].name = doctor_names[i];

    doctor_check_a(&d, &d.chk[CHK_A]);
    doctor_check_mx(&d, &d.chk[CHK_MX], relay_host);
    doctor_check_ptr(&d, &d.chk[CHK_PTR]);
    doctor_check_spf(&d, &d.chk[CHK_SPF], relay_host);
    doctor_check_dkim(&d, &d.chk[CHK_DKIM]);
    doctor_check_dmarc(&d, &d.chk[CHK_DMARC]);
    doctor_check_tlsa(&d, &d.chk[CHK_TLSA]);
    doctor_check_mta_sts(&d.chk[CHK_STS], d.dns, cfg, d.domain);
    doctor_check_tlsrpt(&d.chk[CHK_TLSRPT], d.dns, d.domain);
    if (d.relayhost[0])
        doctor_check_relay(&d, &d.chk[CHK_NET], &rt);
    else
        doctor_check_port25(&d, &d.chk[CHK_NET]);

    int failed = 0;
    for (int i = 0; i < CHK_COUNT; i++)
        failed |= d.chk[i].status == DOCTOR_FAIL;
    if (json)
        doctor_print_json(&d, failed);
    else
        doctor_print_text(&d);

    for (int i = 0; i < CHK_COUNT; i++) {
        buf_free(&d.chk[i].found);
        buf_free(&d.chk[i].expected);
        doctor_free_list(d.chk[i].records, d.chk[i].nrecords);
        doctor_free_list(d.chk[i].advice, d.chk[i].nadvice);
    }
    dns_free(d.dns);
    free(d.domain);
    free(d.public_addr);
    route_clear(&rt);
    return failed ? 1 : 0;
}
