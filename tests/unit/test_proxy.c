/* Unit tests for the PROXY protocol v1/v2 header parser (src/daemon/proxy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "daemon/proxy.h"

static enum proxy_parse_result parse(const void *data, size_t len, size_t *used,
                                     struct sockaddr_storage *src, const char **why)
{
    socklen_t src_len = 0;
    return proxy_parse(data, len, used, src, &src_len, why);
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char h[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\nEHLO x\r\n";
    size_t used = 0;
    struct sockaddr_storage src;
    const char *why;
    assert_int_equal(parse(h, sizeof h - 1, &used, &src, &why), PROXY_PARSE_OK);
    assert_int_equal(used, strlen("PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n"));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&src;
    char text[32];
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    assert_string_equal(text, "192.0.2.7");
    assert_int_equal(ntohs(sin->sin_port), 40000);
}

static void test_v1_tcp6_unknown_and_partial(void **state)
{
    (void)state;
    size_t used = 0;
    struct sockaddr_storage src;
    const char *why;
    const char h6[] = "PROXY TCP6 2001:db8::1 ::1 1 25\r\n";
    assert_int_equal(parse(h6, sizeof h6 - 1, &used, &src, &why), PROXY_PARSE_OK);
    assert_int_equal(src.ss_family, AF_INET6);
    assert_int_equal(parse("PROXY UNKNOWN\r\n", 15, &used, &src, &why), PROXY_PARSE_LOCAL);
    assert_int_equal(used, 15);
    /* A beginning is "more", whichever version it may become. */
    assert_int_equal(parse("PRO", 3, &used, &src, &why), PROXY_PARSE_MORE);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4", 18, &used, &src, &why), PROXY_PARSE_MORE);
    assert_int_equal(parse("\r\n\r\n\0\r\n", 7, &used, &src, &why), PROXY_PARSE_MORE);
}

static void test_v1_malformed(void **state)
{
    (void)state;
    size_t used = 0;
    struct sockaddr_storage src;
    const char *why;
    static const char *bad[] = {
        "EHLO x\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], strlen(bad[i]), &used, &src, &why), PROXY_PARSE_BAD);
        assert_true(why[0] != '\0');
    }
    char longline[200];
    memset(longline, 'A', sizeof longline);
    memcpy(longline, "PROXY ", 6);
    assert_int_equal(parse(longline, sizeof longline, &used, &src, &why), PROXY_PARSE_BAD);
}

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t v2(unsigned char *out, unsigned char vercmd, unsigned char fam,
                 const unsigned char *body, size_t n)
{
    memcpy(out, sig, 12);
    out[12] = vercmd;
    out[13] = fam;
    out[14] = (unsigned char)(n >> 8);
    out[15] = (unsigned char)n;
    memcpy(out + 16, body, n);
    return 16 + n;
}

static void test_v2(void **state)
{
    (void)state;
    unsigned char buf[128], body[64] = {192,
                                        0,
                                        2,
                                        9,
                                        127,
                                        0,
                                        0,
                                        1,
                                        0x9c,
                                        0x40,
                                        0,
                                        25,
                                        /* a TLV after the addresses */ 0x04,
                                        0,
                                        1,
                                        'x'};
    size_t used = 0;
    struct sockaddr_storage src;
    const char *why;
    size_t n = v2(buf, 0x21, 0x11, body, 16);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_OK);
    assert_int_equal(used, n);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&src;
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0xC0000209);
    assert_int_equal(ntohs(sin->sin_port), 40000);
    /* Incomplete body: more. */
    assert_int_equal(parse(buf, n - 1, &used, &src, &why), PROXY_PARSE_MORE);
    /* LOCAL (health checks), and UNSPEC: the real peer. */
    n = v2(buf, 0x20, 0x00, body, 0);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_LOCAL);
    assert_int_equal(used, 16);
    n = v2(buf, 0x21, 0x00, body, 0);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_LOCAL);
    /* Bad version, bad command, addresses too short for the family. */
    n = v2(buf, 0x31, 0x11, body, 12);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_BAD);
    n = v2(buf, 0x22, 0x11, body, 12);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_BAD);
    n = v2(buf, 0x21, 0x21, body, 12);
    assert_int_equal(parse(buf, n, &used, &src, &why), PROXY_PARSE_BAD);
    /* A length beyond what is read. */
    buf[14] = 0xff;
    assert_int_equal(parse(buf, 16, &used, &src, &why), PROXY_PARSE_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6_unknown_and_partial),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
