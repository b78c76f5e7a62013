/*
 * What the parts of remote delivery share: the structs of a configuration
 * generation, a next hop with its idle connections, a request and its jobs,
 * and the functions one part calls in another. Private to
 * src/deliver/remote*.c; the rest of the tree sees deliver/agent.h.
 *
 * The parts: remote.c (generations, next hops and the connection cache, the
 * agent entry point and the routing seam the queue manager uses),
 * remote_job.c (a job's results, TLS reports, its SMTP/LMTP sessions and
 * connections), remote_lookup.c (finding the servers: MX, address and TLSA
 * lookups, MTA-STS, and starting and running a job).
 */
#ifndef HONGYAN_DELIVER_REMOTE_INT_H
#define HONGYAN_DELIVER_REMOTE_INT_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "config/config.h"
#include "server/server.h"
#include "deliver/agent.h"
#include "deliver/mta_sts.h"
#include "deliver/mta_sts_apply.h"
#include "deliver/route.h"
#include "deliver/tlsrpt.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/envelope.h"
#include "deliver/client.h"
#include "tls/tls_client.h"

/* What is built from one configuration: tables and TLS; jobs hold a reference. */
struct remote_gen {
    int refs;
    struct server_gen *sgen; /* a reference: the configuration stays while jobs use it */
    const struct config *cfg;
    struct map_list *transport, *sender_relay, *sasl, *tls_policy;
    struct route_tables tables;
    struct tls_client *tls;
    struct event_base *base;
    /* smtp_tls_security_level = dane with a trust anchor: the validating resolver. */
    struct dns *dane_dns;
    char *open_error; /* a table or TLS that could not be opened: every delivery defers */
};

struct remote_idle {
    struct smtp_client *c;
    struct event *timer;
    struct remote_dest *dest;
    char *server_name; /* the host dialled (SNI, names checked), as the job that opened it */
    char *ip;          /* its address, text */
    time_t born;
    struct remote_idle *next;
};

struct remote_job;

/* One next hop: its sessions, idle connections and the jobs waiting for a slot. */
struct remote_dest {
    char *key;
    int active;
    /* Every server unreachable: later mail is deferred at once until then (Postfix's dead
     * destination). */
    time_t dead_until;
    char *dead_reason;
    char dead_dsn[16];
    struct remote_idle *idle;
    struct remote_job *wait_head, *wait_tail;
    struct remote_dest *next;
};

struct remote_req {
    struct server *srv;
    const struct envelope *env;
    char *queue_id;
    struct spool_data data; /* borrowed from the queue manager (agent.h) */
    struct delivery_rcpt_result *results;
    size_t nresults;
    int jobs;
    delivery_done_cb done;
    void *arg;
};

struct remote_host {
    char *name;
    unsigned pref;
    int resolved;
    /* DANE (RFC 7672 2.2): */
    int dane_ok;           /* found securely (a secure MX RRset, or a non-MX next hop) */
    int addr_insecure;     /* an A/AAAA answer that gave addresses was not validated */
    size_t first_addr;     /* its addresses start here in job->addrs */
    enum tls_level level;  /* the level for its addresses: may, encrypt or dane */
    struct tls_dane *dane; /* its usable TLSA records (level dane) */
    char *canon;           /* its secure CNAME expansion, when it is an alias (RFC 7672 2.2.2) */
    int tlsa_at_canon;     /* the TLSA query in flight is for canon */
};

struct remote_addr {
    char *host; /* the server's name */
    char *ip;
    size_t hidx; /* index of its struct remote_host, SIZE_MAX for an address literal */
};

struct remote_job {
    struct remote_req *req;
    struct remote_gen *gen;
    struct route route;
    struct remote_dest *dest;
    size_t *pos; /* indexes into req->results */
    size_t n;
    unsigned char *final;    /* per pos: a final answer (sent or bounced) is in */
    unsigned char *answered; /* per pos: a server's own 4xx is its result, unless a later
                                error supersedes it */
    struct remote_host *hosts;
    size_t nhosts, next_host;
    struct remote_addr *addrs;
    size_t naddrs, next_addr, tried;
    struct dns_query *q;
    int aaaa_phase;
    struct smtp_client *c;
    char *c_server; /* server name of c */
    char *c_ip;
    int plain_retry; /* at may, a failed handshake: once again without STARTTLS */
    /* smtp_tls_policy_maps for the next hop: it depends on the route only, so it is looked up
     * once per job (remote_job_tls_policy); policy_err says why on TEMPFAIL/INVALID. */
    int policy_done;
    enum route_tls_result policy_result;
    struct route_tls_policy policy;
    char *policy_err;
    /*
     * A pgsql: smtp_sasl_password_maps or smtp_tls_policy_maps is asked on
     * the work queue before connecting (remote_conn_lookup_start); the
     * credentials in user/pass are then for the server named creds_host.
     */
    size_t lookup_addr; /* the address remote_connect() resumes with */
    int lookup_sasl;
    char *creds_host;
    int creds_result;
    struct buf creds_key, creds_err;
    char **tls_match;       /* smtp_tls_policy_maps match=, expanded for the connection made */
    enum tls_level c_level; /* the TLS level of the last connection made */
    struct smtp_msg msg;
    /* When the current session was ready and sending began (zero: none yet): for delays=. */
    struct timeval send_started;
    struct smtp_msg_rcpt *mrcpts;
    size_t *mpos; /* msg rcpt i -> index into pos */
    char *last_error;
    char *last_relay; /* host[ip]:port that gave last_error, or NULL (no session) */
    char last_dsn[16];
    int last_permanent;
    int sessions, conn_fails, other_fails; /* what the attempts came to */
    struct buf user, pass;
    struct remote_job *next_wait;
    /* The recipient domain's MTA-STS policy in testing or enforce mode (RFC 8461), or NULL. */
    struct mta_sts_policy *sts;
    char *sts_domain;
    int by_mx; /* delivery by MX to the recipient's domain: MTA-STS and TLS-RPT apply */
};

/* remote.c: generations and the connection cache. */
void remote_gen_unref(struct remote_gen *g);
struct dns *remote_dns(struct server *srv, const struct config *cfg);
void remote_dest_release(struct remote_dest *d, struct smtp_client *c, const char *server_name,
                         const char *ip, time_t born, const struct config *cfg);

/* remote_job.c: results, TLS reports and sessions. */
void remote_req_job_done(struct remote_req *req);
void remote_set_error(struct remote_job *j, const char *dsn, const char *why, int permanent);
void remote_job_end(struct remote_job *j);
void remote_tlsrpt(struct remote_job *j, const char *result, const char *host, const char *ip,
                   int dane);
size_t remote_open_count(const struct remote_job *j);
void remote_send(struct remote_job *j);
/*
 * On a cached connection whose server pipelines: RSET and the message in
 * one group (smtp_client_send_reused). 0 when it does not pipeline (the
 * caller resets first).
 */
int remote_send_reused(struct remote_job *j);
enum route_tls_result remote_job_tls_policy(struct remote_job *j);
void remote_connect(struct remote_job *j, const struct remote_addr *a);

/* remote_lookup.c: finding the servers, and running the job over them. */
void remote_job_try_next(struct remote_job *j);
void remote_job_run(struct remote_job *j);
/* The cached connection c died while idle: freed, and the job runs again on a new one. */
void remote_reuse_lost(struct remote_job *j, struct smtp_client *c);
void remote_job_start(struct remote_job *j);

#endif
