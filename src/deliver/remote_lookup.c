/*
 * Remote delivery, finding a job's servers: MX by preference with random
 * order among equals, A/AAAA fallback, null MX (RFC 7505), the TLSA lookups
 * of DANE (RFC 7672), the MTA-STS policy (RFC 8461), and running the job
 * over the servers found, reusing an idle connection to the hop first.
 */
#include "deliver/remote_int.h"

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
void remote_job_try_next(struct remote_job *j)
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
    remote_reuse_lost(j, c);
}

void remote_reuse_lost(struct remote_job *j, struct smtp_client *c)
{
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
void remote_job_run(struct remote_job *j)
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
        if (!remote_send_reused(j))
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

void remote_job_start(struct remote_job *j)
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
