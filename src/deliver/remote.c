/*
 * Remote delivery (remote_deliver, deliver/agent.h): routes each recipient
 * (deliver/route.c), groups recipients by next hop, finds the servers (MX by
 * preference with random order among equals, A/AAAA fallback, null MX per
 * RFC 7505) and runs SMTP client sessions (deliver/client.c) over them, moving
 * on to the next address after a connection failure or a 4xx. Connections
 * are kept idle per next hop for smtp_connection_cache_time_limit and
 * reused (RSET) by the next message to that hop. The queue manager hands
 * over at most smtp_destination_concurrency_limit deliveries per next hop
 * (qmgr_dest.c); the same limit here only holds a job whose session
 * another job is still closing, or one started under a newer, lower limit
 * after a reload. At smtp_tls_security_level = dane, MX, address and TLSA
 * lookups go through a DNSSEC-validating resolver and each server's TLSA
 * RRset sets its TLS level (RFC 7672 2.2; remote_dns_tlsa_cb). LMTP next
 * hops (lmtp(8): a unix socket or host:port, no MX) run the same way with
 * the client in LMTP mode, no TLS and no AUTH; this includes local-domain
 * recipients that transport_maps, mailbox_transport or virtual_transport
 * send to LMTP (remote_route_is_agent).
 *
 * This part holds the generations, the next hops and their idle connections,
 * the entry point and the routing seam the queue manager uses; the jobs and
 * the lookups are in remote_job.c and remote_lookup.c (deliver/remote_int.h).
 */
#include "deliver/remote_int.h"

static struct {
    struct server *srv;
    struct remote_gen *gen;
    struct remote_dest *dests;
    struct dns *own_dns; /* when the daemon provides none */
} remote;

/* ---- Generations ---- */

static int remote_map_lookup(void *ctx, const char *table, const char *key, struct buf *value,
                             struct buf *err)
{
    struct remote_gen *g = ctx;
    struct map_list *l = strcmp(table, "transport_maps") == 0                    ? g->transport
                         : strcmp(table, "sender_dependent_relayhost_maps") == 0 ? g->sender_relay
                         : strcmp(table, "smtp_tls_policy_maps") == 0            ? g->tls_policy
                                                                                 : g->sasl;
    if (!l)
        return MAP_NOTFOUND;
    return map_list_lookup(l, key, value, err);
}

static struct map_list *remote_open_maps(const struct config *cfg, const char *key, struct buf *err)
{
    const char *spec = config_get(cfg, key);
    if (!spec || !*spec)
        return NULL;
    struct buf why = BUF_INIT;
    struct map_list *l = map_list_open(spec, &why);
    if (!l && err->len == 0)
        buf_printf(err, "%s: %s", key, buf_cstr(&why));
    buf_free(&why);
    return l;
}

static struct remote_gen *remote_gen_new(struct server *srv)
{
    struct remote_gen *g = xcalloc(1, sizeof *g);
    struct buf err = BUF_INIT;
    g->refs = 1;
    g->sgen = server_gen_ref(srv);
    const struct config *cfg = g->cfg = g->sgen->cfg;
    g->transport = remote_open_maps(cfg, "transport_maps", &err);
    g->sender_relay = remote_open_maps(cfg, "sender_dependent_relayhost_maps", &err);
    if (config_get_bool(cfg, "smtp_sasl_auth_enable"))
        g->sasl = remote_open_maps(cfg, "smtp_sasl_password_maps", &err);
    g->tls_policy = remote_open_maps(cfg, "smtp_tls_policy_maps", &err);
    g->tables.lookup = remote_map_lookup;
    g->tables.ctx = g;
    g->base = srv->base;
    enum tls_level level = tls_level_parse(config_get(cfg, "smtp_tls_security_level"));
    if (level == TLS_LEVEL_DANE) {
        /*
         * DANE trusts TLSA records only as far as DNSSEC vouches for them:
         * without a trust anchor nothing validates, and dane is may (as
         * Postfix does when its resolver cannot do DNSSEC).
         */
        struct buf why = BUF_INIT;
        const char *support = config_get(cfg, "smtp_dns_support_level");
        if (support && *support && !str_eq_ci(support, "dnssec"))
            buf_printf(&why, "smtp_dns_support_level = %s turns DNSSEC off", support);
        else
            g->dane_dns = dns_new_dnssec(srv->base, config_get(cfg, "dns_resolver"),
                                         config_get(cfg, "dnssec_trust_anchor_file"), &why);
        if (!g->dane_dns)
            log_warning("smtp_tls_security_level = dane: %s; TLS is opportunistic (may) until "
                        "a trust anchor is configured (dnssec_trust_anchor_file)",
                        buf_cstr(&why));
        buf_free(&why);
    }
    /* A policy entry may ask for TLS even when the global level is none. */
    if (level != TLS_LEVEL_NONE || g->tls_policy || config_get_bool(cfg, "smtp_tls_wrappermode") ||
        config_get_bool(cfg, "smtp_mta_sts")) {
        struct buf why = BUF_INIT;
        g->tls = tls_client_new(cfg, &why);
        if (!g->tls && err.len == 0)
            buf_printf(&err, "TLS client: %s", buf_cstr(&why));
        buf_free(&why);
    }
    if (err.len) {
        g->open_error = buf_steal(&err);
        log_warning("remote delivery: %s", g->open_error);
    }
    buf_free(&err);
    return g;
}

static void remote_dns_free_later(evutil_socket_t fd, short what, void *arg)
{
    dns_free(arg);
}

void remote_gen_unref(struct remote_gen *g)
{
    if (!g || --g->refs > 0)
        return;
    /*
     * The last job may be ending inside one of this resolver's callbacks,
     * where it cannot be freed; no job is left to ask it, so free it from
     * the loop.
     */
    if (g->dane_dns)
        event_base_once(g->base, -1, EV_TIMEOUT, remote_dns_free_later, g->dane_dns,
                        &(struct timeval){0, 0});
    map_list_free(g->transport);
    map_list_free(g->sender_relay);
    map_list_free(g->sasl);
    map_list_free(g->tls_policy);
    tls_client_free(g->tls);
    free(g->open_error);
    server_gen_unref(g->sgen);
    free(g);
}

static void remote_idle_drop(struct remote_idle *idle, int quit);

static struct remote_gen *remote_current(struct server *srv)
{
    remote.srv = srv;
    if (!remote.gen || remote.gen->sgen != srv->gen) {
        /* A reload: idle connections were made under the old rules. */
        for (struct remote_dest *d = remote.dests; d; d = d->next)
            while (d->idle)
                remote_idle_drop(d->idle, 1);
        remote_gen_unref(remote.gen);
        remote.gen = remote_gen_new(srv);
    }
    remote.gen->refs++;
    return remote.gen;
}

struct dns *remote_dns(struct server *srv, const struct config *cfg)
{
    if (srv->dns)
        return srv->dns;
    if (!remote.own_dns) {
        struct buf err = BUF_INIT;
        remote.own_dns = dns_new(srv->base, config_get(cfg, "dns_resolver"), &err);
        if (!remote.own_dns)
            log_warning("remote delivery: DNS resolver: %s", buf_cstr(&err));
        buf_free(&err);
    }
    return remote.own_dns;
}

/* ---- Destinations and the connection cache ---- */

/* The name of r's next hop: what jobs, idle connections and the queue manager's lines share. */
static char *remote_route_key(const struct route *r)
{
    char *key = xasprintf("%s|%s|%d|%d", r->kind == ROUTE_LMTP ? "lmtp" : "smtp", r->nexthop,
                          r->port, r->mx);
    str_lower(key);
    return key;
}

static struct remote_dest *remote_dest_get(const struct route *r)
{
    char *key = remote_route_key(r);
    for (struct remote_dest *d = remote.dests; d; d = d->next) {
        if (strcmp(d->key, key) == 0) {
            free(key);
            return d;
        }
    }
    struct remote_dest *d = xcalloc(1, sizeof *d);
    d->key = key;
    d->next = remote.dests;
    remote.dests = d;
    return d;
}

static void remote_idle_drop(struct remote_idle *idle, int quit)
{
    struct remote_dest *d = idle->dest;
    for (struct remote_idle **pp = &d->idle; *pp; pp = &(*pp)->next) {
        if (*pp == idle) {
            *pp = idle->next;
            break;
        }
    }
    event_free(idle->timer);
    if (quit)
        smtp_client_quit(idle->c);
    else
        smtp_client_free(idle->c);
    free(idle->server_name);
    free(idle->ip);
    free(idle);
}

static void remote_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    remote_idle_drop(arg, 1);
}

static void remote_idle_closed(void *arg, struct smtp_client *c)
{
    remote_idle_drop(arg, 0);
}

/* Puts c on d's idle list, watched for the server closing it; the caller arms the timer. */
static struct remote_idle *remote_idle_keep(struct remote_dest *d, struct smtp_client *c,
                                            const char *server_name, const char *ip, time_t born)
{
    struct remote_idle *idle = xcalloc(1, sizeof *idle);
    idle->c = c;
    idle->dest = d;
    idle->server_name = xstrdup(server_name);
    idle->ip = xstrdup(ip);
    idle->born = born;
    idle->timer = event_new(remote.srv->base, -1, 0, remote_idle_timer, idle);
    idle->next = d->idle;
    d->idle = idle;
    smtp_client_watch_idle(c, remote_idle_closed, idle);
    return idle;
}

/* Hands a finished job's connection on: to a waiting job, to the cache, or away. */
void remote_dest_release(struct remote_dest *d, struct smtp_client *c, const char *server_name,
                         const char *ip, time_t born, const struct config *cfg)
{
    d->active--;
    if (d->wait_head) {
        struct remote_job *w = d->wait_head;
        d->wait_head = w->next_wait;
        if (!d->wait_head)
            d->wait_tail = NULL;
        w->next_wait = NULL;
        if (c)
            remote_idle_keep(d, c, server_name, ip, born);
        remote_job_run(w);
        return;
    }
    if (!c)
        return;
    long long limit = config_get_time(cfg, "smtp_connection_cache_time_limit");
    long long reuse = config_get_time(cfg, "smtp_connection_reuse_time_limit");
    if (limit <= 0 || time(NULL) - born >= reuse) {
        smtp_client_quit(c);
        return;
    }
    struct remote_idle *idle = remote_idle_keep(d, c, server_name, ip, born);
    struct timeval tv = {(time_t)limit, 0};
    event_add(idle->timer, &tv);
}

/* ---- The agent entry point ---- */

static void remote_kick_done(evutil_socket_t fd, short what, void *arg)
{
    struct remote_req *req = arg;
    remote_req_job_done(req);
}

void remote_deliver(const struct delivery_request *dreq, delivery_done_cb done, void *arg)
{
    struct server *srv = dreq->srv;
    struct remote_gen *g = remote_current(srv);
    const struct config *cfg = g->cfg;
    struct remote_req *req = xcalloc(1, sizeof *req);
    req->srv = srv;
    req->env = dreq->env;
    req->queue_id = xstrdup(dreq->queue_id);
    req->data = *dreq->data;
    req->done = done;
    req->arg = arg;
    req->nresults = dreq->nrcpts;
    req->results = xcalloc(dreq->nrcpts ? dreq->nrcpts : 1, sizeof *req->results);
    req->jobs = 1; /* held until every job is started */
    struct remote_job **jobs = xcalloc(dreq->nrcpts ? dreq->nrcpts : 1, sizeof *jobs);
    size_t njobs = 0;
    for (size_t i = 0; i < dreq->nrcpts; i++) {
        struct delivery_rcpt_result *res = &req->results[i];
        res->rcpt = dreq->rcpts[i];
        const struct envelope_rcpt *er = &dreq->env->rcpts[dreq->rcpts[i]];
        if (g->open_error) {
            res->status = DELIVERY_TEMPFAIL;
            str_copy(res->dsn, sizeof res->dsn, "4.3.5");
            res->reply = xasprintf("mail system configuration error: %s", g->open_error);
            continue;
        }
        struct route r;
        struct buf err = BUF_INIT;
        enum route_class cls =
            dreq->rcpt_class ? (enum route_class)dreq->rcpt_class[i] : ROUTE_CLASS_REMOTE;
        enum route_status decided;
        if (dreq->routes) {
            /* Decided on the work queue (a table that may wait on the network): take it over. */
            decided = dreq->routes[i].status;
            r = dreq->routes[i].route;
            memset(&dreq->routes[i].route, 0, sizeof dreq->routes[i].route);
            buf_puts(&err, dreq->routes[i].why ? dreq->routes[i].why : "");
        } else {
            decided =
                route_decide_class(cfg, &g->tables, dreq->env->sender, er->address, cls, &r, &err);
        }
        if (decided != ROUTE_FOUND) {
            res->status = DELIVERY_TEMPFAIL;
            str_copy(res->dsn, sizeof res->dsn, "4.3.5");
            res->reply = buf_steal(&err);
            log_warning("%s: to=<%s>: %s", req->queue_id, er->address, res->reply);
            continue;
        }
        buf_free(&err);
        switch (r.kind) {
        case ROUTE_DISCARD:
            res->service = "discard"; /* logged as Postfix's discard(8) */
            res->status = DELIVERY_OK;
            res->repeatable = 1;
            str_copy(res->dsn, sizeof res->dsn, "2.0.0");
            res->reply = xstrdup(r.text);
            res->relay = xstrdup("none");
            route_clear(&r);
            continue;
        case ROUTE_ERROR:
        case ROUTE_RETRY: {
            int perm = r.kind == ROUTE_ERROR;
            res->service = perm ? "error" : "retry"; /* Postfix's error(8) under either name */
            res->status = perm ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL;
            /* error:5.1.2 text takes its code from the text, as Postfix does. */
            const char *t = r.text;
            if ((t[0] == '4' || t[0] == '5') && t[1] == '.' && strchr(t, ' ')) {
                size_t l = (size_t)(strchr(t, ' ') - t);
                snprintf(res->dsn, sizeof res->dsn, "%.*s", (int)l, t);
                res->dsn[0] = perm ? '5' : '4';
                t += l + 1;
            } else {
                str_copy(res->dsn, sizeof res->dsn, perm ? "5.0.0" : "4.0.0");
            }
            res->reply = xstrdup(t);
            res->relay = xstrdup("none");
            route_clear(&r);
            continue;
        }
        case ROUTE_LOCAL:
            /* The queue manager routed it here under other rules (a reload since): again later. */
            res->status = DELIVERY_TEMPFAIL;
            str_copy(res->dsn, sizeof res->dsn, "4.3.0");
            res->reply = xstrdup("local delivery route changed; will try again");
            res->relay = xstrdup("none");
            route_clear(&r);
            continue;
        case ROUTE_SMTP:
        case ROUTE_LMTP:
            break;
        }
        struct remote_dest *d = remote_dest_get(&r);
        if (d->dead_until > time(NULL) && !d->idle) {
            res->status = DELIVERY_TEMPFAIL;
            str_copy(res->dsn, sizeof res->dsn, d->dead_dsn);
            res->reply = xasprintf("delivery temporarily suspended: %s", d->dead_reason);
            route_clear(&r);
            continue;
        }
        /* Join the job for the same next hop, or start one. */
        struct remote_job *j = NULL;
        for (size_t k = 0; k < njobs && !j; k++)
            if (jobs[k]->route.kind == r.kind && strcmp(jobs[k]->route.nexthop, r.nexthop) == 0 &&
                jobs[k]->route.port == r.port && jobs[k]->route.mx == r.mx)
                j = jobs[k];
        if (j) {
            route_clear(&r);
        } else {
            j = xcalloc(1, sizeof *j);
            j->req = req;
            j->gen = g;
            g->refs++;
            j->route = r;
            j->pos = xcalloc(dreq->nrcpts, sizeof *j->pos);
            j->final = xcalloc(dreq->nrcpts, 1);
            j->answered = xcalloc(dreq->nrcpts, 1);
            jobs[njobs++] = j;
        }
        j->pos[j->n++] = i;
        res->status = DELIVERY_TEMPFAIL;
        str_copy(res->dsn, sizeof res->dsn, "4.4.0");
        res->reply = xstrdup("delivery not attempted");
    }
    req->jobs += (int)njobs;
    for (size_t k = 0; k < njobs; k++) {
        jobs[k]->dest = remote_dest_get(&jobs[k]->route);
        remote_job_start(jobs[k]);
    }
    free(jobs);
    remote_gen_unref(g);
    /* Release the start hold from the loop, so done never runs inside this call. */
    event_base_once(srv->base, -1, EV_TIMEOUT, remote_kick_done, req, &(struct timeval){0, 0});
}

struct remote_gen *remote_routing_hold(struct server *srv)
{
    return remote_current(srv);
}

void remote_routing_release(struct remote_gen *g)
{
    remote_gen_unref(g);
}

int remote_routing_may_block(const struct remote_gen *g)
{
    return map_list_may_block(g->transport) || map_list_may_block(g->sender_relay);
}

void remote_routing_decide(struct remote_gen *g, const char *sender, const char *rcpt, int cls,
                           struct delivery_route *out)
{
    memset(out, 0, sizeof *out);
    if (g->open_error) {
        out->status = ROUTE_TEMPFAIL;
        out->why = xasprintf("mail system configuration error: %s", g->open_error);
        return;
    }
    struct buf err = BUF_INIT;
    out->status = route_decide_class(g->cfg, &g->tables, sender, rcpt, (enum route_class)cls,
                                     &out->route, &err);
    if (out->status != ROUTE_FOUND)
        out->why = buf_steal(&err);
    buf_free(&err);
}

int remote_route_is_agent(const struct delivery_route *r)
{
    return r->status != ROUTE_FOUND || r->route.kind != ROUTE_LOCAL;
}

/* 1 with key set when the route needs a session (SMTP or LMTP), as remote_deliver() groups it. */
static int remote_route_destination(const struct route *r, struct buf *key)
{
    if (r->kind != ROUTE_SMTP && r->kind != ROUTE_LMTP)
        return 0;
    char *k = remote_route_key(r);
    buf_set(key, k);
    free(k);
    return 1;
}

int remote_decided_destination(const struct delivery_route *r, struct buf *key)
{
    return r->status == ROUTE_FOUND && remote_route_destination(&r->route, key);
}

void remote_flush_dead(void)
{
    for (struct remote_dest *d = remote.dests; d; d = d->next)
        d->dead_until = 0;
}
