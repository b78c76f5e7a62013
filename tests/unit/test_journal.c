/*
 * The spool's journal (src/queue/journal*.c): CRC-32C's check value, the
 * record and done-log formats, scans over torn tails, damaged payloads,
 * stale sequence numbers and records straddling the end; the writer's
 * segments (new, full, recycled) and how far a live one may be read.
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
#include "lib/crc32c.h"
#include "queue/journal.h"
#include "testutil.h"

#define H JOURNAL_SEG_HEADER_SIZE
#define ID1 "1LGL65FDNF42HOP"
#define ID2 "1LGL65FDNF42HOQ"
#define ID3 "1LGL65FDNF42HOR"

/* Appends one record of segment seq to seg, as the writer lays it out. */
static uint64_t put_record(struct buf *seg, uint64_t seq, const char *id, const char *env,
                           const char *data)
{
    unsigned char hdr[JOURNAL_REC_HEADER_SIZE], trailer[4];
    journal_rec_header_encode(hdr, seq, id, strlen(env), strlen(data));
    uint32_t crc = crc32c(0, hdr, sizeof hdr);
    crc = crc32c(crc, env, strlen(env));
    crc = crc32c(crc, data, strlen(data));
    journal_put_u32(trailer, crc);
    uint64_t off = seg->len;
    buf_append(seg, hdr, sizeof hdr);
    buf_append(seg, env, strlen(env));
    buf_append(seg, data, strlen(data));
    buf_append(seg, trailer, sizeof trailer);
    return off;
}

/* A segment's header block followed by three records; offsets out. */
static void three_records(struct buf *seg, uint64_t seq, uint64_t off[3])
{
    buf_reset(seg);
    unsigned char block[JOURNAL_SEG_HEADER_SIZE] = {0};
    struct journal_seg_header h = {.seq = seq, .synced_end = JOURNAL_SEG_HEADER_SIZE};
    journal_seg_header_encode(&h, block);
    buf_append(seg, block, sizeof block);
    off[0] = put_record(seg, seq, ID1, "HONGYAN-ENVELOPE 2\nC 5\n", "hello");
    off[1] = put_record(seg, seq, ID2, "HONGYAN-ENVELOPE 2\nC 6\n", "second");
    off[2] = put_record(seg, seq, ID3, "HONGYAN-ENVELOPE 2\nC 5\n", "third");
}

struct seen {
    int valid, damaged;
    char ids[8][32];
    char kinds[8];
};

static void on_rec(void *arg, enum journal_found what, const struct journal_rec *rec)
{
    struct seen *s = arg;
    int i = s->valid + s->damaged;
    if (i < 8) {
        snprintf(s->ids[i], sizeof s->ids[i], "%s", rec->id);
        s->kinds[i] = what == JOURNAL_FOUND_VALID ? 'v' : 'd';
    }
    if (what == JOURNAL_FOUND_VALID)
        s->valid++;
    else
        s->damaged++;
}

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u); /* the standard check value */
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c_soft(0, "123456789", 9), 0xE3069283u);
    /*
     * The instruction's path (SSE4.2) against the tables: every length
     * around the 8-byte steps, every alignment, and a run fed in two pieces.
     */
    unsigned char bytes[4200];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof bytes; i++) {
        x = x * 1103515245u + 12345u;
        bytes[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len < 80; len++) {
            uint32_t want = crc32c_soft(0, bytes + off, len);
            assert_int_equal(crc32c(0, bytes + off, len), want);
            assert_int_equal(
                crc32c(crc32c(0, bytes + off, len / 3), bytes + off + len / 3, len - len / 3),
                want);
        }
    }
    assert_int_equal(crc32c(0, bytes, sizeof bytes), crc32c_soft(0, bytes, sizeof bytes));
}

static void test_seg_header(void **state)
{
    (void)state;
    unsigned char enc[JOURNAL_SEG_HEADER_ENC];
    struct journal_seg_header h = {.seq = 42, .synced_end = 8192}, back;
    journal_seg_header_encode(&h, enc);
    assert_int_equal(journal_seg_header_decode(enc, sizeof enc, &back), 0);
    assert_true(back.seq == 42 && back.synced_end == 8192);
    assert_int_equal(journal_seg_header_decode(enc, sizeof enc - 1, &back), -1);
    enc[17] ^= 1;
    assert_int_equal(journal_seg_header_decode(enc, sizeof enc, &back), -1);
    unsigned char zeros[JOURNAL_SEG_HEADER_ENC] = {0};
    assert_int_equal(journal_seg_header_decode(zeros, sizeof zeros, &back), -1);
}

static void test_scan_valid(void **state)
{
    (void)state;
    struct buf seg = BUF_INIT;
    uint64_t off[3];
    three_records(&seg, 7, off);
    struct journal_rec rec;
    assert_int_equal(journal_rec_parse(seg.data + H, seg.len - H, H, off[1], 7, &rec),
                     JOURNAL_REC_VALID);
    assert_string_equal(rec.id, ID2);
    assert_int_equal(rec.data_len, 6);
    assert_memory_equal(rec.data, "second", 6);
    assert_memory_equal(rec.env, "HONGYAN-ENVELOPE 2\nC 6\n", rec.env_len);
    assert_true(rec.offset == off[1] && rec.len == off[2] - off[1]);
    struct seen s = {0};
    struct journal_scan_stats st;
    journal_scan(seg.data + H, seg.len - H, H, 7, on_rec, &s, &st);
    assert_int_equal(s.valid, 3);
    assert_int_equal(st.damaged + st.torn, 0);
    assert_true(st.end == seg.len);
    /* Stale: the same bytes read as segment 8 (a recycled file) hold nothing. */
    memset(&s, 0, sizeof s);
    journal_scan(seg.data + H, seg.len - H, H, 8, on_rec, &s, &st);
    assert_int_equal(s.valid + s.damaged, 0);
    assert_true(st.end == JOURNAL_SEG_HEADER_SIZE);
    buf_free(&seg);
}

static void test_scan_torn_tail(void **state)
{
    (void)state;
    struct buf seg = BUF_INIT;
    uint64_t off[3];
    three_records(&seg, 7, off);
    /* Cut in the third record's payload: it straddles the end of what was written. */
    for (size_t cut = off[2] + 1; cut < seg.len; cut += 7) {
        struct seen s = {0};
        struct journal_scan_stats st;
        journal_scan(seg.data + H, cut - H, H, 7, on_rec, &s, &st);
        assert_int_equal(s.valid, 2);
        assert_int_equal(s.damaged, 0);
        assert_true(st.end == off[2]);
    }
    /* Zeros after the last record (a recycled segment's first life was zeros). */
    buf_append(&seg, (char[64]){0}, 64);
    struct seen s = {0};
    journal_scan(seg.data + H, seg.len - H, H, 7, on_rec, &s, NULL);
    assert_int_equal(s.valid, 3);
    buf_free(&seg);
}

static void test_scan_damaged(void **state)
{
    (void)state;
    struct buf seg = BUF_INIT;
    uint64_t off[3];
    three_records(&seg, 7, off);
    /* A bad payload in the middle: reported (the caller quarantines it), skipped by length. */
    seg.data[off[1] + JOURNAL_REC_HEADER_SIZE + 3] ^= 0x20;
    struct seen s = {0};
    struct journal_scan_stats st;
    journal_scan(seg.data + H, seg.len - H, H, 7, on_rec, &s, &st);
    assert_int_equal(s.valid, 2);
    assert_int_equal(s.damaged, 1);
    assert_memory_equal(s.kinds, "vdv", 3);
    assert_string_equal(s.ids[1], ID2);
    assert_int_equal(st.torn, 0);
    /* A bad payload at the end is a torn tail: never acknowledged, not reported. */
    seg.data[off[1] + JOURNAL_REC_HEADER_SIZE + 3] ^= 0x20;
    seg.data[seg.len - 1] ^= 1;
    memset(&s, 0, sizeof s);
    journal_scan(seg.data + H, seg.len - H, H, 7, on_rec, &s, &st);
    assert_int_equal(s.valid, 2);
    assert_int_equal(s.damaged, 0);
    assert_int_equal(st.torn, 1);
    assert_true(st.end == off[2]);
    /* A bad header in the middle ends the scan: what follows cannot be trusted by length. */
    seg.data[seg.len - 1] ^= 1;
    seg.data[off[1] + 9] ^= 1;
    memset(&s, 0, sizeof s);
    journal_scan(seg.data + H, seg.len - H, H, 7, on_rec, &s, &st);
    assert_int_equal(s.valid, 1);
    buf_free(&seg);
}

static void test_rec_size(void **state)
{
    (void)state;
    assert_true(journal_rec_size(10, 4096) == JOURNAL_REC_HEADER_SIZE + 10 + 4096 + 4);
    assert_true(journal_rec_size(0, 10) == 0);
    assert_true(journal_rec_size(JOURNAL_ENV_MAX + 1, 10) == 0);
    assert_true(journal_rec_size(100, JOURNAL_SEGMENT_SIZE) == 0);
}

struct done_seen {
    int n;
    uint64_t off[8];
    int kind[8];
};

static void on_done(void *arg, uint64_t offset, enum journal_done_kind kind)
{
    struct done_seen *d = arg;
    if (d->n < 8) {
        d->off[d->n] = offset;
        d->kind[d->n] = kind;
    }
    d->n++;
}

static void test_done_log(void **state)
{
    (void)state;
    struct buf log = BUF_INIT;
    unsigned char rec[JOURNAL_DONE_REC_SIZE];
    journal_done_encode(rec, 3, 4096, JOURNAL_DONE);
    buf_append(&log, rec, sizeof rec);
    journal_done_encode(rec, 2, 5000, JOURNAL_DONE); /* stale: another segment's */
    buf_append(&log, rec, sizeof rec);
    journal_done_encode(rec, 3, 6000, JOURNAL_MOVED);
    rec[20] ^= 1; /* bad CRC */
    buf_append(&log, rec, sizeof rec);
    journal_done_encode(rec, 3, 7000, JOURNAL_MOVED);
    buf_append(&log, rec, sizeof rec);
    buf_append(&log, rec, 10); /* a torn last append */
    struct done_seen d = {0};
    assert_int_equal(journal_done_parse(log.data, log.len, 3, on_done, &d), 3);
    assert_int_equal(d.n, 2);
    assert_true(d.off[0] == 4096 && d.kind[0] == JOURNAL_DONE);
    assert_true(d.off[1] == 7000 && d.kind[1] == JOURNAL_MOVED);
    buf_free(&log);
}

static void test_names(void **state)
{
    (void)state;
    struct buf n = BUF_INIT;
    uint64_t seq;
    journal_seg_name(0x2a, &n);
    assert_string_equal(n.data, "000000000000002a.seg");
    assert_int_equal(journal_name_seq(n.data, ".seg", &seq), 0);
    assert_true(seq == 0x2a);
    assert_int_equal(journal_name_seq(n.data, ".done", &seq), -1);
    assert_int_equal(journal_name_seq("000000000000002A.seg", ".seg", &seq), -1);
    assert_int_equal(journal_name_seq("0000000000000000.seg", ".seg", &seq), -1);
    assert_int_equal(journal_name_seq("00000000000002a.seg", ".seg", &seq), -1);
    buf_free(&n);
}

static int open_journal(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/journal", dir);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    return fd;
}

static struct journal_item item(const char *id, const char *env, const char *data)
{
    return (struct journal_item){
        .id = id, .env = env, .env_len = strlen(env), .data = data, .data_len = strlen(data)};
}

static void test_writer(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_journal");
    struct buf err = BUF_INIT, seg = BUF_INIT;
    struct journal_writer *w = journal_writer_open(dir, &err);
    assert_non_null(w);
    int jfd = open_journal(dir);
    struct journal_item items[3] = {item(ID1, "E1\n", "data one"), item(ID2, "E2\n", ""),
                                    item(ID3, "E3\n", "data three")};
    assert_int_equal(journal_writer_commit(w, items, 3), 0);
    assert_true(items[0].seq == 1 && items[0].offset == JOURNAL_SEG_HEADER_SIZE);
    assert_true(items[1].offset == items[0].offset + items[0].len);
    size_t n;
    uint64_t *segs = journal_list(jfd, ".seg", &n);
    assert_int_equal(n, 1);
    assert_true(segs[0] == 1);
    free(segs);

    /* Live: bounded by the synced end; bytes past it (an unsynced round) stay unread. */
    char p[512];
    snprintf(p, sizeof p, "%s/journal/0000000000000001.seg", dir);
    int raw = open(p, O_WRONLY);
    assert_true(raw >= 0);
    uint64_t end = items[2].offset + items[2].len;
    assert_int_equal(pwrite(raw, "garbage", 7, (off_t)end), 7);
    int live = 0;
    assert_int_equal(journal_segment_read(jfd, 1, H, &seg, &live), 0);
    assert_int_equal(live, 1);
    assert_true(seg.len == end - H);
    struct seen s = {0};
    journal_scan(seg.data, seg.len, H, 1, on_rec, &s, NULL);
    assert_int_equal(s.valid, 3);
    struct journal_rec rec;
    assert_int_equal(journal_rec_parse(seg.data, seg.len, H, items[2].offset, 1, &rec),
                     JOURNAL_REC_VALID);
    assert_memory_equal(rec.data, "data three", 10);
    /* A live segment is not reclaimed. */
    assert_int_equal(journal_reclaim(jfd, 1), -1);
    assert_int_equal(errno, EBUSY);

    /* The writer gone (its lock with it): read whole. */
    journal_writer_free(w);
    assert_int_equal(journal_segment_read(jfd, 1, H, &seg, &live), 0);
    assert_int_equal(live, 0);
    assert_true(seg.len == JOURNAL_SEGMENT_SIZE - H);
    memset(&s, 0, sizeof s);
    journal_scan(seg.data, seg.len, H, 1, on_rec, &s, NULL);
    assert_int_equal(s.valid, 3);

    /* Done-log on disk, then the segment given back and reused under a new number. */
    assert_int_equal(journal_done_append(jfd, 1, items[0].offset, JOURNAL_DONE), 0);
    assert_int_equal(journal_done_append(jfd, 1, items[1].offset, JOURNAL_MOVED), 0);
    struct buf log = BUF_INIT;
    assert_int_equal(journal_done_read(jfd, 1, &log), 0);
    struct done_seen d = {0};
    assert_int_equal(journal_done_parse(log.data, log.len, 1, on_done, &d), 0);
    assert_int_equal(d.n, 2);
    w = journal_writer_open(dir, &err);
    assert_non_null(w);
    struct journal_item one = item(ID1, "E9\n", "x");
    assert_int_equal(journal_writer_commit(w, &one, 1), 0);
    assert_true(one.seq == 2); /* a new writer never appends to an old segment */
    assert_int_equal(journal_reclaim(jfd, 1), 0);
    snprintf(p, sizeof p, "%s/journal/free/0000000000000001.seg", dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(journal_done_read(jfd, 1, &log), 0);
    assert_int_equal(log.len, 0);
    journal_writer_free(w);

    w = journal_writer_open(dir, &err);
    one = item(ID2, "E10\n", "y");
    assert_int_equal(journal_writer_commit(w, &one, 1), 0);
    assert_true(one.seq == 3);
    assert_int_equal(stat(p, &st), -1); /* taken from free/ */
    journal_writer_free(w);
    assert_int_equal(journal_segment_read(jfd, 3, H, &seg, &live), 0);
    memset(&s, 0, sizeof s);
    journal_scan(seg.data, seg.len, H, 3, on_rec, &s, NULL);
    /* Segment 1's three records are still in the bytes, but stale: only the new one counts. */
    assert_int_equal(s.valid, 1);
    assert_string_equal(s.ids[0], ID2);
    assert_memory_equal(seg.data + JOURNAL_REC_HEADER_SIZE, "E10\n", 4);

    buf_free(&log);
    buf_free(&seg);
    buf_free(&err);
    close(jfd);
    test_rm_rf(dir);
    free(dir);
}

/* A round larger than what is left of a segment goes on in a new one. */
static void test_writer_full_segment(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_journal");
    struct buf err = BUF_INIT;
    struct journal_writer *w = journal_writer_open(dir, &err);
    size_t big = 60000, n = JOURNAL_SEGMENT_SIZE / big + 3;
    char *data = malloc(big + 1);
    memset(data, 'a', big);
    data[big] = '\0';
    struct journal_item *items = calloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = item(ID1, "E\n", data);
    assert_int_equal(journal_writer_commit(w, items, n), 0);
    assert_true(items[0].seq == 1 && items[n - 1].seq == 2);
    assert_true(items[n - 1].offset + items[n - 1].len <= JOURNAL_SEGMENT_SIZE);
    int jfd = open_journal(dir);
    struct buf seg = BUF_INIT;
    int live;
    size_t total = 0;
    for (uint64_t seq = 1; seq <= 2; seq++) {
        assert_int_equal(journal_segment_read(jfd, seq, H, &seg, &live), 0);
        struct seen s = {0};
        journal_scan(seg.data, seg.len, H, seq, on_rec, &s, NULL);
        assert_int_equal(s.damaged, 0);
        total += (size_t)s.valid;
    }
    assert_int_equal(total, n);
    journal_writer_free(w);
    close(jfd);
    free(items);
    free(data);
    buf_free(&seg);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

/*
 * Done-logs are written into preallocated zeros: one chunk at creation, the
 * next when it is full; a reopen goes on after the last slot in use, also
 * in a log appended before preallocation that ends in a torn record.
 */
static void test_done_log_slots(void **state)
{
    (void)state;
    unsigned char bytes[3 * JOURNAL_DONE_REC_SIZE] = {0};
    assert_int_equal(journal_done_used(bytes, sizeof bytes), 0);
    journal_done_encode(bytes, 1, H, JOURNAL_DONE);
    assert_int_equal(journal_done_used(bytes, sizeof bytes), JOURNAL_DONE_REC_SIZE);
    bytes[JOURNAL_DONE_REC_SIZE + 3] = 7; /* a torn one: its slot is used */
    assert_int_equal(journal_done_used(bytes, sizeof bytes), 2 * JOURNAL_DONE_REC_SIZE);

    char *dir = test_tmpdir("test_journal_done");
    struct buf err = BUF_INIT, log = BUF_INIT;
    struct journal_writer *w = journal_writer_open(dir, &err); /* makes journal/ */
    assert_non_null(w);
    int jfd = open_journal(dir);
    struct journal_done_log d;
    assert_int_equal(journal_done_open(jfd, 5, &d), 0);
    assert_true(d.created && d.next == 0 && d.alloc == 0);
    assert_int_equal(journal_done_write(&d, 5, H, JOURNAL_DONE), 0);
    assert_int_equal(journal_done_write(&d, 5, H + 100, JOURNAL_MOVED), 0);
    struct stat st;
    assert_int_equal(fstat(d.fd, &st), 0);
    assert_int_equal(st.st_size, JOURNAL_DONE_CHUNK);
    journal_done_close(&d);

    assert_int_equal(journal_done_open(jfd, 5, &d), 0);
    assert_true(!d.created && d.next == 2 * JOURNAL_DONE_REC_SIZE && d.alloc == JOURNAL_DONE_CHUNK);
    size_t per_chunk = JOURNAL_DONE_CHUNK / JOURNAL_DONE_REC_SIZE;
    for (size_t i = 2; i < per_chunk + 1; i++)
        assert_int_equal(journal_done_write(&d, 5, H + 200 + i, JOURNAL_DONE), 0);
    assert_int_equal(fstat(d.fd, &st), 0);
    assert_int_equal(st.st_size, 2 * JOURNAL_DONE_CHUNK); /* the next chunk, once */
    journal_done_close(&d);
    assert_int_equal(journal_done_read(jfd, 5, &log), 0);
    struct done_seen seen = {0};
    assert_int_equal(journal_done_parse(log.data, log.len, 5, on_done, &seen), 0);
    assert_int_equal(seen.n, per_chunk + 1);
    assert_true(seen.off[0] == H && seen.off[1] == H + 100 && seen.kind[1] == JOURNAL_MOVED);

    /* Written before preallocation, cut short in its last record. */
    char p[512];
    snprintf(p, sizeof p, "%s/journal/0000000000000006.done", dir);
    int raw = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(raw >= 0);
    journal_done_encode(bytes, 6, H, JOURNAL_DONE);
    assert_int_equal(write(raw, bytes, JOURNAL_DONE_REC_SIZE + 10), JOURNAL_DONE_REC_SIZE + 10);
    close(raw);
    assert_int_equal(journal_done_append(jfd, 6, H + 300, JOURNAL_DONE), 0);
    assert_int_equal(journal_done_read(jfd, 6, &log), 0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(journal_done_parse(log.data, log.len, 6, on_done, &seen), 1);
    assert_int_equal(seen.n, 2);
    assert_true(seen.off[0] == H && seen.off[1] == H + 300);

    journal_writer_free(w);
    close(jfd);
    buf_free(&log);
    buf_free(&err);
    test_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_seg_header),
        cmocka_unit_test(test_scan_valid),
        cmocka_unit_test(test_scan_torn_tail),
        cmocka_unit_test(test_scan_damaged),
        cmocka_unit_test(test_rec_size),
        cmocka_unit_test(test_done_log),
        cmocka_unit_test(test_done_log_slots),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_writer_full_segment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
