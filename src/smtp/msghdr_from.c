/*
 * msghdr_from: the domains of a message's From: field (RFC 5322 3.4, 3.6.2),
 * read the one way for DMARC's author domain (RFC 7489 6.6.1) and for the
 * DKIM signer's choice of signing domain.
 */
#include "smtp/msghdr_from.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* Copies a field body without comments and with folding removed. */
static void msghdr_from_strip_comments(const char *s, size_t n, struct buf *out)
{
    int depth = 0, quoted = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '\\' && i + 1 < n) {
            if (depth == 0) {
                buf_putc(out, c);
                buf_putc(out, s[i + 1]);
            }
            i++;
            continue;
        }
        if (quoted) {
            if (c == '"')
                quoted = 0;
            buf_putc(out, c);
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (depth == 0) {
            if (c == '"')
                quoted = 1;
            buf_putc(out, c);
        }
    }
}

static int msghdr_from_domain_ok(const char *d)
{
    return dnsname_ok(d, strlen(d), DNSNAME_UNDERSCORE | DNSNAME_UTF8);
}

/*
 * Lower case copy of [s, s+n) without a trailing dot; NULL when the span
 * holds a NUL (no domain does, and a copy cut there would name another).
 */
static char *msghdr_from_domain_norm(const char *s, size_t n)
{
    if (memchr(s, '\0', n) != NULL)
        return NULL;
    char *d = xstrndup(s, n);
    if (n > 0 && d[n - 1] == '.')
        d[n - 1] = '\0';
    str_lower(d);
    return d;
}

/* The domain of one mailbox ("Name <a@b>" or "a@b"); NULL when there is none. */
static char *msghdr_from_mailbox_domain(const char *s, size_t n)
{
    const char *lt = NULL;
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == '<') {
            lt = s + i;
            break;
        }
    }
    const char *a = s, *e = s + n;
    if (lt) {
        a = lt + 1;
        const char *gt = memchr(a, '>', (size_t)(e - a));
        if (!gt)
            return NULL;
        e = gt;
    }
    str_span_trim(&a, &e);
    const char *at = NULL;
    for (const char *p = a; p < e; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return NULL;
    const char *ds = at + 1, *de = e;
    str_span_trim(&ds, &de);
    char *d = msghdr_from_domain_norm(ds, (size_t)(de - ds));
    if (d == NULL || !msghdr_from_domain_ok(d)) {
        free(d);
        return NULL;
    }
    return d;
}

char *msghdr_from_domain(const char *msg, size_t len, struct buf *why)
{
    size_t n = 0;
    char **list = msghdr_from_domains(msg, len, &n, why);
    if (!list)
        return NULL;
    char *d = list[0];
    for (size_t i = 1; i < n; i++)
        free(list[i]);
    free(list);
    if (n > 1) {
        buf_set(why, "From: has mailboxes of different domains");
        free(d);
        return NULL;
    }
    return d;
}

char **msghdr_from_domains(const char *msg, size_t len, size_t *count, struct buf *why)
{
    *count = 0;
    const char *p = msg, *end = msg + len;
    const char *from = NULL;
    size_t from_len = 0;
    int nfrom = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le == p || (le == p + 1 && *p == '\r'))
            break; /* the empty line: end of the header */
        /* The field runs on over continuation lines (starting with WSP). */
        const char *fe = nl ? nl + 1 : end;
        while (fe < end && (*fe == ' ' || *fe == '\t')) {
            const char *n2 = memchr(fe, '\n', (size_t)(end - fe));
            fe = n2 ? n2 + 1 : end;
        }
        const char *colon = memchr(p, ':', (size_t)(fe - p));
        if (colon) {
            const char *ns = p, *ne = colon;
            str_span_trim(&ns, &ne);
            if (ne - ns == 4 && strncasecmp(ns, "from", 4) == 0) {
                nfrom++;
                from = colon + 1;
                from_len = (size_t)(fe - from);
            }
        }
        p = fe;
    }
    if (nfrom == 0) {
        buf_set(why, "no From: field");
        return NULL;
    }
    if (nfrom > 1) {
        buf_set(why, "more than one From: field");
        return NULL;
    }
    struct buf v = BUF_INIT;
    msghdr_from_strip_comments(from, from_len, &v);
    char **domains = NULL;
    size_t ndomains = 0;
    const char *s = v.data ? v.data : "";
    size_t n = v.len, start = 0;
    int quoted = 0, angle = 0, bad = 0;
    for (size_t i = 0; i <= n && !bad; i++) {
        char c = i < n ? s[i] : ',';
        if (i < n && c == '\\') {
            i++;
            continue;
        }
        if (i < n && c == '"')
            quoted = !quoted;
        else if (!quoted && c == '<')
            angle = 1;
        else if (!quoted && c == '>')
            angle = 0;
        if (c != ',' || (i < n && (quoted || angle)))
            continue;
        const char *ms = s + start, *me = s + i;
        start = i + 1;
        str_span_trim(&ms, &me);
        if (ms == me)
            continue;
        char *d = msghdr_from_mailbox_domain(ms, (size_t)(me - ms));
        if (!d) {
            bad = 1;
            continue;
        }
        /* Each author domain once, in the order of the field. */
        int seen = 0;
        for (size_t k = 0; k < ndomains && !seen; k++)
            seen = strcmp(domains[k], d) == 0;
        if (seen || ndomains >= MSGHDR_FROM_MAX_DOMAINS) {
            free(d);
            continue;
        }
        domains = xrealloc(domains, (ndomains + 1) * sizeof *domains);
        domains[ndomains++] = d;
    }
    buf_free(&v);
    if (bad || ndomains == 0) {
        buf_set(why, "no usable address in From:");
        for (size_t k = 0; k < ndomains; k++)
            free(domains[k]);
        free(domains);
        return NULL;
    }
    *count = ndomains;
    return domains;
}
