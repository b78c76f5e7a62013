/*
 * The spool's journal (spool version 2, docs/queue.md "The journal"): small
 * messages committed by appending one record each to a segment file under
 * queue_directory/journal/, a group-commit round made durable by one
 * fdatasync of the segment instead of two files, two renames and a syncfs
 * per message. Delivery's results for those records go to a small done-log
 * beside each segment. This header is the on-disk format (encoders and
 * parsers that touch no file: the fuzz targets and unit tests use them)
 * and the file operations on it.
 *
 * journal/SEQ.seg   a segment: SEQ is 16 lower-case hex digits, the
 *                   segment's sequence number, never reused. A fixed size
 *                   (JOURNAL_SEGMENT_SIZE), written over in place: only
 *                   smtpd writes segments, and each smtpd start (or write
 *                   error) takes a new one, so a torn tail is always the
 *                   end of a segment.
 * journal/SEQ.done  its done-log, appended by delivery.
 * journal/free/SEQ.seg  segments whose records are all finished, kept for
 *                   reuse under their old number: writing over a file of
 *                   the right size changes no metadata, so the fdatasync
 *                   costs no journal commit of the filesystem (the numbers
 *                   are in docs/queue.md).
 *
 * Segment: a header block of JOURNAL_SEG_HEADER_SIZE bytes (magic, SEQ, and
 * how far records are synced, rewritten without a sync after each round),
 * then records back to back. Record: a fixed header (magic, the segment's
 * SEQ, lengths, queue id, CRC-32C of the header), the envelope text (as in
 * active/, ending with its commit record), the message data, and a CRC-32C
 * of all of that. All integers little-endian.
 *
 * Because every record carries its segment's number, bytes left from a
 * segment's earlier life never parse as records of its new one.
 */
#ifndef HONGYAN_QUEUE_JOURNAL_H
#define HONGYAN_QUEUE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/envelope.h"

#define JOURNAL_DIR "journal"
#define JOURNAL_FREE_DIR "journal/free"
#define JOURNAL_SEGMENT_SIZE (4u * 1024 * 1024)
#define JOURNAL_SEG_HEADER_SIZE 4096u /* records start here, on their own page */
#define JOURNAL_REC_HEADER_SIZE 48u
#define JOURNAL_REC_TRAILER_SIZE 4u
/* An envelope larger than this is not journaled (thousands of recipients): today's files. */
#define JOURNAL_ENV_MAX (1024u * 1024)
/* The queue id field of a record: 15 characters today, NUL-padded. */
#define JOURNAL_ID_FIELD 16u
/* Free segments kept for reuse; more are removed (after a burst the disk is given back). */
#define JOURNAL_FREE_KEEP 4

/* ---- Segment header ---- */

struct journal_seg_header {
    uint64_t seq;
    uint64_t synced_end; /* records before this offset are durable */
};
#define JOURNAL_SEG_HEADER_ENC                                                                     \
    28u /* the encoded bytes at offset 0; the rest of the block is zero */
void journal_seg_header_encode(const struct journal_seg_header *h,
                               unsigned char out[JOURNAL_SEG_HEADER_ENC]);
/* 0, or -1 when the bytes are not a valid header (torn, stale, not a segment). */
int journal_seg_header_decode(const void *buf, size_t len, struct journal_seg_header *h);

/* ---- Records ---- */

struct journal_rec {
    uint64_t offset; /* of the record's header in its segment */
    uint64_t len;    /* of the whole record, header and trailer included */
    char id[QUEUE_ID_MAX];
    const char *env; /* points into the segment's bytes */
    size_t env_len;
    const char *data;
    size_t data_len;
};

/* A record's whole size, or 0 when it cannot be journaled (too large for a segment). */
uint64_t journal_rec_size(size_t env_len, size_t data_len);
/*
 * The record's header for the writer; the trailer is
 * crc32c(crc32c(crc32c(0, hdr), env), data), encoded with journal_put_u32.
 */
void journal_rec_header_encode(unsigned char out[JOURNAL_REC_HEADER_SIZE], uint64_t seq,
                               const char *id, size_t env_len, size_t data_len);
void journal_put_u32(unsigned char *p, uint32_t v);

enum journal_parse {
    JOURNAL_REC_VALID,   /* header and payload check out */
    JOURNAL_REC_DAMAGED, /* a valid header whose payload does not: rec has offset, len, id */
    JOURNAL_REC_END,     /* no record header here: the end of what was written */
};
/*
 * The record at segment offset off in bytes[0..len), which hold the
 * segment's bytes from offset base on (base >= JOURNAL_SEG_HEADER_SIZE;
 * base JOURNAL_SEG_HEADER_SIZE and bytes past the header block for a whole
 * segment) of segment seq. A header that is torn, stale (another seq),
 * malformed or whose record would run past the bytes is JOURNAL_REC_END.
 * rec's pointers point into bytes.
 */
enum journal_parse journal_rec_parse(const void *bytes, size_t len, uint64_t base, uint64_t off,
                                     uint64_t seq, struct journal_rec *rec);

/*
 * What a scan found: every valid record, and every damaged one followed by
 * a valid one (corruption: the caller quarantines it). Damaged records after
 * the last valid one are a torn tail (a round cut short by a crash, never
 * acknowledged): counted, not reported.
 */
enum journal_found {
    JOURNAL_FOUND_VALID,
    JOURNAL_FOUND_DAMAGED,
};
typedef void (*journal_scan_fn)(void *arg, enum journal_found what, const struct journal_rec *rec);
struct journal_scan_stats {
    uint64_t end; /* offset after the last valid record (base when none) */
    size_t valid, damaged, torn;
};
/*
 * Scans bytes[0..len), segment seq's bytes from offset base on (as for
 * journal_rec_parse), from a record that starts at base; stats (may be NULL)
 * end is base when nothing valid was found.
 */
void journal_scan(const void *bytes, size_t len, uint64_t base, uint64_t seq, journal_scan_fn fn,
                  void *arg, struct journal_scan_stats *stats);

/* ---- Done-log ---- */

enum journal_done_kind {
    JOURNAL_DONE = 1,  /* every recipient finished: the record is gone */
    JOURNAL_MOVED = 2, /* written to active/ or hold/ as files (durably first) */
};
#define JOURNAL_DONE_REC_SIZE 32u
void journal_done_encode(unsigned char out[JOURNAL_DONE_REC_SIZE], uint64_t seq, uint64_t offset,
                         enum journal_done_kind kind);
typedef void (*journal_done_fn)(void *arg, uint64_t offset, enum journal_done_kind kind);
/*
 * Calls fn for each valid record of segment seq in a done-log's bytes, in
 * order. Records are fixed-size; a torn or stale one is skipped (it can
 * only make a message look unfinished, never finished), and so is a slot
 * not written yet (zeros). Returns how many were skipped, not counting
 * those unwritten slots.
 */
size_t journal_done_parse(const void *buf, size_t len, uint64_t seq, journal_done_fn fn, void *arg);
/*
 * How many bytes of a done-log are in use: up to the end of the last slot
 * that holds anything but zeros (a record, or a torn or stale one). The
 * next record goes there.
 */
size_t journal_done_used(const void *buf, size_t len);

/* ---- Names ---- */

/* "SEQ.seg" / "SEQ.done" into out (replaced). */
void journal_seg_name(uint64_t seq, struct buf *out);
void journal_done_name(uint64_t seq, struct buf *out);
/*
 * The number of a name "SEQ" + suffix (".seg" or ".done"): 0 with *seq set,
 * -1 when name is not one (16 lower-case hex digits, not zero).
 */
int journal_name_seq(const char *name, const char *suffix, uint64_t *seq);

/* ---- The writer (smtpd) ---- */

struct journal_writer;
/* One message of a round: in, then out (where its record went). */
struct journal_item {
    const char *id;
    const void *env;
    size_t env_len;
    const void *data;
    size_t data_len;
    /* Set by journal_writer_commit: where its record went (seq 0: nowhere), and whether synced. */
    uint64_t seq, offset, len;
    int durable;
};
/*
 * Makes journal/ and journal/free/ under queue_dir (mode 0700); no segment
 * is taken until the first commit. NULL with err.
 */
struct journal_writer *journal_writer_open(const char *queue_dir, struct buf *err);
void journal_writer_free(struct journal_writer *w);
/* 1 when a record of these lengths fits in one of w's segments. */
int journal_writer_fits(const struct journal_writer *w, size_t env_len, size_t data_len);
/*
 * Appends the records of items (each journal_rec_size() != 0) with one
 * pwritev per segment and makes them durable with one fdatasync, then notes
 * the synced end in the segment's header. A segment too full for the rest
 * is left for a new one. On any error the segment is abandoned (the next
 * round takes a new one, so nothing is ever written after a failed write)
 * and -1 is returned with errno. Then each item says what became of it:
 * durable (a segment filled before the error: it may be acknowledged),
 * seq 0 (never written: the caller may commit it another way), or neither
 * (written, not known durable: a failed commit, which delivery may still
 * find after a crash, as a file commit cut short). When no segment can be
 * taken (disk full), none is tried again for 10 seconds. Called by one
 * thread at a time (the round's).
 */
int journal_writer_commit(struct journal_writer *w, struct journal_item *items, size_t n);

/* ---- Files, for delivery and the queue commands ---- */

/*
 * A segment's bytes from offset from (>= JOURNAL_SEG_HEADER_SIZE) as far as
 * they may be read: to the end of the file when no writer holds it, to the
 * synced end its header names when smtpd is writing it (its lock is held),
 * so that nothing is read before its round was synced. *live says which.
 * 0 or -1 with errno.
 */
int journal_segment_read(int journal_fd, uint64_t seq, uint64_t from, struct buf *out, int *live);
/*
 * A done-log open for writing. Records go into fixed slots of space that
 * was written with zeros ahead of them (JOURNAL_DONE_CHUNK at a time), so
 * that recording one overwrites allocated blocks: its fdatasync then costs
 * a write and a cache flush, no journal commit of the filesystem (the
 * segments' reason too). Only creating or extending the file changes its
 * size (fdatasync then commits that as well); created says the directory
 * needs a sync too.
 */
#define JOURNAL_DONE_CHUNK (64u * 1024)
struct journal_done_log {
    int fd;
    uint64_t next;  /* the next free slot's offset */
    uint64_t alloc; /* the file's size: zeros from next on */
    int created;    /* made by this open: its name is not durable yet */
};
/*
 * Opens segment seq's done-log for writing (made if missing), its next
 * slot after the last one that holds anything. 0, or -1 with errno.
 */
int journal_done_open(int journal_fd, uint64_t seq, struct journal_done_log *out);
/* Writes one record into the next slot (no sync: the caller decides); 0 or -1 with errno. */
int journal_done_write(struct journal_done_log *d, uint64_t seq, uint64_t offset,
                       enum journal_done_kind kind);
void journal_done_close(struct journal_done_log *d);
/* journal_done_open, write, close. */
int journal_done_append(int journal_fd, uint64_t seq, uint64_t offset, enum journal_done_kind kind);
/* A done-log's bytes (empty when there is none); 0 or -1 with errno. */
int journal_done_read(int journal_fd, uint64_t seq, struct buf *out);
/*
 * Gives segment seq back: renamed into free/ (both directories synced, so a
 * crash cannot bring back its records without their done-log), then its
 * done-log is removed; beyond JOURNAL_FREE_KEEP free segments it is removed
 * instead. The caller has checked that every record in it is finished and
 * that a newer segment exists. -1 with EBUSY when a writer holds it.
 */
int journal_reclaim(int journal_fd, uint64_t seq);
/* The numbers of journal/'s names ending in suffix (".seg", ".done"), sorted (malloc'd; *n set). */
uint64_t *journal_list(int journal_fd, const char *suffix, size_t *n);
/* Segment seq opened read-only, or -1 with errno. */
int journal_segment_open(int journal_fd, uint64_t seq);
/* Exactly len bytes of segment seq from offset (a record already indexed); 0 or -1 with errno. */
int journal_record_read(int journal_fd, uint64_t seq, uint64_t offset, uint64_t len,
                        struct buf *out);

#endif
