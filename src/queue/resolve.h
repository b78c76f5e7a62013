/*
 * Recipient resolution: what the configuration says about an address.
 * Used by the SMTP server at RCPT time (to accept, refuse with 550 5.1.1, or
 * answer 4xx when a table is unavailable), by pickup for mail from sendmail,
 * and by delivery to find the mailbox.
 *
 * Local domains are mydestination and virtual_mailbox_domains. Expansion
 * applies virtual_alias_maps to every address, then alias_maps to local
 * parts of mydestination domains, recursively with a loop and depth guard;
 * when virtual_mailbox_maps is set only its keys are valid local mailboxes.
 */
#ifndef HONGYAN_QUEUE_RESOLVE_H
#define HONGYAN_QUEUE_RESOLVE_H

#include <stddef.h>

#include "lib/buf.h"
#include "maps/maps.h"

struct config;
struct resolver;

enum resolve_class {
    RESOLVE_LOCAL,  /* mydestination or virtual_mailbox_domains: Maildir */
    RESOLVE_RELAY,  /* relay_domains: accepted from anyone, delivered onward */
    RESOLVE_REMOTE, /* anything else: needs mynetworks or AUTH to be accepted */
};

struct resolved_rcpt {
    char *address; /* final address after expansion */
    enum resolve_class cls;
    char *mailbox;      /* RESOLVE_LOCAL: absolute Maildir path ending in '/'; else NULL */
    int virtual_domain; /* RESOLVE_LOCAL: 1 the domain is a virtual_mailbox_domains one, 0 in
                           mydestination (which wins when a domain is in both) */
};

/* RFC 3463 class.subject.detail, up to three digits each ("5.123.456"), and the NUL. */
#define RESOLVE_STATUS_MAX 10

struct resolved_list {
    struct resolved_rcpt *items;
    size_t count;
    /*
     * When resolver_expand() found nobody: the enhanced status code of the
     * refusal ("5.1.3") apart from its text (in err), so no caller parses
     * one out of the other; "" when there is none (a table's own error).
     * resolved_list_free() leaves it.
     */
    char status[RESOLVE_STATUS_MAX];
};

/* NULL with err when a table named in the configuration cannot be opened. */
struct resolver *resolver_new(const struct config *cfg, struct buf *err);
void resolver_free(struct resolver *r);

/* Classifies by domain alone (case-insensitive); "" and no '@' count as local (myorigin). */
enum resolve_class resolver_classify(struct resolver *r, const char *address);

/*
 * Expands address into final recipients. MAP_NOTFOUND: a local recipient
 * that does not exist (550 5.1.1), with the reason in err. MAP_TEMPFAIL: a
 * table could not be read (4xx). On either, out->status may hold the
 * enhanced status that goes with err ("5.1.3" and "<addr>: Recipient
 * address rejected: ..."). The caller frees out with resolved_list_free().
 */
enum map_result resolver_expand(struct resolver *r, const char *address, struct resolved_list *out,
                                struct buf *err);
void resolved_list_free(struct resolved_list *l);

/*
 * 1 when resolver_expand() may wait on the network (an alias or mailbox
 * table is pgsql:): callers on the event loop then run it on the work
 * queue. It is thread-safe: every table type guards its own state.
 */
int resolver_expand_may_block(const struct resolver *r);

/*
 * The same for the domain lists (a pgsql: table in mydestination,
 * virtual_mailbox_domains or relay_domains): then resolver_class() and
 * resolver_classify() may wait on the network too.
 */
int resolver_class_may_block(const struct resolver *r);

/*
 * The class of address, or -1 when a domain table cannot answer (err
 * says why): the caller answers 4xx or defers, as Postfix does when its
 * resolver fails, instead of guessing "remote" as resolver_classify() does.
 */
int resolver_class(struct resolver *r, const char *address, struct buf *err);

/*
 * The same without waiting: RESOLVER_WOULD_WAIT when the answer needs a
 * table that may wait on the network (no static item or local table
 * before it decided). So a domain that main.cf names costs no query.
 */
#define RESOLVER_WOULD_WAIT (-2)
int resolver_class_nowait(struct resolver *r, const char *address, struct buf *err);
/* 1 when resolver_lookup_rcpt(address) may wait on the network: run it on the work queue. */
int resolver_lookup_rcpt_may_block(struct resolver *r, const char *address);

/*
 * What the SMTP server needs to know at RCPT: the class (*cls), then, for
 * a local address, its expansion as resolver_expand(). MAP_FOUND with an
 * empty out for a relay or remote address; MAP_TEMPFAIL when a domain or
 * alias table cannot answer. Thread-safe, so it may run on the work queue.
 */
enum map_result resolver_lookup_rcpt(struct resolver *r, const char *address,
                                     enum resolve_class *cls, struct resolved_list *out,
                                     struct buf *err);

#endif
