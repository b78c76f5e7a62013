/*
 * Helpers shared by the unit tests (tests/unit/testutil.c): a private
 * temporary directory, its removal without a shell, and a file count. Each
 * asserts through cmocka, so a test fails at the line that went wrong.
 */
#ifndef HONGYAN_TESTS_TESTUTIL_H
#define HONGYAN_TESTS_TESTUTIL_H

/* A new directory /tmp/NAME.XXXXXX, mode 0700; the caller frees the string. */
char *test_tmpdir(const char *name);

/* Removes path and everything below it (never following symbolic links). */
void test_rm_rf(const char *path);

/* The entries of dir whose names do not start with '.'; -1 when it cannot be opened. */
int test_count_files(const char *dir);

#endif
