/*
 * Unit tests for the held-message budget (src/smtpd/hold.c): messages stay
 * in memory within the worker-wide budget and go to an unlinked file past
 * it, with the same bytes either way and the budget given back on release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpd/hold.h"

static char dir[] = "/tmp/hongyan-test-hold-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir); /* fails if a spill file was left behind */
}

static size_t entries(void)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (i * 7 + seed) % 26);
}

static void test_budget_then_spill(void **state)
{
    (void)state;
    struct smtpd_hold_budget budget = {.limit = 100 * 1024};
    struct smtpd_hold a, b;
    smtpd_hold_init(&a, &budget, dir);
    smtpd_hold_init(&b, &budget, dir);
    size_t n = 50 * 1024;
    char *data = malloc(n);
    fill(data, n, 1);
    /* In pieces, as the DATA reader hands them over. */
    for (size_t off = 0; off < n; off += 1000)
        assert_int_equal(smtpd_hold_append(&a, data + off, n - off < 1000 ? n - off : 1000), 0);
    assert_false(smtpd_hold_spilled(&a));
    assert_true(budget.used >= n && budget.used <= budget.limit);
    size_t used_by_a = budget.used;

    /* The second message does not fit beside the first: it goes to a file. */
    for (size_t off = 0; off < n; off += 1000)
        assert_int_equal(smtpd_hold_append(&b, data + off, n - off < 1000 ? n - off : 1000), 0);
    assert_true(smtpd_hold_spilled(&b));
    assert_int_equal(budget.used, used_by_a);
    assert_int_equal(entries(), 0); /* unlinked from the start */

    const char *view;
    size_t len;
    assert_int_equal(smtpd_hold_view(&a, &view, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(view, data, n);
    assert_int_equal(smtpd_hold_view(&b, &view, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(view, data, n);

    smtpd_hold_release(&a);
    assert_int_equal(budget.used, 0);
    smtpd_hold_release(&b);
    smtpd_hold_release(&b); /* twice is harmless */
    assert_int_equal(budget.used, 0);

    /* With the budget free again, a message stays in memory. */
    smtpd_hold_init(&a, &budget, dir);
    assert_int_equal(smtpd_hold_append(&a, data, n), 0);
    assert_false(smtpd_hold_spilled(&a));
    smtpd_hold_release(&a);
    free(data);
}

static void test_large_and_empty(void **state)
{
    (void)state;
    struct smtpd_hold_budget budget = {.limit = 64 * 1024};
    struct smtpd_hold h;
    smtpd_hold_init(&h, &budget, dir);
    const char *view;
    size_t len;
    /* Nothing appended: an empty view, nothing charged. */
    assert_int_equal(smtpd_hold_view(&h, &view, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(budget.used, 0);
    /* One piece larger than the whole budget spills at once; pieces after it too. */
    size_t n = 300 * 1024;
    char *data = malloc(n);
    fill(data, n, 3);
    assert_int_equal(smtpd_hold_append(&h, data, 10), 0);
    assert_int_equal(smtpd_hold_append(&h, data + 10, n - 20), 0);
    assert_true(smtpd_hold_spilled(&h));
    assert_int_equal(smtpd_hold_append(&h, data + n - 10, 10), 0);
    assert_int_equal(budget.used, 0);
    assert_int_equal(smtpd_hold_view(&h, &view, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(view, data, n);
    smtpd_hold_release(&h);
    free(data);

    /* No budget at all (limit 0): every message goes to a file. */
    budget.limit = 0;
    smtpd_hold_init(&h, &budget, dir);
    assert_int_equal(smtpd_hold_append(&h, "x", 1), 0);
    assert_true(smtpd_hold_spilled(&h));
    smtpd_hold_release(&h);

    /* A spill directory that does not exist: an error, not a crash. */
    smtpd_hold_init(&h, &budget, "/nonexistent/hongyan");
    assert_int_equal(smtpd_hold_append(&h, "x", 1), -1);
    smtpd_hold_release(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_then_spill),
        cmocka_unit_test(test_large_and_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
