/*
 * Remote delivery, one job (the recipients of a request that go to one next
 * hop): its results per recipient, its TLS reports (RFC 8460), and its
 * SMTP or LMTP sessions (deliver/client.c): connect, AUTH credentials, send,
 * and what a failed connection or a 4xx moves on to.
 */
#include "deliver/remote_int.h"

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
    /*
     * Postfix's delays= c is connection setup, d transmission: without a
     * session the whole attempt was connection setup, which ends now.
     */
    if (j->send_started.tv_sec)
        r->setup_done = j->send_started;
    else
        gettimeofday(&r->setup_done, NULL);
}

void remote_req_job_done(struct remote_req *req)
{
    if (--req->jobs > 0)
        return;
    delivery_done_cb done = req->done;
    void *arg = req->arg;
    struct delivery_rcpt_result *results = req->results;
    size_t n = req->nresults;
    free(req->queue_id);
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

void remote_set_error(struct remote_job *j, const char *dsn, const char *why, int permanent)
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
void remote_job_end(struct remote_job *j)
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
void remote_tlsrpt(struct remote_job *j, const char *result, const char *host, const char *ip,
                   int dane)
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

size_t remote_open_count(const struct remote_job *j)
{
    size_t n = 0;
    for (size_t k = 0; k < j->n; k++)
        n += !j->final[k];
    return n;
}

static void remote_sent(void *arg, struct smtp_client *c, int conn_ok, struct smtp_rcpt_out *out)
{
    struct remote_job *j = arg;
    if (!conn_ok && smtp_client_reuse_failed(c)) {
        /* RSET went unanswered on a cached connection: nothing was tried, no result. */
        for (size_t i = 0; i < j->msg.nrcpts; i++)
            free(out[i].reply);
        free(out);
        j->sessions--;
        remote_reuse_lost(j, c);
        return;
    }
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

/* The message for the recipients still open, into j->msg. */
static void remote_msg_build(struct remote_job *j)
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
    j->msg.data = j->req->data;
    j->msg.rcpts = j->mrcpts;
    j->msg.nrcpts = m;
    gettimeofday(&j->send_started, NULL);
}

void remote_send(struct remote_job *j)
{
    remote_msg_build(j);
    smtp_client_send(j->c, &j->msg, remote_sent, j);
}

int remote_send_reused(struct remote_job *j)
{
    remote_msg_build(j);
    if (!smtp_client_send_reused(j->c, &j->msg, remote_sent, j))
        return 0;
    j->sessions++;
    return 1;
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
enum route_tls_result remote_job_tls_policy(struct remote_job *j)
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

void remote_connect(struct remote_job *j, const struct remote_addr *a)
{
    const struct config *cfg = j->gen->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    int lmtp = j->route.kind == ROUTE_LMTP;
    memset(&j->send_started, 0, sizeof j->send_started); /* a new connection's setup begins */
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
