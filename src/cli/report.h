/*
 * The aggregate reports hongyan sends (src/cli/report.c): TLS reports
 * (RFC 8460) about our deliveries, and the helpers every report mail uses.
 * Used by `hongyan report send`, which the server also runs once a day.
 */
#ifndef HONGYAN_CLI_REPORT_H
#define HONGYAN_CLI_REPORT_H

#include <stddef.h>

#include "lib/buf.h"

struct config;
struct dns;

/* data gzip'd (RFC 1952) and appended to out; 0 or -1. */
int report_gzip(const void *data, size_t len, struct buf *out);
/* data in base64, 76 characters a line, CRLF line ends (RFC 2045 6.8). */
void report_base64_lines(const void *data, size_t len, struct buf *out);
/*
 * Queues msg (headers and body, CRLF) from sender to rcpts (NULL-terminated)
 * through maildrop/, as sendmail does. 0, or -1 with err.
 */
int report_queue(const struct config *cfg, const char *sender, char *const *rcpts,
                 const struct buf *msg, struct buf *err);

/*
 * Sends the TLS reports for every session in the journal; *sent counts the
 * reports queued. 0, or -1 when one could not be sent (its sessions are
 * kept for the next run).
 */
int report_tlsrpt_send(const struct config *cfg, struct dns *dns, int *sent);

/*
 * Sends the DMARC aggregate reports for every recorded day
 * (src/cli/report_dmarc.c); *sent counts the reports queued. 0, or -1 when
 * one could not be sent (its records are kept for the next run).
 */
int report_dmarc_send(const struct config *cfg, struct dns *dns, int *sent);

#endif
