/*
 * Weak stand-in for the resolver (src/maps/resolve.c) so that the queue
 * manager links and delivers locally before the maps module lands: local
 * domains are mydestination and virtual_mailbox_domains, mailboxes are
 * virtual_mailbox_base/DOMAIN/LOCALPART/, no aliases, every local part
 * exists. The maps module's strong definitions replace these; delete this
 * file once it is on main.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/resolve.h"

struct resolver {
    const struct config *cfg;
};

__attribute__((weak)) struct resolver *resolver_new(const struct config *cfg, struct buf *err)
{
    (void)err;
    struct resolver *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    return r;
}

__attribute__((weak)) void resolver_free(struct resolver *r)
{
    free(r);
}

static int resolve_fallback_in(const struct config *cfg, const char *key, const char *domain)
{
    size_t n;
    char **l = config_get_list(cfg, key, &n);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = str_eq_ci(l[i], domain);
    strlist_free(l);
    return found;
}

__attribute__((weak)) enum resolve_class resolver_classify(struct resolver *r, const char *address)
{
    const char *at = strrchr(address, '@');
    if (at == NULL || at[1] == '\0')
        return RESOLVE_LOCAL;
    if (resolve_fallback_in(r->cfg, "mydestination", at + 1) ||
        resolve_fallback_in(r->cfg, "virtual_mailbox_domains", at + 1))
        return RESOLVE_LOCAL;
    if (resolve_fallback_in(r->cfg, "relay_domains", at + 1))
        return RESOLVE_RELAY;
    return RESOLVE_REMOTE;
}

__attribute__((weak)) enum map_result resolver_expand(struct resolver *r, const char *address,
                                                      struct resolved_list *out, struct buf *err)
{
    (void)err;
    out->items = xcalloc(1, sizeof *out->items);
    out->count = 1;
    struct resolved_rcpt *it = &out->items[0];
    it->cls = resolver_classify(r, address);
    const char *at = strrchr(address, '@');
    if (at == NULL || at[1] == '\0') {
        const char *origin = config_get(r->cfg, "myorigin");
        size_t ll = at ? (size_t)(at - address) : strlen(address);
        it->address = xasprintf("%.*s@%s", (int)ll, address, origin);
        at = strrchr(it->address, '@');
    } else {
        it->address = xstrdup(address);
        at = strrchr(it->address, '@');
    }
    if (it->cls == RESOLVE_LOCAL) {
        char *local = xstrndup(it->address, (size_t)(at - it->address));
        char *domain = xstrdup(at + 1);
        str_lower(local);
        str_lower(domain);
        it->mailbox =
            xasprintf("%s/%s/%s/", config_get(r->cfg, "virtual_mailbox_base"), domain, local);
        free(local);
        free(domain);
    }
    return MAP_FOUND;
}

__attribute__((weak)) void resolved_list_free(struct resolved_list *l)
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

/* Likewise for the daemon's generation references (src/daemon/), until it lands. */
#include "daemon/server.h"

__attribute__((weak)) struct server_gen *server_gen_ref(struct server *srv)
{
    srv->gen->refs++;
    return srv->gen;
}

__attribute__((weak)) void server_gen_unref(struct server_gen *gen)
{
    if (gen)
        gen->refs--;
}
