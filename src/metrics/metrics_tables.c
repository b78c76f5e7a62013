/*
 * The status page's delivery tables, the queue manager's view and the
 * per-minute rates in the shared metrics region (metrics_tables.h): the
 * writers under a sequence counter,
 * the reader that copies out and checks every field, and the rates bumped
 * by compare-and-swap from any process.
 *
 * Both sides treat the region as hostile. The smtpd process parses network
 * input and maps the region writable (its counters live there too), so the
 * reader never follows an index, a length or a string from it unchecked,
 * and neither does the writer when it reads back its own tables.
 */
#include "metrics/metrics_tables.h"

#include <ctype.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/*
 * How many times a reader looks before it gives up. An update copies a few
 * hundred bytes, so a live writer lets a reader through at once; only a
 * writer killed or stopped in the middle holds the counter odd for longer,
 * and then the page shows the tables as unreadable instead of waiting.
 */
#define METRICS_TABLES_READ_TRIES 100

/*
 * Relaxed atomic copies, a 64-bit word at a time: the reader's loads may
 * race with the writer's stores by design (the sequence counter tells it
 * afterwards), and atomic accesses make that race defined (Boehm, "Can
 * seqlocks get along with programming language memory models?", 2012).
 * The word type may alias the strings it carries; every struct copied is
 * 8-aligned and a whole number of words (checked below).
 */
typedef unsigned long long __attribute__((may_alias)) metrics_tables_word;
_Static_assert(sizeof(struct metrics_recent) % sizeof(metrics_tables_word) == 0,
               "recent entries are copied in whole words");
_Static_assert(sizeof(struct metrics_domain) % sizeof(metrics_tables_word) == 0,
               "domain rows are copied in whole words");
_Static_assert(sizeof(struct metrics_tables) % sizeof(metrics_tables_word) == 0,
               "the tables are copied in whole words");
_Static_assert(sizeof(struct metrics_queue_counts) % sizeof(metrics_tables_word) == 0,
               "the queue counts are copied in whole words");
_Static_assert(sizeof(struct metrics_oldest) % sizeof(metrics_tables_word) == 0,
               "the oldest deferred message is copied in whole words");
_Static_assert(sizeof(struct metrics_queue) % sizeof(metrics_tables_word) == 0,
               "the queue view is copied in whole words");

static void metrics_tables_load(void *dst, const void *src, size_t len)
{
    metrics_tables_word *d = dst;
    const metrics_tables_word *s = src;
    for (size_t i = 0; i < len / sizeof *d; i++)
        d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

static void metrics_tables_store(void *dst, const void *src, size_t len)
{
    metrics_tables_word *d = dst;
    const metrics_tables_word *s = src;
    for (size_t i = 0; i < len / sizeof *d; i++)
        __atomic_store_n(&d[i], s[i], __ATOMIC_RELAXED);
}

static unsigned long long metrics_tables_get(const unsigned long long *word)
{
    return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static void metrics_tables_set(unsigned long long *word, unsigned long long value)
{
    __atomic_store_n(word, value, __ATOMIC_RELAXED);
}

/*
 * The one sequence counter of the region, used by the tables and by the
 * queue view alike. The counter goes odd before the first store of an
 * update. An odd value found here was left by a writer killed mid-update:
 * its half-written entry is bounded when read like any other, and this
 * update closes it.
 */
static unsigned long long metrics_seq_write_begin(unsigned long long *seq)
{
    unsigned long long odd = metrics_tables_get(seq) | 1;
    metrics_tables_set(seq, odd);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return odd;
}

static void metrics_seq_write_end(unsigned long long *seq, unsigned long long odd)
{
    __atomic_store_n(seq, odd + 1, __ATOMIC_RELEASE);
}

/*
 * Copies len bytes at src, guarded by seq, into dst: 0 once a copy was
 * taken with the counter even and unchanged around it, -1 when the writer
 * held it odd or moving for every try (dst then holds garbage: the caller
 * must not use it).
 */
static int metrics_seq_read(const unsigned long long *seq, void *dst, const void *src, size_t len)
{
    for (int tries = 0; tries < METRICS_TABLES_READ_TRIES; tries++) {
        unsigned long long before = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (before & 1) {
            sched_yield(); /* an update under way: let the writer finish it */
            continue;
        }
        metrics_tables_load(dst, src, len);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (metrics_tables_get(seq) == before)
            return 0;
    }
    return -1;
}

/* Is the region's name (at most cap bytes, maybe unterminated) name, ignoring ASCII case? */
static int metrics_tables_name_is(const char *region, size_t cap, const char *name)
{
    for (size_t i = 0; i < cap; i++) {
        unsigned char c = __atomic_load_n((const unsigned char *)&region[i], __ATOMIC_RELAXED);
        if (tolower(c) != tolower((unsigned char)name[i]))
            return 0;
        if (c == 0)
            return 1;
    }
    return 0;
}

static void metrics_tables_count_domain(struct metrics_tables *t, const char *rcpt,
                                        enum metrics_outcome outcome)
{
    const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
    struct metrics_domain fresh = {0};
    /* Cut to the stored size first, so that a long domain finds its own truncated row. */
    str_copy(fresh.domain, sizeof fresh.domain, at ? at + 1 : "(none)");
    unsigned long long stored = metrics_tables_get(&t->ndomains);
    size_t n = stored < METRICS_DOMAINS ? (size_t)stored : METRICS_DOMAINS;
    size_t i;
    for (i = 0; i < n; i++)
        if (metrics_tables_name_is(t->domains[i].domain, sizeof t->domains[i].domain, fresh.domain))
            break;
    if (i == n) {
        /* A full table lumps the rest together rather than growing without bound. */
        if (n < METRICS_DOMAINS - 1) {
            n++;
        } else {
            i = METRICS_DOMAINS - 1;
            str_copy(fresh.domain, sizeof fresh.domain, "(others)");
            n = METRICS_DOMAINS;
        }
        if (!metrics_tables_name_is(t->domains[i].domain, sizeof t->domains[i].domain,
                                    fresh.domain))
            metrics_tables_store(&t->domains[i], &fresh, sizeof fresh);
        metrics_tables_set(&t->ndomains, n);
    }
    unsigned long long *count = &t->domains[i].outcome[outcome];
    metrics_tables_set(count, metrics_tables_get(count) + 1);
}

void metrics_tables_record(struct metrics_tables *t, enum metrics_outcome outcome,
                           const char *relay, const char *rcpt, const char *reply, time_t when)
{
    struct metrics_recent entry;
    memset(&entry, 0, sizeof entry); /* padding too: the region holds no stale stack bytes */
    entry.when = when;
    entry.outcome = outcome;
    str_copy(entry.rcpt, sizeof entry.rcpt, rcpt ? rcpt : "");
    str_copy(entry.relay, sizeof entry.relay, relay ? relay : "none");
    str_copy(entry.reply, sizeof entry.reply, reply ? reply : "");

    unsigned long long odd = metrics_seq_write_begin(&t->seq);
    size_t next = (size_t)(metrics_tables_get(&t->recent_next) % METRICS_RECENT);
    unsigned long long count = metrics_tables_get(&t->recent_count);
    metrics_tables_store(&t->recent[next], &entry, sizeof entry);
    metrics_tables_set(&t->recent_next, (next + 1) % METRICS_RECENT);
    metrics_tables_set(&t->recent_count, count < METRICS_RECENT ? count + 1 : METRICS_RECENT);
    metrics_tables_count_domain(t, rcpt, outcome);
    metrics_seq_write_end(&t->seq, odd);
}

static void metrics_tables_terminate(char *s, size_t size)
{
    s[size - 1] = '\0';
}

static int metrics_tables_domain_cmp(const void *a, const void *b)
{
    const struct metrics_domain *x = a, *y = b;
    unsigned long long nx = 0, ny = 0;
    for (int o = 0; o < METRICS_OUTCOME_COUNT; o++) {
        nx += x->outcome[o];
        ny += y->outcome[o];
    }
    return nx < ny ? 1 : nx > ny ? -1 : strcmp(x->domain, y->domain);
}

/* From a stable copy to the caller's view: indices bounded, strings terminated. */
static void metrics_tables_check(struct metrics_tables *copy, struct metrics_deliveries *out)
{
    size_t count =
        copy->recent_count < METRICS_RECENT ? (size_t)copy->recent_count : METRICS_RECENT;
    size_t next = (size_t)(copy->recent_next % METRICS_RECENT);
    out->nrecent = 0;
    for (size_t k = 0; k < count; k++) {
        struct metrics_recent *r = &copy->recent[(next + METRICS_RECENT - 1 - k) % METRICS_RECENT];
        if ((unsigned)r->outcome >= METRICS_OUTCOME_COUNT)
            continue;
        metrics_tables_terminate(r->rcpt, sizeof r->rcpt);
        metrics_tables_terminate(r->relay, sizeof r->relay);
        metrics_tables_terminate(r->reply, sizeof r->reply);
        out->recent[out->nrecent++] = *r;
    }
    out->ndomains = copy->ndomains < METRICS_DOMAINS ? (size_t)copy->ndomains : METRICS_DOMAINS;
    for (size_t i = 0; i < out->ndomains; i++) {
        out->domains[i] = copy->domains[i];
        metrics_tables_terminate(out->domains[i].domain, sizeof out->domains[i].domain);
    }
    qsort(out->domains, out->ndomains, sizeof out->domains[0], metrics_tables_domain_cmp);
}

int metrics_tables_read(const struct metrics_tables *t, struct metrics_deliveries *out)
{
    struct metrics_tables copy;
    out->nrecent = out->ndomains = 0;
    if (metrics_seq_read(&t->seq, &copy, t, sizeof copy) < 0)
        return -1;
    metrics_tables_check(&copy, out);
    return 0;
}

void metrics_queue_write_counts(struct metrics_queue *mq, const struct metrics_queue_counts *c)
{
    unsigned long long odd = metrics_seq_write_begin(&mq->seq);
    metrics_tables_store(&mq->counts, c, sizeof *c);
    metrics_seq_write_end(&mq->seq, odd);
}

void metrics_queue_write_oldest(struct metrics_queue *mq, const struct metrics_oldest *o)
{
    struct metrics_oldest entry;
    memset(&entry, 0, sizeof entry); /* padding and tails too: no stale stack bytes */
    str_copy(entry.id, sizeof entry.id, o->id);
    entry.arrival = o->arrival;
    str_copy(entry.recipient, sizeof entry.recipient, o->recipient);
    str_copy(entry.reason, sizeof entry.reason, o->reason);
    unsigned long long odd = metrics_seq_write_begin(&mq->seq);
    metrics_tables_store(&mq->oldest, &entry, sizeof entry);
    metrics_seq_write_end(&mq->seq, odd);
}

int metrics_queue_read_region(const struct metrics_queue *mq, struct metrics_queue_counts *counts,
                              struct metrics_oldest *oldest)
{
    struct metrics_queue copy;
    memset(counts, 0, sizeof *counts);
    memset(oldest, 0, sizeof *oldest);
    if (metrics_seq_read(&mq->seq, &copy, mq, sizeof copy) < 0)
        return -1;
    *counts = copy.counts;
    *oldest = copy.oldest;
    metrics_tables_terminate(oldest->id, sizeof oldest->id);
    metrics_tables_terminate(oldest->recipient, sizeof oldest->recipient);
    metrics_tables_terminate(oldest->reason, sizeof oldest->reason);
    return 0;
}

#define METRICS_RATE_COUNT_MAX 0xffffffffULL

void metrics_rates_bump(struct metrics_rates *r, int which, time_t now)
{
    unsigned long long minute = (unsigned long long)(now / 60) & 0xffffffffULL;
    unsigned long long *word = &r->slot[minute % METRICS_MINUTES][which];
    unsigned long long old = __atomic_load_n(word, __ATOMIC_RELAXED), next;
    do {
        if (old >> 32 == minute) {
            if ((old & METRICS_RATE_COUNT_MAX) == METRICS_RATE_COUNT_MAX)
                return; /* saturated: a carry must not change the minute */
            next = old + 1;
        } else {
            next = minute << 32 | 1; /* the first count of a new minute in this slot */
        }
    } while (!__atomic_compare_exchange_n(word, &old, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

void metrics_rates_read(const struct metrics_rates *r, int which, time_t now,
                        unsigned out[METRICS_MINUTES])
{
    unsigned long long current = (unsigned long long)(now / 60);
    for (int k = 0; k < METRICS_MINUTES; k++) {
        unsigned long long minute =
            (current - (unsigned long long)(METRICS_MINUTES - 1 - k)) & 0xffffffffULL;
        unsigned long long word =
            __atomic_load_n(&r->slot[minute % METRICS_MINUTES][which], __ATOMIC_RELAXED);
        out[k] = word >> 32 == minute ? (unsigned)(word & METRICS_RATE_COUNT_MAX) : 0;
    }
}
