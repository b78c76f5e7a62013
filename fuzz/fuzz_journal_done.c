/*
 * Fuzz target: the spool journal's done-log parser (src/queue/journal_scan.c).
 * Input: the first 8 bytes are the segment's number (little-endian), the
 * rest a done-log. Every record reported must encode back to bytes found at
 * a record boundary of the input, in order; journal_done_used must leave
 * only zeros after it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/journal.h"

struct check {
    const unsigned char *log;
    size_t len, at;
    uint64_t seq;
    size_t reported;
};

static void fuzz_on_done(void *arg, uint64_t offset, enum journal_done_kind kind)
{
    struct check *c = arg;
    unsigned char again[JOURNAL_DONE_REC_SIZE];
    journal_done_encode(again, c->seq, offset, kind);
    /* The next record boundary at or after the last one reported holding these bytes. */
    while (c->at + JOURNAL_DONE_REC_SIZE <= c->len &&
           memcmp(c->log + c->at, again, sizeof again) != 0)
        c->at += JOURNAL_DONE_REC_SIZE;
    if (c->at + JOURNAL_DONE_REC_SIZE > c->len)
        abort();
    c->at += JOURNAL_DONE_REC_SIZE;
    c->reported++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq |= (uint64_t)data[i] << (8 * i);
    struct check c = {data + 8, size - 8, 0, seq, 0};
    size_t skipped = journal_done_parse(data + 8, size - 8, seq, fuzz_on_done, &c);
    size_t whole = (size - 8) / JOURNAL_DONE_REC_SIZE + ((size - 8) % JOURNAL_DONE_REC_SIZE != 0);
    /* Slots of zeros (preallocated, unwritten) are neither reported nor skipped. */
    static const unsigned char unwritten[JOURNAL_DONE_REC_SIZE];
    size_t zero_slots = 0;
    for (size_t at = 8; size - at >= JOURNAL_DONE_REC_SIZE; at += JOURNAL_DONE_REC_SIZE)
        zero_slots += memcmp(data + at, unwritten, sizeof unwritten) == 0;
    if (c.reported + skipped + zero_slots != whole)
        abort();
    /* The next record goes after every slot that holds anything; only zeros follow. */
    size_t used = journal_done_used(data + 8, size - 8);
    if (used % JOURNAL_DONE_REC_SIZE || used > whole * JOURNAL_DONE_REC_SIZE)
        abort();
    for (size_t at = 8 + used; at < size; at++)
        if (data[at] != 0)
            abort();
    return 0;
}
