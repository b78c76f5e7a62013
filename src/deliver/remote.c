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
 * send to LMTP (remote_routes_local).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "config/config.h"
#include "server/server.h"
#include "deliver/agent.h"
#include "deliver/mta_sts.h"
#include "deliver/mta_sts_apply.h"
#include "deliver/route.h"
#include "deliver/tlsrpt.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/envelope.h"
#include "deliver/client.h"
#include "tls/tls_client.h"

/* What is built from one configuration: tables and TLS; jobs hold a reference. */
struct remote_gen {
    int refs;
    struct server_gen *sgen; /* a reference: the configuration stays while jobs use it */
    const struct config *cfg;
    struct map_list *transport, *sender_relay, *sasl, *tls_policy;
    struct route_tables tables;
    struct tls_client *tls;
    struct event_base *base;
    /* smtp_tls_security_level = dane with a trust anchor: the validating resolver. */
    struct dns *dane_dns;
    char *open_error; /* a table or TLS that could not be opened: every delivery defers */
};

struct remote_idle {
    struct smtp_client *c;
    struct event *timer;
    struct remote_dest *dest;
    char *server_name; /* the host dialled (SNI, names checked), as the job that opened it */
    char *ip;          /* its address, text */
    time_t born;
    struct remote_idle *next;
};

struct remote_job;

/* One next hop: its sessions, idle connections and the jobs waiting for a slot. */
struct remote_dest {
    char *key;
    int active;
    /* Every server unreachable: later mail is deferred at once until then (Postfix's dead
     * destination). */
    time_t dead_until;
    char *dead_reason;
    char dead_dsn[16];
    struct remote_idle *idle;
    struct remote_job *wait_head, *wait_tail;
    struct remote_dest *next;
};

struct remote_req {
    struct server *srv;
    const struct envelope *env;
    char *queue_id;
    char *data_path;
    unsigned long long size;
    struct delivery_rcpt_result *results;
    size_t nresults;
    int jobs;
    delivery_done_cb done;
    void *arg;
};

struct remote_host {
    char *name;
    unsigned pref;
    int resolved;
    /* DANE (RFC 7672 2.2): */
    int dane_ok;           /* found securely (a secure MX RRset, or a non-MX next hop) */
    int addr_insecure;     /* an A/AAAA answer that gave addresses was not validated */
    size_t first_addr;     /* its addresses start here in job->addrs */
    enum tls_level level;  /* the level for its addresses: may, encrypt or dane */
    struct tls_dane *dane; /* its usable TLSA records (level dane) */
    char *canon;           /* its secure CNAME expansion, when it is an alias (RFC 7672 2.2.2) */
    int tlsa_at_canon;     /* the TLSA query in flight is for canon */
};

struct remote_addr {
    char *host; /* the server's name */
    char *ip;
    size_t hidx; /* index of its struct remote_host, SIZE_MAX for an address literal */
};

struct remote_job {
    struct remote_req *req;
    struct remote_gen *gen;
    struct route route;
    struct remote_dest *dest;
    size_t *pos; /* indexes into req->results */
    size_t n;
    unsigned char *final;    /* per pos: a final answer (sent or bounced) is in */
    unsigned char *answered; /* per pos: a server's own 4xx is its result, unless a later
                                error supersedes it */
    struct remote_host *hosts;
    size_t nhosts, next_host;
    struct remote_addr *addrs;
    size_t naddrs, next_addr, tried;
    struct dns_query *q;
    int aaaa_phase;
    struct smtp_client *c;
    char *c_server; /* server name of c */
    char *c_ip;
    int plain_retry; /* at may, a failed handshake: once again without STARTTLS */
    /* smtp_tls_policy_maps for the next hop: it depends on the route only, so it is looked up
     * once per job (remote_job_tls_policy); policy_err says why on TEMPFAIL/INVALID. */
    int policy_done;
    enum route_tls_result policy_result;
    struct route_tls_policy policy;
    char *policy_err;
    /*
     * A pgsql: smtp_sasl_password_maps or smtp_tls_policy_maps is asked on
     * the work queue before connecting (remote_conn_lookup_start); the
     * credentials in user/pass are then for the server named creds_host.
     */
    size_t lookup_addr; /* the address remote_connect() resumes with */
    int lookup_sasl;
    char *creds_host;
    int creds_result;
    struct buf creds_key, creds_err;
    char **tls_match;       /* smtp_tls_policy_maps match=, expanded for the connection made */
    enum tls_level c_level; /* the TLS level of the last connection made */
    struct smtp_msg msg;
    struct smtp_msg_rcpt *mrcpts;
    size_t *mpos; /* msg rcpt i -> index into pos */
    char *last_error;
    char *last_relay; /* host[ip]:port that gave last_error, or NULL (no session) */
    char last_dsn[16];
    int last_permanent;
    int sessions, conn_fails, other_fails; /* what the attempts came to */
    struct buf user, pass;
    struct remote_job *next_wait;
    /* The recipient domain's MTA-STS policy in testing or enforce mode (RFC 8461), or NULL. */
    struct mta_sts_policy *sts;
    char *sts_domain;
    int by_mx; /* delivery by MX to the recipient's domain: MTA-STS and TLS-RPT apply */
};

static struct {
    struct server *srv;
    struct remote_gen *gen;
    struct remote_dest *dests;
    struct dns *own_dns; /* when the daemon provides none */
} remote;

static void remote_job_try_next(struct remote_job *j);
static void remote_job_run(struct remote_job *j);
static void remote_job_end(struct remote_job *j);

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

static void remote_gen_unref(struct remote_gen *g)
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

static struct dns *remote_dns(struct server *srv, const struct config *cfg)
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
static void remote_dest_release(struct remote_dest *d, struct smtp_client *c,
                                const char *server_name, const char *ip, time_t born,
                                const struct config *cfg)
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

/* ---- Results ---- */

static void remote_result(struct remote_job *j, size_t k, enum delivery_status st, const char *dsn,
                          const char *reply, const char *relay)
{
    struct delivery_rcpt_result *r = &j->req->results[j->pos[k]];
    r->status = st;
    str_copy(r->dsn, sizeof r->dsn, dsn);
    free(r->reply);
    r->reply = xstrdup(reply);
    free(r->relay);
    r->relay = relay ? xstrdup(relay) : NULL;
    r->service = j->route.kind == ROUTE_LMTP ? "lmtp" : "smtp";
}

static void remote_req_job_done(struct remote_req *req)
{
    if (--req->jobs > 0)
        return;
    delivery_done_cb done = req->done;
    void *arg = req->arg;
    struct delivery_rcpt_result *results = req->results;
    size_t n = req->nresults;
    free(req->queue_id);
    free(req->data_path);
    free(req);
    done(arg, results, n);
}

/* Every recipient still open gets the last error as a deferral (or bounce when permanent). */
static void remote_job_fail_rest(struct remote_job *j, enum delivery_status st, const char *dsn,
                                 const char *why)
{
    for (size_t k = 0; k < j->n; k++) {
        if (!j->final[k]) {
            /* A recipient's own deferral (LMTP: its own reply) stays, when nothing came after. */
            if (!j->answered[k])
                remote_result(j, k, st, dsn, why, j->last_relay);
            j->final[k] = 1;
        }
    }
}

static void remote_set_error_at(struct remote_job *j, const char *dsn, const char *why,
                                int permanent, const char *relay)
{
    free(j->last_error);
    j->last_error = xstrdup(why);
    free(j->last_relay);
    j->last_relay = relay ? xstrdup(relay) : NULL;
    str_copy(j->last_dsn, sizeof j->last_dsn, dsn);
    j->last_permanent = permanent;
    /* A newer error (another server) is what the deferred recipients report now. */
    memset(j->answered, 0, j->n);
}

static void remote_set_error(struct remote_job *j, const char *dsn, const char *why, int permanent)
{
    remote_set_error_at(j, dsn, why, permanent, NULL);
}

static void remote_job_free(struct remote_job *j)
{
    route_clear(&j->route);
    free(j->pos);
    free(j->final);
    free(j->answered);
    for (size_t i = 0; i < j->nhosts; i++) {
        free(j->hosts[i].name);
        free(j->hosts[i].canon);
        tls_dane_free(j->hosts[i].dane);
    }
    free(j->hosts);
    for (size_t i = 0; i < j->naddrs; i++) {
        free(j->addrs[i].host);
        free(j->addrs[i].ip);
    }
    free(j->addrs);
    free(j->c_server);
    free(j->c_ip);
    free(j->mrcpts);
    free(j->mpos);
    free(j->last_error);
    free(j->last_relay);
    if (j->pass.data)
        explicit_bzero(j->pass.data, j->pass.len);
    buf_free(&j->user);
    buf_free(&j->pass);
    free(j->creds_host);
    buf_free(&j->creds_key);
    buf_free(&j->creds_err);
    strlist_free(j->tls_match);
    route_tls_policy_clear(&j->policy);
    free(j->policy_err);
    mta_sts_policy_free(j->sts);
    free(j->sts_domain);
    remote_gen_unref(j->gen);
    free(j);
}

/* The job is over (every recipient final): free the slot and report. */
static void remote_job_end(struct remote_job *j)
{
    if (j->last_error)
        remote_job_fail_rest(j, j->last_permanent ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL,
                             j->last_dsn, j->last_error);
    else
        remote_job_fail_rest(j, DELIVERY_TEMPFAIL, "4.4.0", "delivery not attempted");
    struct remote_req *req = j->req;
    if (j->dest) {
        struct remote_dest *d = j->dest;
        j->dest = NULL;
        if (j->sessions == 0 && j->conn_fails > 0 && j->other_fails == 0 && j->last_error) {
            /* No server answered at all: spare the next messages the same wait. */
            d->dead_until = time(NULL) + config_get_time(j->gen->cfg, "minimal_backoff_time");
            free(d->dead_reason);
            d->dead_reason = xstrdup(j->last_error);
            str_copy(d->dead_dsn, sizeof d->dead_dsn, j->last_dsn);
        }
        remote_dest_release(d, NULL, NULL, NULL, 0, j->gen->cfg);
    }
    remote_job_free(j);
    remote_req_job_done(req);
}

/* ---- TLS reporting (RFC 8460) ---- */

/* Notes one outcome for the recipient domain: result NULL is a successful TLS session. */
static void remote_tlsrpt(struct remote_job *j, const char *result, const char *host,
                          const char *ip, int dane)
{
    if (!j->by_mx)
        return;
    struct tlsrpt_event ev = {.domain = j->route.host, .result = result, .mx_host = host, .ip = ip};
    ev.type = j->sts ? TLSRPT_POLICY_STS : dane ? TLSRPT_POLICY_TLSA : TLSRPT_POLICY_NONE;
    ev.sts = j->sts;
    tlsrpt_record(j->gen->cfg, &ev, time(NULL));
}

/* A session ready (ok) or refused for TLS reasons, under the policy it ran with. */
static void remote_tlsrpt_session(struct remote_job *j, struct smtp_client *c, int ok)
{
    int dane = j->c_level == TLS_LEVEL_DANE;
    if (!j->by_mx || (!j->sts && !dane && ok && !smtp_client_is_tls(c)))
        return; /* no policy and no TLS: nothing was tried that a report covers */
    const char *result = tlsrpt_result_type(c, dane);
    if (!j->sts && !dane && ok)
        result = NULL; /* without a policy, any TLS session counts as one */
    remote_tlsrpt(j, result, j->c_server, j->c_ip, dane);
}

/* ---- Sessions ---- */

static size_t remote_open_count(const struct remote_job *j)
{
    size_t n = 0;
    for (size_t k = 0; k < j->n; k++)
        n += !j->final[k];
    return n;
}

static void remote_sent(void *arg, struct smtp_client *c, int conn_ok, struct smtp_rcpt_out *out)
{
    struct remote_job *j = arg;
    const char *relay = smtp_client_label(c);
    for (size_t i = 0; i < j->msg.nrcpts; i++)
        if (out[i].status == DELIVERY_TEMPFAIL)
            remote_set_error_at(j, out[i].dsn, out[i].reply, 0, relay);
    for (size_t i = 0; i < j->msg.nrcpts; i++) {
        size_t k = j->mpos[i];
        if (out[i].status == DELIVERY_TEMPFAIL) {
            /* Kept for the next server (Postfix: a soft error is retried on the next MX). */
            remote_result(j, k, DELIVERY_TEMPFAIL, out[i].dsn, out[i].reply, relay);
            j->answered[k] = 1;
        } else {
            remote_result(j, k, out[i].status, out[i].dsn, out[i].reply, relay);
            j->final[k] = 1;
        }
        free(out[i].reply);
    }
    free(out);
    j->c = NULL;
    time_t born = time(NULL);
    if (!conn_ok) {
        smtp_client_free(c);
        c = NULL;
    }
    if (remote_open_count(j) == 0) {
        struct remote_dest *d = j->dest;
        j->dest = NULL;
        struct remote_req *req = j->req;
        char *server = j->c_server, *ip = j->c_ip;
        j->c_server = j->c_ip = NULL;
        struct remote_gen *g = j->gen;
        g->refs++;
        remote_job_free(j);
        remote_dest_release(d, c, server ? server : "", ip ? ip : "", born, g->cfg);
        remote_gen_unref(g);
        free(server);
        free(ip);
        remote_req_job_done(req);
        return;
    }
    /* Some recipients got a 4xx here: try them at the next address. */
    if (c)
        smtp_client_quit(c);
    remote_job_try_next(j);
}

static void remote_send(struct remote_job *j)
{
    const struct envelope *env = j->req->env;
    size_t open = remote_open_count(j);
    free(j->mrcpts);
    free(j->mpos);
    j->mrcpts = xcalloc(open, sizeof *j->mrcpts);
    j->mpos = xcalloc(open, sizeof *j->mpos);
    size_t m = 0;
    for (size_t k = 0; k < j->n; k++) {
        if (j->final[k])
            continue;
        const struct envelope_rcpt *er = &env->rcpts[j->req->results[j->pos[k]].rcpt];
        j->mrcpts[m].address = er->address;
        j->mrcpts[m].orcpt = er->orcpt;
        j->mrcpts[m].notify = er->notify;
        j->mpos[m++] = k;
    }
    j->msg.sender = env->sender;
    j->msg.envid = env->envid;
    j->msg.ret = env->ret;
    j->msg.body_8bit = env->body_8bit;
    j->msg.smtputf8 = env->smtputf8;
    j->msg.data_path = j->req->data_path;
    j->msg.size = j->req->size;
    j->msg.rcpts = j->mrcpts;
    j->msg.nrcpts = m;
    smtp_client_send(j->c, &j->msg, remote_sent, j);
}

static void remote_ready(void *arg, struct smtp_client *c, int ok, enum smtp_client_fail fail,
                         int permanent, const char *dsn, const char *why)
{
    struct remote_job *j = arg;
    if (ok) {
        j->sessions++;
        j->dest->dead_until = 0;
        if (j->sts && j->sts->mode == MTA_STS_TESTING)
            mta_sts_testing_check(j->sts_domain, j->req->queue_id, c);
        remote_tlsrpt_session(j, c, 1);
        remote_send(j);
        return;
    }
    if (fail == SMTP_FAIL_CONNECT)
        j->conn_fails++;
    else
        j->other_fails++;
    /* A refusal names the server (relay=); a failed connection does not, as in Postfix. */
    char *relay = fail == SMTP_FAIL_CONNECT ? NULL : xstrdup(smtp_client_label(c));
    if (fail == SMTP_FAIL_POLICY || fail == SMTP_FAIL_TLS)
        remote_tlsrpt_session(j, c, 0);
    smtp_client_free(c);
    j->c = NULL;
    /* Never for DANE or encrypt: their servers must not get the mail in plain text. */
    if (fail == SMTP_FAIL_TLS && j->c_level == TLS_LEVEL_MAY && !j->plain_retry &&
        !config_get_bool(j->gen->cfg, "smtp_tls_wrappermode")) {
        /* Opportunistic TLS: a failed handshake is retried in plain text, as Postfix does. */
        log_info("%s: %s; trying again without TLS", j->req->queue_id, why);
        j->plain_retry = 1;
        j->next_addr--;
        j->tried--;
    }
    /*
     * A 5xx greeting or EHLO is not the recipient's fault: like Postfix
     * (smtp_skip_5xx_greeting) it defers and the next server is tried.
     */
    /* RFC 8461 4.2: what enforce refused says so, for the queue and the log. */
    char *sts_why = j->sts && j->sts->mode == MTA_STS_ENFORCE &&
                            (fail == SMTP_FAIL_POLICY || fail == SMTP_FAIL_TLS)
                        ? xasprintf("MTA-STS policy for %s (enforce): %s", j->sts_domain, why)
                        : NULL;
    remote_set_error_at(j, permanent ? "4.0.0" : dsn, sts_why ? sts_why : why, 0, relay);
    free(sts_why);
    free(relay);
    remote_job_try_next(j);
}

/* A unix-domain socket address; -1 when the path does not fit (route.c checks that first). */
static int remote_sockaddr_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_un *su = (struct sockaddr_un *)ss;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof su->sun_path)
        return -1;
    su->sun_family = AF_UNIX;
    memcpy(su->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* smtp_NAME, or lmtp_NAME for an LMTP session, in seconds. */
static int remote_timeout(const struct config *cfg, int lmtp, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s_%s", lmtp ? "lmtp" : "smtp", name);
    return (int)config_get_time(cfg, key);
}

/*
 * The job's smtp_tls_policy_maps answer, looked up on first use: the keys
 * depend on the next hop only (route.h), not on the server tried. LMTP
 * never uses TLS, so it has no policy.
 */
static enum route_tls_result remote_job_tls_policy(struct remote_job *j)
{
    if (j->policy_done)
        return j->policy_result;
    j->policy_done = 1;
    j->policy_result = ROUTE_TLS_DEFAULT;
    if (!j->gen->tls_policy || j->route.kind == ROUTE_LMTP)
        return j->policy_result;
    struct buf key = BUF_INIT, err = BUF_INIT;
    j->policy_result = route_tls_policy_lookup(&j->gen->tables, &j->route, &j->policy, &key, &err);
    if (j->policy_result == ROUTE_TLS_TEMPFAIL || j->policy_result == ROUTE_TLS_INVALID) {
        log_warning("%s: %s", j->req->queue_id, buf_cstr(&err));
        j->policy_err = buf_steal(&err);
    } else if (j->policy_result == ROUTE_TLS_FOUND) {
        if (log_debug_enabled())
            log_debug("%s: TLS policy for %s from smtp_tls_policy_maps key %s", j->req->queue_id,
                      j->route.nexthop ? j->route.nexthop : j->route.host, buf_cstr(&key));
        if (j->policy.ignored)
            log_info("%s: smtp_tls_policy_maps key %s: %s not enforced (OpenSSL defaults apply)",
                     j->req->queue_id, buf_cstr(&key), j->policy.ignored);
    }
    buf_free(&key);
    buf_free(&err);
    return j->policy_result;
}

static void remote_connect(struct remote_job *j, const struct remote_addr *a);

/* On a pool thread: the lookups remote_connect() would make (tables are thread-safe). */
static void remote_conn_lookup_work(void *arg)
{
    struct remote_job *j = arg;
    const struct remote_addr *a = &j->addrs[j->lookup_addr];
    if (j->lookup_sasl) {
        buf_reset(&j->user);
        buf_reset(&j->pass);
        buf_reset(&j->creds_key);
        buf_reset(&j->creds_err);
        j->creds_result = route_sasl_lookup(&j->gen->tables, &j->route, a->host, &j->user, &j->pass,
                                            &j->creds_key, &j->creds_err);
    }
    remote_job_tls_policy(j); /* remembered for the job */
}

static void remote_conn_lookup_done(void *arg)
{
    struct remote_job *j = arg;
    const struct remote_addr *a = &j->addrs[j->lookup_addr];
    if (j->lookup_sasl) {
        free(j->creds_host);
        j->creds_host = xstrdup(a->host);
    }
    remote_connect(j, a);
}

/*
 * 1 when the credentials or TLS policy for a come from a table that may
 * wait on the network and are not known yet: they are looked up on the
 * work queue, and remote_connect(j, a) runs again with the answer.
 */
static int remote_conn_lookup_start(struct remote_job *j, const struct remote_addr *a, int lmtp)
{
    struct remote_gen *g = j->gen;
    if (lmtp)
        return 0;
    j->lookup_sasl = g->sasl && map_list_may_block(g->sasl) &&
                     !(j->creds_host && strcmp(j->creds_host, a->host) == 0);
    int policy = !j->policy_done && g->tls_policy && map_list_may_block(g->tls_policy);
    if (!j->lookup_sasl && !policy)
        return 0;
    j->lookup_addr = (size_t)(a - j->addrs);
    workq_submit(server_map_workq(j->req->srv), remote_conn_lookup_work, remote_conn_lookup_done,
                 j);
    return 1;
}

/* smtp_sasl_password_maps for the server a (route.h has the key order): an enum map_result. */
static int remote_sasl_creds(struct remote_job *j, const struct remote_addr *a, struct buf *key,
                             struct buf *err)
{
    if (j->creds_host && strcmp(j->creds_host, a->host) == 0) {
        buf_puts(key, buf_cstr(&j->creds_key));
        buf_puts(err, buf_cstr(&j->creds_err));
        return j->creds_result; /* asked on the work queue; user and pass are filled */
    }
    buf_reset(&j->user);
    buf_reset(&j->pass);
    return route_sasl_lookup(&j->gen->tables, &j->route, a->host, &j->user, &j->pass, key, err);
}

static void remote_connect(struct remote_job *j, const struct remote_addr *a)
{
    const struct config *cfg = j->gen->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    int lmtp = j->route.kind == ROUTE_LMTP;
    if (remote_conn_lookup_start(j, a, lmtp))
        return;
    if ((j->route.path ? remote_sockaddr_unix(j->route.path, &ss, &len)
                       : sockaddr_from_ip(a->ip, j->route.port, &ss, &len)) < 0) {
        remote_set_error(j, "4.4.1", "bad server address", 0);
        remote_job_try_next(j);
        return;
    }
    free(j->c_server);
    free(j->c_ip);
    j->c_server = xstrdup(a->host);
    j->c_ip = xstrdup(a->ip);
    /* AUTH credentials for this server (route.h has the key order). */
    int have_auth = 0;
    if (j->gen->sasl && !lmtp) {
        struct buf key = BUF_INIT, err = BUF_INIT;
        int r = remote_sasl_creds(j, a, &key, &err);
        if (r == MAP_TEMPFAIL) {
            log_warning("%s: %s", j->req->queue_id, buf_cstr(&err));
            remote_set_error(j, "4.3.0", buf_cstr(&err), 0);
            buf_free(&key);
            buf_free(&err);
            j->next_addr = j->naddrs; /* the table, not the server, is at fault */
            j->next_host = j->nhosts;
            remote_job_try_next(j);
            return;
        }
        have_auth = r == MAP_FOUND;
        if (have_auth && log_debug_enabled())
            log_debug("%s: SASL credentials for %s from key %s", j->req->queue_id, a->host,
                      buf_cstr(&key));
        buf_free(&key);
        buf_free(&err);
    }
    /* smtp_tls_policy_maps for this next hop (route.h has the key order). */
    enum tls_level level = tls_level_parse(config_get(cfg, "smtp_tls_security_level"));
    strlist_free(j->tls_match);
    j->tls_match = NULL;
    enum route_tls_result pr = remote_job_tls_policy(j);
    if (pr == ROUTE_TLS_TEMPFAIL || pr == ROUTE_TLS_INVALID) {
        /* Never a silent downgrade: a policy we cannot read or understand defers. */
        remote_set_error(j, pr == ROUTE_TLS_INVALID ? "4.7.5" : "4.3.0", j->policy_err, 0);
        j->next_addr = j->naddrs;
        j->next_host = j->nhosts;
        remote_job_try_next(j);
        return;
    }
    if (pr == ROUTE_TLS_FOUND) {
        level = j->policy.level;
        /* Postfix's match= words: hostname, nexthop, dot-nexthop; others are literal. */
        for (size_t i = 0; j->policy.match && j->policy.match[i]; i++) {
            const char *m = j->policy.match[i];
            char *name = str_eq_ci(m, "hostname")      ? xstrdup(a->host)
                         : str_eq_ci(m, "nexthop")     ? xstrdup(j->route.host)
                         : str_eq_ci(m, "dot-nexthop") ? xasprintf(".%s", j->route.host)
                                                       : xstrdup(m);
            j->tls_match = xrealloc(j->tls_match, (i + 2) * sizeof *j->tls_match);
            j->tls_match[i] = name;
            j->tls_match[i + 1] = NULL;
        }
    }
    /*
     * "host[ip]:port", as Postfix writes relay= (IPv6 too: "mx[2001:db8::1]:25");
     * for a unix socket "myhostname[path]", as Postfix's lmtp(8) does.
     */
    char *label = j->route.path ? xasprintf("%s[%s]", a->host, a->ip)
                                : xasprintf("%s[%s]:%d", a->host, a->ip, j->route.port);
    struct smtp_client_opts o = {0};
    o.base = j->req->srv->base;
    o.tls = j->gen->tls;
    o.level = level;
    if (o.level == TLS_LEVEL_DANE) {
        /* What the TLSA lookup for this server decided (remote_dns_tlsa_cb); may without it. */
        o.level = TLS_LEVEL_MAY;
        if (j->gen->dane_dns && a->hidx < j->nhosts) {
            o.level = j->hosts[a->hidx].level;
            o.dane = j->hosts[a->hidx].dane;
        }
    }
    if (j->sts && pr != ROUTE_TLS_FOUND)
        mta_sts_tls_opts(j->sts, &o);
    j->c_level = o.level;
    o.wrappermode = config_get_bool(cfg, "smtp_tls_wrappermode");
    o.no_starttls = j->plain_retry;
    /* Plain text only for this one retry: the next address gets STARTTLS again. */
    j->plain_retry = 0;
    o.helo_name = config_get(cfg, "smtp_helo_name");
    o.server_name = a->host;
    /* secure: the certificate must name the next hop; verify: the server as found. */
    o.match_name = o.level == TLS_LEVEL_SECURE ? j->route.host : a->host;
    o.match_names = (const char *const *)j->tls_match;
    o.queue_id = j->req->queue_id;
    if (have_auth) {
        o.sasl_user = buf_cstr(&j->user);
        o.sasl_pass = buf_cstr(&j->pass);
    }
    char **opts = config_get_list(cfg, "smtp_sasl_security_options", NULL);
    for (size_t i = 0; opts && opts[i]; i++)
        if (str_eq_ci(opts[i], "noplaintext"))
            o.sasl_noplaintext = 1;
    strlist_free(opts);
    /* Postfix's smtp_*_timeout, or its lmtp_*_timeout twins (LHLO for HELO). */
    o.connect_timeout = remote_timeout(cfg, lmtp, "connect_timeout");
    o.helo_timeout = remote_timeout(cfg, lmtp, lmtp ? "lhlo_timeout" : "helo_timeout");
    o.mail_timeout = remote_timeout(cfg, lmtp, "mail_timeout");
    o.rcpt_timeout = remote_timeout(cfg, lmtp, "rcpt_timeout");
    o.data_init_timeout = remote_timeout(cfg, lmtp, "data_init_timeout");
    o.data_xfer_timeout = remote_timeout(cfg, lmtp, "data_xfer_timeout");
    o.data_done_timeout = remote_timeout(cfg, lmtp, "data_done_timeout");
    o.quit_timeout = remote_timeout(cfg, lmtp, "quit_timeout");
    o.starttls_timeout = (int)config_get_time(cfg, "smtp_starttls_timeout");
    if (lmtp) {
        /*
         * Postfix's lmtp defaults: no TLS (lmtp_tls_security_level empty), no
         * AUTH (lmtp_sasl_auth_enable = no); the peer is our own mail store.
         */
        o.lmtp = 1;
        o.tls = NULL;
        o.level = TLS_LEVEL_NONE;
        o.wrappermode = 0;
        o.no_starttls = 1;
        o.match_name = a->host;
        o.match_names = NULL;
        o.helo_name = config_get(cfg, "lmtp_lhlo_name");
    }
    j->c = smtp_client_connect(&o, (struct sockaddr *)&ss, len, label, remote_ready, j);
    free(label);
}

/* ---- Finding the servers ---- */

static void remote_dns_addr_cb(void *arg, const struct dns_answer *ans);

/* The resolver for MX, address and TLSA lookups: the validating one for DANE (never LMTP). */
static struct dns *remote_job_dns(struct remote_job *j)
{
    if (j->gen->dane_dns && j->route.kind != ROUTE_LMTP)
        return j->gen->dane_dns;
    return remote_dns(j->req->srv, j->gen->cfg);
}

/*
 * Whether TLSA records matter to this next hop: not when its
 * smtp_tls_policy_maps entry names a level other than dane (a broken entry
 * or table defers at connect time, so it asks, as the global dane does).
 */
static int remote_policy_wants_tlsa(struct remote_job *j)
{
    return remote_job_tls_policy(j) != ROUTE_TLS_FOUND || j->policy.level == TLS_LEVEL_DANE;
}

static void remote_resolve_host(struct remote_job *j)
{
    struct remote_host *h = &j->hosts[j->next_host];
    struct dns *dns = remote_job_dns(j);
    if (!j->aaaa_phase) {
        h->first_addr = j->naddrs;
        h->level = TLS_LEVEL_MAY;
    }
    if (!dns) {
        remote_set_error(j, "4.4.3", "no DNS resolver available", 0);
        j->next_host = j->nhosts;
        remote_job_try_next(j);
        return;
    }
    j->q = dns_query(dns, h->name, j->aaaa_phase ? DNS_T_AAAA : DNS_T_A, remote_dns_addr_cb, j);
}

/* The host's addresses (and TLSA records) are known: on to the next address. */
static void remote_host_done(struct remote_job *j, enum dns_status last)
{
    struct remote_host *h = &j->hosts[j->next_host];
    h->resolved = 1;
    j->next_host++;
    if (j->next_addr >= j->naddrs && last != DNS_TEMPFAIL && !j->last_error) {
        struct buf why = BUF_INIT;
        buf_printf(&why,
                   "Host or domain name not found. Name service error for name=%s "
                   "type=A: Host not found",
                   h->name);
        /* The recipient's own domain with no address at all is permanent; a configured next hop is
         * the operator's to fix. */
        int perm = strcmp(j->route.source, "mx") == 0 && j->nhosts == 1 &&
                   strcmp(h->name, j->route.host) == 0;
        remote_set_error(j, perm ? "5.4.4" : "4.4.4", buf_cstr(&why), perm);
        buf_free(&why);
    }
    remote_job_try_next(j);
}

/*
 * RFC 7672 2.2: the server's TLSA RRset decides its TLS level. Secure with
 * a usable record: dane (TLS, and a record must match); secure with only
 * unusable records: encrypt; insecure or securely absent: may; a failed
 * lookup (bogus, SERVFAIL, timeout): this server is skipped and the mail
 * deferred if no other takes it, since its policy cannot be known.
 */
static void remote_dns_tlsa_cb(void *arg, const struct dns_answer *ans);

/* Asks for the TLSA RRset of h at its CNAME-expanded name first, then at its own. */
static void remote_tlsa_query(struct remote_job *j, struct remote_host *h, int at_canon)
{
    h->tlsa_at_canon = at_canon;
    char *name = xasprintf("_%d._tcp.%s", j->route.port, at_canon ? h->canon : h->name);
    j->q = dns_query(j->gen->dane_dns, name, DNS_T_TLSA, remote_dns_tlsa_cb, j);
    free(name);
}

static void remote_dns_tlsa_cb(void *arg, const struct dns_answer *ans)
{
    struct remote_job *j = arg;
    struct remote_host *h = &j->hosts[j->next_host];
    j->q = NULL;
    if (h->tlsa_at_canon && (ans->status == DNS_NXDOMAIN || ans->status == DNS_NODATA ||
                             (ans->status == DNS_OK && !ans->secure))) {
        /* RFC 7672 2.2.2: nothing at the expanded name; the MX host name as found is next. */
        remote_tlsa_query(j, h, 0);
        return;
    }
    if (ans->status == DNS_OK && ans->secure) {
        h->dane = tls_dane_from_rdata(ans->rdata, ans->rdlen, ans->count);
        if (h->tlsa_at_canon)
            h->dane->base = xstrdup(h->canon);
        h->level = h->dane->n > 0 ? TLS_LEVEL_DANE : TLS_LEVEL_ENCRYPT;
        if (h->dane->n == 0)
            log_info("%s: no usable TLSA records for _%d._tcp.%s (%zu unusable): TLS required, "
                     "certificate not checked",
                     j->req->queue_id, j->route.port, h->name, h->dane->unusable);
    } else if (ans->status == DNS_OK || ans->status == DNS_NXDOMAIN || ans->status == DNS_NODATA) {
        h->level = TLS_LEVEL_MAY;
    } else {
        struct buf why = BUF_INIT;
        buf_printf(&why, "TLSA lookup error for _%d._tcp.%s: %s", j->route.port,
                   h->tlsa_at_canon ? h->canon : h->name,
                   ans->bogus ? "DNSSEC validation failed (bogus)" : dns_status_str(ans->status));
        log_info("%s: %s; skipping host %s", j->req->queue_id, buf_cstr(&why), h->name);
        remote_set_error(j, "4.7.5", buf_cstr(&why), 0);
        buf_free(&why);
        for (size_t i = h->first_addr; i < j->naddrs; i++) {
            free(j->addrs[i].host);
            free(j->addrs[i].ip);
        }
        j->naddrs = h->first_addr;
    }
    remote_host_done(j, DNS_OK);
}

static void remote_dns_addr_cb(void *arg, const struct dns_answer *ans)
{
    struct remote_job *j = arg;
    struct remote_host *h = &j->hosts[j->next_host];
    j->q = NULL;
    if (ans->status == DNS_OK) {
        j->addrs = xrealloc(j->addrs, (j->naddrs + ans->count) * sizeof *j->addrs);
        for (size_t i = 0; i < ans->count; i++) {
            j->addrs[j->naddrs].host = xstrdup(h->name);
            j->addrs[j->naddrs].ip = xstrdup(ans->addrs[i]);
            j->addrs[j->naddrs].hidx = j->next_host;
            j->naddrs++;
        }
        if (!ans->secure)
            h->addr_insecure = 1;
        /* An alias: its TLSA records may be at the target (RFC 7672 2.2.2). */
        if (ans->secure && ans->canonname && !h->canon) {
            char *cn = xstrdup(ans->canonname);
            size_t l = strlen(cn);
            if (l > 0 && cn[l - 1] == '.')
                cn[l - 1] = '\0';
            if (*cn && !str_eq_ci(cn, h->name))
                h->canon = cn;
            else
                free(cn);
        }
    } else if (ans->status == DNS_TEMPFAIL) {
        struct buf why = BUF_INIT;
        buf_printf(&why,
                   "Host or domain name not found. Name service error for name=%s type=%s: "
                   "Host not found, try again",
                   h->name, j->aaaa_phase ? "AAAA" : "A");
        remote_set_error(j, "4.4.3", buf_cstr(&why), 0);
        buf_free(&why);
    }
    if (!j->aaaa_phase) {
        j->aaaa_phase = 1;
        remote_resolve_host(j);
        return;
    }
    j->aaaa_phase = 0;
    /*
     * RFC 7672 2.2.2: TLSA records count only for a server found securely
     * (secure MX RRset, secure addresses); for any other, dane is may.
     */
    if (j->gen->dane_dns && j->route.kind != ROUTE_LMTP && h->dane_ok && !h->addr_insecure &&
        j->naddrs > h->first_addr && remote_policy_wants_tlsa(j)) {
        remote_tlsa_query(j, h, h->canon != NULL);
        return;
    }
    remote_host_done(j, ans->status);
}

/* The next server address to try, resolving MX hosts lazily; ends the job when none is left. */
static void remote_job_try_next(struct remote_job *j)
{
    long long limit = config_get_int(j->gen->cfg, "smtp_mx_address_limit");
    if (remote_open_count(j) == 0) {
        remote_job_end(j);
        return;
    }
    if (j->next_addr < j->naddrs && (limit <= 0 || j->tried < (size_t)limit)) {
        j->tried++;
        struct remote_addr *a = &j->addrs[j->next_addr++];
        remote_connect(j, a);
        return;
    }
    if (j->next_host < j->nhosts && (limit <= 0 || j->tried < (size_t)limit)) {
        remote_resolve_host(j);
        return;
    }
    remote_job_end(j);
}

static int remote_host_cmp(const void *a, const void *b)
{
    const struct remote_host *x = a, *y = b;
    return x->pref < y->pref ? -1 : x->pref > y->pref;
}

static void remote_dns_mx_cb(void *arg, const struct dns_answer *ans)
{
    struct remote_job *j = arg;
    j->q = NULL;
    const char *name = j->route.host;
    struct buf why = BUF_INIT;
    if (ans->status == DNS_OK) {
        /* RFC 7505 3: a single MX "." means the domain accepts no mail. */
        for (size_t i = 0; i < ans->count; i++) {
            if (ans->mx[i].host[0] == '\0') {
                buf_printf(&why, "Domain %s does not accept mail (nullMX)", name);
                remote_set_error(j, "5.1.10", buf_cstr(&why), 1);
                buf_free(&why);
                remote_job_end(j);
                return;
            }
        }
        j->hosts = xcalloc(ans->count, sizeof *j->hosts);
        for (size_t i = 0; i < ans->count; i++) {
            j->hosts[i].name = xstrdup(ans->mx[i].host);
            j->hosts[i].pref = ans->mx[i].pref;
        }
        j->nhosts = ans->count;
        /* RFC 5321 5.1: random order among equal preferences, then by preference. */
        for (size_t i = j->nhosts; i > 1; i--) {
            uint32_t r;
            random_bytes(&r, sizeof r);
            size_t k = r % i;
            struct remote_host t = j->hosts[i - 1];
            j->hosts[i - 1] = j->hosts[k];
            j->hosts[k] = t;
        }
        /* Insertion sort: stable, so the shuffle survives among equals. */
        for (size_t i = 1; i < j->nhosts; i++) {
            struct remote_host t = j->hosts[i];
            size_t k = i;
            while (k > 0 && remote_host_cmp(&j->hosts[k - 1], &t) > 0) {
                j->hosts[k] = j->hosts[k - 1];
                k--;
            }
            j->hosts[k] = t;
        }
        /* RFC 7672 2.2.1: an insecure MX RRset makes its hosts' TLSA records unusable. */
        for (size_t i = 0; i < j->nhosts; i++)
            j->hosts[i].dane_ok = ans->secure;
    } else if (ans->status == DNS_NODATA) {
        /* RFC 5321 5.1: no MX, the domain itself is the host (its A/AAAA). */
        j->hosts = xcalloc(1, sizeof *j->hosts);
        j->hosts[0].name = xstrdup(name);
        j->hosts[0].dane_ok = ans->secure;
        j->nhosts = 1;
    } else if (ans->status == DNS_NXDOMAIN || ans->status == DNS_PERMFAIL) {
        buf_printf(&why,
                   "Host or domain name not found. Name service error for name=%s type=MX: "
                   "Host not found",
                   name);
        /* The recipient's domain does not exist: bounce. A configured relay: defer. */
        int perm = strcmp(j->route.source, "mx") == 0;
        remote_set_error(j, perm ? "5.1.2" : "4.4.4", buf_cstr(&why), perm);
        buf_free(&why);
        remote_job_end(j);
        return;
    } else {
        buf_printf(&why,
                   "Host or domain name not found. Name service error for name=%s type=MX: "
                   "Host not found, try again",
                   name);
        remote_set_error(j, "4.4.3", buf_cstr(&why), 0);
        buf_free(&why);
        remote_job_end(j);
        return;
    }
    buf_free(&why);
    /* RFC 8461 4.1: under a policy, only the MX hosts it names (testing: logged, kept). */
    size_t kept = 0;
    for (size_t i = 0; i < j->nhosts; i++) {
        if (j->sts && !mta_sts_mx_match(j->sts, j->hosts[i].name))
            remote_tlsrpt(j, "validation-failure", j->hosts[i].name, NULL, 0);
        if (!j->sts ||
            mta_sts_host_allowed(j->sts, j->sts_domain, j->req->queue_id, j->hosts[i].name)) {
            j->hosts[kept++] = j->hosts[i];
            continue;
        }
        free(j->hosts[i].name);
        free(j->hosts[i].canon);
    }
    j->nhosts = kept;
    if (kept == 0) {
        mta_sts_no_host_error(j->sts, j->sts_domain, &why);
        remote_set_error(j, "4.7.5", buf_cstr(&why), 0);
        buf_free(&why);
        remote_job_end(j);
        return;
    }
    remote_job_try_next(j);
}

/* With a session slot for its next hop: find the servers and start. */
static void remote_job_resolve(struct remote_job *j)
{
    if (j->route.path) {
        /* LMTP over a unix socket: one "address", named for the log as Postfix does. */
        j->addrs = xcalloc(1, sizeof *j->addrs);
        j->addrs[0].host = xstrdup(config_get(j->gen->cfg, "myhostname"));
        j->addrs[0].ip = xstrdup(j->route.host);
        j->naddrs = 1;
        remote_job_try_next(j);
        return;
    }
    if (j->route.literal) {
        j->addrs = xcalloc(1, sizeof *j->addrs);
        j->addrs[0].host = xstrdup(j->route.host);
        j->addrs[0].ip = xstrdup(j->route.host);
        j->addrs[0].hidx = SIZE_MAX; /* no name, no TLSA: dane is may */
        j->naddrs = 1;
        remote_job_try_next(j);
        return;
    }
    if (!j->route.mx) {
        j->hosts = xcalloc(1, sizeof *j->hosts);
        j->hosts[0].name = xstrdup(j->route.host);
        /* "[host]": no MX lookup; the host's own secure addresses make TLSA count. */
        j->hosts[0].dane_ok = 1;
        j->nhosts = 1;
        remote_job_try_next(j);
        return;
    }
    struct dns *dns = remote_job_dns(j);
    if (!dns) {
        remote_set_error(j, "4.4.3", "no DNS resolver available", 0);
        remote_job_end(j);
        return;
    }
    j->q = dns_query(dns, j->route.host, DNS_T_MX, remote_dns_mx_cb, j);
}

static void remote_reuse_reset(void *arg, struct smtp_client *c, int ok)
{
    struct remote_job *j = arg;
    if (ok) {
        j->sessions++;
        remote_send(j);
        return;
    }
    /* It died while idle: not the server's fault, just open a new one. */
    smtp_client_free(c);
    j->c = NULL;
    j->dest->active--; /* remote_job_run() takes the slot again */
    free(j->c_server);
    free(j->c_ip);
    j->c_server = j->c_ip = NULL;
    remote_job_run(j);
}

/* Takes a cached connection, or a slot for a new one, or waits in line. */
static void remote_job_run(struct remote_job *j)
{
    struct remote_dest *d = j->dest;
    struct remote_idle *idle = d->idle;
    /* Under an enforced MTA-STS policy only a connection that meets it is reused. */
    for (; idle && j->sts && j->sts->mode == MTA_STS_ENFORCE; idle = idle->next) {
        if (mta_sts_conn_ok(j->sts, idle->c, idle->server_name))
            break;
    }
    if (idle) {
        for (struct remote_idle **pp = &d->idle; *pp; pp = &(*pp)->next) {
            if (*pp == idle) {
                *pp = idle->next;
                break;
            }
        }
        event_free(idle->timer);
        smtp_client_watch_idle(idle->c, NULL, NULL);
        j->c = idle->c;
        j->c_server = idle->server_name; /* the job takes both strings */
        j->c_ip = idle->ip;
        free(idle);
        d->active++;
        smtp_client_reset(j->c, remote_reuse_reset, j);
        return;
    }
    long long limit = config_get_int(j->gen->cfg, "smtp_destination_concurrency_limit");
    if (limit > 0 && d->active >= limit) {
        if (d->wait_tail)
            d->wait_tail->next_wait = j;
        else
            d->wait_head = j;
        d->wait_tail = j;
        return;
    }
    d->active++;
    remote_job_resolve(j);
}

/*
 * MTA-STS (RFC 8461) for delivery by MX to the recipient's domain (not a
 * relayhost or a transport_maps next hop): the policy is looked up before
 * the job takes a slot, on every attempt.
 */
static void remote_sts_cb(void *arg, const struct mta_sts_result *r)
{
    struct remote_job *j = arg;
    if (r->policy && r->policy->mode != MTA_STS_NONE) {
        j->sts = mta_sts_policy_dup(r->policy);
        j->sts_domain = xstrdup(r->domain);
        log_info("%s: MTA-STS policy for %s applies: mode %s, id %s%s", j->req->queue_id, r->domain,
                 mta_sts_mode_name(r->policy->mode), r->id, r->cached ? " (cached)" : "");
    } else if (r->problem != MTA_STS_PROBLEM_NONE) {
        /* RFC 8460 4.3.2: a policy that could not be had is reported, with no policy in force. */
        remote_tlsrpt(j,
                      r->problem == MTA_STS_PROBLEM_WEBPKI    ? "sts-webpki-invalid"
                      : r->problem == MTA_STS_PROBLEM_INVALID ? "sts-policy-invalid"
                                                              : "sts-policy-fetch-error",
                      NULL, NULL, 0);
    }
    remote_job_run(j);
}

static void remote_job_start(struct remote_job *j)
{
    const struct config *cfg = j->gen->cfg;
    j->by_mx = j->route.kind == ROUTE_SMTP && j->route.mx && !j->route.literal &&
               strcmp(j->route.source, "mx") == 0;
    if (!j->by_mx || !config_get_bool(cfg, "smtp_mta_sts")) {
        remote_job_run(j);
        return;
    }
    struct server *srv = j->req->srv;
    mta_sts_lookup(srv->base, srv->workq, remote_dns(srv, cfg), cfg, j->route.host, remote_sts_cb,
                   j);
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
    req->data_path = xstrdup(dreq->data_path);
    req->done = done;
    req->arg = arg;
    req->nresults = dreq->nrcpts;
    req->results = xcalloc(dreq->nrcpts ? dreq->nrcpts : 1, sizeof *req->results);
    req->jobs = 1; /* held until every job is started */
    struct stat st;
    if (stat(dreq->data_path, &st) == 0)
        req->size = (unsigned long long)st.st_size;
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

int remote_routes_local(struct server *srv, const char *sender, const char *address, int cls)
{
    const struct config *cfg = srv->gen->cfg;
    /* The common case asks no table: nothing configured means the built-in Maildir. */
    const char *tm = config_get(cfg, "transport_maps");
    const char *tr =
        config_get(cfg, cls == ROUTE_CLASS_MYDEST ? "mailbox_transport" : "virtual_transport");
    if ((!tm || !*tm) && (!tr || !*tr))
        return 0;
    struct remote_gen *g = remote_current(srv);
    int agent = 1; /* a table that cannot be read: remote_deliver() defers with the reason */
    if (!g->open_error) {
        struct route r;
        struct buf err = BUF_INIT;
        if (route_decide_class(g->cfg, &g->tables, sender, address, (enum route_class)cls, &r,
                               &err) == ROUTE_FOUND) {
            agent = r.kind != ROUTE_LOCAL;
            route_clear(&r);
        }
        buf_free(&err);
    }
    remote_gen_unref(g);
    return agent;
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

int remote_destination(struct server *srv, const char *sender, const char *address, int cls,
                       struct buf *key)
{
    struct remote_gen *g = remote_current(srv);
    int session = 0;
    if (!g->open_error) {
        struct route r;
        struct buf err = BUF_INIT;
        if (route_decide_class(g->cfg, &g->tables, sender, address, (enum route_class)cls, &r,
                               &err) == ROUTE_FOUND) {
            session = remote_route_destination(&r, key);
            route_clear(&r);
        }
        buf_free(&err);
    }
    remote_gen_unref(g);
    return session;
}

void remote_flush_dead(void)
{
    for (struct remote_dest *d = remote.dests; d; d = d->next)
        d->dead_until = 0;
}
