/*
 * dmarc_record: the DMARC record parser (RFC 7489 6.3, 6.4): tags, their
 * values and defaults, with notes on what was ignored. See dmarc.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc.h"

/* Tags in one record we look at (the RFC defines eleven). */
#define DMARC_MAX_TAGS 64

static int is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int span_eq_ci(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static int parse_policy(const char *v, size_t n, enum dmarc_policy *out)
{
    if (span_eq_ci(v, n, "none"))
        *out = DMARC_POLICY_NONE;
    else if (span_eq_ci(v, n, "quarantine"))
        *out = DMARC_POLICY_QUARANTINE;
    else if (span_eq_ci(v, n, "reject"))
        *out = DMARC_POLICY_REJECT;
    else
        return -1;
    return 0;
}

static int parse_align(const char *v, size_t n, enum dmarc_align *out)
{
    if (span_eq_ci(v, n, "r"))
        *out = DMARC_ALIGN_RELAXED;
    else if (span_eq_ci(v, n, "s"))
        *out = DMARC_ALIGN_STRICT;
    else
        return -1;
    return 0;
}

/* 1*max DIGIT into *out; -1 when not digits or too long. */
static int parse_digits(const char *v, size_t n, size_t max, unsigned long long *out)
{
    if (n == 0 || n > max)
        return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        if (x > (~0ULL - 9) / 10)
            return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/*
 * dmarc-uri (6.4): a URI (RFC 3986 scheme ":" something) with an optional
 * "!" size limit. We check the scheme and that something follows; whether
 * we could send reports there is not our business here.
 */
static int valid_uri(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i >= n || s[i] != ':' || i + 1 >= n)
        return 0;
    for (size_t j = i + 1; j < n; j++)
        if ((unsigned char)s[j] <= ' ' || s[j] == ',' || s[j] == ';')
            return 0;
    return 1;
}

/* Whether a rua=/ruf= value holds at least one valid URI (the fallback of 6.6.3). */
static int uri_list_has_valid(const char *v, size_t n)
{
    const char *p = v, *end = v + n;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        const char *s = p;
        str_span_trim(&s, &e);
        if (valid_uri(s, (size_t)(e - s)))
            return 1;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

/* fo= (6.3): "0", "1", "d", "s" separated by ':'. */
static int valid_fo(const char *v, size_t n)
{
    if (n == 0)
        return 0;
    int want_opt = 1;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (want_opt) {
            if (!(c == '0' || c == '1' || c == 'd' || c == 's' || c == 'D' || c == 'S'))
                return 0;
            want_opt = 0;
        } else if (c == ':') {
            want_opt = 1;
        } else if (!is_wsp(c)) {
            return 0;
        }
    }
    return !want_opt;
}

/* rf= (6.3): a ':'-separated list of report format names (IANA tokens). */
static int valid_rf(const char *v, size_t n)
{
    if (n == 0)
        return 0;
    int need = 1;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (isalnum((unsigned char)c) || c == '-' || c == '_')
            need = 0;
        else if (c == ':' && !need)
            need = 1;
        else if (!is_wsp(c))
            return 0;
    }
    return !need;
}

static void note(struct buf *err, const char *what, const char *v, size_t n)
{
    if (!err)
        return;
    if (err->len)
        buf_puts(err, "; ");
    if (n > 64)
        n = 64;
    buf_printf(err, "%s \"%.*s\"", what, (int)n, v);
}

void dmarc_record_clear(struct dmarc_record *rec)
{
    if (!rec)
        return;
    free(rec->rua);
    free(rec->ruf);
    free(rec->fo);
    free(rec->rf);
    memset(rec, 0, sizeof *rec);
}

enum dmarc_parse_status dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec,
                                           struct buf *err)
{
    memset(rec, 0, sizeof *rec);
    rec->pct = 100;
    rec->ri = 86400;
    rec->fo = xstrdup("0");
    rec->rf = xstrdup("afrf");
    int have_p = 0, have_sp = 0, bad_p = 0, bad_sp = 0, rua_valid = 0, have_np = 0;
    /* Which tags we have taken: a repeated tag keeps its first value. */
    char seen[16] = {0};
    enum { T_V, T_P, T_SP, T_PCT, T_ADKIM, T_ASPF, T_RUA, T_RUF, T_FO, T_RF, T_RI, T_NP };
    static const char *names[] = {"v",   "p",   "sp", "pct", "adkim", "aspf",
                                  "rua", "ruf", "fo", "rf",  "ri",    "np"};

    const char *p = txt, *end = txt + len;
    size_t ntag = 0;
    while (p < end && ntag < DMARC_MAX_TAGS) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *te = semi ? semi : end;
        const char *ts = p;
        p = semi ? semi + 1 : end;
        str_span_trim(&ts, &te);
        if (ts == te) {
            if (ntag == 0)
                break; /* "; v=DMARC1" is not a DMARC record */
            continue;  /* empty tag-spec: "p=none;;" or a trailing ';' */
        }
        const char *eq = memchr(ts, '=', (size_t)(te - ts));
        const char *ns = ts, *ne = eq ? eq : te;
        str_span_trim(&ns, &ne);
        const char *vs = eq ? eq + 1 : te, *ve = te;
        str_span_trim(&vs, &ve);
        size_t nlen = (size_t)(ne - ns), vlen = (size_t)(ve - vs);
        if (ntag++ == 0) {
            /* 6.4: the record starts with v=DMARC1 (case-sensitive value). */
            if (!eq || !span_eq_ci(ns, nlen, "v") || vlen != 6 || memcmp(vs, "DMARC1", 6) != 0)
                return DMARC_PARSE_NOT_DMARC;
            seen[T_V] = 1;
            continue;
        }
        int t = -1;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (span_eq_ci(ns, nlen, names[i]))
                t = (int)i;
        if (!eq) {
            note(err, "ignored malformed tag", ts, (size_t)(te - ts));
            continue;
        }
        if (t < 0)
            continue; /* 6.3: unknown tags MUST be ignored */
        if (seen[t]) {
            note(err, "ignored repeated tag", ns, nlen);
            continue;
        }
        seen[t] = 1;
        unsigned long long num;
        switch (t) {
        case T_V:
            break;
        case T_P:
            if (parse_policy(vs, vlen, &rec->p) == 0)
                have_p = 1;
            else
                bad_p = 1, note(err, "invalid p=", vs, vlen);
            break;
        case T_SP:
            if (parse_policy(vs, vlen, &rec->sp) == 0)
                have_sp = 1;
            else
                bad_sp = 1, note(err, "invalid sp=", vs, vlen);
            break;
        case T_NP:
            /* RFC 9091 3.1: like sp=, for subdomains that do not exist; invalid: ignored. */
            if (parse_policy(vs, vlen, &rec->np) == 0)
                have_np = 1;
            else
                note(err, "ignored invalid np=", vs, vlen);
            break;
        case T_PCT:
            if (parse_digits(vs, vlen, 3, &num) == 0 && num <= 100)
                rec->pct = (int)num;
            else
                note(err, "ignored invalid pct=", vs, vlen);
            break;
        case T_ADKIM:
            if (parse_align(vs, vlen, &rec->adkim) < 0)
                note(err, "ignored invalid adkim=", vs, vlen);
            break;
        case T_ASPF:
            if (parse_align(vs, vlen, &rec->aspf) < 0)
                note(err, "ignored invalid aspf=", vs, vlen);
            break;
        case T_RUA:
            rec->rua = xstrndup(vs, vlen);
            rua_valid = uri_list_has_valid(vs, vlen);
            if (!rua_valid)
                note(err, "no valid URI in rua=", vs, vlen);
            break;
        case T_RUF:
            rec->ruf = xstrndup(vs, vlen);
            break;
        case T_FO:
            if (valid_fo(vs, vlen)) {
                free(rec->fo);
                rec->fo = xstrndup(vs, vlen);
            } else {
                note(err, "ignored invalid fo=", vs, vlen);
            }
            break;
        case T_RF:
            if (valid_rf(vs, vlen)) {
                free(rec->rf);
                rec->rf = xstrndup(vs, vlen);
            } else {
                note(err, "ignored invalid rf=", vs, vlen);
            }
            break;
        case T_RI:
            if (parse_digits(vs, vlen, 10, &num) == 0 && num <= 0xffffffffULL)
                rec->ri = (unsigned long)num;
            else
                note(err, "ignored invalid ri=", vs, vlen);
            break;
        }
    }
    if (ntag == 0)
        return DMARC_PARSE_NOT_DMARC;
    if (!have_p && !bad_p)
        note(err, "no p= tag", "", 0);
    /*
     * 6.6.3: without a valid p= (or with an invalid sp=), a record with a
     * valid rua= acts as "v=DMARC1; p=none"; any other is not applied.
     */
    if (!have_p || bad_sp) {
        if (!rua_valid)
            return DMARC_PARSE_INVALID;
        rec->p = DMARC_POLICY_NONE;
        rec->sp = DMARC_POLICY_NONE;
        rec->np = DMARC_POLICY_NONE;
        rec->p_fallback = 1;
        return DMARC_PARSE_OK;
    }
    if (!have_sp)
        rec->sp = rec->p;
    /* RFC 9091 3.1: without np=, non-existent subdomains get sp= (or p=). */
    rec->have_np = have_np;
    if (!have_np)
        rec->np = rec->sp;
    return DMARC_PARSE_OK;
}
