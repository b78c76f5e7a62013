/*
 * Unit tests for the DATA/BDAT reader (src/smtp/data.c): dot-stuffing, the
 * terminator split at every offset, every SMTP smuggling sequence, limits.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "smtp/data.h"

struct sinkbuf {
    struct buf b;
    int calls;
    int fail_errno; /* when set, the sink fails with it */
};

static int sink(void *arg, const char *d, size_t n)
{
    struct sinkbuf *s = arg;
    s->calls++;
    if (s->fail_errno) {
        errno = s->fail_errno;
        return -1;
    }
    buf_append(&s->b, d, n);
    return 0;
}

struct result {
    enum smtp_data_status status;
    size_t consumed;
    int done;
    struct buf out;
};

/* Feeds in as pieces split at the given offsets (sorted, may be empty). */
static void run_split(enum smtp_data_mode mode, const char *in, size_t len, const size_t *cuts,
                      size_t ncuts, size_t max_msg, size_t max_hdr, struct result *res)
{
    struct smtp_data d = {0};
    struct sinkbuf s = {BUF_INIT, 0, 0};
    smtp_data_init(&d, mode, max_msg, max_hdr, sink, &s);
    size_t pos = 0, consumed = 0;
    for (size_t k = 0; k <= ncuts && !smtp_data_done(&d); k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t used = smtp_data_feed(&d, in + pos, end - pos);
        consumed += used;
        if (used < end - pos) {
            assert_true(smtp_data_done(&d)); /* only the terminator stops consumption */
            break;
        }
        pos = end;
    }
    res->done = smtp_data_done(&d);
    res->status = mode == SMTP_DATA_BDAT ? smtp_data_finish(&d) : d.status;
    if (mode == SMTP_DATA_BDAT)
        res->done = 1;
    res->consumed = consumed;
    res->out = s.b;
    if (res->done)
        assert_null(d.out); /* the buffer is released at the end */
    smtp_data_release(&d);
}

/*
 * Checks that in produces want/status, fed whole, split in two at every
 * offset, split in three at every pair of offsets, and byte by byte.
 */
static void check(enum smtp_data_mode mode, const char *in, size_t len, const char *want,
                  size_t want_len, enum smtp_data_status status, size_t want_consumed)
{
    struct result r;
    size_t cuts[1024];
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            cuts[0] = a;
            cuts[1] = b;
            run_split(mode, in, len, cuts, 2, 0, 0, &r);
            if (r.status != status)
                fail_msg("cuts %zu,%zu: status %d, want %d", a, b, r.status, status);
            assert_int_equal(r.consumed, want_consumed);
            assert_true(r.done);
            if (status == SMTP_DATA_OK) {
                assert_int_equal(r.out.len, want_len);
                assert_memory_equal(r.out.data ? r.out.data : "", want, want_len);
            }
            buf_free(&r.out);
        }
    }
    assert_true(len < 1024);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    run_split(mode, in, len, cuts, len, 0, 0, &r);
    assert_int_equal(r.status, status);
    assert_int_equal(r.consumed, want_consumed);
    buf_free(&r.out);
}

#define S(x) x, sizeof(x) - 1

static void test_simple_and_stuffing(void **state)
{
    check(SMTP_DATA_DOT, S("Subject: hi\r\n\r\nbody\r\n.\r\n"), S("Subject: hi\r\n\r\nbody\r\n"),
          SMTP_DATA_OK, 24);
    /* Data after the terminator belongs to the next command. */
    check(SMTP_DATA_DOT, S("a\r\n.\r\nQUIT\r\n"), S("a\r\n"), SMTP_DATA_OK, 6);
    /* An empty message. */
    check(SMTP_DATA_DOT, S(".\r\n"), "", 0, SMTP_DATA_OK, 3);
    /* Dot-stuffing removed (RFC 5321 4.5.2). */
    check(SMTP_DATA_DOT, S("..\r\n..x\r\n.y\r\n...\r\nx.\r\n.\r\n"),
          S(".\r\n.x\r\ny\r\n..\r\nx.\r\n"), SMTP_DATA_OK, 25);
    /* The first line may be stuffed too. */
    check(SMTP_DATA_DOT, S("..start\r\n.\r\n"), S(".start\r\n"), SMTP_DATA_OK, 12);
    /* BDAT: no stuffing, a lone dot line is data. */
    check(SMTP_DATA_BDAT, S("a\r\n.\r\n..b\r\n"), S("a\r\n.\r\n..b\r\n"), SMTP_DATA_OK, 11);
    /* BDAT: a last line without CRLF gets one. */
    check(SMTP_DATA_BDAT, S("a\r\nb"), S("a\r\nb\r\n"), SMTP_DATA_OK, 4);
    check(SMTP_DATA_BDAT, "", 0, "", 0, SMTP_DATA_OK, 0);
}

static void test_not_ended(void **state)
{
    /* Without the terminator, DATA stays open and everything is consumed. */
    struct result r;
    const char *in = "a\r\n.\rb\r\n";
    run_split(SMTP_DATA_DOT, in, strlen(in), NULL, 0, 0, 0, &r);
    assert_false(r.done);
    assert_int_equal(r.consumed, strlen(in));
    buf_free(&r.out);
}

/*
 * SMTP smuggling (2023): sequences that some servers take as the end of
 * DATA. None ends the message here; each is an error, and the real
 * <CRLF>.<CRLF> after it ends it, so "MAIL FROM" inside is never a command.
 */
static void smuggle(const char *seq, enum smtp_data_status want)
{
    char in[256];
    int n = snprintf(in, sizeof in,
                     "Subject: x\r\n\r\nhello%sMAIL FROM:<evil@example>\r\n.\r\nNOOP\r\n", seq);
    check(SMTP_DATA_DOT, in, (size_t)n, NULL, 0, want, (size_t)n - 6);
    /* The same inside the header. */
    n = snprintf(in, sizeof in, "Subject: x%sFrom: y\r\n\r\nb\r\n.\r\nNOOP\r\n", seq);
    check(SMTP_DATA_DOT, in, (size_t)n, NULL, 0, want, (size_t)n - 6);
    /* And for BDAT, where there is no terminator but the same bytes are refused. */
    n = snprintf(in, sizeof in, "Subject: x\r\n\r\nhello%sworld\r\n", seq);
    check(SMTP_DATA_BDAT, in, (size_t)n, NULL, 0, want, (size_t)n);
}

static void test_smuggling_sequences(void **state)
{
    smuggle("\n.\n", SMTP_DATA_BARE_LF);
    smuggle("\n.\r\n", SMTP_DATA_BARE_LF);
    smuggle("\r.\r", SMTP_DATA_BARE_CR);
    smuggle("\r\n.\r", SMTP_DATA_BARE_CR);
    smuggle("\r\n.\n", SMTP_DATA_BARE_LF);
    smuggle("\r.\r\n", SMTP_DATA_BARE_CR);
    smuggle("\n", SMTP_DATA_BARE_LF);
    smuggle("\r", SMTP_DATA_BARE_CR);
    smuggle("\n\n", SMTP_DATA_BARE_LF);
    smuggle("\r\r\n", SMTP_DATA_BARE_CR);
}

static void test_bare_at_edges(void **state)
{
    /* A bare LF right before the real terminator: the terminator still ends it. */
    check(SMTP_DATA_DOT, S("a\n\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 7);
    /* "\n.\r\n" at the very start is not an end either. */
    check(SMTP_DATA_DOT, S("\n.\r\nx\r\n.\r\n"), NULL, 0, SMTP_DATA_BARE_LF, 10);
    /* BDAT ending in a CR is a bare CR. */
    check(SMTP_DATA_BDAT, S("a\r\nb\r"), NULL, 0, SMTP_DATA_BARE_CR, 5);
}

static void test_line_length(void **state)
{
    char in[2100];
    struct result r;
    /* 998 octets is fine, 999 is not (RFC 5321 4.5.3.1.6). */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 998 + (size_t)extra;
        memset(in, 'x', n);
        memcpy(in + n, "\r\n.\r\n", 5);
        run_split(SMTP_DATA_DOT, in, n + 5, NULL, 0, 0, 0, &r);
        assert_int_equal(r.status, extra ? SMTP_DATA_LINE_TOO_LONG : SMTP_DATA_OK);
        assert_int_equal(r.consumed, n + 5);
        buf_free(&r.out);
    }
    /* A stuffed dot does not count. */
    in[0] = '.';
    memset(in + 1, 'x', 998);
    memcpy(in + 999, "\r\n.\r\n", 5);
    run_split(SMTP_DATA_DOT, in, 1004, NULL, 0, 0, 0, &r);
    assert_int_equal(r.status, SMTP_DATA_OK);
    buf_free(&r.out);
    /* Long lines in the header count as well, and across chunk boundaries. */
    memcpy(in, "Subject: ", 9);
    memset(in + 9, 'y', 1000);
    memcpy(in + 1009, "\r\n\r\n.\r\n", 7);
    size_t cuts[] = {5, 500, 1008};
    run_split(SMTP_DATA_DOT, in, 1016, cuts, 3, 0, 0, &r);
    assert_int_equal(r.status, SMTP_DATA_LINE_TOO_LONG);
    assert_int_equal(r.consumed, 1016);
    buf_free(&r.out);
}

static void test_size_limits(void **state)
{
    struct result r;
    const char *msg = "Subject: a\r\nX: b\r\n\r\nbody\r\n.\r\n";
    size_t body = strlen(msg) - 3; /* bytes of message */
    run_split(SMTP_DATA_DOT, msg, strlen(msg), NULL, 0, body, 0, &r);
    assert_int_equal(r.status, SMTP_DATA_OK);
    buf_free(&r.out);
    run_split(SMTP_DATA_DOT, msg, strlen(msg), NULL, 0, body - 1, 0, &r);
    assert_int_equal(r.status, SMTP_DATA_TOO_BIG);
    assert_int_equal(r.consumed, strlen(msg));
    assert_int_equal(r.out.len, 0); /* nothing written in small messages once over */
    buf_free(&r.out);
    /* header limit: "Subject: a\r\nX: b\r\n" is 18 octets */
    run_split(SMTP_DATA_DOT, msg, strlen(msg), NULL, 0, 0, 18, &r);
    assert_int_equal(r.status, SMTP_DATA_OK);
    buf_free(&r.out);
    run_split(SMTP_DATA_DOT, msg, strlen(msg), NULL, 0, 0, 17, &r);
    assert_int_equal(r.status, SMTP_DATA_HEADER_TOO_BIG);
    buf_free(&r.out);
    /* Folded lines are header; a non-header line ends the header block. */
    const char *folded = "Subject: a\r\n b\r\nnot a header\r\nZ: 1234567890\r\n.\r\n";
    run_split(SMTP_DATA_DOT, folded, strlen(folded), NULL, 0, 0, 16, &r);
    assert_int_equal(r.status, SMTP_DATA_OK);
    buf_free(&r.out);
    run_split(SMTP_DATA_DOT, folded, strlen(folded), NULL, 0, 0, 15, &r);
    assert_int_equal(r.status, SMTP_DATA_HEADER_TOO_BIG);
    buf_free(&r.out);
    /* The BDAT size limit works the same way. */
    run_split(SMTP_DATA_BDAT, "abc\r\n", 5, NULL, 0, 4, 0, &r);
    assert_int_equal(r.status, SMTP_DATA_TOO_BIG);
    buf_free(&r.out);
}

static void test_large_chunks(void **state)
{
    /* A message of several output chunks arrives intact and in few sink calls. */
    size_t lines = 5000, n = 0;
    char *in = malloc(lines * 80 + 16);
    assert_non_null(in);
    for (size_t i = 0; i < lines; i++) {
        memcpy(
            in + n,
            i % 7
                ? "0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n"
                : ".123456789012345678901234567890123456789012345678901234567890123456789012345\r"
                  "\n",
            78);
        n += 78;
    }
    memcpy(in + n, ".\r\n", 3);
    n += 3;
    struct smtp_data d = {0};
    struct sinkbuf s = {BUF_INIT, 0, 0};
    smtp_data_init(&d, SMTP_DATA_DOT, 0, 0, sink, &s);
    assert_int_equal(smtp_data_feed(&d, in, n), n);
    assert_true(smtp_data_done(&d));
    assert_int_equal(d.status, SMTP_DATA_OK);
    size_t stuffed = (lines + 6) / 7;
    assert_int_equal(s.b.len, lines * 78 - stuffed);
    assert_true(s.calls <= (int)(s.b.len / SMTP_DATA_CHUNK) + 1);
    buf_free(&s.b);
    free(in);
}

static void test_write_error(void **state)
{
    struct smtp_data d = {0};
    struct sinkbuf s = {BUF_INIT, 0, ENOSPC};
    struct smtp_reply r;
    smtp_data_init(&d, SMTP_DATA_DOT, 0, 0, sink, &s);
    assert_int_equal(smtp_data_feed(&d, "a\r\n.\r\n", 6), 6);
    assert_int_equal(d.status, SMTP_DATA_WRITE_ERROR);
    smtp_data_reply(&d, &r);
    assert_int_equal(r.code, 452);
    assert_string_equal(r.status, "4.3.1");
    s.fail_errno = EIO;
    smtp_data_init(&d, SMTP_DATA_BDAT, 0, 0, sink, &s);
    smtp_data_feed(&d, "a\r\n", 3);
    assert_int_equal(smtp_data_finish(&d), SMTP_DATA_WRITE_ERROR);
    smtp_data_reply(&d, &r);
    assert_int_equal(r.code, 451);
    d.status = SMTP_DATA_BARE_LF;
    smtp_data_reply(&d, &r);
    assert_int_equal(r.code / 100, 5);
    d.status = SMTP_DATA_TOO_BIG;
    smtp_data_reply(&d, &r);
    assert_int_equal(r.code, 552);
    assert_string_equal(r.status, "5.3.4");
}

/* Which fields the reader notes, fed whole and split at every offset. */
static unsigned fields_of(enum smtp_data_mode mode, const char *in)
{
    size_t len = strlen(in);
    unsigned whole = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        struct smtp_data d = {0};
        struct sinkbuf s = {BUF_INIT, 0, 0};
        smtp_data_init(&d, mode, 0, 0, sink, &s);
        smtp_data_feed(&d, in, cut);
        smtp_data_feed(&d, in + cut, len - cut);
        smtp_data_finish(&d);
        unsigned seen =
            (smtp_data_has_fields(&d, SMTP_DATA_FIELD_DATE) ? SMTP_DATA_FIELD_DATE : 0) |
            (smtp_data_has_fields(&d, SMTP_DATA_FIELD_MESSAGE_ID) ? SMTP_DATA_FIELD_MESSAGE_ID : 0);
        if (cut == 0)
            whole = seen;
        assert_int_equal(seen, whole); /* wherever the input is cut */
        smtp_data_release(&d);
        buf_free(&s.b);
    }
    return whole;
}

static void test_fields_seen(void **state)
{
    (void)state;
    const unsigned both = SMTP_DATA_FIELD_DATE | SMTP_DATA_FIELD_MESSAGE_ID;
    assert_int_equal(fields_of(SMTP_DATA_DOT, "Date: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n.\r\n"),
                     both);
    assert_int_equal(fields_of(SMTP_DATA_BDAT, "message-id:<a@b>\r\nDATE:x\r\n\r\nb\r\n"), both);
    assert_int_equal(fields_of(SMTP_DATA_DOT, "Subject: s\r\nDate: x\r\n\r\n.\r\n"),
                     SMTP_DATA_FIELD_DATE);
    /* Only in the body, or after a line that ends the header block: not noted. */
    assert_int_equal(
        fields_of(SMTP_DATA_DOT, "Subject: s\r\n\r\nDate: x\r\nMessage-ID: <a>\r\n.\r\n"), 0);
    assert_int_equal(fields_of(SMTP_DATA_DOT, "no header\r\nDate: x\r\n.\r\n"), 0);
    /* Names that only start or end alike, a space before the colon, a folded value. */
    assert_int_equal(fields_of(SMTP_DATA_DOT, "Dates: x\r\nXDate: x\r\nMessage-IDs: y\r\n"
                                              "Date : x\r\nX: a\r\n Date: b\r\n\r\n.\r\n"),
                     0);
    /* A dot-stuffed line is read unstuffed. */
    assert_int_equal(fields_of(SMTP_DATA_DOT, "..Date: x\r\nDate: y\r\n\r\n.\r\n"),
                     SMTP_DATA_FIELD_DATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_and_stuffing), cmocka_unit_test(test_not_ended),
        cmocka_unit_test(test_smuggling_sequences), cmocka_unit_test(test_bare_at_edges),
        cmocka_unit_test(test_line_length),         cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_large_chunks),        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_fields_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
