/*
 * The DKIM tag=value list (RFC 6376 3.2), used by DKIM-Signature fields and
 * key records alike, and the base64 they carry. Strict: a tag without "=",
 * a character outside VALCHAR or a repeated tag is an error.
 */
#include <stdlib.h>
#include <string.h>


#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

static int is_fws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnumpunc(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* VALCHAR = %x21-3A / %x3C-7E: visible ASCII but ';'. */
static int is_valchar(char c)
{
    unsigned char u = (unsigned char)c;
    return u >= 0x21 && u <= 0x7e && u != ';';
}

void dkim_tags_free(struct dkim_tags *t)
{
    free(t->copy);
    t->copy = NULL;
    t->count = 0;
}

/* FWS may only be a CRLF followed by WSP; a bare CR or LF elsewhere is not FWS. */
static int fws_ok(const char *s, size_t i, size_t n)
{
    if (s[i] == '\r')
        return i + 2 < n && s[i + 1] == '\n' && (s[i + 2] == ' ' || s[i + 2] == '\t');
    if (s[i] == '\n')
        return i > 0 && s[i - 1] == '\r' && i + 1 < n && (s[i + 1] == ' ' || s[i + 1] == '\t');
    return 1;
}

int dkim_tags_parse(struct dkim_tags *t, const char *s, size_t len, struct buf *err)
{
    memset(t, 0, sizeof(*t));
    t->copy = xmalloc(len + 1);
    memcpy(t->copy, s, len);
    t->copy[len] = '\0';
    char *p = t->copy;
    size_t i = 0;
    for (;;) {
        /* tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS] */
        while (i < len && is_fws(p[i])) {
            if (!fws_ok(p, i, len))
                goto bad_ws;
            i++;
        }
        if (i == len) {
            /* Nothing after the last ';' (or an empty list): allowed. */
            return 0;
        }
        if (!is_alpha(p[i])) {
            buf_printf(err, "tag list: bad tag name at offset %zu", i);
            return -1;
        }
        size_t ns = i;
        while (i < len && is_alnumpunc(p[i]))
            i++;
        size_t ne = i;
        while (i < len && is_fws(p[i])) {
            if (!fws_ok(p, i, len))
                goto bad_ws;
            i++;
        }
        if (i == len || p[i] != '=') {
            buf_printf(err, "tag list: tag \"%.*s\" has no '='", (int)(ne - ns), p + ns);
            return -1;
        }
        i++;
        while (i < len && is_fws(p[i])) {
            if (!fws_ok(p, i, len))
                goto bad_ws;
            i++;
        }
        size_t vs = i, ve = i;
        while (i < len && p[i] != ';') {
            if (is_fws(p[i])) {
                if (!fws_ok(p, i, len))
                    goto bad_ws;
            } else if (!is_valchar(p[i])) {
                buf_printf(err, "tag list: bad character 0x%02x in the value of \"%.*s\"",
                           (unsigned char)p[i], (int)(ne - ns), p + ns);
                return -1;
            } else {
                ve = i + 1;
            }
            i++;
        }
        p[ne] = '\0';
        p[ve] = '\0';
        for (size_t k = 0; k < t->count; k++)
            if (strcmp(t->tag[k].name, p + ns) == 0) {
                buf_printf(err, "tag list: duplicate tag \"%s\"", p + ns);
                return -1;
            }
        if (t->count == DKIM_MAX_TAGS) {
            buf_puts(err, "tag list: too many tags");
            return -1;
        }
        t->tag[t->count].name = p + ns;
        t->tag[t->count].value = p + vs;
        t->count++;
        if (i == len)
            return 0;
        i++; /* the ';' */
    }
bad_ws:
    buf_printf(err, "tag list: bare CR or LF at offset %zu", i);
    return -1;
}

const char *dkim_tags_get(const struct dkim_tags *t, const char *name)
{
    for (size_t k = 0; k < t->count; k++)
        if (strcmp(t->tag[k].name, name) == 0)
            return t->tag[k].value;
    return NULL;
}

