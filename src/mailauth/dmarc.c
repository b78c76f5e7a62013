/*
 * DMARC (RFC 7489): policy discovery with the public suffix list (libpsl),
 * alignment and the policy to apply. The record parser is dmarc_record.c;
 * the From: parser smtp/msghdr_from.c. See dmarc.h.
 */
#include "mailauth/dmarc.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpsl.h>

#include "dns/dns.h"
#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* A DNS name is at most 253 octets in text form (RFC 1035 2.3.4). */
#define DMARC_NAME_MAX 253
/* TXT records of one name we look at; more is either abuse or a mistake. */
#define DMARC_MAX_TXT 32

const char *dmarc_policy_str(enum dmarc_policy p)
{
    switch (p) {
    case DMARC_POLICY_QUARANTINE:
        return "quarantine";
    case DMARC_POLICY_REJECT:
        return "reject";
    default:
        return "none";
    }
}

const char *dmarc_result_str(enum dmarc_result r)
{
    switch (r) {
    case DMARC_RESULT_PASS:
        return "pass";
    case DMARC_RESULT_FAIL:
        return "fail";
    case DMARC_RESULT_TEMPERROR:
        return "temperror";
    case DMARC_RESULT_PERMERROR:
        return "permerror";
    default:
        return "none";
    }
}

/* ---- domains ------------------------------------------------------------------ */

static const psl_ctx_t *psl_ctx;
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

/*
 * Debian's publicsuffix package keeps the list current; psl_latest() reads
 * it (or libpsl's built-in copy when that is newer or the file is missing).
 */
static void psl_load(void)
{
    psl_ctx = psl_latest(NULL);
    if (!psl_ctx)
        psl_ctx = psl_builtin();
}

/* Lower case copy without a trailing dot. */
static char *domain_norm(const char *d)
{
    char *s = xstrdup(d ? d : "");
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        s[n - 1] = '\0';
    str_lower(s);
    return s;
}

char *dmarc_org_domain(const char *domain)
{
    char *d = domain_norm(domain);
    pthread_once(&psl_once, psl_load);
    const char *reg = psl_ctx ? psl_registrable_domain(psl_ctx, d) : NULL;
    if (reg && reg != d) {
        char *o = xstrdup(reg);
        free(d);
        return o;
    }
    return d;
}

int dmarc_aligned(const char *from_domain, const char *id_domain, enum dmarc_align mode)
{
    if (!from_domain || !id_domain || !*from_domain || !*id_domain)
        return 0;
    char *a = domain_norm(from_domain), *b = domain_norm(id_domain);
    int ok;
    if (mode == DMARC_ALIGN_STRICT) {
        ok = strcmp(a, b) == 0;
    } else {
        char *oa = dmarc_org_domain(a), *ob = dmarc_org_domain(b);
        ok = strcmp(oa, ob) == 0;
        free(oa);
        free(ob);
    }
    free(a);
    free(b);
    return ok;
}

/* ---- evaluation (RFC 7489 6.6) ------------------------------------------------ */

struct dmarc_check {
    struct txt_lookup lk;
    dmarc_cb cb;
    void *arg;
    void *handle; /* the pending lookup */
    int busy;     /* inside a call that must not free the check */
    int finished; /* cb has run */
    int at_org;   /* the pending lookup is the organisational domain's */
    /* the request, copied */
    char *from;
    char *org;
    enum dmarc_auth spf_result;
    char *spf_domain;
    struct dmarc_identifier *dkim;
    size_t ndkim;
    unsigned (*random)(void *arg);
    void *random_arg;
    /* RFC 9091: the organisational record kept while asking whether From exists */
    struct dmarc_record rec;
    int have_rec;
    char *rec_domain;
    int nonexistent;
};

void dmarc_outcome_clear(struct dmarc_outcome *out)
{
    if (!out)
        return;
    free(out->from_domain);
    free(out->org_domain);
    free(out->record_domain);
    free(out->reason);
    free(out->rua);
    memset(out, 0, sizeof *out);
}

static void check_free(struct dmarc_check *c)
{
    if (c->have_rec)
        dmarc_record_clear(&c->rec);
    free(c->rec_domain);
    free(c->from);
    free(c->org);
    free(c->spf_domain);
    for (size_t i = 0; i < c->ndkim; i++)
        free((char *)c->dkim[i].domain);
    free(c->dkim);
    free(c);
}

/* Delivers the outcome; frees the check unless a caller up the stack still holds it. */
static void finish(struct dmarc_check *c, enum dmarc_result r, const char *record_domain,
                   struct buf *reason, struct dmarc_outcome *partial)
{
    struct dmarc_outcome o = {0};
    if (partial)
        o = *partial;
    o.result = r;
    o.from_domain = c->from;
    o.org_domain = c->org;
    o.record_domain = (char *)record_domain;
    o.reason = (char *)buf_cstr(reason);
    c->finished = 1;
    c->handle = NULL;
    c->cb(c->arg, &o);
    if (c->busy == 0)
        check_free(c);
}

static unsigned default_random(void *arg)
{
    return arc4random_uniform(100);
}

/* Evaluates the message against one parsed record found at record_domain. */
static void evaluate(struct dmarc_check *c, const struct dmarc_record *rec,
                     const char *record_domain)
{
    struct dmarc_outcome o = {0};
    struct buf why = BUF_INIT;
    o.have_record = 1;
    o.pct = rec->pct;
    o.p = rec->p;
    o.sp = rec->sp;
    o.adkim = rec->adkim;
    o.aspf = rec->aspf;
    o.rua = rec->rua; /* the record lives until finish() returns */
    /* sp= applies to subdomains whose policy came from the organisational domain (6.3). */
    int via_org = strcmp(record_domain, c->from) != 0;
    o.policy = via_org ? rec->sp : rec->p;
    if (via_org && c->nonexistent) {
        o.policy = rec->np;
        o.nonexistent = 1;
    }

    int spf_temp = 0, dkim_temp = 0;
    const char *dkim_unaligned = NULL;
    if (c->spf_domain && dmarc_aligned(c->from, c->spf_domain, rec->aspf)) {
        o.spf_aligned = c->spf_result == DMARC_AUTH_PASS;
        spf_temp = c->spf_result == DMARC_AUTH_TEMPERROR;
    }
    const char *dkim_pass_domain = NULL;
    for (size_t i = 0; i < c->ndkim; i++) {
        const struct dmarc_identifier *id = &c->dkim[i];
        int al = dmarc_aligned(c->from, id->domain, rec->adkim);
        if (al && id->result == DMARC_AUTH_PASS && !o.dkim_aligned) {
            o.dkim_aligned = 1;
            dkim_pass_domain = id->domain;
        } else if (al && id->result == DMARC_AUTH_TEMPERROR) {
            dkim_temp = 1;
        } else if (!al && id->result == DMARC_AUTH_PASS && !dkim_unaligned) {
            dkim_unaligned = id->domain;
        }
    }

    enum dmarc_result r;
    if (o.spf_aligned || o.dkim_aligned) {
        r = DMARC_RESULT_PASS;
        if (o.dkim_aligned)
            buf_printf(&why, "DKIM signature of %s is aligned with %s", dkim_pass_domain, c->from);
        else
            buf_printf(&why, "SPF passed for %s, aligned with %s", c->spf_domain, c->from);
    } else {
        /* Say what failed, for the log and the reply (and so the sender can fix it). */
        if (c->spf_result == DMARC_AUTH_PASS)
            buf_printf(&why, "SPF passed for %s, which is not aligned with %s",
                       c->spf_domain ? c->spf_domain : "?", c->from);
        else if (spf_temp)
            buf_printf(&why, "SPF had a temporary error for %s", c->spf_domain);
        else
            buf_printf(&why, "SPF did not pass%s%s", c->spf_domain ? " for " : "",
                       c->spf_domain ? c->spf_domain : "");
        if (dkim_temp)
            buf_puts(&why, "; a DKIM key lookup had a temporary error");
        else if (dkim_unaligned)
            buf_printf(&why, "; the valid DKIM signature is of %s, not aligned with %s",
                       dkim_unaligned, c->from);
        else if (c->ndkim)
            buf_puts(&why, "; no DKIM signature verified");
        else
            buf_puts(&why, "; the message has no DKIM signature");
        /*
         * An aligned check that could not finish might have passed: that
         * is not a failure the domain owner asked us to act on (6.6.2).
         */
        r = spf_temp || dkim_temp ? DMARC_RESULT_TEMPERROR : DMARC_RESULT_FAIL;
    }
    if (r == DMARC_RESULT_FAIL && o.policy != DMARC_POLICY_NONE) {
        o.disposition = o.policy;
        /* 6.6.4: messages not selected by pct= get the next milder policy. */
        if (rec->pct < 100) {
            unsigned draw = c->random ? c->random(c->random_arg) : default_random(NULL);
            if (draw >= (unsigned)rec->pct) {
                o.sampled_out = 1;
                o.disposition =
                    o.policy == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
            }
        }
    }
    finish(c, r, record_domain, &why, &o);
    buf_free(&why);
}

static void lookup_at(struct dmarc_check *c, const char *domain, int at_org);

static void exists_done(void *arg, int exists)
{
    struct dmarc_check *c = arg;
    c->handle = NULL;
    c->nonexistent = !exists;
    evaluate(c, &c->rec, c->rec_domain);
}

static void txt_done(void *arg, enum txt_status st, const char *const *txt, size_t ntxt)
{
    struct dmarc_check *c = arg;
    c->handle = NULL;
    const char *domain = c->at_org ? c->org : c->from;
    struct buf why = BUF_INIT;
    if (st == TXT_TEMPFAIL || st == TXT_MALFORMED) {
        buf_printf(&why, "temporary DNS error looking up _dmarc.%s", domain);
        finish(c, DMARC_RESULT_TEMPERROR, NULL, &why, NULL);
        buf_free(&why);
        return;
    }
    /* 6.6.3 step 4: records that do not start with v=DMARC1 are discarded. */
    size_t ndmarc = 0, pick = 0;
    if (st == TXT_FOUND) {
        for (size_t i = 0; i < ntxt && i < DMARC_MAX_TXT; i++) {
            struct dmarc_record rec;
            enum dmarc_parse_status ps =
                dmarc_record_parse(txt[i] ? txt[i] : "", txt[i] ? strlen(txt[i]) : 0, &rec, NULL);
            dmarc_record_clear(&rec);
            if (ps != DMARC_PARSE_NOT_DMARC) {
                if (ndmarc == 0)
                    pick = i;
                ndmarc++;
            }
        }
    }
    if (ndmarc == 0) {
        /* 6.6.3 step 3: no record at the From domain: ask its organisational domain. */
        if (!c->at_org && strcmp(c->from, c->org) != 0) {
            buf_free(&why);
            lookup_at(c, c->org, 1);
            return;
        }
        buf_printf(&why, "no DMARC record for %s", c->from);
        finish(c, DMARC_RESULT_NONE, NULL, &why, NULL);
        buf_free(&why);
        return;
    }
    if (ndmarc > 1) {
        /* 6.6.3 step 5: more than one record: no DMARC processing. */
        buf_printf(&why, "more than one DMARC record at _dmarc.%s", domain);
        finish(c, DMARC_RESULT_NONE, NULL, &why, NULL);
        buf_free(&why);
        return;
    }
    struct dmarc_record rec;
    struct buf perr = BUF_INIT;
    enum dmarc_parse_status ps = dmarc_record_parse(txt[pick], strlen(txt[pick]), &rec, &perr);
    if (ps == DMARC_PARSE_INVALID) {
        buf_printf(&why, "unusable DMARC record at _dmarc.%s: %s", domain, buf_cstr(&perr));
        struct dmarc_outcome o = {0};
        char *rd = xstrdup(domain);
        finish(c, DMARC_RESULT_PERMERROR, rd, &why, &o);
        free(rd);
    } else if (c->at_org && rec.have_np && rec.np != rec.sp && c->lk.exists) {
        /* RFC 9091 4: np= only for a From domain that does not exist: ask first. */
        c->rec = rec;
        c->have_rec = 1;
        c->rec_domain = xstrdup(domain);
        buf_free(&perr);
        buf_free(&why);
        c->busy++;
        void *h = c->lk.exists(c->lk.arg, c->from, exists_done, c);
        c->busy--;
        if (c->finished) {
            if (c->busy == 0)
                check_free(c);
            return;
        }
        if (c->have_rec && c->handle == NULL)
            c->handle = h;
        return;
    } else {
        char *rd = xstrdup(domain);
        evaluate(c, &rec, rd);
        free(rd);
    }
    buf_free(&perr);
    buf_free(&why);
    dmarc_record_clear(&rec);
}

static void lookup_at(struct dmarc_check *c, const char *domain, int at_org)
{
    char name[DMARC_NAME_MAX + 16];
    c->at_org = at_org;
    if (strlen(domain) + 7 > DMARC_NAME_MAX) {
        struct buf why = BUF_INIT;
        buf_puts(&why, "the From domain is too long for a DMARC lookup");
        finish(c, DMARC_RESULT_NONE, NULL, &why, NULL);
        buf_free(&why);
        return;
    }
    snprintf(name, sizeof name, "_dmarc.%s", domain);
    c->busy++;
    void *h = c->lk.lookup(c->lk.arg, name, txt_done, c);
    c->busy--;
    if (c->finished) {
        if (c->busy == 0)
            check_free(c);
        return;
    }
    if (c->handle == NULL && !c->finished)
        c->handle = h;
}

struct dmarc_check *dmarc_check_start(const struct txt_lookup *lk, const struct dmarc_request *req,
                                      dmarc_cb cb, void *arg)
{
    struct dmarc_check *c = xcalloc(1, sizeof *c);
    c->lk = *lk;
    c->cb = cb;
    c->arg = arg;
    c->from = domain_norm(req->from_domain);
    c->spf_result = req->spf.result;
    c->spf_domain = req->spf.domain && *req->spf.domain ? domain_norm(req->spf.domain) : NULL;
    c->ndkim = req->ndkim;
    c->dkim = xcalloc(req->ndkim ? req->ndkim : 1, sizeof *c->dkim);
    for (size_t i = 0; i < req->ndkim; i++) {
        c->dkim[i].result = req->dkim[i].result;
        c->dkim[i].domain = domain_norm(req->dkim[i].domain);
    }
    c->random = req->random;
    c->random_arg = req->random_arg;
    c->busy = 1;
    if (!dnsname_ok(c->from, strlen(c->from), DNSNAME_UNDERSCORE | DNSNAME_UTF8)) {
        c->org = xstrdup(c->from);
        struct buf why = BUF_INIT;
        buf_puts(&why, "no usable From: domain");
        finish(c, DMARC_RESULT_PERMERROR, NULL, &why, NULL);
        buf_free(&why);
    } else {
        c->org = dmarc_org_domain(c->from);
        lookup_at(c, c->from, 0);
    }
    c->busy = 0;
    if (c->finished) {
        check_free(c);
        return NULL;
    }
    return c;
}

void dmarc_check_cancel(struct dmarc_check *c)
{
    if (!c)
        return;
    if (c->handle && c->lk.cancel)
        c->lk.cancel(c->lk.arg, c->handle);
    check_free(c);
}

/* ---- synchronous wrapper --------------------------------------------------------- */

struct sync_state {
    int done;
    struct dmarc_outcome *out;
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void sync_cb(void *arg, const struct dmarc_outcome *o)
{
    struct sync_state *st = arg;
    *st->out = *o;
    st->out->from_domain = dup_or_null(o->from_domain);
    st->out->org_domain = dup_or_null(o->org_domain);
    st->out->record_domain = dup_or_null(o->record_domain);
    st->out->reason = xstrdup(o->reason ? o->reason : "");
    st->out->rua = dup_or_null(o->rua);
    st->done = 1;
}

int dmarc_check_sync(const char *resolver, const struct dmarc_request *req,
                     struct dmarc_outcome *out, struct buf *err)
{
    memset(out, 0, sizeof *out);
    struct event_base *base = event_base_new();
    if (!base) {
        buf_set(err, "cannot create an event loop");
        return -1;
    }
    struct dns *dns = dns_new(base, resolver, err);
    if (!dns) {
        event_base_free(base);
        return -1;
    }
    struct sync_state st = {0, out};
    struct txt_lookup lk = txt_dns_lookup(dns);
    dmarc_check_start(&lk, req, sync_cb, &st);
    /* Each DNS query is bounded by the resolver's timeout, so this ends. */
    while (!st.done)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
    dns_free(dns);
    event_base_free(base);
    if (!st.done) {
        buf_set(err, "event loop failed");
        return -1;
    }
    return 0;
}
