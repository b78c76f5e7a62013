/*
 * The spool: durable commits through a real event loop and work queue,
 * group commit batching (seen through the round counter), abort, disk full
 * on a small tmpfs, operator moves, and start-up recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "testutil.h"

static int exists(const char *root, const char *sub, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", root, sub, name);
    struct stat st;
    return stat(p, &st) == 0;
}

struct commits {
    int done, ok;
    char ids[200][QUEUE_ID_MAX];
};

static void on_commit(void *arg, int result, int err_code, const char *queue_id)
{
    struct commits *c = arg;
    if (result == 0)
        snprintf(c->ids[c->ok++], QUEUE_ID_MAX, "%s", queue_id);
    c->done++;
}

static struct spool_msg *new_msg(struct spool *s, const char *rcpt, const char *body)
{
    struct spool_msg *m = test_spool_msg(s, rcpt);
    assert_int_equal(spool_msg_write(m, body, strlen(body)), 0);
    return m;
}

static void test_ids(void **state)
{
    (void)state;
    char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];
    spool_new_id(a);
    usleep(2000);
    spool_new_id(b);
    assert_true(spool_valid_id(a));
    assert_true(strlen(a) >= 10 && strlen(a) <= 16);
    assert_true(strcmp(a, b) < 0); /* sortable by time */
    assert_false(spool_valid_id("abc"));
    assert_false(spool_valid_id("1LGL65FDNF42HOP.data"));
}

/* The id carries its moment to the microsecond (delay= counts from it). */
static void test_id_time(void **state)
{
    (void)state;
    struct timeval before, after, t;
    char id[QUEUE_ID_MAX];
    gettimeofday(&before, NULL);
    spool_new_id(id);
    gettimeofday(&after, NULL);
    assert_int_equal(spool_id_time(id, &t), 0);
    double bt = before.tv_sec + before.tv_usec / 1e6, at = after.tv_sec + after.tv_usec / 1e6;
    double it = t.tv_sec + t.tv_usec / 1e6;
    assert_true(it >= bt && it <= at);
    assert_int_equal(spool_id_time("abc", &t), -1);
    assert_int_equal(spool_id_time("1LGL65FVVVV2HOP", &t), -1); /* 2^20-1 microseconds */
    assert_int_equal(spool_id_time("1lgl65fdnf42hop", &t), -1);
    assert_int_equal(spool_id_time("1LGL65FDNF42HOPX", &t), -1);
}

static void wait_for_gate(void *arg)
{
    char byte;
    ssize_t n = read(*(int *)arg, &byte, 1);
    (void)n;
}

static void test_group_commit(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool");
    struct buf err = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct event_base *base = event_base_new();
    /* One pool thread, kept busy until every commit is queued. */
    struct workq *wq = workq_new(base, 1);
    spool_attach(s, base, wq);
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    workq_submit(wq, wait_for_gate, NULL, &gate[0]);
    static struct commits c;
    memset(&c, 0, sizeof c);
    enum { N = 100 };
    /* 100 sessions finishing DATA while a round cannot start yet (the one before still syncs). */
    for (int i = 0; i < N; i++) {
        struct spool_msg *m = new_msg(s, "rcpt@example.com", "Subject: x\r\n\r\nbody\r\n");
        spool_msg_commit(m, on_commit, &c);
    }
    assert_int_equal(write(gate[1], "x", 1), 1);
    for (int guard = 0; c.done < N && guard < 10000; guard++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(c.done, N);
    assert_int_equal(c.ok, N);
    /* A round takes its batch when it starts: all 100 share one. */
    assert_int_equal(spool_sync_rounds(s), 1);
    close(gate[0]);
    close(gate[1]);
    char inc[512];
    snprintf(inc, sizeof inc, "%s/incoming", dir);
    assert_int_equal(test_count_files(inc), 0);
    for (int i = 0; i < N; i++) {
        assert_true(exists(dir, "active", c.ids[i]));
        struct envelope *e = spool_read_envelope(s, c.ids[i], NULL, &err);
        assert_non_null(e);
        assert_string_equal(e->queue_id, c.ids[i]);
        assert_string_equal(e->rcpts[0].address, "rcpt@example.com");
        envelope_free(e);
    }
    size_t n;
    char **ids = spool_list(s, SPOOL_ACTIVE, &n);
    assert_int_equal(n, N);
    strlist_free(ids);
    workq_free(wq);
    event_base_free(base);
    spool_free(s);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

static void on_sync(void *arg, int err_code)
{
    int *r = arg;
    *r = err_code == 0 ? 1 : -1;
}

/*
 * spool_sync() callers share a round with commits; spool_remove() unlinks
 * both files; an append without sync is read back like a synced one.
 */
static void test_sync_waiters_remove(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool");
    struct buf err = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(spool_device(s) == st.st_dev);
    struct event_base *base = event_base_new();
    struct workq *wq = workq_new(base, 2);
    spool_attach(s, base, wq);
    static struct commits c;
    memset(&c, 0, sizeof c);
    int w1 = 0, w2 = 0;
    spool_sync(s, on_sync, &w1);
    spool_msg_commit(new_msg(s, "a@example.com", "Subject: x\r\n\r\nbody\r\n"), on_commit, &c);
    spool_sync(s, on_sync, &w2);
    for (int guard = 0; (c.done < 1 || !w1 || !w2) && guard < 10000; guard++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(w1, 1);
    assert_int_equal(w2, 1);
    assert_int_equal(c.ok, 1);
    /* The first waiter starts a round; the commit and the second waiter share the next. */
    assert_true(spool_sync_rounds(s) <= 2);
    const char *rec = "N 0 1\n";
    assert_int_equal(spool_append_sync(s, c.ids[0], rec, strlen(rec), 0), 0);
    struct envelope *e = spool_read_envelope(s, c.ids[0], NULL, &err);
    assert_non_null(e);
    assert_int_equal(e->attempts, 1);
    envelope_free(e);
    assert_int_equal(spool_remove(s, c.ids[0]), 0);
    assert_false(exists(dir, "active", c.ids[0]));
    char dn[QUEUE_ID_MAX + 8];
    snprintf(dn, sizeof dn, "%s.data", c.ids[0]);
    assert_false(exists(dir, "active", dn));
    assert_int_equal(spool_remove(s, c.ids[0]), -1);
    assert_int_equal(errno, ENOENT);
    workq_free(wq);
    event_base_free(base);
    spool_free(s);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

static void test_sync_commit_append_moves(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool");
    struct buf err = BUF_INIT, path = BUF_INIT, data = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    struct spool_msg *m = new_msg(s, "a@example.com", "Subject: y\r\n\r\nhello\r\n");
    char id[QUEUE_ID_MAX];
    snprintf(id, sizeof id, "%s", spool_msg_id(m));
    assert_int_equal(spool_msg_commit_sync(m, &err), 0);
    spool_data_path(s, id, SPOOL_ACTIVE, &path);
    assert_int_equal(read_file(buf_cstr(&path), &data, 1000), 0);
    assert_string_equal(buf_cstr(&data), "Subject: y\r\n\r\nhello\r\n");

    struct envelope *e = spool_read_envelope(s, id, NULL, &err);
    assert_non_null(e);
    e->rcpts[0].state = RCPT_DELIVERED;
    e->rcpts[0].last_error = strdup("delivered to maildir");
    struct buf rec = BUF_INIT;
    envelope_encode_result(e, 0, &rec);
    assert_int_equal(spool_append(s, id, rec.data, rec.len), 0);
    envelope_free(e);
    e = spool_read_envelope(s, id, NULL, &err);
    assert_int_equal(e->rcpts[0].state, RCPT_DELIVERED);
    envelope_free(e);

    enum spool_where w;
    assert_int_equal(spool_hold(s, id), 0);
    assert_false(exists(dir, "active", id));
    e = spool_read_envelope(s, id, &w, &err);
    assert_int_equal(w, SPOOL_HOLD);
    assert_int_equal(e->hold, 1);
    envelope_free(e);
    assert_int_equal(spool_append(s, id, rec.data, rec.len), -1); /* only active/ is delivered */
    assert_int_equal(errno, ENOENT);
    assert_int_equal(spool_release(s, id), 0);
    assert_true(exists(dir, "active", id));
    assert_int_equal(spool_release(s, id), -1);
    assert_int_equal(spool_delete(s, id), 0);
    assert_false(exists(dir, "active", id));
    assert_int_equal(spool_delete(s, id), -1);
    e = spool_read_envelope(s, id, NULL, &err);
    assert_null(e);
    assert_int_equal(errno, ENOENT);

    /* Abort leaves nothing behind. */
    m = new_msg(s, "b@example.com", "x\r\n");
    spool_msg_abort(m);
    char inc[512];
    snprintf(inc, sizeof inc, "%s/incoming", dir);
    assert_int_equal(test_count_files(inc), 0);
    buf_free(&rec);
    buf_free(&err);
    buf_free(&path);
    buf_free(&data);
    spool_free(s);
    test_rm_rf(dir);
    free(dir);
}

static void put(const char *dir, const char *sub, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_recovery(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool");
    struct buf err = BUF_INIT, text = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    /* A good message whose last append was torn by a crash. */
    struct spool_msg *m = new_msg(s, "a@example.com", "x\r\n");
    char good[QUEUE_ID_MAX];
    snprintf(good, sizeof good, "%s", spool_msg_id(m));
    assert_int_equal(spool_msg_commit_sync(m, &err), 0);
    assert_int_equal(spool_append(s, good, "X 0 D 1 2.0.0 do", 16), 0);
    /* Garbage in active/, an unfinished receive, an orphan data file, an unknown name. */
    put(dir, "active", "1AAAAAAAAAAAAAA", "this is not an envelope\n");
    put(dir, "active", "1AAAAAAAAAAAAAA.data", "data\r\n");
    put(dir, "incoming", "1BBBBBBBBBBBBBB.data", "half a message");
    put(dir, "active", "1CCCCCCCCCCCCCC.data", "no envelope\r\n");
    put(dir, "active", "stray-file", "?");
    /*
     * What a crash during a commit round (before its syncfs returned) can
     * leave: an empty envelope, one without its commit record, one whose
     * data is shorter than the record says. Never acknowledged: removed, not
     * quarantined. A version 1 envelope (no commit record) is kept.
     */
    put(dir, "active", "1DDDDDDDDDDDDDD", "");
    put(dir, "active", "1DDDDDDDDDDDDDD.data", "");
    put(dir, "active", "1EEEEEEEEEEEEEE",
        "HONGYAN-ENVELOPE 2\nI 1EEEEEEEEEEEEEE\nS =\nR a - 0\nC 1");
    put(dir, "active", "1EEEEEEEEEEEEEE.data", "x\r\n");
    put(dir, "active", "1FFFFFFFFFFFFFF",
        "HONGYAN-ENVELOPE 2\nI 1FFFFFFFFFFFFFF\nS =\nR a - 0\nC 4096\n");
    put(dir, "active", "1FFFFFFFFFFFFFF.data", "only part of it\r\n");
    put(dir, "active", "1GGGGGGGGGGGGGG", "HONGYAN-ENVELOPE 1\nI 1GGGGGGGGGGGGGG\nS =\nR a - 0\n");
    put(dir, "active", "1GGGGGGGGGGGGGG.data", "old\r\n");
    assert_int_equal(spool_recover_incoming(s), 1); /* the unfinished receive */
    assert_int_equal(spool_recover(s), 2);          /* the garbage message and the stray file */
    const char *cut[] = {"1DDDDDDDDDDDDDD", "1EEEEEEEEEEEEEE", "1FFFFFFFFFFFFFF"};
    for (int i = 0; i < 3; i++) {
        char dn[64];
        snprintf(dn, sizeof dn, "%s.data", cut[i]);
        assert_false(exists(dir, "active", cut[i]));
        assert_false(exists(dir, "active", dn));
        assert_false(exists(dir, "corrupt", cut[i]));
    }
    assert_true(exists(dir, "active", "1GGGGGGGGGGGGGG"));
    assert_true(exists(dir, "active", "1GGGGGGGGGGGGGG.data"));
    char sub[512];
    snprintf(sub, sizeof sub, "%s/incoming", dir);
    assert_int_equal(test_count_files(sub), 0);
    assert_true(exists(dir, "corrupt", "1AAAAAAAAAAAAAA"));
    assert_true(exists(dir, "corrupt", "1AAAAAAAAAAAAAA.data"));
    assert_true(exists(dir, "corrupt", "stray-file"));
    assert_false(exists(dir, "active", "1CCCCCCCCCCCCCC.data"));
    assert_true(exists(dir, "active", good));
    /* The torn line was cut off, so a later append starts on its own line. */
    char p[512];
    snprintf(p, sizeof p, "%s/active/%s", dir, good);
    assert_int_equal(read_file(p, &text, 100000), 0);
    assert_int_equal(text.data[text.len - 1], '\n');
    struct envelope *e = envelope_new();
    envelope_add_rcpt(e, "a@example.com");
    e->rcpts[0].state = RCPT_DELIVERED;
    struct buf rec = BUF_INIT;
    envelope_encode_result(e, 0, &rec);
    assert_int_equal(spool_append(s, good, rec.data, rec.len), 0);
    envelope_free(e);
    e = spool_read_envelope(s, good, NULL, &err);
    assert_non_null(e);
    assert_int_equal(e->rcpts[0].state, RCPT_DELIVERED);
    envelope_free(e);
    size_t n;
    char **ids = spool_list(s, SPOOL_ACTIVE, &n);
    assert_int_equal(n, 2); /* good and the version 1 message */
    strlist_free(ids);
    buf_free(&rec);
    buf_free(&err);
    buf_free(&text);
    spool_free(s);
    test_rm_rf(dir);
    free(dir);
}

/*
 * Two writers on one queue (docs/architecture.md, Process split): their ids
 * never collide, each recovers only its own incoming directory, and the
 * committed queue's repair leaves a commit another writer is making alone.
 */
static void test_two_writers(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool");
    struct buf err = BUF_INIT;
    struct spool *smtpd = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    struct spool *delivery = spool_open(dir, SPOOL_INCOMING_DELIVERY, &err);
    assert_non_null(smtpd);
    assert_non_null(delivery);
    assert_null(spool_open(dir, "active", &err));
    assert_non_null(strstr(buf_cstr(&err), "not an incoming directory"));
    static const char b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
    for (int i = 0; i < 64; i++) {
        struct spool_msg *a = spool_msg_new(smtpd, &err), *b = spool_msg_new(delivery, &err);
        const char *ia = spool_msg_id(a), *ib = spool_msg_id(b);
        assert_int_equal((strchr(b32, ia[strlen(ia) - 1]) - b32) & 1, 0);
        assert_int_equal((strchr(b32, ib[strlen(ib) - 1]) - b32) & 1, 1);
        spool_msg_abort(a);
        spool_msg_abort(b);
    }
    /* delivery's half-written bounce, and a commit of smtpd's between its two renames. */
    put(dir, SPOOL_INCOMING_DELIVERY, "1BBBBBBBBBBBBBB.data", "half a bounce");
    put(dir, SPOOL_INCOMING_SMTPD, "1CCCCCCCCCCCCCC", "HONGYAN-ENVELOPE 2\n");
    put(dir, "active", "1CCCCCCCCCCCCCC.data", "data\r\n");
    /* A restarted delivery: its own file goes, smtpd's commit in progress stays. */
    assert_int_equal(spool_recover_incoming(delivery), 1);
    assert_int_equal(spool_recover(delivery), 0);
    assert_false(exists(dir, SPOOL_INCOMING_DELIVERY, "1BBBBBBBBBBBBBB.data"));
    assert_true(exists(dir, SPOOL_INCOMING_SMTPD, "1CCCCCCCCCCCCCC"));
    assert_true(exists(dir, "active", "1CCCCCCCCCCCCCC.data"));
    /* A restarted smtpd: that commit was cut short (never acknowledged), both halves go. */
    put(dir, SPOOL_INCOMING_DELIVERY, "1DDDDDDDDDDDDDD.data", "delivery still writing");
    assert_int_equal(spool_recover_incoming(smtpd), 2);
    assert_false(exists(dir, SPOOL_INCOMING_SMTPD, "1CCCCCCCCCCCCCC"));
    assert_false(exists(dir, "active", "1CCCCCCCCCCCCCC.data"));
    assert_true(exists(dir, SPOOL_INCOMING_DELIVERY, "1DDDDDDDDDDDDDD.data"));
    spool_free(smtpd);
    spool_free(delivery);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

/* Disk full: a 1 MiB tmpfs. Needs root (mount); skipped otherwise. */
static void test_disk_full(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: mounting a small tmpfs needs root\n");
        skip();
    }
    char *dir = test_tmpdir("test_spool");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0) {
        print_message("skipped: cannot mount tmpfs: %s\n", strerror(errno));
        test_rm_rf(dir);
        free(dir);
        skip();
    }
    struct buf err = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_SMTPD, &err);
    assert_non_null(s);
    char inc[512], act[512];
    snprintf(inc, sizeof inc, "%s/incoming", dir);
    snprintf(act, sizeof act, "%s/active", dir);

    /* 1: the data does not fit. */
    struct spool_msg *m = new_msg(s, "a@example.com", "x");
    static char chunk[65536];
    memset(chunk, 'a', sizeof chunk);
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = spool_msg_write(m, chunk, sizeof chunk);
    if (rc == 0) {
        /* Buffered: the failure shows at the commit. */
        assert_int_equal(spool_msg_commit_sync(m, &err), -1);
    } else {
        assert_int_equal(errno, ENOSPC);
        spool_msg_abort(m);
    }
    assert_int_equal(test_count_files(inc), 0);
    assert_int_equal(test_count_files(act), 0);

    /* 2: the data fits but the envelope does not: the commit fails and leaves nothing. */
    char filler[512];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    while (write(fd, chunk, 4096) == 4096)
        ;
    close(fd);
    m = new_msg(s, "a@example.com", "");
    static struct commits c;
    memset(&c, 0, sizeof c);
    struct event_base *base = event_base_new();
    struct workq *wq = workq_new(base, 1);
    spool_attach(s, base, wq);
    spool_msg_commit(m, on_commit, &c);
    for (int guard = 0; c.done < 1 && guard < 1000; guard++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.ok, 0);
    assert_int_equal(test_count_files(inc), 0);
    assert_int_equal(test_count_files(act), 0);
    workq_free(wq);
    event_base_free(base);
    spool_free(s);
    buf_free(&err);
    assert_int_equal(umount(dir), 0);
    test_rm_rf(dir);
    free(dir);
}

/* The queue's directories as root commands prepare them (spool_dirs_hand_over). */
static void test_dirs_hand_over(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_spool_dirs");
    struct buf err = BUF_INIT;
    int qfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(qfd >= 0);
    char path[512];
    struct stat st;
    /* create_mode 0: nothing is made (the supervisor leaves that to the worker). */
    assert_int_equal(spool_dirs_hand_over(qfd, dir, getuid(), getgid(), 0, &err), 0);
    snprintf(path, sizeof path, "%s/active", dir);
    assert_int_equal(lstat(path, &st), -1);
    /* Made with the mode exactly, whatever the umask, and the owner given. */
    mode_t old_mask = umask(077);
    assert_int_equal(spool_dirs_hand_over(qfd, dir, getuid(), getgid(), 0700, &err), 0);
    umask(old_mask);
    static const char *const names[] = {"incoming", "incoming.delivery", "active", "hold",
                                        "corrupt"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(st.st_uid, getuid());
    }
    /* A symbolic link in a directory's place is refused, not followed. */
    snprintf(path, sizeof path, "%s/hold", dir);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(symlink("active", path), 0);
    assert_int_equal(spool_dirs_hand_over(qfd, dir, getuid(), getgid(), 0700, &err), -1);
    assert_non_null(strstr(buf_cstr(&err), "hold"));
    close(qfd);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_id_time),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_sync_waiters_remove),
        cmocka_unit_test(test_sync_commit_append_moves),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_two_writers),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_dirs_hand_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
