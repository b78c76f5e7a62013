/*
 * Recipient resolution (see resolve.h): domain classes from mydestination,
 * virtual_mailbox_domains and relay_domains; virtual(5) and aliases(5)
 * expansion with recipient_delimiter, catch-all and a loop/depth guard; the
 * Maildir of each final local recipient. Immutable after resolver_new, so it
 * may be shared between threads (the tables lock what they must).
 */
#include "queue/resolve.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_text.h"

#define RESOLVE_MAX_DEPTH 20    /* alias of an alias of ... */
#define RESOLVE_MAX_RCPTS 1000  /* final recipients of one address */
#define RESOLVE_MAX_STEPS 10000 /* addresses visited, against exponential fan-out */
#define RESOLVE_MAX_ADDR 1024

/* One item of a domain list: a name, ".parent" (subdomains), a table, or "!" negated. */
struct resolve_dom {
    char *name;
    struct map *map;
    int negate;
};

struct resolve_domlist {
    struct resolve_dom *items;
    size_t count;
};

struct resolver {
    struct resolve_domlist mydest, vmdomains, relay;
    struct map_list *aliases, *valias, *vmbox;
    char *base;
    char *myorigin;
    char *delims;
};

static void resolve_domlist_free(struct resolve_domlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].name);
        map_free(l->items[i].map);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int resolve_domlist_open(struct resolve_domlist *l, const struct config *cfg,
                                const char *key, struct buf *err)
{
    size_t n = 0;
    char **items = config_get_list(cfg, key, &n);
    l->items = xcalloc(n ? n : 1, sizeof *l->items);
    for (size_t i = 0; i < n; i++) {
        const char *it = items[i];
        struct resolve_dom *d = &l->items[l->count];
        if (*it == '!') {
            d->negate = 1;
            it++;
        }
        if (*it == '/') {
            buf_printf(err, "%s: file pattern '%s' is not supported; use texthash:%s", key, it, it);
            goto fail;
        }
        if (strchr(it, ':')) {
            struct buf e = BUF_INIT;
            d->map = map_open(it, &e);
            if (d->map == NULL) {
                buf_printf(err, "%s: %s", key, buf_cstr(&e));
                buf_free(&e);
                goto fail;
            }
            buf_free(&e);
        } else {
            d->name = xstrdup(it);
            str_lower(d->name);
        }
        l->count++;
    }
    strlist_free(items);
    return 0;
fail:
    strlist_free(items);
    resolve_domlist_free(l);
    return -1;
}

/*
 * 1 the domain is in the list, 0 not, -1 a table could not answer (err
 * set); with nowait, RESOLVER_WOULD_WAIT when the answer needs a table
 * that may wait on the network (items before it did not match).
 */
static int resolve_domlist_match(const struct resolve_domlist *l, const char *domain,
                                 struct buf *err, int nowait)
{
    size_t dn = strlen(domain);
    for (size_t i = 0; i < l->count; i++) {
        const struct resolve_dom *d = &l->items[i];
        int hit = 0;
        if (d->map && nowait && map_may_block(d->map)) {
            return RESOLVER_WOULD_WAIT;
        } else if (d->map) {
            struct buf v = BUF_INIT;
            enum map_result r = map_lookup(d->map, domain, &v, err);
            buf_free(&v);
            if (r == MAP_TEMPFAIL)
                return -1;
            hit = r == MAP_FOUND;
        } else if (d->name[0] == '.') {
            size_t pn = strlen(d->name);
            hit = dn > pn && str_eq_ci(domain + dn - pn, d->name);
        } else {
            hit = str_eq_ci(domain, d->name);
        }
        if (hit)
            return d->negate ? 0 : 1;
    }
    return 0;
}

static struct map_list *resolve_maps_open(const struct config *cfg, const char *key,
                                          struct buf *err)
{
    struct buf e = BUF_INIT;
    struct map_list *l = map_list_open(config_get(cfg, key), &e);
    if (l == NULL)
        buf_printf(err, "%s: %s", key, buf_cstr(&e));
    buf_free(&e);
    return l;
}

struct resolver *resolver_new(const struct config *cfg, struct buf *err)
{
    struct resolver *r = xcalloc(1, sizeof *r);
    if (resolve_domlist_open(&r->mydest, cfg, "mydestination", err) < 0 ||
        resolve_domlist_open(&r->vmdomains, cfg, "virtual_mailbox_domains", err) < 0 ||
        resolve_domlist_open(&r->relay, cfg, "relay_domains", err) < 0)
        goto fail;
    if ((r->aliases = resolve_maps_open(cfg, "alias_maps", err)) == NULL ||
        (r->valias = resolve_maps_open(cfg, "virtual_alias_maps", err)) == NULL ||
        (r->vmbox = resolve_maps_open(cfg, "virtual_mailbox_maps", err)) == NULL)
        goto fail;
    r->base = xstrdup(config_get(cfg, "virtual_mailbox_base"));
    size_t bn = strlen(r->base);
    while (bn > 1 && r->base[bn - 1] == '/')
        r->base[--bn] = '\0';
    r->myorigin = xstrdup(config_get(cfg, "myorigin"));
    str_lower(r->myorigin);
    r->delims = xstrdup(config_get(cfg, "recipient_delimiter"));
    return r;
fail:
    resolver_free(r);
    return NULL;
}

void resolver_free(struct resolver *r)
{
    if (r == NULL)
        return;
    resolve_domlist_free(&r->mydest);
    resolve_domlist_free(&r->vmdomains);
    resolve_domlist_free(&r->relay);
    map_list_free(r->aliases);
    map_list_free(r->valias);
    map_list_free(r->vmbox);
    free(r->base);
    free(r->myorigin);
    free(r->delims);
    free(r);
}

/* The domain of an address (after the last '@'), or myorigin when there is none. */
static const char *resolve_domain_of(const struct resolver *r, const char *address)
{
    const char *at = strrchr(address, '@');
    return at ? at + 1 : r->myorigin;
}

/* -1 tempfail, RESOLVER_WOULD_WAIT (nowait only), else the class. */
static int resolve_class_of(struct resolver *r, const char *domain, struct buf *err, int nowait)
{
    int m = resolve_domlist_match(&r->mydest, domain, err, nowait);
    if (m == 0)
        m = resolve_domlist_match(&r->vmdomains, domain, err, nowait);
    if (m < 0)
        return m == RESOLVER_WOULD_WAIT ? m : -1;
    if (m)
        return RESOLVE_LOCAL;
    m = resolve_domlist_match(&r->relay, domain, err, nowait);
    if (m < 0)
        return m == RESOLVER_WOULD_WAIT ? m : -1;
    return m ? RESOLVE_RELAY : RESOLVE_REMOTE;
}

enum resolve_class resolver_classify(struct resolver *r, const char *address)
{
    struct buf err = BUF_INIT;
    int c = resolve_class_of(r, resolve_domain_of(r, address), &err, 0);
    if (c < 0) {
        /* Conservative: an unknown domain is not accepted without mynetworks/AUTH. */
        log_warning("%s", buf_cstr(&err));
        c = RESOLVE_REMOTE;
    }
    buf_free(&err);
    return (enum resolve_class)c;
}

int resolver_expand_may_block(const struct resolver *r)
{
    return map_list_may_block(r->aliases) || map_list_may_block(r->valias) ||
           map_list_may_block(r->vmbox);
}

static int resolve_domlist_may_block(const struct resolve_domlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        if (map_may_block(l->items[i].map))
            return 1;
    return 0;
}

int resolver_class_may_block(const struct resolver *r)
{
    return resolve_domlist_may_block(&r->mydest) || resolve_domlist_may_block(&r->vmdomains) ||
           resolve_domlist_may_block(&r->relay);
}

int resolver_class(struct resolver *r, const char *address, struct buf *err)
{
    return resolve_class_of(r, resolve_domain_of(r, address), err, 0);
}

int resolver_class_nowait(struct resolver *r, const char *address, struct buf *err)
{
    return resolve_class_of(r, resolve_domain_of(r, address), err, 1);
}

int resolver_lookup_rcpt_may_block(struct resolver *r, const char *address)
{
    struct buf err = BUF_INIT;
    int c = resolver_class_nowait(r, address, &err);
    buf_free(&err);
    return c == RESOLVER_WOULD_WAIT || (c == RESOLVE_LOCAL && resolver_expand_may_block(r));
}

enum map_result resolver_lookup_rcpt(struct resolver *r, const char *address,
                                     enum resolve_class *cls, struct resolved_list *out,
                                     struct buf *err)
{
    int c = resolver_class(r, address, err);
    if (c < 0)
        return MAP_TEMPFAIL;
    *cls = (enum resolve_class)c;
    if (c != RESOLVE_LOCAL)
        return MAP_FOUND; /* out stays empty: delivered as written */
    return resolver_expand(r, address, out, err);
}

void resolved_list_free(struct resolved_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].address);
        free(l->items[i].mailbox);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

enum resolve_stage {
    RESOLVE_STAGE_VIRTUAL, /* virtual_alias_maps, then on */
    RESOLVE_STAGE_ALIAS,   /* alias_maps, then on */
    RESOLVE_STAGE_FINAL,   /* no more rewriting */
};

struct resolve_ctx {
    struct resolver *r;
    const char *original;
    struct resolved_list *out;
    size_t cap;
    const char *stack[RESOLVE_MAX_DEPTH + 1]; /* addresses being expanded */
    int depth;
    int steps;
    int loops;
    struct buf *err;
};

/* An address split for lookups: local part, its extension (with delimiter), domain. */
struct resolve_addr {
    char *full;   /* local@domain, domain lower-cased */
    char *local;  /* as written */
    char *user;   /* local without extension */
    char *ext;    /* "+ext" or "" */
    char *domain; /* lower-cased */
};

static void resolve_addr_free(struct resolve_addr *a)
{
    free(a->full);
    free(a->local);
    free(a->user);
    free(a->ext);
    free(a->domain);
}

static void resolve_addr_split(const struct resolver *r, const char *address,
                               struct resolve_addr *a)
{
    const char *at = strrchr(address, '@');
    a->local = at ? xstrndup(address, (size_t)(at - address)) : xstrdup(address);
    a->domain = xstrdup(at ? at + 1 : r->myorigin);
    str_lower(a->domain);
    a->full = xasprintf("%s@%s", a->local, a->domain);
    /* Postfix split_addr: the first delimiter character splits, but not owner-x / x-request. */
    size_t cut = strlen(a->local);
    if (r->delims[0]) {
        size_t pos = strcspn(a->local, r->delims);
        int keep = 0;
        if (a->local[pos] == '-') {
            size_t ln = strlen(a->local);
            keep = str_prefix_ci(a->local, "owner-") ||
                   (ln > 8 && str_eq_ci(a->local + ln - 8, "-request"));
        }
        if (pos > 0 && a->local[pos] && !keep)
            cut = pos;
    }
    a->user = xstrndup(a->local, cut);
    a->ext = xstrdup(a->local + cut);
}

static int resolve_eq(const char *a, const char *b)
{
    return str_eq_ci(a, b);
}

/* Sets why the expansion found nobody: the enhanced status apart from the text. */
static void resolve_why(struct resolved_list *out, struct buf *err, const char *status,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void resolve_why(struct resolved_list *out, struct buf *err, const char *status,
                        const char *fmt, ...)
{
    /* Our own literals, "x.y.z": they always fit. */
    str_copy(out->status, sizeof out->status, status);
    buf_reset(err);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(err, fmt, ap);
    va_end(ap);
}

static enum map_result resolve_tempfail(struct resolve_ctx *c, const char *why)
{
    resolve_why(c->out, c->err, "4.3.0", "<%s>: Temporary lookup failure: %s", c->original, why);
    return MAP_TEMPFAIL;
}

static enum map_result resolve_add(struct resolve_ctx *c, const char *address,
                                   enum resolve_class cls, char *mailbox, int virtual_domain)
{
    for (size_t i = 0; i < c->out->count; i++)
        if (resolve_eq(c->out->items[i].address, address)) {
            free(mailbox);
            return MAP_FOUND; /* a duplicate: one delivery is enough */
        }
    if (c->out->count >= RESOLVE_MAX_RCPTS) {
        free(mailbox);
        return resolve_tempfail(c, "alias expansion has more than 1000 recipients");
    }
    if (c->out->count == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->out->items = xrealloc(c->out->items, c->cap * sizeof *c->out->items);
    }
    struct resolved_rcpt *it = &c->out->items[c->out->count++];
    it->address = xstrdup(address);
    it->cls = cls;
    it->mailbox = mailbox;
    it->virtual_domain = virtual_domain;
    return MAP_FOUND;
}

/*
 * The file-system rule for a local part used as a directory name: unquoted,
 * lower-cased, extension removed; refused when empty, starting with '.',
 * containing '/', "..", or a control byte (0x00-0x1f, 0x7f). Bytes >= 0x80
 * (UTF-8 local parts, RFC 6531) are kept. NULL when refused.
 */
static char *resolve_safe_name(const char *user)
{
    struct buf b = BUF_INIT;
    size_t n = strlen(user);
    if (n >= 2 && user[0] == '"' && user[n - 1] == '"') {
        for (size_t i = 1; i + 1 < n; i++) {
            if (user[i] == '\\' && i + 2 < n)
                i++;
            buf_putc(&b, user[i]);
        }
    } else {
        buf_append(&b, user, n);
    }
    char *s = buf_steal(&b);
    if (s == NULL)
        return NULL;
    str_lower(s);
    int bad = s[0] == '\0' || s[0] == '.' || strchr(s, '/') || strstr(s, "..");
    for (const unsigned char *p = (const unsigned char *)s; !bad && *p; p++)
        bad = *p < 0x20 || *p == 0x7f;
    if (bad) {
        free(s);
        return NULL;
    }
    return s;
}

/* A mailbox-map value is a path relative to virtual_mailbox_base: same rule per component. */
static int resolve_safe_relpath(const char *v)
{
    if (v[0] == '\0' || v[0] == '/')
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += n;
        while (*p == '/')
            p++;
    }
    return 1;
}

/* The final step for a local address: its Maildir, or 5.1.1. */
static enum map_result resolve_local_final(struct resolve_ctx *c, const struct resolve_addr *a,
                                           int mydest)
{
    struct resolver *r = c->r;
    if (a->domain[0] == '\0' || a->domain[0] == '.' || strchr(a->domain, '/') ||
        strstr(a->domain, "..")) {
        resolve_why(c->out, c->err, "5.1.2", "<%s>: Recipient address rejected: bad domain name",
                    c->original);
        return MAP_NOTFOUND;
    }
    char *name = resolve_safe_name(a->user);
    if (name == NULL) {
        resolve_why(c->out, c->err, "5.1.3",
                    "<%s>: Recipient address rejected: local part not usable as a "
                    "mailbox name",
                    c->original);
        return MAP_NOTFOUND;
    }
    char *mailbox = NULL;
    if (!map_list_empty(r->vmbox)) {
        struct buf v = BUF_INIT, e = BUF_INIT;
        char *keys[3];
        keys[0] = xstrdup(a->full);
        keys[1] = a->ext[0] ? xasprintf("%s@%s", a->user, a->domain) : NULL;
        keys[2] = xasprintf("@%s", a->domain);
        enum map_result res = MAP_NOTFOUND;
        for (int i = 0; i < 3 && res == MAP_NOTFOUND; i++)
            if (keys[i])
                res = map_list_lookup(r->vmbox, keys[i], &v, &e);
        for (int i = 0; i < 3; i++)
            free(keys[i]);
        if (res == MAP_TEMPFAIL) {
            res = resolve_tempfail(c, buf_cstr(&e));
        } else if (res == MAP_FOUND) {
            if (!resolve_safe_relpath(buf_cstr(&v))) {
                buf_reset(&e);
                buf_printf(&e, "virtual_mailbox_maps: unsafe mailbox path '%s' for %s",
                           buf_cstr(&v), a->full);
                res = resolve_tempfail(c, buf_cstr(&e));
            } else {
                const char *slash = v.len && v.data[v.len - 1] == '/' ? "" : "/";
                mailbox = xasprintf("%s/%s%s", r->base, buf_cstr(&v), slash);
            }
        } else if (str_eq_ci(name, "postmaster")) {
            /* RFC 5321 4.5.1: postmaster exists in every local domain. */
            res = MAP_FOUND;
        } else {
            resolve_why(c->out, c->err, "5.1.1",
                        "<%s>: Recipient address rejected: User unknown in virtual "
                        "mailbox table",
                        c->original);
        }
        buf_free(&v);
        buf_free(&e);
        if (res != MAP_FOUND) {
            free(name);
            return res;
        }
    }
    if (mailbox == NULL)
        mailbox = xasprintf("%s/%s/%s/", r->base, a->domain, name);
    free(name);
    return resolve_add(c, a->full, RESOLVE_LOCAL, mailbox, !mydest);
}

static enum map_result resolve_expand1(struct resolve_ctx *c, const char *address,
                                       enum resolve_stage stage);

/*
 * Expands a table value found for a (matched with or without its
 * extension). A result equal to a is kept as final at the next stage, as
 * Postfix does; a result equal to an address further up is a loop and is
 * dropped (counted, so that a loop with nothing left is reported).
 */
static enum map_result resolve_results(struct resolve_ctx *c, const struct resolve_addr *a,
                                       const char *value, int propagate_ext, int is_alias,
                                       enum resolve_stage self_stage)
{
    size_t n = 0;
    char **list = map_split_addresses(value, &n);
    enum map_result res = MAP_FOUND;
    struct buf e = BUF_INIT;
    for (size_t i = 0; i < n && res == MAP_FOUND; i++) {
        const char *it = list[i];
        /* aliases(5): "|command", "/file" and ":include:" (quoted or not) are not addresses. */
        const char *bare = it[0] == '"' ? it + 1 : it;
        if (is_alias && (bare[0] == '|' || bare[0] == '/' || str_prefix_ci(bare, ":include:"))) {
            buf_printf(&e, "alias %s: destination '%s' is not supported (only addresses)", a->full,
                       it);
            res = resolve_tempfail(c, buf_cstr(&e));
            break;
        }
        char *next;
        const char *at = strrchr(it, '@');
        if (it[0] == '@') /* virtual(5): "@other" means the same user in other */
            next = xasprintf("%s%s", a->local, it);
        else if (at == NULL) /* aliases(5): a local name in this domain; virtual(5): myorigin */
            next = xasprintf("%s%s@%s", it, propagate_ext ? a->ext : "",
                             is_alias ? a->domain : c->r->myorigin);
        else if (propagate_ext && a->ext[0])
            next = xasprintf("%.*s%s%s", (int)(at - it), it, a->ext, at);
        else
            next = xstrdup(it);
        if (strlen(next) > RESOLVE_MAX_ADDR) {
            free(next);
            continue;
        }
        if (resolve_eq(next, a->full)) {
            res = resolve_expand1(c, next, self_stage);
        } else {
            int loop = 0;
            for (int d = 0; d < c->depth; d++)
                if (resolve_eq(c->stack[d], next))
                    loop = 1;
            if (loop) {
                c->loops++;
            } else if (c->depth >= RESOLVE_MAX_DEPTH) {
                res = resolve_tempfail(c, "alias expansion nested too deeply");
            } else {
                c->stack[c->depth++] = a->full;
                res = resolve_expand1(c, next, RESOLVE_STAGE_VIRTUAL);
                c->depth--;
            }
        }
        free(next);
    }
    buf_free(&e);
    strlist_free(list);
    return res;
}

/* Looks keys up in order; FOUND with the index of the key that matched. */
static enum map_result resolve_lookup_keys(struct resolve_ctx *c, struct map_list *l,
                                           char *const *keys, int nkeys, struct buf *value,
                                           int *which)
{
    struct buf e = BUF_INIT;
    for (int i = 0; i < nkeys; i++) {
        if (keys[i] == NULL)
            continue;
        enum map_result r = map_list_lookup(l, keys[i], value, &e);
        if (r == MAP_TEMPFAIL) {
            resolve_tempfail(c, buf_cstr(&e));
            buf_free(&e);
            return r;
        }
        if (r == MAP_FOUND) {
            *which = i;
            buf_free(&e);
            return r;
        }
    }
    buf_free(&e);
    return MAP_NOTFOUND;
}

static enum map_result resolve_expand1(struct resolve_ctx *c, const char *address,
                                       enum resolve_stage stage)
{
    struct resolver *r = c->r;
    if (++c->steps > RESOLVE_MAX_STEPS)
        return resolve_tempfail(c, "alias expansion visits too many addresses");
    struct resolve_addr a;
    resolve_addr_split(r, address, &a);
    struct buf value = BUF_INIT, e = BUF_INIT;
    enum map_result res;
    int cls = resolve_class_of(r, a.domain, &e, 0);
    if (cls < 0) {
        res = resolve_tempfail(c, buf_cstr(&e));
        goto out;
    }
    int mydest = 0;
    if (cls == RESOLVE_LOCAL) {
        mydest = resolve_domlist_match(&r->mydest, a.domain, &e, 0);
        if (mydest < 0) {
            res = resolve_tempfail(c, buf_cstr(&e));
            goto out;
        }
    }
    int has_ext = a.ext[0] != '\0';
    int which = -1;
    if (stage <= RESOLVE_STAGE_VIRTUAL && !map_list_empty(r->valias)) {
        /* virtual(5) order: user+ext@d, user@d, user+ext, user (local domains only), @d. */
        int local_names = mydest || str_eq_ci(a.domain, r->myorigin);
        char *keys[5] = {
            xstrdup(a.full),
            has_ext ? xasprintf("%s@%s", a.user, a.domain) : NULL,
            local_names && has_ext ? xstrdup(a.local) : NULL,
            local_names ? xstrdup(a.user) : NULL,
            xasprintf("@%s", a.domain),
        };
        res = resolve_lookup_keys(c, r->valias, keys, 5, &value, &which);
        for (int i = 0; i < 5; i++)
            free(keys[i]);
        if (res == MAP_TEMPFAIL)
            goto out;
        if (res == MAP_FOUND) {
            int stripped = which == 1 || which == 3;
            res = resolve_results(c, &a, buf_cstr(&value), stripped, 0, RESOLVE_STAGE_ALIAS);
            goto out;
        }
    }
    if (stage <= RESOLVE_STAGE_ALIAS && mydest && !map_list_empty(r->aliases)) {
        char *keys[2] = {xstrdup(a.local), has_ext ? xstrdup(a.user) : NULL};
        res = resolve_lookup_keys(c, r->aliases, keys, 2, &value, &which);
        free(keys[0]);
        free(keys[1]);
        if (res == MAP_TEMPFAIL)
            goto out;
        if (res == MAP_FOUND) {
            res = resolve_results(c, &a, buf_cstr(&value), which == 1, 1, RESOLVE_STAGE_FINAL);
            goto out;
        }
    }
    if (cls == RESOLVE_LOCAL)
        res = resolve_local_final(c, &a, mydest);
    else
        res = resolve_add(c, a.full, (enum resolve_class)cls, NULL, 0);
out:
    buf_free(&value);
    buf_free(&e);
    resolve_addr_free(&a);
    return res;
}

enum map_result resolver_expand(struct resolver *r, const char *address, struct resolved_list *out,
                                struct buf *err)
{
    out->items = NULL;
    out->count = 0;
    out->status[0] = '\0';
    size_t n = strlen(address);
    if (n == 0 || n > RESOLVE_MAX_ADDR || address[n - 1] == '@') {
        resolve_why(out, err, "5.1.3", "<%s>: Recipient address rejected: bad address syntax",
                    address);
        return MAP_NOTFOUND;
    }
    struct resolve_ctx c = {.r = r, .original = address, .out = out, .err = err};
    enum map_result res = resolve_expand1(&c, address, RESOLVE_STAGE_VIRTUAL);
    if (res == MAP_FOUND && out->count == 0) {
        /* Every branch looped back: nothing would receive the mail (RFC 3463 5.4.6). */
        resolve_why(out, err, "5.4.6", "<%s>: Recipient address rejected: alias expansion loop",
                    address);
        res = MAP_NOTFOUND;
    }
    if (res != MAP_FOUND)
        resolved_list_free(out);
    return res;
}
