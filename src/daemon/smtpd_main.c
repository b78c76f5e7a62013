/*
 * What only the smtpd process runs of the worker loop (worker.h): the
 * listeners on the sockets the supervisor bound, the admission of each
 * connection (draining, connection limits, Postfix's anvil, the PROXY
 * header) before smtpd_session_start, and the sender of the wake-ups for
 * delivery after each group commit.
 */
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/metrics_http.h"
#include "daemon/proxy.h"
#include "daemon/split_link.h"
#include "daemon/worker.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "smtpd/anvil.h"

static void worker_refuse(int fd, const char *reply)
{
    /* Best effort: the socket is fresh, so a short write fits its buffer. */
    ssize_t n = write(fd, reply, strlen(reply));
    (void)n;
    close(fd);
}

/*
 * Limits and the session start, for the client's address: the socket's
 * peer, or the one a PROXY header named (smtpd_upstream_proxy_protocol).
 */
static void worker_admit(void *arg, int fd, const struct sockaddr *peer, socklen_t peer_len,
                         enum listener_kind kind)
{
    struct worker *w = arg;
    struct server *srv = &w->srv;
    const struct config *cfg = srv->gen->cfg;
    char addr[64];
    server_addr_text(peer, addr, sizeof addr);
    if (srv->draining) {
        metrics_connection_refused(METRICS_REFUSED_DRAINING);
        worker_refuse(fd, "421 4.3.2 Service shutting down, try again later\r\n");
        return;
    }
    if (srv->sessions >= config_get_int(cfg, "smtpd_client_connection_limit")) {
        log_warning("connection limit reached: refusing %s", addr);
        metrics_connection_refused(METRICS_REFUSED_LIMIT);
        worker_refuse(fd, "421 4.7.0 Too many connections, try again later\r\n");
        return;
    }
    char key[64];
    client_addr_key(addr, srv->client_v6_prefix, key, sizeof key);
    int count = client_table_add(srv->clients, key, 1);
    long long limit = config_get_int(cfg, "smtpd_client_connection_count_limit");
    long long rate = 0;
    int exempt = anvil_exempt(cfg, peer);
    int over_count = !exempt && limit > 0 && count > limit;
    /* Postfix's anvil: connections per client and anvil_rate_time_unit. */
    if (over_count || (!exempt && anvil_event(cfg, peer, ANVIL_CONNECT, time(NULL), &rate))) {
        client_table_add(srv->clients, key, -1);
        /* An IPv6 client counts with its whole prefix (smtpd_client_ipv6_prefix_length). */
        const char *as = strcmp(key, addr) == 0 ? "" : key;
        if (over_count)
            log_warning("Connection concurrency limit exceeded: %d from %s%s%s%s for service smtp",
                        count, addr, *as ? " (as " : "", as, *as ? ")" : "");
        else
            log_warning("Connection rate limit exceeded: %lld from %s for service smtp", rate,
                        addr);
        metrics_connection_refused(METRICS_REFUSED_CLIENT_LIMIT);
        char refusal[512];
        snprintf(refusal, sizeof refusal, "421 4.7.0 %s Error: too many connections from %s\r\n",
                 config_get(cfg, "myhostname"), addr);
        worker_refuse(fd, refusal);
        return;
    }
    srv->sessions++;
    metrics_connection_accepted(server_listener_metric(kind));
    smtpd_session_start(srv, fd, peer, peer_len, kind);
}

static void worker_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *peer,
                             int peer_len, void *arg)
{
    struct worker *w = arg;
    struct server *srv = &w->srv;
    enum listener_kind kind = LISTEN_SMTPD;
    for (int i = 0; i < w->nsocks; i++)
        if (w->listeners[i] == l)
            kind = w->socks[i].kind;
    if (kind == LISTEN_METRICS) {
        /* Scrapes are not SMTP connections: no limits, no connection counters. */
        metrics_http_accept(srv, fd);
        return;
    }
    const struct config *cfg = srv->gen->cfg;
    if (strcmp(config_get(cfg, "smtpd_upstream_proxy_protocol"), "haproxy") == 0 &&
        !srv->draining) {
        /* Headers still to come count against the total, so a flood of silent peers is bounded. */
        if (srv->sessions + proxy_pending() >=
            config_get_int(cfg, "smtpd_client_connection_limit")) {
            metrics_connection_refused(METRICS_REFUSED_LIMIT);
            close(fd);
            return;
        }
        proxy_accept(srv, fd, peer, (socklen_t)peer_len, kind, worker_admit, w);
        return;
    }
    worker_admit(w, fd, peer, (socklen_t)peer_len, kind);
}

/* smtpd: the listeners on the inherited sockets, and the sessions' wake-up for delivery. */
int worker_smtpd_start(struct worker *w)
{
    w->listeners = xcalloc((size_t)w->nsocks, sizeof *w->listeners);
    for (int i = 0; i < w->nsocks; i++) {
        w->listeners[i] = evconnlistener_new(w->srv.base, worker_on_accept, w, LEV_OPT_REUSEABLE,
                                             -1, w->socks[i].fd);
        if (w->listeners[i] == NULL) {
            log_error("cannot listen on %s", w->socks[i].addr);
            return -1;
        }
    }
    if (w->split_fd >= 0) {
        w->split_out = split_sender_new(w->srv.base, w->split_fd);
        w->srv.queued = split_sender_queued;
        w->srv.queued_arg = w->split_out;
    }
    return 0;
}

void worker_smtpd_drain(struct worker *w)
{
    for (int i = 0; i < w->nsocks; i++)
        evconnlistener_disable(w->listeners[i]);
}

void worker_smtpd_stop(struct worker *w)
{
    for (int i = 0; i < w->nsocks; i++) {
        evconnlistener_free(w->listeners[i]);
        /* evconnlistener closed nothing (no CLOSE_ON_FREE): the supervisor owns them. */
        w->socks[i].fd = -1;
    }
    free(w->listeners);
    proxy_drop_all();
    split_sender_free(w->split_out);
}
