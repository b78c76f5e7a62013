/*
 * pickup's parsing of maildrop files (the helper's uid line, sendmail's
 * envelope), the envelope checks, CRLF normalisation, and the access lists
 * of authorized_submit_users (queue/localuser.h) and the string set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/strset.h"
#include "queue/envelope.h"
#include "queue/localuser.h"
#include "queue/pickup.h"

/* A maildrop file with the helper's line (uid >= 0) and an envelope for sender and rcpts. */
static void make_file(struct buf *out, long uid, const char *sender, const char **rcpts,
                      const char *msg)
{
    struct envelope *e = envelope_new();
    free(e->sender);
    e->sender = strdup(sender);
    for (const char **r = rcpts; *r; r++)
        envelope_add_rcpt(e, *r);
    if (uid >= 0)
        buf_printf(out, "HONGYAN-POSTDROP uid=%ld\n", uid);
    pickup_encode(e, msg, strlen(msg), out);
    envelope_free(e);
}

static void test_parse_uid_line(void **state)
{
    (void)state;
    const char *rcpts[] = {"bob@example.com", NULL};
    struct buf f = BUF_INIT, err = BUF_INIT;
    make_file(&f, 1000, "a@example.com", rcpts, "Subject: x\r\n\r\nbody\r\n");
    struct envelope *e = NULL;
    size_t off;
    long uid;
    assert_int_equal(pickup_parse(f.data, f.len, &uid, &e, &off, &err), 0);
    assert_int_equal(uid, 1000);
    assert_string_equal(e->sender, "a@example.com");
    assert_memory_equal(f.data + off, "Subject: x", 10);
    envelope_free(e);
    /* A second uid line is the user's, not the helper's: not a maildrop file. */
    struct buf g = BUF_INIT;
    buf_puts(&g, "HONGYAN-POSTDROP uid=1000\n");
    make_file(&g, 0, "a@example.com", rcpts, "x\r\n");
    assert_int_equal(pickup_parse(g.data, g.len, &uid, &e, &off, &err), -1);
    /* Anything but digits then LF on the helper's line is refused. */
    const char *bad[] = {"HONGYAN-POSTDROP uid=\n", "HONGYAN-POSTDROP uid=12x\n",
                         "HONGYAN-POSTDROP uid=99999999999\n", "HONGYAN-POSTDROP uid=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&err);
        assert_int_equal(pickup_parse(bad[i], strlen(bad[i]), &uid, &e, &off, &err), -1);
    }
    /* A file from before the helper: no uid (the owner says who). */
    buf_reset(&g);
    make_file(&g, -1, "a@example.com", rcpts, "x\r\n");
    assert_int_equal(pickup_parse(g.data, g.len, &uid, &e, &off, &err), 0);
    assert_int_equal(uid, -1);
    envelope_free(e);
    buf_free(&f);
    buf_free(&g);
    buf_free(&err);
}

static struct envelope *decode(long uid, const char *sender, const char **rcpts)
{
    struct buf f = BUF_INIT, err = BUF_INIT;
    make_file(&f, uid, sender, rcpts, "x\r\n");
    struct envelope *e = NULL;
    size_t off;
    long got;
    assert_int_equal(pickup_parse(f.data, f.len, &got, &e, &off, &err), 0);
    buf_free(&f);
    buf_free(&err);
    return e;
}

static void test_validate(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    const char *dups[] = {"bob@example.com", "Bob@EXAMPLE.com", "carol@example.com",
                          "bob@example.com", NULL};
    struct envelope *e = decode(1, "a@Example.COM", dups);
    assert_int_equal(pickup_validate(e, 10, &err), 0);
    assert_string_equal(e->sender, "a@example.com"); /* normal form: domain lower case */
    assert_int_equal(e->nrcpts, 2);
    assert_string_equal(e->rcpts[0].address, "bob@example.com");
    assert_string_equal(e->rcpts[1].address, "carol@example.com");
    envelope_free(e);
    /* The cap counts what the user wrote. */
    e = decode(1, "", dups);
    assert_int_equal(pickup_validate(e, 3, &err), -1);
    assert_non_null(strstr(buf_cstr(&err), "too many recipients"));
    envelope_free(e);
    /* CR, LF, or no domain: refused, wherever they are. */
    const char *ok[] = {"bob@example.com", NULL};
    const char *senders[] = {"a@example.com\r\nRSET", "a\n@example.com", "nodomain"};
    for (size_t i = 0; i < 3; i++) {
        buf_reset(&err);
        e = decode(1, senders[i], ok);
        assert_int_equal(pickup_validate(e, 0, &err), -1);
        assert_string_equal(buf_cstr(&err), "bad sender address");
        envelope_free(e);
    }
    const char *badr[] = {"bob@example.com", "x@example.com\rRCPT TO:<y@z>", NULL};
    buf_reset(&err);
    e = decode(1, "a@example.com", badr);
    assert_int_equal(pickup_validate(e, 0, &err), -1);
    assert_string_equal(buf_cstr(&err), "bad recipient address");
    envelope_free(e);
    buf_reset(&err);
    e = decode(1, "a@example.com", ok);
    e->rcpts[0].orcpt = strdup("rfc822;bob@example.com\r\nQUIT");
    assert_int_equal(pickup_validate(e, 0, &err), -1);
    envelope_free(e);
    buf_free(&err);
}

static void test_normalize(void **state)
{
    (void)state;
    struct buf out = BUF_INIT;
    const char in[] = "a\nb\rc\r\nd\r\r\ne";
    pickup_normalize(in, sizeof in - 1, &out);
    assert_string_equal(buf_cstr(&out), "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n");
    buf_reset(&out);
    pickup_normalize("", 0, &out);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

static void test_access_lists(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    assert_int_equal(localuser_listed("static:anyone", "alice", &err), 1);
    assert_int_equal(localuser_listed("", "alice", &err), 0);
    assert_int_equal(localuser_listed("bob, alice", "alice", &err), 1);
    assert_int_equal(localuser_listed("!alice, static:anyone", "alice", &err), 0);
    assert_int_equal(localuser_listed("!alice, static:anyone", "bob", &err), 1);
    assert_int_equal(localuser_listed("root, !static:all", "bob", &err), 0);
    assert_int_equal(localuser_listed("inline:{alice=yes}", "alice", &err), 1);
    assert_int_equal(localuser_listed("inline:{alice=yes}", "bob", &err), 0);
    assert_int_equal(localuser_listed("/nonexistent/users", "bob", &err), -1);
    /* root and mail_owner always may. */
    assert_int_equal(localuser_authorized("", "hongyan", 0, "root", &err), 1);
    assert_int_equal(localuser_authorized("", "hongyan", 999, "hongyan", &err), 1);
    assert_int_equal(localuser_authorized("", "hongyan", 1000, "alice", &err), 0);
    buf_free(&err);
}

static void test_strset(void **state)
{
    (void)state;
    struct strset set = STRSET_INIT;
    char names[3000][16];
    for (int i = 0; i < 3000; i++) {
        snprintf(names[i], sizeof names[i], "U%d@x", i);
        assert_int_equal(strset_add(&set, names[i]), 1);
    }
    assert_int_equal(strset_add(&set, "u17@X"), 0);
    assert_true(strset_has(&set, "U2999@x"));
    assert_false(strset_has(&set, "U3000@x"));
    assert_int_equal(set.count, 3000);
    strset_free(&set);
    assert_false(strset_has(&set, "U1@x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_uid_line), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_normalize),      cmocka_unit_test(test_access_lists),
        cmocka_unit_test(test_strset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
