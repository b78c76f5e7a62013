/*
 * The routing decision, as Postfix's trivial-rewrite and smtp client make
 * it: for a recipient and a sender, which transport and which next hop
 * (transport_maps, then sender_dependent_relayhost_maps, then relayhost,
 * then the recipient domain by MX; for a local domain transport_maps, then
 * mailbox_transport or virtual_transport, then the built-in Maildir), and,
 * for AUTH to that next hop, the keys to try in smtp_sasl_password_maps, in
 * Postfix's order. LMTP next hops follow lmtp(8): unix:PATH, inet:HOST:PORT.
 *
 * Ownership: struct route owns its strings (route_clear() frees them).
 * Lookups go through struct route_tables, which the caller owns.
 */
#ifndef HONGYAN_DELIVER_ROUTE_H
#define HONGYAN_DELIVER_ROUTE_H

#include "lib/buf.h"
#include "tls/tls_client.h"

struct config;

enum route_kind {
    ROUTE_SMTP,    /* deliver by SMTP to host:port */
    ROUTE_DISCARD, /* transport discard: report delivered, send nothing */
    ROUTE_ERROR,   /* transport error: bounce with text */
    ROUTE_RETRY,   /* transport retry:, or one we cannot run: defer with text */
    ROUTE_LMTP,    /* deliver by LMTP to path (unix socket) or host:port, no MX */
    ROUTE_LOCAL,   /* a local domain's built-in Maildir delivery (transport local/virtual) */
};

/* What the recipient's domain is, which decides the default transport. */
enum route_class {
    ROUTE_CLASS_REMOTE, /* not local: relayhost or MX */
    ROUTE_CLASS_MYDEST, /* mydestination: mailbox_transport, else Maildir */
    ROUTE_CLASS_VIRTUAL /* virtual_mailbox_domains: virtual_transport, else Maildir */
};

struct route {
    enum route_kind kind;
    char *nexthop; /* as written: "in-v3.mailjet.com:587", "[10.0.0.1]:25", "example.com",
                      "unix:/run/dovecot/lmtp" */
    char *host;    /* domain or host name without brackets and port; an address literal;
                      for a unix socket the path as written */
    char *path;    /* ROUTE_LMTP over a unix-domain socket: the absolute path; else NULL */
    int port;
    int mx;             /* 1: look up host's MX records; 0: its A/AAAA only ("[host]") */
    int literal;        /* host is an IP address: connect to it, no DNS */
    const char *source; /* "transport_maps", "sender_dependent_relayhost_maps", "relayhost", "mx",
                           "mailbox_transport", "virtual_transport", "local" */
    char *text;         /* ROUTE_ERROR/ROUTE_RETRY: the reason */
};

/*
 * The lookup tables a route needs, as one function: table is the config key
 * ("transport_maps", "sender_dependent_relayhost_maps",
 * "smtp_sasl_password_maps", "smtp_tls_policy_maps"); the answer is an enum map_result (maps.h).
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
/*
 * The same for a recipient of the given class. For a local domain,
 * transport_maps applies first (as in Postfix, to every recipient), then
 * mailbox_transport (mydestination) or virtual_transport
 * (virtual_mailbox_domains); empty, "local" or "virtual" is ROUTE_LOCAL.
 */
enum route_status route_decide_class(const struct config *cfg, struct route_tables *t,
                                     const char *sender, const char *rcpt, enum route_class cls,
                                     struct route *out, struct buf *err);
void route_clear(struct route *r);

/*
 * Parses a next hop ("host", "host:port", "[host]", "[host]:port", IPv6 as
 * "[2001:db8::1]:587" or "[ipv6:2001:db8::1]") with default_port for
 * none. Port may be a number or smtp/submission/smtps. 0 or -1 with err.
 */
int route_parse_nexthop(const char *nexthop, int default_port, struct route *out, struct buf *err);

/*
 * Parses an LMTP next hop (lmtp(8)): "unix:PATH" (a relative PATH is taken
 * relative to queue_dir, as Postfix does), "inet:HOST", "inet:HOST:PORT",
 * "inet:[ADDR]:PORT", or the same without "inet:". Sets out->kind to
 * ROUTE_LMTP; never an MX lookup; default_port (lmtp_tcp_port) when none
 * is given; the port may also be "lmtp". 0, or -1 with err.
 */
int route_parse_lmtp(const char *nexthop, const char *queue_dir, int default_port,
                     struct route *out, struct buf *err);

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

/*
 * smtp_tls_policy_maps (Postfix TLS_README "TLS policy maps"). The keys,
 * first match wins: the next hop as written without the transport
 * ("[smtp.example.com]:587", "example.com", "example.com:587"); then, only
 * when that is a plain domain name (no brackets, no port), each parent
 * domain with a leading dot: for "a.b.example.com" ".b.example.com",
 * ".example.com", ".com" (Postfix's order; smtp_tls_policy_maps is not in
 * parent_domain_matches_subdomains, so "example.com" matches only itself).
 * Returns a strlist (strlist_free()).
 */
char **route_tls_policy_keys(const struct route *r);

/* One policy entry, parsed. Owns match (strlist) and ignored. */
struct route_tls_policy {
    enum tls_level level;
    char **match; /* match= names (colon-separated in the table), or NULL for the level's default */
    char *ignored; /* attributes accepted but not enforced ("protocols=... ciphers=..."), or NULL */
};

/*
 * Parses a policy value: a level (none, may, encrypt, verify, secure,
 * dane) then attributes: match=NAME:NAME... (verify and secure only;
 * hostname, nexthop, dot-nexthop or a literal name, ".name" for its
 * subdomains), protocols= and ciphers= (accepted, not enforced: listed in
 * out->ignored). Anything else (another level such as dane-only or
 * fingerprint, an unknown or repeated attribute, an empty match=) is -1
 * with err; 0 fills out (route_tls_policy_clear() it).
 */
int route_tls_policy_parse(const char *value, struct route_tls_policy *out, struct buf *err);
void route_tls_policy_clear(struct route_tls_policy *p);

enum route_tls_result {
    ROUTE_TLS_DEFAULT,  /* no entry: smtp_tls_security_level applies */
    ROUTE_TLS_FOUND,    /* out is filled, key_used says which key matched */
    ROUTE_TLS_TEMPFAIL, /* the table could not be read: err */
    ROUTE_TLS_INVALID,  /* the entry is malformed: err (defer, never downgrade) */
};

/* Looks r's next hop up in "smtp_tls_policy_maps" through t, in route_tls_policy_keys() order. */
enum route_tls_result route_tls_policy_lookup(struct route_tables *t, const struct route *r,
                                              struct route_tls_policy *out, struct buf *key_used,
                                              struct buf *err);

#endif
