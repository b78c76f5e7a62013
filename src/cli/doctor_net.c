/*
 * doctor: the network check: without a relayhost, whether outbound port 25
 * is open (a blocking probe: connect with a short timeout, read the
 * greeting, RFC 5321 4.2, capped, QUIT); with one, a session with the relay
 * through the real SMTP client (TLS and AUTH as delivery would do them).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli/doctor.h"
#include "cli/doctor_int.h"
#include "daemon/daemon.h"
#include "config/config.h"
#include "deliver/client.h"
#include "deliver/route.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"

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

/* ---- 8. network ---- */

static const char *doctor_relay_advice =
    "Many clouds block outbound port 25: ask the provider to open it, or send through a relay on "
    "port 587 (main.cf: relayhost = [smtp.provider.example]:587, smtp_sasl_auth_enable = yes, "
    "smtp_sasl_password_maps = hash:/etc/hongyan/sasl_passwd).";

void doctor_check_port25(struct doctor *d, struct doctor_check *c)
{
    struct buf host = BUF_INIT, f = BUF_INIT, e = BUF_INIT;
    int port = (int)config_get_int(d->cfg, "smtp_tcp_port"), br = 0;
    if (d->probe != NULL) {
        doctor_parse_hostport(d->probe, 25, &host, &port, &br);
    } else {
        struct dns_answer *a = doctor_query(d, d->domain, DNS_T_MX);
        size_t best = 0;
        for (size_t i = 1; a->status == DNS_OK && i < a->count; i++)
            if (a->mx[i].pref < a->mx[best].pref)
                best = i;
        if (a->status == DNS_OK && a->count > 0 && a->mx[best].host[0] != '\0')
            buf_puts(&host, a->mx[best].host);
        dns_answer_free(a);
    }
    buf_printf(&e, "outbound TCP port %d reachable", port);
    if (host.len == 0) {
        buf_printf(&f, "not checked: %s has no MX host to try; give --probe HOST", d->domain);
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    int tf;
    size_t n;
    char **addrs = doctor_addrs(d, buf_cstr(&host), &tf, &n);
    if (n == 0) {
        buf_printf(&f, "not checked: %s has no address%s", buf_cstr(&host),
                   tf ? " (" DOCTOR_TEMPFAIL ")" : "");
        doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
    }
    /* Two addresses at most: the check is about our network, not their servers. */
    for (size_t i = 0; i < n && i < 2; i++) {
        struct buf detail = BUF_INIT;
        int r = doctor_smtp_probe(addrs[i], port, DOCTOR_NET_TIMEOUT_MS, &detail);
        buf_reset(&f);
        buf_printf(&f, "%s %s[%s]:%d: %s", r == 0 ? "connected to" : "cannot reach",
                   doctor_is_ip(buf_cstr(&host)) ? "" : buf_cstr(&host), addrs[i], port,
                   buf_cstr(&detail));
        buf_free(&detail);
        if (r == 0) {
            doctor_set(c, DOCTOR_OK, buf_cstr(&f), buf_cstr(&e));
            c->status = DOCTOR_OK;
            break;
        }
        if (i + 1 == n || i == 1) {
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            doctor_advise(c, xstrdup(doctor_relay_advice));
        }
    }
    doctor_free_list(addrs, n);
out:
    buf_free(&host);
    buf_free(&f);
    buf_free(&e);
}

/* smtp_sasl_password_maps as route.h's lookup seam (the delivery agent's key order). */
static int doctor_table_lookup(void *ctx, const char *table, const char *key, struct buf *value,
                               struct buf *err)
{
    (void)table;
    return (int)map_list_lookup(ctx, key, value, err);
}

struct doctor_relay_run {
    struct buf *found;
    enum doctor_status st;
    const char *user; /* NULL: no AUTH configured */
    const char *label;
};

static void doctor_relay_ready(void *arg, struct smtp_client *c, int ok, enum smtp_client_fail fail,
                               int permanent, const char *dsn, const char *why)
{
    struct doctor_relay_run *r = arg;
    (void)fail;
    (void)permanent;
    (void)dsn;
    if (!ok) {
        buf_printf(r->found, "%s: %s", r->label, why);
        r->st = DOCTOR_FAIL;
        smtp_client_free(c);
        return;
    }
    const struct smtp_ehlo *e = smtp_client_ehlo(c);
    if (r->user != NULL && !(e->ext & SMTP_EHLO_AUTH)) {
        /* The client skips AUTH when the server does not offer it: that is not a pass. */
        buf_printf(r->found, "%s: TLS ok, but no AUTH offered for %s", r->label, r->user);
        r->st = DOCTOR_FAIL;
    } else if (r->user != NULL) {
        buf_printf(r->found, "%s: TLS ok, AUTH as %s accepted", r->label, r->user);
        r->st = DOCTOR_OK;
    } else {
        buf_printf(r->found, "%s: TLS ok (smtp_sasl_auth_enable = no: AUTH not tried)", r->label);
        r->st = DOCTOR_OK;
    }
    smtp_client_quit(c);
}

/* Connects with the SMTP client (src/deliver/client.h): STARTTLS required, AUTH, QUIT; no mail. */
static enum doctor_status doctor_relay_session(struct doctor *d, const char *server, const char *ip,
                                               int port, const char *user, const char *pass,
                                               struct buf *found)
{
    struct buf err = BUF_INIT;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sockaddr_from_ip(ip, port, &ss, &sl) < 0) {
        buf_printf(found, "'%s' is not an IP address", ip);
        return DOCTOR_FAIL;
    }
    struct tls_client *tls = tls_client_new(d->cfg, &err);
    if (tls == NULL) {
        buf_printf(found, "TLS client: %s", buf_cstr(&err));
        buf_free(&err);
        return DOCTOR_FAIL;
    }
    struct event_base *base = event_base_new();
    if (base == NULL) {
        tls_client_free(tls);
        buf_puts(found, "cannot make an event loop");
        return DOCTOR_FAIL;
    }
    char *label = xasprintf("%s[%s]:%d", doctor_is_ip(server) ? "" : server, ip, port);
    struct smtp_client_opts o = {0};
    o.base = base;
    o.tls = tls;
    /* The check is that the relay takes TLS: at least encrypt, stricter if configured. */
    o.level = tls_level_parse(config_get(d->cfg, "smtp_tls_security_level"));
    if (o.level < TLS_LEVEL_ENCRYPT || o.level == TLS_LEVEL_DANE)
        o.level = TLS_LEVEL_ENCRYPT;
    o.wrappermode = config_get_bool(d->cfg, "smtp_tls_wrappermode");
    o.helo_name = config_get(d->cfg, "smtp_helo_name");
    o.server_name = server;
    o.match_name = server;
    o.sasl_user = user;
    o.sasl_pass = pass;
    o.sasl_noplaintext = 1;
    int t = DOCTOR_NET_TIMEOUT_MS / 1000;
    o.connect_timeout = o.helo_timeout = o.starttls_timeout = o.mail_timeout = t;
    o.rcpt_timeout = o.data_init_timeout = o.data_xfer_timeout = o.data_done_timeout = t;
    o.quit_timeout = t;
    struct doctor_relay_run run = {.found = found, .st = DOCTOR_FAIL, .user = user, .label = label};
    /* The report says what happened; the client's log lines would only repeat it. */
    log_set_stderr(0);
    smtp_client_connect(&o, (struct sockaddr *)&ss, sl, label, doctor_relay_ready, &run);
    event_base_dispatch(base);
    log_set_stderr(1);
    event_base_free(base);
    tls_client_free(tls);
    free(label);
    buf_free(&err);
    return run.st;
}

void doctor_check_relay(struct doctor *d, struct doctor_check *c, const struct route *rt)
{
    struct buf f = BUF_INIT, e = BUF_INIT, server = BUF_INIT;
    int auth = config_get_bool(d->cfg, "smtp_sasl_auth_enable");
    buf_printf(&e, "relayhost %s accepts STARTTLS%s", d->relayhost,
               auth ? " and the configured credentials" : "");
    /* host and host:port name a domain whose MX is the relay (Postfix relayhost). */
    buf_puts(&server, rt->host);
    if (rt->mx && !rt->literal) {
        struct dns_answer *a = doctor_query(d, rt->host, DNS_T_MX);
        if (a->status == DNS_OK && a->count > 0 && a->mx[0].host[0] != '\0')
            buf_set(&server, a->mx[0].host);
        dns_answer_free(a);
    }
    int tf;
    size_t n;
    char **addrs = doctor_addrs(d, buf_cstr(&server), &tf, &n);
    struct buf user = BUF_INIT, pass = BUF_INIT, key = BUF_INIT, err = BUF_INIT;
    struct map_list *ml = NULL;
    if (n == 0) {
        buf_printf(&f, "not checked: the relay %s has no address%s", buf_cstr(&server),
                   tf ? " (" DOCTOR_TEMPFAIL ")" : "");
        doctor_set(c, tf ? DOCTOR_WARN : DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
        goto out;
    }
    int have_user = 0;
    if (auth) {
        ml = map_list_open(config_get(d->cfg, "smtp_sasl_password_maps"), &err);
        if (ml == NULL) {
            buf_printf(&f, "smtp_sasl_password_maps: %s", buf_cstr(&err));
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        struct route_tables tables = {.lookup = doctor_table_lookup, .ctx = ml};
        int r = route_sasl_lookup(&tables, rt, buf_cstr(&server), &user, &pass, &key, &err);
        if (r == MAP_TEMPFAIL) {
            buf_printf(&f, "smtp_sasl_password_maps: %s", buf_cstr(&err));
            doctor_set(c, DOCTOR_WARN, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        if (r != MAP_FOUND) {
            char **keys = route_sasl_keys(rt, buf_cstr(&server));
            buf_puts(&f, "smtp_sasl_password_maps has no entry for ");
            for (size_t i = 0; keys[i] != NULL; i++)
                buf_printf(&f, "%s%s", i ? ", " : "", keys[i]);
            strlist_free(keys);
            doctor_set(c, DOCTOR_FAIL, buf_cstr(&f), buf_cstr(&e));
            goto out;
        }
        have_user = 1;
    }
    enum doctor_status st = doctor_relay_session(d, buf_cstr(&server), addrs[0], rt->port,
                                                 have_user ? buf_cstr(&user) : NULL,
                                                 have_user ? buf_cstr(&pass) : NULL, &f);
    doctor_set(c, st, buf_cstr(&f), buf_cstr(&e));
    /* Passwords the network-facing process could read: they work, but they should not. */
    struct buf exposed = BUF_INIT;
    if (auth)
        daemon_mapfd_check_exposed(d->cfg, &exposed);
    if (exposed.len) {
        doctor_set(c, DOCTOR_WARN, "smtp_sasl_password_maps: readable by mail_owner", NULL);
        doctor_advise(c, xasprintf("Make the relay password files root:root 0600 (the "
                                   "supervisor opens them as root; docs/security.md): %.*s",
                                   (int)strcspn(buf_cstr(&exposed), "\n"), buf_cstr(&exposed)));
    }
    buf_free(&exposed);
    if (st == DOCTOR_FAIL)
        doctor_advise(c, xasprintf("Check relayhost, the relay's TLS, and the user:password for "
                                   "it in smtp_sasl_password_maps (rebuild a hash: table with "
                                   "hongyan map build)."));
out:
    if (pass.data)
        memset(pass.data, 0, pass.len);
    map_list_free(ml);
    doctor_free_list(addrs, n);
    buf_free(&user);
    buf_free(&pass);
    buf_free(&key);
    buf_free(&err);
    buf_free(&f);
    buf_free(&e);
    buf_free(&server);
}
