/* Unit tests for access(5) values and lookup keys (src/smtpd/access.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/util.h"
#include "smtpd/access.h"

static void test_actions(void **state)
{
    struct access_result r;
    access_parse("REJECT no thanks", &r);
    assert_int_equal(r.action, ACCESS_REJECT);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.text, "no thanks");
    access_parse("reject 5.7.2 bad", &r);
    assert_int_equal(r.action, ACCESS_REJECT);
    assert_string_equal(r.dsn, "5.7.2");
    assert_string_equal(r.text, "bad");
    access_parse("DEFER", &r);
    assert_int_equal(r.action, ACCESS_DEFER);
    assert_string_equal(r.text, "");
    access_parse("521 5.7.0 go away", &r);
    assert_int_equal(r.action, ACCESS_REJECT);
    assert_int_equal(r.code, 521);
    assert_string_equal(r.dsn, "5.7.0");
    assert_string_equal(r.text, "go away");
    access_parse("450 try later", &r);
    assert_int_equal(r.action, ACCESS_DEFER);
    assert_int_equal(r.code, 450);
    assert_string_equal(r.dsn, "");
    /* A DSN whose class disagrees with the code follows the code. */
    access_parse("450 5.1.1 x", &r);
    assert_string_equal(r.dsn, "4.1.1");
    access_parse("OK", &r);
    assert_int_equal(r.action, ACCESS_OK);
    access_parse("relay", &r);
    assert_int_equal(r.action, ACCESS_OK);
    access_parse("1234567", &r);
    assert_int_equal(r.action, ACCESS_OK);
    access_parse("DUNNO", &r);
    assert_int_equal(r.action, ACCESS_DUNNO);
    access_parse("HOLD quarantine", &r);
    assert_int_equal(r.action, ACCESS_HOLD);
    access_parse("DISCARD", &r);
    assert_int_equal(r.action, ACCESS_DISCARD);
    access_parse("PREPEND X-Tag: yes", &r);
    assert_int_equal(r.action, ACCESS_PREPEND);
    assert_string_equal(r.text, "X-Tag: yes");
    access_parse("PREPEND no colon", &r);
    assert_int_equal(r.action, ACCESS_BAD);
    access_parse("REDIRECT u@example.com", &r);
    assert_int_equal(r.action, ACCESS_REDIRECT);
    access_parse("REDIRECT nobody", &r);
    assert_int_equal(r.action, ACCESS_BAD);
    access_parse("WARN odd", &r);
    assert_int_equal(r.action, ACCESS_WARN);
    access_parse("FILTER smtp:[127.0.0.1]:10025", &r);
    assert_int_equal(r.action, ACCESS_UNSUPPORTED);
    access_parse("permit_mynetworks, reject", &r);
    assert_int_equal(r.action, ACCESS_RESTRICTIONS);
    assert_string_equal(r.text, "permit_mynetworks, reject");
    /* Bad codes and tables in values are configuration errors, never permits. */
    access_parse("250 fine", &r);
    assert_int_equal(r.action, ACCESS_BAD);
    /* Postfix: an all-digit value is OK (a time stamp), even "550". */
    access_parse("550", &r);
    assert_int_equal(r.action, ACCESS_OK);
    access_parse("550 ", &r);
    assert_int_equal(r.action, ACCESS_BAD);
    access_parse("check_client_access hash:/etc/x", &r);
    assert_int_equal(r.action, ACCESS_BAD);
}

static void expect_keys(char **keys, const char *const *want)
{
    size_t i = 0;
    for (; want[i]; i++) {
        assert_non_null(keys[i]);
        assert_string_equal(keys[i], want[i]);
    }
    assert_null(keys[i]);
    strlist_free(keys);
}

static void test_keys(void **state)
{
    expect_keys(access_keys_host("Mail.Example.COM", NULL),
                (const char *const[]){"mail.example.com", "example.com", "com", NULL});
    expect_keys(access_keys_addr("Joe@sub.example.com", NULL),
                (const char *const[]){"joe@sub.example.com", "sub.example.com", "example.com",
                                      "com", "joe@", NULL});
    expect_keys(access_keys_ip("192.0.2.1", NULL),
                (const char *const[]){"192.0.2.1", "192.0.2", "192.0", "192", NULL});
    expect_keys(access_keys_ip("2001:db8::1", NULL),
                (const char *const[]){"2001:db8::1", "2001:db8", "2001", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
