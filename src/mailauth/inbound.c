/*
 * The inbound authentication stage: SPF and DKIM side by side, then DMARC,
 * then the Authentication-Results field and the verdict the policy keys
 * ask for. See inbound.h for when it runs.
 */
#include "mailauth/inbound.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/spf.h"
#include "smtp/msghdr.h"
#include "smtp/msghdr_from.h"

/* header.b carries this much of the signature: enough to tell signatures apart (RFC 6008). */
#define INBOUND_HEADER_B 8

void inbound_settings_load(const struct config *cfg, struct inbound_settings *set)
{
    memset(set, 0, sizeof *set);
    const char *v = config_get(cfg, "smtpd_spf_policy");
    set->spf_reject = v && strcmp(v, "reject") == 0;
    set->dkim_verify = config_get_bool(cfg, "smtpd_dkim_verify");
    v = config_get(cfg, "smtpd_dmarc_policy");
    set->dmarc_reject = v && strcmp(v, "reject") == 0;
    /* No copy below is cut: loading refuses longer values (config.h). */
    v = config_get(cfg, "authserv_id");
    str_copy(set->authserv_id, sizeof set->authserv_id, v && *v ? v : "localhost");
    v = config_get(cfg, "myhostname");
    str_copy(set->receiver, sizeof set->receiver, v && *v ? v : "localhost");
    set->dmarc_reporting = config_get_bool(cfg, "smtpd_dmarc_reporting");
    v = config_get(cfg, "data_directory");
    str_copy(set->data_dir, sizeof set->data_dir, v ? v : "");
}

int inbound_applies(int in_mynetworks, int authenticated)
{
    return !authenticated && !in_mynetworks;
}

struct inbound_check {
    struct dns *dns;
    const struct inbound_settings *set;
    inbound_cb cb;
    void *arg;
    int busy;     /* inside inbound_start: the callback must not free */
    int finished; /* cb has run */
    int waiting;  /* SPF and DKIM checks still out */
    char *ip, *helo, *mailfrom, *queue_id;
    unsigned (*random)(void *arg);
    void *random_arg;
    struct buf msg;   /* the header block without forged Authentication-Results */
    const char *body; /* the rest, in the caller's message (not copied) */
    size_t body_len;
    size_t forged;
    /* The author domains (RFC 7489 6.6.1: each is evaluated); none when From: is unusable. */
    char **from_domains;
    size_t nfrom;
    struct buf from_why;
    struct dmarc_outcome *dm; /* one per author domain evaluated so far (ndm) */
    size_t ndm;
    /* SPF */
    struct spf_check *spf;
    enum spf_result spf_result;
    char *spf_domain;
    char *spf_explanation;
    char *spf_problem;
    /* DKIM */
    struct dkim_verify *dkim;
    struct dkim_verify_result *dkim_res;
    char **dkim_b; /* b= prefixes of the DKIM-Signature fields, top first */
    size_t ndkim_b;
    /* DMARC */
    struct dmarc_check *dmarc;
};

static void check_free(struct inbound_check *c)
{
    free(c->ip);
    free(c->helo);
    free(c->mailfrom);
    free(c->queue_id);
    buf_free(&c->msg);
    for (size_t i = 0; i < c->nfrom; i++)
        free(c->from_domains[i]);
    free(c->from_domains);
    for (size_t i = 0; i < c->ndm; i++)
        dmarc_outcome_clear(&c->dm[i]);
    free(c->dm);
    buf_free(&c->from_why);
    free(c->spf_domain);
    free(c->spf_explanation);
    free(c->spf_problem);
    dkim_verify_result_free(c->dkim_res);
    for (size_t i = 0; i < c->ndkim_b; i++)
        free(c->dkim_b[i]);
    free(c->dkim_b);
    free(c);
}

void inbound_cancel(struct inbound_check *c)
{
    if (!c)
        return;
    spf_check_cancel(c->spf);
    dkim_verify_cancel(c->dkim);
    dmarc_check_cancel(c->dmarc);
    check_free(c);
}

/* ---- header.b: the start of each DKIM-Signature's b= (RFC 8601 2.7.1) ---- */

static char *sig_b_prefix(const char *f, size_t len)
{
    /* f is the field body after "DKIM-Signature:", a tag-list (RFC 6376 3.2). */
    size_t p = 0;
    while (p < len) {
        while (p < len && strchr(" \t\r\n", f[p]))
            p++;
        size_t ns = p;
        while (p < len && f[p] != '=' && f[p] != ';')
            p++;
        size_t ne = p;
        while (ne > ns && strchr(" \t\r\n", f[ne - 1]))
            ne--;
        if (p < len && f[p] == '=' && ne - ns == 1 && f[ns] == 'b') {
            struct buf b = BUF_INIT;
            for (p++; p < len && f[p] != ';' && b.len < INBOUND_HEADER_B; p++)
                if (!strchr(" \t\r\n", f[p]))
                    buf_putc(&b, f[p]);
            return buf_steal(&b);
        }
        while (p < len && f[p] != ';')
            p++;
        p++;
    }
    return NULL;
}

static void collect_sig_b(struct inbound_check *c, const char *msg, size_t len)
{
    static const char name[] = "dkim-signature";
    size_t p = 0, cap = 0;
    while (p < len) {
        const char *nl = memchr(msg + p, '\n', len - p);
        size_t le = nl ? (size_t)(nl - msg) : len;
        if (le == p || (le == p + 1 && msg[p] == '\r'))
            break;
        size_t fe = nl ? le + 1 : len;
        while (fe < len && (msg[fe] == ' ' || msg[fe] == '\t')) {
            const char *n2 = memchr(msg + fe, '\n', len - fe);
            fe = n2 ? (size_t)(n2 - msg) + 1 : len;
        }
        size_t q = p + sizeof name - 1;
        if (fe - p > sizeof name && strncasecmp(msg + p, name, sizeof name - 1) == 0) {
            while (q < fe && (msg[q] == ' ' || msg[q] == '\t'))
                q++;
            if (q < fe && msg[q] == ':') {
                if (c->ndkim_b == cap) {
                    cap = cap ? cap * 2 : 4;
                    c->dkim_b = xrealloc(c->dkim_b, cap * sizeof *c->dkim_b);
                }
                c->dkim_b[c->ndkim_b++] = sig_b_prefix(msg + q + 1, fe - q - 1);
            }
        }
        p = fe;
    }
}

/* ---- the end: header, verdict, callback ---- */

static enum dmarc_auth spf_to_dmarc(enum spf_result r)
{
    switch (r) {
    case SPF_PASS:
        return DMARC_AUTH_PASS;
    case SPF_TEMPERROR:
        return DMARC_AUTH_TEMPERROR;
    case SPF_NONE:
        return DMARC_AUTH_NONE;
    default:
        return DMARC_AUTH_FAIL;
    }
}

static enum dmarc_auth dkim_to_dmarc(enum dkim_result r)
{
    switch (r) {
    case DKIM_PASS:
        return DMARC_AUTH_PASS;
    case DKIM_TEMPERROR:
        return DMARC_AUTH_TEMPERROR;
    case DKIM_NONE:
        return DMARC_AUTH_NONE;
    default:
        return DMARC_AUTH_FAIL;
    }
}

/*
 * RFC 7489 6.6.1: with several author domains, the strictest policy among
 * those that fail is the one to apply; without a failure, a temporary
 * error under p=reject (which defers), else the first domain's outcome.
 */
static const struct dmarc_outcome *inbound_acting(const struct dmarc_outcome *dm, size_t n)
{
    const struct dmarc_outcome *pick = NULL;
    for (size_t i = 0; i < n; i++)
        if (dm[i].result == DMARC_RESULT_FAIL && (!pick || dm[i].disposition > pick->disposition))
            pick = &dm[i];
    for (size_t i = 0; i < n && !pick; i++)
        if (dm[i].result == DMARC_RESULT_TEMPERROR && dm[i].have_record &&
            dm[i].policy == DMARC_POLICY_REJECT)
            pick = &dm[i];
    return pick ? pick : &dm[0];
}

/*
 * RFC 7489 7.2: each evaluation against a record with rua= goes into the
 * aggregate report of its policy domain, with what was done (rejected:
 * the outcome that decided the rejection).
 */
static void inbound_report(struct inbound_check *c, const struct dmarc_outcome *all, size_t nall,
                           int rejected)
{
    const char *dk_domains[DKIM_MAX_SIGNATURES + 8], *dk_results[DKIM_MAX_SIGNATURES + 8];
    size_t nd = 0;
    for (size_t i = 0; c->dkim_res && i < c->dkim_res->count && nd < DKIM_MAX_SIGNATURES + 8; i++) {
        dk_domains[nd] = c->dkim_res->sigs[i].domain;
        dk_results[nd++] = dkim_result_name(c->dkim_res->sigs[i].result);
    }
    const struct dmarc_outcome *acting = inbound_acting(all, nall);
    for (size_t i = 0; i < nall; i++) {
        if (!all[i].have_record || !all[i].rua || !all[i].record_domain)
            continue;
        struct dmarc_report_event ev = {
            .source_ip = c->ip,
            .outcome = &all[i],
            .disposition = rejected && &all[i] == acting ? "reject" : "none",
            .spf_domain = c->spf_domain,
            .spf_result = spf_result_str(c->spf_result),
            .dkim_domains = dk_domains,
            .dkim_results = dk_results,
            .ndkim = nd,
        };
        dmarc_report_record(c->set->data_dir, &ev, time(NULL));
    }
}

static void finish(struct inbound_check *c, const struct dmarc_outcome *all, size_t nall)
{
    const struct dmarc_outcome *dm = inbound_acting(all, nall);
    const struct inbound_settings *set = c->set;
    struct authres *ar = authres_new(set->authserv_id);
    struct buf summary = BUF_INIT, text = BUF_INIT, comment = BUF_INIT, hdr = BUF_INIT;

    /* SPF (RFC 8601 2.7.2): smtp.mailfrom, or smtp.helo for the null sender. */
    const char *spf_word = spf_result_str(c->spf_result);
    int null_sender = !c->mailfrom[0];
    if (c->spf_problem && c->spf_result != SPF_PASS)
        buf_set(&comment, c->spf_problem);
    else
        buf_printf(&comment, "%s: %s is %s", c->spf_domain ? c->spf_domain : "?", c->ip,
                   c->spf_result == SPF_PASS ? "a permitted sender"
                   : c->spf_result == SPF_FAIL || c->spf_result == SPF_SOFTFAIL
                       ? "not a permitted sender"
                       : "neither permitted nor denied");
    authres_add(ar, "spf", spf_word, buf_cstr(&comment), NULL,
                null_sender ? "smtp.helo" : "smtp.mailfrom", null_sender ? c->helo : c->mailfrom,
                NULL);
    buf_printf(&summary, "spf=%s", spf_word);
    metrics_inbound_result("spf", spf_word);

    /* DKIM: one resinfo per signature (RFC 8601 2.7.1). */
    if (set->dkim_verify) {
        const struct dkim_verify_result *r = c->dkim_res;
        if (!r || r->count == 0) {
            authres_add(ar, "dkim", "none", NULL, NULL, NULL);
            buf_puts(&summary, " dkim=none");
            metrics_inbound_result("dkim", "none");
        }
        for (size_t i = 0; r && i < r->count; i++) {
            const struct dkim_sig_result *s = &r->sigs[i];
            const char *w = dkim_result_name(s->result);
            authres_add(ar, "dkim", w, s->testing ? "test mode" : NULL,
                        s->result != DKIM_PASS && s->reason ? s->reason : NULL, "header.d",
                        s->domain, "header.s", s->selector, "header.a", s->algorithm, "header.b",
                        i < c->ndkim_b ? c->dkim_b[i] : NULL, NULL);
            buf_printf(&summary, " dkim=%s", w);
            metrics_inbound_result("dkim", w);
        }
    }

    /*
     * DMARC (RFC 7489 11.2), one result per author domain: the policy, and
     * as dis= what was done. A message that gets this field was accepted
     * (a rejected one never does), so that is none, whatever the policy
     * asked: tag mode applies nothing, and quarantine is not ours to do.
     */
    for (size_t i = 0; i < nall; i++) {
        const struct dmarc_outcome *o = &all[i];
        const char *w = dmarc_result_str(o->result);
        buf_reset(&comment);
        if (o->have_record)
            buf_printf(&comment, "p=%s dis=none%s", dmarc_policy_str(o->policy),
                       o->sampled_out ? " pct" : "");
        authres_add(ar, "dmarc", w, comment.len ? buf_cstr(&comment) : NULL,
                    o->result == DMARC_RESULT_PERMERROR || o->result == DMARC_RESULT_TEMPERROR
                        ? o->reason
                        : NULL,
                    "header.from", o->from_domain, NULL);
        buf_printf(&summary, " dmarc=%s", w);
        metrics_inbound_result("dmarc", w);
    }
    authres_format(ar, &hdr);
    authres_free(ar);

    /* The verdict. A temporary DNS problem never makes a 5xx. */
    struct inbound_result res = {0};
    res.verdict = INBOUND_ACCEPT;
    if (set->spf_reject && c->spf_result == SPF_FAIL) {
        res.verdict = INBOUND_REJECT;
        res.code = 550;
        res.status = "5.7.23"; /* RFC 7372: SPF validation failed */
        if (c->spf_explanation && *c->spf_explanation)
            buf_printf(&text, "SPF: %s", c->spf_explanation);
        else
            buf_printf(&text, "SPF: %s does not permit %s to send mail for it",
                       c->spf_domain ? c->spf_domain : "the sender's domain", c->ip);
    } else if (set->spf_reject && c->spf_result == SPF_TEMPERROR) {
        res.verdict = INBOUND_TEMPFAIL;
        res.code = 451;
        res.status = "4.7.24"; /* RFC 7372: SPF validation error */
        buf_printf(&text, "SPF: temporary error checking %s; try again later",
                   c->spf_domain ? c->spf_domain : "the sender's domain");
    } else if (set->dmarc_reject && set->dkim_verify && dm->result == DMARC_RESULT_FAIL &&
               dm->disposition == DMARC_POLICY_REJECT) {
        res.verdict = INBOUND_REJECT;
        res.code = 550;
        res.status = "5.7.1";
        buf_printf(&text, "DMARC: the policy of %s (%s=reject) rejects this message from %s%s: %s",
                   dm->record_domain ? dm->record_domain : dm->from_domain,
                   dm->nonexistent ? "np" : "p", dm->from_domain,
                   dm->nonexistent ? ", a domain that does not exist" : "", dm->reason);
    } else if (set->dmarc_reject && set->dkim_verify && dm->result == DMARC_RESULT_TEMPERROR &&
               dm->have_record && dm->policy == DMARC_POLICY_REJECT) {
        /* The domain says p=reject, but an aligned check could not finish. */
        res.verdict = INBOUND_TEMPFAIL;
        res.code = 451;
        res.status = "4.7.1";
        buf_printf(&text, "DMARC: cannot decide the policy of %s now (%s); try again later",
                   dm->from_domain, dm->reason);
    }
    res.text = buf_cstr(&text);
    res.header = hdr.data;
    res.header_len = hdr.len;
    res.msg = c->msg.data ? c->msg.data : "";
    res.msg_len = c->msg.len;
    res.body = c->body;
    res.body_len = c->body_len;
    res.forged_removed = c->forged;
    res.summary = buf_cstr(&summary);

    if (set->dmarc_reporting)
        inbound_report(c, all, nall,
                       res.verdict == INBOUND_REJECT && dm->result == DMARC_RESULT_FAIL);

    const char *qid = c->queue_id ? c->queue_id : "NOQUEUE";
    log_info("%s: authentication: %s (dmarc: %s)%s", qid, buf_cstr(&summary), dm->reason,
             c->forged ? ", forged Authentication-Results removed" : "");
    if (c->forged)
        log_as("cleanup", "%s: removed %zu Authentication-Results field(s) claiming to be from %s",
               qid, c->forged, set->authserv_id);

    c->finished = 1;
    c->cb(c->arg, &res);
    buf_free(&summary);
    buf_free(&text);
    buf_free(&comment);
    buf_free(&hdr);
    if (!c->busy)
        check_free(c);
}

static void dmarc_next(struct inbound_check *c);

static char *inbound_dup(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void dmarc_done(void *arg, const struct dmarc_outcome *o)
{
    struct inbound_check *c = arg;
    c->dmarc = NULL;
    /* Kept past the callback: the verdict needs every author domain's outcome. */
    struct dmarc_outcome *k = &c->dm[c->ndm++];
    *k = *o;
    k->from_domain = inbound_dup(o->from_domain);
    k->org_domain = inbound_dup(o->org_domain);
    k->record_domain = inbound_dup(o->record_domain);
    k->reason = inbound_dup(o->reason ? o->reason : "");
    k->rua = inbound_dup(o->rua);
    if (c->ndm < c->nfrom) {
        dmarc_next(c);
        return;
    }
    finish(c, c->dm, c->ndm);
}

/* SPF and DKIM are in: DMARC next, for each author domain in turn. */
static void both_done(struct inbound_check *c)
{
    if (c->nfrom == 0) {
        struct dmarc_outcome o = {0};
        o.result = DMARC_RESULT_PERMERROR;
        o.reason = (char *)buf_cstr(&c->from_why);
        finish(c, &o, 1);
        return;
    }
    c->dm = xcalloc(c->nfrom, sizeof *c->dm);
    dmarc_next(c);
}

static void dmarc_next(struct inbound_check *c)
{
    struct dmarc_identifier ids[DKIM_MAX_SIGNATURES + 8];
    size_t n = 0;
    for (size_t i = 0; c->dkim_res && i < c->dkim_res->count && n < sizeof ids / sizeof ids[0];
         i++) {
        ids[n].result = dkim_to_dmarc(c->dkim_res->sigs[i].result);
        ids[n].domain = c->dkim_res->sigs[i].domain;
        n++;
    }
    struct dmarc_request req = {
        .from_domain = c->from_domains[c->ndm],
        .spf = {spf_to_dmarc(c->spf_result), c->spf_domain},
        .dkim = ids,
        .ndkim = n,
        .random = c->random,
        .random_arg = c->random_arg,
    };
    struct txt_lookup lk = txt_dns_lookup(c->dns);
    c->busy++;
    struct dmarc_check *d = dmarc_check_start(&lk, &req, dmarc_done, c);
    c->busy--;
    if (c->finished) {
        if (!c->busy)
            check_free(c);
        return;
    }
    /* NULL: it answered at once, and dmarc_done may have started the next domain's check. */
    if (d)
        c->dmarc = d;
}

static void one_done(struct inbound_check *c)
{
    if (--c->waiting == 0)
        both_done(c);
}

static void spf_done(void *arg, const struct spf_outcome *out)
{
    struct inbound_check *c = arg;
    c->spf = NULL;
    c->spf_result = out->result;
    c->spf_domain = out->domain && *out->domain ? xstrdup(out->domain) : NULL;
    c->spf_explanation = out->explanation ? xstrdup(out->explanation) : NULL;
    c->spf_problem = out->problem ? xstrdup(out->problem) : NULL;
    one_done(c);
}

static void dkim_done(void *arg, const struct dkim_verify_result *res)
{
    struct inbound_check *c = arg;
    c->dkim = NULL;
    c->dkim_res = dkim_verify_result_dup(res);
    one_done(c);
}

struct inbound_check *inbound_start(struct dns *dns, const struct inbound_settings *set,
                                    const struct inbound_request *req, inbound_cb cb, void *arg)
{
    struct inbound_check *c = xcalloc(1, sizeof *c);
    c->dns = dns;
    c->set = set;
    c->cb = cb;
    c->arg = arg;
    c->ip = xstrdup(req->client_ip ? req->client_ip : "");
    c->helo = xstrdup(req->helo ? req->helo : "");
    c->mailfrom = xstrdup(req->mailfrom ? req->mailfrom : "");
    c->queue_id = req->queue_id ? xstrdup(req->queue_id) : NULL;
    c->random = req->random;
    c->random_arg = req->random_arg;
    c->spf_result = SPF_NONE;
    c->busy = 1;

    /*
     * RFC 8601 5: fields that claim to be ours but come from outside go.
     * Only the header block is copied: the body stays where the caller
     * holds it (in memory or mapped from a file, smtpd/hold.h).
     */
    size_t hdr_len = msghdr_block_len(req->msg, req->len);
    c->forged = authres_strip(req->msg, hdr_len, set->authserv_id, &c->msg);
    c->body = req->msg + hdr_len;
    c->body_len = req->len - hdr_len;
    c->from_domains = msghdr_from_domains(req->msg, req->len, &c->nfrom, &c->from_why);

    c->waiting = 2;
    struct spf_request sreq = {
        .ip = c->ip,
        .helo = c->helo,
        .mailfrom = c->mailfrom,
        .receiver = set->receiver,
    };
    struct spf_check *s = spf_check_start(dns, &sreq, spf_done, c);
    c->spf = s; /* SPF never answers before spf_check_start() returns */
    if (set->dkim_verify) {
        struct txt_lookup lk = txt_dns_lookup(dns);
        /* DKIM does all its work on the message before returning. */
        collect_sig_b(c, req->msg, req->len);
        struct dkim_verify *v = dkim_verify_start(req->msg, req->len, req->now, &lk, dkim_done, c);
        if (!c->finished && v)
            c->dkim = v;
    } else {
        one_done(c);
    }
    c->busy = 0;
    if (c->finished) {
        check_free(c);
        return NULL;
    }
    return c;
}
