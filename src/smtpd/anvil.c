/*
 * anvil: per-client event counters in a hash table with an LRU list; see
 * anvil.h. Entries whose windows have all passed are dropped from the old
 * end of the list as new events arrive, so the table holds only clients
 * seen within the last time unit (and never more than ANVIL_MAX_CLIENTS).
 */
#include "smtpd/anvil.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtpd/policy.h"

#define ANVIL_BUCKETS 4096
/* A flood of distinct addresses costs bounded memory; the oldest client goes first. */
#define ANVIL_MAX_CLIENTS 100000

struct anvil_client {
    unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6 masked to the prefix */
    time_t start[ANVIL_EVENT_COUNT];
    long long count[ANVIL_EVENT_COUNT];
    time_t last;
    struct anvil_client *hnext;         /* bucket chain */
    struct anvil_client *older, *newer; /* LRU list */
};

static struct anvil_client *anvil_buckets[ANVIL_BUCKETS];
static struct anvil_client *anvil_oldest, *anvil_newest;
static size_t anvil_clients;

static const char *const anvil_limit_keys[ANVIL_EVENT_COUNT] = {
    "smtpd_client_connection_rate_limit", "smtpd_client_message_rate_limit",
    "smtpd_client_recipient_rate_limit",  "smtpd_client_new_tls_session_rate_limit",
    "smtpd_client_auth_rate_limit",
};

static unsigned anvil_hash(const unsigned char key[16])
{
    return hash_bytes(key, 16) % ANVIL_BUCKETS;
}

static void anvil_unlink(struct anvil_client *c)
{
    if (c->older)
        c->older->newer = c->newer;
    else
        anvil_oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        anvil_newest = c->older;
    c->older = c->newer = NULL;
}

static void anvil_drop(struct anvil_client *c)
{
    anvil_unlink(c);
    for (struct anvil_client **pp = &anvil_buckets[anvil_hash(c->key)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    }
    free(c);
    anvil_clients--;
}

void anvil_clear(void)
{
    while (anvil_oldest)
        anvil_drop(anvil_oldest);
}

/* Exceptions parsed once per value (one entry: generations rarely change). */
static char *exempt_spec;
static struct smtpd_netlist *exempt_list;

int anvil_exempt(const struct config *cfg, const struct sockaddr *sa)
{
    const char *spec = config_get(cfg, "smtpd_client_event_limit_exceptions");
    if (!exempt_spec || strcmp(exempt_spec, spec) != 0) {
        struct buf err = BUF_INIT;
        smtpd_netlist_free(exempt_list);
        free(exempt_spec);
        exempt_spec = xstrdup(spec);
        exempt_list = smtpd_netlist_parse(spec, &err);
        if (!exempt_list)
            log_error("smtpd_client_event_limit_exceptions: %s; no client is exempt",
                      buf_cstr(&err));
        buf_free(&err);
    }
    return smtpd_netlist_match(exempt_list, sa);
}

int anvil_event(const struct config *cfg, const struct sockaddr *sa, enum anvil_event ev,
                time_t now, long long *rate)
{
    long long limit = config_get_int(cfg, anvil_limit_keys[ev]);
    long long unit = config_get_time(cfg, "anvil_rate_time_unit");
    *rate = 0;
    if (limit <= 0 || anvil_exempt(cfg, sa))
        return 0;
    if (unit < 1)
        unit = 1;
    unsigned char key[16];
    if (client_addr_bytes(sa, (int)config_get_int(cfg, "smtpd_client_ipv6_prefix_length"), key) < 0)
        return 0;
    /* Forget clients idle for a whole unit: at most two per event keeps this O(1). */
    for (int i = 0; i < 2 && anvil_oldest && now - anvil_oldest->last >= unit; i++)
        anvil_drop(anvil_oldest);
    unsigned h = anvil_hash(key);
    struct anvil_client *c = anvil_buckets[h];
    while (c && memcmp(c->key, key, 16) != 0)
        c = c->hnext;
    if (!c) {
        if (anvil_clients >= ANVIL_MAX_CLIENTS)
            anvil_drop(anvil_oldest);
        c = xcalloc(1, sizeof *c);
        memcpy(c->key, key, 16);
        c->hnext = anvil_buckets[h];
        anvil_buckets[h] = c;
        anvil_clients++;
    } else {
        anvil_unlink(c);
    }
    c->older = anvil_newest;
    if (anvil_newest)
        anvil_newest->newer = c;
    anvil_newest = c;
    if (!anvil_oldest)
        anvil_oldest = c;
    c->last = now;
    if (c->count[ev] == 0 || now - c->start[ev] >= unit) {
        c->start[ev] = now;
        c->count[ev] = 0;
    }
    *rate = ++c->count[ev];
    return *rate > limit;
}

int anvil_session_event(const struct config *cfg, const struct sockaddr *sa, enum anvil_event ev,
                        const char *host, const char *addr, struct buf *reply)
{
    /* Postfix's replies and warnings, which log tools know. */
    static const struct {
        const char *reply, *warning;
    } texts[ANVIL_EVENT_COUNT] = {
        [ANVIL_MAIL] = {"450 4.7.1 Error: too much mail from %s",
                        "Message delivery request rate limit exceeded"},
        [ANVIL_RCPT] = {"450 4.7.1 Error: too many recipients from %s",
                        "Recipient address rate limit exceeded"},
        [ANVIL_NEWTLS] = {"454 4.7.0 Error: too many new TLS sessions from %s",
                          "New TLS session rate limit exceeded"},
        [ANVIL_AUTH] = {"450 4.7.1 Error: too many AUTH commands from %s",
                        "AUTH command rate limit exceeded"},
        [ANVIL_CONNECT] = {"421 4.7.0 Error: too many connections from %s",
                           "Connection rate limit exceeded"},
    };
    long long rate = 0;
    if (!anvil_event(cfg, sa, ev, time(NULL), &rate))
        return 0;
    char namaddr[600];
    snprintf(namaddr, sizeof namaddr, "%s[%s]", host, addr);
    buf_reset(reply);
    /* The TLS reply names host[addr]; the others the address alone. */
    buf_printf(reply, texts[ev].reply, ev == ANVIL_NEWTLS ? namaddr : addr);
    log_warning("%s: %lld from %s for service smtp", texts[ev].warning, rate, namaddr);
    return 1;
}
