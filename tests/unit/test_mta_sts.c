/*
 * Unit tests for the MTA-STS parsers (src/deliver/mta_sts_policy.c): the
 * policy body of RFC 8461 3.2 (with its own examples), the TXT record of
 * 3.1, the MX pattern rules of 4.1 and the cache file format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/mta_sts.h"

static int parse(const char *text, struct mta_sts_policy *p, struct buf *err)
{
    buf_reset(err);
    return mta_sts_policy_parse(text, strlen(text), p, err);
}

static void test_policy_rfc_example(void **state)
{
    (void)state;
    struct mta_sts_policy p;
    struct buf err = BUF_INIT;
    /* RFC 8461 3.2, CRLF lines, and an unknown key that must be ignored. */
    assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                           "mx: *.example.net\r\nmx: backupmx.example.com\r\n"
                           "max_age: 604800\r\nfuture: whatever\r\n",
                           &p, &err),
                     0);
    assert_int_equal(p.mode, MTA_STS_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[1], "*.example.net");
    assert_null(p.mx[3]);
    assert_true(mta_sts_mx_match(&p, "mail.example.com"));
    assert_true(mta_sts_mx_match(&p, "MAIL.Example.COM."));
    assert_true(mta_sts_mx_match(&p, "foo.example.net"));
    /* The wildcard stands for one label exactly (RFC 8461 4.1). */
    assert_false(mta_sts_mx_match(&p, "bar.foo.example.net"));
    assert_false(mta_sts_mx_match(&p, "example.net"));
    assert_false(mta_sts_mx_match(&p, "mail.example.com.evil"));
    assert_false(mta_sts_mx_match(&p, "xmail.example.com"));
    mta_sts_policy_clear(&p);
    /* LF lines, trailing blanks, no final newline; mode none needs no mx. */
    assert_int_equal(parse("version: STSv1  \nmode:none\nmax_age: 0", &p, &err), 0);
    assert_int_equal(p.mode, MTA_STS_NONE);
    assert_int_equal(p.nmx, 0);
    assert_non_null(p.mx);
    mta_sts_policy_clear(&p);
    /* The first of a repeated single-valued key counts. */
    assert_int_equal(
        parse("version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\n", &p,
              &err),
        0);
    assert_int_equal(p.mode, MTA_STS_TESTING);
    mta_sts_policy_clear(&p);
    buf_free(&err);
}

static void test_policy_errors(void **state)
{
    (void)state;
    struct mta_sts_policy p;
    struct buf err = BUF_INIT;
    assert_int_equal(parse("mode: enforce\nmx: a.example\nmax_age: 5\n", &p, &err), -1);
    assert_string_equal(buf_cstr(&err), "no version field");
    assert_int_equal(parse("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 5\n", &p, &err),
                     -1);
    assert_int_equal(parse("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 5\n", &p, &err),
                     -1);
    assert_string_equal(buf_cstr(&err), "unknown mode \"strict\"");
    assert_int_equal(parse("version: STSv1\nmode: enforce\nmax_age: 5\n", &p, &err), -1);
    assert_string_equal(buf_cstr(&err), "no mx field");
    assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.example\n", &p, &err), -1);
    assert_int_equal(
        parse("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", &p, &err), -1);
    assert_int_equal(
        parse("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", &p, &err),
        -1);
    assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5\n", &p, &err),
                     -1);
    assert_int_equal(
        parse("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 5\n", &p, &err), -1);
    assert_int_equal(parse("version: STSv1\nnot a field\n", &p, &err), -1);
    assert_string_equal(buf_cstr(&err), "line 2 is not \"key: value\"");
    /* An HTML page served by mistake is not a policy. */
    assert_int_equal(parse("<html><body>hello</body></html>\n", &p, &err), -1);
    buf_free(&err);
}

static void test_txt_id(void **state)
{
    (void)state;
    char id[33];
    char *one[] = {"v=STSv1; id=20160831085700Z;"};
    assert_int_equal(mta_sts_txt_id(one, 1, id), 0);
    assert_string_equal(id, "20160831085700Z");
    char *no_semi[] = {"v=STSv1;id=abc", "v=spf1 -all"};
    assert_int_equal(mta_sts_txt_id(no_semi, 2, id), 0);
    assert_string_equal(id, "abc");
    char *extra[] = {"v=STSv1; foo=bar; id=x1 ;"};
    assert_int_equal(mta_sts_txt_id(extra, 1, id), 0);
    assert_string_equal(id, "x1");
    /* Two STSv1 records: as if none (RFC 8461 3.1). */
    char *two[] = {"v=STSv1; id=a", "v=STSv1; id=b"};
    assert_int_equal(mta_sts_txt_id(two, 2, id), -1);
    char *bad_id[] = {"v=STSv1; id=a-b"};
    assert_int_equal(mta_sts_txt_id(bad_id, 1, id), -1);
    char *long_id[] = {"v=STSv1; id=123456789012345678901234567890123"};
    assert_int_equal(mta_sts_txt_id(long_id, 1, id), -1);
    char *no_id[] = {"v=STSv1;"};
    assert_int_equal(mta_sts_txt_id(no_id, 1, id), -1);
    char *not_first[] = {"id=1; v=STSv1"};
    assert_int_equal(mta_sts_txt_id(not_first, 1, id), -1);
    assert_int_equal(mta_sts_txt_id(NULL, 0, id), -1);
}

static void test_cache_and_domain(void **state)
{
    (void)state;
    const char *file = "id: 7\nfetched: 1700000000\n\nversion: STSv1\nmode: testing\n"
                       "mx: mx.example.net\nmax_age: 86400\n";
    char id[33];
    time_t fetched;
    struct mta_sts_policy p;
    const char *body;
    size_t blen;
    assert_int_equal(mta_sts_cache_parse(file, strlen(file), id, &fetched, &p, &body, &blen), 0);
    assert_string_equal(id, "7");
    assert_int_equal((long long)fetched, 1700000000LL);
    assert_int_equal(p.mode, MTA_STS_TESTING);
    assert_int_equal(strncmp(body, "version: STSv1\n", 15), 0);
    mta_sts_policy_clear(&p);
    const char *torn = "id: 7\nfetched: 17000";
    assert_int_equal(mta_sts_cache_parse(torn, strlen(torn), id, &fetched, &p, &body, &blen), -1);
    assert_true(mta_sts_domain_ok("example.net"));
    assert_true(mta_sts_domain_ok("a-b.example"));
    assert_false(mta_sts_domain_ok("../etc"));
    assert_false(mta_sts_domain_ok("a/b"));
    assert_false(mta_sts_domain_ok(""));
    assert_false(mta_sts_domain_ok(".example"));
    assert_false(mta_sts_domain_ok("[192.0.2.1]"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_rfc_example),
        cmocka_unit_test(test_policy_errors),
        cmocka_unit_test(test_txt_id),
        cmocka_unit_test(test_cache_and_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
