/*
 * Tests for src/dns: the resolver against a real DNS server on loopback
 * (started by tests/integration/test_dns_resolver.py), in its
 * synchronous and event-loop forms, plus the pure helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "lib/util.h"

static char server_addr[64];

/* The DNS server is the integration suite's (tests/integration/dnsserver.py
 * serving tests/data/dns/zone.json): tests/integration/test_dns_resolver.py
 * starts it and runs this program with its address in HONGYAN_TEST_DNS, so
 * the unit suite itself never forks a Python process. */
static int find_server(void **state)
{
    (void)state;
    const char *addr = getenv("HONGYAN_TEST_DNS");
    if (addr == NULL || *addr == '\0' || strlen(addr) >= sizeof(server_addr)) {
        fprintf(stderr, "test_dns: HONGYAN_TEST_DNS is not set; run it through "
                        "tests/integration/test_dns_resolver.py\n");
        return -1;
    }
    memcpy(server_addr, addr, strlen(addr) + 1);
    return 0;
}

static struct dns *new_dns(struct event_base *base)
{
    struct buf err = BUF_INIT;
    struct dns *dns = dns_new(base, server_addr, &err);
    if (dns == NULL)
        fail_msg("dns_new: %s", buf_cstr(&err));
    buf_free(&err);
    return dns;
}

static void test_sync_records(void **state)
{
    (void)state;
    struct dns *dns = new_dns(NULL);
    struct dns_answer *a;

    a = dns_query_sync(dns, "example.com", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->count, 1);
    /* Two character-strings, joined with nothing between (RFC 7208 3.3). */
    assert_string_equal(a->txt[0], "v=spf1 ip4:192.0.2.0/24 -all");
    assert_int_equal(a->secure, 0);
    dns_answer_free(a);

    a = dns_query_sync(dns, "EXAMPLE.com.", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->count, 2);
    unsigned p0 = a->mx[0].pref, p1 = a->mx[1].pref;
    assert_true((p0 == 10 && p1 == 20) || (p0 == 20 && p1 == 10));
    /* Name compression may copy the question's case: names compare case-insensitively. */
    assert_true(str_eq_ci(a->mx[p0 == 10 ? 0 : 1].host, "mx.example.com"));
    dns_answer_free(a);

    /* A copy outlives the original. */
    a = dns_query_sync(dns, "example.com", DNS_T_MX);
    struct dns_answer *c = dns_answer_copy(a);
    dns_answer_free(a);
    assert_int_equal(c->count, 2);
    assert_non_null(c->mx[0].host);
    assert_non_null(c->rdata[1]);
    dns_answer_free(c);

    a = dns_query_sync(dns, "mx.example.com", DNS_T_AAAA);
    assert_int_equal(a->status, DNS_OK);
    assert_string_equal(a->addrs[0], "2001:db8::25");
    dns_answer_free(a);

    a = dns_query_sync(dns, "mx.example.com", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_string_equal(a->addrs[0], "192.0.2.25");
    assert_int_equal(a->rdlen[0], 4);
    dns_answer_free(a);

    a = dns_query_sync(dns, "alias.example.com", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_string_equal(a->addrs[0], "192.0.2.1");
    assert_non_null(a->canonname);
    dns_answer_free(a);

    a = dns_query_sync(dns, "null.example.com", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->mx[0].pref, 0);
    assert_string_equal(a->mx[0].host, "");
    dns_answer_free(a);

    struct buf rev = BUF_INIT;
    assert_int_equal(dns_reverse_name("192.0.2.1", &rev), 0);
    a = dns_query_sync(dns, buf_cstr(&rev), DNS_T_PTR);
    assert_int_equal(a->status, DNS_OK);
    assert_string_equal(a->names[0], "host.example.com");
    dns_answer_free(a);
    buf_free(&rev);

    a = dns_query_sync(dns, "_25._tcp.mx.example.com", DNS_T_TLSA);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->rdlen[0], 3 + 8);
    assert_memory_equal(a->rdata[0], "\x03\x01\x01\x01\x23\x45\x67\x89\xab\xcd\xef", 11);
    dns_answer_free(a);

    /* Three records, one long enough to need TCP after a truncated UDP answer. */
    a = dns_query_sync(dns, "big.example.com", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->count, 3);
    size_t longest = 0;
    for (size_t i = 0; i < a->count; i++)
        if (strlen(a->txt[i]) > longest)
            longest = strlen(a->txt[i]);
    assert_int_equal(longest, 600);
    dns_answer_free(a);

    dns_free(dns);
}

static void test_sync_failures(void **state)
{
    (void)state;
    struct dns *dns = new_dns(NULL);
    struct dns_answer *a;

    a = dns_query_sync(dns, "nowhere.example.com", DNS_T_A);
    assert_int_equal(a->status, DNS_NXDOMAIN);
    assert_int_equal(a->count, 0);
    dns_answer_free(a);

    a = dns_query_sync(dns, "example.com", DNS_T_AAAA);
    assert_int_equal(a->status, DNS_NODATA);
    dns_answer_free(a);

    a = dns_query_sync(dns, "broken.example.com", DNS_T_A);
    assert_int_equal(a->status, DNS_TEMPFAIL);
    dns_answer_free(a);

    a = dns_query_sync(dns, "bad..name", DNS_T_A);
    assert_int_equal(a->status, DNS_PERMFAIL);
    dns_answer_free(a);

    /* A server that never answers: TEMPFAIL once the timeout has passed. */
    dns_set_timeout(dns, 800);
    uint64_t t0 = now_ms();
    a = dns_query_sync(dns, "slow.example.com", DNS_T_TXT);
    assert_int_equal(a->status, DNS_TEMPFAIL);
    assert_true(now_ms() - t0 >= 700);
    dns_answer_free(a);

    dns_free(dns);
}

struct async_state {
    int calls;
    enum dns_status last;
    char txt[128];
    struct event_base *base;
    int expect;
};

static void on_answer(void *arg, const struct dns_answer *ans)
{
    struct async_state *st = arg;
    st->calls++;
    st->last = ans->status;
    if (ans->status == DNS_OK && ans->txt != NULL)
        str_copy(st->txt, sizeof(st->txt), ans->txt[0]);
    if (st->calls == st->expect)
        event_base_loopbreak(st->base);
}

static void on_never(void *arg, const struct dns_answer *ans)
{
    (void)ans;
    int *called = arg;
    (*called)++;
}

static void test_async(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct dns *dns = new_dns(base);
    struct async_state ok = {.base = base, .expect = 1};
    struct async_state nx = {.base = base, .expect = 1};
    struct async_state slow = {.base = base, .expect = 1};
    int never = 0;

    dns_set_timeout(dns, 800);
    struct dns_query *q1 = dns_query(dns, "example.com", DNS_T_TXT, on_answer, &ok);
    struct dns_query *q2 = dns_query(dns, "nowhere.example.com", DNS_T_TXT, on_answer, &nx);
    struct dns_query *q3 = dns_query(dns, "slow.example.com", DNS_T_TXT, on_answer, &slow);
    struct dns_query *q4 = dns_query(dns, "mx.example.com", DNS_T_A, on_never, &never);
    /* An early failure is still delivered from the loop, not from dns_query(). */
    struct async_state bad = {.base = base, .expect = 1};
    struct dns_query *q5 = dns_query(dns, "", DNS_T_A, on_answer, &bad);
    assert_non_null(q1);
    assert_non_null(q2);
    assert_non_null(q3);
    assert_non_null(q5);
    assert_int_equal(bad.calls, 0);
    dns_cancel(q4);

    for (int i = 0; i < 100 && (ok.calls + nx.calls + slow.calls + bad.calls) < 4; i++)
        event_base_loop(base, EVLOOP_ONCE);

    assert_int_equal(ok.calls, 1);
    assert_int_equal(ok.last, DNS_OK);
    assert_string_equal(ok.txt, "v=spf1 ip4:192.0.2.0/24 -all");
    assert_int_equal(nx.calls, 1);
    assert_int_equal(nx.last, DNS_NXDOMAIN);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.last, DNS_TEMPFAIL);
    assert_int_equal(bad.calls, 1);
    assert_int_equal(bad.last, DNS_PERMFAIL);
    assert_int_equal(never, 0);

    /* Freeing with a query pending: its callback never runs. */
    dns_query(dns, "slow.example.com", DNS_T_A, on_never, &never);
    dns_free(dns);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(never, 0);
    event_base_free(base);
}

static void test_new_errors(void **state)
{
    (void)state;
    const char *bad[] = {"dns.example.com", "127.0.0.1:0", "127.0.0.1:99999", "[::1",
                         "127.0.0.1:x",     "[::1]x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf err = BUF_INIT;
        assert_null(dns_new(NULL, bad[i], &err));
        assert_true(strstr(buf_cstr(&err), "dns_resolver") != NULL);
        buf_free(&err);
    }
    const char *good[] = {"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct buf err = BUF_INIT;
        struct dns *dns = dns_new(NULL, good[i], &err);
        assert_non_null(dns);
        dns_free(dns);
        buf_free(&err);
    }
    dns_free(NULL);
    dns_cancel(NULL);
    dns_answer_free(NULL);
}

static void test_reverse_name(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(dns_reverse_name("192.0.2.10", &b), 0);
    assert_string_equal(buf_cstr(&b), "10.2.0.192.in-addr.arpa");
    assert_int_equal(dns_reverse_name("2001:db8::567:89ab", &b), 0);
    /* RFC 3596 2.5's example form. */
    assert_string_equal(buf_cstr(&b), "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0."
                                      "0.2.ip6.arpa");
    assert_int_equal(dns_reverse_name("not-an-ip", &b), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_records), cmocka_unit_test(test_sync_failures),
        cmocka_unit_test(test_async),        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_reverse_name),
    };
    return cmocka_run_group_tests(tests, find_server, NULL);
}
