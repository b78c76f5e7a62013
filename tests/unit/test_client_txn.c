/*
 * The SMTP client's mail transaction (src/deliver/client_txn.c) sends only
 * the message's range of its data file: a file holding other bytes before
 * and after the message, as a spool of shared segments hands it out, and a
 * peer on loopback (a thread speaking just enough SMTP) that records the
 * MAIL command and what came between DATA and the final dot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deliver/client.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "queue/spool.h"
#include "testutil.h"

static const char *before = "MAIL FROM:<other@example.com>\r\n.\r\nQUIT\r\n";
static const char *message = "Subject: range\r\n\r\nonly this\r\n.leading dot\r\n";
static const char *after = "From: someone else\r\n\r\nthe next message\r\n";

struct peer {
    int listener;
    struct buf mail;     /* the MAIL command line */
    struct buf content;  /* between 354 and the final dot, as sent (dot-stuffed) */
    int rsets;           /* RSETs seen */
    int rset_pipelined;  /* each was followed by MAIL before we answered it */
    atomic_int finished; /* the peer thread is done */
};

/* One line (CRLF kept) from fd into line; 0, or -1 at EOF. Byte by byte: the peer is tiny. */
static int peer_line(int fd, struct buf *line)
{
    buf_reset(line);
    char ch;
    while (recv(fd, &ch, 1, 0) == 1) {
        buf_append(line, &ch, 1);
        if (ch == '\n')
            return 0;
    }
    return -1;
}

static void peer_say(int fd, const char *text)
{
    assert_int_equal(write_all(fd, text, strlen(text)), 0);
}

static void *peer_run(void *arg)
{
    struct peer *p = arg;
    int fd = accept(p->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct buf line = BUF_INIT;
    peer_say(fd, "220 peer.test ESMTP\r\n");
    while (peer_line(fd, &line) == 0) {
        const char *l = buf_cstr(&line);
        if (strncmp(l, "EHLO", 4) == 0) {
            peer_say(fd, "250-peer.test\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n");
        } else if (strncmp(l, "RSET", 4) == 0) {
            /* Not answered until the next line is in: a client waiting for it hangs here. */
            p->rsets++;
            if (peer_line(fd, &line) < 0)
                break;
            p->rset_pipelined += strncmp(buf_cstr(&line), "MAIL", 4) == 0;
            peer_say(fd, "250 2.0.0 Ok\r\n");
            buf_set(&p->mail, buf_cstr(&line));
            peer_say(fd, "250 2.1.0 Ok\r\n");
        } else if (strncmp(l, "MAIL", 4) == 0) {
            buf_set(&p->mail, l);
            peer_say(fd, "250 2.1.0 Ok\r\n");
        } else if (strncmp(l, "RCPT", 4) == 0) {
            peer_say(fd, "250 2.1.5 Ok\r\n");
        } else if (strncmp(l, "DATA", 4) == 0) {
            peer_say(fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
            while (peer_line(fd, &line) == 0 && strcmp(buf_cstr(&line), ".\r\n") != 0)
                buf_append(&p->content, line.data, line.len);
            peer_say(fd, "250 2.0.0 Ok: queued as PEER1\r\n");
        } else if (strncmp(l, "QUIT", 4) == 0) {
            peer_say(fd, "221 2.0.0 Bye\r\n");
            break;
        } else {
            peer_say(fd, "502 5.5.2 Error: command not recognized\r\n");
        }
    }
    buf_free(&line);
    close(fd);
    atomic_store(&p->finished, 1);
    return NULL;
}

struct run {
    struct smtp_msg msg;
    int sent;
    enum delivery_status status;
    int again; /* send the message this many more times on the same connection, reused */
};

static void sent_cb(void *arg, struct smtp_client *c, int conn_ok, struct smtp_rcpt_out *out)
{
    struct run *r = arg;
    r->sent++;
    r->status = out[0].status;
    free(out[0].reply);
    free(out);
    if (conn_ok && r->status == DELIVERY_OK && r->again > 0) {
        r->again--;
        assert_int_equal(smtp_client_send_reused(c, &r->msg, sent_cb, r), 1);
        return;
    }
    smtp_client_quit(c);
}

static void ready_cb(void *arg, struct smtp_client *c, int ok, enum smtp_client_fail fail,
                     int permanent, const char *dsn, const char *why)
{
    struct run *r = arg;
    assert_true(ok);
    smtp_client_send(c, &r->msg, sent_cb, r);
}

/*
 * Sends bytes [off, off + len) of a file holding file's bytes to a peer of
 * our own (again: that many more times over the connection, reused) and
 * returns, in p, what came between DATA and the final dot.
 */
static void send_range(const struct buf *file, off_t off, off_t len, int again, struct peer *p)
{
    char *root = test_tmpdir("test_client_txn");
    char path[512];
    snprintf(path, sizeof path, "%s/data", root);
    assert_int_equal(write_file_atomic(path, file->data, file->len, 0600), 0);
    *p = (struct peer){.mail = BUF_INIT, .content = BUF_INIT};
    p->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->listener >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;
    assert_int_equal(bind(p->listener, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(p->listener, 1), 0);
    assert_int_equal(getsockname(p->listener, (struct sockaddr *)&sin, &slen), 0);
    pthread_t peer_thread;
    assert_int_equal(pthread_create(&peer_thread, NULL, peer_run, p), 0);

    struct event_base *base = event_base_new();
    struct smtp_client_opts o = {.base = base,
                                 .level = TLS_LEVEL_NONE,
                                 .helo_name = "client.test",
                                 .server_name = "peer.test",
                                 .connect_timeout = 10,
                                 .helo_timeout = 10,
                                 .mail_timeout = 10,
                                 .rcpt_timeout = 10,
                                 .data_init_timeout = 10,
                                 .data_xfer_timeout = 10,
                                 .data_done_timeout = 10,
                                 .quit_timeout = 10};
    struct smtp_msg_rcpt rcpt = {.address = "bob@example.com"};
    struct run r = {.msg = {.sender = "alice@example.org", .rcpts = &rcpt, .nrcpts = 1},
                    .again = again};
    test_data_range(path, off, len, &r.msg.data);
    smtp_client_connect(&o, (struct sockaddr *)&sin, sizeof sin, "peer.test[127.0.0.1]:25",
                        ready_cb, &r);
    /* Until the peer has hung up after QUIT (at most 20 s), in steps of 50 ms. */
    for (int step = 0; step < 400 && !atomic_load(&p->finished); step++) {
        struct timeval tick = {0, 50000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    assert_int_equal(pthread_join(peer_thread, NULL), 0);
    assert_int_equal(r.sent, 1 + again);
    assert_int_equal(r.status, DELIVERY_OK);
    spool_data_close(&r.msg.data);
    close(p->listener);
    event_base_free(base);
    test_rm_rf(root);
    free(root);
}

static void peer_free(struct peer *p)
{
    buf_free(&p->mail);
    buf_free(&p->content);
}

static void test_sends_only_the_range(void **state)
{
    (void)state;
    struct buf all = BUF_INIT;
    buf_printf(&all, "%s%s%s", before, message, after);
    struct peer p;
    send_range(&all, (off_t)strlen(before), (off_t)strlen(message), 0, &p);
    buf_free(&all);
    /* RFC 1870: SIZE is the range's length; RFC 5321 4.5.2: the leading dot doubled. */
    char size[64];
    snprintf(size, sizeof size, " SIZE=%zu", strlen(message));
    assert_non_null(strstr(buf_cstr(&p.mail), size));
    assert_string_equal(buf_cstr(&p.content),
                        "Subject: range\r\n\r\nonly this\r\n..leading dot\r\n");
    peer_free(&p);
}

/* What the wire must carry for data, byte by byte: the rule, written the plain way. */
static void expected_wire(const char *data, size_t n, struct buf *out)
{
    int bol = 1;
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\r' || ch == '\n') {
            buf_append(out, "\r\n", 2);
            if (ch == '\r' && i + 1 < n && data[i + 1] == '\n')
                i++;
            bol = 1;
            continue;
        }
        if (bol && ch == '.')
            buf_append(out, ".", 1);
        buf_append(out, &ch, 1);
        bol = 0;
    }
    if (!bol)
        buf_append(out, "\r\n", 2);
}

/*
 * Data that is not plain CRLF text, and long enough to be read in several
 * chunks (CLIENT_CHUNK, 64 KB): bare CR and LF, dots after each kind of
 * line end, a CRLF and a dotted line split by a chunk's end. The whole
 * lines that need nothing are passed on in spans (client_plain_lines); the
 * rest byte by byte; the peer must see exactly what the rule says.
 */
static void test_data_on_the_wire(void **state)
{
    (void)state;
    struct buf data = BUF_INIT;
    buf_puts(&data, "Subject: odd\r\n\r\n.dot\r\nbare lf\n.after lf\nbare cr\r.after cr\r\n");
    buf_puts(&data, "\r\n\n\r\r\n..two\r\nmid\rline\r\nmid\nline\r\n.\r\n");
    while (data.len < 65536 - 40)
        buf_puts(&data, "plain line of text, nothing to do\r\n");
    while (data.len < 65535)
        buf_puts(&data, "x");
    buf_puts(&data, "\r\n.split dot\r\n"); /* the CR is the chunk's last byte */
    while (data.len < 2 * 65536 - 1)
        buf_puts(&data, "y");
    buf_puts(&data, "\n.\r\n");
    for (int i = 0; i < 300; i++)
        buf_puts(&data, i % 7 ? "line\r\n" : ".line\r\n");
    buf_puts(&data, "no end");
    struct peer p;
    send_range(&data, 0, (off_t)data.len, 0, &p);
    struct buf want = BUF_INIT;
    expected_wire(data.data, data.len, &want);
    assert_int_equal(p.content.len, want.len);
    assert_memory_equal(p.content.data, want.data, want.len);
    buf_free(&want);
    buf_free(&data);
    peer_free(&p);
}

/*
 * A connection used again (smtp_client_send_reused) to a server that
 * offers PIPELINING: RSET goes in one group with MAIL, RCPT and DATA. The
 * peer reads the line after each RSET before it answers: a client that
 * waited for the RSET reply would hang there until the peer's timeout.
 */
static void test_reused_connection_pipelines_rset(void **state)
{
    (void)state;
    struct buf one = BUF_INIT;
    buf_puts(&one, message);
    struct peer p;
    send_range(&one, 0, (off_t)one.len, 2, &p);
    buf_free(&one);
    assert_int_equal(p.rsets, 2);
    assert_int_equal(p.rset_pipelined, 2);
    peer_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_only_the_range),
        cmocka_unit_test(test_data_on_the_wire),
        cmocka_unit_test(test_reused_connection_pipelines_rset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
