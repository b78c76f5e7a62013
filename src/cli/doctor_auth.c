/*
 * doctor: the sender-authentication checks: SPF evaluated for this host's
 * address (RFC 7208), DKIM keys against their published records (RFC
 * 6376), and DMARC (RFC 7489), each with the record to publish.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cli/doctor.h"
#include "cli/doctor_int.h"
#include "config/config.h"
#include "dns/dns.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "tls/tls_client.h"

#define DOCTOR_USAGE                                                                               \
    "doctor [-c FILE] [DOMAIN] [--json] [--public-address IP] [--probe HOST[:PORT]]"

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

void doctor_check_spf(struct doctor *d, struct doctor_check *c, const char *relay_host)
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

void doctor_check_dkim(struct doctor *d, struct doctor_check *c)
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

void doctor_check_dmarc(struct doctor *d, struct doctor_check *c)
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
