/*
 * The queue manager end to end on a real event loop and work queue, with
 * the real spool, resolver and Maildir agent: a kicked message is delivered
 * and removed, a maildrop file is picked up, a permanent local failure
 * bounces to the sender's Maildir, and stop waits for deliveries in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "server/server.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "queue/resolve.h"
#include "queue/envelope.h"
#include "queue/pickup.h"
#include "qmgr/qmgr.h"
#include "queue/spool.h"
#include "testutil.h"
#include "testutil.h"

struct fixture {
    char root[128];
    struct server srv;
    struct server_gen gen;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/test_qmgr.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    char cf[256], text[1024];
    snprintf(cf, sizeof cf, "%s/main.cf", f->root);
    snprintf(text, sizeof text,
             "myhostname = mx.example.com\nmydomain = example.com\n"
             "mydestination = $myhostname, localhost, example.com\n"
             "data_directory = %s/data\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
             "queue_run_delay = 1s\n",
             f->root);
    assert_int_equal(write_file_atomic(cf, text, strlen(text), 0644), 0);
    struct buf err = BUF_INIT;
    f->gen.refs = 1;
    f->gen.cfg = config_load(cf, &err);
    assert_non_null(f->gen.cfg);
    f->gen.resolver = resolver_new(f->gen.cfg, &err);
    assert_non_null(f->gen.resolver);
    f->srv.gen = &f->gen;
    f->srv.base = event_base_new();
    f->srv.workq = workq_new(f->srv.base, 2);
    f->srv.spool =
        spool_open(config_get(f->gen.cfg, "queue_directory"), SPOOL_INCOMING_DELIVERY, &err);
    assert_non_null(f->srv.spool);
    spool_attach(f->srv.spool, f->srv.base, f->srv.workq);
    f->srv.qmgr = qmgr_new(&f->srv);
    buf_free(&err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* The work queue first: its last completions still call into the qmgr. */
    workq_free(f->srv.workq);
    qmgr_free(f->srv.qmgr);
    event_base_free(f->srv.base);
    spool_free(f->srv.spool);
    resolver_free(f->gen.resolver);
    config_free(f->gen.cfg);
    test_rm_rf(f->root);
    free(f);
    return 0;
}

/* Runs the loop until pred holds, for at most about 15 seconds. */
static int run_until(struct fixture *f, int (*pred)(struct fixture *))
{
    struct timeval tv = {0, 50000};
    for (int i = 0; i < 300; i++) {
        if (pred(f))
            return 1;
        event_base_loopexit(f->srv.base, &tv);
        event_base_dispatch(f->srv.base);
    }
    return pred(f);
}

static char *box(struct fixture *f, const char *local)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/data/mail/example.com/%s/new", f->root, local);
    return p;
}

static int bob_has_1(struct fixture *f)
{
    return test_count_files(box(f, "bob")) == 1;
}
static int bob_has_2(struct fixture *f)
{
    return test_count_files(box(f, "bob")) == 2;
}
static int active_empty(struct fixture *f)
{
    char p[512];
    snprintf(p, sizeof p, "%s/data/queue/active", f->root);
    return test_count_files(p) <= 0;
}
static int alice_has_bounce(struct fixture *f)
{
    return test_count_files(box(f, "alice")) == 1 && active_empty(f);
}

static void queue_msg(struct fixture *f, const char *rcpt)
{
    struct buf err = BUF_INIT;
    struct spool_msg *m = spool_msg_new(f->srv.spool, &err);
    assert_non_null(m);
    struct envelope *e = spool_msg_envelope(m);
    free(e->sender);
    e->sender = strdup("alice@example.com");
    envelope_add_rcpt(e, rcpt);
    const char *body = "From: alice@example.com\r\nSubject: q\r\n\r\nhello\r\n";
    assert_int_equal(spool_msg_write(m, body, strlen(body)), 0);
    char id[QUEUE_ID_MAX];
    snprintf(id, sizeof id, "%s", spool_msg_id(m));
    assert_int_equal(spool_msg_commit_sync(m, &err), 0);
    qmgr_kick(f->srv.qmgr, id);
    buf_free(&err);
}

static int stopped;
static void on_stopped(void *arg)
{
    (void)arg;
    stopped = 1;
}

static void test_deliver_pickup_bounce(void **state)
{
    struct fixture *f = *state;
    qmgr_start(f->srv.qmgr);
    queue_msg(f, "bob@example.com");
    assert_true(run_until(f, bob_has_1));
    assert_true(run_until(f, active_empty));

    /* sendmail's maildrop file: picked up on the tick. */
    struct envelope *e = envelope_new();
    free(e->sender);
    e->sender = strdup("alice@example.com");
    envelope_add_rcpt(e, "Bob@example.com");
    struct buf file = BUF_INIT;
    const char *msg = "Subject: dropped\r\n\r\nbody\r\n";
    pickup_encode(e, msg, strlen(msg), &file);
    char p[512];
    snprintf(p, sizeof p, "%s/data/queue/maildrop/1LGL65FDNF42HOP", f->root);
    assert_int_equal(write_file_atomic(p, file.data, file.len, 0644), 0);
    assert_true(run_until(f, bob_has_2));
    assert_true(run_until(f, active_empty));
    assert_int_equal(access(p, F_OK), -1);
    buf_free(&file);
    envelope_free(e);

    /* A mailbox path through a regular file: permanent failure, DSN to alice. */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/data/mail/example.com/broken", f->root);
    assert_int_equal(write_file_atomic(bad, "x", 1, 0600), 0);
    queue_msg(f, "broken@example.com");
    assert_true(run_until(f, alice_has_bounce));

    stopped = 0;
    qmgr_stop(f->srv.qmgr, on_stopped, NULL);
    /* The last record step may still be running on the work queue. */
    struct timeval tv = {0, 50000};
    for (int i = 0; i < 200 && !stopped; i++) {
        event_base_loopexit(f->srv.base, &tv);
        event_base_dispatch(f->srv.base);
    }
    assert_true(stopped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver_pickup_bounce, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
