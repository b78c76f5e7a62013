/*
 * Unit tests for the keeper's protocol (src/ipc/keeper_proto.c) and its
 * client end (src/ipc/keeper_client.c): every request round-trips, bad
 * lengths and leftovers are refused, and the client matches replies to
 * callers by id (out of order), times out, and sees a shut connection.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc/keeper_client.h"
#include "ipc/ipc_proto.h"

static void test_decode_requests(void **state)
{
    (void)state;
    struct buf m = BUF_INIT;
    struct keeper_request rq;
    uint8_t id[KEEPER_KEYID_LEN] = {1}, dg[KEEPER_DIGEST_LEN] = {2};

    keeper_put_hdr(&m, 9, KEEPER_TLS_SIGN, 0);
    keeper_put_u8(&m, KEEPER_TLS_ECDSA);
    keeper_put_bytes(&m, id, sizeof id);
    keeper_put_bytes(&m, "digest", 6);
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), 0);
    assert_int_equal(rq.hdr.id, 9);
    assert_int_equal(rq.u.tls_sign.op, KEEPER_TLS_ECDSA);
    assert_int_equal(rq.u.tls_sign.input.len, 6);
    /* One byte more, one byte less: refused. */
    buf_putc(&m, 'x');
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);
    assert_int_equal(keeper_request_decode(m.data, m.len - 2, &rq), -1);

    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_DKIM_SIGN, 0);
    keeper_put_str(&m, "example.com");
    keeper_put_str(&m, "mail");
    keeper_put_bytes(&m, dg, sizeof dg);
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), 0);
    assert_int_equal(rq.u.dkim_sign.domain.len, 11);
    /* A digest of the wrong size. */
    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_DKIM_SIGN, 0);
    keeper_put_str(&m, "example.com");
    keeper_put_str(&m, "mail");
    keeper_put_bytes(&m, dg, 31);
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);

    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_PASSWORD, 0);
    keeper_put_str(&m, "alice");
    keeper_put_bytes(&m, "pw\0x", 4); /* a NUL inside the password */
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);
    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_PASSWORD, 0);
    keeper_put_bytes(&m, "", 0); /* no user */
    keeper_put_str(&m, "pw");
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);

    /* Unknown type, a status in a request, a short header, an overlong name. */
    buf_reset(&m);
    keeper_put_hdr(&m, 1, (enum keeper_type)99, 0);
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);
    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_DKIM_KEYS, 1);
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);
    assert_int_equal(keeper_request_decode(m.data, 7, &rq), -1);
    buf_reset(&m);
    keeper_put_hdr(&m, 1, KEEPER_PASSWORD, 0);
    char longname[KEEPER_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    keeper_put_str(&m, longname);
    keeper_put_str(&m, "pw");
    assert_int_equal(keeper_request_decode(m.data, m.len, &rq), -1);
    buf_free(&m);
}

/* A fake keeper: answers two PASSWORD requests in reverse order, then a third never. */
static void *fake_keeper(void *arg)
{
    int fd = *(int *)arg;
    uint8_t in[2][KEEPER_MSG_MAX];
    ssize_t n[2];
    struct keeper_request rq[2];
    for (int i = 0; i < 2; i++) {
        n[i] = recv(fd, in[i], sizeof in[i], 0);
        if (n[i] <= 0 || keeper_request_decode(in[i], (size_t)n[i], &rq[i]) < 0)
            return NULL;
    }
    for (int i = 1; i >= 0; i--) {
        struct buf r = BUF_INIT;
        int ok =
            rq[i].u.password.pass.len == 5 && memcmp(rq[i].u.password.pass.data, "right", 5) == 0;
        keeper_put_hdr(&r, rq[i].hdr.id, KEEPER_PASSWORD, ok ? KEEPER_ST_OK : KEEPER_ST_NO);
        send(fd, r.data, r.len, 0);
        buf_free(&r);
    }
    uint8_t junk[KEEPER_MSG_MAX];
    recv(fd, junk, sizeof junk, 0); /* the third: no answer; then shut down */
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

struct caller {
    struct keeper_client *kc;
    const char *pass;
    enum keeper_status st;
};

static void *call_password(void *arg)
{
    struct caller *c = arg;
    c->st = keeper_client_password(c->kc, "alice", c->pass);
    return NULL;
}

static void test_client_matches_replies(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    pthread_t keeper, a, b;
    pthread_create(&keeper, NULL, fake_keeper, &sv[0]);
    struct keeper_client *kc = keeper_client_new(sv[1]);
    struct caller ca = {kc, "right", KEEPER_ST_TEMPFAIL}, cb = {kc, "wrong", KEEPER_ST_TEMPFAIL};
    pthread_create(&a, NULL, call_password, &ca);
    pthread_create(&b, NULL, call_password, &cb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(ca.st, KEEPER_ST_OK);
    assert_int_equal(cb.st, KEEPER_ST_NO);
    /* Not answered: a temporary failure, after the keeper shuts the connection. */
    assert_int_equal(keeper_client_password(kc, "alice", "right"), KEEPER_ST_TEMPFAIL);
    pthread_join(keeper, NULL);
    assert_int_equal(keeper_client_password(kc, "alice", "right"), KEEPER_ST_TEMPFAIL);
    keeper_client_free(kc);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_requests),
        cmocka_unit_test(test_client_matches_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
