/* Unit tests for the SMTP reply parser and EHLO keyword reader (src/smtp/reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/response.h"

/* Feeds "\n"-separated lines; returns the status of the last feed. */
static enum smtp_response_feed feed_all(struct smtp_response *r, const char *text, struct buf *err)
{
    enum smtp_response_feed st = SMTP_RESPONSE_ERROR;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        st = smtp_response_feed(r, p, n, err);
        if (st != SMTP_RESPONSE_MORE)
            return st;
        p += n + (p[n] == '\n');
    }
    return st;
}

static void test_single_line(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(smtp_response_feed(&r, "250 2.1.0 Ok\r", 13, &err), SMTP_RESPONSE_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enh, "2.1.0");
    smtp_response_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "250 2.1.0 Ok");
    smtp_response_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_multi_line(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(feed_all(&r,
                              "550-5.1.1 The email account that you tried to reach does\n"
                              "550-5.1.1 not exist. Please try\n"
                              "550 5.1.1 double-checking.",
                              &err),
                     SMTP_RESPONSE_DONE);
    assert_int_equal(r.nlines, 3);
    char dsn[16];
    assert_string_equal(smtp_response_dsn(&r, dsn), "5.1.1");
    smtp_response_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "550 5.1.1 The email account that you tried to reach does "
                                        "not exist. Please try double-checking.");
    smtp_response_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_bare_code_and_no_enh(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT;
    char dsn[16];
    assert_int_equal(smtp_response_feed(&r, "354", 3, &err), SMTP_RESPONSE_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.enh, "");
    assert_string_equal(smtp_response_dsn(&r, dsn), "2.0.0");
    smtp_response_reset(&r);
    assert_int_equal(smtp_response_feed(&r, "451 try later", 13, &err), SMTP_RESPONSE_DONE);
    assert_string_equal(smtp_response_dsn(&r, dsn), "4.0.0");
    /* An enhanced code whose class differs from the reply's is not taken (RFC 2034 4). */
    smtp_response_reset(&r);
    assert_int_equal(smtp_response_feed(&r, "451 5.1.1 odd", 13, &err), SMTP_RESPONSE_DONE);
    assert_string_equal(r.enh, "");
    smtp_response_clear(&r);
    buf_free(&err);
}

static void test_malformed(void **state)
{
    const char *bad[] = {"", "25", "abc ok", "250x ok", "650 no", "199 no", "2a0 no", "260 no"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct smtp_response r = {0};
        struct buf err = BUF_INIT;
        assert_int_equal(smtp_response_feed(&r, bad[i], strlen(bad[i]), &err), SMTP_RESPONSE_ERROR);
        assert_true(err.len > 0);
        smtp_response_clear(&r);
        buf_free(&err);
    }
    /* Codes that change within one reply. */
    struct smtp_response r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(feed_all(&r, "250-a\n251 b", &err), SMTP_RESPONSE_ERROR);
    assert_non_null(strstr(buf_cstr(&err), "began with 250"));
    smtp_response_clear(&r);
    buf_free(&err);
}

static void test_caps(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT;
    enum smtp_response_feed st = SMTP_RESPONSE_MORE;
    int n = 0;
    while (st == SMTP_RESPONSE_MORE && n < 1000) {
        st = smtp_response_feed(&r, "250-x", 5, &err);
        n++;
    }
    assert_int_equal(st, SMTP_RESPONSE_ERROR);
    assert_int_equal(n, SMTP_RESPONSE_LINES_MAX + 1);
    smtp_response_clear(&r);
    buf_reset(&err);
    char longl[SMTP_RESPONSE_LINE_MAX + 10];
    memset(longl, 'a', sizeof longl);
    memcpy(longl, "250 ", 4);
    assert_int_equal(smtp_response_feed(&r, longl, sizeof longl, &err), SMTP_RESPONSE_ERROR);
    smtp_response_clear(&r);
    buf_free(&err);
}

static void test_control_chars_replaced(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(smtp_response_feed(&r, "250 a\0b\x1b", 8, &err), SMTP_RESPONSE_DONE);
    smtp_response_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "250 a?b?");
    smtp_response_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_ehlo(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(feed_all(&r,
                              "250-relay.example.com Hello\n"
                              "250-PIPELINING\n"
                              "250-SIZE 10240000\n"
                              "250-8bitmime\n"
                              "250-SMTPUTF8\n"
                              "250-DSN\n"
                              "250-STARTTLS\n"
                              "250-AUTH PLAIN LOGIN CRAM-MD5\n"
                              "250-AUTH=LOGIN\n"
                              "250-ENHANCEDSTATUSCODES\n"
                              "250-X-UNKNOWN thing\n"
                              "250 CHUNKING",
                              &err),
                     SMTP_RESPONSE_DONE);
    struct smtp_ehlo e;
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.ext, SMTP_EHLO_PIPELINING | SMTP_EHLO_SIZE | SMTP_EHLO_8BITMIME |
                                SMTP_EHLO_SMTPUTF8 | SMTP_EHLO_DSN | SMTP_EHLO_STARTTLS |
                                SMTP_EHLO_AUTH | SMTP_EHLO_ENHANCEDSTATUSCODES |
                                SMTP_EHLO_CHUNKING);
    assert_int_equal(e.auth, SMTP_EHLO_AUTH_PLAIN | SMTP_EHLO_AUTH_LOGIN | SMTP_EHLO_AUTH_CRAM_MD5);
    assert_true(e.size == 10240000ULL);
    smtp_response_reset(&r);
    /* The greeting line is not a keyword; SIZE without a number means no limit. */
    assert_int_equal(feed_all(&r, "250-STARTTLS\n250 SIZE", &err), SMTP_RESPONSE_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.ext, SMTP_EHLO_SIZE);
    assert_true(e.size == 0);
    smtp_response_reset(&r);
    /* An absurd SIZE is treated as no limit rather than overflowing. */
    assert_int_equal(feed_all(&r, "250-x\n250 SIZE 99999999999999999999999", &err),
                     SMTP_RESPONSE_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_true(e.size == 0);
    smtp_response_clear(&r);
    buf_free(&err);
}

static void test_reuse_after_done(void **state)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(feed_all(&r, "250-a\n250 b", &err), SMTP_RESPONSE_DONE);
    assert_int_equal(smtp_response_feed(&r, "354 go", 6, &err), SMTP_RESPONSE_DONE);
    assert_int_equal(r.code, 354);
    assert_int_equal(r.nlines, 1);
    smtp_response_clear(&r);
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_bare_code_and_no_enh),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_control_chars_replaced),
        cmocka_unit_test(test_ehlo),
        cmocka_unit_test(test_reuse_after_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
