/*
 * The queue manager's per-next-hop lines (src/qmgr/qmgr_dest.c) on their
 * own: a next hop never runs more than its limit, the global limit holds
 * over all next hops, a slot freed goes to its own next hop first and then
 * to the next hops that waited only for the global limit, oldest first, and
 * a next hop with nothing left is forgotten.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "qmgr/qmgr_int.h"

struct delivery {
    struct qslot slot;
    const char *name;
    int started;
};

static const char *started_order[32];
static int nstarted;

static void delivery_start(struct qslot *s)
{
    struct delivery *d = (struct delivery *)s;
    d->started = 1;
    started_order[nstarted++] = d->name;
}

static int ncancelled;

static void delivery_cancel(struct qslot *s)
{
    (void)s;
    ncancelled++;
}

static void delivery_init(struct delivery *d, const char *name)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    d->slot.start = delivery_start;
    d->slot.cancel = delivery_cancel;
}

static int setup(void **state)
{
    static struct qmgr q;
    memset(&q, 0, sizeof q);
    q.process_limit = 100;
    nstarted = 0;
    ncancelled = 0;
    *state = &q;
    return 0;
}

static int teardown(void **state)
{
    qmgr_dest_free_all(*state);
    return 0;
}

static void test_a_next_hop_runs_at_most_its_limit(void **state)
{
    struct qmgr *q = *state;
    struct delivery slow[5], fast;
    for (int i = 0; i < 5; i++) {
        delivery_init(&slow[i], "slow");
        qmgr_dest_submit(q, "smtp|slow.test|25|1", 2, &slow[i].slot);
    }
    assert_int_equal(nstarted, 2);
    assert_false(slow[2].started);
    /* Another next hop is not held up by the first one's line. */
    delivery_init(&fast, "fast");
    qmgr_dest_submit(q, "smtp|fast.test|25|1", 2, &fast.slot);
    assert_true(fast.started);
    assert_int_equal(q->running, 3);
    /* A slot freed at slow.test goes to the next in its line. */
    qmgr_dest_done(q, &slow[0].slot);
    assert_true(slow[2].started);
    assert_false(slow[3].started);
    assert_int_equal(q->running, 3);
    qmgr_dest_done(q, &fast.slot);
    assert_int_equal(q->ndests, 1); /* fast.test had nothing left: forgotten */
    qmgr_dest_done(q, &slow[1].slot);
    qmgr_dest_done(q, &slow[2].slot);
    assert_true(slow[3].started && slow[4].started);
    qmgr_dest_done(q, &slow[3].slot);
    qmgr_dest_done(q, &slow[4].slot);
    assert_int_equal(q->running, 0);
    assert_int_equal(q->ndests, 0);
}

static void test_the_global_limit_is_shared_oldest_waiter_first(void **state)
{
    struct qmgr *q = *state;
    q->process_limit = 2;
    struct delivery a1, a2, b1, c1;
    delivery_init(&a1, "a1");
    delivery_init(&a2, "a2");
    delivery_init(&b1, "b1");
    delivery_init(&c1, "c1");
    qmgr_dest_submit(q, "a", 10, &a1.slot);
    qmgr_dest_submit(q, "a", 10, &a2.slot);
    qmgr_dest_submit(q, "b", 10, &b1.slot); /* waits for the global limit */
    qmgr_dest_submit(q, "c", 10, &c1.slot); /* too, after b */
    assert_int_equal(nstarted, 2);
    assert_false(b1.started || c1.started);
    /* a has nothing more waiting: its slot goes to b, the oldest waiter. */
    qmgr_dest_done(q, &a1.slot);
    assert_true(b1.started);
    assert_false(c1.started);
    qmgr_dest_done(q, &a2.slot);
    assert_true(c1.started);
    assert_string_equal(started_order[2], "b1");
    assert_string_equal(started_order[3], "c1");
    qmgr_dest_done(q, &b1.slot);
    qmgr_dest_done(q, &c1.slot);
    assert_int_equal(q->running, 0);
    assert_int_equal(q->ndests, 0);
}

static void test_a_freed_slot_serves_its_own_next_hop_first(void **state)
{
    struct qmgr *q = *state;
    q->process_limit = 1;
    struct delivery a1, a2, b1;
    delivery_init(&a1, "a1");
    delivery_init(&a2, "a2");
    delivery_init(&b1, "b1");
    qmgr_dest_submit(q, "a", 5, &a1.slot);
    qmgr_dest_submit(q, "b", 5, &b1.slot);
    qmgr_dest_submit(q, "a", 5, &a2.slot);
    /* The connection a1 leaves in the cache is reused by a2 before b1 opens one. */
    qmgr_dest_done(q, &a1.slot);
    assert_true(a2.started);
    assert_false(b1.started);
    qmgr_dest_done(q, &a2.slot);
    assert_true(b1.started);
    qmgr_dest_done(q, &b1.slot);
    assert_int_equal(q->ndests, 0);
}

static void test_a_stop_cancels_what_waits_not_what_runs(void **state)
{
    struct qmgr *q = *state;
    q->process_limit = 2;
    struct delivery d[4];
    for (int i = 0; i < 4; i++) {
        delivery_init(&d[i], "d");
        qmgr_dest_submit(q, i < 3 ? "a" : "b", 1, &d[i].slot);
    }
    assert_int_equal(nstarted, 2); /* a's first, b's one; a's other two wait */
    qmgr_dest_cancel_waiting(q);
    assert_int_equal(ncancelled, 2);
    qmgr_dest_done(q, &d[0].slot);
    qmgr_dest_done(q, &d[3].slot);
    assert_int_equal(nstarted, 2);
    assert_int_equal(q->running, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_next_hop_runs_at_most_its_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_global_limit_is_shared_oldest_waiter_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_freed_slot_serves_its_own_next_hop_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_stop_cancels_what_waits_not_what_runs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
