/*
 * The spool with its journal (src/queue/spool_journal.c and the commit in
 * spool.c): smtpd's small messages become records, large ones files;
 * delivery's view of them after its start (listing, envelopes, finishing,
 * moving to active/ with results, reclaiming), and recovery: done-logs read
 * back, a record whose files a move left in active/, a damaged record
 * quarantined.
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

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/journal.h"
#include "queue/spool.h"
#include "testutil.h"

static char committed[QUEUE_ID_MAX];

static void on_commit(void *arg, int result, int err_code, const char *queue_id)
{
    int *ok = arg;
    *ok = result == 0;
    snprintf(committed, sizeof committed, "%s", queue_id);
}

/* Commits one message of size bytes (synchronously: no loop attached); its id in out. */
static void commit(struct spool *s, size_t size, char out[QUEUE_ID_MAX])
{
    struct spool_msg *m = test_spool_msg(s, "rcpt@example.com");
    const char *head = "Subject: x\r\n\r\n";
    assert_int_equal(spool_msg_write(m, head, strlen(head)), 0);
    for (size_t n = strlen(head); n < size; n++)
        assert_int_equal(spool_msg_write(m, "y", 1), 0);
    int ok = 0;
    spool_msg_commit(m, on_commit, &ok);
    assert_int_equal(ok, 1);
    snprintf(out, QUEUE_ID_MAX, "%s", committed);
}

static int in_dir(const char *root, const char *sub, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", root, sub, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static struct spool *smtpd_spool(const char *dir)
{
    struct buf err = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    assert_int_equal(spool_journal_enable(s, &err), 0);
    buf_free(&err);
    return s;
}

/* Delivery's spool after its start-up recovery, which quarantined *bad files (may be NULL: none).
 */
static struct spool *delivery_start(const char *dir, int *bad)
{
    struct buf err = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_DELIVERY, &err);
    assert_non_null(s);
    int n = spool_recover(s);
    if (bad)
        *bad = n;
    else
        assert_int_equal(n, 0);
    buf_free(&err);
    return s;
}

static size_t listed(struct spool *s, const char *id)
{
    size_t n, hits = 0;
    char **ids = spool_list(s, SPOOL_ACTIVE, &n);
    for (size_t i = 0; i < n; i++)
        hits += strcmp(ids[i], id) == 0;
    strlist_free(ids);
    return hits;
}

static void test_commit_and_deliver(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool_journal");
    struct spool *smtpd = smtpd_spool(dir);
    char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX], big[QUEUE_ID_MAX];
    commit(smtpd, 300, a);
    commit(smtpd, 300, b);
    commit(smtpd, 300, c);
    commit(smtpd, 70000, big); /* past the receive buffer: files */
    char p[512];
    snprintf(p, sizeof p, "%s/incoming", dir);
    assert_int_equal(test_count_files(p), 0);
    snprintf(p, sizeof p, "%s/active", dir);
    assert_int_equal(test_count_files(p), 2);
    assert_true(in_dir(dir, "active", big));
    assert_false(in_dir(dir, "active", a));
    assert_true(in_dir(dir, "journal", "0000000000000001.seg"));

    struct spool *d = delivery_start(dir, NULL);
    assert_int_equal(listed(d, a) + listed(d, b) + listed(d, c) + listed(d, big), 4);
    assert_true(spool_journaled(d, a) && !spool_journaled(d, big));
    assert_true(spool_is_active(d, a));
    struct buf err = BUF_INIT;
    enum spool_where where = SPOOL_HOLD;
    struct envelope *e = spool_read_envelope(d, b, &where, &err);
    assert_non_null(e);
    assert_int_equal(where, SPOOL_ACTIVE);
    assert_string_equal(e->rcpts[0].address, "rcpt@example.com");
    assert_int_equal(e->data_size, 300);
    /* Queue commands leave a journaled message alone, and say why. */
    assert_int_equal(spool_hold(d, a), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(spool_delete(d, a), -1);
    assert_int_equal(errno, EBUSY);

    /* Finished: marked done. Deferred: moved to active/ with its results. */
    assert_int_equal(spool_remove(d, a), 0);
    assert_false(spool_is_active(d, a));
    e->attempts = 1;
    e->next_try = 12345;
    struct buf rec = BUF_INIT;
    envelope_encode_schedule(e, &rec);
    assert_int_equal(spool_append_sync(d, b, rec.data, rec.len, 0), 0);
    assert_false(spool_journaled(d, b));
    assert_true(in_dir(dir, "active", b));
    envelope_free(e);
    e = spool_read_envelope(d, b, NULL, &err);
    assert_non_null(e);
    assert_true(e->next_try == 12345 && e->attempts == 1);
    envelope_free(e);
    char dn[64];
    snprintf(dn, sizeof dn, "%s.data", b);
    snprintf(p, sizeof p, "%s/active/%s", dir, dn);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 300);
    assert_int_equal(listed(d, b), 1);
    spool_free(d);

    /* A new start reads the done-log: a gone, b in files, c still journaled. */
    d = delivery_start(dir, NULL);
    assert_int_equal(listed(d, a), 0);
    assert_int_equal(listed(d, b), 1);
    assert_false(spool_journaled(d, b));
    assert_true(spool_journaled(d, c));
    /* Not reclaimed: smtpd still holds the segment. */
    assert_int_equal(spool_remove(d, c), 0);
    assert_true(in_dir(dir, "journal", "0000000000000001.seg"));
    /* smtpd restarts (a new segment); the old one, all done, goes to free/. */
    spool_free(smtpd);
    smtpd = smtpd_spool(dir);
    char e2[QUEUE_ID_MAX];
    commit(smtpd, 100, e2);
    assert_true(in_dir(dir, "journal", "0000000000000002.seg"));
    spool_free(d);
    d = delivery_start(dir, NULL);
    assert_false(in_dir(dir, "journal", "0000000000000001.seg"));
    assert_false(in_dir(dir, "journal", "0000000000000001.done"));
    assert_true(in_dir(dir, "journal/free", "0000000000000001.seg"));
    assert_true(spool_journaled(d, e2));

    buf_free(&rec);
    buf_free(&err);
    spool_free(d);
    spool_free(smtpd);
    test_rm_rf(dir);
    free(dir);
}

/* A hint for a message committed after delivery started finds it. */
static void test_refresh(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool_journal");
    struct spool *smtpd = smtpd_spool(dir);
    struct spool *d = delivery_start(dir, NULL);
    char a[QUEUE_ID_MAX];
    commit(smtpd, 100, a);
    assert_false(spool_is_active(d, a));
    spool_refresh(d);
    assert_true(spool_is_active(d, a));
    spool_free(d);
    spool_free(smtpd);
    test_rm_rf(dir);
    free(dir);
}

/* A damaged record among good ones is copied to corrupt/ and skipped; a move left in files counts
 * as moved. */
static void test_recovery(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool_journal");
    struct spool *smtpd = smtpd_spool(dir);
    char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX];
    commit(smtpd, 200, a);
    commit(smtpd, 200, b);
    commit(smtpd, 200, c);
    spool_free(smtpd);
    /* The second record's data: flip one byte. */
    char p[512];
    snprintf(p, sizeof p, "%s/journal/0000000000000001.seg", dir);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    struct buf seg = BUF_INIT;
    assert_int_equal(read_fd_whole(fd, &seg, JOURNAL_SEGMENT_SIZE), 0);
    char *at = memmem(seg.data, seg.len, b, strlen(b));
    assert_non_null(at);
    off_t off = (off_t)(at - seg.data) + 24 + 100; /* past the header, into the envelope */
    char byte;
    assert_int_equal(pread(fd, &byte, 1, off), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, off), 1);
    close(fd);
    /* a's record was moved to active/ before a crash lost its done-log mark. */
    int bad = 0;
    struct spool *d0 = delivery_start(dir, &bad);
    assert_int_equal(bad, 1); /* b's record, copied to corrupt/ */
    struct buf err = BUF_INIT, text = BUF_INIT;
    struct envelope *ea = spool_read_envelope(d0, a, NULL, &err);
    assert_non_null(ea);
    envelope_encode(ea, &text);
    envelope_encode_commit(200, &text);
    envelope_free(ea);
    spool_free(d0);
    char data[200];
    memset(data, 'y', sizeof data);
    snprintf(p, sizeof p, "%s/active/%s.data", dir, a);
    assert_int_equal(write_file_atomic(p, data, sizeof data, 0600), 0);
    snprintf(p, sizeof p, "%s/active/%s", dir, a);
    assert_int_equal(write_file_atomic(p, text.data, text.len, 0600), 0);
    buf_free(&text);
    buf_free(&err);

    struct spool *d = delivery_start(dir, NULL);
    assert_false(spool_journaled(d, a));
    assert_false(spool_journaled(d, b));
    assert_true(spool_journaled(d, c));
    assert_int_equal(listed(d, a), 1); /* from its files */
    snprintf(p, sizeof p, "%s/corrupt", dir);
    assert_int_equal(test_count_files(p), 1);
    spool_free(d);
    /* Marked: the next start neither quarantines it again nor offers it. */
    d = delivery_start(dir, NULL);
    assert_false(spool_journaled(d, b));
    assert_int_equal(test_count_files(p), 1);
    buf_free(&seg);
    spool_free(d);
    test_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_and_deliver),
        cmocka_unit_test(test_refresh),
        cmocka_unit_test(test_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
