/*
 * spool_msg_read and spool_msg_prepend (DKIM signing at spool entry): the
 * prefix lands in front of the bytes written so far, including those still
 * in the write buffer, later writes go after them, the commit stores the
 * whole, and nothing is left behind in incoming/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "testutil.h"

static struct spool_msg *new_msg(struct spool *s)
{
    return test_spool_msg(s, "rcpt@example.com");
}

/* Prepends to a message of body_len bytes and checks what the commit stores. */
static void check_prepend(size_t body_len)
{
    char *dir = test_tmpdir("test_spool_prepend");
    struct buf err = BUF_INIT, got = BUF_INIT, want = BUF_INIT, path = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct spool_msg *m = new_msg(s);
    /* A body of numbered lines, written in uneven pieces so that part stays buffered. */
    struct buf body = BUF_INIT;
    for (size_t i = 0; body.len < body_len; i++)
        buf_printf(&body, "line %zu of the body\r\n", i);
    body.len = body_len;
    for (size_t off = 0; off < body.len;) {
        size_t n = body.len - off < 7777 ? body.len - off : 7777;
        assert_int_equal(spool_msg_write(m, body.data + off, n), 0);
        off += n;
    }
    /* Reading back sees every byte, buffered or not; the cap is enforced. */
    assert_int_equal(spool_msg_read(m, &got, body.len + 10), 0);
    assert_int_equal(got.len, body.len);
    assert_memory_equal(got.data, body.data, body.len);
    if (body.len > 0) {
        buf_reset(&got);
        assert_int_equal(spool_msg_read(m, &got, body.len - 1), -1);
        assert_int_equal(errno, EFBIG);
    }

    const char *pre = "DKIM-Signature: v=1; a=ed25519-sha256; d=example.com;\r\n\tb=xyz\r\n";
    assert_int_equal(spool_msg_prepend(m, pre, strlen(pre)), 0);
    assert_int_equal(spool_msg_size(m), strlen(pre) + body.len);
    const char *tail = "written after the prepend\r\n";
    assert_int_equal(spool_msg_write(m, tail, strlen(tail)), 0);
    buf_append(&want, pre, strlen(pre));
    buf_append(&want, body.data, body.len);
    buf_append(&want, tail, strlen(tail));

    char *inc = NULL;
    assert_true(asprintf(&inc, "%s/incoming", dir) > 0);
    assert_int_equal(test_count_files(inc), 1); /* just QUEUEID.data: no .pre left */
    char id[QUEUE_ID_MAX];
    snprintf(id, sizeof id, "%s", spool_msg_id(m));
    assert_int_equal(spool_msg_commit_sync(m, &err), 0);
    assert_int_equal(test_count_files(inc), 0);

    spool_data_path(s, id, SPOOL_ACTIVE, &path);
    buf_reset(&got);
    assert_int_equal(read_file(buf_cstr(&path), &got, SIZE_MAX / 2), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);

    free(inc);
    spool_free(s);
    buf_free(&err);
    buf_free(&got);
    buf_free(&want);
    buf_free(&path);
    buf_free(&body);
    test_rm_rf(dir);
    free(dir);
}

static void test_prepend_small(void **state)
{
    check_prepend(100); /* all of it still in the write buffer */
}

static void test_prepend_large(void **state)
{
    check_prepend(3 * 1024 * 1024 + 17); /* several buffers, copied in the kernel */
}

static void test_prepend_empty(void **state)
{
    check_prepend(0);
}

/*
 * A prepend that cannot create its file leaves the message as it was (a
 * directory in the way of QUEUEID.pre: fails even for root).
 */
static void test_prepend_failure_keeps_message(void **state)
{
    char *dir = test_tmpdir("test_spool_prepend");
    struct buf err = BUF_INIT, got = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct spool_msg *m = new_msg(s);
    const char *body = "Subject: x\r\n\r\nhello\r\n";
    assert_int_equal(spool_msg_write(m, body, strlen(body)), 0);
    char *inc = NULL;
    assert_true(asprintf(&inc, "%s/incoming", dir) > 0);
    char *pre = NULL;
    assert_true(asprintf(&pre, "%s/%s.pre", inc, spool_msg_id(m)) > 0);
    assert_int_equal(mkdir(pre, 0700), 0);
    assert_int_equal(spool_msg_prepend(m, "X: y\r\n", 6), -1);
    assert_int_equal(errno, EISDIR);
    assert_int_equal(rmdir(pre), 0);
    free(pre);
    assert_int_equal(spool_msg_size(m), strlen(body));
    assert_int_equal(spool_msg_read(m, &got, 1000), 0);
    assert_int_equal(got.len, strlen(body));
    assert_memory_equal(got.data, body, strlen(body));
    spool_msg_abort(m);
    assert_int_equal(test_count_files(inc), 0);
    free(inc);
    spool_free(s);
    buf_free(&err);
    buf_free(&got);
    test_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepend_small),
        cmocka_unit_test(test_prepend_large),
        cmocka_unit_test(test_prepend_empty),
        cmocka_unit_test(test_prepend_failure_keeps_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
