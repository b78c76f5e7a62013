/* Unit tests for the one DNS-name syntax check (src/lib/dnsname.c) and its flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/dnsname.h"

static int ok(const char *s, unsigned flags)
{
    return dnsname_ok(s, strlen(s), flags);
}

static void test_plain_names(void **state)
{
    (void)state;
    const char *good[] = {"example.com", "a", "mx-1.example.com", "2026-11", "xn--caf-dma.test"};
    const char *bad[] = {"", ".", "..", "a..b", ".a", "a.", "a b", "a/b", "a_b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ok(good[i], 0));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ok(bad[i], 0));
}

static void test_lengths(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'a', sizeof name);
    assert_true(dnsname_ok(name, 63, 0));
    assert_false(dnsname_ok(name, 64, 0));
    /* 253 octets in labels of 63: 63.63.63.61 */
    for (size_t i = 63; i < 253; i += 64)
        name[i] = '.';
    assert_true(dnsname_ok(name, 253, 0));
    assert_false(dnsname_ok(name, 254, 0));
}

static void test_flags(void **state)
{
    (void)state;
    assert_true(ok("s1._domainkey.example.com", DNSNAME_UNDERSCORE));
    assert_true(ok("caf\xc3\xa9.example", DNSNAME_UTF8));
    assert_true(ok("example.com.", DNSNAME_ROOT_DOT));
    assert_false(ok("example.com..", DNSNAME_ROOT_DOT));
    assert_false(ok(".", DNSNAME_ROOT_DOT));
    assert_true(ok("-a.b-", 0));
    assert_false(ok("-a.b", DNSNAME_NO_EDGE_HYPHEN));
    assert_false(ok("a-.b", DNSNAME_NO_EDGE_HYPHEN));
    assert_false(ok("a.b-", DNSNAME_NO_EDGE_HYPHEN));
    assert_true(ok("a-b.c", DNSNAME_NO_EDGE_HYPHEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
