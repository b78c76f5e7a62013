/* Unit tests for Authentication-Results (src/mailauth/authres.c): building and forged-field
 * removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mailauth/authres.h"

static void test_build(void **state)
{
    struct authres *ar = authres_new("mx.example.org");
    authres_add(ar, "spf", "pass", NULL, NULL, "smtp.mailfrom", "alice@example.com", NULL);
    authres_add(ar, "dkim", "pass", NULL, NULL, "header.d", "example.com", "header.s", "mail",
                "header.b", "AbCdEf/+", NULL);
    authres_add(ar, "dmarc", "fail", "p=reject dis=reject", NULL, "header.from", "example.com",
                NULL);
    authres_add(ar, "dkim", "fail", NULL, "body hash \"did\" not verify", "header.d", "",
                "header.s", NULL, NULL);
    struct buf out = BUF_INIT;
    authres_format(ar, &out);
    assert_string_equal(buf_cstr(&out),
                        "Authentication-Results: mx.example.org;\r\n"
                        "\tspf=pass smtp.mailfrom=alice@example.com;\r\n"
                        "\tdkim=pass header.d=example.com header.s=mail header.b=\"AbCdEf/+\";\r\n"
                        "\tdmarc=fail (p=reject dis=reject) header.from=example.com;\r\n"
                        "\tdkim=fail reason=\"body hash \\\"did\\\" not verify\"\r\n");
    authres_free(ar);
    authres_free(NULL);
    buf_free(&out);

    /* A HELO name or DKIM tag that is not UTF-8 text: '?' as Postfix writes it. */
    ar = authres_new("mx.example.org");
    authres_add(ar, "spf", "none", "\xff\xfe.example: no \x01 record", NULL, "smtp.helo",
                "\xff\xfe.example", NULL);
    authres_format(ar, &out);
    assert_string_equal(buf_cstr(&out),
                        "Authentication-Results: mx.example.org;\r\n"
                        "\tspf=none (??.example: no ? record) smtp.helo=\"??.example\"\r\n");
    authres_free(ar);
    buf_free(&out);
}

static void test_none_and_fold(void **state)
{
    struct authres *ar = authres_new("mx.example.org");
    struct buf out = BUF_INIT;
    authres_format(ar, &out);
    assert_string_equal(buf_cstr(&out), "Authentication-Results: mx.example.org; none\r\n");
    buf_reset(&out);
    authres_add(ar, "spf", "fail", "mx.example.org: 192.0.2.1 is not a permitted sender",
                "this is a fairly long reason that pushes the line over the limit", "smtp.mailfrom",
                "someone.with.a.long.name@a-very-long-subdomain.of.example.com", NULL);
    authres_format(ar, &out);
    /* every physical line fits in 78 columns but for a single word longer than that */
    const char *p = buf_cstr(&out);
    int lines = 0;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 78);
        if (lines > 0)
            assert_true(*p == '\t'); /* continuation lines start with white space */
        lines++;
        p = e + 2;
    }
    assert_true(lines >= 3);
    /* unfolding gives back the words with single spaces */
    assert_non_null(strstr(buf_cstr(&out), "smtp.mailfrom=someone.with.a.long.name@"));
    authres_free(ar);
    buf_free(&out);
}

static void test_field_id(void **state)
{
    static const char *cases[][2] = {
        {" mx.example.org; spf=pass", "mx.example.org"},
        {" mx.example.org 1; none", "mx.example.org"},
        {"\r\n\t(comment) MX.Example.ORG;", "MX.Example.ORG"},
        {" \"mx.example.org\"; none", "mx.example.org"},
        {"mx.example.org", "mx.example.org"},
    };
    struct buf id = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(authres_field_id(cases[i][0], strlen(cases[i][0]), &id), 0);
        assert_string_equal(buf_cstr(&id), cases[i][1]);
    }
    assert_int_equal(authres_field_id(" ; none", 7, &id), -1);
    assert_int_equal(authres_field_id(" (unterminated", 14, &id), -1);
    assert_int_equal(authres_field_id(" \"open", 6, &id), -1);
    buf_free(&id);
}

static void test_strip(void **state)
{
    const char *msg = "Received: from x\r\n"
                      "Authentication-Results: mx.example.org; dkim=pass header.d=bank.test\r\n"
                      "authentication-results : MX.EXAMPLE.ORG 1;\r\n"
                      "\tspf=pass smtp.mailfrom=bank.test\r\n"
                      "Authentication-Results: (c) \"mx.example.org\"; none\r\n"
                      "Authentication-Results: other.example.net; spf=fail\r\n"
                      "Authentication-Results: mx.example.org.evil; spf=pass\r\n"
                      "Subject: hi\r\n"
                      "\r\n"
                      "Authentication-Results: mx.example.org; body text stays\r\n";
    struct buf out = BUF_INIT;
    assert_int_equal(authres_strip(msg, strlen(msg), "mx.example.org", &out), 3);
    assert_string_equal(buf_cstr(&out),
                        "Received: from x\r\n"
                        "Authentication-Results: other.example.net; spf=fail\r\n"
                        "Authentication-Results: mx.example.org.evil; spf=pass\r\n"
                        "Subject: hi\r\n"
                        "\r\n"
                        "Authentication-Results: mx.example.org; body text stays\r\n");
    /* nothing to remove: the message comes back byte for byte */
    buf_reset(&out);
    const char *plain = "Subject: x\r\n\r\nbody";
    assert_int_equal(authres_strip(plain, strlen(plain), "mx.example.org", &out), 0);
    assert_int_equal(out.len, strlen(plain));
    assert_memory_equal(out.data, plain, out.len);
    /* a header without a body, and a last line without CRLF */
    buf_reset(&out);
    const char *hdr = "Subject: x\r\nAuthentication-Results: mx.example.org; none";
    assert_int_equal(authres_strip(hdr, strlen(hdr), "mx.example.org", &out), 1);
    assert_string_equal(buf_cstr(&out), "Subject: x\r\n");
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_none_and_fold),
        cmocka_unit_test(test_field_id),
        cmocka_unit_test(test_strip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
