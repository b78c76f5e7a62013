/*
 * doctor: the checks of where the domain's mail goes and how this host is
 * named: A/AAAA of myhostname, the domain's MX, and PTR with forward-
 * confirmed reverse DNS (FCrDNS), which receivers check before they accept.
 */

#include <stdio.h>
#include <stdlib.h>

#include "cli/doctor.h"
#include "cli/doctor_int.h"
#include "config/config.h"
#include "dns/dns.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "tls/tls_client.h"

#define DOCTOR_USAGE                                                                               \
    "doctor [-c FILE] [DOMAIN] [--json] [--public-address IP] [--probe HOST[:PORT]]"

/* ---- 1. A/AAAA of myhostname ---- */

void doctor_check_a(struct doctor *d, struct doctor_check *c)
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

void doctor_check_mx(struct doctor *d, struct doctor_check *c, const char *relay_host)
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

void doctor_check_ptr(struct doctor *d, struct doctor_check *c)
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
