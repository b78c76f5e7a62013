/*
 * The counters behind GET /metrics and the status page (metrics.h), and
 * their rendering in Prometheus' text exposition format 0.0.4: one HELP
 * and TYPE line per family, base units with their suffixes (_total,
 * _seconds, _bytes), and cumulative histogram buckets ending in +Inf.
 */
#include "metrics/metrics.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "metrics/metrics_tables.h"

#define METRICS_LISTENERS 4 /* smtpd, submission, smtps, sendmail */
#define METRICS_TLS_VERSIONS 5
#define METRICS_RESULTS 9
#define METRICS_TRANSPORTS 3

static const char *const metrics_listener_names[METRICS_LISTENERS] = {"smtpd", "submission",
                                                                      "smtps", "sendmail"};
static const char *const metrics_refusal_names[METRICS_REFUSAL_COUNT] = {
    "shutting_down", "connection_limit", "client_connection_limit", "proxy_protocol"};
static const char *const metrics_tls_names[METRICS_TLS_VERSIONS] = {"TLSv1", "TLSv1.1", "TLSv1.2",
                                                                    "TLSv1.3", "other"};
/* RFC 8601 result words of SPF, DKIM and DMARC; anything else counts as "other". */
static const char *const metrics_result_names[METRICS_RESULTS] = {
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "other"};
static const char *const metrics_method_names[3] = {"spf", "dkim", "dmarc"};
static const char *const metrics_transport_names[METRICS_TRANSPORTS] = {"local", "remote", "none"};
static const char *const metrics_queue_states[3] = {"active", "deferred", "hold"};

/* Bucket bounds, in the unit of the histogram's name. */
static const double metrics_commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const double metrics_delivery_bounds[] = {0.05, 0.1, 0.25, 0.5,  1,    2.5,   5,    10,
                                                 30,   60,  300,  1800, 3600, 14400, 86400};
static const double metrics_size_bounds[] = {1024,    4096,    16384,    65536,   262144,
                                             1048576, 4194304, 16777216, 67108864};
#define METRICS_BOUNDS(a) (sizeof(a) / sizeof(a)[0])
#define METRICS_MAX_BUCKETS 16

/* A histogram's bounds: the binary's, so never in the shared region (another image has other
 * addresses). */
struct metrics_hist_def {
    const double *bounds;
    size_t nbounds;
};
static const struct metrics_hist_def metrics_commit_def = {metrics_commit_bounds,
                                                           METRICS_BOUNDS(metrics_commit_bounds)};
static const struct metrics_hist_def metrics_delivery_def = {
    metrics_delivery_bounds, METRICS_BOUNDS(metrics_delivery_bounds)};
static const struct metrics_hist_def metrics_size_def = {metrics_size_bounds,
                                                         METRICS_BOUNDS(metrics_size_bounds)};

struct metrics_histogram {
    unsigned long long buckets[METRICS_MAX_BUCKETS]; /* per bucket, not cumulative; last: +Inf */
    unsigned long long count;
    double sum;
};

/*
 * Everything the page and the scrape show, in plain numbers and fixed-size
 * strings (no pointer), so that it can live in the memory region the
 * supervisor shares with its children (metrics_shared_attach), outlive a
 * restarted child, and be read by a process that does not trust the one
 * that wrote it. Until attached, it is this process's own.
 */
struct metrics_shared {
    unsigned long long accepted[METRICS_LISTENERS];
    unsigned long long refused[METRICS_REFUSAL_COUNT];
    unsigned long long received[METRICS_LISTENERS];
    unsigned long long recipients;
    unsigned long long sync_rounds;
    unsigned long long tls[2][METRICS_TLS_VERSIONS];
    unsigned long long auth[2]; /* failure, success */
    unsigned long long dkim_signatures;
    unsigned long long inbound[3][METRICS_RESULTS];
    unsigned long long deliveries[METRICS_TRANSPORTS][METRICS_OUTCOME_COUNT];
    struct metrics_histogram commit, delivery, size;
    struct metrics_rates rates;
    struct metrics_tables tables; /* the status page's; metrics_tables.c */
    struct metrics_queue queue;   /* the queue manager's view; metrics_tables.c */
};
static struct metrics_shared metrics_own;
static struct metrics_shared *ms = &metrics_own;

size_t metrics_shared_size(void)
{
    return sizeof(struct metrics_shared);
}

int metrics_shared_attach(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size != sizeof(struct metrics_shared)) {
        errno = EINVAL; /* another build's layout: keep our own counters */
        return -1;
    }
    void *map =
        mmap(NULL, sizeof(struct metrics_shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -1;
    ms = map;
    return 0;
}

static void metrics_add(unsigned long long *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static unsigned long long metrics_read(const unsigned long long *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Histograms are observed from the loop thread only, so plain updates suffice. */
static void metrics_observe(struct metrics_histogram *h, const struct metrics_hist_def *def,
                            double value)
{
    size_t i = 0;
    while (i < def->nbounds && value > def->bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum += value;
}

static size_t metrics_word_index(const char *const *names, size_t count, const char *word)
{
    for (size_t i = 0; i + 1 < count; i++)
        if (word && str_eq_ci(names[i], word))
            return i;
    return count - 1;
}

static void metrics_rate_bump(int which)
{
    metrics_rates_bump(&ms->rates, which, time(NULL));
}

void metrics_connection_accepted(enum metrics_listener listener)
{
    metrics_add(&ms->accepted[listener]);
}

void metrics_connection_refused(enum metrics_refusal why)
{
    if ((unsigned)why < METRICS_REFUSAL_COUNT)
        metrics_add(&ms->refused[why]);
}

void metrics_message_received(enum metrics_listener listener)
{
    metrics_add(&ms->received[listener]);
    metrics_rate_bump(0);
}

void metrics_message_picked_up(void)
{
    metrics_add(&ms->received[3]);
    metrics_rate_bump(0);
}

void metrics_recipient_accepted(void)
{
    metrics_add(&ms->recipients);
}

void metrics_tls_handshake(enum metrics_direction dir, const char *version)
{
    size_t v = metrics_word_index(metrics_tls_names, METRICS_TLS_VERSIONS, version);
    metrics_add(&ms->tls[dir == METRICS_OUT][v]);
}

void metrics_auth(int success)
{
    metrics_add(&ms->auth[success != 0]);
}

void metrics_dkim_signed(unsigned signatures)
{
    __atomic_fetch_add(&ms->dkim_signatures, signatures, __ATOMIC_RELAXED);
}

void metrics_inbound_result(const char *method, const char *result)
{
    size_t m = 0;
    while (m < 3 && strcmp(metrics_method_names[m], method) != 0)
        m++;
    if (m == 3)
        return;
    metrics_add(&ms->inbound[m][metrics_word_index(metrics_result_names, METRICS_RESULTS, result)]);
}

void metrics_spool_committed(uint64_t micros, size_t bytes)
{
    metrics_observe(&ms->commit, &metrics_commit_def, (double)micros / 1e6);
    metrics_observe(&ms->size, &metrics_size_def, (double)bytes);
}

void metrics_spool_synced(void)
{
    metrics_add(&ms->sync_rounds);
}

void metrics_delivery(enum metrics_outcome outcome, const char *relay, const char *rcpt,
                      const char *reply, double seconds)
{
    if ((unsigned)outcome >= METRICS_OUTCOME_COUNT)
        return;
    size_t t = 1;
    if (relay == NULL || strcmp(relay, "none") == 0)
        t = 2;
    else if (strcmp(relay, "local") == 0)
        t = 0;
    metrics_add(&ms->deliveries[t][outcome]);
    if (outcome != METRICS_DEFERRED)
        metrics_observe(&ms->delivery, &metrics_delivery_def, seconds);
    metrics_rate_bump(1 + (int)outcome);
    metrics_tables_record(&ms->tables, outcome, relay, rcpt, reply, time(NULL));
}

int metrics_deliveries_read(struct metrics_deliveries *out)
{
    return metrics_tables_read(&ms->tables, out);
}

void metrics_queue_publish_counts(const struct metrics_queue_counts *c)
{
    metrics_queue_write_counts(&ms->queue, c);
}

void metrics_queue_publish_oldest(const struct metrics_oldest *o)
{
    metrics_queue_write_oldest(&ms->queue, o);
}

int metrics_queue_read(struct metrics_gauges *g, struct metrics_oldest *oldest)
{
    struct metrics_queue_counts c;
    int rc = metrics_queue_read_region(&ms->queue, &c, oldest);
    for (int s = 0; s < 2; s++) {
        g->queue_messages[s] = c.messages[s];
        g->queue_bytes[s] = c.bytes[s];
    }
    /* The gauge is an int: a scribbled region must not make it negative. */
    g->deliveries_in_flight = c.in_flight > INT_MAX ? INT_MAX : (int)c.in_flight;
    return rc;
}

void metrics_rate(int which, unsigned out[METRICS_MINUTES])
{
    metrics_rates_read(&ms->rates, which, time(NULL), out);
}

void metrics_totals(struct metrics_totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < METRICS_LISTENERS; i++) {
        t->received += metrics_read(&ms->received[i]);
        t->connections += metrics_read(&ms->accepted[i]);
    }
    for (size_t v = 0; v < METRICS_TLS_VERSIONS; v++) {
        t->tls_in += metrics_read(&ms->tls[0][v]);
        t->tls_out += metrics_read(&ms->tls[1][v]);
    }
    for (size_t tr = 0; tr < METRICS_TRANSPORTS; tr++)
        for (size_t o = 0; o < METRICS_OUTCOME_COUNT; o++)
            t->outcome[o] += metrics_read(&ms->deliveries[tr][o]);
    t->remote_sent = metrics_read(&ms->deliveries[1][METRICS_SENT]);
}

/* ---- rendering ---- */

static void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_histogram_render(struct buf *out, const char *name, const char *help,
                                     const struct metrics_histogram *h,
                                     const struct metrics_hist_def *def)
{
    metrics_family(out, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < def->nbounds; i++) {
        cumulative += h->buckets[i];
        buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, def->bounds[i], cumulative);
    }
    cumulative += h->buckets[def->nbounds];
    buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, cumulative,
               name, h->sum, name, h->count);
}

static void metrics_render_counters(struct buf *out)
{
    metrics_family(out, "hongyan_connections_accepted_total", "counter",
                   "SMTP connections accepted, by listener");
    for (size_t i = 0; i < 3; i++)
        buf_printf(out, "hongyan_connections_accepted_total{listener=\"%s\"} %llu\n",
                   metrics_listener_names[i], metrics_read(&ms->accepted[i]));
    metrics_family(out, "hongyan_connections_refused_total", "counter",
                   "SMTP connections refused before a session, by reason");
    for (size_t i = 0; i < METRICS_REFUSAL_COUNT; i++)
        buf_printf(out, "hongyan_connections_refused_total{reason=\"%s\"} %llu\n",
                   metrics_refusal_names[i], metrics_read(&ms->refused[i]));
    metrics_family(out, "hongyan_messages_received_total", "counter",
                   "messages committed to the queue, by listener (sendmail: local submission)");
    for (size_t i = 0; i < METRICS_LISTENERS; i++)
        buf_printf(out, "hongyan_messages_received_total{listener=\"%s\"} %llu\n",
                   metrics_listener_names[i], metrics_read(&ms->received[i]));
    metrics_family(out, "hongyan_recipients_accepted_total", "counter",
                   "recipients accepted by RCPT TO");
    buf_printf(out, "hongyan_recipients_accepted_total %llu\n", metrics_read(&ms->recipients));
    metrics_family(
        out, "hongyan_spool_sync_rounds_total", "counter",
        "group-commit rounds of the spool (each an fdatasync of the journal, a syncfs, or both)");
    buf_printf(out, "hongyan_spool_sync_rounds_total %llu\n", metrics_read(&ms->sync_rounds));
    static const char *const delivery_families[METRICS_OUTCOME_COUNT][2] = {
        {"hongyan_messages_delivered_total", "recipients delivered (status=sent), by transport"},
        {"hongyan_messages_deferred_total", "delivery attempts deferred (status=deferred)"},
        {"hongyan_messages_bounced_total", "recipients bounced (status=bounced), by transport"},
    };
    for (size_t o = 0; o < METRICS_OUTCOME_COUNT; o++) {
        metrics_family(out, delivery_families[o][0], "counter", delivery_families[o][1]);
        for (size_t t = 0; t < METRICS_TRANSPORTS; t++)
            buf_printf(out, "%s{transport=\"%s\"} %llu\n", delivery_families[o][0],
                       metrics_transport_names[t], metrics_read(&ms->deliveries[t][o]));
    }
    metrics_family(out, "hongyan_tls_handshakes_total", "counter",
                   "TLS handshakes completed, by direction and protocol version");
    for (int d = 0; d < 2; d++)
        for (size_t v = 0; v < METRICS_TLS_VERSIONS; v++)
            buf_printf(out, "hongyan_tls_handshakes_total{direction=\"%s\",version=\"%s\"} %llu\n",
                       d ? "out" : "in", metrics_tls_names[v], metrics_read(&ms->tls[d][v]));
    metrics_family(out, "hongyan_auth_total", "counter", "SMTP AUTH attempts, by result");
    buf_printf(out, "hongyan_auth_total{result=\"success\"} %llu\n", metrics_read(&ms->auth[1]));
    buf_printf(out, "hongyan_auth_total{result=\"failure\"} %llu\n", metrics_read(&ms->auth[0]));
    metrics_family(out, "hongyan_dkim_signatures_total", "counter", "DKIM signatures made");
    buf_printf(out, "hongyan_dkim_signatures_total %llu\n", metrics_read(&ms->dkim_signatures));
    metrics_family(out, "hongyan_inbound_auth_results_total", "counter",
                   "SPF, DKIM and DMARC results of inbound mail, by method and result");
    for (int m = 0; m < 3; m++)
        for (size_t r = 0; r < METRICS_RESULTS; r++)
            buf_printf(
                out, "hongyan_inbound_auth_results_total{method=\"%s\",result=\"%s\"} %llu\n",
                metrics_method_names[m], metrics_result_names[r], metrics_read(&ms->inbound[m][r]));
}

void metrics_render(struct buf *out, const struct metrics_gauges *g)
{
    metrics_render_counters(out);
    metrics_family(out, "hongyan_queue_messages", "gauge", "messages in the queue, by state");
    for (int s = 0; s < 3; s++)
        buf_printf(out, "hongyan_queue_messages{state=\"%s\"} %llu\n", metrics_queue_states[s],
                   g->queue_messages[s]);
    metrics_family(out, "hongyan_queue_bytes", "gauge",
                   "size of the messages in the queue, by state");
    for (int s = 0; s < 3; s++)
        buf_printf(out, "hongyan_queue_bytes{state=\"%s\"} %llu\n", metrics_queue_states[s],
                   g->queue_bytes[s]);
    metrics_family(out, "hongyan_sessions_open", "gauge", "SMTP sessions open now");
    buf_printf(out, "hongyan_sessions_open %d\n", g->sessions_open);
    metrics_family(out, "hongyan_deliveries_in_flight", "gauge", "messages being delivered now");
    buf_printf(out, "hongyan_deliveries_in_flight %d\n", g->deliveries_in_flight);
    metrics_histogram_render(out, "hongyan_spool_commit_seconds",
                             "time from the end of DATA to the message being durable", &ms->commit,
                             &metrics_commit_def);
    metrics_histogram_render(out, "hongyan_delivery_seconds",
                             "time from arrival to a final result (sent or bounced)", &ms->delivery,
                             &metrics_delivery_def);
    metrics_histogram_render(out, "hongyan_message_size_bytes", "size of committed messages",
                             &ms->size, &metrics_size_def);
}
