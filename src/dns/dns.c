/*
 * dns: libunbound behind a small API. Answers arrive on ub_fd(), which one
 * libevent event watches; ub_process() then runs our callback, which turns
 * the ub_result into a struct dns_answer. Every query also has a timer so
 * that a dead server becomes DNS_TEMPFAIL in bounded time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns/dns.h"
#include "lib/hostport.h"
#include "lib/util.h"
#include "lib/xalloc.h"

#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_ROOT_KEY "/usr/share/dns/root.key"
#define DNS_NAME_MAX 1025 /* text form of a 255-octet name with escapes, bounded */

/* Unbound's default local zones that tests and private set-ups use. */
static const char *const dns_reserved[] = {
    "test.",
    "invalid.",
    "onion.",
    "home.arpa.",
    "2.0.192.in-addr.arpa.",
    "100.51.198.in-addr.arpa.",
    "113.0.203.in-addr.arpa.",
    "8.b.d.0.1.0.0.2.ip6.arpa.",
    "0.in-addr.arpa.",
    "254.169.in-addr.arpa.",
    "255.255.255.255.in-addr.arpa.",
};

struct dns_query {
    struct dns *dns;
    dns_cb cb;
    void *arg;
    int async_id;
    int in_flight; /* ub_resolve_async accepted it and has not answered */
    int rrtype;
    enum dns_status early; /* status to deliver from the timer when not in flight */
    struct event *timer;   /* NULL for synchronous queries */
    uint64_t deadline;     /* synchronous queries: now_ms() bound */
    struct dns_query *prev, *next;
};

struct dns {
    struct ub_ctx *ctx;
    struct event_base *base;
    struct event *ev; /* ub_fd() readable */
    unsigned timeout_ms;
    struct dns_query *pending;
};

const char *dns_status_str(enum dns_status st)
{
    switch (st) {
    case DNS_OK:
        return "ok";
    case DNS_NXDOMAIN:
        return "nxdomain";
    case DNS_NODATA:
        return "nodata";
    case DNS_TEMPFAIL:
        return "tempfail";
    case DNS_PERMFAIL:
        return "permfail";
    }
    return "unknown";
}

/*
 * "host", "host:port", "[v6]" or "[v6]:port", or a bare IPv6 address, into
 * unbound's "addr@port". Names are not accepted: the forwarder must be
 * reachable without DNS.
 */
static int dns_parse_forwarder(const char *spec, struct buf *out, struct buf *err)
{
    struct hostport hp;
    if (hostport_split(spec, HOSTPORT_BARE_IPV6, &hp) < 0) {
        buf_printf(err, "dns_resolver: bad address '%s'", spec);
        return -1;
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, hp.host, a) != 1 && inet_pton(AF_INET6, hp.host, a) != 1) {
        buf_printf(err, "dns_resolver: '%s' is not an IP address", hp.host);
        return -1;
    }
    int port = hp.port[0] ? hostport_port(hp.port) : 53;
    if (port < 0) {
        buf_printf(err, "dns_resolver: bad port in '%s'", spec);
        return -1;
    }
    buf_printf(out, "%s@%d", hp.host, port);
    return 0;
}

static int dns_set(struct ub_ctx *ctx, const char *opt, const char *val, struct buf *err)
{
    int r = ub_ctx_set_option(ctx, opt, val);
    if (r != 0) {
        buf_printf(err, "unbound option %s %s: %s", opt, val, ub_strerror(r));
        return -1;
    }
    return 0;
}

static void dns_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns *dns = arg;
    (void)fd;
    (void)what;
    ub_process(dns->ctx);
}

/* anchor: a trust-anchor file to validate with, or NULL for no validation. */
static struct dns *dns_create(struct event_base *base, const char *resolver, const char *anchor,
                              struct buf *err)
{
    struct dns *dns = xcalloc(1, sizeof(*dns));
    struct buf fwd = BUF_INIT;
    int r;

    dns->base = base;
    dns->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
    dns->ctx = ub_ctx_create();
    if (dns->ctx == NULL) {
        buf_puts(err, "cannot create the unbound context");
        goto fail;
    }
    /* Threads, not a forked process: the daemon's workers stay one process. */
    if ((r = ub_ctx_async(dns->ctx, 1)) != 0) {
        buf_printf(err, "unbound: %s", ub_strerror(r));
        goto fail;
    }
    /*
     * A server that does not answer must not hold a query for minutes:
     * cap unbound's retransmit timer; our own timer bounds the whole query.
     */
    if (dns_set(dns->ctx, "infra-cache-max-rtt:", "2000", err) != 0 ||
        dns_set(dns->ctx, "do-udp:", "yes", err) != 0 ||
        dns_set(dns->ctx, "do-tcp:", "yes", err) != 0 ||
        dns_set(dns->ctx, "edns-buffer-size:", "1232", err) != 0)
        goto fail;
    /*
     * DNSSEC validation only when asked for (dns_new_dnssec): a forwarder
     * that strips signatures would otherwise turn every answer bogus, and
     * mail that does not need DNSSEC would stop. Before anything finalizes
     * the context (ub_ctx_zone_remove does).
     */
    if (anchor != NULL && (r = ub_ctx_add_ta_file(dns->ctx, anchor)) != 0) {
        buf_printf(err, "DNSSEC trust anchor %s: %s", anchor, ub_strerror(r));
        goto fail;
    }

    if (resolver == NULL || resolver[0] == '\0') {
        /*
         * No readable /etc/resolv.conf (a bare container): unbound then
         * resolves from the root servers itself, which is still correct.
         */
        (void)ub_ctx_resolvconf(dns->ctx, NULL);
        /* /etc/hosts too, as the system's resolver would; a missing one is fine. */
        (void)ub_ctx_hosts(dns->ctx, NULL);
    } else {
        if (dns_parse_forwarder(resolver, &fwd, err) != 0)
            goto fail;
        if ((r = ub_ctx_set_fwd(dns->ctx, buf_cstr(&fwd))) != 0) {
            buf_printf(err, "dns_resolver %s: %s", resolver, ub_strerror(r));
            goto fail;
        }
        /*
         * Unbound answers some reserved names itself (RFC 6761 test. and
         * invalid., the documentation and private reverse zones). The server
         * we forward to is the authority here: ask it.
         */
        if (dns_set(dns->ctx, "unblock-lan-zones:", "yes", err) != 0)
            goto fail;
        for (size_t i = 0; i < sizeof(dns_reserved) / sizeof(dns_reserved[0]); i++) {
            char zone[96];
            snprintf(zone, sizeof(zone), "%s nodefault", dns_reserved[i]);
            if (dns_set(dns->ctx, "local-zone:", zone, err) != 0)
                goto fail;
        }
        /*
         * libunbound's set_option does not undo its built-in local zones
         * (seen with 1.17: test. still answered NXDOMAIN), so remove them
         * from the finished context too. A zone that is not there is fine.
         */
        for (size_t i = 0; i < sizeof(dns_reserved) / sizeof(dns_reserved[0]); i++)
            (void)ub_ctx_zone_remove(dns->ctx, dns_reserved[i]);
    }

    if (base != NULL) {
        dns->ev = event_new(base, ub_fd(dns->ctx), EV_READ | EV_PERSIST, dns_on_readable, dns);
        if (dns->ev == NULL || event_add(dns->ev, NULL) != 0) {
            buf_puts(err, "cannot watch the resolver's descriptor");
            goto fail;
        }
    }
    buf_free(&fwd);
    return dns;
fail:
    buf_free(&fwd);
    dns_free(dns);
    return NULL;
}

struct dns *dns_new(struct event_base *base, const char *resolver, struct buf *err)
{
    return dns_create(base, resolver, NULL, err);
}

const char *dns_trust_anchor(const char *configured)
{
    const char *env = getenv("HONGYAN_DNS_TRUST_ANCHOR");
    if (env != NULL && env[0] != '\0')
        return env;
    if (configured != NULL && configured[0] != '\0')
        return configured;
    return DNS_ROOT_KEY;
}

struct dns *dns_new_dnssec(struct event_base *base, const char *resolver, const char *anchor_file,
                           struct buf *err)
{
    const char *anchor = dns_trust_anchor(anchor_file);
    if (access(anchor, R_OK) != 0) {
        buf_printf(err, "no DNSSEC trust anchor: %s: %s", anchor, strerror(errno));
        return NULL;
    }
    return dns_create(base, resolver, anchor, err);
}

static void dns_unlink(struct dns_query *q)
{
    struct dns *dns = q->dns;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        dns->pending = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void dns_query_release(struct dns_query *q)
{
    dns_unlink(q);
    if (q->timer != NULL)
        event_free(q->timer);
    free(q);
}

void dns_cancel(struct dns_query *q)
{
    if (q == NULL)
        return;
    if (q->in_flight)
        ub_cancel(q->dns->ctx, q->async_id);
    dns_query_release(q);
}

void dns_free(struct dns *dns)
{
    if (dns == NULL)
        return;
    while (dns->pending != NULL)
        dns_cancel(dns->pending);
    if (dns->ev != NULL)
        event_free(dns->ev);
    if (dns->ctx != NULL)
        ub_ctx_delete(dns->ctx);
    free(dns);
}

void dns_set_timeout(struct dns *dns, unsigned ms)
{
    dns->timeout_ms = ms > 0 ? ms : 1;
}

/*
 * A wire-format name (uncompressed, as unbound hands RDATA over) to text
 * without the trailing dot; "" for the root. Dots and odd bytes inside a
 * label are escaped as in zone files. -1 if the name runs past end.
 */
static int dns_name_text(const unsigned char *p, size_t len, size_t *used, struct buf *out)
{
    size_t i = 0;
    buf_reset(out);
    while (i < len) {
        unsigned l = p[i++];
        if (l == 0) {
            if (used != NULL)
                *used = i;
            if (out->data == NULL)
                buf_puts(out, "");
            return 0;
        }
        if (l > 63 || i + l > len)
            return -1;
        if (out->len > 0)
            buf_putc(out, '.');
        for (unsigned k = 0; k < l; k++) {
            unsigned char c = p[i + k];
            if (c == '.' || c == '\\')
                buf_printf(out, "\\%c", c);
            else if (c <= ' ' || c >= 0x7f)
                buf_printf(out, "\\%03u", c);
            else
                buf_putc(out, (char)c);
        }
        i += l;
        if (out->len > DNS_NAME_MAX)
            return -1;
    }
    return -1;
}

static struct dns_answer *dns_answer_new(int rrtype, enum dns_status st)
{
    struct dns_answer *a = xcalloc(1, sizeof(*a));
    a->rrtype = rrtype;
    a->status = st;
    return a;
}

/* Fills the typed arrays from rdata; PERMFAIL on a malformed record. */
static void dns_answer_parse(struct dns_answer *a)
{
    struct buf t = BUF_INIT;
    size_t n = a->count;

    switch (a->rrtype) {
    case DNS_T_TXT:
        a->txt = xcalloc(n + 1, sizeof(char *));
        break;
    case DNS_T_MX:
        a->mx = xcalloc(n + 1, sizeof(struct dns_mx));
        break;
    case DNS_T_A:
    case DNS_T_AAAA:
        a->addrs = xcalloc(n + 1, sizeof(char *));
        break;
    case DNS_T_PTR:
    case DNS_T_CNAME:
    case DNS_T_NS:
        a->names = xcalloc(n + 1, sizeof(char *));
        break;
    default:
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *d = a->rdata[i];
        size_t len = a->rdlen[i];
        size_t used;
        char text[INET6_ADDRSTRLEN];

        switch (a->rrtype) {
        case DNS_T_TXT:
            /* RFC 7208 3.3: the character-strings are joined with nothing between. */
            buf_reset(&t);
            buf_puts(&t, "");
            for (size_t k = 0; k < len;) {
                size_t l = d[k++];
                if (k + l > len)
                    goto bad;
                buf_append(&t, d + k, l);
                k += l;
            }
            a->txt[i] = xstrdup(buf_cstr(&t));
            break;
        case DNS_T_MX:
            if (len < 3 || dns_name_text(d + 2, len - 2, &used, &t) != 0 || used != len - 2)
                goto bad;
            a->mx[i].pref = (unsigned)d[0] << 8 | d[1];
            a->mx[i].host = xstrdup(buf_cstr(&t));
            break;
        case DNS_T_A:
        case DNS_T_AAAA:
            if (len != (a->rrtype == DNS_T_A ? 4u : 16u) ||
                inet_ntop(a->rrtype == DNS_T_A ? AF_INET : AF_INET6, d, text, sizeof(text)) == NULL)
                goto bad;
            a->addrs[i] = xstrdup(text);
            break;
        default:
            if (dns_name_text(d, len, &used, &t) != 0 || used != len)
                goto bad;
            a->names[i] = xstrdup(buf_cstr(&t));
            break;
        }
    }
    buf_free(&t);
    return;
bad:
    buf_free(&t);
    a->status = DNS_PERMFAIL;
}

/* Converts unbound's result (err is unbound's error code) to our answer. */
static struct dns_answer *dns_answer_from(int rrtype, int err, struct ub_result *res)
{
    if (err != 0 || res == NULL)
        return dns_answer_new(rrtype, err == UB_SYNTAX ? DNS_PERMFAIL : DNS_TEMPFAIL);

    struct dns_answer *a = dns_answer_new(rrtype, DNS_OK);
    a->secure = res->secure;
    a->bogus = res->bogus;
    a->ttl = res->ttl > 0 ? (unsigned)res->ttl : 0;
    if (res->canonname != NULL)
        a->canonname = xstrdup(res->canonname);
    if (res->bogus) {
        /* A validation failure is an attack or a broken zone, never "no such name". */
        a->status = DNS_TEMPFAIL;
        return a;
    }
    switch (res->rcode) {
    case 0:
        break;
    case 3:
        a->status = DNS_NXDOMAIN;
        return a;
    case 2: /* SERVFAIL */
    case 5: /* REFUSED */
        a->status = DNS_TEMPFAIL;
        return a;
    default:
        a->status = DNS_PERMFAIL;
        return a;
    }
    size_t n = 0;
    if (res->havedata)
        while (res->data[n] != NULL)
            n++;
    if (n == 0) {
        a->status = DNS_NODATA;
        return a;
    }
    a->count = n;
    a->rdata = xcalloc(n + 1, sizeof(unsigned char *));
    a->rdlen = xcalloc(n + 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        size_t l = res->len[i] > 0 ? (size_t)res->len[i] : 0;
        a->rdata[i] = xmalloc(l + 1);
        memcpy(a->rdata[i], res->data[i], l);
        a->rdata[i][l] = 0;
        a->rdlen[i] = l;
    }
    dns_answer_parse(a);
    return a;
}

void dns_answer_free(struct dns_answer *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->count; i++) {
        if (a->txt != NULL)
            free(a->txt[i]);
        if (a->mx != NULL)
            free(a->mx[i].host);
        if (a->addrs != NULL)
            free(a->addrs[i]);
        if (a->names != NULL)
            free(a->names[i]);
        if (a->rdata != NULL)
            free(a->rdata[i]);
    }
    free(a->txt);
    free(a->mx);
    free(a->addrs);
    free(a->names);
    free(a->rdata);
    free(a->rdlen);
    free(a->canonname);
    free(a);
}

static char **dns_strv_copy(char **v, size_t n)
{
    if (v == NULL)
        return NULL;
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = v[i] != NULL ? xstrdup(v[i]) : NULL;
    return out;
}

struct dns_answer *dns_answer_copy(const struct dns_answer *ans)
{
    struct dns_answer *a = xcalloc(1, sizeof(*a));
    size_t n = ans->count;

    *a = *ans;
    a->txt = dns_strv_copy(ans->txt, n);
    a->addrs = dns_strv_copy(ans->addrs, n);
    a->names = dns_strv_copy(ans->names, n);
    a->canonname = ans->canonname != NULL ? xstrdup(ans->canonname) : NULL;
    if (ans->mx != NULL) {
        a->mx = xcalloc(n + 1, sizeof(struct dns_mx));
        for (size_t i = 0; i < n; i++) {
            a->mx[i].pref = ans->mx[i].pref;
            a->mx[i].host = ans->mx[i].host != NULL ? xstrdup(ans->mx[i].host) : NULL;
        }
    }
    if (ans->rdata != NULL) {
        a->rdata = xcalloc(n + 1, sizeof(unsigned char *));
        a->rdlen = xcalloc(n + 1, sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            a->rdata[i] = xmalloc(ans->rdlen[i] + 1);
            memcpy(a->rdata[i], ans->rdata[i], ans->rdlen[i] + 1);
            a->rdlen[i] = ans->rdlen[i];
        }
    }
    return a;
}

struct event_base *dns_base(const struct dns *dns)
{
    return dns->base;
}

/* Delivers ans to the query's owner and forgets the query. */
static void dns_deliver(struct dns_query *q, struct dns_answer *ans)
{
    dns_cb cb = q->cb;
    void *arg = q->arg;
    dns_query_release(q);
    cb(arg, ans);
    dns_answer_free(ans);
}

static void dns_on_result(void *arg, int err, struct ub_result *res)
{
    struct dns_query *q = arg;
    struct dns_answer *ans = dns_answer_from(q->rrtype, err, res);
    ub_resolve_free(res);
    q->in_flight = 0;
    dns_deliver(q, ans);
}

static void dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    (void)fd;
    (void)what;
    if (q->in_flight) {
        ub_cancel(q->dns->ctx, q->async_id);
        q->in_flight = 0;
        q->early = DNS_TEMPFAIL;
    }
    dns_deliver(q, dns_answer_new(q->rrtype, q->early));
}

/* Creates the query and hands it to unbound; on refusal the query stays with early set. */
static struct dns_query *dns_start(struct dns *dns, const char *name, int rrtype, dns_cb cb,
                                   void *arg)
{
    struct dns_query *q = xcalloc(1, sizeof(*q));
    q->dns = dns;
    q->cb = cb;
    q->arg = arg;
    q->rrtype = rrtype;
    q->next = dns->pending;
    if (dns->pending != NULL)
        dns->pending->prev = q;
    dns->pending = q;

    if (name == NULL || name[0] == '\0' || strlen(name) > 253 + 1 || rrtype < 1 || rrtype > 65535) {
        q->early = DNS_PERMFAIL;
        return q;
    }
    int r = ub_resolve_async(dns->ctx, name, rrtype, 1 /* IN */, q, dns_on_result, &q->async_id);
    if (r == 0)
        q->in_flight = 1;
    else
        q->early = r == UB_SYNTAX ? DNS_PERMFAIL : DNS_TEMPFAIL;
    return q;
}

struct dns_query *dns_query(struct dns *dns, const char *name, int rrtype, dns_cb cb, void *arg)
{
    struct dns_query *q = dns_start(dns, name, rrtype, cb, arg);
    unsigned ms = q->in_flight ? dns->timeout_ms : 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    /* The timer also delivers early failures, so cb never runs before we return. */
    q->timer = evtimer_new(dns->base, dns_on_timer, q);
    if (q->timer == NULL)
        xalloc_die("dns timer");
    evtimer_add(q->timer, &tv);
    return q;
}

static void dns_sync_cb(void *arg, const struct dns_answer *ans)
{
    struct dns_answer **out = arg;
    *out = dns_answer_copy(ans);
}

struct dns_answer *dns_query_sync(struct dns *dns, const char *name, int rrtype)
{
    struct dns_answer *out = NULL;
    struct dns_query *q = dns_start(dns, name, rrtype, dns_sync_cb, &out);

    if (!q->in_flight) {
        enum dns_status st = q->early;
        dns_query_release(q);
        return dns_answer_new(rrtype, st);
    }
    uint64_t deadline = now_ms() + dns->timeout_ms;
    while (out == NULL) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            dns_cancel(q);
            return dns_answer_new(rrtype, DNS_TEMPFAIL);
        }
        struct pollfd pfd = {.fd = ub_fd(dns->ctx), .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno != EINTR) {
            dns_cancel(q);
            return dns_answer_new(rrtype, DNS_TEMPFAIL);
        }
        /* Other pending queries of this resolver may complete here too. */
        if (r > 0)
            ub_process(dns->ctx);
    }
    return out;
}

int dns_reverse_name(const char *addr, struct buf *out)
{
    unsigned char a[16];
    buf_reset(out);
    if (inet_pton(AF_INET, addr, a) == 1) {
        buf_printf(out, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, a) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; i--)
            buf_printf(out, "%c.%c.", hex[a[i] & 15], hex[a[i] >> 4]);
        buf_puts(out, "ip6.arpa");
        return 0;
    }
    return -1;
}
