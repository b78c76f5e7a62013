/* Unit tests for doctor's pure parts: public address selection, zone-file and JSON formatting,
 * host:port parsing, and the DKIM record line shared with dkim keygen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/doctor.h"
#include "lib/util.h"
#include "mailauth/dkim.h"

static void test_public_ranges(void **state)
{
    (void)state;
    static const char *const private[] = {
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.1.1",
        "192.0.2.10",
        "198.51.100.7",
        "203.0.113.9",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "192.0.0.8",
        "::1",
        "::",
        "fe80::1",
        "fd00::2",
        "fc00::1",
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "ff02::1",
        "3fff::1",
        "2001:2::1",
        "not an address",
        "",
    };
    for (size_t i = 0; i < sizeof(private) / sizeof(private[0]); i++)
        if (doctor_addr_is_public(private[i]))
            fail_msg("%s taken as public", private[i]);
    static const char *const public[] = {
        "8.8.8.8",  "172.32.0.1",  "100.128.0.1",          "192.0.3.1",
        "11.0.0.1", "2a01:4f8::1", "2001:4860:4860::8888", "203.0.114.1",
    };
    for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++)
        if (!doctor_addr_is_public(public[i]))
            fail_msg("%s taken as not public", public[i]);
    assert_false(doctor_addr_is_public(NULL));
}

static void test_pick_public(void **state)
{
    (void)state;
    char *a[] = {"127.0.0.1",  "fe80::1", "2a01:4f8::5", "10.0.0.2",
                 "100.70.0.1", "5.6.7.8", "9.9.9.9"};
    /* IPv4 first, in list order. */
    assert_string_equal(doctor_pick_public(a, 7), "5.6.7.8");
    /* Only IPv6 public: that one. */
    assert_string_equal(doctor_pick_public(a, 4), "2a01:4f8::5");
    /* Nothing public (a typical container or a host behind NAT). */
    char *b[] = {"127.0.0.1", "192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1", "172.17.0.2"};
    assert_null(doctor_pick_public(b, 5));
    assert_null(doctor_pick_public(NULL, 0));
}

static void test_txt_line(void **state)
{
    (void)state;
    struct buf out = BUF_INIT;
    doctor_txt_line("example.com", "v=spf1 mx -all", &out);
    assert_string_equal(buf_cstr(&out), "example.com. IN TXT \"v=spf1 mx -all\"");
    buf_reset(&out);
    doctor_txt_line("x.test", "say \"hi\" \\ there", &out);
    assert_string_equal(buf_cstr(&out), "x.test. IN TXT \"say \\\"hi\\\" \\\\ there\"");
    buf_reset(&out);
    doctor_txt_line("e.test", "", &out);
    assert_string_equal(buf_cstr(&out), "e.test. IN TXT \"\"");

    /* 600 octets: three strings of 255, 255 and 90, in parentheses. */
    char long_txt[601];
    for (int i = 0; i < 600; i++)
        long_txt[i] = (char)('a' + i % 26);
    long_txt[600] = '\0';
    buf_reset(&out);
    doctor_txt_line("l.test", long_txt, &out);
    const char *s = buf_cstr(&out);
    assert_true(strncmp(s, "l.test. IN TXT ( \"", 18) == 0);
    assert_true(strcmp(s + strlen(s) - 2, " )") == 0);
    struct buf joined = BUF_INIT;
    size_t nstr = 0;
    for (const char *p = strchr(s, '"'); p; p = strchr(p, '"')) {
        const char *end = strchr(p + 1, '"');
        assert_non_null(end);
        assert_true(end - p - 1 <= 255);
        buf_append(&joined, p + 1, (size_t)(end - p - 1));
        nstr++;
        p = end + 1;
    }
    assert_int_equal(nstr, 3);
    assert_string_equal(buf_cstr(&joined), long_txt);
    buf_free(&joined);
    buf_free(&out);
}

static void test_dkim_zone_line(void **state)
{
    (void)state;
    struct buf rec = BUF_INIT, out = BUF_INIT;
    buf_puts(&rec, "v=DKIM1; k=rsa; p=");
    for (int i = 0; i < 400; i++)
        buf_putc(&rec, (char)('A' + i % 26));
    dkim_key_record_zone("mail._domainkey.example.com", buf_cstr(&rec), &out);
    const char *s = buf_cstr(&out);
    const char *head = "mail._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; \" \"p=ABCDE";
    assert_true(strncmp(s, head, strlen(head)) == 0);
    /* p= and its 400 characters in one string of 255 and one of 147. */
    const char *second = strstr(s, "\"p=") + 1;
    const char *end = strchr(second, '"');
    assert_int_equal(end - second, 255);
    assert_int_equal(strchr(end + 3, '"') - (end + 3), 147);
    assert_string_equal(s + strlen(s) - 2, " )");
    buf_free(&rec);
    buf_free(&out);
}

static void test_json_string(void **state)
{
    (void)state;
    struct buf out = BUF_INIT;
    doctor_json_string("a\"b\\c\nd\te\x01", &out);
    assert_string_equal(buf_cstr(&out), "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
    buf_reset(&out);
    doctor_json_string(NULL, &out);
    assert_string_equal(buf_cstr(&out), "\"\"");
    buf_free(&out);
}

static void check_hp(const char *s, int rc, const char *host, int port, int br)
{
    struct buf h = BUF_INIT;
    int p = -1, b = -1;
    assert_int_equal(doctor_parse_hostport(s, 25, &h, &p, &b), rc);
    if (rc == 0) {
        assert_string_equal(buf_cstr(&h), host);
        assert_int_equal(p, port);
        assert_int_equal(b, br);
    }
    buf_free(&h);
}

static void test_hostport(void **state)
{
    (void)state;
    check_hp("in-v3.mailjet.com:587", 0, "in-v3.mailjet.com", 587, 0);
    check_hp("[smtp.example.net]:submission", 0, "smtp.example.net", 587, 1);
    check_hp("[smtp.example.net]", 0, "smtp.example.net", 25, 1);
    check_hp("mx.example.com", 0, "mx.example.com", 25, 0);
    check_hp("127.0.0.1:2525", 0, "127.0.0.1", 2525, 0);
    check_hp("[2001:db8::1]:587", 0, "2001:db8::1", 587, 1);
    check_hp("[ipv6:2001:db8::1]", 0, "2001:db8::1", 25, 1);
    check_hp("2001:db8::1", 0, "2001:db8::1", 25, 0);
    check_hp("host:0", -1, NULL, 0, 0);
    check_hp("host:99999", -1, NULL, 0, 0);
    check_hp("host:", -1, NULL, 0, 0);
    check_hp(":25", -1, NULL, 0, 0);
    check_hp("[]:25", -1, NULL, 0, 0);
    check_hp("[host]x", -1, NULL, 0, 0);
    check_hp("", -1, NULL, 0, 0);
}

static void test_status_words(void **state)
{
    (void)state;
    assert_string_equal(doctor_status_str(DOCTOR_OK), "ok");
    assert_string_equal(doctor_status_str(DOCTOR_WARN), "warn");
    assert_string_equal(doctor_status_str(DOCTOR_FAIL), "FAIL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_ranges), cmocka_unit_test(test_pick_public),
        cmocka_unit_test(test_txt_line),      cmocka_unit_test(test_dkim_zone_line),
        cmocka_unit_test(test_json_string),   cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_status_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
