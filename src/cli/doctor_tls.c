/*
 * doctor: the TLS checks: TLSA records for this host against its
 * certificate (DANE, RFC 7672), and the domain's mta-sts and tlsrpt set-up
 * (RFC 8461, RFC 8460). The policy file is fetched the way delivery fetches
 * it (src/deliver/mta_sts_fetch.c: the name through our resolver, the
 * system CAs plus smtp_tls_CAfile), on a private event loop run until the
 * answer, so a sender's view is what the operator sees.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli/doctor.h"
#include "cli/doctor_int.h"
#include "config/config.h"
#include "deliver/mta_sts.h"
#include "deliver/tlsrpt.h"
#include "dns/dns.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "tls/tls_client.h"

#define DOCTOR_STS_TIMEOUT 10

struct doctor_fetch {
    int done;
    enum mta_sts_fetch_fail fail;
    struct buf body;
    char *why;
};

static void doctor_sts_fetched(void *arg, enum mta_sts_fetch_fail fail, struct buf *body,
                               const char *why)
{
    struct doctor_fetch *f = arg;
    f->done = 1;
    f->fail = fail;
    if (fail == MTA_STS_FETCH_OK)
        buf_append(&f->body, body->data ? body->data : "", body->len);
    else
        f->why = xstrdup(why);
}

/* The MX hosts of domain (the domain itself without MX), for matching; NULL on a DNS failure. */
static char **doctor_sts_mx(struct dns *dns, const char *domain, size_t *n)
{
    struct dns_answer *a = dns_query_sync(dns, domain, DNS_T_MX);
    char **list = NULL;
    *n = 0;
    if (a->status == DNS_OK) {
        for (size_t i = 0; i < a->count; i++)
            if (a->mx[i].host[0])
                doctor_push(&list, n, xstrdup(a->mx[i].host));
    } else if (a->status == DNS_NODATA) {
        doctor_push(&list, n, xstrdup(domain));
    }
    dns_answer_free(a);
    return list;
}

/* The policy text to serve, naming the domain's MX hosts as found. */
static void doctor_sts_suggest(struct doctor_check *c, const char *domain, char *const *mx,
                               size_t nmx)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    struct buf a = BUF_INIT;
    buf_printf(&a,
               "To publish MTA-STS (RFC 8461): serve https://mta-sts.%s/.well-known/mta-sts.txt "
               "(Content-Type: text/plain, a certificate for mta-sts.%s from a public CA) with "
               "the lines \"version: STSv1\", \"mode: testing\",",
               domain, domain);
    for (size_t i = 0; i < nmx; i++)
        buf_printf(&a, " \"mx: %s\",", mx[i]);
    buf_printf(&a,
               " \"max_age: 604800\"; then publish _mta-sts.%s. IN TXT \"v=STSv1; id=%s\" "
               "(a new id each time the file changes), and move to mode: enforce once the "
               "TLS reports are clean.",
               domain, stamp);
    doctor_advise(c, buf_steal(&a));
}

void doctor_check_mta_sts(struct doctor_check *c, struct dns *dns, const struct config *cfg,
                          const char *domain)
{
    char *name = xasprintf("_mta-sts.%s", domain);
    char *host = xasprintf("mta-sts.%s", domain);
    char *expected = xasprintf("one v=STSv1 record at %s and a valid policy naming the MX hosts "
                               "at https://%s/.well-known/mta-sts.txt",
                               name, host);
    struct buf f = BUF_INIT;
    size_t nmx = 0;
    char **mx = doctor_sts_mx(dns, domain, &nmx);
    struct dns_answer *a = dns_query_sync(dns, name, DNS_T_TXT);
    size_t nsts = 0;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        nsts += strncmp(a->txt[i], "v=STSv1", 7) == 0;
    char id[33];
    struct doctor_fetch fetch = {0};
    struct mta_sts_policy p = {0};
    int have_policy = 0;
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, "could not check: DNS temporary failure (TXT of %s)", name);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), expected);
    } else if (nsts == 0) {
        /* Optional, as DANE is: ok, with what to publish as advice. */
        buf_printf(&f,
                   "no MTA-STS record at %s (senders without DANE cannot refuse a forged MX "
                   "or a stripped STARTTLS)",
                   name);
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), expected);
        doctor_sts_suggest(c, domain, mx, nmx);
    } else if (mta_sts_txt_id(a->txt, a->count, id) < 0) {
        buf_printf(&f,
                   nsts > 1 ? "%s has %zu v=STSv1 records (senders then ignore them all)"
                            : "%s: the v=STSv1 record has no valid id= (1 to 32 letters and "
                              "digits)",
                   name, nsts);
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), expected);
    } else {
        /* Fetched as senders do: our resolver, port smtp_mta_sts_port, no redirects. */
        struct dns_answer *addr = dns_query_sync(dns, host, DNS_T_A);
        if (addr->status != DNS_OK) {
            dns_answer_free(addr);
            addr = dns_query_sync(dns, host, DNS_T_AAAA);
        }
        if (addr->status != DNS_OK || addr->count == 0) {
            buf_printf(&f, "id %s, but %s has no address (%s)", id, host,
                       dns_status_str(addr->status));
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), expected);
        } else {
            struct event_base *base = event_base_new();
            mta_sts_fetch(base, host, addr->addrs[0], (int)config_get_int(cfg, "smtp_mta_sts_port"),
                          config_get(cfg, "smtp_tls_CAfile"), DOCTOR_STS_TIMEOUT,
                          doctor_sts_fetched, &fetch);
            while (!fetch.done && event_base_loop(base, EVLOOP_ONCE) == 0)
                ;
            /* The fetcher keeps its timer on this loop: it lives until the command exits. */
            struct buf err = BUF_INIT;
            if (!fetch.done || fetch.fail != MTA_STS_FETCH_OK) {
                buf_printf(&f, "id %s, but the policy cannot be fetched: %s", id,
                           fetch.why ? fetch.why : "no answer");
                doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), expected);
            } else if (mta_sts_policy_parse(fetch.body.data ? fetch.body.data : "", fetch.body.len,
                                            &p, &err) < 0) {
                buf_printf(&f, "id %s, but the policy is not valid: %s", id, buf_cstr(&err));
                doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), expected);
            } else {
                have_policy = 1;
            }
            buf_free(&err);
        }
        dns_answer_free(addr);
    }
    if (have_policy) {
        buf_printf(&f, "id %s, mode %s, max_age %ld, mx:", id, mta_sts_mode_name(p.mode),
                   p.max_age);
        for (size_t i = 0; i < p.nmx; i++)
            buf_printf(&f, " %s", p.mx[i]);
        struct buf miss = BUF_INIT;
        for (size_t i = 0; i < nmx; i++)
            if (!mta_sts_mx_match(&p, mx[i]))
                buf_printf(&miss, "%s%s", miss.len ? ", " : "", mx[i]);
        enum doctor_status st = DOCTOR_OK;
        if (miss.len) {
            /* Enforce: senders refuse those MX hosts; testing: they only report them. */
            buf_printf(&f, "; MX host(s) not in the policy: %s", buf_cstr(&miss));
            st = p.mode == MTA_STS_ENFORCE ? DOCTOR_FAIL : DOCTOR_WARN;
            doctor_advise(c, xasprintf("Add an mx: line for each MX host to the MTA-STS policy "
                                       "and publish a new id in %s.",
                                       name));
        } else if (p.mode != MTA_STS_ENFORCE) {
            st = DOCTOR_WARN;
            doctor_advise(c, xasprintf("MTA-STS mode %s protects nothing yet: move to mode: "
                                       "enforce (and a new id) once the TLS reports are clean.",
                                       mta_sts_mode_name(p.mode)));
        }
        doctor_set(c, st, buf_cstr(&f), expected);
        buf_free(&miss);
    }
    mta_sts_policy_clear(&p);
    buf_free(&fetch.body);
    free(fetch.why);
    for (size_t i = 0; i < nmx; i++)
        free(mx[i]);
    free(mx);
    dns_answer_free(a);
    buf_free(&f);
    free(expected);
    free(host);
    free(name);
}

/* One valid record (RFC 8460 3, tlsrpt_rua_parse). */
static int doctor_tlsrpt_ok(const char *txt, struct buf *why)
{
    char **mailto;
    size_t https;
    int ok = tlsrpt_rua_parse(txt, &mailto, &https, why) == 0;
    strlist_free(mailto);
    return ok;
}

void doctor_check_tlsrpt(struct doctor_check *c, struct dns *dns, const char *domain)
{
    char *name = xasprintf("_smtp._tls.%s", domain);
    char *expected = xasprintf("one v=TLSRPTv1 record at %s with rua=", name);
    struct dns_answer *a = dns_query_sync(dns, name, DNS_T_TXT);
    struct buf f = BUF_INIT, why = BUF_INIT;
    size_t n = 0;
    const char *txt = NULL;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        if (strncmp(a->txt[i], "v=TLSRPTv1", 10) == 0 && n++ == 0)
            txt = a->txt[i];
    if (a->status == DNS_TEMPFAIL) {
        buf_printf(&f, "could not check: DNS temporary failure (TXT of %s)", name);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), expected);
    } else if (n == 0) {
        buf_printf(&f,
                   "no TLS-RPT record at %s (optional: senders then report TLS failures "
                   "to nobody)",
                   name);
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), expected);
        doctor_advise(c, xasprintf("To receive TLS reports (RFC 8460): %s. IN TXT "
                                   "\"v=TLSRPTv1; rua=mailto:postmaster@%s\"",
                                   name, domain));
    } else if (n > 1 || !doctor_tlsrpt_ok(txt, &why)) {
        if (n > 1)
            buf_printf(&f, "%s has %zu v=TLSRPTv1 records (senders then ignore them all)", name, n);
        else
            buf_printf(&f, "\"%s\" %s", txt, buf_cstr(&why));
        doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), expected);
        struct buf line = BUF_INIT;
        char *rec = xasprintf("v=TLSRPTv1; rua=mailto:postmaster@%s", domain);
        doctor_txt_line(name, rec, &line);
        doctor_record(c, buf_steal(&line));
        free(rec);
    } else {
        buf_printf(&f, "\"%s\"", txt);
        doctor_set(c, DOCTOR_OK, buf_cstr(&f), expected);
    }
    dns_answer_free(a);
    buf_free(&f);
    buf_free(&why);
    free(expected);
    free(name);
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
void doctor_check_tlsa(struct doctor *d, struct doctor_check *c)
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
