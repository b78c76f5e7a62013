/*
 * RFC 5321 4.1.2 path grammar, RFC 6531 3.3 UTF-8 extensions, and the 4.5.3.1
 * length limits. A small cursor-based recursive-descent parser that writes
 * the normalised address as it goes.
 */
#include "smtp/address.h"

#include <arpa/inet.h>
#include <string.h>

struct cur {
    const unsigned char *p;
    size_t n; /* bytes left */
    unsigned opts;
    unsigned flags;
    int utf8_refused; /* saw UTF-8 without SMTPUTF8: a 553 5.6.7 rather than a 501 */
};

size_t smtp_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t need;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    unsigned cp = c & (0xff >> (need + 1));
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

char *smtp_printable(char *s, char repl)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t k = p[0] >= 0x80 ? smtp_utf8_seq(p, n) : (p[0] >= 0x20 && p[0] < 0x7f);
        if (k == 0) {
            *p = (unsigned char)repl;
            k = 1;
        }
        p += k;
        n -= k;
    }
    return s;
}

/* RFC 5322 3.2.3 atext. */
static int is_atext(unsigned c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-/=?^_`{|}~", (int)c) != NULL;
}

static int is_letdig(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A UTF-8 sequence at the cursor: its length when allowed, else 0 (and note why). */
static size_t cur_utf8(struct cur *c)
{
    if (c->n == 0 || c->p[0] < 0x80)
        return 0;
    size_t k = smtp_utf8_seq(c->p, c->n);
    if (k == 0)
        return 0;
    if (!(c->opts & SMTP_ADDR_ALLOW_UTF8)) {
        c->utf8_refused = 1;
        return 0;
    }
    c->flags |= SMTP_ADDR_UTF8;
    return k;
}

/* Appends to the output, failing when it would pass SMTP_PATH_MAX. */
static int out_put(struct smtp_path *o, const void *s, size_t k)
{
    if (o->len + k > SMTP_PATH_MAX)
        return -1;
    memcpy(o->addr + o->len, s, k);
    o->len += k;
    o->addr[o->len] = '\0';
    return 0;
}

/*
 * Domain (4.1.2 "Domain" / "address-literal"), written lower-cased to o
 * when o is non-NULL. Returns 0 or -1.
 */
static int parse_domain(struct cur *c, struct smtp_path *o)
{
    const unsigned char *start = c->p;
    if (c->n && c->p[0] == '[') {
        /* address-literal: "[" ( IPv4 / "IPv6:" IPv6 / tag ":" dcontent ) "]" */
        size_t i = 1;
        while (i < c->n && c->p[i] != ']') {
            unsigned ch = c->p[i];
            if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
                return -1;
            i++;
        }
        if (i >= c->n || i == 1 || i - 1 > 64)
            return -1;
        char tmp[80];
        memcpy(tmp, c->p + 1, i - 1);
        tmp[i - 1] = '\0';
        unsigned char bin[16];
        if (strncasecmp(tmp, "IPv6:", 5) == 0) {
            if (inet_pton(AF_INET6, tmp + 5, bin) != 1)
                return -1;
        } else if (strchr(tmp, ':')) {
            /* General-address-literal: Standardized-tag ":" 1*dcontent */
            char *colon = strchr(tmp, ':');
            if (colon == tmp || colon[1] == '\0')
                return -1;
            for (char *q = tmp; q < colon; q++)
                if (!is_letdig((unsigned char)*q) && *q != '-')
                    return -1;
        } else if (inet_pton(AF_INET, tmp, bin) != 1) {
            return -1;
        }
        c->flags |= SMTP_ADDR_LITERAL;
        if (o && out_put(o, c->p, i + 1) < 0)
            return -1;
        c->p += i + 1;
        c->n -= i + 1;
        return 0;
    }
    /* sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] or a U-label */
    for (;;) {
        size_t label = 0;
        int last_hyphen = 0;
        while (c->n) {
            unsigned ch = c->p[0];
            size_t k = 1;
            if (is_letdig(ch)) {
                last_hyphen = 0;
            } else if (ch == '-' && label > 0) {
                last_hyphen = 1;
            } else if (ch >= 0x80 && (k = cur_utf8(c)) > 0) {
                last_hyphen = 0;
            } else {
                break;
            }
            if (o) {
                char lc[4];
                memcpy(lc, c->p, k);
                if (k == 1 && lc[0] >= 'A' && lc[0] <= 'Z')
                    lc[0] = (char)(lc[0] - 'A' + 'a');
                if (out_put(o, lc, k) < 0)
                    return -1;
            }
            c->p += k;
            c->n -= k;
            label += k;
        }
        if (label == 0 || label > 63 || last_hyphen)
            return -1;
        if (c->n >= 2 && c->p[0] == '.') {
            if (o && out_put(o, ".", 1) < 0)
                return -1;
            c->p++;
            c->n--;
            continue;
        }
        break;
    }
    if ((size_t)(c->p - start) > SMTP_DOMAIN_MAX)
        return -1;
    return 0;
}

/*
 * Local-part = Dot-string / Quoted-string (4.1.2). The quoted form is
 * normalised: unquoted when its content is a valid Dot-string, otherwise
 * re-quoted with only '"' and '\' escaped. Returns the local part's
 * length in octets as the client wrote it (for the 64-octet limit, which
 * counts the encoded form), or -1.
 */
static int parse_local(struct cur *c, struct smtp_path *o)
{
    const unsigned char *start = c->p;
    if (c->n && c->p[0] == '"') {
        char raw[SMTP_PATH_MAX + 1];
        size_t rl = 0;
        c->p++;
        c->n--;
        for (;;) {
            if (c->n == 0)
                return -1;
            unsigned ch = c->p[0];
            size_t k = 1;
            if (ch == '"')
                break;
            if (ch == '\\') {
                /* quoted-pairSMTP = %d92 %d32-126 */
                if (c->n < 2 || c->p[1] < 32 || c->p[1] > 126)
                    return -1;
                c->p++;
                c->n--;
            } else if (ch >= 0x80) {
                if ((k = cur_utf8(c)) == 0)
                    return -1;
            } else if (ch < 32 || ch > 126) {
                return -1;
            }
            if (rl + k > SMTP_PATH_MAX)
                return -1;
            memcpy(raw + rl, c->p, k);
            rl += k;
            c->p += k;
            c->n -= k;
        }
        c->p++;
        c->n--;
        /* Does the content read as a Dot-string? Then it needs no quotes. */
        int dotstring = rl > 0 && raw[0] != '.' && raw[rl - 1] != '.';
        for (size_t i = 0; dotstring && i < rl; i++) {
            unsigned ch = (unsigned char)raw[i];
            if (ch == '.')
                dotstring = raw[i + 1] != '.';
            else if (!is_atext(ch) && ch < 0x80)
                dotstring = 0;
        }
        if (dotstring)
            return out_put(o, raw, rl) < 0 ? -1 : (int)(c->p - start);
        c->flags |= SMTP_ADDR_QUOTED;
        if (out_put(o, "\"", 1) < 0)
            return -1;
        for (size_t i = 0; i < rl; i++) {
            if ((raw[i] == '"' || raw[i] == '\\') && out_put(o, "\\", 1) < 0)
                return -1;
            if (out_put(o, raw + i, 1) < 0)
                return -1;
        }
        if (out_put(o, "\"", 1) < 0)
            return -1;
        return (int)(c->p - start);
    }
    /* Dot-string = Atom *("." Atom) */
    for (;;) {
        size_t atom = 0;
        while (c->n) {
            size_t k = 1;
            if (!is_atext(c->p[0]) && (c->p[0] < 0x80 || (k = cur_utf8(c)) == 0))
                break;
            if (out_put(o, c->p, k) < 0)
                return -1;
            c->p += k;
            c->n -= k;
            atom += k;
        }
        if (atom == 0)
            return -1;
        if (c->n && c->p[0] == '.') {
            if (out_put(o, ".", 1) < 0)
                return -1;
            c->p++;
            c->n--;
            continue;
        }
        break;
    }
    return (int)(c->p - start);
}

static int parse_mailbox(struct cur *c, struct smtp_path *o, int until_gt, struct smtp_reply *err)
{
    int ll = parse_local(c, o);
    if (ll < 0)
        goto syntax;
    if (ll > SMTP_LOCAL_MAX) {
        smtp_reply_set(err, 501, "5.1.3", "Local part of the address is too long");
        return -1;
    }
    if (until_gt && c->n && c->p[0] == '>' &&
        ((c->opts & SMTP_ADDR_ALLOW_UNQUALIFIED) ||
         ((c->opts & SMTP_ADDR_ALLOW_POSTMASTER) && strcasecmp(o->addr, "postmaster") == 0))) {
        /* RFC 5321 4.1.1.3: "Postmaster" without a domain must be accepted. */
        c->flags |= SMTP_ADDR_NO_DOMAIN;
        o->at = o->len;
        return 0;
    }
    if (c->n == 0 || c->p[0] != '@')
        goto syntax;
    o->at = o->len;
    if (out_put(o, "@", 1) < 0)
        goto toolong;
    c->p++;
    c->n--;
    const unsigned char *dstart = c->p;
    if (parse_domain(c, o) < 0) {
        if ((size_t)(c->p - dstart) > SMTP_DOMAIN_MAX)
            goto toolong;
        goto syntax;
    }
    return 0;
toolong:
    smtp_reply_set(err, 501, "5.1.3", "Address is too long");
    return -1;
syntax:
    if (c->utf8_refused)
        smtp_reply_set(err, 553, "5.6.7", "UTF-8 address requires SMTPUTF8");
    else
        smtp_reply_set(err, 501, "5.1.3", "Bad address syntax");
    return -1;
}

int smtp_path_parse(const char *s, size_t len, unsigned opts, struct smtp_path *out, size_t *end,
                    struct smtp_reply *err)
{
    struct cur c = {(const unsigned char *)s, len, opts, 0, 0};
    out->len = 0;
    out->at = 0;
    out->addr[0] = '\0';
    out->flags = 0;
    if (len == 0 || s[0] != '<') {
        smtp_reply_set(err, 501, "5.5.4", "Syntax error: the address must be in angle brackets");
        return -1;
    }
    c.p++;
    c.n--;
    if (c.n && c.p[0] == '>') {
        if (!(opts & SMTP_ADDR_ALLOW_NULL)) {
            smtp_reply_set(err, 501, "5.1.3", "The null address is not allowed here");
            return -1;
        }
        out->flags = SMTP_ADDR_NULL;
        *end = 2;
        return 0;
    }
    if (c.n && c.p[0] == '@') {
        /* A-d-l ":" (source route): parsed for syntax, then ignored (RFC 5321 appendix C). */
        for (;;) {
            c.p++;
            c.n--;
            if (parse_domain(&c, NULL) < 0)
                goto syntax;
            if (c.n && c.p[0] == ',') {
                c.p++;
                c.n--;
                if (c.n == 0 || c.p[0] != '@')
                    goto syntax;
                continue;
            }
            if (c.n && c.p[0] == ':') {
                c.p++;
                c.n--;
                break;
            }
            goto syntax;
        }
        c.flags |= SMTP_ADDR_ROUTE;
        c.flags &= ~(unsigned)SMTP_ADDR_LITERAL;
    }
    if (parse_mailbox(&c, out, 1, err) < 0)
        return -1;
    if (c.n == 0 || c.p[0] != '>')
        goto syntax;
    c.p++;
    c.n--;
    if (len - c.n > SMTP_PATH_MAX) {
        smtp_reply_set(err, 501, "5.1.3", "Address is too long");
        return -1;
    }
    out->flags = c.flags;
    *end = len - c.n;
    return 0;
syntax:
    if (c.utf8_refused)
        smtp_reply_set(err, 553, "5.6.7", "UTF-8 address requires SMTPUTF8");
    else
        smtp_reply_set(err, 501, "5.1.3", "Bad address syntax");
    return -1;
}

int smtp_mailbox_parse(const char *s, size_t len, unsigned opts, struct smtp_path *out,
                       struct smtp_reply *err)
{
    struct cur c = {(const unsigned char *)s, len,
                    opts & ~(unsigned)(SMTP_ADDR_ALLOW_POSTMASTER | SMTP_ADDR_ALLOW_UNQUALIFIED), 0,
                    0};
    out->len = 0;
    out->at = 0;
    out->addr[0] = '\0';
    out->flags = 0;
    if (len > SMTP_PATH_MAX - 2) {
        smtp_reply_set(err, 501, "5.1.3", "Address is too long");
        return -1;
    }
    if (parse_mailbox(&c, out, 0, err) < 0)
        return -1;
    if (c.n != 0) {
        smtp_reply_set(err, 501, "5.1.3", "Bad address syntax");
        return -1;
    }
    out->flags = c.flags;
    return 0;
}

int smtp_domain_valid(const char *s, size_t len, int allow_utf8)
{
    struct cur c = {(const unsigned char *)s, len, allow_utf8 ? SMTP_ADDR_ALLOW_UTF8 : 0, 0, 0};
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return 0;
    return parse_domain(&c, NULL) == 0 && c.n == 0;
}
