/*
 * Unit tests for the mail log's time format (src/lib/log.c): delay= and
 * delays= written as Postfix writes them (format_tv with two significant
 * digits and delay_logging_resolution_limit = 2), so that a log reader sees
 * the same text from either server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/log.h"

static void delay_is(long long usec, const char *want)
{
    struct buf b = BUF_INIT;
    log_format_delay(&b, usec);
    assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

static void test_below_a_second(void **state)
{
    (void)state;
    delay_is(0, "0");
    delay_is(4999, "0"); /* below the resolution */
    delay_is(5000, "0.01");
    delay_is(40000, "0.04");
    delay_is(100000, "0.1"); /* no trailing zero */
    delay_is(260000, "0.26");
    delay_is(994999, "0.99");
    delay_is(995000, "1"); /* rounds into the next second */
}

static void test_seconds(void **state)
{
    (void)state;
    delay_is(1000000, "1");
    delay_is(2130000, "2.1"); /* two significant digits */
    delay_is(2150000, "2.2");
    delay_is(9940000, "9.9");
    delay_is(9960000, "10"); /* rounds into the next decade: whole seconds */
    delay_is(10400000, "10");
    delay_is(37500000, "38");
    delay_is(3603520000LL, "3604");
}

static void test_resolution_limit(void **state)
{
    (void)state;
    /* delay_logging_resolution_limit: finer steps below 0.1 s, still two significant digits. */
    log_set_delay_resolution(3);
    delay_is(123456, "0.12");
    delay_is(12345, "0.012");
    delay_is(1234, "0.001");
    delay_is(400, "0");
    log_set_delay_resolution(6);
    delay_is(123, "0.00012");
    delay_is(7, "0.000007");
    log_set_delay_resolution(0); /* whole seconds */
    delay_is(400000, "0");
    delay_is(600000, "1");
    delay_is(2130000, "2");
    log_set_delay_resolution(9); /* clamped to 6 */
    delay_is(7, "0.000007");
    log_set_delay_resolution(2);
}

static void test_negative_is_zero(void **state)
{
    (void)state;
    /* A clock step back between two stamps must not print a minus sign. */
    delay_is(-1, "0");
    delay_is(-2000000, "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_below_a_second),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_resolution_limit),
        cmocka_unit_test(test_negative_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
