/*
 * Server generations (what SIGHUP rebuilds: their references and release;
 * they are built in src/daemon/server_gen.c) and the per-client-address
 * session counts the listener consults before starting a session.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "milter/milter.h"
#include "queue/resolve.h"
#include "tls/tls.h"

struct server_gen *server_gen_ref(struct server *srv)
{
    srv->gen->refs++;
    return srv->gen;
}

struct workq *server_map_workq(const struct server *srv)
{
    return srv->map_workq ? srv->map_workq : srv->workq;
}

void server_gen_unref(struct server_gen *gen)
{
    if (gen == NULL || --gen->refs > 0)
        return;
    resolver_free(gen->resolver);
    tls_server_free(gen->tls);
    dkim_signer_free(gen->dkim);
    if (gen->restrict_conf)
        gen->restrict_conf_free(gen->restrict_conf);
    milter_conf_free(gen->smtpd_milters);
    milter_conf_free(gen->non_smtpd_milters);
    config_free(gen->cfg);
    free(gen);
}

void server_addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outlen);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* A v4 client on a dual-stack socket is logged and counted as v4. */
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)outlen);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)outlen);
    } else {
        str_copy(out, outlen, "unknown");
    }
}

/*
 * Sessions per client address: a small chained hash table. Entries are
 * removed when their count drops to zero, so its size follows the number
 * of distinct clients connected now.
 */
#define CLIENT_BUCKETS 1024

struct client_entry {
    char addr[64];
    int count;
    struct client_entry *next;
};

struct client_table {
    struct client_entry *buckets[CLIENT_BUCKETS];
};

static unsigned client_hash(const char *s)
{
    return hash_str(s) % CLIENT_BUCKETS;
}

struct client_table *client_table_new(void)
{
    return xcalloc(1, sizeof(struct client_table));
}

void client_table_free(struct client_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < CLIENT_BUCKETS; i++) {
        struct client_entry *e = t->buckets[i];
        while (e) {
            struct client_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t);
}

int client_table_add(struct client_table *t, const char *addr, int delta)
{
    unsigned h = client_hash(addr);
    struct client_entry **pp = &t->buckets[h];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->addr, addr) == 0)
            break;
    }
    if (*pp == NULL) {
        if (delta <= 0)
            return 0;
        *pp = xcalloc(1, sizeof **pp);
        str_copy((*pp)->addr, sizeof(*pp)->addr, addr);
    }
    struct client_entry *e = *pp;
    e->count += delta;
    int count = e->count;
    if (count <= 0) {
        *pp = e->next;
        free(e);
        count = 0;
    }
    return count;
}

void server_session_ended(struct server *srv, const struct sockaddr *peer, socklen_t peer_len)
{
    (void)peer_len;
    char addr[64], key[64];
    server_addr_text(peer, addr, sizeof addr);
    client_addr_key(addr, srv->client_v6_prefix, key, sizeof key);
    client_table_add(srv->clients, key, -1);
    srv->sessions--;
}

enum metrics_listener server_listener_metric(enum listener_kind kind)
{
    switch (kind) {
    case LISTEN_SUBMISSION:
        return METRICS_LISTENER_SUBMISSION;
    case LISTEN_SMTPS:
        return METRICS_LISTENER_SMTPS;
    default:
        return METRICS_LISTENER_SMTPD;
    }
}
