/* Unit tests for the one host:port parser (src/lib/hostport.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/hostport.h"

static void split_ok(const char *spec, unsigned flags, const char *host, const char *port, int br)
{
    struct hostport hp;
    assert_int_equal(hostport_split(spec, flags, &hp), 0);
    assert_string_equal(hp.host, host);
    assert_string_equal(hp.port, port);
    assert_int_equal(hp.bracketed, br);
}

static void split_bad(const char *spec, unsigned flags)
{
    struct hostport hp;
    assert_int_equal(hostport_split(spec, flags, &hp), -1);
}

static void test_forms(void **state)
{
    (void)state;
    split_ok("mx.example.com", 0, "mx.example.com", "", 0);
    split_ok("in-v3.mailjet.com:587", 0, "in-v3.mailjet.com", "587", 0);
    split_ok("[smtp.example.net]", 0, "smtp.example.net", "", 1);
    split_ok("[smtp.example.net]:submission", 0, "smtp.example.net", "submission", 1);
    split_ok("[2001:db8::1]:587", 0, "2001:db8::1", "587", 1);
    split_ok("[ipv6:2001:db8::1]", 0, "2001:db8::1", "", 1);
    split_ok("2001:db8::1", HOSTPORT_BARE_IPV6, "2001:db8::1", "", 0);
    split_ok("*:25", 0, "*", "25", 0);
}

static void test_malformed(void **state)
{
    (void)state;
    split_bad("", 0);
    split_bad(":25", 0);
    split_bad("host:", 0);
    split_bad("[host", 0);
    split_bad("[]:25", 0);
    split_bad("[host]x", 0);
    split_bad("[host]:", 0);
    split_bad("2001:db8::1", 0);            /* IPv6 must be bracketed */
    split_bad("a:b:c", HOSTPORT_BARE_IPV6); /* not an IPv6 address either */
    char long_host[300];
    memset(long_host, 'a', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';
    split_bad(long_host, 0);
}

static void test_ports(void **state)
{
    (void)state;
    assert_int_equal(hostport_port("25"), 25);
    assert_int_equal(hostport_port("65535"), 65535);
    assert_int_equal(hostport_port("submission"), 587);
    assert_int_equal(hostport_port("SMTPS"), 465);
    assert_int_equal(hostport_port("lmtp"), 24);
    assert_int_equal(hostport_port("0"), -1);
    assert_int_equal(hostport_port("65536"), -1);
    assert_int_equal(hostport_port("000025x"), -1);
    assert_int_equal(hostport_port("-1"), -1);
    assert_int_equal(hostport_port(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
