/*
 * spf_record: SPF record syntax (RFC 7208 4.6, 5, 6, 7.1, 12): splits a
 * "v=spf1" TXT record into mechanisms and modifiers, checking each term,
 * its domain-spec and its CIDR lengths, with a readable reason on error.
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

#define SPF_MAX_RECORD 65535 /* a TXT record cannot be longer */

/* Appends text for logs: bytes outside printable ASCII as \\xHH (remote input). */
void spf_put_safe(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            buf_putc(b, (char)c);
        else
            buf_printf(b, "\\x%02X", c);
    }
}

/* ---- record syntax (RFC 7208 4.6, 5, 6, 7.1, 12) ----------------------- */

int spf_is_record(const char *txt)
{
    /* RFC 7208 4.5: exactly "v=spf1", then a space or the end. */
    return strncasecmp(txt, "v=spf1", 6) == 0 && (txt[6] == ' ' || txt[6] == '\0');
}

/* toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int spf_toplabel_ok(const char *s, size_t n)
{
    int alpha = 0, dash = 0;
    if (n == 0 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalpha(c))
            alpha = 1;
        else if (c == '-')
            dash = 1;
        else if (!isdigit(c))
            return 0;
    }
    return alpha || dash;
}

/* domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static int spf_domain_spec_ok(const char *spec)
{
    static const struct spf_macro_ctx dummy = {"l@o", "l", "o", "d", "192.0.2.1", "h", "r", 0, "p"};
    struct buf scratch = BUF_INIT;
    int ends_macro = 0;
    int rc = spf_macro_run(spec, &dummy, SPF_MACRO_DOMAIN, &scratch, &ends_macro);
    buf_free(&scratch);
    if (spec[0] == '\0' || rc != SPF_MACRO_OK)
        return 0;
    if (ends_macro)
        return 1;
    size_t n = strlen(spec);
    if (spec[n - 1] == '.')
        n--;
    const char *dot = NULL;
    for (size_t i = n; i > 0; i--)
        if (spec[i - 1] == '.') {
            dot = spec + i - 1;
            break;
        }
    if (dot == NULL)
        return 0;
    return spf_toplabel_ok(dot + 1, (size_t)(spec + n - dot - 1));
}

/* "/N" with no leading zero and N <= max; -1 if not. */
static int spf_cidr_value(const char *s, size_t n, int max)
{
    if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/*
 * Splits a trailing dual-cidr-length ("/24", "//64", "/24//64") off s
 * (length *n, shortened). -1 on a malformed length.
 */
static int spf_split_cidr(const char *s, size_t *n, struct spf_mech *m, int allow4, int allow6)
{
    size_t len = *n;
    size_t i = len;
    while (i > 0 && isdigit((unsigned char)s[i - 1]))
        i--;
    if (i < len && i > 0 && s[i - 1] == '/') {
        if (i >= 2 && s[i - 2] == '/') {
            if (!allow6 || (m->cidr6 = spf_cidr_value(s + i, len - i, 128)) < 0)
                return -1;
            len = i - 2;
            i = len;
            while (i > 0 && isdigit((unsigned char)s[i - 1]))
                i--;
            if (!(i < len && i > 0 && s[i - 1] == '/' && (i < 2 || s[i - 2] != '/'))) {
                *n = len;
                return 0;
            }
        }
        if (!allow4 || (m->cidr4 = spf_cidr_value(s + i, len - i, 32)) < 0)
            return -1;
        len = i - 1;
    }
    *n = len;
    return 0;
}

static int spf_parse_mech(const char *t, size_t tlen, struct spf_mech *m, struct buf *err)
{
    size_t i = 0;
    m->qualifier = SPF_PASS;
    m->cidr4 = 32;
    m->cidr6 = 128;
    switch (t[0]) {
    case '+':
        i = 1;
        break;
    case '-':
        m->qualifier = SPF_FAIL;
        i = 1;
        break;
    case '~':
        m->qualifier = SPF_SOFTFAIL;
        i = 1;
        break;
    case '?':
        m->qualifier = SPF_NEUTRAL;
        i = 1;
        break;
    }
    static const struct {
        const char *name;
        enum spf_mech_type type;
    } names[] = {{"all", SPF_MECH_ALL}, {"include", SPF_MECH_INCLUDE}, {"a", SPF_MECH_A},
                 {"mx", SPF_MECH_MX},   {"ptr", SPF_MECH_PTR},         {"ip4", SPF_MECH_IP4},
                 {"ip6", SPF_MECH_IP6}, {"exists", SPF_MECH_EXISTS}};
    size_t nl = 0;
    while (i + nl < tlen && isalnum((unsigned char)t[i + nl]))
        nl++;
    size_t k;
    for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (strlen(names[k].name) == nl && strncasecmp(t + i, names[k].name, nl) == 0)
            break;
    const char *rest = t + i + nl;
    size_t rlen = tlen - i - nl;
    if (k == sizeof(names) / sizeof(names[0]) || (rlen > 0 && rest[0] != ':' && rest[0] != '/')) {
        buf_puts(err, "unknown mechanism '");
        spf_put_safe(err, t, tlen);
        buf_putc(err, '\'');
        return -1;
    }
    m->type = names[k].type;

    char addr[INET6_ADDRSTRLEN + 1];
    switch (m->type) {
    case SPF_MECH_ALL:
        if (rlen != 0)
            goto bad;
        return 0;
    case SPF_MECH_INCLUDE:
    case SPF_MECH_EXISTS:
    case SPF_MECH_PTR:
        if (rlen == 0 && m->type == SPF_MECH_PTR)
            return 0;
        if (rlen < 2 || rest[0] != ':')
            goto bad;
        m->domain_spec = xstrndup(rest + 1, rlen - 1);
        break;
    case SPF_MECH_A:
    case SPF_MECH_MX:
        if (spf_split_cidr(rest, &rlen, m, 1, 1) != 0)
            goto bad;
        if (rlen == 0)
            return 0;
        if (rlen < 2 || rest[0] != ':')
            goto bad;
        m->domain_spec = xstrndup(rest + 1, rlen - 1);
        break;
    case SPF_MECH_IP4:
        /* ip4-cidr-length only: "//N" is an error here. */
        if (spf_split_cidr(rest, &rlen, m, 1, 0) != 0)
            goto bad;
        if (rlen < 2 || rest[0] != ':' || rlen - 1 >= sizeof(addr))
            goto bad;
        memcpy(addr, rest + 1, rlen - 1);
        addr[rlen - 1] = '\0';
        if (inet_pton(AF_INET, addr, m->ip) != 1)
            goto bad;
        return 0;
    case SPF_MECH_IP6:
        /* "ip6:" terms are parsed by spf_parse_ip6(); anything else is malformed. */
        goto bad;
    }
    if (!spf_domain_spec_ok(m->domain_spec))
        goto bad;
    return 0;
bad:
    buf_puts(err, "bad mechanism '");
    spf_put_safe(err, t, tlen);
    buf_putc(err, '\'');
    return -1;
}

void spf_record_free(struct spf_record *rec)
{
    if (rec == NULL)
        return;
    for (size_t i = 0; i < rec->count; i++)
        free(rec->mechs[i].domain_spec);
    free(rec->mechs);
    free(rec->redirect);
    free(rec->exp);
    free(rec);
}

/* ip6 mechanisms: "/N" after the address, parsed here rather than as dual-cidr. */
static int spf_parse_ip6(const char *t, size_t tlen, struct spf_mech *m)
{
    const char *slash = memchr(t, '/', tlen);
    size_t alen = slash != NULL ? (size_t)(slash - t) : tlen;
    char addr[INET6_ADDRSTRLEN + 1];
    if (alen == 0 || alen >= sizeof(addr))
        return -1;
    memcpy(addr, t, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET6, addr, m->ip) != 1)
        return -1;
    m->cidr6 = 128;
    if (slash != NULL && (m->cidr6 = spf_cidr_value(slash + 1, tlen - alen - 1, 128)) < 0)
        return -1;
    return 0;
}

struct spf_record *spf_record_parse(const char *text, struct buf *err)
{
    if (!spf_is_record(text)) {
        buf_puts(err, "not an SPF record");
        return NULL;
    }
    if (strlen(text) > SPF_MAX_RECORD) {
        buf_puts(err, "record too long");
        return NULL;
    }
    struct spf_record *rec = xcalloc(1, sizeof(*rec));
    size_t cap = 0;
    const char *p = text + 6;

    for (;;) {
        /* terms = *( 1*SP ( directive / modifier ) ); only SP separates. */
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *t = p;
        while (*p != ' ' && *p != '\0')
            p++;
        size_t tlen = (size_t)(p - t);

        /* A modifier: name "=" with name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ). */
        size_t nl = 0;
        if (isalpha((unsigned char)t[0])) {
            nl = 1;
            while (nl < tlen &&
                   (isalnum((unsigned char)t[nl]) || t[nl] == '-' || t[nl] == '_' || t[nl] == '.'))
                nl++;
        }
        if (nl > 0 && nl < tlen && t[nl] == '=') {
            char *value = xstrndup(t + nl + 1, tlen - nl - 1);
            char **slot = NULL;
            if (nl == 8 && strncasecmp(t, "redirect", 8) == 0)
                slot = &rec->redirect;
            else if (nl == 3 && strncasecmp(t, "exp", 3) == 0)
                slot = &rec->exp;
            if (slot != NULL) {
                if (*slot != NULL || !spf_domain_spec_ok(value)) {
                    buf_printf(err, "%s '", *slot != NULL ? "repeated modifier" : "bad modifier");
                    spf_put_safe(err, t, tlen);
                    buf_putc(err, '\'');
                    free(value);
                    goto fail;
                }
                *slot = value;
                continue;
            }
            /* RFC 7208 6: unknown modifiers are ignored, but must be macro-strings. */
            static const struct spf_macro_ctx dummy = {"l@o", "l", "o", "d", "192.0.2.1",
                                                       "h",   "r", 0,   "p"};
            struct buf scratch = BUF_INIT;
            int rc = spf_macro_run(value, &dummy, SPF_MACRO_EXPLAIN, &scratch, NULL);
            buf_free(&scratch);
            free(value);
            if (rc != SPF_MACRO_OK) {
                buf_puts(err, "bad modifier '");
                spf_put_safe(err, t, tlen);
                buf_putc(err, '\'');
                goto fail;
            }
            continue;
        }

        if (rec->count == cap) {
            cap = cap ? cap * 2 : 8;
            rec->mechs = xrealloc(rec->mechs, cap * sizeof(*rec->mechs));
        }
        struct spf_mech *m = &rec->mechs[rec->count];
        memset(m, 0, sizeof(*m));
        rec->count++;
        /* ip6:ADDR/N — the address holds colons, so parse it apart. */
        size_t q = (t[0] == '+' || t[0] == '-' || t[0] == '~' || t[0] == '?') ? 1 : 0;
        if (tlen > q + 4 && strncasecmp(t + q, "ip6:", 4) == 0) {
            m->qualifier = q == 0        ? SPF_PASS
                           : t[0] == '-' ? SPF_FAIL
                           : t[0] == '~' ? SPF_SOFTFAIL
                           : t[0] == '?' ? SPF_NEUTRAL
                                         : SPF_PASS;
            m->type = SPF_MECH_IP6;
            m->cidr4 = 32;
            if (spf_parse_ip6(t + q + 4, tlen - q - 4, m) != 0) {
                buf_puts(err, "bad mechanism '");
                spf_put_safe(err, t, tlen);
                buf_putc(err, '\'');
                goto fail;
            }
            continue;
        }
        if (spf_parse_mech(t, tlen, m, err) != 0)
            goto fail;
    }
    return rec;
fail:
    spf_record_free(rec);
    return NULL;
}
