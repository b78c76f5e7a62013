/*
 * What an MTA-STS policy (RFC 8461 4, 5) means for one delivery: which MX
 * hosts may be used, the TLS asked of each connection, and what testing
 * mode logs. remote_lookup.c and remote_job.c call these from small hooks.
 */
#include <string.h>

#include "deliver/mta_sts.h"
#include "deliver/mta_sts_apply.h"
#include "lib/log.h"
#include "deliver/client.h"

int mta_sts_host_allowed(const struct mta_sts_policy *p, const char *domain, const char *queue_id,
                         const char *host)
{
    if (mta_sts_mx_match(p, host))
        return 1;
    if (p->mode == MTA_STS_TESTING) {
        log_info("%s: MTA-STS policy for %s (testing): MX host %s is not in the policy; "
                 "delivering anyway",
                 queue_id, domain, host);
        return 1;
    }
    log_info("%s: MTA-STS policy for %s (enforce): MX host %s is not in the policy: not used",
             queue_id, domain, host);
    return 0;
}

void mta_sts_no_host_error(const struct mta_sts_policy *p, const char *domain, struct buf *why)
{
    buf_printf(why, "MTA-STS policy for %s (enforce): no MX host matches the policy (mx:", domain);
    for (size_t i = 0; i < p->nmx; i++)
        buf_printf(why, " %s", p->mx[i]);
    buf_puts(why, ")");
}

void mta_sts_tls_opts(const struct mta_sts_policy *p, struct smtp_client_opts *o)
{
    /* RFC 8461 2: DANE, where usable TLSA records exist, takes precedence. */
    if (o->level == TLS_LEVEL_DANE || o->lmtp)
        return;
    /*
     * Enforce: TLS with a certificate for the MX host name from a trusted CA
     * (RFC 8461 4.2), which is Postfix's verify with the MX name; a level
     * already above stays. Testing: the same checks, only reported.
     */
    if (p->mode == MTA_STS_ENFORCE && o->level < TLS_LEVEL_VERIFY)
        o->level = TLS_LEVEL_VERIFY;
    if (o->level <= TLS_LEVEL_VERIFY)
        o->webpki = 1;
}

void mta_sts_testing_check(const char *domain, const char *queue_id, struct smtp_client *c)
{
    const char *why = NULL;
    enum tls_trust t = smtp_client_tls_trust(c, &why);
    if (!smtp_client_is_tls(c))
        log_info("%s: MTA-STS policy for %s (testing): %s did not do TLS (enforce would "
                 "defer); delivering anyway",
                 queue_id, domain, smtp_client_label(c));
    else if (t < TLS_TRUST_TRUSTED)
        log_info("%s: MTA-STS policy for %s (testing): certificate of %s not valid: %s (enforce "
                 "would defer); delivering anyway",
                 queue_id, domain, smtp_client_label(c), why);
}

int mta_sts_conn_ok(const struct mta_sts_policy *p, struct smtp_client *c, const char *host)
{
    return smtp_client_is_tls(c) && smtp_client_tls_trust(c, NULL) == TLS_TRUST_VERIFIED &&
           mta_sts_mx_match(p, host);
}
