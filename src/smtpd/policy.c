/*
 * Relay policy and mynetworks matching; see policy.h. The client address is
 * matched once per session, so the cost here is one parse per generation.
 */
#include "smtpd/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

struct net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
    int negate;
};

struct smtpd_netlist {
    struct net *items;
    size_t count;
};

static int parse_item(const char *item, struct net *n)
{
    char tmp[128];
    const char *s = item;
    memset(n, 0, sizeof *n);
    if (*s == '!') {
        n->negate = 1;
        s++;
    }
    if (str_copy(tmp, sizeof tmp, s) >= sizeof tmp)
        return -1;
    char *slash = strrchr(tmp, '/');
    long bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        if (!slash[1])
            return -1;
        bits = strtol(slash + 1, &end, 10);
        if (*end || bits < 0)
            return -1;
    }
    char *a = tmp;
    size_t al = strlen(a);
    if (al >= 2 && a[0] == '[' && a[al - 1] == ']') {
        a[al - 1] = '\0';
        a++;
    }
    if (inet_pton(AF_INET, a, n->addr) == 1) {
        n->family = AF_INET;
        if (bits > 32)
            return -1;
        n->bits = bits < 0 ? 32 : (unsigned)bits;
    } else if (inet_pton(AF_INET6, a, n->addr) == 1) {
        n->family = AF_INET6;
        if (bits > 128)
            return -1;
        n->bits = bits < 0 ? 128 : (unsigned)bits;
    } else {
        return -1;
    }
    /* Postfix refuses a network with host bits set ("1.2.3.4/24"); so do we. */
    for (unsigned i = n->bits; i < (n->family == AF_INET ? 32u : 128u); i++)
        if (n->addr[i / 8] & (0x80 >> (i % 8)))
            return -1;
    return 0;
}

struct smtpd_netlist *smtpd_netlist_parse(const char *spec, struct buf *err)
{
    size_t count = 0;
    char **items = strlist_split(spec ? spec : "", &count);
    struct smtpd_netlist *nl = xcalloc(1, sizeof *nl);
    nl->items = xcalloc(count ? count : 1, sizeof *nl->items);
    for (size_t i = 0; i < count; i++) {
        if (parse_item(items[i], &nl->items[nl->count]) < 0) {
            buf_printf(err, "mynetworks: bad network \"%s\" (want ADDR/BITS, [IPV6]/BITS)",
                       items[i]);
            strlist_free(items);
            smtpd_netlist_free(nl);
            return NULL;
        }
        nl->count++;
    }
    strlist_free(items);
    return nl;
}

void smtpd_netlist_free(struct smtpd_netlist *nl)
{
    if (!nl)
        return;
    free(nl->items);
    free(nl);
}

static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int smtpd_netlist_match(const struct smtpd_netlist *nl, const struct sockaddr *sa)
{
    unsigned char a4[4], a6[16];
    int has4 = 0, has6 = 0;
    if (!nl || !sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        has4 = 1;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        memcpy(a6, in6, 16);
        has6 = 1;
        /* An IPv4 client on a dual-stack socket matches IPv4 networks too. */
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a4, a6 + 12, 4);
            has4 = 1;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < nl->count; i++) {
        const struct net *n = &nl->items[i];
        int hit = (n->family == AF_INET && has4 && prefix_eq(a4, n->addr, n->bits)) ||
                  (n->family == AF_INET6 && has6 && prefix_eq(a6, n->addr, n->bits));
        if (hit)
            return !n->negate;
    }
    return 0;
}

/* One entry: the worker runs one event loop, and generations rarely change. */
static char *cache_spec;
static struct smtpd_netlist *cache_list;

int smtpd_policy_mynetworks(const struct config *cfg, const struct sockaddr *sa)
{
    const char *spec = config_get(cfg, "mynetworks");
    if (!spec)
        spec = "";
    if (!cache_spec || strcmp(cache_spec, spec) != 0) {
        struct buf err = BUF_INIT;
        smtpd_netlist_free(cache_list);
        free(cache_spec);
        cache_spec = xstrdup(spec);
        cache_list = smtpd_netlist_parse(spec, &err);
        if (!cache_list)
            log_error("%s; no client is trusted to relay until it is fixed", buf_cstr(&err));
        buf_free(&err);
    }
    return smtpd_netlist_match(cache_list, sa);
}

void smtpd_policy_cache_clear(void)
{
    smtpd_netlist_free(cache_list);
    free(cache_spec);
    cache_list = NULL;
    cache_spec = NULL;
}

int smtpd_policy_relay(enum resolve_class cls, int trusted, int defer, struct smtp_reply *reply)
{
    if (cls == RESOLVE_LOCAL || cls == RESOLVE_RELAY || trusted)
        return 0;
    /* Postfix: defer_unauth_destination answers 454, reject_unauth_destination 554. */
    if (defer)
        smtp_reply_set(reply, 454, "4.7.1", "Relay access denied");
    else
        smtp_reply_set(reply, 554, "5.7.1", "Relay access denied");
    return -1;
}
