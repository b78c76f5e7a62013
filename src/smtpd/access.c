/*
 * access(5) values and lookup keys; see access.h. Words are matched
 * case-insensitively, as Postfix does; the text after the word is kept as
 * written (it goes into the reply).
 */
#include "smtpd/access.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"
#include "lib/xalloc.h"

static const struct {
    const char *word;
    enum access_action action;
} access_words[] = {
    {"DUNNO", ACCESS_DUNNO},
    {"OK", ACCESS_OK},
    {"RELAY", ACCESS_OK},
    {"REJECT", ACCESS_REJECT},
    {"DEFER", ACCESS_DEFER},
    {"DEFER_IF_PERMIT", ACCESS_DEFER_IF_PERMIT},
    {"DEFER_IF_REJECT", ACCESS_DEFER_IF_REJECT},
    {"HOLD", ACCESS_HOLD},
    {"DISCARD", ACCESS_DISCARD},
    {"PREPEND", ACCESS_PREPEND},
    {"REDIRECT", ACCESS_REDIRECT},
    {"WARN", ACCESS_WARN},
    {"INFO", ACCESS_INFO},
    {"FILTER", ACCESS_UNSUPPORTED},
    {"BCC", ACCESS_UNSUPPORTED},
    {"DELAY", ACCESS_UNSUPPORTED},
    {"HANGUP", ACCESS_UNSUPPORTED},
};

const char *access_action_name(enum access_action a)
{
    switch (a) {
    case ACCESS_HOLD:
        return "hold";
    case ACCESS_DISCARD:
        return "discard";
    case ACCESS_REDIRECT:
        return "redirect";
    case ACCESS_WARN:
        return "warn";
    case ACCESS_INFO:
        return "info";
    case ACCESS_PREPEND:
        return "prepend";
    default:
        return "access";
    }
}

int access_dsn_split(const char *text, char *dsn, size_t dsn_size, const char **rest)
{
    /* RFC 3463: class "." subject (1-3 digits) "." detail (1-3 digits). */
    const char *p = text;
    if ((p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
        return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;
        while (isdigit((unsigned char)*p) && n < 4)
            p++, n++;
        if (n == 0 || n > 3)
            return 0;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    if (*p && *p != ' ' && *p != '\t')
        return 0;
    size_t len = (size_t)(p - text);
    if (len >= dsn_size)
        return 0;
    memcpy(dsn, text, len);
    dsn[len] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    *rest = p;
    return 1;
}

void access_parse(const char *value, struct access_result *out)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    while (*value == ' ' || *value == '\t')
        value++;
    size_t wlen = strcspn(value, " \t");
    const char *rest = value + wlen;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    out->text = rest;
    if (wlen == 0) {
        /* Postfix: an empty right-hand side is OK, with a warning. */
        out->action = ACCESS_OK;
        return;
    }
    for (size_t i = 0; i < sizeof access_words / sizeof access_words[0]; i++) {
        if (strlen(access_words[i].word) == wlen &&
            strncasecmp(value, access_words[i].word, wlen) == 0) {
            out->action = access_words[i].action;
            if ((out->action == ACCESS_REJECT || out->action == ACCESS_DEFER ||
                 out->action == ACCESS_DEFER_IF_PERMIT || out->action == ACCESS_DEFER_IF_REJECT) &&
                access_dsn_split(rest, out->dsn, sizeof out->dsn, &out->text) && out->dsn[0] == '2')
                out->dsn[0] = '\0'; /* a 2.x.x code on a refusal is ignored */
            if (out->action == ACCESS_PREPEND) {
                /* "Name: value", a header field name of printable characters. */
                size_t n = strcspn(rest, ":");
                if (n == 0 || rest[n] != ':')
                    out->action = ACCESS_BAD;
                for (size_t k = 0; k < n && out->action == ACCESS_PREPEND; k++)
                    if (rest[k] <= ' ' || rest[k] > '~')
                        out->action = ACCESS_BAD;
            }
            if (out->action == ACCESS_REDIRECT && !strchr(rest, '@'))
                out->action = ACCESS_BAD;
            return;
        }
    }
    /* All digits: OK (some out-of-band schemes store a time stamp). */
    size_t digits = strspn(value, "0123456789");
    if (digits == wlen && value[wlen] == '\0') {
        out->action = ACCESS_OK;
        return;
    }
    /* "4NN text" / "5NN text": a refusal with this code. */
    if (wlen == 3 && digits == 3 && (value[0] == '4' || value[0] == '5')) {
        if (!*rest) {
            out->action = ACCESS_BAD; /* Postfix wants text after the code */
            return;
        }
        out->code = atoi(value);
        out->action = value[0] == '4' ? ACCESS_DEFER : ACCESS_REJECT;
        if (access_dsn_split(rest, out->dsn, sizeof out->dsn, &out->text) &&
            out->dsn[0] != value[0])
            out->dsn[0] = value[0];
        return;
    }
    if (digits == wlen || (wlen == 3 && digits == 3)) {
        out->action = ACCESS_BAD; /* 2NN, 1NN... */
        return;
    }
    /* A lookup table in a value is refused by Postfix too: use a restriction class. */
    if (strchr(value, ':') != NULL) {
        out->action = ACCESS_BAD;
        return;
    }
    out->action = ACCESS_RESTRICTIONS;
    out->text = value;
}

/* ---- keys ---- */

struct keylist {
    char **items;
    size_t count, cap;
};

static void keys_add(struct keylist *k, const char *s, size_t len)
{
    if (k->count + 2 > k->cap) {
        k->cap = k->cap ? k->cap * 2 : 8;
        k->items = xrealloc(k->items, k->cap * sizeof *k->items);
    }
    char *v = xstrndup(s, len);
    str_lower(v);
    k->items[k->count++] = v;
    k->items[k->count] = NULL;
}

static char **keys_done(struct keylist *k, size_t *count)
{
    if (!k->items) {
        k->items = xcalloc(1, sizeof *k->items);
    }
    if (count)
        *count = k->count;
    return k->items;
}

static void keys_domain(struct keylist *k, const char *name)
{
    size_t len = strlen(name);
    if (len && name[len - 1] == '.')
        len--; /* a trailing dot names the same host */
    if (!len)
        return;
    keys_add(k, name, len);
    /* Parent domains, bare (parent_domain_matches_subdomains has smtpd_access_maps). */
    for (size_t i = 0; i < len; i++)
        if (name[i] == '.' && i + 1 < len)
            keys_add(k, name + i + 1, len - i - 1);
}

char **access_keys_host(const char *name, size_t *count)
{
    struct keylist k = {0};
    if (name && *name && name[0] != '[')
        keys_domain(&k, name);
    else if (name && *name)
        keys_add(&k, name, strlen(name));
    return keys_done(&k, count);
}

char **access_keys_addr(const char *addr, size_t *count)
{
    struct keylist k = {0};
    const char *at = strrchr(addr, '@');
    if (!at) {
        keys_add(&k, addr, strlen(addr));
        return keys_done(&k, count);
    }
    keys_add(&k, addr, strlen(addr));
    keys_domain(&k, at + 1);
    keys_add(&k, addr, (size_t)(at - addr) + 1);
    return keys_done(&k, count);
}

char **access_keys_ip(const char *ip, size_t *count)
{
    struct keylist k = {0};
    size_t len = strlen(ip);
    char sep = strchr(ip, ':') ? ':' : '.';
    keys_add(&k, ip, len);
    while (len > 0) {
        while (len > 0 && ip[len - 1] != sep)
            len--;
        while (len > 0 && ip[len - 1] == sep)
            len--; /* "::" collapses: no empty fields */
        if (len)
            keys_add(&k, ip, len);
    }
    return keys_done(&k, count);
}
