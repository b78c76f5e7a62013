/* Unit tests for the rate-limit counters (src/smtpd/anvil.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "smtpd/anvil.h"
#include "testutil.h"

static int ev(struct config *cfg, const char *ip, enum anvil_event e, time_t now)
{
    struct sockaddr_storage ss = test_sockaddr(ip);
    long long rate;
    return anvil_event(cfg, (struct sockaddr *)&ss, e, now, &rate);
}

static void test_window(void **state)
{
    struct config *cfg = test_config("mynetworks = 10.0.0.0/8\n"
                                     "smtpd_client_message_rate_limit = 2\n"
                                     "anvil_rate_time_unit = 60s\n");
    anvil_clear();
    assert_int_equal(ev(cfg, "192.0.2.1", ANVIL_MAIL, 1000), 0);
    assert_int_equal(ev(cfg, "192.0.2.1", ANVIL_MAIL, 1001), 0);
    assert_int_equal(ev(cfg, "192.0.2.1", ANVIL_MAIL, 1002), 1);
    /* Another client, another event kind, another window: not over. */
    assert_int_equal(ev(cfg, "192.0.2.2", ANVIL_MAIL, 1002), 0);
    assert_int_equal(ev(cfg, "192.0.2.1", ANVIL_RCPT, 1002), 0);
    assert_int_equal(ev(cfg, "192.0.2.1", ANVIL_MAIL, 1060), 0);
    /* The exceptions ($mynetworks by default) are never limited. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(ev(cfg, "10.1.2.3", ANVIL_MAIL, 1000), 0);
    anvil_clear();
    config_free(cfg);
}

static void test_ipv6_prefix(void **state)
{
    struct config *cfg = test_config("mynetworks = 10.0.0.0/8\n"
                                     "smtpd_client_message_rate_limit = 1\n");
    anvil_clear();
    /* The default prefix is 64 bits (one host): these two share it, the third does not. */
    assert_int_equal(ev(cfg, "2001:db8::1", ANVIL_MAIL, 1000), 0);
    assert_int_equal(ev(cfg, "2001:db8::ffff:1", ANVIL_MAIL, 1000), 1);
    assert_int_equal(ev(cfg, "2001:db8:0:1::1", ANVIL_MAIL, 1000), 0);
    anvil_clear();
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_ipv6_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
