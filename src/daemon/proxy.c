/*
 * PROXY protocol v1 and v2 reader (proxy.h). The header is peeked, never
 * over-read: recv(MSG_PEEK) shows what arrived, the parser says how long
 * the header is, and exactly that many bytes are consumed, so whatever
 * the client sends after it stays for the SMTP session (or the TLS
 * handshake on smtps_listen).
 */
#include "daemon/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"

/* v2 signature (proxy-protocol.txt 2.2). */
static const unsigned char proxy_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
/* v1: "PROXY " ... CRLF, at most 107 bytes in all (2.1). */
#define PROXY_V1_MAX 107

static int proxy_pending_count;

int proxy_pending(void)
{
    return proxy_pending_count;
}

/* A decimal port 0..65535 without sign or leading zeros beyond "0". */
static int proxy_port(const char *s, unsigned *out)
{
    if (*s == '\0' || strlen(s) > 5 || (s[0] == '0' && s[1] != '\0'))
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return -1;
    *out = v;
    return 0;
}

static enum proxy_parse_result proxy_parse_v1(const unsigned char *data, size_t len, size_t *used,
                                              struct sockaddr_storage *src, socklen_t *src_len,
                                              const char **why)
{
    const unsigned char *crlf = NULL;
    for (size_t i = 0; i + 1 < len && i + 1 < PROXY_V1_MAX; i++)
        if (data[i] == '\r' && data[i + 1] == '\n') {
            crlf = data + i;
            break;
        }
    if (crlf == NULL) {
        if (len >= PROXY_V1_MAX) {
            *why = "v1 header longer than 107 bytes";
            return PROXY_PARSE_BAD;
        }
        for (size_t i = 0; i < len; i++)
            if (data[i] == '\0' || (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))) {
                *why = "v1 header with a stray byte";
                return PROXY_PARSE_BAD;
            }
        return PROXY_PARSE_MORE;
    }
    char line[PROXY_V1_MAX + 1];
    size_t n = (size_t)(crlf - data);
    memcpy(line, data, n);
    line[n] = '\0';
    *used = n + 2;
    char *fields[7];
    int nf = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (nf == 7) {
            *why = "v1 header with too many fields";
            return PROXY_PARSE_BAD;
        }
        fields[nf++] = tok;
    }
    if (nf >= 2 && strcmp(fields[1], "UNKNOWN") == 0)
        return PROXY_PARSE_LOCAL;
    if (nf != 6) {
        *why = "v1 header without PROTO SRC DST SPORT DPORT";
        return PROXY_PARSE_BAD;
    }
    unsigned sport, dport;
    if (proxy_port(fields[4], &sport) < 0 || proxy_port(fields[5], &dport) < 0) {
        *why = "v1 header with a bad port";
        return PROXY_PARSE_BAD;
    }
    memset(src, 0, sizeof *src);
    if (strcmp(fields[1], "TCP4") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)src, dst;
        if (inet_pton(AF_INET, fields[2], &sin->sin_addr) != 1 ||
            inet_pton(AF_INET, fields[3], &dst.sin_addr) != 1) {
            *why = "v1 TCP4 header with a bad address";
            return PROXY_PARSE_BAD;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)sport);
        *src_len = sizeof *sin;
    } else if (strcmp(fields[1], "TCP6") == 0) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src, dst;
        if (inet_pton(AF_INET6, fields[2], &sin6->sin6_addr) != 1 ||
            inet_pton(AF_INET6, fields[3], &dst.sin6_addr) != 1) {
            *why = "v1 TCP6 header with a bad address";
            return PROXY_PARSE_BAD;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)sport);
        *src_len = sizeof *sin6;
    } else {
        *why = "v1 header with an unknown protocol";
        return PROXY_PARSE_BAD;
    }
    return PROXY_PARSE_OK;
}

static enum proxy_parse_result proxy_parse_v2(const unsigned char *data, size_t len, size_t *used,
                                              struct sockaddr_storage *src, socklen_t *src_len,
                                              const char **why)
{
    if (len < 16)
        return PROXY_PARSE_MORE;
    unsigned ver = data[12] >> 4, cmd = data[12] & 0x0F;
    unsigned family = data[13] >> 4, proto = data[13] & 0x0F;
    size_t body = ((size_t)data[14] << 8) | data[15];
    if (ver != 2) {
        *why = "v2 header with a version other than 2";
        return PROXY_PARSE_BAD;
    }
    if (cmd > 1) {
        *why = "v2 header with an unknown command";
        return PROXY_PARSE_BAD;
    }
    if (16 + body > PROXY_HEADER_MAX) {
        *why = "v2 header longer than hongyan reads";
        return PROXY_PARSE_BAD;
    }
    if (len < 16 + body)
        return PROXY_PARSE_MORE;
    *used = 16 + body;
    /* LOCAL (health checks), or a family we do not route (UNSPEC, UNIX, UDP): the real peer. */
    if (cmd == 0 || proto != 1 || (family != 1 && family != 2))
        return PROXY_PARSE_LOCAL;
    const unsigned char *a = data + 16;
    memset(src, 0, sizeof *src);
    if (family == 1) {
        if (body < 12) {
            *why = "v2 TCP4 header too short for its addresses";
            return PROXY_PARSE_BAD;
        }
        struct sockaddr_in *sin = (struct sockaddr_in *)src;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        memcpy(&sin->sin_port, a + 8, 2);
        *src_len = sizeof *sin;
    } else {
        if (body < 36) {
            *why = "v2 TCP6 header too short for its addresses";
            return PROXY_PARSE_BAD;
        }
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        memcpy(&sin6->sin6_port, a + 32, 2);
        *src_len = sizeof *sin6;
    }
    return PROXY_PARSE_OK;
}

enum proxy_parse_result proxy_parse(const unsigned char *data, size_t len, size_t *used,
                                    struct sockaddr_storage *src, socklen_t *src_len,
                                    const char **why)
{
    *why = "";
    size_t sig = len < sizeof proxy_v2_sig ? len : sizeof proxy_v2_sig;
    if (len > 0 && memcmp(data, proxy_v2_sig, sig) == 0)
        return len < sizeof proxy_v2_sig ? PROXY_PARSE_MORE
                                         : proxy_parse_v2(data, len, used, src, src_len, why);
    size_t pre = len < 6 ? len : 6;
    if (memcmp(data, "PROXY ", pre) == 0)
        return len < 6 ? PROXY_PARSE_MORE : proxy_parse_v1(data, len, used, src, src_len, why);
    *why = "not a PROXY protocol header";
    return PROXY_PARSE_BAD;
}

struct proxy_wait {
    struct server *srv;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    enum listener_kind kind;
    struct event *ev;
    uint64_t deadline_ms;
    proxy_done_fn done;
    void *arg;
    struct proxy_wait *next, *prev; /* every wait, for proxy_drop_all() */
};

static struct proxy_wait *proxy_waits;

static void proxy_wait_end(struct proxy_wait *w, int close_fd)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        proxy_waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    event_free(w->ev);
    if (close_fd)
        close(w->fd);
    free(w);
    proxy_pending_count--;
}

static void proxy_refuse(struct proxy_wait *w, const char *why)
{
    char addr[64];
    server_addr_text((struct sockaddr *)&w->peer, addr, sizeof addr);
    log_warning("smtpd_upstream_proxy_protocol: connection from [%s] dropped: %s", addr, why);
    metrics_connection_refused(METRICS_REFUSED_PROXY);
    proxy_wait_end(w, 1);
}

static void proxy_on_read(evutil_socket_t fd, short what, void *arg);

/*
 * Waits again, never past the deadline: for the socket to become readable,
 * or (poll) for a short tick, since peeked bytes keep the socket readable
 * and waiting for EV_READ would spin. The event is not persistent, so
 * every path that keeps waiting comes through here.
 */
static void proxy_wait_arm(struct proxy_wait *w, int poll)
{
    uint64_t now = now_ms();
    uint64_t left = w->deadline_ms > now ? w->deadline_ms - now : 1;
    if (poll && left > 20)
        left = 20;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    event_del(w->ev);
    event_assign(w->ev, w->srv->base, w->fd, poll ? EV_TIMEOUT : EV_READ | EV_TIMEOUT,
                 proxy_on_read, w);
    event_add(w->ev, &tv);
}

static void proxy_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_wait *w = arg;
    /* A timeout is the deadline, or one of the short polls while a header is incomplete. */
    if ((what & EV_TIMEOUT) && now_ms() >= w->deadline_ms) {
        proxy_refuse(w, "no PROXY header within smtpd_upstream_proxy_timeout");
        return;
    }
    unsigned char buf[PROXY_HEADER_MAX];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        /* Nothing yet (a timer that fired a little before the deadline, or a poll tick). */
        proxy_wait_arm(w, 0);
        return;
    }
    if (n <= 0) {
        proxy_refuse(w, n == 0 ? "closed before a PROXY header" : strerror(errno));
        return;
    }
    size_t used = 0;
    struct sockaddr_storage src;
    socklen_t src_len = 0;
    const char *why = "";
    enum proxy_parse_result r = proxy_parse(buf, (size_t)n, &used, &src, &src_len, &why);
    if (r == PROXY_PARSE_MORE) {
        if ((size_t)n == sizeof buf) {
            proxy_refuse(w, "PROXY header too long");
            return;
        }
        proxy_wait_arm(w, 1);
        return;
    }
    if (r == PROXY_PARSE_BAD) {
        proxy_refuse(w, why);
        return;
    }
    /* Consume exactly the header; it is already in the socket buffer. */
    if (recv(fd, buf, used, 0) != (ssize_t)used) {
        proxy_refuse(w, "short read of a peeked PROXY header");
        return;
    }
    /* LOCAL: the real peer, copied out of w before w is freed. */
    if (r == PROXY_PARSE_LOCAL) {
        memcpy(&src, &w->peer, sizeof src);
        src_len = w->peer_len;
    }
    const struct sockaddr *peer = (struct sockaddr *)&src;
    socklen_t peer_len = src_len;
    proxy_done_fn done = w->done;
    void *done_arg = w->arg;
    enum listener_kind kind = w->kind;
    proxy_wait_end(w, 0);
    done(done_arg, fd, peer, peer_len, kind);
}

void proxy_accept(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  enum listener_kind kind, proxy_done_fn done, void *arg)
{
    struct proxy_wait *w = xcalloc(1, sizeof *w);
    w->srv = srv;
    w->fd = fd;
    if (peer_len > sizeof w->peer)
        peer_len = sizeof w->peer;
    memcpy(&w->peer, peer, peer_len);
    w->peer_len = peer_len;
    w->kind = kind;
    w->done = done;
    w->arg = arg;
    long long secs = config_get_time(srv->gen->cfg, "smtpd_upstream_proxy_timeout");
    w->deadline_ms = now_ms() + (uint64_t)secs * 1000u;
    w->ev = event_new(srv->base, fd, EV_READ | EV_TIMEOUT, proxy_on_read, w);
    proxy_pending_count++;
    w->next = proxy_waits;
    if (proxy_waits)
        proxy_waits->prev = w;
    proxy_waits = w;
    proxy_wait_arm(w, 0);
}

void proxy_drop_all(void)
{
    while (proxy_waits)
        proxy_wait_end(proxy_waits, 1);
}
