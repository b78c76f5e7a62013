/* Unit tests for the policy reply parser (src/smtpd/policyd.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtpd/policyd.h"

static int parse(const char *s, struct buf *action, size_t *used)
{
    return policyd_reply_parse(s, strlen(s), action, used);
}

static void test_reply(void **state)
{
    struct buf a = BUF_INIT;
    size_t used = 0;
    assert_int_equal(parse("action=DUNNO\n\n", &a, &used), 1);
    assert_string_equal(buf_cstr(&a), "DUNNO");
    assert_int_equal(used, 14);
    assert_int_equal(parse("action=REJECT no\nextra=1\n\nmore", &a, &used), 1);
    assert_string_equal(buf_cstr(&a), "REJECT no");
    assert_int_equal(used, 26);
    assert_int_equal(parse("action=OK\r\n\r\n", &a, &used), 1);
    assert_string_equal(buf_cstr(&a), "OK");
    /* Not there yet. */
    assert_int_equal(parse("action=DUN", &a, &used), 0);
    assert_int_equal(parse("action=DUNNO\n", &a, &used), 0);
    /* Garbage. */
    assert_int_equal(parse("\n", &a, &used), -1);
    assert_int_equal(parse("no equals sign\n\n", &a, &used), -1);
    assert_int_equal(parse("foo=bar\n\n", &a, &used), -1);
    assert_int_equal(parse("=x\n\n", &a, &used), -1);
    buf_free(&a);
}

static void test_endless(void **state)
{
    char big[POLICYD_REPLY_MAX + 100];
    memset(big, 'x', sizeof big);
    struct buf a = BUF_INIT;
    size_t used = 0;
    assert_int_equal(policyd_reply_parse(big, sizeof big, &a, &used), -1);
    assert_int_equal(policyd_reply_parse(big, 100, &a, &used), 0);
    buf_free(&a);
}

static void test_endpoints(void **state)
{
    assert_true(policyd_endpoint_valid("inet:127.0.0.1:10023"));
    assert_true(policyd_endpoint_valid("inet:localhost:10023"));
    assert_true(policyd_endpoint_valid("unix:/var/run/policy.sock"));
    assert_false(policyd_endpoint_valid("inet:127.0.0.1"));
    assert_false(policyd_endpoint_valid("inet::10023"));
    assert_false(policyd_endpoint_valid("unix:relative"));
    assert_false(policyd_endpoint_valid("tcp:127.0.0.1:1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_endless),
        cmocka_unit_test(test_endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
