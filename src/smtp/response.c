/*
 * SMTP reply parser and EHLO keyword reader for the client; see response.h.
 * Grammar from RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ]
 * CRLF ) Reply-code [ SP textstring ] CRLF, the codes all equal.
 */
#include "smtp/response.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "lib/xalloc.h"

void smtp_response_reset(struct smtp_response *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    memset(r, 0, sizeof *r);
}

void smtp_response_clear(struct smtp_response *r)
{
    smtp_response_reset(r);
}

/* RFC 5321 4.2: the first digit is 2..5, the second 0..5, the third 0..9. */
static int reply_code_ok(const char *s)
{
    return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '5' && s[2] >= '0' && s[2] <= '9';
}

/* Parses "D.DDD.DDD" (RFC 3463 2) at s; returns its length or 0. */
static size_t reply_enh_len(const char *s, size_t len)
{
    size_t i = 0;
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && i - start < 3 && isdigit((unsigned char)s[i]))
            i++;
        if (i == start || (i < len && isdigit((unsigned char)s[i])))
            return 0;
        if (part == 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && s[i] != ' ')
        return 0;
    return i;
}

enum smtp_response_feed smtp_response_feed(struct smtp_response *r, const char *line, size_t len,
                                           struct buf *err)
{
    if (r->done) {
        /* A new reply after a complete one: start over. */
        smtp_response_reset(r);
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > SMTP_RESPONSE_LINE_MAX) {
        buf_printf(err, "reply line longer than %d octets", SMTP_RESPONSE_LINE_MAX);
        return SMTP_RESPONSE_ERROR;
    }
    if (len < 3 || !reply_code_ok(line)) {
        buf_puts(err, "malformed reply: no valid reply code");
        return SMTP_RESPONSE_ERROR;
    }
    if (len > 3 && line[3] != ' ' && line[3] != '-') {
        buf_puts(err, "malformed reply: reply code not followed by space or hyphen");
        return SMTP_RESPONSE_ERROR;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        buf_printf(err, "malformed reply: code %d in a reply that began with %d", code, r->code);
        return SMTP_RESPONSE_ERROR;
    }
    if (r->nlines >= SMTP_RESPONSE_LINES_MAX) {
        buf_printf(err, "reply longer than %d lines", SMTP_RESPONSE_LINES_MAX);
        return SMTP_RESPONSE_ERROR;
    }
    r->code = code;
    int last = len == 3 || line[3] == ' ';
    const char *text = len > 4 ? line + 4 : "";
    size_t tlen = len > 4 ? len - 4 : 0;
    char *copy = xmalloc(tlen + 1);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)text[i];
        copy[i] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    copy[tlen] = '\0';
    r->lines[r->nlines++] = copy;
    if (r->nlines == 1) {
        size_t el = reply_enh_len(copy, tlen);
        /* RFC 2034 4: the class must match the reply code's first digit. */
        if (el > 0 && el < sizeof r->enh && copy[0] == line[0])
            memcpy(r->enh, copy, el), r->enh[el] = '\0';
    }
    if (last) {
        r->done = 1;
        return SMTP_RESPONSE_DONE;
    }
    return SMTP_RESPONSE_MORE;
}

/* The text of line i without a leading enhanced code equal to the reply's. */
static const char *reply_line_text(const struct smtp_response *r, size_t i)
{
    const char *t = r->lines[i];
    size_t el = strlen(r->enh);
    if (el > 0 && strncmp(t, r->enh, el) == 0 && (t[el] == ' ' || t[el] == '\0'))
        t += el + (t[el] == ' ');
    return t;
}

void smtp_response_format(const struct smtp_response *r, struct buf *out)
{
    buf_printf(out, "%03d", r->code);
    if (r->enh[0])
        buf_printf(out, " %s", r->enh);
    for (size_t i = 0; i < r->nlines; i++) {
        const char *t = reply_line_text(r, i);
        if (*t)
            buf_printf(out, " %s", t);
    }
}

const char *smtp_response_dsn(const struct smtp_response *r, char out[16])
{
    if (r->enh[0])
        str_copy(out, 16, r->enh);
    else
        snprintf(out, 16, "%d.0.0", r->code / 100 == 3 ? 2 : r->code / 100);
    return out;
}

/* Keyword word i of text t (space-separated), case-insensitive compare. */
static int ehlo_word_eq(const char *w, size_t wl, const char *kw)
{
    return strlen(kw) == wl && strncasecmp(w, kw, wl) == 0;
}

static unsigned ehlo_mech(const char *w, size_t wl)
{
    if (ehlo_word_eq(w, wl, "PLAIN"))
        return SMTP_EHLO_AUTH_PLAIN;
    if (ehlo_word_eq(w, wl, "LOGIN"))
        return SMTP_EHLO_AUTH_LOGIN;
    if (ehlo_word_eq(w, wl, "CRAM-MD5"))
        return SMTP_EHLO_AUTH_CRAM_MD5;
    if (ehlo_word_eq(w, wl, "XOAUTH2"))
        return SMTP_EHLO_AUTH_XOAUTH2;
    return SMTP_EHLO_AUTH_OTHER;
}

void smtp_ehlo_parse(const struct smtp_response *r, struct smtp_ehlo *out)
{
    memset(out, 0, sizeof *out);
    /* Line 0 is "domain greeting" (RFC 5321 4.1.1.1); keywords follow. */
    for (size_t i = 1; i < r->nlines; i++) {
        const char *t = r->lines[i];
        while (*t == ' ')
            t++;
        size_t kl = strcspn(t, " =");
        const char *args = t + kl;
        int auth_eq = 0;
        if (*args == '=')
            auth_eq = 1;
        if (ehlo_word_eq(t, kl, "PIPELINING"))
            out->ext |= SMTP_EHLO_PIPELINING;
        else if (ehlo_word_eq(t, kl, "8BITMIME"))
            out->ext |= SMTP_EHLO_8BITMIME;
        else if (ehlo_word_eq(t, kl, "SMTPUTF8"))
            out->ext |= SMTP_EHLO_SMTPUTF8;
        else if (ehlo_word_eq(t, kl, "DSN"))
            out->ext |= SMTP_EHLO_DSN;
        else if (ehlo_word_eq(t, kl, "STARTTLS"))
            out->ext |= SMTP_EHLO_STARTTLS;
        else if (ehlo_word_eq(t, kl, "CHUNKING"))
            out->ext |= SMTP_EHLO_CHUNKING;
        else if (ehlo_word_eq(t, kl, "ENHANCEDSTATUSCODES"))
            out->ext |= SMTP_EHLO_ENHANCEDSTATUSCODES;
        else if (ehlo_word_eq(t, kl, "SIZE") && !auth_eq) {
            out->ext |= SMTP_EHLO_SIZE;
            while (*args == ' ')
                args++;
            /* RFC 1870 4: an optional decimal limit; 0 or none means no limit. */
            unsigned long long v = 0;
            int digits = 0;
            while (isdigit((unsigned char)*args) && digits < 19) {
                v = v * 10 + (unsigned)(*args - '0');
                args++, digits++;
            }
            out->size = isdigit((unsigned char)*args) ? 0 : v;
        } else if (ehlo_word_eq(t, kl, "AUTH")) {
            out->ext |= SMTP_EHLO_AUTH;
            const char *p = args + 1;
            if (*args == '\0')
                continue;
            while (*p) {
                while (*p == ' ')
                    p++;
                size_t ml = strcspn(p, " ");
                if (ml > 0)
                    out->auth |= ehlo_mech(p, ml);
                p += ml;
            }
        }
    }
}
