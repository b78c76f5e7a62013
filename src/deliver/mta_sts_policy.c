/*
 * MTA-STS parsing (RFC 8461 3.1, 3.2, 4.1): the _mta-sts TXT record's id,
 * the policy body, the MX pattern match and the cache file format. Pure
 * functions on remote input, with a fuzz target (fuzz/fuzz_mta_sts.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliver/mta_sts.h"
#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/xalloc.h"

const char *mta_sts_mode_name(enum mta_sts_mode m)
{
    return m == MTA_STS_ENFORCE ? "enforce" : m == MTA_STS_TESTING ? "testing" : "none";
}

void mta_sts_policy_clear(struct mta_sts_policy *p)
{
    if (!p)
        return;
    strlist_free(p->mx);
    memset(p, 0, sizeof *p);
}

void mta_sts_policy_free(struct mta_sts_policy *p)
{
    mta_sts_policy_clear(p);
    free(p);
}

struct mta_sts_policy *mta_sts_policy_dup(const struct mta_sts_policy *p)
{
    struct mta_sts_policy *d = xcalloc(1, sizeof *d);
    d->mode = p->mode;
    d->max_age = p->max_age;
    d->nmx = p->nmx;
    d->mx = xcalloc(p->nmx + 1, sizeof *d->mx);
    for (size_t i = 0; i < p->nmx; i++)
        d->mx[i] = xstrdup(p->mx[i]);
    return d;
}

static int mta_sts_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 8461 3.2: sts-policy-field-name = ALPHA *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int mta_sts_field_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !isalpha((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/*
 * An mx pattern (RFC 8461 3.2, sts-policy-mx-value): a domain name, or
 * "*." followed by one; letters, digits, hyphens and dots, no empty label.
 */
static int mta_sts_mx_pattern_ok(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && s[i + 1] == '.')
            return 0;
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return 0;
    }
    return 1;
}

int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *out, struct buf *err)
{
    memset(out, 0, sizeof *out);
    int have_version = 0, have_mode = 0, have_age = 0;
    size_t pos = 0;
    unsigned line = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t next = end < len ? end + 1 : end;
        line++;
        /* CRLF or LF (RFC 8461 3.2, sts-policy-term). */
        if (end > pos && text[end - 1] == '\r')
            end--;
        const char *l = text + pos;
        size_t n = end - pos;
        pos = next;
        while (n > 0 && mta_sts_is_wsp(l[n - 1]))
            n--;
        if (n == 0)
            continue;
        const char *colon = memchr(l, ':', n);
        if (!colon || !mta_sts_field_name_ok(l, (size_t)(colon - l))) {
            buf_printf(err, "line %u is not \"key: value\"", line);
            goto fail;
        }
        size_t klen = (size_t)(colon - l);
        const char *v = colon + 1;
        size_t vlen = n - klen - 1;
        while (vlen > 0 && mta_sts_is_wsp(*v)) {
            v++;
            vlen--;
        }
        for (size_t i = 0; i < vlen; i++) {
            /* sts-policy-vchar: VCHAR and WSP only; a NUL or control byte is not a policy. */
            unsigned char c = (unsigned char)v[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                buf_printf(err, "line %u has a control character", line);
                goto fail;
            }
        }
        if (klen == 7 && strncmp(l, "version", 7) == 0) {
            if (have_version)
                continue;
            if (vlen != 5 || strncmp(v, "STSv1", 5) != 0) {
                buf_printf(err, "version is \"%.*s\", not STSv1", (int)(vlen > 40 ? 40 : vlen), v);
                goto fail;
            }
            have_version = 1;
        } else if (klen == 4 && strncmp(l, "mode", 4) == 0) {
            if (have_mode)
                continue;
            if (vlen == 7 && strncmp(v, "enforce", 7) == 0)
                out->mode = MTA_STS_ENFORCE;
            else if (vlen == 7 && strncmp(v, "testing", 7) == 0)
                out->mode = MTA_STS_TESTING;
            else if (vlen == 4 && strncmp(v, "none", 4) == 0)
                out->mode = MTA_STS_NONE;
            else {
                buf_printf(err, "unknown mode \"%.*s\"", (int)(vlen > 40 ? 40 : vlen), v);
                goto fail;
            }
            have_mode = 1;
        } else if (klen == 7 && strncmp(l, "max_age", 7) == 0) {
            if (have_age)
                continue;
            /* 1*10DIGIT, at most 31557600 (RFC 8461 3.2). */
            long age = 0;
            if (vlen == 0 || vlen > 10) {
                buf_puts(err, "max_age is not a number of seconds");
                goto fail;
            }
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((unsigned char)v[i])) {
                    buf_puts(err, "max_age is not a number of seconds");
                    goto fail;
                }
                age = age * 10 + (v[i] - '0');
            }
            if (age > MTA_STS_MAX_AGE_LIMIT) {
                buf_printf(err, "max_age %ld is over the limit of %ld", age, MTA_STS_MAX_AGE_LIMIT);
                goto fail;
            }
            out->max_age = age;
            have_age = 1;
        } else if (klen == 2 && strncmp(l, "mx", 2) == 0) {
            if (!mta_sts_mx_pattern_ok(v, vlen)) {
                buf_printf(err, "line %u: \"%.*s\" is not an MX pattern", line,
                           (int)(vlen > 80 ? 80 : vlen), v);
                goto fail;
            }
            out->mx = xrealloc(out->mx, (out->nmx + 2) * sizeof *out->mx);
            out->mx[out->nmx] = xstrndup(v, vlen);
            str_lower(out->mx[out->nmx]);
            out->mx[++out->nmx] = NULL;
        }
        /* Any other key is for a later version: ignored (RFC 8461 3.2). */
    }
    if (!have_version) {
        buf_puts(err, "no version field");
        goto fail;
    }
    if (!have_mode) {
        buf_puts(err, "no mode field");
        goto fail;
    }
    if (!have_age) {
        buf_puts(err, "no max_age field");
        goto fail;
    }
    if (out->nmx == 0 && out->mode != MTA_STS_NONE) {
        buf_puts(err, "no mx field");
        goto fail;
    }
    if (!out->mx)
        out->mx = xcalloc(1, sizeof *out->mx);
    return 0;
fail:
    mta_sts_policy_clear(out);
    return -1;
}

int mta_sts_mx_match(const struct mta_sts_policy *p, const char *host)
{
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    for (size_t i = 0; i < p->nmx; i++) {
        const char *pat = p->mx[i];
        if (pat[0] == '*' && pat[1] == '.') {
            /* "*.example.com" stands for exactly one more label (RFC 8461 4.1). */
            const char *suffix = pat + 1; /* ".example.com" */
            size_t sl = strlen(suffix);
            if (hl <= sl)
                continue;
            size_t label = hl - sl;
            if (strncasecmp(host + label, suffix, sl) == 0 && memchr(host, '.', label) == NULL)
                return 1;
        } else if (strlen(pat) == hl && strncasecmp(host, pat, hl) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One TXT record's fields (RFC 8461 3.1); the id out, or -1. */
static int mta_sts_txt_parse(const char *s, char id[33])
{
    int first = 1, have_id = 0;
    while (*s) {
        while (mta_sts_is_wsp(*s))
            s++;
        if (!*s)
            break;
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        size_t m = n;
        while (m > 0 && mta_sts_is_wsp(s[m - 1]))
            m--;
        const char *eq = memchr(s, '=', m);
        if (!eq)
            return -1;
        size_t kl = (size_t)(eq - s);
        const char *v = eq + 1;
        size_t vl = m - kl - 1;
        if (first) {
            if (kl != 1 || s[0] != 'v' || vl != 5 || strncmp(v, "STSv1", 5) != 0)
                return -1;
            first = 0;
        } else if (kl == 2 && strncmp(s, "id", 2) == 0 && !have_id) {
            if (vl == 0 || vl > 32)
                return -1;
            for (size_t i = 0; i < vl; i++)
                if (!isalnum((unsigned char)v[i]))
                    return -1;
            memcpy(id, v, vl);
            id[vl] = '\0';
            have_id = 1;
        }
        s += n;
        if (*s == ';')
            s++;
    }
    return have_id ? 0 : -1;
}

int mta_sts_txt_id(char *const *txt, size_t count, char id[33])
{
    const char *found = NULL;
    for (size_t i = 0; i < count; i++) {
        if (strncmp(txt[i], "v=STSv1", 7) != 0)
            continue;
        if (found)
            return -1; /* more than one: as if there were none (RFC 8461 3.1) */
        found = txt[i];
    }
    return found ? mta_sts_txt_parse(found, id) : -1;
}

int mta_sts_domain_ok(const char *domain)
{
    return dnsname_ok(domain, strlen(domain), DNSNAME_NO_EDGE_HYPHEN);
}

int mta_sts_cache_parse(const char *text, size_t len, char id[33], time_t *fetched,
                        struct mta_sts_policy *out, const char **body, size_t *body_len)
{
    /* "id: ID\nfetched: EPOCH\n\n" then the body. */
    const char *p = text, *end = text + len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl - p < 5 || nl - p > 4 + 32 || strncmp(p, "id: ", 4) != 0)
        return -1;
    size_t il = (size_t)(nl - p) - 4;
    for (size_t i = 0; i < il; i++)
        if (!isalnum((unsigned char)p[4 + i]))
            return -1;
    memcpy(id, p + 4, il);
    id[il] = '\0';
    p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl - p < 10 || nl - p > 9 + 20 || strncmp(p, "fetched: ", 9) != 0)
        return -1;
    long long t = 0;
    for (const char *q = p + 9; q < nl; q++) {
        if (!isdigit((unsigned char)*q))
            return -1;
        t = t * 10 + (*q - '0');
    }
    *fetched = (time_t)t;
    p = nl + 1;
    if (p >= end || *p != '\n')
        return -1;
    p++;
    struct buf err = BUF_INIT;
    int r = mta_sts_policy_parse(p, (size_t)(end - p), out, &err);
    buf_free(&err);
    if (r < 0)
        return -1;
    *body = p;
    *body_len = (size_t)(end - p);
    return 0;
}
