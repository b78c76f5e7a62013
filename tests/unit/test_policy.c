/* Unit tests for mynetworks matching and the relay rule (src/smtpd/policy.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/policy.h"
#include "testutil.h"

static int match(const struct smtpd_netlist *nl, const char *ip)
{
    struct sockaddr_storage ss = test_sockaddr(ip);
    return smtpd_netlist_match(nl, (struct sockaddr *)&ss);
}

static struct smtpd_netlist *parse(const char *spec)
{
    struct buf err = BUF_INIT;
    struct smtpd_netlist *nl = smtpd_netlist_parse(spec, &err);
    if (!nl)
        fail_msg("%s: %s", spec, buf_cstr(&err));
    buf_free(&err);
    return nl;
}

static void test_match(void **state)
{
    struct smtpd_netlist *nl = parse("127.0.0.0/8, 192.0.2.0/25 198.51.100.7 [::1]/128 "
                                     "2001:db8::/32 [fd00::]/8");
    assert_true(match(nl, "127.0.0.1"));
    assert_true(match(nl, "127.255.255.254"));
    assert_false(match(nl, "128.0.0.1"));
    assert_true(match(nl, "192.0.2.0"));
    assert_true(match(nl, "192.0.2.127"));
    assert_false(match(nl, "192.0.2.128"));
    assert_true(match(nl, "198.51.100.7"));
    assert_false(match(nl, "198.51.100.8"));
    assert_true(match(nl, "::1"));
    assert_false(match(nl, "::2"));
    assert_true(match(nl, "2001:db8:ffff::1"));
    assert_false(match(nl, "2001:db9::1"));
    assert_true(match(nl, "fdff::1"));
    assert_false(match(nl, "fe00::1"));
    /* IPv4-mapped IPv6 clients match IPv4 networks. */
    assert_true(match(nl, "::ffff:127.0.0.1"));
    assert_false(match(nl, "::ffff:8.8.8.8"));
    smtpd_netlist_free(nl);
}

static void test_negation_and_edges(void **state)
{
    struct smtpd_netlist *nl = parse("!192.0.2.5 192.0.2.0/24");
    assert_false(match(nl, "192.0.2.5"));
    assert_true(match(nl, "192.0.2.6"));
    smtpd_netlist_free(nl);
    nl = parse("0.0.0.0/0");
    assert_true(match(nl, "203.0.113.9"));
    assert_false(match(nl, "::1"));
    smtpd_netlist_free(nl);
    nl = parse("");
    assert_false(match(nl, "127.0.0.1"));
    smtpd_netlist_free(nl);
    nl = parse("[::ffff:127.0.0.0]/104");
    assert_true(match(nl, "::ffff:127.0.0.1"));
    smtpd_netlist_free(nl);
    assert_false(smtpd_netlist_match(NULL, NULL));
}

static void test_bad(void **state)
{
    const char *bad[] = {"192.0.2.1/33", "192.0.2.0/", "[::1]/129",   "example.com",
                         "192.0.2.1/24", "::1/-1",     "hash:/etc/x", "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf err = BUF_INIT;
        struct smtpd_netlist *nl = smtpd_netlist_parse(bad[i], &err);
        if (nl)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(buf_cstr(&err), "mynetworks"));
        buf_free(&err);
    }
}

static void test_relay_rule(void **state)
{
    struct smtp_reply r = {0};
    assert_int_equal(smtpd_policy_relay(RESOLVE_LOCAL, 0, 0, &r), 0);
    assert_int_equal(smtpd_policy_relay(RESOLVE_RELAY, 0, 0, &r), 0);
    assert_int_equal(smtpd_policy_relay(RESOLVE_REMOTE, 1, 0, &r), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(smtpd_policy_relay(RESOLVE_REMOTE, 0, 0, &r), -1);
    assert_int_equal(r.code, 554);
    assert_string_equal(r.status, "5.7.1");
    assert_string_equal(r.text, "Relay access denied");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_negation_and_edges),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_relay_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
