/*
 * Unit tests for the From: field parser (src/smtp/msghdr_from.c) that DMARC
 * (author domains) and DKIM signing (the signing domain) share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "smtp/msghdr_from.h"

static void test_from_domain(void **state)
{
    static const char *good[][2] = {
        {"From: a@Example.COM\r\n\r\nbody", "example.com"},
        {"Subject: x\r\nfrom:   \"Doe, John\" <john@example.com>\r\n\r\n", "example.com"},
        {"From: John (the @ man) <john@example.com> (work)\r\n\r\n", "example.com"},
        {"From: a@example.com, b@EXAMPLE.com\r\n\r\n", "example.com"},
        {"From: John\r\n <john@mail.example.org>\r\nTo: x@y.z\r\n\r\n", "mail.example.org"},
        {"From: \"x@evil.test\" <a@example.com>\n\n", "example.com"},
        {"From: a@example.com", "example.com"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct buf why = BUF_INIT;
        char *d = msghdr_from_domain(good[i][0], strlen(good[i][0]), &why);
        if (!d || strcmp(d, good[i][1]) != 0)
            fail_msg("case %zu: got %s (%s)", i, d ? d : "NULL", buf_cstr(&why));
        free(d);
        buf_free(&why);
    }
    static const char *bad[] = {
        "To: a@example.com\r\n\r\nFrom: b@example.com\r\n",
        "From: a@example.com\r\nFrom: b@example.com\r\n\r\n",
        "From: a@example.com, b@example.net\r\n\r\n",
        "From: undisclosed\r\n\r\n",
        "From: a@[192.0.2.1]\r\n\r\n",
        "From: <a@exa..mple.com>\r\n\r\n",
        "From: <a@example.com\r\n\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf why = BUF_INIT;
        char *d = msghdr_from_domain(bad[i], strlen(bad[i]), &why);
        if (d)
            fail_msg("bad case %zu: got %s", i, d);
        assert_true(why.len > 0);
        buf_free(&why);
    }
}

static void test_from_domains_list(void **state)
{
    (void)state;
    struct buf why = BUF_INIT;
    size_t n = 0;
    static const char msg[] = "From: a@B.example, \"x, y\" <c@d.example.>, e@b.example\r\n\r\n";
    char **d = msghdr_from_domains(msg, strlen(msg), &n, &why);
    assert_non_null(d);
    assert_int_equal(n, 2); /* each domain once, in field order, no trailing dot */
    assert_string_equal(d[0], "b.example");
    assert_string_equal(d[1], "d.example");
    for (size_t i = 0; i < n; i++)
        free(d[i]);
    free(d);

    /* More domains than MSGHDR_FROM_MAX_DOMAINS: the first ones are kept. */
    struct buf many = BUF_INIT;
    buf_puts(&many, "From: ");
    for (int i = 0; i < MSGHDR_FROM_MAX_DOMAINS + 3; i++)
        buf_printf(&many, "%sm@d%d.example", i ? ", " : "", i);
    buf_puts(&many, "\r\n\r\n");
    d = msghdr_from_domains(many.data, many.len, &n, &why);
    assert_non_null(d);
    assert_int_equal(n, MSGHDR_FROM_MAX_DOMAINS);
    assert_string_equal(d[0], "d0.example");
    for (size_t i = 0; i < n; i++)
        free(d[i]);
    free(d);
    buf_free(&many);

    /* A NUL inside the domain: no domain (a copy cut at the NUL would name another). */
    static const char nul[] = "From: a@example\0\0.com\r\n\r\n";
    assert_null(msghdr_from_domains(nul, sizeof nul - 1, &n, &why));
    assert_int_equal(n, 0);

    /* A From: after the header block is body text, not a field. */
    static const char late[] = "Subject: x\r\n\r\nFrom: a@example.com\r\n";
    assert_null(msghdr_from_domains(late, strlen(late), &n, &why));
    assert_int_equal(n, 0);
    buf_free(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_domain),
        cmocka_unit_test(test_from_domains_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
