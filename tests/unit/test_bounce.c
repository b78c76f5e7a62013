/* DSN construction (RFC 3464): structure, per-recipient fields, RET, NOTIFY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/bounce.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "testutil.h"

static const char *orig = "From: alice@example.org\r\nTo: bob@example.com\r\n"
                          "Subject: test\r\n\r\nsecret body\r\n";

static struct envelope *make_env(void)
{
    struct envelope *e = envelope_new();
    snprintf(e->queue_id, sizeof e->queue_id, "1LGL65FDNF42HOP");
    e->arrival = 1795856559;
    free(e->sender);
    e->sender = strdup("alice@example.org");
    e->envid = strdup("ENV123");
    struct envelope_rcpt *r = envelope_add_rcpt(e, "bob@example.com");
    r->orcpt = strdup("rfc822;Bob@Example.com");
    r->state = RCPT_BOUNCED;
    r->dsn_status = strdup("5.1.1");
    r->last_error = strdup("550 5.1.1 <bob@example.com>: user unknown");
    r = envelope_add_rcpt(e, "carol@example.com");
    r->state = RCPT_BOUNCED;
    r->dsn_status = strdup("4.4.7");
    r->last_error = strdup("message expired\r\ninjected: header");
    envelope_add_rcpt(e, "dave@example.com"); /* delivered or pending: not in this DSN */
    return e;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_structure(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    size_t idx[] = {0, 1};
    struct buf out = BUF_INIT;
    bounce_build(e, orig, strlen(orig), idx, 2, "mx.example.com", 1795856600, &out);
    const char *t = buf_cstr(&out);
    assert_non_null(strstr(t, "Content-Type: multipart/report; report-type=delivery-status;"));
    assert_non_null(strstr(t, "To: <alice@example.org>\r\n"));
    assert_non_null(strstr(t, "Content-Type: message/delivery-status\r\n"));
    assert_non_null(strstr(t, "Reporting-MTA: dns; mx.example.com\r\n"));
    assert_non_null(strstr(t, "Original-Envelope-Id: ENV123\r\n"));
    assert_non_null(strstr(t, "Final-Recipient: rfc822; bob@example.com\r\n"));
    assert_non_null(strstr(t, "Original-Recipient: rfc822;Bob@Example.com\r\n"));
    assert_non_null(strstr(t, "Status: 5.1.1\r\n"));
    assert_non_null(strstr(t, "Diagnostic-Code: smtp; 550 5.1.1"));
    assert_non_null(strstr(t, "Final-Recipient: rfc822; carol@example.com\r\n"));
    assert_non_null(strstr(t, "Status: 4.4.7\r\n"));
    assert_non_null(strstr(t, "Diagnostic-Code: x-unix; message expired  injected: header\r\n"));
    assert_null(strstr(t, "\r\ninjected: header"));
    assert_null(strstr(t, "dave@example.com"));
    assert_int_equal(count(t, "Action: failed\r\n"), 2);
    /* Headers only by default. */
    assert_non_null(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    assert_non_null(strstr(t, "Subject: test\r\n"));
    assert_null(strstr(t, "secret body"));
    assert_non_null(strstr(t, "--1LGL65FDNF42HOP.1795856600/mx.example.com--\r\n"));
    /* Every line ends in CRLF. */
    for (size_t i = 0; i < out.len; i++)
        if (out.data[i] == '\n')
            assert_true(i > 0 && out.data[i - 1] == '\r');
    buf_free(&out);

    e->ret = DSN_RET_FULL;
    bounce_build(e, orig, strlen(orig), idx, 1, "mx.example.com", 1795856600, &out);
    assert_non_null(strstr(buf_cstr(&out), "Content-Type: message/rfc822\r\n"));
    assert_non_null(strstr(buf_cstr(&out), "secret body"));
    buf_free(&out);
    envelope_free(e);
}

static void test_utf8(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    free(e->rcpts[0].address);
    e->rcpts[0].address = strdup("用户@例子.广告");
    size_t idx[] = {0};
    struct buf out = BUF_INIT;
    bounce_build(e, orig, strlen(orig), idx, 1, "mx.example.com", 1795856600, &out);
    const char *t = buf_cstr(&out);
    assert_non_null(strstr(t, "Content-Type: message/global-delivery-status\r\n"));
    assert_non_null(strstr(t, "Final-Recipient: utf-8; 用户@例子.广告\r\n"));
    assert_non_null(strstr(t, "Content-Type: message/global-headers\r\n"));
    buf_free(&out);
    envelope_free(e);
}

/* A remote reply that is not UTF-8 goes into Diagnostic-Code as text ('?'). */
static void test_reply_not_utf8(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    free(e->rcpts[0].last_error);
    e->rcpts[0].last_error = strdup("550 5.1.1 caf\xe9 \xff\xfe unknown\r\nX: y");
    size_t idx[] = {0};
    struct buf out = BUF_INIT;
    bounce_build(e, orig, strlen(orig), idx, 1, "mx.example.com", 1795856600, &out);
    assert_non_null(
        strstr(buf_cstr(&out), "Diagnostic-Code: smtp; 550 5.1.1 caf? ?? unknown  X: y\r\n"));
    buf_free(&out);
    envelope_free(e);
}

static void test_notify(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    struct envelope_rcpt *r = &e->rcpts[0];
    assert_true(bounce_wanted(e, r, 0));  /* NOTIFY absent: failures */
    assert_false(bounce_wanted(e, r, 1)); /* success DSNs are not generated */
    r->notify = DSN_NOTIFY_NEVER;
    assert_false(bounce_wanted(e, r, 0));
    r->notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
    assert_false(bounce_wanted(e, r, 0));
    r->notify = DSN_NOTIFY_FAILURE;
    assert_true(bounce_wanted(e, r, 0));
    e->is_bounce = 1; /* never bounce a bounce */
    assert_false(bounce_wanted(e, r, 0));
    e->is_bounce = 0;
    free(e->sender);
    e->sender = strdup("");
    assert_false(bounce_wanted(e, r, 0));
    envelope_free(e);
}

/* The delay notice (delay_warning_time): RFC 3464 2.3.3 "delayed", 2.3.7 Will-Retry-Until. */
static void test_delayed(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    e->ret = DSN_RET_FULL; /* a delay notice returns the headers only all the same */
    struct envelope_rcpt *r = &e->rcpts[0];
    r->state = RCPT_PENDING;
    free(r->dsn_status);
    r->dsn_status = strdup("4.3.0");
    free(r->last_error);
    r->last_error = strdup("451 4.3.0 try again later");
    r = &e->rcpts[1];
    r->state = RCPT_PENDING;
    free(r->dsn_status);
    r->dsn_status = strdup("5.1.1"); /* not a 4.x.x: a delay says 4.0.0 */
    size_t idx[] = {0, 1};
    struct bounce_opts opts = {.delayed = 1, .will_retry_until = 1795856559 + 5 * 86400};
    struct buf out = BUF_INIT, until = BUF_INIT;
    bounce_build_opts(e, orig, strlen(orig), idx, 2, "mx.example.com", 1795856559 + 7300, &opts,
                      &out);
    const char *t = buf_cstr(&out);
    assert_non_null(strstr(t, "Content-Type: multipart/report; report-type=delivery-status;"));
    assert_non_null(strstr(t, "Subject: Delayed Mail (still being retried)\r\n"));
    assert_non_null(strstr(t, "THIS IS A WARNING ONLY"));
    assert_non_null(strstr(t, "for 2 hours"));
    assert_int_equal(count(t, "Action: delayed\r\n"), 2);
    assert_int_equal(count(t, "Action: failed"), 0);
    assert_non_null(strstr(t, "Status: 4.3.0\r\n"));
    assert_non_null(strstr(t, "Status: 4.0.0\r\n"));
    assert_null(strstr(t, "Status: 5."));
    assert_non_null(strstr(t, "Diagnostic-Code: smtp; 451 4.3.0 try again later\r\n"));
    assert_int_equal(count(t, "Will-Retry-Until: "), 2);
    /* The date is the expiry, in the RFC 5322 form the Arrival-Date uses. */
    struct envelope *x = make_env();
    x->arrival = opts.will_retry_until;
    struct buf ref = BUF_INIT;
    bounce_build(x, orig, strlen(orig), idx, 1, "mx.example.com", 1795856600, &ref);
    const char *ad = strstr(buf_cstr(&ref), "Arrival-Date: ");
    assert_non_null(ad);
    buf_puts(&until, "Will-Retry-Until: ");
    buf_append(&until, ad + 14, (size_t)(strstr(ad, "\r\n") - (ad + 14)));
    buf_puts(&until, "\r\n");
    assert_non_null(strstr(t, buf_cstr(&until)));
    assert_non_null(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    assert_null(strstr(t, "secret body"));
    assert_non_null(strstr(t, ".delay@mx.example.com>\r\n"));
    for (size_t i = 0; i < out.len; i++)
        if (out.data[i] == '\n')
            assert_true(i > 0 && out.data[i - 1] == '\r');
    buf_free(&ref);
    buf_free(&until);
    envelope_free(x);
    buf_free(&out);

    /* Without an expiry the field is left out. */
    opts.will_retry_until = 0;
    bounce_build_opts(e, orig, strlen(orig), idx, 1, "mx.example.com", 1795856600, &opts, &out);
    assert_null(strstr(buf_cstr(&out), "Will-Retry-Until"));
    assert_non_null(strstr(buf_cstr(&out), "Action: delayed\r\n"));
    buf_free(&out);
    envelope_free(e);
}

static void test_notify_delay(void **state)
{
    (void)state;
    struct envelope *e = make_env();
    struct envelope_rcpt *r = &e->rcpts[0];
    assert_true(bounce_wanted_delay(e, r)); /* NOTIFY absent: FAILURE,DELAY (RFC 3461 4.1) */
    r->notify = DSN_NOTIFY_DELAY;
    assert_true(bounce_wanted_delay(e, r));
    r->notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
    assert_true(bounce_wanted_delay(e, r));
    r->notify = DSN_NOTIFY_FAILURE;
    assert_false(bounce_wanted_delay(e, r));
    r->notify = DSN_NOTIFY_SUCCESS;
    assert_false(bounce_wanted_delay(e, r));
    r->notify = DSN_NOTIFY_NEVER;
    assert_false(bounce_wanted_delay(e, r));
    r->notify = 0;
    e->is_bounce = 1;
    assert_false(bounce_wanted_delay(e, r));
    e->is_bounce = 0;
    free(e->sender);
    e->sender = strdup("");
    assert_false(bounce_wanted_delay(e, r));
    envelope_free(e);
}

static void test_queue(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/test_bounce.XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    struct buf err = BUF_INIT, data = BUF_INIT;
    struct spool *s = spool_open(dir, SPOOL_INCOMING_DELIVERY, &err);
    assert_non_null(s);
    char path[512];
    snprintf(path, sizeof path, "%s/orig", dir);
    /* The original is a range of a file holding other messages before and after it. */
    struct buf segment = BUF_INIT;
    buf_printf(&segment, "Subject: BEFORE\r\n\r\nx\r\n%sSubject: AFTER\r\n\r\ny\r\n", orig);
    assert_int_equal(write_file_atomic(path, segment.data, segment.len, 0600), 0);
    buf_free(&segment);
    struct envelope *e = make_env();
    size_t idx[] = {0};
    char id[QUEUE_ID_MAX];
    e->ret = DSN_RET_FULL; /* the whole original is quoted: a read past its end would show */
    struct spool_data od;
    test_data_range(path, (off_t)strlen("Subject: BEFORE\r\n\r\nx\r\n"), (off_t)strlen(orig), &od);
    assert_int_equal(bounce_queue(s, e, &od, idx, 1, "mx.example.com", id, &err), 0);
    spool_data_close(&od);
    struct envelope *b = spool_read_envelope(s, id, NULL, &err);
    assert_non_null(b);
    assert_string_equal(b->sender, "");
    assert_true(b->is_bounce);
    assert_int_equal(b->nrcpts, 1);
    assert_string_equal(b->rcpts[0].address, "alice@example.org");
    envelope_free(b);
    struct buf dp = BUF_INIT;
    spool_data_path(s, id, SPOOL_ACTIVE, &dp);
    assert_int_equal(read_file(buf_cstr(&dp), &data, 1 << 20), 0);
    assert_non_null(strstr(buf_cstr(&data), "Final-Recipient: rfc822; bob@example.com"));
    assert_non_null(strstr(buf_cstr(&data), "secret body"));
    assert_null(strstr(buf_cstr(&data), "BEFORE"));
    assert_null(strstr(buf_cstr(&data), "AFTER"));
    buf_free(&dp);
    buf_free(&data);
    buf_free(&err);
    envelope_free(e);
    spool_free(s);
    test_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),      cmocka_unit_test(test_notify),
        cmocka_unit_test(test_utf8),           cmocka_unit_test(test_queue),
        cmocka_unit_test(test_reply_not_utf8), cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_notify_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
