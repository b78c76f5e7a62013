/*
 * Authentication-Results (RFC 8601): the builder and the removal of forged
 * fields carrying our authserv-id. See authres.h.
 */
#include "mailauth/authres.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "smtp/address.h"

/* Header lines are kept under 78 characters where we can (RFC 5322 2.1.1). */
#define AUTHRES_FOLD 78
/* Resinfo entries per field: a handful of methods, a few signatures each. */
#define AUTHRES_MAX 32

struct authres {
    char *id;
    char *res[AUTHRES_MAX]; /* each a list of words separated by ' ' */
    size_t n;
};

struct authres *authres_new(const char *authserv_id)
{
    struct authres *ar = xcalloc(1, sizeof *ar);
    ar->id = xstrdup(authserv_id ? authserv_id : "localhost");
    return ar;
}

void authres_free(struct authres *ar)
{
    if (!ar)
        return;
    for (size_t i = 0; i < ar->n; i++)
        free(ar->res[i]);
    free(ar->id);
    free(ar);
}

/* RFC 2045 token: printable ASCII but SPACE and tspecials. */
static int is_token_char(unsigned char c)
{
    return c > ' ' && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!is_token_char((unsigned char)*s))
            return 0;
    return 1;
}

/* RFC 8601 2.2 pvalue: a value, or [local-part] "@" domain-name. */
static int is_pvalue_bare(const char *s)
{
    if (is_token(s))
        return 1;
    const char *at = strrchr(s, '@');
    if (!at)
        return 0;
    for (const char *p = s; p < at; p++)
        if (!(is_token_char((unsigned char)*p) || *p == '/' || *p == '=' || *p == '?'))
            return 0;
    const char *d = at + 1;
    if (!*d)
        return 0;
    for (; *d; d++)
        if (!(is_token_char((unsigned char)*d)))
            return 0;
    return 1;
}

/*
 * Appends a quoted-string (RFC 5322 3.2.4). Values come from the client
 * and the message: controls and bytes that are not UTF-8 text become '?'.
 */
static void put_quoted(struct buf *b, const char *value)
{
    char *text = smtp_printable(xstrdup(value), '?');
    buf_putc(b, '"');
    for (const char *s = text; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
    free(text);
}

/* A comment: parentheses and backslashes escaped, text only as in put_quoted(). */
static void put_comment(struct buf *b, const char *value)
{
    char *text = smtp_printable(xstrdup(value), '?');
    buf_putc(b, '(');
    for (const char *s = text; *s; s++) {
        if (*s == '(' || *s == ')' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, ')');
    free(text);
}

void authres_add(struct authres *ar, const char *method, const char *result, const char *comment,
                 const char *reason, ...)
{
    if (ar->n >= AUTHRES_MAX)
        return;
    struct buf b = BUF_INIT;
    /* Words are separated by '\n' here, and become a space or a fold later. */
    buf_printf(&b, "%s=%s", method, result);
    if (comment && *comment) {
        buf_putc(&b, '\n');
        put_comment(&b, comment);
    }
    if (reason && *reason) {
        buf_puts(&b, "\nreason=");
        put_quoted(&b, reason);
    }
    va_list ap;
    va_start(ap, reason);
    for (;;) {
        const char *prop = va_arg(ap, const char *);
        if (!prop)
            break;
        const char *val = va_arg(ap, const char *);
        if (!val || !*val)
            continue;
        buf_printf(&b, "\n%s=", prop);
        if (is_pvalue_bare(val))
            buf_puts(&b, val);
        else
            put_quoted(&b, val);
    }
    va_end(ap);
    ar->res[ar->n++] = buf_steal(&b);
}

void authres_format(const struct authres *ar, struct buf *out)
{
    static const char name[] = "Authentication-Results: ";
    buf_puts(out, name);
    buf_puts(out, ar->id);
    buf_putc(out, ';');
    if (ar->n == 0) {
        buf_puts(out, " none\r\n");
        return;
    }
    for (size_t i = 0; i < ar->n; i++) {
        /* Each resinfo starts on a line of its own, the way readers expect it. */
        buf_puts(out, "\r\n\t");
        size_t col = 8;
        const char *w = ar->res[i];
        int first = 1;
        while (*w) {
            const char *e = strchr(w, '\n');
            size_t n = e ? (size_t)(e - w) : strlen(w);
            if (!first) {
                if (col + 1 + n > AUTHRES_FOLD) {
                    buf_puts(out, "\r\n\t ");
                    col = 9;
                } else {
                    buf_putc(out, ' ');
                    col++;
                }
            }
            buf_append(out, w, n);
            col += n;
            first = 0;
            w += n;
            if (*w == '\n')
                w++;
        }
        if (i + 1 < ar->n)
            buf_putc(out, ';');
    }
    buf_puts(out, "\r\n");
}

/* Skips CFWS (white space, line breaks and nested comments) from p. */
static size_t skip_cfws(const char *s, size_t len, size_t p)
{
    int depth = 0;
    while (p < len) {
        char c = s[p];
        if (depth > 0) {
            if (c == '\\')
                p++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            p++;
        } else if (c == '(') {
            depth = 1;
            p++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            p++;
        } else {
            break;
        }
    }
    return p;
}

int authres_field_id(const char *body, size_t len, struct buf *id)
{
    buf_reset(id);
    size_t p = skip_cfws(body, len, 0);
    if (p < len && body[p] == '"') {
        /* quoted-string */
        for (p++; p < len && body[p] != '"'; p++) {
            if (body[p] == '\\' && p + 1 < len)
                p++;
            if (body[p] != '\r' && body[p] != '\n')
                buf_putc(id, body[p]);
        }
        if (p >= len)
            return -1;
    } else {
        /*
         * A token; we also take '@' and '/' which some writers put in ids
         * unquoted, so that their forgeries are caught too.
         */
        while (p < len &&
               (is_token_char((unsigned char)body[p]) || body[p] == '@' || body[p] == '/'))
            buf_putc(id, body[p++]);
    }
    return id->len ? 0 : -1;
}

size_t authres_strip(const char *msg, size_t len, const char *authserv_id, struct buf *out)
{
    static const char name[] = "authentication-results";
    const size_t nlen = sizeof name - 1;
    size_t removed = 0, p = 0;
    struct buf id = BUF_INIT;
    while (p < len) {
        const char *nl = memchr(msg + p, '\n', len - p);
        size_t le = nl ? (size_t)(nl - msg) : len;
        if (le == p || (le == p + 1 && msg[p] == '\r'))
            break; /* the empty line: the body follows unchanged */
        /* The field with its continuation lines. */
        size_t fe = nl ? le + 1 : len;
        while (fe < len && (msg[fe] == ' ' || msg[fe] == '\t')) {
            const char *n2 = memchr(msg + fe, '\n', len - fe);
            fe = n2 ? (size_t)(n2 - msg) + 1 : len;
        }
        int drop = 0;
        if (fe - p > nlen && strncasecmp(msg + p, name, nlen) == 0) {
            size_t q = p + nlen;
            while (q < fe && (msg[q] == ' ' || msg[q] == '\t'))
                q++;
            if (q < fe && msg[q] == ':' && authres_field_id(msg + q + 1, fe - q - 1, &id) == 0 &&
                strcasecmp(buf_cstr(&id), authserv_id) == 0)
                drop = 1;
        }
        if (drop)
            removed++;
        else
            buf_append(out, msg + p, fe - p);
        p = fe;
    }
    buf_append(out, msg + p, len - p);
    buf_free(&id);
    return removed;
}
