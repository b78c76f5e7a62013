/*
 * The server's own numbers for Prometheus (GET /metrics) and the status
 * page (GET /): counters moved by one-line hooks where mail happens, a
 * ring of recent deliveries and per-minute rates, and the text rendering.
 * Counters live in the region the supervisor shares with smtpd and delivery
 * (both add to them) and are updated with relaxed atomics, so a hook costs
 * one add whichever thread runs it; the delivery tables have one writer
 * (delivery's loop thread).
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
 * "host[ip]:port"; seconds from arrival to this result. Loop thread only,
 * in one process only: it also writes the status page's delivery tables,
 * which have a single writer (metrics_tables.h).
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

/*
 * The queue manager's view, which the delivery process has and smtpd, which
 * serves the page, has not: published into the shared region by the queue
 * manager as it changes, read by smtpd at scrape time. Held messages are
 * not in it (smtpd counts hold/ itself).
 */
struct metrics_queue_counts {
    unsigned long long messages[2]; /* active, deferred */
    unsigned long long bytes[2];
    unsigned long long in_flight; /* messages being delivered now */
};
/* The oldest deferred message, from its envelope; id "" when none. */
struct metrics_oldest {
    char id[32];
    time_t arrival;
    char recipient[128];
    char reason[256]; /* the first pending recipient's last error */
};
/* The writer's side: the delivery process's loop thread only (one writer). */
void metrics_queue_publish_counts(const struct metrics_queue_counts *c);
void metrics_queue_publish_oldest(const struct metrics_oldest *o);
/*
 * Fills g's active and deferred counts and bytes and its in-flight count,
 * and *oldest, from the region (untrusted: strings terminated). 0, or -1
 * when no consistent copy could be had: then they read as zero and none.
 */
int metrics_queue_read(struct metrics_gauges *g, struct metrics_oldest *oldest);

/*
 * The counters, histograms, per-minute rates and the status page's
 * delivery tables and queue view in a region shared between processes: the
 * supervisor makes a sealed memfd of metrics_shared_size() bytes (zeroes)
 * and each child attaches it before its first thread, so the numbers
 * outlive a restarted child and, after the split, two processes add to one
 * set (docs/architecture.md). 0, or -1 with errno (a region of another size
 * is refused: the counters stay this process's own).
 */
size_t metrics_shared_size(void);
int metrics_shared_attach(int fd);

/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);

/* Read-only views for the status page (metrics_status.c). */
#define METRICS_RECENT 12
#define METRICS_MINUTES 30
#define METRICS_DOMAINS 64
struct metrics_recent {
    time_t when;
    enum metrics_outcome outcome;
    char rcpt[128];
    char relay[96];
    char reply[160];
};
/* Per recipient domain outcome counts; past METRICS_DOMAINS - 1 domains, one "(others)" row. */
struct metrics_domain {
    char domain[96];
    unsigned long long outcome[METRICS_OUTCOME_COUNT];
};
/* The status page's delivery tables, as one consistent copy. */
struct metrics_deliveries {
    size_t nrecent; /* up to METRICS_RECENT, newest first */
    struct metrics_recent recent[METRICS_RECENT];
    size_t ndomains; /* the busiest first */
    struct metrics_domain domains[METRICS_DOMAINS];
};
/*
 * Copies the tables out of the shared region, which the delivery side
 * writes (metrics_delivery) and another process may have scribbled on:
 * every string comes out NUL-terminated, every count and index bounded.
 * 0, or -1 when no consistent copy could be had (a writer killed in the
 * middle of an update, until the next delivery): out is then empty.
 */
int metrics_deliveries_read(struct metrics_deliveries *out);
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

#endif
