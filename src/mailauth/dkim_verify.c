/*
 * DKIM verification (RFC 6376 6, RFC 8301, RFC 8463). All work on the
 * message is done up front (tag checks, body hash, header hash input); then
 * one key lookup per signature, and each answer settles that signature.
 * Results are RFC 8601 words with a reason.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "lib/base64.h"
#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

struct vsig {
    struct dkim_verify *v;
    struct dkim_sig_result r;
    int settled;     /* r.result is final; no lookup */
    int ed25519;     /* a= names an Ed25519 key */
    int bh_ok;       /* the body hash matched */
    char *idomain;   /* domain part of i= */
    struct buf data; /* header hash input */
    struct buf sig;  /* decoded b= */
    char *dnsname;
    void *handle; /* the pending lookup */
};

struct dkim_verify {
    struct vsig *sigs;
    size_t n;
    size_t outstanding;
    int starting;
    struct txt_lookup lk;
    dkim_verify_done_fn done;
    void *arg;
};

const char *dkim_result_name(enum dkim_result r)
{
    switch (r) {
    case DKIM_NONE:
        return "none";
    case DKIM_PASS:
        return "pass";
    case DKIM_FAIL:
        return "fail";
    case DKIM_NEUTRAL:
        return "neutral";
    case DKIM_POLICY:
        return "policy";
    case DKIM_TEMPERROR:
        return "temperror";
    case DKIM_PERMERROR:
        return "permerror";
    }
    return "permerror";
}

static void settle(struct vsig *s, enum dkim_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void settle(struct vsig *s, enum dkim_result r, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    free(s->r.reason);
    s->r.reason = buf_steal(&b);
    if (s->r.reason == NULL)
        s->r.reason = xstrdup("");
    s->r.result = r;
    s->settled = 1;
}

/* A domain name or selector: dot-separated labels of letters, digits, '-' and '_'. */
static int name_ok(const char *s)
{
    return dnsname_ok(s, strlen(s), DNSNAME_UNDERSCORE | DNSNAME_ROOT_DOT);
}

/* dkim-quoted-printable (2.11) into out; -1 on a bad escape. */
static int qp_decode(const char *s, struct buf *out)
{
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            continue;
        if (*s != '=') {
            buf_putc(out, *s);
            continue;
        }
        /* hex-octet = "=" 2(DIGIT / "A"-"F"), lower case tolerated */
        if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
            return -1;
        char hex[3] = {s[1], s[2], 0};
        buf_putc(out, (char)strtol(hex, NULL, 16));
        s += 2;
    }
    return 0;
}

/* dom is d or a subdomain of d, ignoring case. */
static int domain_within(const char *dom, const char *d)
{
    size_t a = strlen(dom), b = strlen(d);
    if (a == b)
        return strcasecmp(dom, d) == 0;
    return a > b && dom[a - b - 1] == '.' && strcasecmp(dom + a - b, d) == 0;
}

/* Digits only, at most 76 (3.5 l=, t=, x=); -1 otherwise. Huge values saturate. */
static int parse_num(const char *s, long long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 76)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (9223372036854775807LL - 9) / 10)
            v = 9223372036854775807LL / 2; /* beyond any clock or body */
        else
            v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int list_has(const char *list, const char *item)
{
    char *copy = xstrdup(list);
    int hit = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":", &save); tok && !hit; tok = strtok_r(NULL, ":", &save))
        hit = strcmp(str_trim(tok), item) == 0;
    free(copy);
    return hit;
}

/* The canonical bodies, made once per canonicalization for all signatures. */
struct canon_bodies {
    struct buf body[2];
    int made[2];
};

/* SHA-256 of the first l bytes (all when l < 0) of the canonical body; -1 when l is too long. */
static int body_hash(struct canon_bodies *cb, const struct dkim_msg *m, enum dkim_canon c,
                     long long l, unsigned char out[32], size_t *clen)
{
    struct buf *b = &cb->body[c];
    if (!cb->made[c]) {
        dkim_canon_body(c, m->body ? m->body : "", m->body ? m->body_len : 0, b);
        cb->made[c] = 1;
    }
    *clen = b->len;
    if (l >= 0 && (unsigned long long)l > b->len)
        return -1;
    SHA256((const unsigned char *)(b->data ? b->data : ""), l >= 0 ? (size_t)l : b->len, out);
    return 0;
}

/* Checks one signature's tags (6.1.1) and prepares what the key will check. */
static void prepare(struct vsig *s, const struct dkim_msg *m, const struct dkim_field *f,
                    time_t now, struct canon_bodies *cb)
{
    const char *colon = memchr(f->start, ':', f->len);
    const char *val = colon + 1;
    size_t vlen = f->len - (size_t)(val - f->start);
    if (vlen >= 2 && val[vlen - 2] == '\r' && val[vlen - 1] == '\n')
        vlen -= 2;
    struct dkim_tags t;
    struct buf e = BUF_INIT;
    char **names = NULL;
    size_t nn = 0;
    if (dkim_tags_parse(&t, val, vlen, &e) < 0) {
        settle(s, DKIM_PERMERROR, "signature syntax: %s", buf_cstr(&e));
        goto out;
    }
    const char *d = dkim_tags_get(&t, "d"), *sel = dkim_tags_get(&t, "s"),
               *a = dkim_tags_get(&t, "a");
    if (d) {
        free(s->r.domain);
        s->r.domain = xstrdup(d);
    }
    if (sel) {
        free(s->r.selector);
        s->r.selector = xstrdup(sel);
    }
    if (a) {
        free(s->r.algorithm);
        s->r.algorithm = xstrdup(a);
    }
    const char *v = dkim_tags_get(&t, "v");
    if (v == NULL) {
        settle(s, DKIM_PERMERROR, "signature has no v= tag");
        goto out;
    }
    if (strcmp(v, "1") != 0) {
        settle(s, DKIM_PERMERROR, "incompatible version v=%s", v);
        goto out;
    }
    static const char *const required[] = {"a", "b", "bh", "d", "h", "s"};
    for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++)
        if (dkim_tags_get(&t, required[k]) == NULL) {
            settle(s, DKIM_PERMERROR, "signature has no %s= tag", required[k]);
            goto out;
        }
    if (strcmp(a, "rsa-sha256") == 0)
        s->ed25519 = 0;
    else if (strcmp(a, "ed25519-sha256") == 0)
        s->ed25519 = 1;
    else if (strcmp(a, "rsa-sha1") == 0) {
        settle(s, DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)");
        goto out;
    } else {
        settle(s, DKIM_PERMERROR, "unsupported algorithm a=%s", a);
        goto out;
    }
    enum dkim_canon hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
    const char *c = dkim_tags_get(&t, "c");
    if (c && dkim_canon_parse(c, &hc, &bc) < 0) {
        settle(s, DKIM_PERMERROR, "unsupported canonicalization c=%s", c);
        goto out;
    }
    const char *q = dkim_tags_get(&t, "q");
    if (q && !list_has(q, "dns/txt")) {
        settle(s, DKIM_PERMERROR, "unsupported query method q=%s", q);
        goto out;
    }
    if (!name_ok(d)) {
        settle(s, DKIM_PERMERROR, "bad domain d=%s", d);
        goto out;
    }
    if (!name_ok(sel)) {
        settle(s, DKIM_PERMERROR, "bad selector s=%s", sel);
        goto out;
    }
    /* h=: must sign From (5.4). */
    const char *h = dkim_tags_get(&t, "h");
    char *hl = xstrdup(h);
    /* One name per ':' at most, plus one. */
    names = xcalloc(strlen(hl) + 2, sizeof(char *));
    int has_from = 0, bad = 0;
    for (char *p = hl, *tok; (tok = strsep(&p, ":")) != NULL;) {
        char *nm = str_trim(tok);
        if (*nm == '\0')
            bad = 1;
        for (char *x = nm; *x; x++)
            if ((unsigned char)*x <= 0x20 || (unsigned char)*x >= 0x7f)
                bad = 1;
        has_from |= strcasecmp(nm, "from") == 0;
        names[nn++] = xstrdup(nm);
    }
    free(hl);
    if (bad) {
        settle(s, DKIM_PERMERROR, "bad h= list");
        goto out;
    }
    if (!has_from) {
        settle(s, DKIM_PERMERROR, "From is not signed (h= lacks from)");
        goto out;
    }
    /* i=: defaults to @d; its domain is d or a subdomain of it (3.5). */
    const char *i = dkim_tags_get(&t, "i");
    struct buf ib = BUF_INIT;
    if (i == NULL)
        buf_printf(&ib, "@%s", d);
    else if (qp_decode(i, &ib) < 0) {
        buf_free(&ib);
        settle(s, DKIM_PERMERROR, "bad i= value");
        goto out;
    }
    free(s->r.identity);
    s->r.identity = buf_steal(&ib);
    if (s->r.identity == NULL)
        s->r.identity = xstrdup("");
    const char *at = strrchr(s->r.identity, '@');
    if (at == NULL || !domain_within(at + 1, d)) {
        settle(s, DKIM_PERMERROR, "i=%s is not within d=%s", s->r.identity, d);
        goto out;
    }
    s->idomain = xstrdup(at + 1);
    const char *l = dkim_tags_get(&t, "l");
    if (l && parse_num(l, &s->r.body_length) < 0) {
        settle(s, DKIM_PERMERROR, "bad l= value");
        goto out;
    }
    long long ts = -1, xs = -1;
    const char *tv = dkim_tags_get(&t, "t"), *xv = dkim_tags_get(&t, "x");
    if ((tv && parse_num(tv, &ts) < 0) || (xv && parse_num(xv, &xs) < 0)) {
        settle(s, DKIM_PERMERROR, "bad t= or x= value");
        goto out;
    }
    if (tv && xv && xs < ts) {
        settle(s, DKIM_PERMERROR, "x= is before t=");
        goto out;
    }
    if (xv && (long long)now > xs) {
        settle(s, DKIM_PERMERROR, "signature expired (x=%lld)", xs);
        goto out;
    }
    const char *bh = dkim_tags_get(&t, "bh"), *b = dkim_tags_get(&t, "b");
    struct buf bhd = BUF_INIT;
    if (base64_decode_buf(bh, strlen(bh), BASE64_FWS, &bhd) < 0 ||
        base64_decode_buf(b, strlen(b), BASE64_FWS, &s->sig) < 0) {
        buf_free(&bhd);
        settle(s, DKIM_PERMERROR, "bh= or b= is not base64");
        goto out;
    }
    if (s->sig.len == 0) {
        buf_free(&bhd);
        settle(s, DKIM_PERMERROR, "empty b= value");
        goto out;
    }
    unsigned char mine[32];
    size_t clen = 0;
    if (body_hash(cb, m, bc, s->r.body_length, mine, &clen) < 0) {
        buf_free(&bhd);
        settle(s, DKIM_PERMERROR, "l=%lld is longer than the body (%zu)", s->r.body_length, clen);
        goto out;
    }
    s->bh_ok = bhd.len == 32 && memcmp(bhd.data, mine, 32) == 0;
    buf_free(&bhd);
    dkim_signed_headers(m, hc, names, nn, f->start, f->len, &s->data);
    char *lname = xasprintf("%s._domainkey.%s", sel, d);
    str_lower(lname);
    s->dnsname = lname;
out:
    for (size_t k = 0; k < nn; k++)
        free(names[k]);
    free(names);
    dkim_tags_free(&t);
    buf_free(&e);
}

/* Applies the key record(s) to one signature (6.1.2, 6.1.3). */
static void with_key(struct vsig *s, enum txt_status st, const char *const *txt, size_t ntxt)
{
    if (st == TXT_TEMPFAIL) {
        settle(s, DKIM_TEMPERROR, "key lookup for %s failed; try later", s->dnsname);
        return;
    }
    if (st != TXT_FOUND || ntxt == 0) {
        settle(s, DKIM_PERMERROR, "no key for signature at %s", s->dnsname);
        return;
    }
    /* Several records at one name: the first that parses is used (3.6.2.2). */
    struct dkim_pubkey k;
    struct buf why = BUF_INIT;
    int found = 0;
    for (size_t i = 0; i < ntxt && !found; i++) {
        struct buf w = BUF_INIT;
        if (dkim_pubkey_parse(txt[i] ? txt[i] : "", txt[i] ? strlen(txt[i]) : 0, &k, &w) ==
            DKIM_KEY_OK)
            found = 1;
        else if (why.len == 0)
            buf_append(&why, w.data ? w.data : "", w.len);
        buf_free(&w);
    }
    if (!found) {
        settle(s, DKIM_PERMERROR, "%s", buf_cstr(&why));
        buf_free(&why);
        return;
    }
    buf_free(&why);
    s->r.testing = k.testing;
    if ((k.type == DKIM_KEY_ED25519) != s->ed25519)
        settle(s, DKIM_PERMERROR, "key type does not match a=%s", s->r.algorithm);
    else if (k.strict && strcasecmp(s->idomain, s->r.domain) != 0)
        settle(s, DKIM_PERMERROR, "key has t=s but i= domain %s is not d=%s", s->idomain,
               s->r.domain);
    else if (!s->bh_ok)
        settle(s, DKIM_FAIL, "body hash did not verify");
    else if (!dkim_crypto_verify(k.pkey, &s->data, (const unsigned char *)s->sig.data, s->sig.len))
        settle(s, DKIM_FAIL, "signature did not verify");
    else if (s->r.body_length >= 0)
        settle(s, DKIM_PASS, "only the first %lld bytes of the body are signed (l=)",
               s->r.body_length);
    else
        settle(s, DKIM_PASS, "%s", "");
    if (k.testing && s->r.result != DKIM_PASS) {
        char *r = xasprintf("%s (key in testing mode, t=y)", s->r.reason);
        free(s->r.reason);
        s->r.reason = r;
    }
    dkim_pubkey_clear(&k);
}

static void vsig_clear(struct vsig *s)
{
    free(s->r.domain);
    free(s->r.selector);
    free(s->r.algorithm);
    free(s->r.identity);
    free(s->r.reason);
    free(s->idomain);
    free(s->dnsname);
    buf_free(&s->data);
    buf_free(&s->sig);
}

static void verify_free(struct dkim_verify *v)
{
    for (size_t i = 0; i < v->n; i++)
        vsig_clear(&v->sigs[i]);
    free(v->sigs);
    free(v);
}

static void finish(struct dkim_verify *v)
{
    struct dkim_verify_result res;
    res.count = v->n;
    res.sigs = xcalloc(v->n ? v->n : 1, sizeof(*res.sigs));
    for (size_t i = 0; i < v->n; i++)
        res.sigs[i] = v->sigs[i].r;
    v->done(v->arg, &res);
    free(res.sigs);
    verify_free(v);
}

static void lookup_done(void *arg, enum txt_status st, const char *const *txt, size_t ntxt)
{
    struct vsig *s = arg;
    struct dkim_verify *v = s->v;
    s->handle = NULL;
    s->settled = 1; /* answered: not to be cancelled */
    with_key(s, st, txt, ntxt);
    v->outstanding--;
    if (v->outstanding == 0 && !v->starting)
        finish(v);
}

static int field_is(const struct dkim_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->start, name, n) == 0;
}

struct dkim_verify *dkim_verify_start(const char *msg, size_t len, time_t now,
                                      const struct txt_lookup *lk, dkim_verify_done_fn done,
                                      void *arg)
{
    struct dkim_verify *v = xcalloc(1, sizeof(*v));
    v->done = done;
    v->arg = arg;
    v->lk = *lk;
    struct dkim_msg m;
    if (dkim_msg_parse(&m, msg, len) < 0) {
        /* The header cannot be split into fields: nothing can be verified. */
        dkim_msg_free(&m);
    }
    size_t total = 0;
    for (size_t i = 0; i < m.nfields; i++)
        total += field_is(&m.fields[i], "DKIM-Signature");
    v->sigs = xcalloc(total ? total : 1, sizeof(*v->sigs));
    struct canon_bodies cb;
    memset(&cb, 0, sizeof(cb));
    for (size_t i = 0; i < m.nfields; i++) {
        if (!field_is(&m.fields[i], "DKIM-Signature"))
            continue;
        struct vsig *s = &v->sigs[v->n++];
        s->v = v;
        s->r.domain = xstrdup("");
        s->r.selector = xstrdup("");
        s->r.algorithm = xstrdup("");
        s->r.identity = xstrdup("");
        s->r.reason = xstrdup("");
        s->r.body_length = -1;
        if (v->n > DKIM_MAX_SIGNATURES) {
            /* Beyond the limit: named if the tags allow, not checked (6.1). */
            const char *colon = memchr(m.fields[i].start, ':', m.fields[i].len);
            struct dkim_tags t;
            struct buf e = BUF_INIT;
            size_t vl = m.fields[i].len - (size_t)(colon + 1 - m.fields[i].start);
            if (vl >= 2 && colon[vl - 1] == '\r' && colon[vl] == '\n')
                vl -= 2;
            if (dkim_tags_parse(&t, colon + 1, vl, &e) == 0) {
                const char *d = dkim_tags_get(&t, "d"), *sl = dkim_tags_get(&t, "s"),
                           *a = dkim_tags_get(&t, "a");
                if (d)
                    free(s->r.domain), s->r.domain = xstrdup(d);
                if (sl)
                    free(s->r.selector), s->r.selector = xstrdup(sl);
                if (a)
                    free(s->r.algorithm), s->r.algorithm = xstrdup(a);
            }
            dkim_tags_free(&t);
            buf_free(&e);
            settle(s, DKIM_POLICY, "more than %d signatures; not checked", DKIM_MAX_SIGNATURES);
            continue;
        }
        prepare(s, &m, &m.fields[i], now, &cb);
    }
    buf_free(&cb.body[0]);
    buf_free(&cb.body[1]);
    dkim_msg_free(&m);
    for (size_t i = 0; i < v->n; i++)
        v->outstanding += !v->sigs[i].settled;
    v->starting = 1;
    for (size_t i = 0; i < v->n; i++)
        if (!v->sigs[i].settled) {
            void *h = lk->lookup(lk->arg, v->sigs[i].dnsname, lookup_done, &v->sigs[i]);
            /* The lookup may have answered already, and cleared the handle. */
            if (!v->sigs[i].settled)
                v->sigs[i].handle = h;
        }
    v->starting = 0;
    if (v->outstanding == 0) {
        finish(v);
        return NULL;
    }
    return v;
}

void dkim_verify_cancel(struct dkim_verify *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++)
        if (v->sigs[i].handle && v->lk.cancel)
            v->lk.cancel(v->lk.arg, v->sigs[i].handle);
    verify_free(v);
}

struct dkim_verify_result *dkim_verify_result_dup(const struct dkim_verify_result *r)
{
    struct dkim_verify_result *c = xcalloc(1, sizeof(*c));
    c->count = r->count;
    c->sigs = xcalloc(r->count ? r->count : 1, sizeof(*c->sigs));
    for (size_t i = 0; i < r->count; i++) {
        c->sigs[i] = r->sigs[i];
        c->sigs[i].domain = xstrdup(r->sigs[i].domain);
        c->sigs[i].selector = xstrdup(r->sigs[i].selector);
        c->sigs[i].algorithm = xstrdup(r->sigs[i].algorithm);
        c->sigs[i].identity = xstrdup(r->sigs[i].identity);
        c->sigs[i].reason = xstrdup(r->sigs[i].reason);
    }
    return c;
}

void dkim_verify_result_free(struct dkim_verify_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++) {
        free(r->sigs[i].domain);
        free(r->sigs[i].selector);
        free(r->sigs[i].algorithm);
        free(r->sigs[i].identity);
        free(r->sigs[i].reason);
    }
    free(r->sigs);
    free(r);
}
