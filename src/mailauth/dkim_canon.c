/*
 * The message as DKIM sees it: header fields split out, the simple and
 * relaxed canonicalizations of header and body (RFC 6376 3.4), the header
 * hash input (3.7) and the body hash (3.7, with l= from 3.5).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

int dkim_msg_parse(struct dkim_msg *m, const char *msg, size_t len)
{
    memset(m, 0, sizeof(*m));
    size_t cap = 0, i = 0;
    while (i < len) {
        /* An empty line ends the header (RFC 5322 2.1). */
        if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
            m->body = msg + i + 2;
            m->body_len = len - i - 2;
            return 0;
        }
        if (is_wsp(msg[i]))
            return -1; /* a continuation line with no field before it */
        size_t start = i;
        /* The field runs to the CRLF not followed by WSP. */
        for (;;) {
            const char *nl = memchr(msg + i, '\n', len - i);
            if (nl == NULL) {
                i = len;
                break;
            }
            i = (size_t)(nl - msg) + 1;
            if (i >= len || !is_wsp(msg[i]))
                break;
        }
        const char *colon = memchr(msg + start, ':', i - start);
        if (colon == NULL)
            return -1;
        size_t nl = (size_t)(colon - (msg + start));
        while (nl > 0 && is_wsp(msg[start + nl - 1]))
            nl--;
        if (nl == 0)
            return -1;
        if (m->nfields == cap) {
            cap = cap ? cap * 2 : 32;
            m->fields = xrealloc(m->fields, cap * sizeof(*m->fields));
        }
        m->fields[m->nfields].start = msg + start;
        m->fields[m->nfields].len = i - start;
        m->fields[m->nfields].name_len = nl;
        m->nfields++;
    }
    return 0; /* header only, no body */
}

void dkim_msg_free(struct dkim_msg *m)
{
    free(m->fields);
    memset(m, 0, sizeof(*m));
}

int dkim_canon_parse(const char *s, enum dkim_canon *header, enum dkim_canon *body)
{
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    enum dkim_canon h, b = DKIM_CANON_SIMPLE;
    if (hl == 6 && strncmp(s, "simple", 6) == 0)
        h = DKIM_CANON_SIMPLE;
    else if (hl == 7 && strncmp(s, "relaxed", 7) == 0)
        h = DKIM_CANON_RELAXED;
    else
        return -1;
    if (slash) {
        if (strcmp(slash + 1, "simple") == 0)
            b = DKIM_CANON_SIMPLE;
        else if (strcmp(slash + 1, "relaxed") == 0)
            b = DKIM_CANON_RELAXED;
        else
            return -1;
    }
    *header = h;
    *body = b;
    return 0;
}

void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out)
{
    if (c == DKIM_CANON_SIMPLE) {
        buf_append(out, field, len);
        if (len < 2 || field[len - 2] != '\r' || field[len - 1] != '\n')
            buf_append(out, "\r\n", 2);
        return;
    }
    /* Relaxed (3.4.2): lower-case name, unfold, runs of WSP to one SP, none at
     * the end of the value nor around the colon. */
    const char *colon = memchr(field, ':', len);
    if (colon == NULL)
        return;
    size_t nl = (size_t)(colon - field);
    while (nl > 0 && is_wsp(field[nl - 1]))
        nl--;
    for (size_t k = 0; k < nl; k++) {
        char ch = field[k];
        buf_putc(out, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
    }
    buf_putc(out, ':');
    size_t i = (size_t)(colon - field) + 1;
    int pending_sp = 0, started = 0;
    for (; i < len; i++) {
        char ch = field[i];
        if (ch == '\r' || ch == '\n')
            continue; /* unfolding removes the CRLF; the WSP after it remains */
        if (is_wsp(ch)) {
            pending_sp = 1;
            continue;
        }
        if (pending_sp && started)
            buf_putc(out, ' ');
        pending_sp = 0;
        started = 1;
        buf_putc(out, ch);
    }
    buf_append(out, "\r\n", 2);
}

/* One body line (without its CRLF) relaxed: WSP runs to one SP, none at the end. */
static void relax_line(const char *l, size_t n, struct buf *out)
{
    int pending = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_wsp(l[i])) {
            pending = 1;
            continue;
        }
        if (pending)
            buf_putc(out, ' ');
        pending = 0;
        buf_putc(out, l[i]);
    }
}

void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, struct buf *out)
{
    size_t start = out->len;
    size_t i = 0;
    /* Empty lines are held back until a non-empty one shows they are not trailing (3.4.3, 3.4.4).
     */
    size_t held = 0;
    while (i < len) {
        const char *crlf = NULL;
        for (size_t k = i; k + 1 < len; k++)
            if (body[k] == '\r' && body[k + 1] == '\n') {
                crlf = body + k;
                break;
            }
        size_t n = crlf ? (size_t)(crlf - (body + i)) : len - i;
        size_t mark = out->len;
        if (c == DKIM_CANON_RELAXED)
            relax_line(body + i, n, out);
        else
            buf_append(out, body + i, n);
        if (out->len == mark) {
            held++;
        } else {
            /* Non-empty: first the held empty lines, before this one's content. */
            if (held) {
                size_t content = out->len - mark;
                buf_reserve(out, 2 * held);
                memmove(out->data + mark + 2 * held, out->data + mark, content);
                for (size_t h = 0; h < held; h++)
                    memcpy(out->data + mark + 2 * h, "\r\n", 2);
                out->len += 2 * held;
                out->data[out->len] = '\0';
                held = 0;
            }
            buf_append(out, "\r\n", 2);
        }
        i += n + (crlf ? 2 : 0);
    }
    /* An empty body is one CRLF under simple, nothing under relaxed. */
    if (c == DKIM_CANON_SIMPLE && out->len == start)
        buf_append(out, "\r\n", 2);
}

int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, long long l,
                   unsigned char out[32], size_t *canon_len)
{
    struct buf cb = BUF_INIT;
    dkim_canon_body(c, body ? body : "", body ? len : 0, &cb);
    if (canon_len)
        *canon_len = cb.len;
    size_t n = cb.len;
    if (l >= 0) {
        if ((unsigned long long)l > cb.len) {
            buf_free(&cb);
            return -1;
        }
        n = (size_t)l;
    }
    SHA256((const unsigned char *)(cb.data ? cb.data : ""), n, out);
    buf_free(&cb);
    return 0;
}

/* The field with the value of its b= tag removed (3.5 b=, 3.7): from after "b=" to the next ';'. */
static void strip_b_value(const char *f, size_t len, struct buf *out)
{
    const char *colon = memchr(f, ':', len);
    if (colon == NULL) {
        buf_append(out, f, len);
        return;
    }
    size_t i = (size_t)(colon - f) + 1;
    /* Walk tag by tag: a tag name starts after ':' or ';' and FWS. */
    while (i < len) {
        size_t k = i;
        while (k < len && (is_wsp(f[k]) || f[k] == '\r' || f[k] == '\n'))
            k++;
        size_t ns = k;
        while (k < len && f[k] != '=' && f[k] != ';' && !is_wsp(f[k]) && f[k] != '\r' &&
               f[k] != '\n')
            k++;
        size_t ne = k;
        while (k < len && (is_wsp(f[k]) || f[k] == '\r' || f[k] == '\n'))
            k++;
        const char *semi = memchr(f + i, ';', len - i);
        size_t end = semi ? (size_t)(semi - f) : len;
        if (ne - ns == 1 && f[ns] == 'b' && k < len && f[k] == '=' && k < end) {
            buf_append(out, f, k + 1);
            /* Keep a trailing CRLF that ends the field, if the value ran to it. */
            buf_append(out, f + end, len - end);
            return;
        }
        if (semi == NULL)
            break;
        i = end + 1;
    }
    buf_append(out, f, len);
}

static int field_is(const struct dkim_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->start, name, n) == 0;
}

void dkim_signed_headers(const struct dkim_msg *m, enum dkim_canon c, char *const *hnames,
                         size_t nh, const char *sigfield, size_t siglen, struct buf *out)
{
    /* Each name takes the next unused instance counting from the bottom (5.4.2). */
    unsigned char *used = xcalloc(m->nfields ? m->nfields : 1, 1);
    for (size_t h = 0; h < nh; h++) {
        for (size_t k = m->nfields; k-- > 0;) {
            if (!used[k] && field_is(&m->fields[k], hnames[h])) {
                used[k] = 1;
                dkim_canon_header(c, m->fields[k].start, m->fields[k].len, out);
                break;
            }
        }
    }
    free(used);
    struct buf stripped = BUF_INIT;
    strip_b_value(sigfield, siglen, &stripped);
    /* The signature field goes in without its final CRLF. */
    size_t mark = out->len;
    dkim_canon_header(c, stripped.data, stripped.len, out);
    if (out->len >= mark + 2 && out->data[out->len - 2] == '\r' && out->data[out->len - 1] == '\n')
        buf_truncate(out, out->len - 2);
    buf_free(&stripped);
}

void dkim_crlf_normalize(const char *src, size_t len, struct buf *out)
{
    buf_reserve(out, len + len / 32);
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\n' && (i == 0 || src[i - 1] != '\r'))
            buf_putc(out, '\r');
        buf_putc(out, src[i]);
    }
}
