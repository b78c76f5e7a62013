/*
 * doctor: the network check's blocking SMTP dialogues. A port-25 probe
 * (connect, greeting, QUIT) and the relay check (EHLO, STARTTLS or TLS at
 * once, AUTH PLAIN/LOGIN per RFC 4954, QUIT; never MAIL). Every step is
 * bounded by a timeout and every reply by a size cap; no password is logged
 * or printed.
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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "cli/doctor.h"
#include "lib/util.h"

/* A reply is at most this long (RFC 5321 4.5.3.1.5 gives 512 per line; EHLO has several). */
#define DOCTOR_REPLY_MAX 16384

struct doctor_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    struct buf in; /* read but not yet consumed */
};

static void doctor_conn_close(struct doctor_conn *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
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
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
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
    if (c->ssl != NULL) {
        if (SSL_write(c->ssl, line, (int)n) != (int)n) {
            buf_puts(why, "TLS write failed");
            return -1;
        }
        return 0;
    }
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
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, tmp, sizeof(tmp));
        n = r;
        if (r <= 0) {
            buf_puts(why, "the server closed the TLS connection or did not answer");
            return -1;
        }
    } else {
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

/* Whether an EHLO reply lists keyword (as its own line's first word). */
static const char *doctor_ehlo_has(const char *reply, const char *keyword)
{
    size_t kl = strlen(keyword);
    for (const char *p = reply; (p = strstr(p, "250")) != NULL; p += 3) {
        if (p[3] != '-' && p[3] != ' ')
            continue;
        const char *w = p + 4;
        if (str_prefix_ci(w, keyword) && (w[kl] == '\0' || w[kl] == ' ' || w[kl] == '='))
            return w + kl;
    }
    return NULL;
}

/* Whether the AUTH line of an EHLO reply offers mech. */
static int doctor_auth_offers(const char *reply, const char *mech)
{
    const char *a = doctor_ehlo_has(reply, "AUTH");
    if (a == NULL)
        return 0;
    const char *end = strstr(a, " / ");
    size_t ml = strlen(mech);
    for (const char *p = a; *p && (end == NULL || p < end); p++) {
        if ((p[-1] == ' ' || p[-1] == '=') && str_prefix_ci(p, mech) &&
            (p[ml] == '\0' || p[ml] == ' '))
            return 1;
    }
    return 0;
}

static void doctor_b64(const char *s, size_t n, struct buf *out)
{
    unsigned char enc[1024];
    if (n > 700)
        n = 700; /* credentials are short; stays within enc */
    int len = EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
    buf_append(out, enc, (size_t)len);
}

static int doctor_tls(struct doctor_conn *c, const char *sni, struct buf *why)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        buf_puts(why, "cannot make a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        buf_puts(why, "cannot set up TLS");
        return -1;
    }
    unsigned char tmp[16];
    if (sni && inet_pton(AF_INET, sni, tmp) != 1 && inet_pton(AF_INET6, sni, tmp) != 1)
        SSL_set_tlsext_host_name(c->ssl, sni);
    if (SSL_connect(c->ssl) != 1) {
        unsigned long e = ERR_get_error();
        char msg[256];
        ERR_error_string_n(e, msg, sizeof(msg));
        buf_printf(why, "TLS handshake failed: %s", e ? msg : "connection closed");
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
        return -1;
    }
    return 0;
}

/* One command and its reply; -1 with why when the exchange broke. */
static int doctor_cmd(struct doctor_conn *c, const char *line, struct buf *reply, struct buf *why)
{
    if (doctor_send(c, line, why) != 0)
        return -1;
    return doctor_reply(c, reply, why);
}

enum doctor_status doctor_relay_check(const struct doctor_relay *r, struct buf *found)
{
    struct doctor_conn c = {.fd = -1};
    struct buf reply = BUF_INIT, why = BUF_INIT, line = BUF_INIT;
    enum doctor_status st = DOCTOR_FAIL;
    const char *where = r->server_name ? r->server_name : r->ip;
    int code;

    if (doctor_connect(&c, r->ip, r->port, r->timeout_ms, &why) != 0) {
        buf_printf(found, "cannot connect to %s[%s]:%d: %s", where, r->ip, r->port, buf_cstr(&why));
        goto out;
    }
    if (r->wrappermode && doctor_tls(&c, where, &why) != 0) {
        buf_printf(found, "%s[%s]:%d: %s", where, r->ip, r->port, buf_cstr(&why));
        goto out;
    }
    if ((code = doctor_reply(&c, &reply, &why)) != 220) {
        buf_printf(found, "%s greeting: %s", where, code < 0 ? buf_cstr(&why) : buf_cstr(&reply));
        goto out;
    }
    buf_printf(&line, "EHLO %s\r\n", r->helo);
    if ((code = doctor_cmd(&c, buf_cstr(&line), &reply, &why)) != 250) {
        buf_printf(found, "%s refused EHLO: %s", where,
                   code < 0 ? buf_cstr(&why) : buf_cstr(&reply));
        goto out;
    }
    if (!r->wrappermode) {
        if (!doctor_ehlo_has(buf_cstr(&reply), "STARTTLS")) {
            buf_printf(found, "%s does not offer STARTTLS (credentials would cross in clear)",
                       where);
            goto out;
        }
        if ((code = doctor_cmd(&c, "STARTTLS\r\n", &reply, &why)) != 220) {
            buf_printf(found, "%s refused STARTTLS: %s", where,
                       code < 0 ? buf_cstr(&why) : buf_cstr(&reply));
            goto out;
        }
        /* Nothing read before the handshake may be used after it (RFC 3207 4.2). */
        buf_reset(&c.in);
        if (doctor_tls(&c, where, &why) != 0) {
            buf_printf(found, "%s: %s", where, buf_cstr(&why));
            goto out;
        }
        if ((code = doctor_cmd(&c, buf_cstr(&line), &reply, &why)) != 250) {
            buf_printf(found, "%s refused EHLO after STARTTLS: %s", where,
                       code < 0 ? buf_cstr(&why) : buf_cstr(&reply));
            goto out;
        }
    }
    const char *tlsver = SSL_get_version(c.ssl);
    if (r->user == NULL) {
        buf_printf(found, "%s[%s]:%d: %s, no credentials to try", where, r->ip, r->port, tlsver);
        st = DOCTOR_OK;
        goto quit;
    }
    size_t ul = strlen(r->user), pl = strlen(r->pass ? r->pass : "");
    if (doctor_auth_offers(buf_cstr(&reply), "PLAIN")) {
        /* RFC 4616: authzid NUL authcid NUL password, base64, as the initial response. */
        struct buf raw = BUF_INIT;
        buf_putc(&raw, '\0');
        buf_append(&raw, r->user, ul);
        buf_putc(&raw, '\0');
        buf_append(&raw, r->pass ? r->pass : "", pl);
        buf_set(&line, "AUTH PLAIN ");
        doctor_b64(raw.data, raw.len, &line);
        buf_puts(&line, "\r\n");
        memset(raw.data, 0, raw.len);
        buf_free(&raw);
        code = doctor_cmd(&c, buf_cstr(&line), &reply, &why);
    } else if (doctor_auth_offers(buf_cstr(&reply), "LOGIN")) {
        code = doctor_cmd(&c, "AUTH LOGIN\r\n", &reply, &why);
        if (code == 334) {
            buf_reset(&line);
            doctor_b64(r->user, ul, &line);
            buf_puts(&line, "\r\n");
            code = doctor_cmd(&c, buf_cstr(&line), &reply, &why);
        }
        if (code == 334) {
            buf_reset(&line);
            doctor_b64(r->pass ? r->pass : "", pl, &line);
            buf_puts(&line, "\r\n");
            code = doctor_cmd(&c, buf_cstr(&line), &reply, &why);
        }
    } else {
        buf_printf(found, "%s offers neither AUTH PLAIN nor AUTH LOGIN after TLS", where);
        goto quit;
    }
    if (line.data)
        memset(line.data, 0, line.len);
    if (code == 235) {
        buf_printf(found, "%s[%s]:%d: %s, AUTH as %s accepted", where, r->ip, r->port, tlsver,
                   r->user);
        st = DOCTOR_OK;
    } else {
        buf_printf(found, "%s refused AUTH as %s: %s", where, r->user,
                   code < 0 ? buf_cstr(&why) : buf_cstr(&reply));
    }
quit:
    buf_reset(&why);
    if (doctor_cmd(&c, "QUIT\r\n", &reply, &why) < 0) {
        /* The check is done; a server that hangs up on QUIT changes nothing. */
    }
out:
    if (line.data)
        memset(line.data, 0, line.len);
    buf_free(&line);
    buf_free(&reply);
    buf_free(&why);
    doctor_conn_close(&c);
    return st;
}
