/*
 * The counters behind GET /metrics and the status page (metrics.h), and
 * their rendering in Prometheus' text exposition format 0.0.4: one HELP
 * and TYPE line per family, base units with their suffixes (_total,
 * _seconds, _bytes), and cumulative histogram buckets ending in +Inf.
 */
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"

#define METRICS_LISTENERS 4 /* smtpd, submission, smtps, sendmail */
#define METRICS_TLS_VERSIONS 5
#define METRICS_RESULTS 9
#define METRICS_TRANSPORTS 3
#define METRICS_DOMAINS 64

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

struct metrics_histogram {
    const double *bounds;
    size_t nbounds;
    unsigned long long buckets[METRICS_MAX_BUCKETS]; /* per bucket, not cumulative; last: +Inf */
    unsigned long long count;
    double sum;
};

struct metrics_minute {
    time_t minute;
    unsigned counts[4];
};

static struct {
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
    /* Loop-only state for the status page. */
    struct metrics_recent recent[METRICS_RECENT];
    size_t recent_next, recent_count;
    struct metrics_minute minutes[METRICS_MINUTES];
    struct metrics_domain domains[METRICS_DOMAINS];
    size_t ndomains;
} metrics = {
    .commit = {metrics_commit_bounds, METRICS_BOUNDS(metrics_commit_bounds), {0}, 0, 0},
    .delivery = {metrics_delivery_bounds, METRICS_BOUNDS(metrics_delivery_bounds), {0}, 0, 0},
    .size = {metrics_size_bounds, METRICS_BOUNDS(metrics_size_bounds), {0}, 0, 0},
};

static void metrics_add(unsigned long long *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static unsigned long long metrics_read(const unsigned long long *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Histograms are observed from the loop thread only, so plain updates suffice. */
static void metrics_observe(struct metrics_histogram *h, double value)
{
    size_t i = 0;
    while (i < h->nbounds && value > h->bounds[i])
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
    time_t minute = time(NULL) / 60;
    struct metrics_minute *m = &metrics.minutes[minute % METRICS_MINUTES];
    if (m->minute != minute) {
        memset(m, 0, sizeof *m);
        m->minute = minute;
    }
    m->counts[which]++;
}

void metrics_connection_accepted(enum metrics_listener listener)
{
    metrics_add(&metrics.accepted[listener]);
}

void metrics_connection_refused(enum metrics_refusal why)
{
    if ((unsigned)why < METRICS_REFUSAL_COUNT)
        metrics_add(&metrics.refused[why]);
}

void metrics_message_received(enum metrics_listener listener)
{
    metrics_add(&metrics.received[listener]);
    metrics_rate_bump(0);
}

void metrics_message_picked_up(void)
{
    metrics_add(&metrics.received[3]);
    metrics_rate_bump(0);
}

void metrics_recipient_accepted(void)
{
    metrics_add(&metrics.recipients);
}

void metrics_tls_handshake(enum metrics_direction dir, const char *version)
{
    size_t v = metrics_word_index(metrics_tls_names, METRICS_TLS_VERSIONS, version);
    metrics_add(&metrics.tls[dir == METRICS_OUT][v]);
}

void metrics_auth(int success)
{
    metrics_add(&metrics.auth[success != 0]);
}

void metrics_dkim_signed(unsigned signatures)
{
    __atomic_fetch_add(&metrics.dkim_signatures, signatures, __ATOMIC_RELAXED);
}

void metrics_inbound_result(const char *method, const char *result)
{
    size_t m = 0;
    while (m < 3 && strcmp(metrics_method_names[m], method) != 0)
        m++;
    if (m == 3)
        return;
    metrics_add(
        &metrics.inbound[m][metrics_word_index(metrics_result_names, METRICS_RESULTS, result)]);
}

void metrics_spool_committed(uint64_t micros, size_t bytes)
{
    metrics_observe(&metrics.commit, (double)micros / 1e6);
    metrics_observe(&metrics.size, (double)bytes);
}

void metrics_spool_synced(void)
{
    metrics_add(&metrics.sync_rounds);
}

static void metrics_domain_count(const char *rcpt, enum metrics_outcome outcome)
{
    const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
    const char *domain = at ? at + 1 : "(none)";
    size_t i;
    for (i = 0; i < metrics.ndomains; i++)
        if (str_eq_ci(metrics.domains[i].domain, domain))
            break;
    if (i == metrics.ndomains) {
        /* A full table lumps the rest together rather than growing without bound. */
        if (metrics.ndomains < METRICS_DOMAINS - 1) {
            str_copy(metrics.domains[i].domain, sizeof metrics.domains[i].domain, domain);
            metrics.ndomains++;
        } else {
            i = METRICS_DOMAINS - 1;
            str_copy(metrics.domains[i].domain, sizeof metrics.domains[i].domain, "(others)");
            metrics.ndomains = METRICS_DOMAINS;
        }
    }
    metrics.domains[i].outcome[outcome]++;
}

void metrics_delivery(enum metrics_outcome outcome, const char *relay, const char *rcpt,
                      const char *reply, double seconds)
{
    size_t t = 1;
    if (relay == NULL || strcmp(relay, "none") == 0)
        t = 2;
    else if (strcmp(relay, "local") == 0)
        t = 0;
    metrics_add(&metrics.deliveries[t][outcome]);
    if (outcome != METRICS_DEFERRED)
        metrics_observe(&metrics.delivery, seconds);
    metrics_rate_bump(1 + (int)outcome);
    metrics_domain_count(rcpt, outcome);

    struct metrics_recent *r = &metrics.recent[metrics.recent_next];
    metrics.recent_next = (metrics.recent_next + 1) % METRICS_RECENT;
    if (metrics.recent_count < METRICS_RECENT)
        metrics.recent_count++;
    r->when = time(NULL);
    r->outcome = outcome;
    str_copy(r->rcpt, sizeof r->rcpt, rcpt ? rcpt : "");
    str_copy(r->relay, sizeof r->relay, relay ? relay : "none");
    str_copy(r->reply, sizeof r->reply, reply ? reply : "");
}

size_t metrics_recent(struct metrics_recent *out)
{
    for (size_t k = 0; k < metrics.recent_count; k++)
        out[k] = metrics.recent[(metrics.recent_next + METRICS_RECENT - 1 - k) % METRICS_RECENT];
    return metrics.recent_count;
}

void metrics_rate(int which, unsigned out[METRICS_MINUTES])
{
    time_t now = time(NULL) / 60;
    for (int k = 0; k < METRICS_MINUTES; k++) {
        time_t minute = now - (METRICS_MINUTES - 1 - k);
        const struct metrics_minute *m = &metrics.minutes[minute % METRICS_MINUTES];
        out[k] = m->minute == minute ? m->counts[which] : 0;
    }
}

void metrics_totals(struct metrics_totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < METRICS_LISTENERS; i++) {
        t->received += metrics_read(&metrics.received[i]);
        t->connections += metrics_read(&metrics.accepted[i]);
    }
    for (size_t v = 0; v < METRICS_TLS_VERSIONS; v++) {
        t->tls_in += metrics_read(&metrics.tls[0][v]);
        t->tls_out += metrics_read(&metrics.tls[1][v]);
    }
    for (size_t tr = 0; tr < METRICS_TRANSPORTS; tr++)
        for (size_t o = 0; o < METRICS_OUTCOME_COUNT; o++)
            t->outcome[o] += metrics_read(&metrics.deliveries[tr][o]);
    t->remote_sent = metrics_read(&metrics.deliveries[1][METRICS_SENT]);
}

static int metrics_domain_cmp(const void *a, const void *b)
{
    const struct metrics_domain *x = a, *y = b;
    unsigned long long nx = 0, ny = 0;
    for (int o = 0; o < METRICS_OUTCOME_COUNT; o++) {
        nx += x->outcome[o];
        ny += y->outcome[o];
    }
    return nx < ny ? 1 : nx > ny ? -1 : strcmp(x->domain, y->domain);
}

size_t metrics_domains(struct metrics_domain *out, size_t max)
{
    struct metrics_domain all[METRICS_DOMAINS];
    memcpy(all, metrics.domains, metrics.ndomains * sizeof all[0]);
    qsort(all, metrics.ndomains, sizeof all[0], metrics_domain_cmp);
    size_t n = metrics.ndomains < max ? metrics.ndomains : max;
    memcpy(out, all, n * sizeof all[0]);
    return n;
}

/* ---- rendering ---- */

static void metrics_family(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_histogram_render(struct buf *out, const char *name, const char *help,
                                     const struct metrics_histogram *h)
{
    metrics_family(out, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < h->nbounds; i++) {
        cumulative += h->buckets[i];
        buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], cumulative);
    }
    cumulative += h->buckets[h->nbounds];
    buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, cumulative,
               name, h->sum, name, h->count);
}

static void metrics_render_counters(struct buf *out)
{
    metrics_family(out, "hongyan_connections_accepted_total", "counter",
                   "SMTP connections accepted, by listener");
    for (size_t i = 0; i < 3; i++)
        buf_printf(out, "hongyan_connections_accepted_total{listener=\"%s\"} %llu\n",
                   metrics_listener_names[i], metrics_read(&metrics.accepted[i]));
    metrics_family(out, "hongyan_connections_refused_total", "counter",
                   "SMTP connections refused before a session, by reason");
    for (size_t i = 0; i < METRICS_REFUSAL_COUNT; i++)
        buf_printf(out, "hongyan_connections_refused_total{reason=\"%s\"} %llu\n",
                   metrics_refusal_names[i], metrics_read(&metrics.refused[i]));
    metrics_family(out, "hongyan_messages_received_total", "counter",
                   "messages committed to the queue, by listener (sendmail: local submission)");
    for (size_t i = 0; i < METRICS_LISTENERS; i++)
        buf_printf(out, "hongyan_messages_received_total{listener=\"%s\"} %llu\n",
                   metrics_listener_names[i], metrics_read(&metrics.received[i]));
    metrics_family(out, "hongyan_recipients_accepted_total", "counter",
                   "recipients accepted by RCPT TO");
    buf_printf(out, "hongyan_recipients_accepted_total %llu\n", metrics_read(&metrics.recipients));
    metrics_family(out, "hongyan_spool_sync_rounds_total", "counter",
                   "group-commit rounds of the spool, one syncfs each");
    buf_printf(out, "hongyan_spool_sync_rounds_total %llu\n", metrics_read(&metrics.sync_rounds));
    static const char *const delivery_families[METRICS_OUTCOME_COUNT][2] = {
        {"hongyan_messages_delivered_total", "recipients delivered (status=sent), by transport"},
        {"hongyan_messages_deferred_total", "delivery attempts deferred (status=deferred)"},
        {"hongyan_messages_bounced_total", "recipients bounced (status=bounced), by transport"},
    };
    for (size_t o = 0; o < METRICS_OUTCOME_COUNT; o++) {
        metrics_family(out, delivery_families[o][0], "counter", delivery_families[o][1]);
        for (size_t t = 0; t < METRICS_TRANSPORTS; t++)
            buf_printf(out, "%s{transport=\"%s\"} %llu\n", delivery_families[o][0],
                       metrics_transport_names[t], metrics_read(&metrics.deliveries[t][o]));
    }
    metrics_family(out, "hongyan_tls_handshakes_total", "counter",
                   "TLS handshakes completed, by direction and protocol version");
    for (int d = 0; d < 2; d++)
        for (size_t v = 0; v < METRICS_TLS_VERSIONS; v++)
            buf_printf(out, "hongyan_tls_handshakes_total{direction=\"%s\",version=\"%s\"} %llu\n",
                       d ? "out" : "in", metrics_tls_names[v], metrics_read(&metrics.tls[d][v]));
    metrics_family(out, "hongyan_auth_total", "counter", "SMTP AUTH attempts, by result");
    buf_printf(out, "hongyan_auth_total{result=\"success\"} %llu\n",
               metrics_read(&metrics.auth[1]));
    buf_printf(out, "hongyan_auth_total{result=\"failure\"} %llu\n",
               metrics_read(&metrics.auth[0]));
    metrics_family(out, "hongyan_dkim_signatures_total", "counter", "DKIM signatures made");
    buf_printf(out, "hongyan_dkim_signatures_total %llu\n", metrics_read(&metrics.dkim_signatures));
    metrics_family(out, "hongyan_inbound_auth_results_total", "counter",
                   "SPF, DKIM and DMARC results of inbound mail, by method and result");
    for (int m = 0; m < 3; m++)
        for (size_t r = 0; r < METRICS_RESULTS; r++)
            buf_printf(out,
                       "hongyan_inbound_auth_results_total{method=\"%s\",result=\"%s\"} %llu\n",
                       metrics_method_names[m], metrics_result_names[r],
                       metrics_read(&metrics.inbound[m][r]));
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
                             "time from the end of DATA to the message being durable",
                             &metrics.commit);
    metrics_histogram_render(out, "hongyan_delivery_seconds",
                             "time from arrival to a final result (sent or bounced)",
                             &metrics.delivery);
    metrics_histogram_render(out, "hongyan_message_size_bytes", "size of committed messages",
                             &metrics.size);
}
