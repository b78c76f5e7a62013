/*
 * Fuzz target: the spool journal's segment scan (src/queue/journal_scan.c).
 * Input: the first 8 bytes are the segment's number (little-endian, low
 * bits), the rest the segment's bytes after its header block. Checks that
 * every record reported lies inside the input, in order, without overlap,
 * that a valid one's header encodes back to its bytes, and that the scan
 * ends where its last valid record does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/journal.h"

/* bytes[0] is the segment's offset JOURNAL_SEG_HEADER_SIZE. */
struct check {
    const unsigned char *bytes;
    size_t len;
    uint64_t seq, next;
};

static void fuzz_on_rec(void *arg, enum journal_found what, const struct journal_rec *rec)
{
    struct check *c = arg;
    uint64_t at = rec->offset - JOURNAL_SEG_HEADER_SIZE;
    if (rec->offset < c->next || rec->len > c->len || at > c->len - rec->len)
        abort();
    c->next = rec->offset + rec->len;
    if (what != JOURNAL_FOUND_VALID)
        return;
    const unsigned char *p = c->bytes + at;
    if ((const unsigned char *)rec->env != p + JOURNAL_REC_HEADER_SIZE ||
        rec->data != rec->env + rec->env_len ||
        rec->len != journal_rec_size(rec->env_len, rec->data_len))
        abort();
    unsigned char again[JOURNAL_REC_HEADER_SIZE];
    journal_rec_header_encode(again, c->seq, rec->id, rec->env_len, rec->data_len);
    if (memcmp(again, p, sizeof again) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq |= (uint64_t)data[i] << (8 * i);
    const uint64_t base = JOURNAL_SEG_HEADER_SIZE;
    struct check c = {data + 8, size - 8, seq, base};
    struct journal_scan_stats st;
    journal_scan(data + 8, size - 8, base, seq, fuzz_on_rec, &c, &st);
    if (st.end > base + (size - 8) || st.end < base)
        abort();
    struct journal_seg_header h;
    if (journal_seg_header_decode(data, size, &h) == 0) {
        unsigned char again[JOURNAL_SEG_HEADER_ENC];
        journal_seg_header_encode(&h, again);
        if (memcmp(again, data, sizeof again) != 0)
            abort();
    }
    return 0;
}
