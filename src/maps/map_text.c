/*
 * Pure parsers for lookup-table sources: postmap(1) "key value" lines,
 * aliases(5) "name: value, value" lines and Postfix 3 inline:{...} specs.
 * No file access here, so every function is fuzzable (fuzz/fuzz_map_text.c,
 * fuzz/fuzz_aliases.c).
 */
#include "maps/map_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"

static void map_entries_add(struct map_entries *e, const char *key, size_t klen, const char *value,
                            size_t vlen, int line)
{
    if (e->count == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->items = xrealloc(e->items, e->cap * sizeof *e->items);
    }
    struct map_entry *it = &e->items[e->count++];
    it->key = xstrndup(key, klen);
    str_lower(it->key);
    it->value = xstrndup(value, vlen);
    it->line = line;
}

void map_entries_free(struct map_entries *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->count; i++) {
        free(e->items[i].key);
        free(e->items[i].value);
    }
    free(e->items);
    e->items = NULL;
    e->count = e->cap = 0;
}

static int map_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims white space from both ends of [*s, *s + *n). */
static void map_trim(const char **s, size_t *n)
{
    while (*n && map_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && map_is_space((*s)[*n - 1]))
        (*n)--;
}

/* "key whitespace value": the postmap(1) input format. */
static int map_parse_postmap_line(const char *s, size_t n, const char *name, int line,
                                  struct map_entries *out, struct buf *err)
{
    size_t k = 0;
    while (k < n && !map_is_space(s[k]))
        k++;
    const char *v = s + k;
    size_t vn = n - k;
    map_trim(&v, &vn);
    if (vn == 0) {
        buf_printf(err, "%s:%d: expected \"key whitespace value\"", name, line);
        return -1;
    }
    if (k > MAP_KEY_MAX) {
        buf_printf(err, "%s:%d: key longer than %d bytes", name, line, MAP_KEY_MAX);
        return -1;
    }
    map_entries_add(out, s, k, v, vn, line);
    return 0;
}

/* "name: value, value" or "\"quoted name\": value": the aliases(5) format. */
static int map_parse_alias_line(const char *s, size_t n, const char *name, int line,
                                struct map_entries *out, struct buf *err)
{
    struct buf key = BUF_INIT;
    size_t i = 0;
    if (s[0] == '"') {
        /* RFC 5322 quoted string: backslash quotes the next character. */
        for (i = 1; i < n && s[i] != '"'; i++) {
            if (s[i] == '\\' && i + 1 < n)
                i++;
            buf_putc(&key, s[i]);
        }
        if (i >= n) {
            buf_printf(err, "%s:%d: unterminated quoted alias name", name, line);
            goto fail;
        }
        i++;
        while (i < n && map_is_space(s[i]))
            i++;
        if (i >= n || s[i] != ':') {
            buf_printf(err, "%s:%d: expected ':' after the alias name", name, line);
            goto fail;
        }
    } else {
        while (i < n && s[i] != ':')
            i++;
        if (i >= n) {
            buf_printf(err, "%s:%d: expected \"name: value\"", name, line);
            goto fail;
        }
        const char *k = s;
        size_t kn = i;
        map_trim(&k, &kn);
        for (size_t j = 0; j < kn; j++)
            if (map_is_space(k[j])) {
                buf_printf(err, "%s:%d: white space in alias name (quote the name)", name, line);
                goto fail;
            }
        buf_append(&key, k, kn);
    }
    if (key.len == 0) {
        buf_printf(err, "%s:%d: empty alias name", name, line);
        goto fail;
    }
    if (key.len > MAP_KEY_MAX) {
        buf_printf(err, "%s:%d: alias name longer than %d bytes", name, line, MAP_KEY_MAX);
        goto fail;
    }
    const char *v = s + i + 1;
    size_t vn = n - i - 1;
    map_trim(&v, &vn);
    if (vn == 0) {
        buf_printf(err, "%s:%d: alias '%s' has no value", name, line, buf_cstr(&key));
        goto fail;
    }
    map_entries_add(out, key.data, key.len, v, vn, line);
    buf_free(&key);
    return 0;
fail:
    buf_free(&key);
    return -1;
}

int map_parse_text(const char *text, size_t len, const char *name, enum map_syntax syn,
                   struct map_entries *out, struct buf *err)
{
    struct buf logical = BUF_INIT;
    int logical_line = 0, line = 0;
    size_t pos = 0;
    if (len > MAP_TEXT_MAX) {
        buf_printf(err, "%s: larger than %u bytes", name, MAP_TEXT_MAX);
        return -1;
    }
    for (;;) {
        int eof = pos >= len;
        const char *s = text + pos;
        size_t n = 0;
        if (!eof) {
            const char *nl = memchr(s, '\n', len - pos);
            n = nl ? (size_t)(nl - s) : len - pos;
            pos += n + (nl ? 1 : 0);
            line++;
            if (memchr(s, '\0', n)) {
                buf_printf(err, "%s:%d: NUL byte in line", name, line);
                goto fail;
            }
            if (n && s[n - 1] == '\r')
                n--;
            /* Blank and comment lines neither start nor end a logical line. */
            size_t k = 0;
            while (k < n && map_is_space(s[k]))
                k++;
            if (k == n || s[k] == '#')
                continue;
            if (k > 0) {
                if (logical_line == 0) {
                    buf_printf(err, "%s:%d: continuation line without a line to continue", name,
                               line);
                    goto fail;
                }
                if (logical.len + n > MAP_LINE_MAX) {
                    buf_printf(err, "%s:%d: logical line longer than %u bytes", name, line,
                               MAP_LINE_MAX);
                    goto fail;
                }
                buf_append(&logical, s, n);
                continue;
            }
        }
        /* A line at the left margin (or the end) completes the previous one. */
        if (logical_line) {
            int rc =
                syn == MAP_SYNTAX_ALIASES
                    ? map_parse_alias_line(logical.data, logical.len, name, logical_line, out, err)
                    : map_parse_postmap_line(logical.data, logical.len, name, logical_line, out,
                                             err);
            if (rc < 0)
                goto fail;
            logical_line = 0;
        }
        if (eof)
            break;
        if (n > MAP_LINE_MAX) {
            buf_printf(err, "%s:%d: line longer than %u bytes", name, line, MAP_LINE_MAX);
            goto fail;
        }
        buf_reset(&logical);
        buf_append(&logical, s, n);
        logical_line = line;
    }
    buf_free(&logical);
    return 0;
fail:
    buf_free(&logical);
    map_entries_free(out);
    return -1;
}

/* Strips one pair of enclosing braces and the white space inside them. */
static void map_unbrace(const char **s, size_t *n)
{
    map_trim(s, n);
    if (*n >= 2 && (*s)[0] == '{' && (*s)[*n - 1] == '}') {
        (*s)++;
        *n -= 2;
        map_trim(s, n);
    }
}

struct map_token {
    const char *s;
    size_t n;
};

int map_parse_inline(const char *body, struct map_entries *out, struct buf *err)
{
    const char *s = body;
    size_t n = strlen(body);
    map_trim(&s, &n);
    if (n < 2 || s[0] != '{' || s[n - 1] != '}') {
        buf_printf(err, "inline table must be written {key=value, ...}");
        return -1;
    }
    s++;
    n -= 2;
    /* Tokens separated by commas/white space; braces keep their content whole. */
    struct map_token *tok = NULL;
    size_t ntok = 0, cap = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] == ',' || map_is_space(s[i])) {
            i++;
            continue;
        }
        size_t start = i;
        int depth = 0;
        while (i < n && (depth > 0 || (s[i] != ',' && !map_is_space(s[i])))) {
            if (s[i] == '{')
                depth++;
            else if (s[i] == '}') {
                if (depth == 0) {
                    buf_printf(err, "inline table: unbalanced '}'");
                    free(tok);
                    return -1;
                }
                depth--;
            }
            i++;
        }
        if (depth > 0) {
            buf_printf(err, "inline table: unbalanced '{'");
            free(tok);
            return -1;
        }
        if (ntok == cap) {
            cap = cap ? cap * 2 : 8;
            tok = xrealloc(tok, cap * sizeof *tok);
        }
        tok[ntok].s = s + start;
        tok[ntok].n = i - start;
        ntok++;
    }
    /*
     * Postfix separates entries by white space too, so "k = v" arrives as
     * three tokens; join a key with a following "=..." token and a "k=" with
     * a following bare value, so that spaces around '=' are accepted.
     */
    struct buf item = BUF_INIT;
    int rc = 0;
    for (size_t t = 0; t < ntok && rc == 0; t++) {
        buf_reset(&item);
        buf_append(&item, tok[t].s, tok[t].n);
        if (tok[t].s[0] != '{') {
            while (t + 1 < ntok) {
                const char *eq = memchr(item.data, '=', item.len);
                const struct map_token *nx = &tok[t + 1];
                int next_has_eq = memchr(nx->s, '=', nx->n) != NULL;
                if ((eq == NULL && nx->s[0] == '=') ||
                    (eq == item.data + item.len - 1 && !next_has_eq)) {
                    buf_append(&item, nx->s, nx->n);
                    t++;
                } else {
                    break;
                }
            }
        }
        const char *p = item.data;
        size_t pn = item.len;
        if (p[0] == '{')
            map_unbrace(&p, &pn);
        const char *eq = memchr(p, '=', pn);
        if (eq == NULL) {
            buf_printf(err, "inline table: expected key=value in \"%.*s\"", (int)pn, p);
            rc = -1;
            break;
        }
        const char *k = p, *v = eq + 1;
        size_t kn = (size_t)(eq - p), vn = pn - kn - 1;
        map_trim(&k, &kn);
        map_unbrace(&v, &vn);
        if (kn == 0 || kn > MAP_KEY_MAX) {
            buf_printf(err, "inline table: empty or too long key in \"%.*s\"", (int)pn, p);
            rc = -1;
            break;
        }
        map_entries_add(out, k, kn, v, vn, 0);
    }
    buf_free(&item);
    free(tok);
    if (rc < 0)
        map_entries_free(out);
    return rc;
}

char **map_split_addresses(const char *value, size_t *count)
{
    size_t n = 0, cap = 4;
    char **list = xmalloc(cap * sizeof *list);
    const char *p = value;
    for (;;) {
        while (*p == ',' || map_is_space(*p))
            p++;
        if (*p == '\0')
            break;
        struct buf one = BUF_INIT;
        int quoted = 0, angle = 0;
        while (*p && (quoted || angle || (*p != ',' && !map_is_space(*p)))) {
            if (quoted && *p == '\\' && p[1]) {
                buf_putc(&one, *p++);
            } else if (*p == '"') {
                quoted = !quoted;
            } else if (!quoted && *p == '<') {
                angle = 1;
            } else if (!quoted && *p == '>') {
                angle = 0;
            }
            buf_putc(&one, *p++);
        }
        /* "<a@b>" is the address a@b. */
        if (one.len >= 2 && one.data[0] == '<' && one.data[one.len - 1] == '>') {
            buf_consume(&one, 1);
            buf_truncate(&one, one.len - 1);
        }
        if (one.len == 0) {
            buf_free(&one);
            continue;
        }
        if (n + 2 > cap) {
            cap *= 2;
            list = xrealloc(list, cap * sizeof *list);
        }
        list[n++] = buf_steal(&one);
    }
    list[n] = NULL;
    if (count)
        *count = n;
    return list;
}
