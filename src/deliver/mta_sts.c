/*
 * MTA-STS policy discovery and cache (RFC 8461 3, 5.1) for the delivery
 * agent: asks the _mta-sts TXT record on every lookup, fetches the policy
 * when its id is new (one fetch per domain at a time, later lookups wait for
 * it), keeps policies in memory and in $data_directory/mta-sts/DOMAIN so
 * they survive restarts, and falls back to the cached policy when DNS or
 * the HTTPS server fails. All on the event loop; cache files are written on
 * the work queue.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/mta_sts.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"

/* Seconds allowed for one policy fetch (connect, TLS, body). */
#define MTA_STS_FETCH_TIMEOUT 20
/* A failed background refresh is not tried again sooner than this. */
#define MTA_STS_RETRY_PAUSE 300

struct mta_sts_waiter {
    mta_sts_cb cb;
    void *arg;
    struct mta_sts_waiter *next;
};

struct mta_sts_refresh;

/* What we know of one policy domain; lives as long as the worker. */
struct mta_sts_entry {
    char *domain;
    char *dir; /* the cache directory it was loaded from */
    int have;  /* a policy is cached */
    char id[33];
    time_t fetched;
    struct mta_sts_policy policy;
    time_t refresh_failed; /* when the last fetch failed (0: it did not) */
    struct mta_sts_refresh *fetching;
    struct mta_sts_entry *next;
};

/* One fetch in flight for a domain, with the lookups waiting for it. */
struct mta_sts_refresh {
    struct mta_sts_entry *e;
    char id[33];
    struct event_base *base;
    struct workq *wq;
    struct dns *dns;
    char *host; /* mta-sts.DOMAIN */
    char *cafile;
    int port;
    int aaaa;
    struct mta_sts_waiter *waiters;
};

/* One lookup waiting for its TXT answer. */
struct mta_sts_req {
    char *domain;
    char *dir;
    char *cafile;
    int port;
    struct event_base *base;
    struct workq *wq;
    struct dns *dns;
    mta_sts_cb cb;
    void *arg;
};

static struct mta_sts_entry *mta_sts_entries;

static char *mta_sts_cache_path(const char *dir, const char *domain)
{
    return xasprintf("%s/%s", dir, domain);
}

/* The entry for domain, with its cache file read on first use. */
static struct mta_sts_entry *mta_sts_entry_get(const char *dir, const char *domain)
{
    for (struct mta_sts_entry *e = mta_sts_entries; e; e = e->next)
        if (str_eq_ci(e->domain, domain) && strcmp(e->dir, dir) == 0)
            return e;
    struct mta_sts_entry *e = xcalloc(1, sizeof *e);
    e->domain = xstrdup(domain);
    str_lower(e->domain);
    e->dir = xstrdup(dir);
    e->next = mta_sts_entries;
    mta_sts_entries = e;
    char *path = mta_sts_cache_path(dir, e->domain);
    struct buf text = BUF_INIT;
    /* A small local file, read once per domain per worker. */
    if (read_file(path, &text, MTA_STS_BODY_LIMIT + 128) == 0) {
        const char *body;
        size_t blen;
        if (mta_sts_cache_parse(text.data, text.len, e->id, &e->fetched, &e->policy, &body,
                                &blen) == 0)
            e->have = 1;
        else
            log_warning("MTA-STS: ignoring unreadable policy cache file %s", path);
    }
    buf_free(&text);
    free(path);
    return e;
}

static void mta_sts_entry_forget(struct mta_sts_entry *e, const char *why)
{
    if (!e->have)
        return;
    log_info("MTA-STS: cached policy for %s (id %s) %s", e->domain, e->id, why);
    mta_sts_policy_clear(&e->policy);
    e->have = 0;
    e->id[0] = '\0';
    char *path = mta_sts_cache_path(e->dir, e->domain);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warning("MTA-STS: cannot remove %s: %s", path, strerror(errno));
    free(path);
}

/* ---- Durable cache writes on the work queue ---- */

struct mta_sts_write {
    char *dir;
    char *path;
    struct buf data;
    int rc, err;
};

static void mta_sts_write_work(void *arg)
{
    struct mta_sts_write *w = arg;
    w->rc = mkdir_p(w->dir, 0700) == 0 ? write_file_atomic(w->path, w->data.data, w->data.len, 0600)
                                       : -1;
    w->err = errno;
}

static void mta_sts_write_done(void *arg)
{
    struct mta_sts_write *w = arg;
    if (w->rc < 0)
        log_warning("MTA-STS: cannot write the policy cache %s: %s", w->path, strerror(w->err));
    free(w->dir);
    free(w->path);
    buf_free(&w->data);
    free(w);
}

static void mta_sts_cache_store(struct workq *wq, struct mta_sts_entry *e, const char *body,
                                size_t len)
{
    struct mta_sts_write *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(e->dir);
    w->path = mta_sts_cache_path(e->dir, e->domain);
    buf_printf(&w->data, "id: %s\nfetched: %lld\n\n", e->id, (long long)e->fetched);
    buf_append(&w->data, body, len);
    workq_submit(wq, mta_sts_write_work, mta_sts_write_done, w);
}

/* ---- Answers ---- */

static void mta_sts_answer(struct mta_sts_entry *e, mta_sts_cb cb, void *arg, int cached,
                           enum mta_sts_problem problem, const char *why)
{
    struct mta_sts_result r = {0};
    r.domain = e->domain;
    r.policy = e->have ? &e->policy : NULL;
    r.id = e->have ? e->id : NULL;
    r.cached = cached;
    r.problem = problem;
    r.why = why;
    cb(arg, &r);
}

/* ---- The fetch ---- */

static void mta_sts_refresh_done(struct mta_sts_refresh *rf, enum mta_sts_problem problem,
                                 const char *why)
{
    struct mta_sts_entry *e = rf->e;
    e->fetching = NULL;
    e->refresh_failed = problem != MTA_STS_PROBLEM_NONE ? time(NULL) : 0;
    if (problem != MTA_STS_PROBLEM_NONE)
        log_info("MTA-STS: policy fetch for %s failed: %s%s", e->domain, why,
                 e->have ? "; the cached policy stays in force" : "");
    struct mta_sts_waiter *w = rf->waiters;
    while (w) {
        struct mta_sts_waiter *next = w->next;
        mta_sts_answer(e, w->cb, w->arg, problem != MTA_STS_PROBLEM_NONE, problem, why);
        free(w);
        w = next;
    }
    free(rf->host);
    free(rf->cafile);
    free(rf);
}

static void mta_sts_fetched(void *arg, enum mta_sts_fetch_fail fail, struct buf *body,
                            const char *why)
{
    struct mta_sts_refresh *rf = arg;
    struct mta_sts_entry *e = rf->e;
    if (fail != MTA_STS_FETCH_OK) {
        mta_sts_refresh_done(
            rf, fail == MTA_STS_FETCH_WEBPKI ? MTA_STS_PROBLEM_WEBPKI : MTA_STS_PROBLEM_FETCH, why);
        return;
    }
    struct mta_sts_policy p;
    struct buf err = BUF_INIT;
    if (mta_sts_policy_parse(body->data ? body->data : "", body->len, &p, &err) < 0) {
        struct buf msg = BUF_INIT;
        buf_printf(&msg, "invalid policy from https://%s/.well-known/mta-sts.txt: %s", rf->host,
                   buf_cstr(&err));
        mta_sts_refresh_done(rf, MTA_STS_PROBLEM_INVALID, buf_cstr(&msg));
        buf_free(&msg);
        buf_free(&err);
        return;
    }
    buf_free(&err);
    mta_sts_policy_clear(&e->policy);
    e->policy = p;
    e->have = 1;
    str_copy(e->id, sizeof e->id, rf->id);
    e->fetched = time(NULL);
    log_info("MTA-STS: fetched policy for %s: id %s, mode %s, max_age %ld", e->domain, e->id,
             mta_sts_mode_name(p.mode), p.max_age);
    mta_sts_cache_store(rf->wq, e, body->data, body->len);
    mta_sts_refresh_done(rf, MTA_STS_PROBLEM_NONE, NULL);
}

static void mta_sts_refresh_addr_cb(void *arg, const struct dns_answer *ans)
{
    struct mta_sts_refresh *rf = arg;
    if (ans->status == DNS_OK && ans->count > 0) {
        mta_sts_fetch(rf->base, rf->host, ans->addrs[0], rf->port, rf->cafile,
                      MTA_STS_FETCH_TIMEOUT, mta_sts_fetched, rf);
        return;
    }
    if (!rf->aaaa && ans->status != DNS_TEMPFAIL) {
        rf->aaaa = 1;
        dns_query(rf->dns, rf->host, DNS_T_AAAA, mta_sts_refresh_addr_cb, rf);
        return;
    }
    struct buf why = BUF_INIT;
    buf_printf(&why, "no address for %s (%s)", rf->host, dns_status_str(ans->status));
    mta_sts_refresh_done(rf, MTA_STS_PROBLEM_FETCH, buf_cstr(&why));
    buf_free(&why);
}

/* Starts a fetch of e's policy for TXT id, or joins the one in flight; cb may be NULL. */
static void mta_sts_refresh_start(struct mta_sts_entry *e, const struct mta_sts_req *q,
                                  const char *id, mta_sts_cb cb, void *arg)
{
    struct mta_sts_refresh *rf = e->fetching;
    if (!rf) {
        rf = xcalloc(1, sizeof *rf);
        rf->e = e;
        str_copy(rf->id, sizeof rf->id, id);
        rf->base = q->base;
        rf->wq = q->wq;
        rf->dns = q->dns;
        rf->host = xasprintf("mta-sts.%s", e->domain);
        rf->cafile = q->cafile ? xstrdup(q->cafile) : NULL;
        rf->port = q->port;
        e->fetching = rf;
        dns_query(q->dns, rf->host, DNS_T_A, mta_sts_refresh_addr_cb, rf);
    }
    if (cb) {
        struct mta_sts_waiter *w = xcalloc(1, sizeof *w);
        w->cb = cb;
        w->arg = arg;
        w->next = rf->waiters;
        rf->waiters = w;
    }
}

/* ---- The lookup ---- */

static void mta_sts_req_free(struct mta_sts_req *q)
{
    free(q->domain);
    free(q->dir);
    free(q->cafile);
    free(q);
}

static void mta_sts_txt_cb(void *arg, const struct dns_answer *ans)
{
    struct mta_sts_req *q = arg;
    struct mta_sts_entry *e = mta_sts_entry_get(q->dir, q->domain);
    time_t now = time(NULL);
    if (e->have && now >= e->fetched + e->policy.max_age)
        mta_sts_entry_forget(e, "expired (max_age)");
    char id[33];
    int have_txt = ans->status == DNS_OK && mta_sts_txt_id(ans->txt, ans->count, id) == 0;
    if (have_txt && (!e->have || strcmp(e->id, id) != 0)) {
        /* RFC 8461 5.1: a new id means the policy changed: fetch it before delivering. */
        mta_sts_refresh_start(e, q, id, q->cb, q->arg);
        mta_sts_req_free(q);
        return;
    }
    /*
     * RFC 8461 5.1: without a live TXT record (none, or DNS failing) a
     * cached policy still applies until it expires. Past half its life,
     * the policy is fetched again in the background.
     */
    if (have_txt && e->have && !e->fetching && now - e->fetched > e->policy.max_age / 2 &&
        now - e->refresh_failed >= MTA_STS_RETRY_PAUSE)
        mta_sts_refresh_start(e, q, id, NULL, NULL);
    mta_sts_answer(e, q->cb, q->arg, 1, MTA_STS_PROBLEM_NONE, NULL);
    mta_sts_req_free(q);
}

static void mta_sts_no_domain(evutil_socket_t fd, short what, void *arg)
{
    struct mta_sts_req *q = arg;
    struct mta_sts_result r = {0};
    r.domain = q->domain;
    q->cb(q->arg, &r);
    mta_sts_req_free(q);
}

void mta_sts_lookup(struct event_base *base, struct workq *wq, struct dns *dns,
                    const struct config *cfg, const char *domain, mta_sts_cb cb, void *arg)
{
    struct mta_sts_req *q = xcalloc(1, sizeof *q);
    q->domain = xstrdup(domain);
    str_lower(q->domain);
    q->dir = xasprintf("%s/mta-sts", config_get(cfg, "data_directory"));
    q->cafile = xstrdup(config_get(cfg, "smtp_tls_CAfile"));
    q->port = (int)config_get_int(cfg, "smtp_mta_sts_port");
    q->base = base;
    q->wq = wq;
    q->dns = dns;
    q->cb = cb;
    q->arg = arg;
    if (!mta_sts_domain_ok(q->domain) || !dns) {
        /* Not a name a policy can be published for (or no resolver): no policy. */
        event_base_once(base, -1, EV_TIMEOUT, mta_sts_no_domain, q, &(struct timeval){0, 0});
        return;
    }
    char *name = xasprintf("_mta-sts.%s", q->domain);
    dns_query(dns, name, DNS_T_TXT, mta_sts_txt_cb, q);
    free(name);
}
