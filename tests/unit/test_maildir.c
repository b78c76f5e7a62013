/* Maildir delivery: layout, unique names, prepended headers, CRLF kept, failures classified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/maildir.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "queue/spool.h"
#include "testutil.h"

static void test_deliver(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_maildir");
    char data[512], mbox[512];
    snprintf(data, sizeof data, "%s/msg", root);
    snprintf(mbox, sizeof mbox, "%s/example.com/bob/", root);
    const char *msg = "Subject: hi\r\n\r\nbody line\r\n";
    assert_int_equal(write_file_atomic(data, msg, strlen(msg), 0600), 0);
    struct spool_data msgdata;
    test_data_range(data, 0, -1, &msgdata);
    char dsn[16];
    struct buf reason = BUF_INIT, path = BUF_INIT, got = BUF_INIT, path2 = BUF_INIT;
    assert_int_equal(maildir_deliver(mbox, &msgdata, "alice@example.org", "bob@example.com", NULL,
                                     dsn, &reason, &path),
                     DELIVERY_OK);
    assert_string_equal(dsn, "2.0.0");
    const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", mbox, subs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    /* In new/, named time.M<usec>P<pid>Q<n>.host,S=size. */
    const char *name = strrchr(buf_cstr(&path), '/') + 1;
    assert_non_null(strstr(buf_cstr(&path), "/new/"));
    char pid[32];
    snprintf(pid, sizeof pid, "P%ldQ", (long)getpid());
    assert_non_null(strstr(name, pid));
    assert_non_null(strstr(name, ".M"));
    assert_int_equal(read_file(buf_cstr(&path), &got, 100000), 0);
    const char *want = "Return-Path: <alice@example.org>\r\nDelivered-To: bob@example.com\r\n"
                       "Subject: hi\r\n\r\nbody line\r\n";
    assert_string_equal(buf_cstr(&got), want);
    char sz[32];
    snprintf(sz, sizeof sz, ",S=%zu", strlen(want));
    assert_non_null(strstr(name, sz));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%stmp", mbox);
    assert_int_equal(test_count_files(tmp), 0);

    /* A second delivery gets another name; the null sender becomes <>. */
    assert_int_equal(
        maildir_deliver(mbox, &msgdata, "", "bob@example.com", NULL, dsn, &reason, &path2),
        DELIVERY_OK);
    assert_string_not_equal(buf_cstr(&path), buf_cstr(&path2));
    buf_reset(&got);
    assert_int_equal(read_file(buf_cstr(&path2), &got, 100000), 0);
    assert_int_equal(strncmp(buf_cstr(&got), "Return-Path: <>\r\n", 17), 0);

    buf_free(&reason);
    buf_free(&path);
    buf_free(&path2);
    buf_free(&got);
    spool_data_close(&msgdata);
    test_rm_rf(root);
    free(root);
}

/* A retry after a crash must not add a second copy (maildir.h: exactly once). */
static void test_deliver_once(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_maildir");
    char data[512], mbox[512], newdir[600], curdir[600];
    snprintf(data, sizeof data, "%s/msg", root);
    snprintf(mbox, sizeof mbox, "%s/example.com/bob/", root);
    snprintf(newdir, sizeof newdir, "%snew", mbox);
    snprintf(curdir, sizeof curdir, "%scur", mbox);
    const char *msg = "Subject: once\r\n\r\nbody\r\n";
    assert_int_equal(write_file_atomic(data, msg, strlen(msg), 0600), 0);
    struct spool_data msgdata;
    test_data_range(data, 0, -1, &msgdata);
    char dsn[16];
    struct buf reason = BUF_INIT, path = BUF_INIT;
    struct maildir_once once = {.stem = "1700000000.QABCDEFR0", .check_cur = 0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            maildir_deliver(mbox, &msgdata, "a@b", "bob@example.com", &once, dsn, &reason, &path),
            DELIVERY_OK);
    assert_int_equal(test_count_files(newdir), 1);
    /* A reader moves it to cur/ with flags; a checked retry finds it there. */
    const char *name = strrchr(buf_cstr(&path), '/') + 1;
    char moved[1200];
    snprintf(moved, sizeof moved, "%s/%s:2,S", curdir, name);
    assert_int_equal(rename(buf_cstr(&path), moved), 0);
    once.check_cur = 1;
    assert_int_equal(
        maildir_deliver(mbox, &msgdata, "a@b", "bob@example.com", &once, dsn, &reason, NULL),
        DELIVERY_OK);
    assert_int_equal(test_count_files(newdir), 0);
    assert_int_equal(test_count_files(curdir), 1);
    /* Another recipient index is another delivery. */
    struct maildir_once other = {.stem = "1700000000.QABCDEFR1", .check_cur = 1};
    assert_int_equal(
        maildir_deliver(mbox, &msgdata, "a@b", "bob@example.com", &other, dsn, &reason, NULL),
        DELIVERY_OK);
    assert_int_equal(test_count_files(newdir), 1);
    buf_free(&reason);
    buf_free(&path);
    spool_data_close(&msgdata);
    test_rm_rf(root);
    free(root);
}

static void test_failures(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_maildir");
    char data[512], bad[512];
    snprintf(data, sizeof data, "%s/msg", root);
    assert_int_equal(write_file_atomic(data, "x\r\n", 3, 0600), 0);
    struct spool_data msgdata;
    test_data_range(data, 0, -1, &msgdata);
    char dsn[16];
    struct buf reason = BUF_INIT;
    /* A relative path, and a path through a regular file: permanent. */
    assert_int_equal(maildir_deliver("relative/", &msgdata, "a@b", "c@d", NULL, dsn, &reason, NULL),
                     DELIVERY_PERMFAIL);
    assert_int_equal(dsn[0], '5');
    snprintf(bad, sizeof bad, "%s/msg/sub/", root);
    assert_int_equal(maildir_deliver(bad, &msgdata, "a@b", "c@d", NULL, dsn, &reason, NULL),
                     DELIVERY_PERMFAIL);
    assert_int_equal(dsn[0], '5');
    assert_true(reason.len > 0);
    /* The message data cannot be read: temporary. */
    char mbox[512];
    snprintf(mbox, sizeof mbox, "%s/box/", root);
    struct spool_data gone = {.fd = -1, .offset = 0, .length = 3};
    assert_int_equal(maildir_deliver(mbox, &gone, "a@b", "c@d", NULL, dsn, &reason, NULL),
                     DELIVERY_TEMPFAIL);
    assert_int_equal(dsn[0], '4');
    buf_free(&reason);
    spool_data_close(&msgdata);
    test_rm_rf(root);
    free(root);
}

/*
 * Shared syncs: a file on the caller's device is left for the caller to
 * sync (and says so); on another device it is synced here. new/ and cur/
 * removed behind our back are made again.
 */
static void test_deferred_sync_and_dirs(void **state)
{
    (void)state;
    char *root = test_tmpdir("test_maildir");
    char data[512], mbox[512], sub[1200];
    snprintf(data, sizeof data, "%s/msg", root);
    snprintf(mbox, sizeof mbox, "%s/example.com/carol", root);
    const char *msg = "Subject: sync\r\n\r\nbody\r\n";
    assert_int_equal(write_file_atomic(data, msg, strlen(msg), 0600), 0);
    struct spool_data msgdata;
    test_data_range(data, 0, -1, &msgdata);
    struct stat st;
    assert_int_equal(stat(root, &st), 0);
    char dsn[16];
    struct buf reason = BUF_INIT;
    int deferred = 0;
    struct maildir_once once = {
        .stem = "1700000000.QSYNCR0", .sync_dev = st.st_dev, .sync_deferred = &deferred};
    assert_int_equal(
        maildir_deliver(mbox, &msgdata, "a@b", "carol@example.com", &once, dsn, &reason, NULL),
        DELIVERY_OK);
    assert_int_equal(deferred, 1);
    const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", mbox, subs[i]);
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
    }
    snprintf(sub, sizeof sub, "%s/new", mbox);
    test_rm_rf(sub);
    snprintf(sub, sizeof sub, "%s/cur", mbox);
    test_rm_rf(sub);
    deferred = 0;
    once.sync_dev = st.st_dev + 1; /* not the device the Maildir is on */
    once.stem = "1700000000.QSYNCR1";
    assert_int_equal(
        maildir_deliver(mbox, &msgdata, "a@b", "carol@example.com", &once, dsn, &reason, NULL),
        DELIVERY_OK);
    assert_int_equal(deferred, 0);
    snprintf(sub, sizeof sub, "%s/new", mbox);
    assert_int_equal(test_count_files(sub), 1);
    snprintf(sub, sizeof sub, "%s/cur", mbox);
    assert_int_equal(stat(sub, &st), 0);
    buf_free(&reason);
    spool_data_close(&msgdata);
    test_rm_rf(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver),
        cmocka_unit_test(test_deliver_once),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_deferred_sync_and_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
