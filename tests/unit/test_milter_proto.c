/*
 * Milter wire format (milter/milter_proto.c) and the edits on a message
 * (milter/milter_msg.c): golden packets as libmilter sends them, malformed
 * ones, and Postfix's header index rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "milter/milter_msg.h"
#include "milter/milter_proto.h"

static void test_encode_connect(void **state)
{
    struct buf b = BUF_INIT;
    size_t start = milter_pkt_begin(&b, MILTER_C_CONNECT);
    milter_pkt_put_str(&b, "[127.0.0.1]");
    buf_putc(&b, '4');
    milter_pkt_put_u16(&b, 25);
    milter_pkt_put_str(&b, "127.0.0.1");
    milter_pkt_end(&b, start);
    static const char want[] = "\0\0\0\x1a"
                               "C[127.0.0.1]\0"
                               "4\0\x19"
                               "127.0.0.1";
    assert_int_equal(b.len, sizeof want); /* the string's own NUL is the last byte */
    assert_memory_equal(b.data, want, sizeof want);
    buf_free(&b);
}

static void test_split(void **state)
{
    char cmd;
    const char *data;
    size_t dlen, used;
    static const char two[] = "\0\0\0\1c\0\0\0\3y45";
    assert_int_equal(milter_pkt_split(two, 3, 100, &cmd, &data, &dlen, &used), 0);
    assert_int_equal(milter_pkt_split(two, sizeof two - 1, 100, &cmd, &data, &dlen, &used), 1);
    assert_int_equal(cmd, 'c');
    assert_int_equal(dlen, 0);
    assert_int_equal(used, 5);
    /* The second packet is not complete: its length says 3 bytes, 2 are there. */
    assert_int_equal(milter_pkt_split(two + 5, 6, 100, &cmd, &data, &dlen, &used), 0);
    assert_int_equal(milter_pkt_split(two + 5, 7, 100, &cmd, &data, &dlen, &used), 1);
    assert_int_equal(cmd, 'y');
    /* A zero length and one beyond the cap are errors, never a wait for more. */
    assert_int_equal(milter_pkt_split("\0\0\0\0", 4, 100, &cmd, &data, &dlen, &used), -1);
    assert_int_equal(milter_pkt_split("\x7f\xff\xff\xff", 4, 100, &cmd, &data, &dlen, &used), -1);
}

static void test_decode_replies(void **state)
{
    struct milter_reply r;
    const char *why;
    assert_int_equal(milter_reply_decode('c', "", 0, &r, &why), 0);
    assert_int_equal(milter_reply_decode('c', "x", 1, &r, &why), -1);
    static const char chg[] = "\0\0\0\2Subject\0new value";
    assert_int_equal(milter_reply_decode('m', chg, sizeof chg, &r, &why), 0);
    assert_int_equal(r.index, 2);
    assert_string_equal(r.name, "Subject");
    assert_string_equal(r.value, "new value");
    /* No NUL after the value: malformed. */
    assert_int_equal(milter_reply_decode('m', chg, sizeof chg - 1, &r, &why), -1);
    assert_int_equal(milter_reply_decode('i', "\0\0", 2, &r, &why), -1);
    static const char from[] = "<a@b>";
    assert_int_equal(milter_reply_decode('e', from, sizeof from, &r, &why), 0);
    assert_string_equal(r.name, "<a@b>");
    assert_string_equal(r.value, "");
    static const char from2[] = "<a@b>\0RET=HDRS";
    assert_int_equal(milter_reply_decode('e', from2, sizeof from2, &r, &why), 0);
    assert_string_equal(r.value, "RET=HDRS");
    static const char text[] = "550 5.7.1 no";
    assert_int_equal(milter_reply_decode('y', text, sizeof text, &r, &why), 0);
    assert_string_equal(r.text, "550 5.7.1 no");
    static const char text2[] = "550 5.7.1\0no";
    assert_int_equal(milter_reply_decode('y', text2, sizeof text2, &r, &why), -1);
    assert_int_equal(milter_reply_decode('Z', "", 0, &r, &why), -1);
    assert_int_equal(milter_reply_decode('+', "\0", 1, &r, &why), -1); /* empty address */
}

static void test_reply_text(void **state)
{
    assert_true(milter_reply_text_valid("550 5.7.1 Command rejected"));
    assert_true(milter_reply_text_valid("451 4.7.1 Try later"));
    assert_true(milter_reply_text_valid("554-5.7.0 one\r\n554 5.7.0 two"));
    assert_false(milter_reply_text_valid("250 2.0.0 ok"));
    assert_false(milter_reply_text_valid("550 4.7.1 class mismatch"));
    assert_false(milter_reply_text_valid("554-one\r\n550 two"));
    assert_false(milter_reply_text_valid("554 one\r\n554 two"));
    assert_false(milter_reply_text_valid("554-one\n554 two"));
    assert_false(milter_reply_text_valid("55"));
}

static void test_optneg(void **state)
{
    struct milter_optneg o;
    const char *why;
    static const char pkt[] = "\0\0\0\6\0\0\0\x3f\0\0\0\x10"
                              "\0\0\0\2{mail_addr} i";
    assert_int_equal(milter_optneg_decode(pkt, sizeof pkt, &o, &why), 0);
    assert_int_equal(o.version, 6);
    assert_int_equal(o.actions, 0x3f);
    assert_int_equal(o.protocol, 0x10);
    assert_string_equal(o.macros[MILTER_M_ENVFROM], "{mail_addr} i");
    assert_int_equal(milter_optneg_decode(pkt, 11, &o, &why), -1);
    assert_int_equal(milter_optneg_decode(pkt, sizeof pkt - 1, &o, &why), -1);
}

static const char MSG[] = "Received: from x\r\n"
                          "Subject: one\r\n"
                          "X-Folded: a\r\n b\r\n"
                          "subject: two\r\n"
                          "\r\n"
                          "body\r\n";

static char *render(const struct milter_msg *m)
{
    struct buf b = BUF_INIT;
    milter_msg_serialize(m, &b);
    return buf_steal(&b);
}

static void test_msg_roundtrip_and_split(void **state)
{
    struct milter_msg m;
    milter_msg_parse(&m, MSG, sizeof MSG - 1);
    assert_int_equal(m.nhdrs, 4);
    char *out = render(&m);
    assert_string_equal(out, MSG);
    free(out);
    struct buf n = BUF_INIT, v = BUF_INIT;
    milter_hdr_split(&m.hdrs[2], 0, &n, &v);
    assert_string_equal(buf_cstr(&n), "X-Folded");
    assert_string_equal(buf_cstr(&v), "a\n b");
    milter_hdr_split(&m.hdrs[1], 1, &n, &v);
    assert_string_equal(buf_cstr(&v), " one");
    buf_free(&n);
    buf_free(&v);
    milter_msg_free(&m);
}

static void test_msg_edits(void **state)
{
    struct milter_msg m;
    milter_msg_parse(&m, MSG, sizeof MSG - 1);
    /* The second "Subject" (names compare without case), then index 0 as 1. */
    assert_int_equal(milter_msg_change_header(&m, 2, "Subject", " ", "2nd"), 0);
    assert_int_equal(milter_msg_change_header(&m, 0, "SUBJECT", " ", "1st"), 0);
    assert_int_equal(milter_msg_change_header(&m, 1, "X-Folded", " ", ""), 0); /* delete */
    assert_int_equal(milter_msg_change_header(&m, 1, "X-None", " ", ""), 0);   /* nothing */
    assert_int_equal(milter_msg_change_header(&m, 3, "X-New", " ", "appended"), 0);
    assert_int_equal(milter_msg_insert_header(&m, 0, "X-Top", " ", "l1\nl2"), 0);
    assert_int_equal(milter_msg_add_header(&m, "X-End", "", " lead"), 0);
    assert_int_equal(milter_msg_add_header(&m, "Bad Name", " ", "x"), -1);
    assert_int_equal(milter_msg_add_header(&m, "Bad:", " ", "x"), -1);
    milter_msg_body_begin(&m);
    milter_msg_body_chunk(&m, "new\nbo", 6);
    milter_msg_body_chunk(&m, "dy\r\nlast", 8);
    milter_msg_body_end(&m);
    char *out = render(&m);
    assert_string_equal(out, "X-Top: l1\r\nl2\r\n"
                             "Received: from x\r\n"
                             "SUBJECT: 1st\r\n"
                             "Subject: 2nd\r\n"
                             "X-New: appended\r\n"
                             "X-End: lead\r\n"
                             "\r\n"
                             "new\r\nbody\r\nlast\r\n");
    free(out);
    milter_msg_free(&m);
}

static void test_msg_no_body_and_odd_input(void **state)
{
    struct milter_msg m;
    milter_msg_parse(&m, "Subject: x", 10);
    assert_int_equal(m.nhdrs, 1);
    char *out = render(&m);
    assert_string_equal(out, "Subject: x\r\n\r\n");
    free(out);
    milter_msg_free(&m);
    /* A first line that is no header: all body. */
    milter_msg_parse(&m, "not a header\r\nx: y\r\n", 20);
    assert_int_equal(m.nhdrs, 0);
    assert_int_equal(m.body.len, 20);
    milter_msg_free(&m);
    char *a = milter_addr_strip(" <a@b> ");
    assert_string_equal(a, "a@b");
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_connect), cmocka_unit_test(test_split),
        cmocka_unit_test(test_decode_replies), cmocka_unit_test(test_reply_text),
        cmocka_unit_test(test_optneg),         cmocka_unit_test(test_msg_roundtrip_and_split),
        cmocka_unit_test(test_msg_edits),      cmocka_unit_test(test_msg_no_body_and_odd_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
