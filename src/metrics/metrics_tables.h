/*
 * The status page's delivery tables, the queue manager's view and the
 * per-minute rates as they sit in the shared metrics region (metrics.c): fixed sizes, numbers and
 * bounded strings, no pointer. Inside src/metrics only; the rest of the server uses metrics.h.
 */
#ifndef HONGYAN_METRICS_METRICS_TABLES_H
#define HONGYAN_METRICS_METRICS_TABLES_H

#include <time.h>

#include "metrics/metrics.h"

/*
 * Recent deliveries (a ring) and per-domain outcome counts. One writer, the
 * process that records delivery results, under a sequence counter: seq is
 * odd while an update is under way, and a reader keeps a copy only if seq
 * was even and unchanged around it. Entries keep the public structs of
 * metrics.h (one binary, one layout: metrics_shared_attach refuses a region
 * of another size); every field is checked when read.
 */
struct metrics_tables {
    unsigned long long seq;
    unsigned long long recent_next, recent_count, ndomains;
    struct metrics_recent recent[METRICS_RECENT];
    struct metrics_domain domains[METRICS_DOMAINS];
};

/*
 * Per-minute counts, [minute slot][which] (which as metrics_rate()), each
 * word the minute it counts (high 32 bits) and its count (low 32 bits), so
 * that processes bump it with one compare-and-swap and none resets another's
 * count when the minute turns.
 */
struct metrics_rates {
    unsigned long long slot[METRICS_MINUTES][4];
};

/* Records one result; the single writer only (the delivery side's loop thread). */
void metrics_tables_record(struct metrics_tables *t, enum metrics_outcome outcome,
                           const char *relay, const char *rcpt, const char *reply, time_t when);
/*
 * A consistent copy of t, recent newest first and domains busiest first,
 * every string NUL-terminated and every entry with an outcome out of range
 * left out. 0, or -1 when the writer held the counter odd or moving for
 * every try (a writer killed mid-update: out then holds nothing).
 */
int metrics_tables_read(const struct metrics_tables *t, struct metrics_deliveries *out);

/*
 * The queue manager's view for the page and the scrape: counts and bytes of
 * the active and deferred messages, deliveries in flight, and the oldest
 * deferred message. One writer (the delivery process's queue manager, on
 * its loop thread) under the same kind of sequence counter as the tables;
 * counts and the oldest message are updated separately, each whole.
 */
struct metrics_queue {
    unsigned long long seq;
    struct metrics_queue_counts counts;
    struct metrics_oldest oldest;
};

void metrics_queue_write_counts(struct metrics_queue *mq, const struct metrics_queue_counts *c);
void metrics_queue_write_oldest(struct metrics_queue *mq, const struct metrics_oldest *o);
/*
 * A consistent copy, strings NUL-terminated (counts are taken as they are:
 * any value renders). 0, or -1 as metrics_tables_read: both then zero.
 */
int metrics_queue_read_region(const struct metrics_queue *mq, struct metrics_queue_counts *counts,
                              struct metrics_oldest *oldest);

void metrics_rates_bump(struct metrics_rates *r, int which, time_t now);
void metrics_rates_read(const struct metrics_rates *r, int which, time_t now,
                        unsigned out[METRICS_MINUTES]);

#endif
