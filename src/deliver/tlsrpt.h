/*
 * SMTP TLS reporting (RFC 8460), the recording half: the delivery agent
 * notes each TLS session to a recipient domain (success, or a failure with
 * the RFC's result type) as one line appended to the journal
 * $data_directory/tlsrpt/journal; `hongyan report send` (src/cli/report.c)
 * sums the journal into one JSON report per policy domain and day.
 *
 * Journal line, tab-separated, one per session (fields never contain a tab
 * or a newline: they are replaced by spaces):
 *   T1 DAY DOMAIN POLICY-TYPE RESULT MX-HOST IP MODE MAX-AGE MX-PATTERNS
 * DAY is YYYY-MM-DD (UTC); POLICY-TYPE sts, tlsa or no-policy-found;
 * RESULT "success" or a result type; MODE, MAX-AGE and the space-separated
 * MX-PATTERNS describe an sts policy ("-" otherwise).
 */
#ifndef HONGYAN_DELIVER_TLSRPT_H
#define HONGYAN_DELIVER_TLSRPT_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

struct config;
struct mta_sts_policy;
struct smtp_client;

enum tlsrpt_policy_type {
    TLSRPT_POLICY_STS,
    TLSRPT_POLICY_TLSA,
    TLSRPT_POLICY_NONE, /* "no-policy-found" */
};

struct tlsrpt_event {
    const char *domain; /* the policy domain (the recipient domain) */
    enum tlsrpt_policy_type type;
    const struct mta_sts_policy *sts; /* type sts: the policy applied */
    const char *result;               /* NULL for a successful session, else a result type */
    const char *mx_host;              /* may be NULL */
    const char *ip;                   /* may be NULL */
};

/* Appends ev to the journal when smtp_tls_reporting is on; failures are logged, never fatal. */
void tlsrpt_record(const struct config *cfg, const struct tlsrpt_event *ev, time_t now);

/*
 * The RFC 8460 4.3 result type for a session that ended in a TLS failure
 * (no STARTTLS, a certificate refused, a failed handshake), from what the
 * SMTP client saw; NULL when the session was not a TLS failure.
 */
const char *tlsrpt_result_type(struct smtp_client *c, int dane);

/* The journal file under the data directory; the caller frees. */
char *tlsrpt_journal_path(const struct config *cfg);

/* One parsed journal line; the strings point into the line (which is modified). */
struct tlsrpt_line {
    char *day, *domain, *type, *result, *mx_host, *ip, *mode, *max_age, *mx;
};
/* Splits a journal line (without its newline) in place; 0, or -1 when malformed. */
int tlsrpt_line_parse(char *line, struct tlsrpt_line *out);

/*
 * The rua= of a _smtp._tls TXT record (RFC 8460 3): "v=TLSRPTv1" first,
 * then "rua=" with comma-separated URIs. The mailto: addresses (without
 * "mailto:" and any "?..." part, each a valid RFC 5321 mailbox) go to
 * *mailto (strlist_free); *https counts the https: URIs. 0, or -1 with why
 * when the record is not valid (a bad URI or address makes it invalid).
 */
int tlsrpt_rua_parse(const char *txt, char ***mailto, size_t *https, struct buf *why);

#endif
