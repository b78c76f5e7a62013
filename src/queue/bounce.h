/*
 * Delivery status notifications (RFC 3464): a multipart/report with a human
 * part, a message/delivery-status part with one block per recipient, and
 * the original headers (text/rfc822-headers) or, for RET=FULL, the whole
 * message (message/rfc822). Queued from the null sender to the envelope
 * sender and marked as a bounce, so it is never bounced again. Mail with
 * non-ASCII addresses gets the RFC 6533 message/global-* types.
 */
#ifndef HONGYAN_QUEUE_BOUNCE_H
#define HONGYAN_QUEUE_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/spool.h"

/*
 * Whether recipient r of env wants a DSN for a failure (success = 0) or a
 * delivery (success = 1): RFC 3461 4.1, NOTIFY absent means FAILURE only;
 * never for a bounce or for mail from the null sender.
 */
int bounce_wanted(const struct envelope *env, const struct envelope_rcpt *r, int success);

/*
 * Whether recipient r of env wants a delay notice: RFC 3461 4.1, NOTIFY
 * absent may be treated as FAILURE,DELAY (as Postfix does once
 * delay_warning_time is set); otherwise only when NOTIFY includes DELAY.
 * Never for a bounce or for mail from the null sender.
 */
int bounce_wanted_delay(const struct envelope *env, const struct envelope_rcpt *r);

/* The kind of report: a non-delivery (the default, all zero) or a delay notice. */
struct bounce_opts {
    /*
     * RFC 3464 2.3.3 "Action: delayed" with a 4.x.x Status (the last
     * error's), the original headers only, and a warning subject.
     */
    int delayed;
    time_t will_retry_until; /* RFC 3464 2.3.7 Will-Retry-Until; 0: omitted */
};

/*
 * Builds the DSN text (CRLF line ends) into out: about env's recipients
 * listed in rcpts (their state, dsn_status and last_error say what
 * happened), quoting the original message (msg, len). hostname names the
 * reporting MTA.
 */
void bounce_build(const struct envelope *env, const char *msg, size_t len, const size_t *rcpts,
                  size_t nrcpts, const char *hostname, time_t now, struct buf *out);
/* The same, for the kind opts says (NULL: a non-delivery report). */
void bounce_build_opts(const struct envelope *env, const char *msg, size_t len, const size_t *rcpts,
                       size_t nrcpts, const char *hostname, time_t now,
                       const struct bounce_opts *opts, struct buf *out);

/*
 * Builds and queues the DSN durably (synchronous commit: call it from the
 * work queue or the CLI), quoting the original from its data (read, not
 * closed). 0 with the new id in id_out, or -1 with err.
 */
int bounce_queue(struct spool *s, const struct envelope *env, const struct spool_data *orig,
                 const size_t *rcpts, size_t nrcpts, const char *hostname,
                 char id_out[QUEUE_ID_MAX], struct buf *err);
/* The same, for the kind opts says (NULL: a non-delivery report). */
int bounce_queue_opts(struct spool *s, const struct envelope *env, const struct spool_data *orig,
                      const size_t *rcpts, size_t nrcpts, const char *hostname,
                      const struct bounce_opts *opts, char id_out[QUEUE_ID_MAX], struct buf *err);

#endif
