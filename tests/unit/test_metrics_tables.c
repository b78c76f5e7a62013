/*
 * Unit tests for the status page's tables in the shared metrics region
 * (metrics_tables.c): the sequence-counter read under a concurrent writer
 * thread, a writer killed mid-update, a region full of garbage, the same
 * for the queue manager's view, and the per-minute rates bumped by two
 * threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/buf.h"
#include "metrics/metrics.h"
#include "metrics/metrics_status.h"
#include "metrics/metrics_tables.h"

/*
 * The writer runs for at least WRITES updates and until the reader has kept
 * OVERLAPPED copies during which the writer moved the counter (the reads a
 * reader without the counter would see torn: on a busy machine the two
 * threads may seldom run at once, so time alone proves nothing), and at
 * most MAX_WRITES.
 */
#define WRITES 20000
#define OVERLAPPED 200
#define MAX_WRITES 3000000
#define DOMAINS 7

/* Delivery n's fields all carry n, so a copy mixing two updates shows. */
static void fields_of(unsigned n, char *rcpt, size_t rcpt_size, char *relay, size_t relay_size,
                      char *reply, size_t reply_size)
{
    snprintf(rcpt, rcpt_size, "user%u@d%u.test", n, n % DOMAINS);
    snprintf(relay, relay_size, "mx%u.d%u.test[192.0.2.%u]:25", n, n % DOMAINS, n % 250);
    snprintf(reply, reply_size, "250 2.0.0 Ok: queued as N%u (delivery %u)", n, n);
}

struct writer {
    struct metrics_tables *tables;
    int enough; /* set by the reader */
    int done;
    unsigned writes;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char rcpt[64], relay[64], reply[96];
    unsigned n;
    for (n = 0; n < MAX_WRITES; n++) {
        if (n >= WRITES && __atomic_load_n(&w->enough, __ATOMIC_ACQUIRE))
            break;
        fields_of(n, rcpt, sizeof rcpt, relay, sizeof relay, reply, sizeof reply);
        metrics_tables_record(w->tables, (enum metrics_outcome)(n % METRICS_OUTCOME_COUNT), relay,
                              rcpt, reply, (time_t)n);
    }
    w->writes = n;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Every copy the reader keeps is one state the writer made: n consecutive, counts exact. */
static void check_consistent(const struct metrics_deliveries *d)
{
    if (d->nrecent == 0) {
        assert_int_equal(d->ndomains, 0);
        return;
    }
    unsigned last;
    assert_int_equal(sscanf(d->recent[0].rcpt, "user%u@", &last), 1);
    assert_int_equal(d->nrecent, last + 1 < METRICS_RECENT ? last + 1 : METRICS_RECENT);
    char rcpt[64], relay[64], reply[96];
    for (size_t k = 0; k < d->nrecent; k++) {
        unsigned n = last - (unsigned)k;
        fields_of(n, rcpt, sizeof rcpt, relay, sizeof relay, reply, sizeof reply);
        assert_string_equal(d->recent[k].rcpt, rcpt);
        assert_string_equal(d->recent[k].relay, relay);
        assert_string_equal(d->recent[k].reply, reply);
        assert_int_equal(d->recent[k].outcome, n % METRICS_OUTCOME_COUNT);
        assert_int_equal(d->recent[k].when, (time_t)n);
    }
    /* Deliveries 0..last went to domain n % DOMAINS with outcome n % 3. */
    unsigned long long want[DOMAINS][METRICS_OUTCOME_COUNT] = {{0}};
    for (unsigned r = 0; r < DOMAINS * METRICS_OUTCOME_COUNT; r++) /* n mod 21 fixes both */
        if (r <= last)
            want[r % DOMAINS][r % METRICS_OUTCOME_COUNT] +=
                (last - r) / (DOMAINS * METRICS_OUTCOME_COUNT) + 1;
    assert_int_equal(d->ndomains, last + 1 < DOMAINS ? last + 1 : DOMAINS);
    for (size_t i = 0; i < d->ndomains; i++) {
        unsigned k;
        assert_int_equal(sscanf(d->domains[i].domain, "d%u.test", &k), 1);
        assert_true(k < DOMAINS);
        for (int o = 0; o < METRICS_OUTCOME_COUNT; o++)
            assert_int_equal(d->domains[i].outcome[o], want[k][o]);
    }
}

static void test_read_under_a_concurrent_writer(void **state)
{
    (void)state;
    static struct metrics_tables tables;
    static struct metrics_deliveries d;
    memset(&tables, 0, sizeof tables);
    struct writer w = {.tables = &tables};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
    unsigned copies = 0, overlapped = 0, refusals = 0;
    while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) {
        unsigned long long before = __atomic_load_n(&tables.seq, __ATOMIC_ACQUIRE);
        if (metrics_tables_read(&tables, &d) == 0) {
            check_consistent(&d);
            copies++;
            if (__atomic_load_n(&tables.seq, __ATOMIC_ACQUIRE) != before &&
                ++overlapped == OVERLAPPED)
                __atomic_store_n(&w.enough, 1, __ATOMIC_RELEASE);
        } else {
            refusals++;
        }
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(metrics_tables_read(&tables, &d), 0);
    check_consistent(&d);
    char last[64];
    snprintf(last, sizeof last, "user%u@d%u.test", w.writes - 1, (w.writes - 1) % DOMAINS);
    assert_string_equal(d.recent[0].rcpt, last);
    /* The reader got through while the writer ran, not only once it had finished. */
    assert_true(overlapped > 0);
    print_message("%u consistent copies (%u while the writer wrote), %u reads gave up, during %u "
                  "writes\n",
                  copies, overlapped, refusals, w.writes);
}

static void test_writer_killed_mid_update(void **state)
{
    (void)state;
    static struct metrics_tables tables;
    static struct metrics_deliveries d;
    memset(&tables, 0, sizeof tables);
    metrics_tables_record(&tables, METRICS_SENT, "local", "a@x.test", "ok", 1);
    metrics_tables_record(&tables, METRICS_BOUNCED, "local", "b@y.test", "550 no", 2);
    /* What a writer killed between its first and last store leaves behind. */
    tables.seq++;
    assert_int_equal(metrics_tables_read(&tables, &d), -1);
    assert_int_equal(d.nrecent, 0);
    assert_int_equal(d.ndomains, 0);
    /* The next writer (a restarted delivery process) closes the update and carries on. */
    metrics_tables_record(&tables, METRICS_DEFERRED, "none", "c@x.test", "451 later", 3);
    assert_int_equal(tables.seq % 2, 0);
    assert_int_equal(metrics_tables_read(&tables, &d), 0);
    assert_int_equal(d.nrecent, 3);
    assert_string_equal(d.recent[0].rcpt, "c@x.test");
    assert_string_equal(d.recent[2].rcpt, "a@x.test");
    assert_int_equal(d.ndomains, 2);
    assert_string_equal(d.domains[0].domain, "x.test"); /* the busiest first */
    assert_int_equal(d.domains[0].outcome[METRICS_DEFERRED], 1);
}

static void assert_terminated(const char *s, size_t size)
{
    assert_non_null(memchr(s, '\0', size));
}

static void test_garbage_region(void **state)
{
    (void)state;
    static struct metrics_tables tables;
    static struct metrics_deliveries d;
    /* No NUL anywhere, indices and counts far out of range, outcomes invalid. */
    memset(&tables, '<', sizeof tables);
    tables.seq = 0x3c3c3c3c3c3c3c3cULL; /* even, so the reader takes it */
    assert_int_equal(metrics_tables_read(&tables, &d), 0);
    assert_true(d.nrecent <= METRICS_RECENT);
    assert_int_equal(d.nrecent, 0); /* every outcome is out of range: no entry kept */
    assert_int_equal(d.ndomains, METRICS_DOMAINS);
    for (size_t i = 0; i < d.ndomains; i++)
        assert_terminated(d.domains[i].domain, sizeof d.domains[i].domain);
    /* Valid outcomes, unterminated strings: kept, cut at the field's end. */
    for (size_t k = 0; k < METRICS_RECENT; k++)
        tables.recent[k].outcome = METRICS_SENT;
    assert_int_equal(metrics_tables_read(&tables, &d), 0);
    assert_int_equal(d.nrecent, METRICS_RECENT);
    for (size_t k = 0; k < d.nrecent; k++) {
        assert_int_equal(strlen(d.recent[k].rcpt), sizeof d.recent[k].rcpt - 1);
        assert_terminated(d.recent[k].relay, sizeof d.recent[k].relay);
        assert_terminated(d.recent[k].reply, sizeof d.recent[k].reply);
    }
    /* The writer bounds what it reads back too, and its entry comes out whole. */
    metrics_tables_record(&tables, METRICS_SENT, "local", "z@z.test", "ok", 5);
    assert_int_equal(metrics_tables_read(&tables, &d), 0);
    assert_string_equal(d.recent[0].rcpt, "z@z.test");
    int found = 0;
    for (size_t i = 0; i < d.ndomains; i++)
        found |= strcmp(d.domains[i].domain, "(others)") == 0;
    assert_true(found); /* the table was full: the new domain went to the shared row */
}

/* Through the public path: a region of garbage attached, then the page rendered from it. */
static void test_status_page_from_a_garbage_region(void **state)
{
    (void)state;
    int fd = memfd_create("test-metrics", MFD_CLOEXEC);
    assert_true(fd >= 0);
    size_t size = metrics_shared_size();
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    unsigned char *raw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(raw != MAP_FAILED);
    for (size_t i = 0; i < size; i++)
        raw[i] = (unsigned char)(i % 7 == 0 ? '<' : 0x80 + i % 64);
    assert_int_equal(metrics_shared_attach(fd), 0);
    close(fd);
    struct buf page = BUF_INIT;
    struct metrics_gauges g = {0};
    struct metrics_oldest oldest = {0};
    metrics_status_render(&page, "mx.example.com", &g, &oldest);
    /* The queue view as read from the garbage: shown, but never as markup. */
    (void)metrics_queue_read(&g, &oldest);
    assert_true(g.deliveries_in_flight >= 0);
    metrics_status_render(&page, "mx.example.com", &g, &oldest);
    metrics_delivery(METRICS_SENT, "local", "new@example.com", "250 ok", 1);
    metrics_status_render(&page, "mx.example.com", &g, &oldest);
    assert_non_null(strstr(buf_cstr(&page), "new@example.com"));
    /* Region bytes come out escaped: no '<' from it opens a tag. */
    assert_null(strstr(buf_cstr(&page), "<<"));
    buf_free(&page);
    munmap(raw, size);
}

/* Update n of the queue view: every count and string derived from n. */
static void queue_fields_of(unsigned n, struct metrics_queue_counts *c, struct metrics_oldest *o)
{
    for (int s = 0; s < 2; s++) {
        c->messages[s] = (unsigned long long)n * (s + 2);
        c->bytes[s] = (unsigned long long)n * (s + 2) * 1000;
    }
    c->in_flight = n;
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "Q%u", n);
    o->arrival = (time_t)n;
    snprintf(o->recipient, sizeof o->recipient, "rcpt%u@d.test", n);
    snprintf(o->reason, sizeof o->reason, "451 4.4.1 attempt %u: connection refused", n);
}

struct queue_writer {
    struct metrics_queue *queue;
    int enough, done;
    unsigned writes;
};

static void *queue_writer_main(void *arg)
{
    struct queue_writer *w = arg;
    struct metrics_queue_counts c;
    struct metrics_oldest o;
    unsigned n;
    for (n = 1; n < MAX_WRITES; n++) {
        if (n >= WRITES && __atomic_load_n(&w->enough, __ATOMIC_ACQUIRE))
            break;
        queue_fields_of(n, &c, &o);
        metrics_queue_write_counts(w->queue, &c);
        metrics_queue_write_oldest(w->queue, &o);
    }
    w->writes = n - 1;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A copy holds the counts of update n and the oldest of update n or n - 1 (written after). */
static void check_queue_consistent(const struct metrics_queue_counts *c,
                                   const struct metrics_oldest *o)
{
    unsigned n = (unsigned)c->in_flight;
    struct metrics_queue_counts want;
    struct metrics_oldest want_oldest;
    queue_fields_of(n, &want, &want_oldest);
    assert_memory_equal(c, &want, sizeof want);
    if (n == 0 || strcmp(o->id, want_oldest.id) != 0)
        queue_fields_of(n ? n - 1 : 0, &want, &want_oldest);
    if (n <= 1 && o->id[0] == '\0')
        return; /* nothing written yet, or counts 1 before its oldest */
    assert_string_equal(o->id, want_oldest.id);
    assert_int_equal(o->arrival, want_oldest.arrival);
    assert_string_equal(o->recipient, want_oldest.recipient);
    assert_string_equal(o->reason, want_oldest.reason);
}

static void test_queue_view_under_a_concurrent_writer(void **state)
{
    (void)state;
    static struct metrics_queue queue;
    memset(&queue, 0, sizeof queue);
    struct queue_writer w = {.queue = &queue};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, queue_writer_main, &w), 0);
    unsigned copies = 0, overlapped = 0;
    struct metrics_queue_counts c;
    struct metrics_oldest o;
    while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) {
        unsigned long long before = __atomic_load_n(&queue.seq, __ATOMIC_ACQUIRE);
        if (metrics_queue_read_region(&queue, &c, &o) == 0) {
            check_queue_consistent(&c, &o);
            copies++;
            if (__atomic_load_n(&queue.seq, __ATOMIC_ACQUIRE) != before &&
                ++overlapped == OVERLAPPED)
                __atomic_store_n(&w.enough, 1, __ATOMIC_RELEASE);
        }
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(metrics_queue_read_region(&queue, &c, &o), 0);
    assert_int_equal(c.in_flight, w.writes);
    check_queue_consistent(&c, &o);
    assert_true(overlapped > 0);
    print_message("queue view: %u consistent copies (%u while the writer wrote) during %u writes\n",
                  copies, overlapped, w.writes);
}

static void test_queue_view_killed_writer_and_garbage(void **state)
{
    (void)state;
    static struct metrics_queue queue;
    struct metrics_queue_counts c;
    struct metrics_oldest o;
    memset(&queue, 0, sizeof queue);
    queue_fields_of(7, &c, &o);
    metrics_queue_write_counts(&queue, &c);
    metrics_queue_write_oldest(&queue, &o);
    /* A writer killed mid-update: no copy, and the caller gets zeroes, not half an update. */
    queue.seq++;
    assert_int_equal(metrics_queue_read_region(&queue, &c, &o), -1);
    assert_int_equal(c.messages[0] + c.messages[1] + c.bytes[0] + c.bytes[1] + c.in_flight, 0);
    assert_string_equal(o.id, "");
    /* Garbage with an even counter: taken, every string cut at its field's end. */
    memset(&queue, '<', sizeof queue);
    queue.seq = 0x3c3c3c3c3c3c3c3cULL;
    assert_int_equal(metrics_queue_read_region(&queue, &c, &o), 0);
    assert_int_equal(strlen(o.id), sizeof o.id - 1);
    assert_int_equal(strlen(o.recipient), sizeof o.recipient - 1);
    assert_int_equal(strlen(o.reason), sizeof o.reason - 1);
    /* A restarted writer closes whatever it finds and its updates come out whole. */
    queue.seq |= 1;
    struct metrics_queue_counts fresh = {.messages = {1, 2}, .bytes = {300, 400}, .in_flight = 1};
    struct metrics_oldest none = {0};
    metrics_queue_write_counts(&queue, &fresh);
    metrics_queue_write_oldest(&queue, &none);
    assert_int_equal(queue.seq % 2, 0);
    assert_int_equal(metrics_queue_read_region(&queue, &c, &o), 0);
    assert_memory_equal(&c, &fresh, sizeof fresh);
    assert_string_equal(o.id, "");
    assert_string_equal(o.reason, "");
}

struct bumper {
    struct metrics_rates *rates;
    time_t now;
};

static void *bumper_main(void *arg)
{
    struct bumper *b = arg;
    for (int i = 0; i < WRITES; i++)
        metrics_rates_bump(b->rates, 1, b->now);
    return NULL;
}

static void test_rates_two_writers(void **state)
{
    (void)state;
    static struct metrics_rates rates;
    memset(&rates, 0, sizeof rates);
    time_t now = 1700000000;
    struct bumper b = {&rates, now};
    pthread_t one, two;
    assert_int_equal(pthread_create(&one, NULL, bumper_main, &b), 0);
    assert_int_equal(pthread_create(&two, NULL, bumper_main, &b), 0);
    assert_int_equal(pthread_join(one, NULL), 0);
    assert_int_equal(pthread_join(two, NULL), 0);
    unsigned out[METRICS_MINUTES];
    metrics_rates_read(&rates, 1, now, out);
    assert_int_equal(out[METRICS_MINUTES - 1], 2 * WRITES);
    assert_int_equal(out[METRICS_MINUTES - 2], 0);
    /* Half an hour later the slot is reused: the old count is not carried into the new minute. */
    time_t later = now + 60 * METRICS_MINUTES;
    metrics_rates_bump(&rates, 1, later);
    metrics_rates_read(&rates, 1, later, out);
    assert_int_equal(out[METRICS_MINUTES - 1], 1);
    metrics_rates_read(&rates, 1, now + 60, out);
    assert_int_equal(out[METRICS_MINUTES - 2], 0); /* now's minute was overwritten */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_under_a_concurrent_writer),
        cmocka_unit_test(test_writer_killed_mid_update),
        cmocka_unit_test(test_garbage_region),
        cmocka_unit_test(test_queue_view_under_a_concurrent_writer),
        cmocka_unit_test(test_queue_view_killed_writer_and_garbage),
        cmocka_unit_test(test_status_page_from_a_garbage_region),
        cmocka_unit_test(test_rates_two_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
