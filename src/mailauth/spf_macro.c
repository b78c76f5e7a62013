/*
 * spf_macro: RFC 7208 section 7 macro expansion (letters, transformers,
 * delimiters, URL escaping) and the IP address text it and the evaluation
 * read. The scanner also checks macro syntax for the record parser.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/spf.h"
#include "mailauth/spf_int.h"

#define SPF_MACRO_MAX_OUT 8192 /* longest expansion accepted (explanations included) */

/* ---- addresses --------------------------------------------------------- */

/* Parses a client address; an IPv4-mapped IPv6 address counts as IPv4. */
int spf_ip_parse(const char *text, struct spf_ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (text == NULL)
        return -1;
    if (inet_pton(AF_INET, text, ip->b) == 1)
        return 0;
    if (inet_pton(AF_INET6, text, ip->b) != 1)
        return -1;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(ip->b, mapped, 12) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        return 0;
    }
    ip->v6 = 1;
    return 0;
}

/* Whether the first bits of a and b agree. */

/* ---- macros (RFC 7208 7) ----------------------------------------------- */

static int spf_is_delim(char c)
{
    return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static void spf_url_escape(const char *s, size_t n, struct buf *out)
{
    /* RFC 7208 7.3: uppercase macros are URL-escaped; unreserved chars stay. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            buf_putc(out, (char)c);
        else
            buf_printf(out, "%%%02X", c);
    }
}

/* The value of a macro letter (lower case) into out; SPF_MACRO_* result. */
static int spf_macro_value(char letter, const struct spf_macro_ctx *ctx, struct buf *out)
{
    struct spf_ip ip;
    char text[INET6_ADDRSTRLEN];

    switch (letter) {
    case 's':
        buf_puts(out, ctx->sender != NULL ? ctx->sender : "");
        return SPF_MACRO_OK;
    case 'l':
        buf_puts(out, ctx->local != NULL ? ctx->local : "");
        return SPF_MACRO_OK;
    case 'o':
        buf_puts(out, ctx->sender_domain != NULL ? ctx->sender_domain : "");
        return SPF_MACRO_OK;
    case 'd':
        buf_puts(out, ctx->domain != NULL ? ctx->domain : "");
        return SPF_MACRO_OK;
    case 'h':
        buf_puts(out, ctx->helo != NULL ? ctx->helo : "");
        return SPF_MACRO_OK;
    case 'r':
        buf_puts(out, ctx->receiver != NULL ? ctx->receiver : "unknown");
        return SPF_MACRO_OK;
    case 't':
        buf_printf(out, "%lld", ctx->now);
        return SPF_MACRO_OK;
    case 'p':
        if (ctx->validated == NULL)
            return SPF_MACRO_NEED_P;
        buf_puts(out, ctx->validated);
        return SPF_MACRO_OK;
    case 'v':
    case 'i':
    case 'c':
        if (spf_ip_parse(ctx->ip, &ip) != 0) {
            buf_puts(out, letter == 'v' ? "in-addr" : "");
            return SPF_MACRO_OK;
        }
        if (letter == 'v') {
            buf_puts(out, ip.v6 ? "ip6" : "in-addr");
        } else if (!ip.v6) {
            buf_printf(out, "%u.%u.%u.%u", ip.b[0], ip.b[1], ip.b[2], ip.b[3]);
        } else if (letter == 'c') {
            inet_ntop(AF_INET6, ip.b, text, sizeof(text));
            buf_puts(out, text);
        } else {
            /* RFC 7208 7.3: "i" of an IPv6 address is its nibbles, dot-separated. */
            static const char hex[] = "0123456789abcdef";
            for (int k = 0; k < 16; k++)
                buf_printf(out, "%s%c.%c", k ? "." : "", hex[ip.b[k] >> 4], hex[ip.b[k] & 15]);
        }
        return SPF_MACRO_OK;
    }
    return SPF_MACRO_SYNTAX;
}

/*
 * Applies the transformers (RFC 7208 7.3): split on the delimiters, reverse
 * if asked, keep the rightmost n parts (0: all), join with dots.
 */
static void spf_transform(const char *v, size_t len, const char *delims, size_t ndelims,
                          int reverse, unsigned n, struct buf *out)
{
    size_t nparts = 1;
    for (size_t i = 0; i < len; i++)
        if (memchr(delims, v[i], ndelims) != NULL)
            nparts++;
    const char **start = xcalloc(nparts, sizeof(char *));
    size_t *plen = xcalloc(nparts, sizeof(size_t));
    size_t k = 0;
    start[0] = v;
    for (size_t i = 0; i < len; i++) {
        if (memchr(delims, v[i], ndelims) != NULL) {
            plen[k] = (size_t)(v + i - start[k]);
            start[++k] = v + i + 1;
        }
    }
    plen[k] = (size_t)(v + len - start[k]);

    /* The j-th part of the (possibly reversed) list; keep the rightmost n. */
    size_t begin = (n > 0 && n < nparts) ? nparts - n : 0;
    for (size_t j = begin; j < nparts; j++) {
        size_t idx = reverse ? nparts - 1 - j : j;
        if (j > begin)
            buf_putc(out, '.');
        buf_append(out, start[idx], plen[idx]);
    }
    free(start);
    free(plen);
}

/*
 * The scanner behind expansion and syntax checks. ends_with_macro tells
 * whether the text ends in a macro-expand (for domain-end, RFC 7208 7.1).
 */
int spf_macro_run(const char *text, const struct spf_macro_ctx *ctx, enum spf_macro_mode mode,
                  struct buf *out, int *ends_with_macro)
{
    struct buf val = BUF_INIT;
    int rc = SPF_MACRO_OK;
    int last_macro = 0;

    size_t base = out->len;
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        /* Expansion multiplies: cap what one string may grow to. */
        if (out->len - base > SPF_MACRO_MAX_OUT) {
            rc = SPF_MACRO_SYNTAX;
            goto out;
        }
        if (c != '%') {
            /* macro-literal = %x21-24 / %x26-7E; explain-string allows SP too. */
            if (!((c >= 0x21 && c <= 0x7e) || (c == ' ' && mode == SPF_MACRO_EXPLAIN))) {
                rc = SPF_MACRO_SYNTAX;
                goto out;
            }
            buf_putc(out, (char)c);
            last_macro = 0;
            continue;
        }
        last_macro = 1;
        p++;
        if (*p == '%') {
            buf_putc(out, '%');
            continue;
        }
        if (*p == '_') {
            buf_putc(out, ' ');
            continue;
        }
        if (*p == '-') {
            buf_puts(out, "%20");
            continue;
        }
        if (*p != '{') {
            rc = SPF_MACRO_SYNTAX;
            goto out;
        }
        p++;
        char letter = (char)tolower((unsigned char)*p);
        int upper = isupper((unsigned char)*p);
        if (strchr("slodiphvcrt", letter) == NULL || letter == '\0' ||
            (mode == SPF_MACRO_DOMAIN && strchr("crt", letter) != NULL)) {
            rc = SPF_MACRO_SYNTAX;
            goto out;
        }
        p++;
        unsigned n = 0;
        int have_digits = 0;
        while (isdigit((unsigned char)*p)) {
            have_digits = 1;
            if (n < 1000)
                n = n * 10 + (unsigned)(*p - '0');
            p++;
        }
        /* RFC 7208 7.1: the number of parts, when given, is not zero. */
        if (have_digits && n == 0) {
            rc = SPF_MACRO_SYNTAX;
            goto out;
        }
        int reverse = 0;
        if (*p == 'r' || *p == 'R') {
            reverse = 1;
            p++;
        }
        const char *delims = p;
        while (spf_is_delim(*p))
            p++;
        size_t ndelims = (size_t)(p - delims);
        if (*p != '}') {
            rc = SPF_MACRO_SYNTAX;
            goto out;
        }
        buf_reset(&val);
        buf_puts(&val, "");
        rc = spf_macro_value(letter, ctx, &val);
        if (rc != SPF_MACRO_OK)
            goto out;
        if (have_digits || reverse || ndelims > 0) {
            struct buf t = BUF_INIT;
            buf_puts(&t, "");
            spf_transform(val.data, val.len, ndelims ? delims : ".", ndelims ? ndelims : 1, reverse,
                          n, &t);
            buf_set(&val, buf_cstr(&t));
            buf_free(&t);
        }
        if (upper)
            spf_url_escape(val.data, val.len, out);
        else
            buf_append(out, val.data, val.len);
    }
out:
    buf_free(&val);
    if (ends_with_macro != NULL)
        *ends_with_macro = last_macro;
    return rc;
}

int spf_macro_expand(const char *text, const struct spf_macro_ctx *ctx, enum spf_macro_mode mode,
                     struct buf *out)
{
    if (out->data == NULL)
        buf_puts(out, "");
    return spf_macro_run(text, ctx, mode, out, NULL);
}

int spf_macro_uses_p(const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '{' && (p[2] == 'p' || p[2] == 'P'))
            return 1;
        if (p[1] != '\0')
            p++;
    }
    return 0;
}
