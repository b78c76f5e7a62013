/*
 * Unit tests for the smtpd → delivery protocol (src/ipc/split_proto.c):
 * both messages round-trip through a real SOCK_SEQPACKET socketpair, and
 * what a compromised smtpd could send instead (another version, a queue id
 * with a path in it, a short or long datagram, an unknown type, a request
 * id) is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc/ipc_proto.h"

static void test_round_trip(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    struct buf m = BUF_INIT;
    split_put_hello(&m, 1765000000u);
    assert_int_equal(send(sv[0], m.data, m.len, 0), (ssize_t)m.len);
    buf_reset(&m);
    const char *one[] = {"4ZK3QH2B7XY9QA1"};
    split_put_queued(&m, one, 1);
    assert_int_equal(send(sv[0], m.data, m.len, 0), (ssize_t)m.len);
    /* A whole commit round in one datagram: the most ids it may carry, of the longest length. */
    char many[SPLIT_QUEUED_MAX_IDS][SPLIT_QUEUE_ID_MAX + 1];
    const char *many_p[SPLIT_QUEUED_MAX_IDS];
    for (int i = 0; i < SPLIT_QUEUED_MAX_IDS; i++) {
        memset(many[i], 'A' + i % 26, SPLIT_QUEUE_ID_MAX);
        many[i][SPLIT_QUEUE_ID_MAX] = '\0';
        many_p[i] = many[i];
    }
    buf_reset(&m);
    split_put_queued(&m, many_p, SPLIT_QUEUED_MAX_IDS);
    assert_true(m.len <= SPLIT_MSG_MAX);
    assert_int_equal(send(sv[0], m.data, m.len, 0), (ssize_t)m.len);

    uint8_t dg[SPLIT_MSG_MAX + 1];
    struct split_msg msg;
    ssize_t n = recv(sv[1], dg, sizeof dg, 0);
    assert_true(n > 0);
    assert_int_equal(split_msg_decode(dg, (size_t)n, &msg), 0);
    assert_int_equal(msg.type, SPLIT_HELLO);
    assert_int_equal(msg.u.hello.version, SPLIT_PROTO_VERSION);
    assert_int_equal(msg.u.hello.started, 1765000000u);
    n = recv(sv[1], dg, sizeof dg, 0);
    assert_true(n > 0);
    assert_int_equal(split_msg_decode(dg, (size_t)n, &msg), 0);
    assert_int_equal(msg.type, SPLIT_QUEUED);
    assert_int_equal(msg.u.queued.count, 1);
    assert_int_equal(msg.u.queued.ids[0].len, 15);
    assert_memory_equal(msg.u.queued.ids[0].data, "4ZK3QH2B7XY9QA1", 15);
    n = recv(sv[1], dg, sizeof dg, 0);
    assert_true(n > 0);
    assert_int_equal(split_msg_decode(dg, (size_t)n, &msg), 0);
    assert_int_equal(msg.u.queued.count, SPLIT_QUEUED_MAX_IDS);
    for (int i = 0; i < SPLIT_QUEUED_MAX_IDS; i++)
        assert_memory_equal(msg.u.queued.ids[i].data, many[i], SPLIT_QUEUE_ID_MAX);
    buf_free(&m);
    close(sv[0]);
    close(sv[1]);
}

static void test_refused(void **state)
{
    (void)state;
    struct buf m = BUF_INIT;
    struct split_msg msg;
    static const char *const bad_ids[] = {
        "", "../active/X", "ABC/DEF", "A B", "ABC\n", "0123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        buf_reset(&m);
        split_put_queued(&m, &bad_ids[i], 1);
        assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
        /* A bad id after a good one spoils the whole message. */
        const char *pair[] = {"ABC", bad_ids[i]};
        buf_reset(&m);
        split_put_queued(&m, pair, 2);
        assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    }
    /* A count of 0, one over the cap, and one that says more than there is. */
    static const uint32_t bad_counts[] = {0, SPLIT_QUEUED_MAX_IDS + 1, 2};
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts[0]; i++) {
        buf_reset(&m);
        keeper_put_hdr(&m, 0, (enum keeper_type)SPLIT_QUEUED, 0);
        keeper_put_u32(&m, bad_counts[i]);
        keeper_put_str(&m, "ABC");
        assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    }
    /* One byte more, one byte less, a truncated header. */
    buf_reset(&m);
    const char *abc[] = {"ABC"};
    split_put_queued(&m, abc, 1);
    buf_putc(&m, 'x');
    assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    assert_int_equal(split_msg_decode(m.data, m.len - 2, &msg), -1);
    assert_int_equal(split_msg_decode(m.data, 5, &msg), -1);
    /* Another version of HELLO. */
    buf_reset(&m);
    keeper_put_hdr(&m, 0, (enum keeper_type)SPLIT_HELLO, 0);
    keeper_put_u32(&m, SPLIT_PROTO_VERSION + 1);
    keeper_put_u32(&m, 0);
    assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    /* A request id or a status, which the protocol never uses; an unknown type. */
    buf_reset(&m);
    keeper_put_hdr(&m, 7, (enum keeper_type)SPLIT_QUEUED, 0);
    keeper_put_u32(&m, 1);
    keeper_put_str(&m, "ABC");
    assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    buf_reset(&m);
    keeper_put_hdr(&m, 0, (enum keeper_type)SPLIT_QUEUED, 1);
    keeper_put_u32(&m, 1);
    keeper_put_str(&m, "ABC");
    assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    buf_reset(&m);
    keeper_put_hdr(&m, 0, (enum keeper_type)3, 0);
    assert_int_equal(split_msg_decode(m.data, m.len, &msg), -1);
    buf_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
