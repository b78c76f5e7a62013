/*
 * Inside the restriction evaluator (restrict.c, restrict_dns.c,
 * restrict_policy.c): the generation's conf, the session's remembered
 * answers, and the state of one walk. Not for other modules.
 */
#ifndef HONGYAN_SMTPD_RESTRICT_INT_H
#define HONGYAN_SMTPD_RESTRICT_INT_H

#include "dns/dns.h"
#include "smtpd/restrict.h"

struct map;
struct map_list;
struct policyd_req;
struct restrict_lookup_job;
struct workq;

/* One table a check_*_access names, opened on first use. */
struct restrict_table {
    char *spec;
    struct map *map; /* NULL: it could not be opened (why says why) */
    char *why;
};

struct restrict_conf {
    const struct config *cfg;
    struct resolver *resolver;
    struct restrict_table *tables;
    size_t ntables;
    struct map_list *rbl_reply_maps; /* NULL when none or unopenable */
    int rbl_reply_maps_bad;
    int relay_guard_ok; /* relay or recipient list can refuse unauthorised relaying */
    int delay_reject;
};

/* A table's answer asked on the work queue (restrict_lookup.c). */
struct restrict_answer {
    int result; /* as restrict_lookup() returns it */
    char *value;
    char *why;
};

/* A remembered answer: a DNS answer, a policy action or a table's answer, by key. */
struct restrict_memo {
    char *key;
    struct dns_answer *dns;         /* DNS entries */
    char *action;                   /* policy entries ("" when the server failed) */
    struct restrict_answer *answer; /* table entries, for one command like policy ones */
};

/*
 * Answers kept per session (the array grows to this). A check point that
 * needs more lookups than this in one go is refused as a configuration
 * error rather than asking forever (restrict_check counts them).
 */
#define RESTRICT_MEMO_MAX 128
/* Postfix gives up on "unreasonable recursion" of classes at 100; lists nest far less. */
#define RESTRICT_DEPTH_MAX 20

struct restrict_session {
    struct restrict_conf *rc;
    struct dns *dns;
    struct event_base *base;
    struct restrict_hooks hooks;
    struct restrict_memo *memo;
    size_t nmemo, memo_cap;
    unsigned pendings; /* lookups started since a check last completed */
    /* the one lookup in flight */
    struct dns_query *dns_q;
    struct policyd_req *policy_q;
    struct restrict_lookup_job *lookup_q; /* a table lookup on the work queue */
    struct workq *wq;                     /* NULL: every table is asked in place */
    char *pending_key;
    struct restrict_effects effects;
};

enum restrict_rc {
    RC_DUNNO,
    RC_PERMIT,
    RC_REFUSE,
    RC_PENDING,
};

/* One walk over the lists of a check point. */
struct restrict_walk {
    struct restrict_session *rs;
    const struct restrict_facts *f;
    const char *reply_name;     /* "<...>" part of replies: client, helo, address */
    const char *reply_class;    /* "Client host", "Sender address", ... */
    const char *protocol_state; /* the policy protocol's name of the check point */
    int warn_next;              /* warn_if_reject before the current restriction */
    int depth;                  /* restriction class nesting */
    struct restrict_reply *reply;
    struct restrict_reply defer_if_permit; /* code 0: none */
    struct restrict_reply defer_if_reject;
    struct buf events;               /* "whatsup\ttext\n" lines, logged at the end */
    struct restrict_effects effects; /* merged into the session's when it passes */
};

/* Refuses with "CODE DSN text" (DSN's class fixed to the code's); honours warn_if_reject. */
enum restrict_rc restrict_refuse(struct restrict_walk *w, int code, const char *dsn,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 451 4.3.5 Server configuration error, logged with why; never a warning only. */
enum restrict_rc restrict_config_error(struct restrict_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void restrict_event(struct restrict_walk *w, const char *whatsup, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An access-table value or policy action, applied as Postfix's check_table_result. */
enum restrict_rc restrict_apply_result(struct restrict_walk *w, const char *value,
                                       const char *table);

/* Refusals that warn_if_reject and DEFER_IF_REJECT do not soften (lookup failures). */
enum restrict_rc restrict_refuse_hard(struct restrict_walk *w, int code, const char *dsn,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Postfix's smtpd_dsn_fix(): an X.1.Y status made to fit the class refused (in place). */
void restrict_dsn_fix(char *dsn, const char *reply_class);
/* The value of a *_reject_code key. */
int restrict_code(struct restrict_walk *w, const char *key);
/* The table spec of a check_*_access, opened on first use (map NULL: why says why). */
struct restrict_table *restrict_table(struct restrict_conf *rc, const char *spec);

/* restrict_words.c: the restrictions; walks words[0..n) (classes nest through it). */
enum restrict_rc restrict_walk_list(struct restrict_walk *w, char **words, size_t n);
int restrict_takes_arg(const char *word);
int restrict_is_plain(const char *word);
int restrict_is_class(const struct config *cfg, const char *word);

/* A new remembered answer for key (the oldest goes when the memo is full). */
struct restrict_memo *restrict_memo_add(struct restrict_session *rs, const char *key);
struct restrict_memo *restrict_memo_find(struct restrict_session *rs, const char *key);

/* restrict_lookup.c: table lookups that may wait on the network, off the loop. */
enum restrict_lookup_kind {
    RESTRICT_LOOKUP_TABLE,    /* map_lookup(map, key): enum map_result, value */
    RESTRICT_LOOKUP_LIST,     /* map_list_lookup(list, key): the same (restrict_lookup_list) */
    RESTRICT_LOOKUP_CLASS,    /* resolver_class(key): enum resolve_class, or -1 */
    RESTRICT_LOOKUP_UNLISTED, /* resolver_lookup_rcpt(key): enum map_result */
    RESTRICT_LOOKUP_LOGIN, /* submission_sender_login_decide(key, user): 0/-1/-2, reply in value */
};
#define RESTRICT_LOOKUP_PENDING (-100)
/*
 * The answer of one lookup (why: the reason of a failure, for the log).
 * A lookup that may wait (pgsql:) is started on the work queue and
 * RESTRICT_LOOKUP_PENDING returned: the caller answers RC_PENDING, and
 * the walk that runs again after resume() finds the answer remembered.
 */
int restrict_lookup(struct restrict_session *rs, enum restrict_lookup_kind kind, struct map *map,
                    const char *key, const char *user, struct buf *value, struct buf *why);
/* The same for a list of tables (rbl_reply_maps). */
int restrict_lookup_list(struct restrict_session *rs, struct map_list *list, const char *key,
                         struct buf *value, struct buf *why);
/* The check stopped waiting (too many lookups) or the session ends (session_gone). */
void restrict_lookup_abandon(struct restrict_session *rs, int session_gone);
/*
 * 1 the recipient's domain is remote (not local, not relay_domains), 0
 * not; -1 with *rc set: pending, or refused with 451 4.3.0 when a domain
 * table cannot answer.
 */
int restrict_rcpt_remote(struct restrict_walk *w, const char *rcpt, enum restrict_rc *rc);

/* DNS answers through the memo: NULL and RC_PENDING in *rc when a query was started. */
const struct dns_answer *restrict_dns(struct restrict_walk *w, const char *name, int type,
                                      enum restrict_rc *rc);

/* restrict_dns.c: the DNS list and domain checks. */
enum restrict_rc restrict_rbl_client(struct restrict_walk *w, const char *zone, int allow);
enum restrict_rc restrict_rhsbl(struct restrict_walk *w, const char *zone, const char *domain,
                                const char *what, const char *class_name, int allow);
enum restrict_rc restrict_unknown_domain(struct restrict_walk *w, const char *addr, int sender);
enum restrict_rc restrict_unknown_helo(struct restrict_walk *w);

/* restrict_policy.c: check_policy_service. */
enum restrict_rc restrict_policy(struct restrict_walk *w, const char *endpoint,
                                 const char *protocol_state);

#endif
