/*
 * The routing decision for remote mail, as Postfix's trivial-rewrite and
 * smtp client make it: for a recipient and a sender, which transport and
 * which next hop (transport_maps, then sender_dependent_relayhost_maps, then
 * relayhost, then the recipient domain by MX), and, for AUTH to that next
 * hop, the keys to try in smtp_sasl_password_maps, in Postfix's order.
 *
 * Ownership: struct route owns its strings (route_clear() frees them).
 * Lookups go through struct route_tables, which the caller owns.
 */
#ifndef HONGYAN_DELIVER_ROUTE_H
#define HONGYAN_DELIVER_ROUTE_H

#include "lib/buf.h"

struct config;

enum route_kind {
    ROUTE_SMTP,    /* deliver by SMTP to host:port */
    ROUTE_DISCARD, /* transport discard: report delivered, send nothing */
    ROUTE_ERROR,   /* transport error: bounce with text */
    ROUTE_RETRY,   /* transport retry:, or one we cannot run (lmtp): defer with text */
};

struct route {
    enum route_kind kind;
    char *nexthop; /* as written: "in-v3.mailjet.com:587", "[10.0.0.1]:25", "example.com" */
    char *host;    /* domain or host name without brackets and port; an address literal */
    int port;
    int mx;             /* 1: look up host's MX records; 0: its A/AAAA only ("[host]") */
    int literal;        /* host is an IP address: connect to it, no DNS */
    const char *source; /* "transport_maps", "sender_dependent_relayhost_maps", "relayhost", "mx" */
    char *text;         /* ROUTE_ERROR/ROUTE_RETRY: the reason */
};

/*
 * The lookup tables a route needs, as one function: table is the config key
 * ("transport_maps", "sender_dependent_relayhost_maps",
 * "smtp_sasl_password_maps"); the answer is an enum map_result (maps.h).
 * remote.c backs it with map_list_lookup(); tests with a fixed table.
 */
struct route_tables {
    int (*lookup)(void *ctx, const char *table, const char *key, struct buf *value,
                  struct buf *err);
    void *ctx;
};

enum route_status {
    ROUTE_FOUND,
    ROUTE_TEMPFAIL, /* a table could not be read, or a next hop is malformed: defer */
};

/*
 * Decides where mail for rcpt (user@domain) from sender ("" for <>) goes.
 * Fills out on ROUTE_FOUND (route_clear() it); on ROUTE_TEMPFAIL err says why.
 */
enum route_status route_decide(const struct config *cfg, struct route_tables *t, const char *sender,
                               const char *rcpt, struct route *out, struct buf *err);
void route_clear(struct route *r);

/*
 * Parses a next hop ("host", "host:port", "[host]", "[host]:port", IPv6 as
 * "[2001:db8::1]:587" or "[ipv6:2001:db8::1]") with default_port for
 * none. Port may be a number or smtp/submission/smtps. 0 or -1 with err.
 */
int route_parse_nexthop(const char *nexthop, int default_port, struct route *out, struct buf *err);

/*
 * The keys to look up in smtp_sasl_password_maps, first match wins:
 *   1. the next hop exactly as written (relayhost, transport or sender-dependent value),
 *   2. "[host]:port" and "host:port" of the next hop,
 *   3. "[host]" and "host" of the next hop,
 *   4. the name of the server actually connected to (an MX host) with
 *      ":port" when the port is not 25, then alone.
 * Duplicates are dropped. Returns a strlist (strlist_free()).
 */
char **route_sasl_keys(const struct route *r, const char *server_name);

/*
 * Looks the credentials up: MAP_FOUND with user and password filled,
 * MAP_NOTFOUND (do not authenticate), MAP_TEMPFAIL with err. key_used gets
 * the key that matched (for the log; never the password).
 */
int route_sasl_lookup(struct route_tables *t, const struct route *r, const char *server_name,
                      struct buf *user, struct buf *password, struct buf *key_used,
                      struct buf *err);

#endif
