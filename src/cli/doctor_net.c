/*
 * doctor: the port-25 probe of the network check, blocking: connect with a
 * short timeout, read the greeting (RFC 5321 4.2, capped), QUIT. The relay
 * check uses the real SMTP client instead (doctor.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/doctor.h"
#include "lib/util.h"

/* A reply is at most this long (RFC 5321 4.5.3.1.5 gives 512 per line; EHLO has several). */
#define DOCTOR_REPLY_MAX 16384

struct doctor_conn {
    int fd;
    struct buf in; /* read but not yet consumed */
};

static void doctor_conn_close(struct doctor_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->in);
}

/* Connects with a bounded wait; then the socket blocks with send/receive timeouts. */
static int doctor_connect(struct doctor_conn *c, const char *ip, int port, int timeout_ms,
                          struct buf *why)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sockaddr_from_ip(ip, port, &ss, &sl) < 0) {
        buf_printf(why, "'%s' is not an IP address", ip);
        return -1;
    }
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        buf_printf(why, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS) {
            buf_puts(why, strerror(errno));
            return -1;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        int r;
        do
            r = poll(&pfd, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            buf_printf(why, "no answer within %d s (timed out)", timeout_ms / 1000);
            return -1;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if (r < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            buf_puts(why, strerror(r < 0 ? errno : err));
            return -1;
        }
    }
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        buf_printf(why, "fcntl: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

static int doctor_send(struct doctor_conn *c, const char *line, struct buf *why)
{
    size_t n = strlen(line);
    if (write_all(c->fd, line, n) != 0) {
        buf_printf(why, "write: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Reads more bytes into c->in; -1 with why on end of stream, timeout or error. */
static int doctor_fill(struct doctor_conn *c, struct buf *why)
{
    char tmp[4096];
    ssize_t n;
    do
        n = recv(c->fd, tmp, sizeof(tmp), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        buf_puts(why, errno == EAGAIN || errno == EWOULDBLOCK ? "no reply (timed out)"
                                                              : strerror(errno));
        return -1;
    }
    if (n == 0) {
        buf_puts(why, "the server closed the connection");
        return -1;
    }
    buf_append(&c->in, tmp, (size_t)n);
    return 0;
}

/*
 * Reads one reply (all its lines, RFC 5321 4.2.1) into reply as
 * "CODE text / CODE text" on one line; returns the code, or -1 with why.
 */
static int doctor_reply(struct doctor_conn *c, struct buf *reply, struct buf *why)
{
    buf_reset(reply);
    for (;;) {
        char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;
        if (nl == NULL) {
            if (c->in.len + reply->len > DOCTOR_REPLY_MAX) {
                buf_puts(why, "reply too long");
                return -1;
            }
            if (doctor_fill(c, why) != 0)
                return -1;
            continue;
        }
        size_t len = (size_t)(nl - c->in.data);
        size_t l = len;
        if (l > 0 && c->in.data[l - 1] == '\r')
            l--;
        if (l < 3 || c->in.data[0] < '2' || c->in.data[0] > '5' ||
            (l > 3 && c->in.data[3] != ' ' && c->in.data[3] != '-')) {
            buf_puts(why, "malformed reply");
            return -1;
        }
        if (reply->len)
            buf_puts(reply, " / ");
        buf_append(reply, c->in.data, l);
        int last = l == 3 || c->in.data[3] == ' ';
        int code = (c->in.data[0] - '0') * 100 + (c->in.data[1] - '0') * 10 + (c->in.data[2] - '0');
        buf_consume(&c->in, len + 1);
        if (reply->len > DOCTOR_REPLY_MAX) {
            buf_puts(why, "reply too long");
            return -1;
        }
        if (last)
            return code;
    }
}

int doctor_smtp_probe(const char *ip, int port, int timeout_ms, struct buf *detail)
{
    struct doctor_conn c = {.fd = -1};
    struct buf reply = BUF_INIT;
    int rc = -1;
    if (doctor_connect(&c, ip, port, timeout_ms, detail) != 0)
        goto out;
    int code = doctor_reply(&c, &reply, detail);
    if (code < 0)
        goto out;
    buf_append(detail, reply.data, reply.len);
    if (code / 100 == 2) {
        rc = 0;
        struct buf ignore = BUF_INIT;
        if (doctor_send(&c, "QUIT\r\n", &ignore) == 0)
            doctor_reply(&c, &reply, &ignore);
        buf_free(&ignore);
    }
out:
    buf_free(&reply);
    doctor_conn_close(&c);
    return rc;
}
