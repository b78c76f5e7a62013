/* Envelope records: round trips of odd addresses, appended results, torn and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "queue/envelope.h"

static const char *odd[] = {
    "plain@example.com",
    "\"john doe\"@example.com",
    "\"a\\\"b%c\"@example.com",
    "用户@例子.广告",
    "-",
    "=",
    "%41@example.com",
    "tab\there@example.com",
    "line\r\nbreak@example.com",
    "",
    "x@[192.0.2.1]",
};

static struct envelope *roundtrip(const struct envelope *e)
{
    struct buf b = BUF_INIT, err = BUF_INIT;
    envelope_encode(e, &b);
    struct envelope *d = envelope_decode(b.data, b.len, &err);
    if (d == NULL)
        fail_msg("decode: %s\n%s", buf_cstr(&err), buf_cstr(&b));
    buf_free(&b);
    buf_free(&err);
    return d;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct envelope *e = envelope_new();
    snprintf(e->queue_id, sizeof e->queue_id, "%s", "1LGL65FDNF42HOP");
    e->arrival = 1795856559;
    free(e->sender);
    e->sender = strdup("\"odd sender\"@例子.广告");
    e->envid = strdup("env id+2B");
    e->ret = DSN_RET_FULL;
    e->smtputf8 = 1;
    e->body_8bit = 1;
    e->is_bounce = 1;
    e->next_try = 42;
    e->attempts = 3;
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        struct envelope_rcpt *r = envelope_add_rcpt(e, odd[i]);
        r->orcpt = i % 2 ? strdup("rfc822;orig+20x@example.com") : NULL;
        r->notify = (unsigned)(i % 16);
    }
    e->rcpts[1].state = RCPT_DELIVERED;
    e->rcpts[1].dsn_status = strdup("2.0.0");
    e->rcpts[1].last_error = strdup("250 2.0.0 Ok: queued as X");
    e->rcpts[1].attempts = 2;
    struct envelope *d = roundtrip(e);
    assert_string_equal(d->queue_id, e->queue_id);
    assert_int_equal(d->arrival, e->arrival);
    assert_string_equal(d->sender, e->sender);
    assert_string_equal(d->envid, e->envid);
    assert_int_equal(d->ret, DSN_RET_FULL);
    assert_int_equal(d->smtputf8, 1);
    assert_int_equal(d->body_8bit, 1);
    assert_int_equal(d->is_bounce, 1);
    assert_int_equal(d->next_try, 42);
    assert_int_equal(d->attempts, 3);
    assert_int_equal(d->nrcpts, e->nrcpts);
    for (size_t i = 0; i < e->nrcpts; i++) {
        assert_string_equal(d->rcpts[i].address, odd[i]);
        if (e->rcpts[i].orcpt)
            assert_string_equal(d->rcpts[i].orcpt, e->rcpts[i].orcpt);
        else
            assert_null(d->rcpts[i].orcpt);
        assert_int_equal(d->rcpts[i].notify, e->rcpts[i].notify);
    }
    assert_int_equal(d->rcpts[1].state, RCPT_DELIVERED);
    assert_string_equal(d->rcpts[1].last_error, "250 2.0.0 Ok: queued as X");
    assert_int_equal(d->rcpts[1].attempts, 2);
    assert_int_equal(d->rcpts[0].state, RCPT_PENDING);
    envelope_free(d);
    envelope_free(e);
}

static void test_null_sender(void **state)
{
    (void)state;
    struct envelope *e = envelope_new();
    envelope_add_rcpt(e, "a@example.com");
    struct envelope *d = roundtrip(e);
    assert_string_equal(d->sender, "");
    assert_null(d->envid);
    envelope_free(d);
    envelope_free(e);
}

/* Appended results replay in order; the last one wins. */
static void test_appended(void **state)
{
    (void)state;
    struct envelope *e = envelope_new();
    envelope_add_rcpt(e, "a@example.com");
    envelope_add_rcpt(e, "b@example.com");
    struct buf b = BUF_INIT, err = BUF_INIT;
    envelope_encode(e, &b);
    e->rcpts[1].state = RCPT_PENDING;
    e->rcpts[1].attempts = 1;
    e->rcpts[1].dsn_status = strdup("4.4.1");
    e->rcpts[1].last_error = strdup("connection refused");
    envelope_encode_result(e, 1, &b);
    e->next_try = 1000;
    e->attempts = 1;
    envelope_encode_schedule(e, &b);
    e->rcpts[1].state = RCPT_DELIVERED;
    e->rcpts[1].attempts = 2;
    free(e->rcpts[1].dsn_status);
    e->rcpts[1].dsn_status = strdup("2.0.0");
    free(e->rcpts[1].last_error);
    e->rcpts[1].last_error = strdup("250 ok");
    envelope_encode_result(e, 1, &b);
    struct envelope *d = envelope_decode(b.data, b.len, &err);
    assert_non_null(d);
    assert_int_equal(d->rcpts[0].state, RCPT_PENDING);
    assert_int_equal(d->rcpts[1].state, RCPT_DELIVERED);
    assert_int_equal(d->rcpts[1].attempts, 2);
    assert_string_equal(d->rcpts[1].last_error, "250 ok");
    assert_int_equal(d->next_try, 1000);
    assert_int_equal(d->delay_warned, 0);
    envelope_free(d);

    /* The delay-notice record: appended, and kept by a full re-encode. */
    e->delay_warned = 1795856600;
    envelope_encode_delay_warned(e, &b);
    d = envelope_decode(b.data, b.len, &err);
    assert_non_null(d);
    assert_int_equal(d->delay_warned, 1795856600);
    struct buf again = BUF_INIT;
    envelope_encode(d, &again);
    envelope_free(d);
    d = envelope_decode(again.data, again.len, &err);
    assert_non_null(d);
    assert_int_equal(d->delay_warned, 1795856600);
    envelope_free(d);
    buf_free(&again);

    /* A crash in the middle of the next append: the torn line is ignored. */
    size_t whole = b.len;
    buf_puts(&b, "X 0 D 1 2.0.0 deliv");
    d = envelope_decode(b.data, b.len, &err);
    assert_non_null(d);
    assert_int_equal(d->rcpts[0].state, RCPT_PENDING);
    envelope_free(d);
    buf_truncate(&b, whole);
    buf_free(&b);
    buf_free(&err);
    envelope_free(e);
}

static void expect_error(const char *text)
{
    struct buf err = BUF_INIT;
    struct envelope *d = envelope_decode(text, strlen(text), &err);
    if (d != NULL)
        fail_msg("accepted: [%s]", text);
    assert_true(err.len > 0);
    buf_free(&err);
}

/* Version 2 carries the commit record; version 1 files are still read (without it). */
static void test_versions(void **state)
{
    (void)state;
    struct envelope *e = envelope_new();
    envelope_add_rcpt(e, "a@example.com");
    struct buf b = BUF_INIT, err = BUF_INIT;
    envelope_encode(e, &b);
    assert_memory_equal(b.data, "HONGYAN-ENVELOPE 2\n", 19);
    struct envelope *d = envelope_decode(b.data, b.len, &err);
    assert_non_null(d);
    assert_int_equal(d->data_size, -1);
    envelope_free(d);
    envelope_encode_commit(4096, &b);
    d = envelope_decode(b.data, b.len, &err);
    assert_non_null(d);
    assert_int_equal(d->data_size, 4096);
    envelope_free(d);
    const char *v1 = "HONGYAN-ENVELOPE 1\nI ABC\nT 5\nS a%40b\nR x@y - 0\n";
    d = envelope_decode(v1, strlen(v1), &err);
    assert_non_null(d);
    assert_string_equal(d->sender, "a@b");
    assert_int_equal(d->nrcpts, 1);
    assert_int_equal(d->data_size, -1);
    envelope_free(d);
    envelope_free(e);
    buf_free(&b);
    buf_free(&err);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error("");
    expect_error("HONGYAN-ENVELOPE 3\nS =\n");
    expect_error("HONGYAN-ENVELOPE 2\nS =\nC -1\n");
    expect_error("HONGYAN-ENVELOPE 1\n");                   /* no sender */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nQ what\n");      /* unknown record */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nX 0 D 1 - -\n"); /* result for no recipient */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR a - 0\nX 0 Z 1 - -\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR a%4 - 0\n");   /* bad escape */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR a%00b - 0\n"); /* NUL */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR a - 0 extra\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\nT -5\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\nT 99999999999999999999999\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\nF 9 0 0 0 0\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\n\n");
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR  - 0\n");
    /* A torn line in the middle (not the last) is damage. */
    expect_error("HONGYAN-ENVELOPE 1\nS =\nR a - 0\nX 0 D\nR b - 0\n");
}

/* Decodes text (with embedded NULs) and returns the intact length, or -1 when refused. */
static long decode_intact(const char *text, size_t len, int *state0)
{
    struct buf err = BUF_INIT;
    size_t intact = 99999;
    struct envelope *d = envelope_decode_prefix(text, len, &intact, &err);
    long rc = d ? (long)intact : -1;
    if (d && state0)
        *state0 = d->rcpts[0].state;
    envelope_free(d);
    buf_free(&err);
    return rc;
}

/*
 * A power cut after an unsynced append (docs/queue.md, Durability): past
 * the commit record, NULs, a partial line or bytes that do not parse are a
 * torn tail, cut off; before it they are damage.
 */
static void test_torn_tail(void **state)
{
    (void)state;
    static const char committed[] = "HONGYAN-ENVELOPE 2\nI ABC\nS a%40b\nR x@y - 0\nC 10\n";
    static const char result[] = "X 0 D 1 2.0.0 ok\n";
    char text[256];
    size_t clen = sizeof committed - 1, rlen = sizeof result - 1;
    memcpy(text, committed, clen);
    memcpy(text + clen, result, rlen);
    int st = -1;
    /* Whole: everything is intact and the result counts. */
    assert_int_equal(decode_intact(text, clen + rlen, &st), (long)(clen + rlen));
    assert_int_equal(st, RCPT_DELIVERED);
    /* The ext4 case: the size reached the disk, the data did not (NULs, no newline). */
    memset(text + clen + rlen, 0, 127);
    assert_int_equal(decode_intact(text, clen + rlen + 127, &st), (long)(clen + rlen));
    assert_int_equal(st, RCPT_DELIVERED);
    /* NULs in place of the result itself, with a later page that did reach the disk. */
    memset(text + clen, 0, rlen);
    memcpy(text + clen + rlen, result, rlen);
    assert_int_equal(decode_intact(text, clen + 2 * rlen, &st), (long)clen);
    assert_int_equal(st, RCPT_PENDING);
    /* Garbage after the commit record; a partial last line. */
    memcpy(text + clen, "X 7 D\n", 6);
    assert_int_equal(decode_intact(text, clen + 6, NULL), (long)clen);
    memcpy(text + clen, "X 0 D 1 2.0", 11);
    assert_int_equal(decode_intact(text, clen + 11, NULL), (long)clen);
    /* Before the commit record (synced before the 250), NULs are damage. */
    memcpy(text, committed, clen);
    text[clen - 6] = '\0'; /* inside the R record */
    assert_int_equal(decode_intact(text, clen, NULL), -1);
    /* Version 1 files have no commit record: damage anywhere is an error, as before. */
    static const char v1[] = "HONGYAN-ENVELOPE 1\nS =\nR a - 0\nX 0 D\nR b - 0\n";
    assert_int_equal(decode_intact(v1, sizeof v1 - 1, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_null_sender),
        cmocka_unit_test(test_appended),  cmocka_unit_test(test_versions),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_torn_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
