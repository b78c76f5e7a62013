/* Unit tests for SMTP command lines and MAIL/RCPT parameters (src/smtp/command.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/command.h"

#define ALL_EXT                                                                                    \
    (SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_CHUNKING)

static void test_verbs(void **state)
{
    struct smtp_command c;
    struct smtp_reply r;
    const char *l = "mail FROM:<a@b.example>  ";
    assert_int_equal(smtp_command_parse(l, strlen(l), &c, &r), 0);
    assert_int_equal(c.verb, SMTP_CMD_MAIL);
    assert_string_equal(c.name, "MAIL");
    assert_int_equal(c.args_len, strlen("FROM:<a@b.example>"));
    assert_memory_equal(c.args, "FROM:<a@b.example>", c.args_len);
    assert_int_equal(smtp_command_parse("QUIT", 4, &c, &r), 0);
    assert_int_equal(c.verb, SMTP_CMD_QUIT);
    assert_int_equal(c.args_len, 0);
    assert_int_equal(smtp_command_parse("StartTLS", 8, &c, &r), 0);
    assert_int_equal(c.verb, SMTP_CMD_STARTTLS);
    assert_int_equal(smtp_command_parse("EHLO\tx", 6, &c, &r), 0);
    assert_int_equal(c.verb, SMTP_CMD_EHLO);
    assert_int_equal(smtp_command_parse("XYZZY", 5, &c, &r), -1);
    assert_int_equal(r.code, 500);
    assert_string_equal(r.status, "5.5.2");
    assert_int_equal(smtp_command_parse("", 0, &c, &r), -1);
    assert_int_equal(smtp_command_parse("MAIL:x", 6, &c, &r), -1);
    assert_int_equal(smtp_command_parse("MAILX", 5, &c, &r), -1);
    assert_int_equal(smtp_command_parse(" QUIT", 5, &c, &r), -1);
}

static int mail(const char *a, unsigned ext, unsigned long long max, struct smtp_mail *m,
                struct smtp_reply *r)
{
    return smtp_mail_parse(a, strlen(a), ext, max, m, r);
}

static void mail_err(const char *a, unsigned ext, int code, const char *status)
{
    struct smtp_mail m;
    struct smtp_reply r = {0};
    if (mail(a, ext, 1000, &m, &r) == 0)
        fail_msg("accepted: %s", a);
    assert_int_equal(r.code, code);
    assert_string_equal(r.status, status);
}

static void test_mail(void **state)
{
    struct smtp_mail m;
    struct smtp_reply r;
    assert_int_equal(mail("FROM:<a@b.example>", ALL_EXT, 0, &m, &r), 0);
    assert_string_equal(m.from.addr, "a@b.example");
    assert_int_equal(mail("from: <a@b.example>", ALL_EXT, 0, &m, &r), 0); /* Postfix leniency */
    assert_string_equal(m.from.addr, "a@b.example");
    assert_int_equal(mail("FROM:<>", ALL_EXT, 0, &m, &r), 0);
    assert_int_equal(m.from.flags, SMTP_ADDR_NULL);
    assert_int_equal(
        mail("FROM:<a@b.example> SIZE=500 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2Bx", ALL_EXT,
             1000, &m, &r),
        0);
    assert_int_equal(m.size, 500);
    assert_int_equal(m.body, SMTP_BODY_8BITMIME);
    assert_int_equal(m.smtputf8, 1);
    assert_int_equal(m.ret, 2);
    assert_string_equal(m.envid, "QQ+x");
    assert_int_equal(mail("FROM:<a@b.example> body=7bit ret=full", ALL_EXT, 0, &m, &r), 0);
    assert_int_equal(m.body, SMTP_BODY_7BIT);
    assert_int_equal(m.ret, 1);
    /* UTF-8 sender needs SMTPUTF8 on the same command. */
    assert_int_equal(mail("FROM:<\xc3\xa9@b.example> SMTPUTF8", ALL_EXT, 0, &m, &r), 0);
    mail_err("FROM:<\xc3\xa9@b.example>", ALL_EXT, 553, "5.6.7");
    mail_err("FROM:<\xc3\xa9@b.example> SMTPUTF8", ALL_EXT & ~SMTP_EXT_SMTPUTF8, 553, "5.6.7");
    /* A bare local part: only where the session allows it (a logged-in user). */
    mail_err("FROM:<app>", ALL_EXT, 501, "5.1.7");
    assert_int_equal(mail("FROM:<app>", ALL_EXT | SMTP_EXT_UNQUALIFIED_SENDER, 0, &m, &r), 0);
    assert_string_equal(m.from.addr, "app");
    assert_int_equal(m.from.flags, SMTP_ADDR_NO_DOMAIN);
}

static void test_mail_errors(void **state)
{
    mail_err("FROM:<a@b.example> SIZE=1001", ALL_EXT, 552, "5.3.4");
    mail_err("FROM:<a@b.example> SIZE=abc", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> SIZE=", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> SIZE=1 SIZE=2", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> BODY=BINARYMIME", ALL_EXT, 555, "5.5.4");
    mail_err("FROM:<a@b.example> BODY=9BIT", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> FOO=BAR", ALL_EXT, 555, "5.5.4");
    mail_err("FROM:<a@b.example> XFOO", ALL_EXT, 555, "5.5.4");
    mail_err("FROM:<a@b.example> RET=HDRS", ALL_EXT & ~SMTP_EXT_DSN, 555, "5.5.4");
    mail_err("FROM:<a@b.example> AUTH=<>", ALL_EXT, 555, "5.5.4"); /* AUTH not offered */
    mail_err("FROM:<a@b.example> RET=ALL", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> ENVID=a+zz", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> SMTPUTF8=yes", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example>SIZE=10", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@b.example> =x", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:a@b.example", ALL_EXT, 501, "5.5.4");
    mail_err("FROM:<a@@b.example>", ALL_EXT, 501, "5.1.7");
    mail_err("TO:<a@b.example>", ALL_EXT, 501, "5.5.4");
    mail_err("", ALL_EXT, 501, "5.5.4");
    struct smtp_mail m;
    struct smtp_reply r;
    assert_int_equal(mail("FROM:<a@b.example> AUTH=<>", ALL_EXT | SMTP_EXT_AUTH, 0, &m, &r), 0);
    assert_string_equal(m.auth, "");
    assert_int_equal(mail("FROM:<a@b.example> AUTH=u+40x", ALL_EXT | SMTP_EXT_AUTH, 0, &m, &r), 0);
    assert_string_equal(m.auth, "u@x");
}

static int rcpt(const char *a, struct smtp_rcpt *t, struct smtp_reply *r)
{
    return smtp_rcpt_parse(a, strlen(a), ALL_EXT, 0, t, r);
}

static void test_rcpt(void **state)
{
    struct smtp_rcpt t;
    struct smtp_reply r;
    assert_int_equal(rcpt("TO:<u@d.example>", &t, &r), 0);
    assert_string_equal(t.to.addr, "u@d.example");
    assert_int_equal(t.notify, 0);
    assert_string_equal(t.orcpt, "");
    assert_int_equal(rcpt("to: <postmaster>", &t, &r), 0);
    assert_string_equal(t.to.addr, "postmaster");
    assert_int_equal(
        rcpt("TO:<u@d.example> NOTIFY=SUCCESS,delay ORCPT=RFC822;u+2Bx+40d.example", &t, &r), 0);
    assert_int_equal(t.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
    assert_string_equal(t.orcpt, "rfc822;u+x@d.example");
    assert_int_equal(rcpt("TO:<u@d.example> NOTIFY=NEVER", &t, &r), 0);
    assert_int_equal(t.notify, SMTP_NOTIFY_NEVER);
    const char *bad[] = {
        "TO:<u@d.example> NOTIFY=NEVER,SUCCESS",
        "TO:<u@d.example> NOTIFY=SOMETIMES",
        "TO:<u@d.example> NOTIFY=SUCCESS,",
        "TO:<u@d.example> NOTIFY=",
        "TO:<u@d.example> ORCPT=rfc822",
        "TO:<u@d.example> ORCPT=;u@d",
        "TO:<u@d.example> ORCPT=rfc822;",
        "TO:<u@d.example> ORCPT=rfc822;a+4",
        "TO:<u@d.example> ORCPT=rfc822;a+4g",
        "TO:<u@d.example> ORCPT=rfc822;a+4a", /* lower-case hex is not xtext */
        "TO:<u@d.example> ORCPT=rf c822;a",
        "TO:<u@d.example> NOTIFY=NEVER NOTIFY=NEVER",
        "TO:<>",
        "FROM:<u@d.example>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r.code = 0;
        if (rcpt(bad[i], &t, &r) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(r.code / 100, 5);
    }
    assert_int_equal(rcpt("TO:<u@d.example> SIZE=10", &t, &r), -1);
    assert_int_equal(r.code, 555);
    assert_int_equal(smtp_rcpt_parse("TO:<\xc3\xa9@d.example>", 17, ALL_EXT, 0, &t, &r), -1);
    assert_int_equal(r.code, 553);
    assert_int_equal(smtp_rcpt_parse("TO:<\xc3\xa9@d.example>", 17, ALL_EXT, 1, &t, &r), 0);
    assert_int_equal(
        smtp_rcpt_parse("TO:<u@d> NOTIFY=NEVER", 21, ALL_EXT & ~SMTP_EXT_DSN, 0, &t, &r), -1);
    assert_int_equal(r.code, 555);
}

static void test_xtext(void **state)
{
    char out[8];
    assert_int_equal(smtp_xtext_decode("a+2Bb+3D", 8, out, sizeof out), 0);
    assert_string_equal(out, "a+b=");
    assert_int_equal(smtp_xtext_decode("abcdefgh", 8, out, sizeof out), -1); /* too long */
    assert_int_equal(smtp_xtext_decode("abcdefg", 7, out, sizeof out), 0);
    assert_int_equal(smtp_xtext_decode("a=b", 3, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("a b", 3, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("+", 1, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("+2", 2, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("+2b", 3, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void test_helo_bdat(void **state)
{
    struct smtp_reply r;
    assert_int_equal(smtp_helo_check("client.example", 14, &r), 0);
    assert_int_equal(smtp_helo_check("[192.0.2.1]", 11, &r), 0);
    assert_int_equal(smtp_helo_check("", 0, &r), -1);
    assert_int_equal(r.code, 501);
    assert_int_equal(smtp_helo_check("a b", 3, &r), -1);
    char big[300];
    memset(big, 'a', sizeof big);
    assert_int_equal(smtp_helo_check(big, sizeof big, &r), -1);
    unsigned long long n;
    int last;
    assert_int_equal(smtp_bdat_parse("100", 3, &n, &last, &r), 0);
    assert_int_equal(n, 100);
    assert_int_equal(last, 0);
    assert_int_equal(smtp_bdat_parse("0 last", 6, &n, &last, &r), 0);
    assert_int_equal(n, 0);
    assert_int_equal(last, 1);
    assert_int_equal(smtp_bdat_parse("", 0, &n, &last, &r), -1);
    assert_int_equal(smtp_bdat_parse("10 LASTX", 8, &n, &last, &r), -1);
    assert_int_equal(smtp_bdat_parse("-1", 2, &n, &last, &r), -1);
    assert_int_equal(smtp_bdat_parse("1234567890123456789", 19, &n, &last, &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),       cmocka_unit_test(test_mail),
        cmocka_unit_test(test_mail_errors), cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_xtext),       cmocka_unit_test(test_helo_bdat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
