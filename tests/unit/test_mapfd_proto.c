/*
 * Unit tests for the table-file hand-over (src/ipc/mapfd_proto.c): a
 * message with descriptors round-trips through a real SOCK_SEQPACKET
 * socketpair with SCM_RIGHTS, and a message whose files and descriptors do
 * not agree, or that breaks a cap, is refused.
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
    int sv[2], pipefd[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(pipe(pipefd), 0);
    struct buf m = BUF_INIT;
    mapfd_put_files(&m, 2);
    mapfd_put_file(&m, "/etc/hongyan/sasl_passwd.lmdb", 0);
    mapfd_put_file(&m, "/etc/hongyan/other", 2);
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl = {0};
    struct iovec iov = {.iov_base = m.data, .iov_len = m.len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pipefd[0], sizeof(int));
    assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)m.len);

    uint8_t dg[MAPFD_MSG_MAX];
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int) * MAPFD_FILES_MAX)];
    } rctl;
    struct iovec riov = {.iov_base = dg, .iov_len = sizeof dg};
    struct msghdr rh = {.msg_iov = &riov,
                        .msg_iovlen = 1,
                        .msg_control = rctl.space,
                        .msg_controllen = sizeof rctl};
    ssize_t n = recvmsg(sv[1], &rh, 0);
    assert_int_equal(n, (ssize_t)m.len);
    struct cmsghdr *got = CMSG_FIRSTHDR(&rh);
    assert_non_null(got);
    assert_int_equal(got->cmsg_type, SCM_RIGHTS);
    int fd;
    memcpy(&fd, CMSG_DATA(got), sizeof fd);
    struct mapfd_msg msg;
    assert_int_equal(mapfd_msg_decode(dg, (size_t)n, 1, &msg), 0);
    assert_int_equal(msg.count, 2);
    assert_int_equal(msg.files[0].error, 0);
    assert_int_equal(msg.files[0].path.len, strlen("/etc/hongyan/sasl_passwd.lmdb"));
    assert_memory_equal(msg.files[0].path.data, "/etc/hongyan/sasl_passwd.lmdb",
                        msg.files[0].path.len);
    assert_int_equal(msg.files[1].error, 2);
    /* The descriptor that came is the pipe's read end: what is written arrives. */
    assert_int_equal(write(pipefd[1], "x", 1), 1);
    char c = 0;
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'x');
    /* Without its descriptor, or with one too many, the same bytes are refused. */
    assert_int_equal(mapfd_msg_decode(dg, (size_t)n, 0, &msg), -1);
    assert_int_equal(mapfd_msg_decode(dg, (size_t)n, 2, &msg), -1);
    close(fd);
    close(pipefd[0]);
    close(pipefd[1]);
    close(sv[0]);
    close(sv[1]);
    buf_free(&m);
}

static void test_refused(void **state)
{
    (void)state;
    struct buf m = BUF_INIT;
    struct mapfd_msg msg;
    /* An empty set is a valid message: the key lists no file. */
    mapfd_put_files(&m, 0);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), 0);
    assert_int_equal(msg.count, 0);
    /* More files than announced, fewer, and one byte too many. */
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    mapfd_put_file(&m, "/a", 0);
    mapfd_put_file(&m, "/b", 0);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 2, &msg), -1);
    buf_reset(&m);
    mapfd_put_files(&m, 2);
    mapfd_put_file(&m, "/a", 0);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 1, &msg), -1);
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    mapfd_put_file(&m, "/a", 0);
    buf_putc(&m, 0);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 1, &msg), -1);
    /* Over the cap of files, an errno out of range, an empty path, a NUL in one. */
    buf_reset(&m);
    mapfd_put_files(&m, MAPFD_FILES_MAX + 1);
    for (int i = 0; i < MAPFD_FILES_MAX + 1; i++)
        mapfd_put_file(&m, "/a", 2);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    mapfd_put_file(&m, "/a", MAPFD_ERRNO_MAX + 1);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    mapfd_put_file(&m, "", 2);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    keeper_put_bytes(&m, "/a\0b", 4);
    keeper_put_u32(&m, 2);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    /* A path over the cap. */
    char longpath[MAPFD_PATH_MAX + 2];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    buf_reset(&m);
    mapfd_put_files(&m, 1);
    mapfd_put_file(&m, longpath, 2);
    assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    /* Another type, a request id, a status. */
    static const struct {
        uint32_t id;
        uint16_t type, status;
    } hdrs[] = {{0, 2, 0}, {1, MAPFD_FILES, 0}, {0, MAPFD_FILES, 1}};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        buf_reset(&m);
        keeper_put_hdr(&m, hdrs[i].id, (enum keeper_type)hdrs[i].type, hdrs[i].status);
        keeper_put_u32(&m, 0);
        assert_int_equal(mapfd_msg_decode(m.data, m.len, 0, &msg), -1);
    }
    /* A truncated header. */
    assert_int_equal(mapfd_msg_decode(m.data, 5, 0, &msg), -1);
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
