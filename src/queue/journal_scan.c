/*
 * The journal's on-disk format (queue/journal.h): encoding and parsing of
 * segment headers, records and done-log records, and the scan of a
 * segment's bytes. Nothing here touches a file, so the fuzz targets and the
 * unit tests run it on any bytes.
 */
#include "queue/journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/crc32c.h"
#include "lib/util.h"
#include "queue/spool.h"

#define JOURNAL_SEG_MAGIC "HYJSEG\0\1" /* 8 bytes: the format's version in the last */
#define JOURNAL_REC_MAGIC 0x524A5948u  /* "HYJR" */
#define JOURNAL_DONE_MAGIC 0x444A5948u /* "HYJD" */
#define JOURNAL_REC_VERSION 1u

void journal_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void journal_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t journal_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t journal_get_u64(const unsigned char *p)
{
    return (uint64_t)journal_get_u32(p) | (uint64_t)journal_get_u32(p + 4) << 32;
}

void journal_seg_header_encode(const struct journal_seg_header *h,
                               unsigned char out[JOURNAL_SEG_HEADER_ENC])
{
    memcpy(out, JOURNAL_SEG_MAGIC, 8);
    journal_put_u64(out + 8, h->seq);
    journal_put_u64(out + 16, h->synced_end);
    journal_put_u32(out + 24, crc32c(0, out, 24));
}

int journal_seg_header_decode(const void *buf, size_t len, struct journal_seg_header *h)
{
    const unsigned char *p = buf;
    if (len < JOURNAL_SEG_HEADER_ENC || memcmp(p, JOURNAL_SEG_MAGIC, 8) != 0 ||
        journal_get_u32(p + 24) != crc32c(0, p, 24))
        return -1;
    h->seq = journal_get_u64(p + 8);
    h->synced_end = journal_get_u64(p + 16);
    if (h->seq == 0 || h->synced_end < JOURNAL_SEG_HEADER_SIZE)
        return -1;
    return 0;
}

uint64_t journal_rec_size(size_t env_len, size_t data_len)
{
    if (env_len == 0 || env_len > JOURNAL_ENV_MAX ||
        data_len > JOURNAL_SEGMENT_SIZE - JOURNAL_SEG_HEADER_SIZE)
        return 0;
    uint64_t size =
        (uint64_t)JOURNAL_REC_HEADER_SIZE + env_len + data_len + JOURNAL_REC_TRAILER_SIZE;
    return size <= JOURNAL_SEGMENT_SIZE - JOURNAL_SEG_HEADER_SIZE ? size : 0;
}

/*
 * Header layout: magic (4), version (2), flags (2), seq (8), env_len (4),
 * data_len (4), queue id (16, NUL-padded), reserved (4), CRC-32C of the 44
 * bytes before it (4).
 */
void journal_rec_header_encode(unsigned char out[JOURNAL_REC_HEADER_SIZE], uint64_t seq,
                               const char *id, size_t env_len, size_t data_len)
{
    memset(out, 0, JOURNAL_REC_HEADER_SIZE);
    journal_put_u32(out, JOURNAL_REC_MAGIC);
    out[4] = JOURNAL_REC_VERSION;
    journal_put_u64(out + 8, seq);
    journal_put_u32(out + 16, (uint32_t)env_len);
    journal_put_u32(out + 20, (uint32_t)data_len);
    size_t idlen = strnlen(id, JOURNAL_ID_FIELD - 1);
    memcpy(out + 24, id, idlen);
    journal_put_u32(out + 44, crc32c(0, out, 44));
}

/* The header at p (JOURNAL_REC_HEADER_SIZE bytes) if it is one of segment seq; -1 if not. */
static int journal_rec_header_decode(const unsigned char *p, uint64_t seq, struct journal_rec *rec)
{
    if (journal_get_u32(p) != JOURNAL_REC_MAGIC || p[4] != JOURNAL_REC_VERSION || p[5] != 0 ||
        p[6] != 0 || p[7] != 0 || journal_get_u32(p + 40) != 0 ||
        journal_get_u32(p + 44) != crc32c(0, p, 44) || journal_get_u64(p + 8) != seq)
        return -1;
    /* The id: NUL-padded, a queue id (which keeps it a safe file name later). */
    char id[JOURNAL_ID_FIELD];
    memcpy(id, p + 24, JOURNAL_ID_FIELD);
    if (id[JOURNAL_ID_FIELD - 1] != '\0' || !spool_valid_id(id))
        return -1;
    for (size_t i = strlen(id); i < JOURNAL_ID_FIELD; i++)
        if (id[i] != '\0')
            return -1;
    rec->env_len = journal_get_u32(p + 16);
    rec->data_len = journal_get_u32(p + 20);
    rec->len = journal_rec_size(rec->env_len, rec->data_len);
    if (rec->len == 0)
        return -1;
    str_copy(rec->id, sizeof rec->id, id);
    return 0;
}

enum journal_parse journal_rec_parse(const void *bytes, size_t len, uint64_t base, uint64_t off,
                                     uint64_t seq, struct journal_rec *rec)
{
    const unsigned char *p = bytes;
    memset(rec, 0, sizeof *rec);
    if (base < JOURNAL_SEG_HEADER_SIZE || off < base || off - base > len ||
        len - (off - base) < JOURNAL_REC_HEADER_SIZE)
        return JOURNAL_REC_END;
    const unsigned char *at = p + (off - base);
    if (journal_rec_header_decode(at, seq, rec) < 0)
        return JOURNAL_REC_END;
    /* A record straddling the end of what was read was not written whole. */
    if (rec->len > len - (off - base))
        return JOURNAL_REC_END;
    rec->offset = off;
    rec->env = (const char *)at + JOURNAL_REC_HEADER_SIZE;
    rec->data = rec->env + rec->env_len;
    size_t body = JOURNAL_REC_HEADER_SIZE + rec->env_len + rec->data_len;
    if (journal_get_u32(at + body) != crc32c(0, at, body)) {
        rec->env = rec->data = NULL;
        return JOURNAL_REC_DAMAGED;
    }
    return JOURNAL_REC_VALID;
}

void journal_scan(const void *bytes, size_t len, uint64_t base, uint64_t seq, journal_scan_fn fn,
                  void *arg, struct journal_scan_stats *stats)
{
    struct journal_scan_stats st = {.end = base};
    /*
     * Damaged records are reported only once a valid record after them
     * shows they are not a torn tail: first_damaged remembers where the run
     * of damaged ones began, and is walked again by their lengths then.
     */
    uint64_t off = base, first_damaged = 0;
    size_t run = 0;
    struct journal_rec rec;
    for (;;) {
        enum journal_parse r = journal_rec_parse(bytes, len, base, off, seq, &rec);
        if (r == JOURNAL_REC_END)
            break;
        if (r == JOURNAL_REC_DAMAGED) {
            if (run++ == 0)
                first_damaged = off;
        } else {
            for (uint64_t d = first_damaged; run > 0; run--) {
                struct journal_rec bad;
                journal_rec_parse(bytes, len, base, d, seq, &bad);
                fn(arg, JOURNAL_FOUND_DAMAGED, &bad);
                st.damaged++;
                d += bad.len;
            }
            fn(arg, JOURNAL_FOUND_VALID, &rec);
            st.valid++;
            st.end = off + rec.len;
        }
        off += rec.len;
    }
    st.torn = run;
    if (stats)
        *stats = st;
}

/* Done-log record: magic (4), kind (1), zero (3), seq (8), offset (8), zero (4), CRC-32C (4). */
void journal_done_encode(unsigned char out[JOURNAL_DONE_REC_SIZE], uint64_t seq, uint64_t offset,
                         enum journal_done_kind kind)
{
    memset(out, 0, JOURNAL_DONE_REC_SIZE);
    journal_put_u32(out, JOURNAL_DONE_MAGIC);
    out[4] = (unsigned char)kind;
    journal_put_u64(out + 8, seq);
    journal_put_u64(out + 16, offset);
    journal_put_u32(out + 28, crc32c(0, out, 28));
}

size_t journal_done_parse(const void *buf, size_t len, uint64_t seq, journal_done_fn fn, void *arg)
{
    const unsigned char *p = buf;
    size_t skipped = 0;
    for (size_t at = 0; len - at >= JOURNAL_DONE_REC_SIZE; at += JOURNAL_DONE_REC_SIZE) {
        static const unsigned char unwritten[JOURNAL_DONE_REC_SIZE];
        const unsigned char *r = p + at;
        if (memcmp(r, unwritten, sizeof unwritten) == 0)
            continue; /* preallocated, not written yet (journal_done_write) */
        unsigned kind = r[4];
        uint64_t offset = journal_get_u64(r + 16);
        if (journal_get_u32(r) != JOURNAL_DONE_MAGIC ||
            (kind != JOURNAL_DONE && kind != JOURNAL_MOVED) || r[5] || r[6] || r[7] ||
            journal_get_u32(r + 24) != 0 || journal_get_u32(r + 28) != crc32c(0, r, 28) ||
            journal_get_u64(r + 8) != seq || offset < JOURNAL_SEG_HEADER_SIZE) {
            skipped++;
            continue;
        }
        fn(arg, offset, (enum journal_done_kind)kind);
    }
    if (len % JOURNAL_DONE_REC_SIZE)
        skipped++; /* a torn last append */
    return skipped;
}

size_t journal_done_used(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t end = len;
    while (end > 0 && p[end - 1] == 0)
        end--;
    /* A slot partly written (a torn record) is used whole. */
    return (end + JOURNAL_DONE_REC_SIZE - 1) / JOURNAL_DONE_REC_SIZE * JOURNAL_DONE_REC_SIZE;
}

void journal_seg_name(uint64_t seq, struct buf *out)
{
    buf_reset(out);
    buf_printf(out, "%016" PRIx64 ".seg", seq);
}

void journal_done_name(uint64_t seq, struct buf *out)
{
    buf_reset(out);
    buf_printf(out, "%016" PRIx64 ".done", seq);
}

int journal_name_seq(const char *name, const char *suffix, uint64_t *seq)
{
    size_t slen = strlen(suffix);
    if (strlen(name) != 16 + slen || strcmp(name + 16, suffix) != 0)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    if (v == 0)
        return -1;
    *seq = v;
    return 0;
}
