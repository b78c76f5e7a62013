/*
 * Unit tests for the report destination parsers: DMARC rua= with "!" size
 * limits (src/mailauth/dmarc_report.c, RFC 7489 6.2) and the TLS-RPT
 * record (src/deliver/tlsrpt.c, RFC 8460 3), and the journal lines both
 * write and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/tlsrpt.h"
#include "lib/util.h"
#include "mailauth/dmarc_report.h"

static void test_dmarc_rua(void **state)
{
    (void)state;
    struct dmarc_rua *r;
    size_t n = dmarc_rua_parse("mailto:dmarc@example.org, mailto:big@Example.COM!10m,"
                               "https://x.example/r, mailto:k@example.net!5k,mailto:bad,"
                               "mailto:q@example.org?subject=x, mailto:z@example.org!7x",
                               &r);
    assert_int_equal(n, 4);
    assert_string_equal(r[0].addr, "dmarc@example.org");
    assert_int_equal(r[0].limit, 0);
    assert_string_equal(r[1].addr, "big@example.com");
    assert_int_equal(r[1].limit, 10ULL * 1024 * 1024);
    assert_string_equal(r[2].addr, "k@example.net");
    assert_int_equal(r[2].limit, 5 * 1024);
    assert_string_equal(r[3].addr, "q@example.org");
    dmarc_rua_free(r, n);
    assert_int_equal(dmarc_rua_parse("mailto:a@b.example!1", &r), 1);
    assert_int_equal(r[0].limit, 1);
    dmarc_rua_free(r, 1);
    /* A line break smuggled into the TXT record is not an address. */
    assert_int_equal(dmarc_rua_parse("mailto:a@b.example\r\nBcc: x@y", &r), 0);
    dmarc_rua_free(r, 0);
}

static void test_tlsrpt_rua(void **state)
{
    (void)state;
    char **to;
    size_t https;
    struct buf why = BUF_INIT;
    assert_int_equal(tlsrpt_rua_parse("v=TLSRPTv1; rua=mailto:tls@example.net,https://r.example/x",
                                      &to, &https, &why),
                     0);
    assert_string_equal(to[0], "tls@example.net");
    assert_null(to[1]);
    assert_int_equal(https, 1);
    strlist_free(to);
    assert_int_equal(tlsrpt_rua_parse("v=TLSRPTv1;rua=https://only.example", &to, &https, &why), 0);
    assert_null(to[0]);
    strlist_free(to);
    buf_reset(&why);
    assert_int_equal(tlsrpt_rua_parse("v=TLSRPTv1; rua=ftp://x", &to, &https, &why), -1);
    strlist_free(to);
    buf_reset(&why);
    assert_int_equal(tlsrpt_rua_parse("v=TLSRPTv1", &to, &https, &why), -1);
    assert_string_equal(buf_cstr(&why), "has no rua=");
    strlist_free(to);
    buf_reset(&why);
    assert_int_equal(tlsrpt_rua_parse("v=TLSRPTv10; rua=mailto:a@b.example", &to, &https, &why),
                     -1);
    strlist_free(to);
    buf_free(&why);
}

static void test_lines(void **state)
{
    (void)state;
    char t[] = "T1\t2026-12-06\texample.net\tsts\tsuccess\tmx.example.net\t192.0.2.1\tenforce\t"
               "86400\tmx.example.net *.example.org";
    struct tlsrpt_line l;
    assert_int_equal(tlsrpt_line_parse(t, &l), 0);
    assert_string_equal(l.domain, "example.net");
    assert_string_equal(l.mx, "mx.example.net *.example.org");
    char bad[] = "T1\t2026-12-06\t../x\tsts";
    assert_int_equal(tlsrpt_line_parse(bad, &l), -1);
    char d[] = "D1\texample.org\t192.0.2.1\tnone\tpass\tfail\texample.org\texample.org:pass\t"
               "example.org:fail\tr\tr\treject\treject\t100\tmailto:d@example.org";
    struct dmarc_report_line m;
    assert_int_equal(dmarc_report_line_parse(d, &m), 0);
    assert_string_equal(m.ip, "192.0.2.1");
    assert_string_equal(m.rua, "mailto:d@example.org");
    char short_line[] = "D1\texample.org\t192.0.2.1";
    assert_int_equal(dmarc_report_line_parse(short_line, &m), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dmarc_rua),
        cmocka_unit_test(test_tlsrpt_rua),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
