/*
 * The delivery interface between the queue manager and its agents (local
 * Maildir, remote SMTP and LMTP): one request carries a message and some
 * of its recipients that share a next hop; the agent answers each recipient
 * with delivered, try again later, or failed for good, plus the reply text
 * for the log and the DSN. Agents never touch the envelope on disk; the
 * queue manager records the results.
 */
#ifndef HONGYAN_DELIVER_AGENT_H
#define HONGYAN_DELIVER_AGENT_H

#include <stddef.h>
#include <sys/time.h>

#include "deliver/route.h"
#include "lib/buf.h"

struct server;
struct envelope;
struct remote_gen;
struct spool_data;

enum delivery_status {
    DELIVERY_OK,
    DELIVERY_TEMPFAIL, /* deferred: retry with backoff */
    DELIVERY_PERMFAIL, /* bounced: a DSN goes to the sender */
};

struct delivery_rcpt_result {
    size_t rcpt; /* index into env->rcpts */
    enum delivery_status status;
    char dsn[16];        /* "2.0.0", "4.4.1", "5.1.1" */
    char *reply;         /* remote reply or local reason, for the log and the DSN; heap */
    char *relay;         /* "host[ip]:port", "local", ...; heap, may be NULL */
    const char *service; /* Postfix's agent for the log ("smtp", "lmtp"); static, may be NULL */
    /*
     * 1 when no peer took the message (discard:), so doing it again after a
     * crash harms no one: its result needs no sync before the message is
     * removed, unlike a peer's 250 (docs/queue.md, Results).
     */
    int repeatable;
    /*
     * When the session that answered was ready to send (connected, greeted,
     * TLS and AUTH done): the log's delays= c ends and d begins there. Zero
     * when no session answered (a failed connection, discard:, error:).
     */
    struct timeval setup_done;
};

struct delivery_request {
    struct server *srv;
    const struct envelope *env; /* read-only for the agent */
    const char *queue_id;
    /*
     * The message (headers and body, CRLF line ends): its range of an open
     * descriptor (queue/spool.h), borrowed: the queue manager closes it
     * after the done callback. Agents read only the range.
     */
    const struct spool_data *data;
    size_t *rcpts; /* indexes into env->rcpts for this request */
    size_t nrcpts;
    /*
     * Per request recipient, an enum route_class (deliver/route.h):
     * ROUTE_CLASS_REMOTE, ROUTE_CLASS_MYDEST or ROUTE_CLASS_VIRTUAL, which
     * picks mailbox_transport / virtual_transport. NULL: every recipient
     * remote.
     */
    const unsigned char *rcpt_class;
    /*
     * Per request recipient, its route decided ahead on the work queue
     * (the routing tables may wait on the network: remote_routing_decide),
     * which remote_deliver() takes over (and clears); NULL: decided there.
     */
    struct delivery_route *routes;
};

/* A route decided ahead: status ROUTE_FOUND with route, or ROUTE_TEMPFAIL with why. */
struct delivery_route {
    enum route_status status;
    struct route route;
    char *why;
};
void delivery_route_clear(struct delivery_route *r);

/* results has req->nrcpts entries, in the order of req->rcpts; the queue manager frees it. */
typedef void (*delivery_done_cb)(void *arg, struct delivery_rcpt_result *results, size_t count);

void delivery_results_free(struct delivery_rcpt_result *results, size_t count);

/*
 * Remote delivery by MX, relayhost or transport_maps, and LMTP
 * (src/deliver/remote*.c).
 */
void remote_deliver(const struct delivery_request *req, delivery_done_cb done, void *arg);

/*
 * The routing tables of the current configuration (transport_maps,
 * sender_dependent_relayhost_maps), held by the queue manager so that it
 * can decide routes on the work queue: hold and release on the loop
 * thread; remote_routing_decide() is thread-safe (route_decide_class with
 * these tables; ROUTE_TEMPFAIL with why when they could not be opened).
 * remote_routing_may_block(): 1 when a table may wait on the network
 * (pgsql:), so the decision belongs off the loop.
 */
struct remote_gen *remote_routing_hold(struct server *srv);
void remote_routing_release(struct remote_gen *g);
int remote_routing_may_block(const struct remote_gen *g);
void remote_routing_decide(struct remote_gen *g, const char *sender, const char *rcpt, int cls,
                           struct delivery_route *out);
/*
 * For a recipient of a local domain (class ROUTE_CLASS_MYDEST or
 * ROUTE_CLASS_VIRTUAL) whose route was decided: 0 when it goes to the
 * built-in Maildir, 1 when transport_maps, mailbox_transport or
 * virtual_transport send it elsewhere (lmtp:, smtp:, error:, ...) or a
 * table failed (remote_deliver() defers it with the reason).
 */
int remote_route_is_agent(const struct delivery_route *r);
/*
 * The next hop a decided route (remote_routing_decide) goes to, named as
 * remote_deliver() groups recipients ("smtp|NEXTHOP|PORT|MX",
 * "lmtp|unix:PATH|0|0"): the queue manager keeps one line of deliveries per
 * name and its own concurrency limit (qmgr_dest.c). 1 with key set; 0 when
 * the recipient gets its answer without a session (discard, error:, retry:,
 * a table that cannot be read), so it needs no slot.
 */
int remote_decided_destination(const struct delivery_route *r, struct buf *key);

/* "Flush": forget which next hops were found dead, so that all are tried now (postqueue -f). */
void remote_flush_dead(void);

#endif
