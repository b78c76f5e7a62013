/*
 * Unit tests for the mail log (src/lib/log.c): its time format, delay= and
 * delays= written as Postfix writes them (format_tv with two significant
 * digits and delay_logging_resolution_limit = 2), so that a log reader sees
 * the same text from either server; and a loop thread's batched lines,
 * which must reach the file whole, once, and in the order logged.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The messages of the file's lines, in order, joined by '|'. */
static const char *log_messages(int fd)
{
    static struct buf out = BUF_INIT;
    char text[8192];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    assert_true(n >= 0);
    text[n] = '\0';
    out.len = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *msg = strstr(line, "]: ");
        assert_non_null(msg);
        if (out.len > 0)
            buf_puts(&out, "|");
        buf_puts(&out, msg + 3);
    }
    return buf_cstr(&out);
}

static void *log_from_another_thread(void *arg)
{
    log_info("%s", (const char *)arg);
    return NULL;
}

static void test_batched_lines_whole_once_in_order(void **state)
{
    (void)state;
    char path[] = "/tmp/hongyan-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    log_set_stderr(0);
    log_adopt_fd(fd);
    log_batch_thread();

    log_info("a");
    log_info("b");
    assert_string_equal(log_messages(fd), ""); /* until the loop's iteration ends */
    log_flush();
    assert_string_equal(log_messages(fd), "a|b");

    /* A warning writes out what waits, then itself. */
    log_info("c");
    log_warning("w");
    assert_string_equal(log_messages(fd), "a|b|c|warning: w");

    /* So does another thread's line. */
    log_info("d");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, log_from_another_thread, "e"), 0);
    pthread_join(t, NULL);
    assert_string_equal(log_messages(fd), "a|b|c|warning: w|d|e");

    /* A child that exits (atexit) must not write the parent's waiting lines again. */
    log_info("f");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exit(0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    log_flush();
    assert_string_equal(log_messages(fd), "a|b|c|warning: w|d|e|f");

    /* Control bytes from remote text cannot split a line. */
    log_info("g\nh");
    log_flush();
    assert_string_equal(log_messages(fd), "a|b|c|warning: w|d|e|f|g?h");
    log_adopt_fd(-1); /* closes fd */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_below_a_second),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_resolution_limit),
        cmocka_unit_test(test_negative_is_zero),
        cmocka_unit_test(test_batched_lines_whole_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
