/*
 * The worker's own numbers for Prometheus (GET /metrics) and the status
 * page (GET /): counters moved by one-line hooks where mail happens, a
 * ring of recent deliveries and per-minute rates, and the text rendering.
 * Counters are process-global and updated with relaxed atomics, so a hook
 * costs one add whichever thread runs it; everything else is loop-only.
 */
#ifndef HONGYAN_METRICS_METRICS_H
#define HONGYAN_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;

enum metrics_refusal {
    METRICS_REFUSED_DRAINING,     /* SIGTERM: 421 while shutting down */
    METRICS_REFUSED_LIMIT,        /* smtpd_client_connection_limit */
    METRICS_REFUSED_CLIENT_LIMIT, /* smtpd_client_connection_count_limit */
    METRICS_REFUSED_PROXY,        /* no valid PROXY header (smtpd_upstream_proxy_protocol) */
    METRICS_REFUSAL_COUNT,
};

enum metrics_direction { METRICS_IN, METRICS_OUT };

/* The outcome words of the delivery log (status=sent|deferred|bounced). */
enum metrics_outcome { METRICS_SENT, METRICS_DEFERRED, METRICS_BOUNCED, METRICS_OUTCOME_COUNT };

/* The SMTP listener a connection or message came through (server_listener_metric() maps it). */
enum metrics_listener {
    METRICS_LISTENER_SMTPD,
    METRICS_LISTENER_SUBMISSION,
    METRICS_LISTENER_SMTPS,
};
void metrics_connection_accepted(enum metrics_listener listener);
void metrics_connection_refused(enum metrics_refusal why);
/* A message committed from an SMTP listener; metrics_message_picked_up for sendmail's. */
void metrics_message_received(enum metrics_listener listener);
void metrics_message_picked_up(void);
void metrics_recipient_accepted(void);
void metrics_tls_handshake(enum metrics_direction dir, const char *version);
void metrics_auth(int success);
void metrics_dkim_signed(unsigned signatures);
/* method: "spf", "dkim" or "dmarc"; result: its RFC 8601 word. */
void metrics_inbound_result(const char *method, const char *result);
/* A spool commit finished: its latency and the message's size. */
void metrics_spool_committed(uint64_t micros, size_t bytes);
/* A group-commit round of the spool ended: one syncfs(2), shared by all it carried. */
void metrics_spool_synced(void);
/*
 * One recipient's delivery result as logged: relay "local", "none" or
 * "host[ip]:port"; seconds from arrival to this result. Loop thread only
 * (it also feeds the status page's list of recent deliveries).
 */
void metrics_delivery(enum metrics_outcome outcome, const char *relay, const char *rcpt,
                      const char *reply, double seconds);

/* Gauges read at scrape time (metrics_http.c gathers them off the loop). */
struct metrics_gauges {
    unsigned long long queue_messages[3]; /* active, deferred, hold */
    unsigned long long queue_bytes[3];
    int sessions_open;
    int deliveries_in_flight;
};

/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);

/* Read-only views for the status page (metrics_status.c). */
#define METRICS_RECENT 12
#define METRICS_MINUTES 30
struct metrics_recent {
    time_t when;
    enum metrics_outcome outcome;
    char rcpt[128];
    char relay[96];
    char reply[160];
};
/* Up to METRICS_RECENT deliveries, newest first; returns how many. */
size_t metrics_recent(struct metrics_recent *out);
/*
 * Per-minute counts of the last METRICS_MINUTES minutes, oldest first:
 * which 0 received, 1 sent, 2 deferred, 3 bounced.
 */
void metrics_rate(int which, unsigned out[METRICS_MINUTES]);
/* Totals since start: received messages, connections in, TLS handshakes in and out. */
struct metrics_totals {
    unsigned long long received, connections, tls_in, tls_out, remote_sent;
    unsigned long long outcome[METRICS_OUTCOME_COUNT];
};
void metrics_totals(struct metrics_totals *t);
/* Per recipient domain outcome counts, the busiest first; returns how many (<= max). */
struct metrics_domain {
    char domain[96];
    unsigned long long outcome[METRICS_OUTCOME_COUNT];
};
size_t metrics_domains(struct metrics_domain *out, size_t max);

#endif
