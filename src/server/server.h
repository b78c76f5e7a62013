/*
 * What smtpd or delivery shares with every session and agent: the event
 * loop, the configuration in force, and the modules built from it. A SIGHUP
 * builds a new set (config, resolver, TLS) and swaps it in; sessions keep a
 * reference to the generation they started with (server_gen_ref/unref), so
 * a reload never changes the rules under an open transaction.
 */
#ifndef HONGYAN_SERVER_SERVER_H
#define HONGYAN_SERVER_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "metrics/metrics.h"
#include "lib/buf.h"

struct event_base;
struct config;
struct resolver;
struct spool;
struct workq;
struct qmgr;
struct tls_server;
struct dns;
struct client_table;
struct auth;
struct dkim_signer;
struct restrict_conf;
struct milter_conf;

/*
 * Bytes held in memory by all the sessions of smtpd (smtpd/hold.h,
 * smtpd_inbound_memory_limit). Defined here, not in smtpd/, because
 * struct server embeds it and smtpd sits above this layer.
 */
struct smtpd_hold_budget {
    size_t limit;
    size_t used;
};

enum listener_kind {
    LISTEN_SMTPD,      /* smtpd_listen: MX traffic, opportunistic STARTTLS */
    LISTEN_SUBMISSION, /* submission_listen: STARTTLS then AUTH required to relay */
    LISTEN_SMTPS,      /* smtps_listen: implicit TLS (RFC 8314) */
    LISTEN_METRICS,    /* metrics_listen: HTTP for /metrics and the status page, not SMTP */
};

/* The part rebuilt on reload. */
struct server_gen {
    int refs;
    struct config *cfg;
    struct resolver *resolver;
    struct tls_server *tls; /* NULL until the TLS module provides one */
    /*
     * DKIM signing keys (mailauth/dkim.h), loaded once per generation. A
     * domain whose key could not be loaded sends its mail unsigned, logged
     * with each message (see docs/dkim.md); the other domains still sign.
     */
    struct dkim_signer *dkim;
    struct restrict_conf *restrict_conf; /* smtpd/restrict.h, made at the first session */
    /*
     * restrict_conf_free, set by server_gen_new (src/daemon/): this layer
     * sits below smtpd/ and cannot name it.
     */
    void (*restrict_conf_free)(struct restrict_conf *rc);
    /* smtpd_milters and non_smtpd_milters (milter/milter.h); count 0 when none. */
    struct milter_conf *smtpd_milters, *non_smtpd_milters;
};

struct server;
struct workq;
/* The pool for lookups that may wait on the network; the main pool when there is none (tests). */
struct workq *server_map_workq(const struct server *srv);

struct server {
    struct event_base *base;
    struct server_gen *gen; /* current generation */
    struct spool *spool;
    struct workq *workq;
    struct qmgr *qmgr;
    /*
     * "A message is in the queue", called by the session right after the
     * commit that made it durable: in the smtpd process, a SPLIT_QUEUED
     * hint to the delivery process (daemon/worker.c). Through here because
     * smtpd/ may not know who listens (docs/architecture.md, "Layers");
     * NULL: nobody (the periodic queue scan finds the message).
     */
    void (*queued)(void *arg, const char *queue_id);
    void *queued_arg;
    struct dns *dns;              /* NULL until the DNS module provides one */
    struct client_table *clients; /* sessions per client address */
    struct auth *auth;        /* SMTP AUTH users and failure throttle (smtpd/auth.h); kept across
                                 reloads (auth_reload on SIGHUP); NULL: no AUTH */
    int sessions;             /* open SMTP sessions, for limits and shutdown */
    int client_v6_prefix;     /* smtpd_client_ipv6_prefix_length, fixed at worker start so that a
                                 session ends under the key it started with */
    struct workq *auth_workq; /* password hashing only: an AUTH flood cannot delay commits */
    /*
     * Table lookups that may wait on the network (pgsql:), apart: a stalled
     * database holds these threads, never the commits' (server_map_workq).
     */
    struct workq *map_workq;
    struct smtpd_hold_budget hold_budget; /* smtpd_inbound_memory_limit, for all sessions */
    int draining; /* SIGTERM: finish open transactions, accept nothing new */
};

struct server_gen *server_gen_ref(struct server *srv);
void server_gen_unref(struct server_gen *gen);

/*
 * Starts an SMTP session on an accepted socket; the session owns fd and
 * frees itself when the client leaves. Implemented by src/smtpd/.
 */
void smtpd_session_start(struct server *srv, int fd, const struct sockaddr *peer,
                         socklen_t peer_len, enum listener_kind kind);
/*
 * The listener counts sessions per client address and refuses with 421 over
 * the limits before a session starts; the session reports its end here.
 */
void server_session_ended(struct server *srv, const struct sockaddr *peer, socklen_t peer_len);
/* The metrics' name for an SMTP listener kind (metrics/metrics.h). */
enum metrics_listener server_listener_metric(enum listener_kind kind);

/*
 * Builds a generation from the configuration file (NULL: embedded); NULL with
 * err. smtp_server: with the TLS server context and the restriction check
 * (smtpd); 0 for delivery, which serves no SMTP. Implemented in
 * src/daemon/server_gen.c, the one layer that sees every module a
 * generation is made of.
 */
struct server_gen *server_gen_new(const char *config_path, struct config *cfg, int smtp_server,
                                  struct buf *err);

/* Per-address counts: add delta (+1/-1) and return the new count. */
struct client_table *client_table_new(void);
void client_table_free(struct client_table *t);
int client_table_add(struct client_table *t, const char *addr, int delta);

/* "ip" text of a socket address (no port), for logs and counting. */
void server_addr_text(const struct sockaddr *sa, char *out, size_t outlen);

#endif
