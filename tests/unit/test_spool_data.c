/*
 * A queued message's data as a byte range (src/queue/spool_data.c): the
 * helpers on a file that holds other bytes before and after the message,
 * as a spool of shared segment files will hand it out, the Maildir agent
 * copying only that range, and spool_data_open() on today's layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/maildir.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "testutil.h"

static const char *before = "OTHER MESSAGE BEFORE\r\n";
static const char *message = "Subject: range\r\n\r\nonly this\r\n.leading dot\r\n";
static const char *after = "OTHER MESSAGE AFTER\r\n";

/* root/segment: before, message, after; *d is the message's range of it. */
static void segment(const char *root, struct spool_data *d)
{
    char path[512];
    struct buf all = BUF_INIT;
    buf_printf(&all, "%s%s%s", before, message, after);
    snprintf(path, sizeof path, "%s/segment", root);
    assert_int_equal(write_file_atomic(path, all.data, all.len, 0600), 0);
    buf_free(&all);
    test_data_range(path, (off_t)strlen(before), (off_t)strlen(message), d);
}

static void test_pread_and_read(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_spool_data");
    struct spool_data d;
    segment(root, &d);
    char b[256];
    /* From the range's start, never past its end, however much is asked for. */
    ssize_t n = spool_data_pread(&d, 0, b, sizeof b);
    assert_int_equal(n, strlen(message));
    assert_memory_equal(b, message, strlen(message));
    n = spool_data_pread(&d, 9, b, 5);
    assert_int_equal(n, 5);
    assert_memory_equal(b, message + 9, 5);
    assert_int_equal(spool_data_pread(&d, d.length, b, sizeof b), 0);
    assert_int_equal(spool_data_pread(&d, d.length + 1, b, sizeof b), -1);
    assert_int_equal(errno, EINVAL);

    struct buf got = BUF_INIT;
    assert_int_equal(spool_data_read(&d, &got, 1000), 0);
    assert_string_equal(buf_cstr(&got), message);
    /* Longer than max: refused before reading anything. */
    buf_reset(&got);
    assert_int_equal(spool_data_read(&d, &got, strlen(message) - 1), -1);
    assert_int_equal(errno, EFBIG);
    assert_int_equal(got.len, 0);

    /* A range the file does not hold (cut short): an error, not a short message. */
    struct spool_data cut = d;
    cut.length += (off_t)strlen(after) + 10;
    buf_reset(&got);
    assert_int_equal(spool_data_read(&cut, &got, 1000), -1);
    assert_int_equal(errno, EIO);
    assert_int_equal(spool_data_pread(&cut, d.length + (off_t)strlen(after), b, sizeof b), -1);
    assert_int_equal(errno, EIO);

    /* The copy lands at the output's position, after what was written there. */
    char out_path[512];
    snprintf(out_path, sizeof out_path, "%s/out", root);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(out >= 0);
    assert_int_equal(write_all(out, "HDR\r\n", 5), 0);
    assert_int_equal(spool_data_copy(&d, out), 0);
    assert_int_equal(spool_data_copy(&cut, out), -1);
    close(out);
    buf_reset(&got);
    assert_int_equal(read_file(out_path, &got, 1000), 0);
    assert_int_equal(strncmp(buf_cstr(&got), "HDR\r\n", 5), 0);
    assert_int_equal(strncmp(buf_cstr(&got) + 5, message, strlen(message)), 0);

    buf_free(&got);
    spool_data_close(&d);
    assert_int_equal(d.fd, -1);
    spool_data_close(&d); /* closing twice does nothing */
    test_rm_rf(root);
    free(root);
}

/* Maildir delivery writes the headers it adds and the range: nothing before it, nothing after. */
static void test_maildir_range(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_spool_data");
    struct spool_data d;
    segment(root, &d);
    char mbox[512], dsn[16];
    snprintf(mbox, sizeof mbox, "%s/box/", root);
    struct buf reason = BUF_INIT, path = BUF_INIT, got = BUF_INIT;
    assert_int_equal(
        maildir_deliver(mbox, &d, "a@example.org", "b@example.com", NULL, dsn, &reason, &path),
        DELIVERY_OK);
    assert_int_equal(read_file(buf_cstr(&path), &got, 100000), 0);
    struct buf want = BUF_INIT;
    buf_printf(&want, "Return-Path: <a@example.org>\r\nDelivered-To: b@example.com\r\n%s", message);
    assert_string_equal(buf_cstr(&got), buf_cstr(&want));
    char size[32];
    snprintf(size, sizeof size, ",S=%zu", want.len);
    assert_non_null(strstr(buf_cstr(&path), size));
    buf_free(&want);
    buf_free(&got);
    buf_free(&path);
    buf_free(&reason);
    spool_data_close(&d);
    test_rm_rf(root);
    free(root);
}

/* On today's layout: the whole data file, from active/ or hold/, and only a regular file. */
static void test_open_queued(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_spool_data");
    struct buf err = BUF_INIT, got = BUF_INIT, path = BUF_INIT;
    struct spool *s = spool_open(root, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct spool_msg *m = spool_msg_new(s, &err);
    assert_non_null(m);
    envelope_add_rcpt(spool_msg_envelope(m), "b@example.com");
    assert_int_equal(spool_msg_write(m, message, strlen(message)), 0);
    /* Before the commit: what was written so far. */
    struct spool_data d;
    assert_int_equal(spool_msg_data_open(m, &d), 0);
    assert_int_equal(d.offset, 0);
    assert_int_equal(d.length, strlen(message));
    spool_data_close(&d);
    char id[QUEUE_ID_MAX];
    snprintf(id, sizeof id, "%s", spool_msg_id(m));
    assert_int_equal(spool_msg_commit_sync(m, &err), 0);

    assert_int_equal(spool_data_open(s, id, SPOOL_ACTIVE, &d, &err), 0);
    assert_int_equal(d.offset, 0);
    assert_int_equal(d.length, strlen(message));
    assert_int_equal(spool_data_read(&d, &got, 1000), 0);
    assert_string_equal(buf_cstr(&got), message);
    spool_data_close(&d);
    unsigned long long size = 0;
    assert_int_equal(spool_data_size(s, id, SPOOL_ACTIVE, &size), 0);
    assert_int_equal(size, strlen(message));

    /* Not there, or not a queue id: ENOENT, and the error names what failed. */
    assert_int_equal(spool_data_open(s, id, SPOOL_HOLD, &d, &err), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(d.fd, -1);
    assert_non_null(strstr(buf_cstr(&err), id));
    assert_int_equal(spool_data_size(s, id, SPOOL_HOLD, &size), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(spool_data_open(s, "../active/x", SPOOL_ACTIVE, &d, NULL), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(spool_hold(s, id), 0);
    assert_int_equal(spool_data_open(s, id, SPOOL_HOLD, &d, NULL), 0);
    spool_data_close(&d);

    /* A symbolic link or a FIFO in the data file's place is refused (and does not hang). */
    spool_data_path(s, id, SPOOL_HOLD, &path);
    assert_int_equal(unlink(buf_cstr(&path)), 0);
    assert_int_equal(symlink("/etc/passwd", buf_cstr(&path)), 0);
    assert_int_equal(spool_data_open(s, id, SPOOL_HOLD, &d, NULL), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(spool_data_size(s, id, SPOOL_HOLD, &size), -1);
    assert_int_equal(unlink(buf_cstr(&path)), 0);
    assert_int_equal(mkfifo(buf_cstr(&path), 0600), 0);
    assert_int_equal(spool_data_open(s, id, SPOOL_HOLD, &d, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(d.fd, -1);

    buf_free(&path);
    buf_free(&got);
    buf_free(&err);
    spool_free(s);
    test_rm_rf(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pread_and_read),
        cmocka_unit_test(test_maildir_range),
        cmocka_unit_test(test_open_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
