/*
 * DMARC aggregate reports (RFC 7489 7.2, appendix C), the recording half:
 * with smtpd_dmarc_reporting, each inbound DMARC evaluation against a
 * record that has rua= is one line appended to the day's file
 * $data_directory/dmarc/DAY (UTC); `hongyan report send`
 * (src/cli/report_dmarc.c) sums the files into one XML report per policy
 * domain and day and removes them once sent.
 *
 * A line, tab-separated (no field holds a tab or a line end):
 *   D1 DOMAIN SOURCE-IP DISPOSITION DKIM SPF HEADER-FROM DKIM-AUTH SPF-AUTH
 *      ADKIM ASPF P SP PCT RUA
 * DOMAIN is where the record was found (the policy domain);
 * DISPOSITION what we did (none, reject); DKIM and SPF the aligned
 * verdicts (pass, fail); DKIM-AUTH "domain:result,..." and SPF-AUTH
 * "domain:result" the raw results ("-" when none).
 */
#ifndef HONGYAN_MAILAUTH_DMARC_REPORT_H
#define HONGYAN_MAILAUTH_DMARC_REPORT_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "mailauth/dmarc.h"

struct dmarc_report_event {
    const char *source_ip;
    const struct dmarc_outcome *outcome; /* with have_record and rua */
    const char *disposition;             /* what was done: "none" or "reject" */
    const char *spf_domain;              /* may be NULL */
    const char *spf_result;              /* RFC 8601 word */
    const char *const *dkim_domains;     /* per signature */
    const char *const *dkim_results;
    size_t ndkim;
};

/* Appends ev under data_dir; failures are logged, never fatal. */
void dmarc_report_record(const char *data_dir, const struct dmarc_report_event *ev, time_t now);

/* One parsed line; the strings point into the line (which is modified). */
struct dmarc_report_line {
    char *domain, *ip, *disposition, *dkim, *spf, *header_from, *dkim_auth, *spf_auth;
    char *adkim, *aspf, *p, *sp, *pct, *rua;
};
/* Splits a line (without its newline) in place; 0, or -1 when malformed. */
int dmarc_report_line_parse(char *line, struct dmarc_report_line *out);

/* A rua= destination: a mailto: address and its size limit in bytes (0: none). */
struct dmarc_rua {
    char *addr;
    unsigned long long limit;
};
/*
 * The mailto: URIs of a rua= value (RFC 7489 6.2: comma-separated, each
 * with an optional "!" size limit with k, m, g or t), each address a valid
 * RFC 5321 mailbox; others are skipped. Returns the count; *out is freed
 * with dmarc_rua_free().
 */
size_t dmarc_rua_parse(const char *rua, struct dmarc_rua **out);
void dmarc_rua_free(struct dmarc_rua *r, size_t n);

#endif
