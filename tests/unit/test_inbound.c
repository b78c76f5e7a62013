/*
 * Unit tests for the inbound stage's configuration side
 * (src/mailauth/inbound.c): which clients are checked, and the policy keys.
 * The checks themselves run end to end in tests/integration/test_inbound_auth.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "mailauth/inbound.h"
#include "smtpd/policy.h"
#include "testutil.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return sa;
}

static void test_applies(void **state)
{
    struct config *cfg = test_config("mynetworks = 192.0.2.0/24, [2001:db8::]/32\n");
    struct sockaddr_in in = v4("192.0.2.7"), out = v4("198.51.100.1");
    /* outside mynetworks and not authenticated: checked */
    assert_true(inbound_applies(smtpd_policy_mynetworks(cfg, (struct sockaddr *)&out), 0));
    /* our networks, or our authenticated users: not judged */
    assert_false(inbound_applies(smtpd_policy_mynetworks(cfg, (struct sockaddr *)&in), 0));
    assert_false(inbound_applies(smtpd_policy_mynetworks(cfg, (struct sockaddr *)&out), 1));
    assert_false(inbound_applies(smtpd_policy_mynetworks(cfg, (struct sockaddr *)&in), 1));
    config_free(cfg);
    smtpd_policy_cache_clear();
}

static void test_settings(void **state)
{
    struct inbound_settings set;
    struct config *cfg = test_config("myhostname = mx.example.org\n");
    inbound_settings_load(cfg, &set);
    assert_false(set.spf_reject);
    assert_true(set.dkim_verify);
    assert_false(set.dmarc_reject);
    assert_string_equal(set.authserv_id, "mx.example.org"); /* $myhostname */
    assert_string_equal(set.receiver, "mx.example.org");
    config_free(cfg);

    cfg = test_config("myhostname = mx.example.org\n"
                      "smtpd_spf_policy = reject\n"
                      "smtpd_dkim_verify = no\n"
                      "smtpd_dmarc_policy = reject\n"
                      "authserv_id = auth.example.org\n");
    inbound_settings_load(cfg, &set);
    assert_true(set.spf_reject);
    assert_false(set.dkim_verify);
    assert_true(set.dmarc_reject);
    assert_string_equal(set.authserv_id, "auth.example.org");
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
