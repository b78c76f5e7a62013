/*
 * Helpers shared by the unit tests (tests/unit/testutil.c): a private
 * temporary directory, its removal without a shell, a file count, a
 * configuration from text and a socket address from an IP literal. Each
 * asserts through cmocka, so a test fails at the line that went wrong.
 */
#ifndef HONGYAN_TESTS_TESTUTIL_H
#define HONGYAN_TESTS_TESTUTIL_H

#include <sys/socket.h>
#include <sys/types.h>

struct config;
struct spool_data;
struct spool;
struct spool_msg;

/* A new directory /tmp/NAME.XXXXXX, mode 0700; the caller frees the string. */
char *test_tmpdir(const char *name);

/* Removes path and everything below it (never following symbolic links). */
void test_rm_rf(const char *path);

/* The entries of dir whose names do not start with '.'; -1 when it cannot be opened. */
int test_count_files(const char *dir);

/* main.cf text loaded as a configuration (config_free() it); fails the test when it does not load.
 */
struct config *test_config(const char *text);

/* The socket address of an IPv4 or IPv6 literal, port 0; fails the test when it is not one. */
struct sockaddr_storage test_sockaddr(const char *ip);

/*
 * Bytes [offset, offset + length) of the file at path as a message's data
 * (length -1: to its end), as a spool would hand it to an agent; the test
 * closes it with spool_data_close(). Fails the test when it cannot open it.
 */
void test_data_range(const char *path, off_t offset, off_t length, struct spool_data *d);

/* A new message on s from sender@example.com to rcpt, nothing written yet. */
struct spool_msg *test_spool_msg(struct spool *s, const char *rcpt);

#endif
