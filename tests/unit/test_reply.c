/* Unit tests for the SMTP reply parser and EHLO keyword reader (src/smtp/reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"

/* Feeds "\n"-separated lines; returns the status of the last feed. */
static enum smtp_reply_feed feed_all(struct smtp_reply *r, const char *text, struct buf *err)
{
    enum smtp_reply_feed st = SMTP_REPLY_ERROR;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        st = smtp_reply_feed(r, p, n, err);
        if (st != SMTP_REPLY_MORE)
            return st;
        p += n + (p[n] == '\n');
    }
    return st;
}

static void test_single_line(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(smtp_reply_feed(&r, "250 2.1.0 Ok\r", 13, &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enh, "2.1.0");
    smtp_reply_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "250 2.1.0 Ok");
    smtp_reply_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_multi_line(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(feed_all(&r,
                              "550-5.1.1 The email account that you tried to reach does\n"
                              "550-5.1.1 not exist. Please try\n"
                              "550 5.1.1 double-checking.",
                              &err),
                     SMTP_REPLY_DONE);
    assert_int_equal(r.nlines, 3);
    char dsn[16];
    assert_string_equal(smtp_reply_dsn(&r, dsn), "5.1.1");
    smtp_reply_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "550 5.1.1 The email account that you tried to reach does "
                                        "not exist. Please try double-checking.");
    smtp_reply_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_bare_code_and_no_enh(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT;
    char dsn[16];
    assert_int_equal(smtp_reply_feed(&r, "354", 3, &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.enh, "");
    assert_string_equal(smtp_reply_dsn(&r, dsn), "2.0.0");
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, "451 try later", 13, &err), SMTP_REPLY_DONE);
    assert_string_equal(smtp_reply_dsn(&r, dsn), "4.0.0");
    /* An enhanced code whose class differs from the reply's is not taken (RFC 2034 4). */
    smtp_reply_reset(&r);
    assert_int_equal(smtp_reply_feed(&r, "451 5.1.1 odd", 13, &err), SMTP_REPLY_DONE);
    assert_string_equal(r.enh, "");
    smtp_reply_clear(&r);
    buf_free(&err);
}

static void test_malformed(void **state)
{
    const char *bad[] = {"", "25", "abc ok", "250x ok", "650 no", "199 no", "2a0 no", "260 no"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct smtp_reply r = {0};
        struct buf err = BUF_INIT;
        assert_int_equal(smtp_reply_feed(&r, bad[i], strlen(bad[i]), &err), SMTP_REPLY_ERROR);
        assert_true(err.len > 0);
        smtp_reply_clear(&r);
        buf_free(&err);
    }
    /* Codes that change within one reply. */
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(feed_all(&r, "250-a\n251 b", &err), SMTP_REPLY_ERROR);
    assert_non_null(strstr(buf_cstr(&err), "began with 250"));
    smtp_reply_clear(&r);
    buf_free(&err);
}

static void test_caps(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT;
    enum smtp_reply_feed st = SMTP_REPLY_MORE;
    int n = 0;
    while (st == SMTP_REPLY_MORE && n < 1000) {
        st = smtp_reply_feed(&r, "250-x", 5, &err);
        n++;
    }
    assert_int_equal(st, SMTP_REPLY_ERROR);
    assert_int_equal(n, SMTP_REPLY_LINES_MAX + 1);
    smtp_reply_clear(&r);
    buf_reset(&err);
    char longl[SMTP_REPLY_LINE_MAX + 10];
    memset(longl, 'a', sizeof longl);
    memcpy(longl, "250 ", 4);
    assert_int_equal(smtp_reply_feed(&r, longl, sizeof longl, &err), SMTP_REPLY_ERROR);
    smtp_reply_clear(&r);
    buf_free(&err);
}

static void test_control_chars_replaced(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    assert_int_equal(smtp_reply_feed(&r, "250 a\0b\x1b", 8, &err), SMTP_REPLY_DONE);
    smtp_reply_format(&r, &out);
    assert_string_equal(buf_cstr(&out), "250 a?b?");
    smtp_reply_clear(&r);
    buf_free(&err);
    buf_free(&out);
}

static void test_ehlo(void **state)
{
    struct smtp_reply r = {0};
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
                     SMTP_REPLY_DONE);
    struct smtp_ehlo e;
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.ext, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
                                SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_STARTTLS |
                                SMTP_EXT_AUTH | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_CHUNKING);
    assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);
    assert_true(e.size == 10240000ULL);
    smtp_reply_reset(&r);
    /* The greeting line is not a keyword; SIZE without a number means no limit. */
    assert_int_equal(feed_all(&r, "250-STARTTLS\n250 SIZE", &err), SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_int_equal(e.ext, SMTP_EXT_SIZE);
    assert_true(e.size == 0);
    smtp_reply_reset(&r);
    /* An absurd SIZE is treated as no limit rather than overflowing. */
    assert_int_equal(feed_all(&r, "250-x\n250 SIZE 99999999999999999999999", &err),
                     SMTP_REPLY_DONE);
    smtp_ehlo_parse(&r, &e);
    assert_true(e.size == 0);
    smtp_reply_clear(&r);
    buf_free(&err);
}

static void test_reuse_after_done(void **state)
{
    struct smtp_reply r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(feed_all(&r, "250-a\n250 b", &err), SMTP_REPLY_DONE);
    assert_int_equal(smtp_reply_feed(&r, "354 go", 6, &err), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 354);
    assert_int_equal(r.nlines, 1);
    smtp_reply_clear(&r);
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
