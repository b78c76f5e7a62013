/*
 * Routing for delivery; see route.h. The precedence is Postfix's:
 * transport_maps, then sender_dependent_relayhost_maps, then relayhost,
 * then the recipient domain's MX; for local domains transport_maps, then
 * mailbox_transport/virtual_transport. The next-hop syntax is
 * transport(5)'s, and lmtp(8)'s for LMTP.
 */
#include "deliver/route.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/un.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "lib/dnsname.h"
#include "lib/hostport.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"

void route_clear(struct route *r)
{
    free(r->nexthop);
    free(r->host);
    free(r->text);
    free(r->path);
    memset(r, 0, sizeof *r);
}

int route_parse_nexthop(const char *nexthop, int default_port, struct route *out, struct buf *err)
{
    free(out->nexthop);
    free(out->host);
    out->nexthop = xstrdup(nexthop);
    out->host = NULL;
    struct hostport hp;
    if (hostport_split(nexthop, 0, &hp) < 0) {
        if (nexthop[0] == '[' && strchr(nexthop, ']') == NULL)
            buf_printf(err, "next hop \"%s\": missing ]", nexthop);
        else if (nexthop[0] != '[' && strchr(nexthop, ':') != strrchr(nexthop, ':'))
            buf_printf(err, "next hop \"%s\": an IPv6 address must be written in [brackets]",
                       nexthop);
        else
            buf_printf(err, "next hop \"%s\": not host, host:port or [host]:port", nexthop);
        return -1;
    }
    size_t hl = strlen(hp.host);
    if (hl > 0 && hp.host[hl - 1] == '.' && !hp.bracketed)
        hp.host[--hl] = '\0';
    if (hl == 0 || strspn(hp.host, " \t") > 0) {
        buf_printf(err, "next hop \"%s\": no host name", nexthop);
        return -1;
    }
    out->port = default_port;
    if (hp.port[0] && (out->port = hostport_port(hp.port)) < 0) {
        buf_printf(err, "bad port \"%s\"", hp.port);
        return -1;
    }
    unsigned char addr[16];
    out->literal =
        inet_pton(AF_INET, hp.host, addr) == 1 || inet_pton(AF_INET6, hp.host, addr) == 1;
    out->mx = !hp.bracketed && !out->literal;
    str_lower(hp.host);
    out->host = xstrdup(hp.host);
    return 0;
}

int route_parse_lmtp(const char *nexthop, const char *queue_dir, int default_port,
                     struct route *out, struct buf *err)
{
    free(out->path);
    out->path = NULL;
    out->kind = ROUTE_LMTP;
    if (str_prefix_ci(nexthop, "unix:")) {
        const char *p = nexthop + 5;
        if (*p == '\0') {
            buf_printf(err, "LMTP next hop \"%s\": no socket path", nexthop);
            return -1;
        }
        /* lmtp(8): Postfix runs in queue_directory, so a relative path is taken from there. */
        char *abs = *p == '/' ? xstrdup(p) : xasprintf("%s/%s", queue_dir ? queue_dir : ".", p);
        struct sockaddr_un sun;
        if (strlen(abs) >= sizeof sun.sun_path) {
            buf_printf(err, "LMTP next hop \"%s\": socket path longer than %zu octets", nexthop,
                       sizeof sun.sun_path - 1);
            free(abs);
            return -1;
        }
        free(out->nexthop);
        free(out->host);
        out->nexthop = xstrdup(nexthop);
        out->host = xstrdup(p);
        out->path = abs;
        out->port = 0;
        out->mx = 0;
        out->literal = 0;
        return 0;
    }
    /* inet:, or no prefix: lmtp(8) assumes inet. */
    const char *hp = str_prefix_ci(nexthop, "inet:") ? nexthop + 5 : nexthop;
    if (route_parse_nexthop(hp, default_port, out, err) < 0)
        return -1;
    /* lmtp(8): no MX lookups, they are defined for SMTP only. */
    out->mx = 0;
    free(out->nexthop);
    out->nexthop = xstrdup(nexthop);
    return 0;
}

/* One lookup; MAP_TEMPFAIL puts "TABLE: reason" in err. */
static int route_lookup(struct route_tables *t, const char *table, const char *key,
                        struct buf *value, struct buf *err)
{
    if (!t || !t->lookup)
        return MAP_NOTFOUND;
    struct buf why = BUF_INIT;
    int r = t->lookup(t->ctx, table, key, value, &why);
    if (r == MAP_TEMPFAIL)
        buf_printf(err, "%s lookup of %s failed: %s", table, key, buf_cstr(&why));
    buf_free(&why);
    return r;
}

/*
 * transport(5) lookup order: the full address, the domain, then ".parent"
 * for each parent domain (transport_maps is not in Postfix's
 * parent_domain_matches_subdomains), then "*".
 */
static int route_transport_find(struct route_tables *t, const char *rcpt, const char *domain,
                                struct buf *value, struct buf *err)
{
    int r = route_lookup(t, "transport_maps", rcpt, value, err);
    if (r != MAP_NOTFOUND)
        return r;
    r = route_lookup(t, "transport_maps", domain, value, err);
    if (r != MAP_NOTFOUND)
        return r;
    for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.')) {
        r = route_lookup(t, "transport_maps", p, value, err);
        if (r != MAP_NOTFOUND)
            return r;
    }
    return route_lookup(t, "transport_maps", "*", value, err);
}

static enum route_status route_smtp(const char *nexthop, int port, const char *source,
                                    struct route *out, struct buf *err)
{
    out->kind = ROUTE_SMTP;
    out->source = source;
    if (route_parse_nexthop(nexthop, port, out, err) < 0) {
        /* A broken table entry is the operator's to fix: defer, do not bounce. */
        return ROUTE_TEMPFAIL;
    }
    return ROUTE_FOUND;
}

/* Outcome of one transport:nexthop value. */
enum route_tr {
    ROUTE_TR_DONE,    /* out is set (or err, when st is ROUTE_TEMPFAIL) */
    ROUTE_TR_NOTHING, /* ":" alone: as if there were no value */
};

/*
 * Applies a transport(5) value ("transport:nexthop") found in source for
 * rcpt in domain. A transport with no next hop takes the recipient domain.
 */
static enum route_tr route_transport(const struct config *cfg, const char *value,
                                     const char *domain, const char *source, enum route_class cls,
                                     struct route *out, enum route_status *st, struct buf *err)
{
    char *v = xstrdup(value);
    char *tr = str_trim(v);
    char *colon = strchr(tr, ':');
    char *nh = colon ? colon + 1 : tr + strlen(tr);
    if (colon)
        *colon = '\0';
    tr = str_trim(tr);
    nh = str_trim(nh);
    enum route_tr res = ROUTE_TR_DONE;
    *st = ROUTE_FOUND;
    out->source = source;
    if (*tr == '\0' && *nh == '\0') {
        /* ":" means "do not change": as if the table did not exist. */
        res = ROUTE_TR_NOTHING;
    } else if (*tr == '\0' || str_eq_ci(tr, "smtp") || str_eq_ci(tr, "relay")) {
        out->kind = ROUTE_SMTP;
        /* A broken table entry is the operator's to fix: defer, do not bounce. */
        if (route_parse_nexthop(*nh ? nh : domain, (int)config_get_int(cfg, "smtp_tcp_port"), out,
                                err) < 0)
            *st = ROUTE_TEMPFAIL;
    } else if (str_eq_ci(tr, "lmtp")) {
        if (route_parse_lmtp(*nh ? nh : domain, config_get(cfg, "queue_directory"),
                             (int)config_get_int(cfg, "lmtp_tcp_port"), out, err) < 0)
            *st = ROUTE_TEMPFAIL;
    } else if (str_eq_ci(tr, "discard")) {
        out->kind = ROUTE_DISCARD;
        out->text = xstrdup(*nh ? nh : "discarded");
    } else if (str_eq_ci(tr, "error") || str_eq_ci(tr, "retry")) {
        out->kind = str_eq_ci(tr, "error") ? ROUTE_ERROR : ROUTE_RETRY;
        out->text = xstrdup(*nh ? nh : "mail delivery failed");
    } else if ((str_eq_ci(tr, "local") || str_eq_ci(tr, "virtual")) && cls != ROUTE_CLASS_REMOTE) {
        /* Postfix's local(8) and virtual(8): here both are the built-in Maildir delivery. */
        out->kind = ROUTE_LOCAL;
    } else {
        out->kind = ROUTE_RETRY;
        out->text =
            cls == ROUTE_CLASS_REMOTE && (str_eq_ci(tr, "local") || str_eq_ci(tr, "virtual"))
                ? xasprintf("mail transport %s is only for local domains", tr)
                : xasprintf("mail transport %s is not available", tr);
    }
    free(v);
    return res;
}

enum route_status route_decide(const struct config *cfg, struct route_tables *t, const char *sender,
                               const char *rcpt, struct route *out, struct buf *err)
{
    return route_decide_class(cfg, t, sender, rcpt, ROUTE_CLASS_REMOTE, out, err);
}

enum route_status route_decide_class(const struct config *cfg, struct route_tables *t,
                                     const char *sender, const char *rcpt, enum route_class cls,
                                     struct route *out, struct buf *err)
{
    memset(out, 0, sizeof *out);
    int port = (int)config_get_int(cfg, "smtp_tcp_port");
    const char *at = strrchr(rcpt, '@');
    char *domain = xstrdup(at ? at + 1 : "");
    str_lower(domain);
    struct buf value = BUF_INIT;
    enum route_status st = ROUTE_TEMPFAIL;
    const char *relayhost = config_get(cfg, "relayhost");
    /* transport(5) applies to every recipient, local domains included (Postfix trivial-rewrite). */
    int r = route_transport_find(t, rcpt, domain, &value, err);
    if (r == MAP_TEMPFAIL)
        goto done;
    if (r == MAP_FOUND && route_transport(cfg, buf_cstr(&value), domain, "transport_maps", cls, out,
                                          &st, err) == ROUTE_TR_DONE)
        goto done;
    if (cls != ROUTE_CLASS_REMOTE) {
        /* The local domain's own transport; empty means hongyan's Maildir delivery. */
        const char *key = cls == ROUTE_CLASS_MYDEST ? "mailbox_transport" : "virtual_transport";
        const char *v = config_get(cfg, key);
        memset(out, 0, sizeof *out);
        if (v && *v && route_transport(cfg, v, domain, key, cls, out, &st, err) == ROUTE_TR_DONE)
            goto done;
        route_clear(out);
        out->kind = ROUTE_LOCAL;
        out->source = "local";
        st = ROUTE_FOUND;
        goto done;
    }
    if (*domain == '[') {
        /* An address literal (RFC 5321 4.1.3) is its own next hop. */
        st = route_smtp(domain, port, "mx", out, err);
        goto done;
    }
    /* Sender-dependent relayhost: the address, then "@domain"; "<>" for the null sender. */
    {
        const char *sat = strrchr(sender, '@');
        buf_reset(&value);
        r = route_lookup(t, "sender_dependent_relayhost_maps", *sender ? sender : "<>", &value,
                         err);
        if (r == MAP_NOTFOUND && sat)
            r = route_lookup(t, "sender_dependent_relayhost_maps", sat, &value, err);
        if (r == MAP_TEMPFAIL)
            goto done;
        if (r == MAP_FOUND) {
            char *v = xstrdup(buf_cstr(&value));
            char *nh = str_trim(v);
            /* DUNNO ends the search without overriding relayhost (Postfix 2.x). */
            if (*nh && !str_eq_ci(nh, "DUNNO")) {
                st = route_smtp(nh, port, "sender_dependent_relayhost_maps", out, err);
                free(v);
                goto done;
            }
            free(v);
        }
    }
    if (relayhost && *relayhost)
        st = route_smtp(relayhost, port, "relayhost", out, err);
    else if (*domain)
        st = route_smtp(domain, port, "mx", out, err);
    else
        buf_printf(err, "recipient %s has no domain", rcpt);
done:
    if (st != ROUTE_FOUND)
        route_clear(out);
    buf_free(&value);
    free(domain);
    return st;
}

static void route_key_add(char ***keys, size_t *n, char *key)
{
    for (size_t i = 0; i < *n; i++) {
        if (str_eq_ci((*keys)[i], key)) {
            free(key);
            return;
        }
    }
    *keys = xrealloc(*keys, (*n + 2) * sizeof **keys);
    (*keys)[(*n)++] = key;
    (*keys)[*n] = NULL;
}

char **route_sasl_keys(const struct route *r, const char *server_name)
{
    char **keys = xcalloc(1, sizeof *keys);
    size_t n = 0;
    if (r->nexthop)
        route_key_add(&keys, &n, xstrdup(r->nexthop));
    if (r->host) {
        route_key_add(&keys, &n, xasprintf("[%s]:%d", r->host, r->port));
        route_key_add(&keys, &n, xasprintf("%s:%d", r->host, r->port));
        route_key_add(&keys, &n, xasprintf("[%s]", r->host));
        route_key_add(&keys, &n, xstrdup(r->host));
    }
    if (server_name && *server_name) {
        if (r->port != 25)
            route_key_add(&keys, &n, xasprintf("%s:%d", server_name, r->port));
        route_key_add(&keys, &n, xstrdup(server_name));
    }
    return keys;
}

int route_sasl_lookup(struct route_tables *t, const struct route *r, const char *server_name,
                      struct buf *user, struct buf *password, struct buf *key_used, struct buf *err)
{
    char **keys = route_sasl_keys(r, server_name);
    struct buf value = BUF_INIT;
    int res = MAP_NOTFOUND;
    for (size_t i = 0; keys[i] && res == MAP_NOTFOUND; i++) {
        res = route_lookup(t, "smtp_sasl_password_maps", keys[i], &value, err);
        if (res == MAP_FOUND) {
            const char *v = buf_cstr(&value);
            const char *colon = strchr(v, ':');
            buf_reset(user);
            buf_reset(password);
            if (colon) {
                buf_append(user, v, (size_t)(colon - v));
                buf_puts(password, colon + 1);
            } else {
                buf_puts(user, v);
            }
            buf_set(key_used, keys[i]);
        }
    }
    /* The value held a password: wipe it before the memory goes back. */
    if (value.data)
        explicit_bzero(value.data, value.len);
    buf_free(&value);
    strlist_free(keys);
    return res;
}

/* ---- smtp_tls_policy_maps (Postfix TLS_README "TLS policy maps") ---- */

/* A plain domain name: no brackets, no port, letters, digits, '-', '.', '_'. */
static int route_is_domain(const char *s)
{
    return dnsname_ok(s, strlen(s), DNSNAME_UNDERSCORE);
}

char **route_tls_policy_keys(const struct route *r)
{
    char **keys = xcalloc(1, sizeof *keys);
    size_t n = 0;
    const char *dest = r->nexthop ? r->nexthop : r->host;
    if (!dest || !*dest)
        return keys;
    route_key_add(&keys, &n, xstrdup(dest));
    /*
     * Postfix's smtp_tls_policy.c tls_policy_lookup(): "[host]:port",
     * "[host]" and "host:port" are explicit next hops and match only
     * themselves; a domain then tries ".parent" for each parent.
     */
    if (!route_is_domain(dest))
        return keys;
    for (const char *p = strchr(dest + 1, '.'); p && p[1]; p = strchr(p + 1, '.'))
        route_key_add(&keys, &n, xstrdup(p));
    return keys;
}

void route_tls_policy_clear(struct route_tls_policy *p)
{
    strlist_free(p->match);
    free(p->ignored);
    p->match = NULL;
    p->ignored = NULL;
}

/* The levels a policy entry may name; dane-only and fingerprint are not implemented. */
static int route_tls_level_word(const char *w, enum tls_level *out)
{
    static const struct {
        const char *name;
        enum tls_level level;
    } levels[] = {
        {"none", TLS_LEVEL_NONE},     {"may", TLS_LEVEL_MAY},       {"encrypt", TLS_LEVEL_ENCRYPT},
        {"verify", TLS_LEVEL_VERIFY}, {"secure", TLS_LEVEL_SECURE}, {"dane", TLS_LEVEL_DANE},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (str_eq_ci(w, levels[i].name)) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -1;
}

/* Splits "a:b:c" into a strlist of non-empty names; NULL when one is empty. */
static char **route_match_split(const char *v)
{
    char **names = xcalloc(1, sizeof *names);
    size_t n = 0;
    const char *p = v;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len == 0) {
            strlist_free(names);
            return NULL;
        }
        names = xrealloc(names, (n + 2) * sizeof *names);
        names[n++] = xstrndup(p, len);
        names[n] = NULL;
        if (!colon)
            return names;
        p = colon + 1;
    }
}

int route_tls_policy_parse(const char *value, struct route_tls_policy *out, struct buf *err)
{
    memset(out, 0, sizeof *out);
    /* Postfix splits the value on white space and commas. */
    char **words = strlist_split(value ? value : "", NULL);
    struct buf ignored = BUF_INIT;
    int rc = -1;
    if (!words[0]) {
        buf_puts(err, "empty policy");
        goto done;
    }
    if (route_tls_level_word(words[0], &out->level) < 0) {
        if (str_eq_ci(words[0], "dane-only") || str_eq_ci(words[0], "fingerprint") ||
            str_eq_ci(words[0], "half-dane"))
            buf_printf(err, "security level \"%s\" is not supported", words[0]);
        else
            buf_printf(err, "unknown security level \"%s\"", words[0]);
        goto done;
    }
    for (size_t i = 1; words[i]; i++) {
        const char *w = words[i];
        const char *eq = strchr(w, '=');
        if (!eq || eq == w) {
            buf_printf(err, "malformed attribute \"%s\" (want name=value)", w);
            goto done;
        }
        size_t nlen = (size_t)(eq - w);
        if (nlen == 5 && strncasecmp(w, "match", 5) == 0) {
            if (out->match) {
                buf_puts(err, "duplicate attribute \"match\"");
                goto done;
            }
            if (out->level != TLS_LEVEL_VERIFY && out->level != TLS_LEVEL_SECURE) {
                buf_printf(err, "attribute \"match\" is only valid at levels verify and secure");
                goto done;
            }
            out->match = route_match_split(eq + 1);
            if (!out->match) {
                buf_printf(err, "attribute \"%s\" has an empty name", w);
                goto done;
            }
        } else if ((nlen == 9 && strncasecmp(w, "protocols", 9) == 0) ||
                   (nlen == 7 && strncasecmp(w, "ciphers", 7) == 0)) {
            buf_printf(&ignored, "%s%s", ignored.len ? " " : "", w);
        } else {
            buf_printf(err, "unknown attribute \"%.*s\"", (int)nlen, w);
            goto done;
        }
    }
    if (ignored.len)
        out->ignored = buf_steal(&ignored);
    rc = 0;
done:
    if (rc < 0)
        route_tls_policy_clear(out);
    buf_free(&ignored);
    strlist_free(words);
    return rc;
}

enum route_tls_result route_tls_policy_lookup(struct route_tables *t, const struct route *r,
                                              struct route_tls_policy *out, struct buf *key_used,
                                              struct buf *err)
{
    char **keys = route_tls_policy_keys(r);
    struct buf value = BUF_INIT;
    enum route_tls_result res = ROUTE_TLS_DEFAULT;
    for (size_t i = 0; keys[i] && res == ROUTE_TLS_DEFAULT; i++) {
        int m = route_lookup(t, "smtp_tls_policy_maps", keys[i], &value, err);
        if (m == MAP_TEMPFAIL) {
            res = ROUTE_TLS_TEMPFAIL;
        } else if (m == MAP_FOUND) {
            buf_set(key_used, keys[i]);
            struct buf why = BUF_INIT;
            if (route_tls_policy_parse(buf_cstr(&value), out, &why) == 0) {
                res = ROUTE_TLS_FOUND;
            } else {
                buf_printf(err, "smtp_tls_policy_maps entry %s = \"%s\": %s", keys[i],
                           buf_cstr(&value), buf_cstr(&why));
                res = ROUTE_TLS_INVALID;
            }
            buf_free(&why);
        }
    }
    buf_free(&value);
    strlist_free(keys);
    return res;
}
