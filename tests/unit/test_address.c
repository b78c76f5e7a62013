/* Unit tests for RFC 5321 path parsing (src/smtp/address.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/address.h"

static int parse(const char *s, unsigned opts, struct smtp_path *p, struct smtp_reply *r)
{
    size_t end = 0;
    int rc = smtp_path_parse(s, strlen(s), opts, p, &end, r);
    if (rc == 0)
        assert_int_equal(end, strlen(s));
    return rc;
}

static void ok(const char *in, unsigned opts, const char *want, unsigned flags)
{
    struct smtp_path p;
    struct smtp_reply r = {0};
    if (parse(in, opts, &p, &r) != 0)
        fail_msg("%s: %d %s %s", in, r.code, r.status, r.text);
    assert_string_equal(p.addr, want);
    assert_int_equal(p.len, strlen(want));
    assert_int_equal(p.flags, flags);
}

static void bad(const char *in, unsigned opts, int code, const char *status)
{
    struct smtp_path p;
    struct smtp_reply r = {0};
    if (parse(in, opts, &p, &r) == 0)
        fail_msg("%s: accepted as %s", in, p.addr);
    assert_int_equal(r.code, code);
    assert_string_equal(r.status, status);
}

static void test_simple(void **state)
{
    ok("<user@example.com>", 0, "user@example.com", 0);
    ok("<User.Name+tag@Example.COM>", 0, "User.Name+tag@example.com", 0);
    ok("<a!#$%&'*+-/=?^_`{|}~@x.example>", 0, "a!#$%&'*+-/=?^_`{|}~@x.example", 0);
    ok("<u@a-b.c-d.example>", 0, "u@a-b.c-d.example", 0);
    struct smtp_path p;
    struct smtp_reply r;
    assert_int_equal(parse("<ab@cd.example>", 0, &p, &r), 0);
    assert_int_equal(p.at, 2);
}

static void test_null_and_postmaster(void **state)
{
    ok("<>", SMTP_ADDR_ALLOW_NULL, "", SMTP_ADDR_NULL);
    bad("<>", 0, 501, "5.1.3");
    ok("<Postmaster>", SMTP_ADDR_ALLOW_POSTMASTER, "Postmaster", SMTP_ADDR_NO_DOMAIN);
    bad("<Postmaster>", 0, 501, "5.1.3");
    bad("<root>", SMTP_ADDR_ALLOW_POSTMASTER, 501, "5.1.3");
    /* Submission: any local part alone, completed by the server (RFC 6409 8.1). */
    ok("<root>", SMTP_ADDR_ALLOW_UNQUALIFIED, "root", SMTP_ADDR_NO_DOMAIN);
    ok("<root@b.example>", SMTP_ADDR_ALLOW_UNQUALIFIED, "root@b.example", 0);
    bad("<root@>", SMTP_ADDR_ALLOW_UNQUALIFIED, 501, "5.1.3");
}

static void test_trailing_params(void **state)
{
    const char *s = "<a@b.example> SIZE=10";
    struct smtp_path p;
    struct smtp_reply r;
    size_t end;
    assert_int_equal(smtp_path_parse(s, strlen(s), 0, &p, &end, &r), 0);
    assert_int_equal(end, 13);
}

static void test_source_route(void **state)
{
    ok("<@a.example,@b.example:user@d.example>", 0, "user@d.example", SMTP_ADDR_ROUTE);
    ok("<@a.example:user@d.example>", 0, "user@d.example", SMTP_ADDR_ROUTE);
    ok("<@[192.0.2.1]:user@d.example>", 0, "user@d.example", SMTP_ADDR_ROUTE);
    bad("<@a.example,user@d.example>", 0, 501, "5.1.3");
    bad("<@a.example user@d.example>", 0, 501, "5.1.3");
    bad("<@:user@d.example>", 0, 501, "5.1.3");
}

static void test_quoted(void **state)
{
    /* A quoted Dot-string loses its quotes. */
    ok("<\"user\"@example.com>", 0, "user@example.com", 0);
    ok("<\"a.b\"@example.com>", 0, "a.b@example.com", 0);
    ok("<\"john doe\"@example.com>", 0, "\"john doe\"@example.com", SMTP_ADDR_QUOTED);
    ok("<\"a\\\"b\"@example.com>", 0, "\"a\\\"b\"@example.com", SMTP_ADDR_QUOTED);
    ok("<\"a\\xb\"@example.com>", 0, "axb@example.com", 0); /* needless escape */
    ok("<\"a..b\"@example.com>", 0, "\"a..b\"@example.com", SMTP_ADDR_QUOTED);
    ok("<\"\"@example.com>", 0, "\"\"@example.com", SMTP_ADDR_QUOTED);
    ok("<\"a@b\"@example.com>", 0, "\"a@b\"@example.com", SMTP_ADDR_QUOTED);
    bad("<\"unterminated@example.com>", 0, 501, "5.1.3");
    bad("<\"a\tb\"@example.com>", 0, 501, "5.1.3");
    bad("<\"a\\\"@example.com>", 0, 501, "5.1.3");
}

static void test_bad_syntax(void **state)
{
    bad("user@example.com", 0, 501, "5.5.4");
    bad("", 0, 501, "5.5.4");
    bad("<user@example.com", 0, 501, "5.1.3");
    bad("<user>", 0, 501, "5.1.3");
    bad("<@example.com>", 0, 501, "5.1.3");
    bad("<user@>", 0, 501, "5.1.3");
    bad("<.user@example.com>", 0, 501, "5.1.3");
    bad("<user.@example.com>", 0, 501, "5.1.3");
    bad("<us..er@example.com>", 0, 501, "5.1.3");
    bad("<us er@example.com>", 0, 501, "5.1.3");
    bad("<user@-example.com>", 0, 501, "5.1.3");
    bad("<user@example-.com>", 0, 501, "5.1.3");
    bad("<user@example..com>", 0, 501, "5.1.3");
    bad("<user@example.com.>", 0, 501, "5.1.3");
    bad("<user@exa_mple.com>", 0, 501, "5.1.3");
}

static void test_literals(void **state)
{
    ok("<u@[192.0.2.1]>", 0, "u@[192.0.2.1]", SMTP_ADDR_LITERAL);
    ok("<u@[IPv6:2001:db8::1]>", 0, "u@[IPv6:2001:db8::1]", SMTP_ADDR_LITERAL);
    ok("<u@[ipv6:::1]>", 0, "u@[ipv6:::1]", SMTP_ADDR_LITERAL);
    ok("<u@[x-tag:abc]>", 0, "u@[x-tag:abc]", SMTP_ADDR_LITERAL);
    bad("<u@[192.0.2.256]>", 0, 501, "5.1.3");
    bad("<u@[IPv6:2001:db8::g]>", 0, 501, "5.1.3");
    bad("<u@[]>", 0, 501, "5.1.3");
    bad("<u@[192.0.2.1>", 0, 501, "5.1.3");
    bad("<u@[1.2.3.4]x>", 0, 501, "5.1.3");
}

static void test_utf8(void **state)
{
    const char *in = "<j\xc3\xb6rg@b\xc3\xbc"
                     "cher.example>";
    bad(in, 0, 553, "5.6.7");
    ok(in, SMTP_ADDR_ALLOW_UTF8,
       "j\xc3\xb6rg@b\xc3\xbc"
       "cher.example",
       SMTP_ADDR_UTF8);
    ok("<\"\xe2\x82\xac x\"@example.com>", SMTP_ADDR_ALLOW_UTF8, "\"\xe2\x82\xac x\"@example.com",
       SMTP_ADDR_UTF8 | SMTP_ADDR_QUOTED);
    /* Malformed UTF-8 is never accepted: overlong, surrogate, truncated, stray continuation. */
    bad("<\xc0\xafx@example.com>", SMTP_ADDR_ALLOW_UTF8, 501, "5.1.3");
    bad("<\xed\xa0\x80x@example.com>", SMTP_ADDR_ALLOW_UTF8, 501, "5.1.3");
    bad("<\xe2\x82@example.com>", SMTP_ADDR_ALLOW_UTF8, 501, "5.1.3");
    bad("<\x80@example.com>", SMTP_ADDR_ALLOW_UTF8, 501, "5.1.3");
    bad("<\xf5\x80\x80\x80@example.com>", SMTP_ADDR_ALLOW_UTF8, 501, "5.1.3");
    assert_int_equal(smtp_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(smtp_utf8_seq((const unsigned char *)"\xf0\x9f\x98", 3), 0);
}

static void test_limits(void **state)
{
    char in[700], want[600];
    /* local part: 64 accepted, 65 refused */
    memset(want, 'a', 64);
    snprintf(want + 64, sizeof want - 64, "@example.com");
    snprintf(in, sizeof in, "<%s>", want);
    ok(in, 0, want, 0);
    memset(want, 'a', 65);
    snprintf(want + 65, sizeof want - 65, "@example.com");
    snprintf(in, sizeof in, "<%s>", want);
    bad(in, 0, 501, "5.1.3");
    /* label over 63 octets */
    char label[70];
    memset(label, 'b', 64);
    label[64] = '\0';
    snprintf(in, sizeof in, "<u@%s.example>", label);
    bad(in, 0, 501, "5.1.3");
    /* path: exactly 256 octets with brackets is fine, 257 is not */
    size_t pos = 0;
    pos += (size_t)snprintf(in, sizeof in, "<u@");
    while (pos < 256 - 1 - 4) {
        size_t k = 256 - 1 - 4 - pos;
        if (k > 60)
            k = 60;
        if (k < 2) /* keep labels non-empty */
            break;
        memset(in + pos, 'c', k - 1);
        pos += k - 1;
        in[pos++] = '.';
    }
    while (pos < 256 - 4)
        in[pos++] = 'd';
    memcpy(in + pos, "com>", 5);
    assert_int_equal(strlen(in), 256);
    struct smtp_path p;
    struct smtp_reply r;
    /* 256-octet path but a 251-octet domain: accepted */
    assert_int_equal(parse(in, 0, &p, &r), 0);
    memmove(in + 2, in + 1, strlen(in) + 1 - 1);
    in[1] = 'v';
    assert_int_equal(strlen(in), 257);
    bad(in, 0, 501, "5.1.3");
}

static void test_mailbox_and_domain(void **state)
{
    struct smtp_path p;
    struct smtp_reply r;
    assert_int_equal(smtp_mailbox_parse("a@B.example", 11, 0, &p, &r), 0);
    assert_string_equal(p.addr, "a@b.example");
    assert_int_equal(smtp_mailbox_parse("a@b.example x", 13, 0, &p, &r), -1);
    assert_int_equal(smtp_mailbox_parse("<a@b.example>", 13, 0, &p, &r), -1);
    assert_true(smtp_domain_valid("mail.example.com", 16, 0));
    assert_true(smtp_domain_valid("[127.0.0.1]", 11, 0));
    assert_false(smtp_domain_valid("mail example", 12, 0));
    assert_false(smtp_domain_valid("", 0, 0));
}

/* Postfix's printable(): what is not text becomes '?', well-formed UTF-8 stays. */
static void test_printable(void **state)
{
    (void)state;
    char helo[] = "\xff\xfe.example";
    assert_string_equal(smtp_printable(helo, '?'), "??.example");
    char utf8[] = "m\xc3\xa4il.\xe4\xbe\x8b\xe5\xad\x90.example";
    assert_string_equal(smtp_printable(utf8, '?'), "m\xc3\xa4il.\xe4\xbe\x8b\xe5\xad\x90.example");
    char mixed[] = "a\x01"
                   "b\x7f\xc0\xaf"
                   "c\xed\xa0\x80\xe4\xbe";
    /* a control, DEL, an overlong '/', a surrogate, a sequence cut short */
    assert_string_equal(smtp_printable(mixed, '?'), "a?b???c?????");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),          cmocka_unit_test(test_null_and_postmaster),
        cmocka_unit_test(test_trailing_params), cmocka_unit_test(test_source_route),
        cmocka_unit_test(test_quoted),          cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_literals),        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_mailbox_and_domain),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
