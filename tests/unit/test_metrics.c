/* Unit tests for the metrics module: the HTTP request parser and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "metrics/metrics.h"
#include "daemon/metrics_http.h"

static int status_of(const char *head)
{
    const char *path = NULL;
    return metrics_http_parse(head, strlen(head), &path);
}

static void test_http_parse(void **state)
{
    (void)state;
    const char *path = NULL;
    const char *h = "GET /metrics HTTP/1.1\r\nHost: x";
    assert_int_equal(metrics_http_parse(h, strlen(h), &path), 200);
    assert_string_equal(path, "/metrics");
    h = "GET /?refresh=1 HTTP/1.1";
    assert_int_equal(metrics_http_parse(h, strlen(h), &path), 200);
    assert_string_equal(path, "/");
    assert_int_equal(status_of("POST /metrics HTTP/1.1"), 405);
    assert_int_equal(status_of("get /metrics HTTP/1.1"), 405);
    assert_int_equal(status_of("GET /metricsx HTTP/1.1"), 404);
    assert_int_equal(status_of("GET /../metrics HTTP/1.1"), 404);
    assert_int_equal(status_of("GET /metrics HTTP/2.0"), 505);
    assert_int_equal(status_of("GET /metrics HTTP/1.9"), 505);
    assert_int_equal(status_of("GET /metrics HTTP/1.0"), 505);
    assert_int_equal(status_of("GET /metrics"), 400);
    assert_int_equal(status_of("GET  HTTP/1.1"), 400);
    assert_int_equal(status_of(""), 400);
}

static unsigned long long sample(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    assert_non_null(p);
    return strtoull(p + strlen(name) + 1, NULL, 10);
}

static void test_render_counts(void **state)
{
    (void)state;
    struct buf a = BUF_INIT, b = BUF_INIT;
    struct metrics_gauges g = {.queue_messages = {1, 2, 3}, .sessions_open = 4};
    metrics_render(&a, &g);
    metrics_message_received(METRICS_LISTENER_SUBMISSION);
    metrics_delivery(METRICS_SENT, "local", "bob@example.com", "ok", 0.3);
    metrics_delivery(METRICS_BOUNCED, "mx.example.net[192.0.2.1]:25", "c@example.net", "550", 2.0);
    metrics_tls_handshake(METRICS_OUT, "TLSv1.3");
    metrics_inbound_result("dmarc", "weird-word");
    metrics_spool_committed(1500, 5000);
    metrics_render(&b, &g);
    const char *x = buf_cstr(&a), *y = buf_cstr(&b);
    assert_int_equal(sample(y, "hongyan_messages_received_total{listener=\"submission\"}") -
                         sample(x, "hongyan_messages_received_total{listener=\"submission\"}"),
                     1);
    assert_int_equal(sample(y, "hongyan_messages_delivered_total{transport=\"local\"}") -
                         sample(x, "hongyan_messages_delivered_total{transport=\"local\"}"),
                     1);
    assert_int_equal(sample(y, "hongyan_messages_bounced_total{transport=\"remote\"}") -
                         sample(x, "hongyan_messages_bounced_total{transport=\"remote\"}"),
                     1);
    assert_int_equal(
        sample(y, "hongyan_tls_handshakes_total{direction=\"out\",version=\"TLSv1.3\"}") -
            sample(x, "hongyan_tls_handshakes_total{direction=\"out\",version=\"TLSv1.3\"}"),
        1);
    assert_int_equal(
        sample(y, "hongyan_inbound_auth_results_total{method=\"dmarc\",result=\"other\"}") -
            sample(x, "hongyan_inbound_auth_results_total{method=\"dmarc\",result=\"other\"}"),
        1);
    /* 1.5 ms falls in the 0.0025 bucket, and every bucket above it counts it too. */
    assert_int_equal(sample(y, "hongyan_spool_commit_seconds_bucket{le=\"0.0025\"}") -
                         sample(x, "hongyan_spool_commit_seconds_bucket{le=\"0.0025\"}"),
                     1);
    assert_int_equal(sample(y, "hongyan_spool_commit_seconds_bucket{le=\"0.001\"}") -
                         sample(x, "hongyan_spool_commit_seconds_bucket{le=\"0.001\"}"),
                     0);
    assert_int_equal(sample(y, "hongyan_queue_messages{state=\"hold\"}"), 3);
    assert_int_equal(sample(y, "\nhongyan_sessions_open"), 4);
    /* The status page's list: newest first. */
    static struct metrics_deliveries d;
    assert_int_equal(metrics_deliveries_read(&d), 0);
    assert_true(d.nrecent >= 2);
    assert_string_equal(d.recent[0].rcpt, "c@example.net");
    assert_int_equal(d.recent[0].outcome, METRICS_BOUNCED);
    buf_free(&a);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test(test_render_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
