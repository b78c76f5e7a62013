/*
 * Applying an MTA-STS policy to a delivery (src/deliver/mta_sts_apply.c):
 * the hooks remote_lookup.c and remote_job.c call. Separate from mta_sts.h so that the parser and
 * its fuzz target need no SMTP client.
 */
#ifndef HONGYAN_DELIVER_MTA_STS_APPLY_H
#define HONGYAN_DELIVER_MTA_STS_APPLY_H

#include "lib/buf.h"

struct mta_sts_policy;
struct smtp_client;
struct smtp_client_opts;

/*
 * Whether MX host may be used under p (RFC 8461 4.1): 1 when it matches,
 * or in testing mode (logged); 0 in enforce mode (logged).
 */
int mta_sts_host_allowed(const struct mta_sts_policy *p, const char *domain, const char *queue_id,
                         const char *host);
/* The deferral reason when enforce leaves no MX host. */
void mta_sts_no_host_error(const struct mta_sts_policy *p, const char *domain, struct buf *why);
/* Raises o's TLS level for enforce and asks for the MTA-STS certificate checks (RFC 8461 4.2). */
void mta_sts_tls_opts(const struct mta_sts_policy *p, struct smtp_client_opts *o);
/* Testing mode, session ready: logs what enforce would have refused (no TLS, bad certificate). */
void mta_sts_testing_check(const char *domain, const char *queue_id, struct smtp_client *c);
/* Whether an idle connection to host meets an enforced policy: verified TLS, host in the policy. */
int mta_sts_conn_ok(const struct mta_sts_policy *p, struct smtp_client *c, const char *host);

#endif
