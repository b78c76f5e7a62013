/*
 * Postfix's SMTP access restrictions (postconf(5) smtpd_*_restrictions,
 * access(5), SMTPD_POLICY_README): the lists of a generation, and one
 * evaluator per session that walks them at each check point and answers
 * pass, refuse (with the reply, Postfix's text) or pending.
 *
 * Pending: a DNS list or policy server must answer first. The evaluator
 * starts the lookup, remembers its answer for the session, and calls the
 * session's resume callback; the session then runs the same command again
 * and this time the walk completes from the remembered answers. So the
 * walk itself stays a plain synchronous loop, and log lines (reject, warn,
 * hold...) are written only by the walk that completes.
 *
 * Ownership: restrict_session_new() returns an evaluator freed with
 * restrict_session_free() (which cancels what is in flight). The conf
 * belongs to its server generation, which frees it with restrict_conf_free
 * (set by server_gen_new in daemon/server_gen.c).
 */
#ifndef HONGYAN_SMTPD_RESTRICT_H
#define HONGYAN_SMTPD_RESTRICT_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/buf.h"

struct config;
struct dns;
struct resolver;
struct restrict_conf;
struct restrict_session;
struct event_base;
struct workq;

/* Where in the session a check runs. */
enum restrict_point {
    RESTRICT_CONNECT, /* smtpd_client_restrictions when smtpd_delay_reject = no */
    RESTRICT_HELO,    /* smtpd_helo_restrictions when smtpd_delay_reject = no */
    RESTRICT_MAIL,    /* smtpd_sender_restrictions when smtpd_delay_reject = no */
    RESTRICT_RCPT,    /* (client, helo, sender if delayed), relay, recipient */
    RESTRICT_DATA,    /* smtpd_data_restrictions */
    RESTRICT_EOD,     /* smtpd_end_of_data_restrictions */
};

/* What the checks may look at; NULL/0 for what the session does not know yet. */
struct restrict_facts {
    const struct sockaddr *sa;
    const char *addr;      /* the client's IP address, text */
    const char *host;      /* its forward-confirmed name, or "unknown" */
    const char *reverse;   /* its PTR name, confirmed or not, or NULL */
    const char *helo;      /* NULL before HELO/EHLO */
    const char *sender;    /* NULL outside a transaction, "" for <> */
    const char *recipient; /* the RCPT address being checked (RCPT only) */
    const char *sasl_user; /* NULL when not authenticated */
    const char *sasl_method;
    const char *proto; /* "SMTP" or "ESMTP" */
    const char *queue_id;
    int mynetworks;                        /* the client may relay by address (smtpd_listen only) */
    int tls;                               /* the session is encrypted */
    const char *tls_protocol, *tls_cipher; /* "TLSv1.3", "TLS_AES_256_GCM_SHA384"; NULL: none */
    int tls_bits;
    unsigned client_port;
    int ill_pipelining; /* commands came before they were allowed (RFC 2920) */
    int smtputf8;
    size_t rcpt_count; /* recipients accepted so far */
    unsigned long long size;
    const char *instance; /* a token unique to the transaction (policy "instance") */
};

enum restrict_status {
    RESTRICT_PASS,
    RESTRICT_REFUSE,
    RESTRICT_PENDING,
};

struct restrict_reply {
    int code;
    char dsn[16];
    char text[512];
};

/* What access results and policy actions asked for the transaction. */
struct restrict_effects {
    int hold;
    int discard;
    char *redirect;     /* REDIRECT user@domain, or NULL */
    struct buf prepend; /* header lines (CRLF-terminated) to put on top */
    char *discard_why;  /* the log text of a DISCARD */
};

/*
 * The session's side: resume() runs the command again (the walk that said
 * pending can now complete); log() writes one Postfix line ("reject",
 * "reject_warning", "warn", "hold", "discard", "redirect", "info") with the
 * text, for the facts of that walk.
 */
struct restrict_hooks {
    void (*resume)(void *arg);
    void (*log)(void *arg, const struct restrict_facts *f, const char *whatsup, const char *text);
    void *arg;
};

/* The conf of a generation, made on first use; freed with the generation. */
struct restrict_conf *restrict_conf_get(struct restrict_conf **slot, const struct config *cfg,
                                        struct resolver *resolver);
void restrict_conf_free(struct restrict_conf *rc);

/*
 * Checks every restriction list of cfg without a client: unknown words,
 * missing arguments, tables that cannot be opened, the relay rule. Appends
 * one line per problem to warnings ("hongyan config" and reload print
 * them; the server still starts, and that stage answers 451 4.3.5).
 * Returns the number of problems.
 */
int restrict_conf_check(const struct config *cfg, struct buf *warnings);

/*
 * wq runs the table lookups that may wait on the network (pgsql:); with
 * NULL they are asked in place.
 */
struct restrict_session *restrict_session_new(struct restrict_conf *rc, struct dns *dns,
                                              struct event_base *base, struct workq *wq,
                                              const struct restrict_hooks *hooks);
/*
 * A session freed while a table lookup runs on the work queue would free
 * the generation that lookup reads: the session waits while this is 1
 * (resume() comes when the lookup is done).
 */
int restrict_session_busy(const struct restrict_session *rs);
void restrict_session_free(struct restrict_session *rs);

/*
 * smtpd_sender_login_maps for an authenticated client's MAIL FROM (the
 * submission ports' own check): PASS, REFUSE with Postfix's reply (553
 * not owned, 451 4.3.0 when a table cannot answer), or PENDING when a
 * table is asked on the work queue (resume() runs the command again).
 * Nothing is logged.
 */
enum restrict_status restrict_sender_login(struct restrict_session *rs, const char *sender,
                                           const char *user, struct restrict_reply *reply);

/*
 * Runs the lists of point. PASS, REFUSE (reply filled, already logged) or
 * PENDING (resume() comes later, exactly once, unless the session is freed
 * first). Nothing is logged by a walk that ends pending.
 */
enum restrict_status restrict_check(struct restrict_session *rs, enum restrict_point point,
                                    const struct restrict_facts *f, struct restrict_reply *reply);

/* A new command: answers remembered for the previous one are forgotten. */
void restrict_command_start(struct restrict_session *rs);
/* A new transaction (MAIL, RSET, end of message): the effects are cleared. */
void restrict_tx_reset(struct restrict_session *rs);
const struct restrict_effects *restrict_effects(const struct restrict_session *rs);

#endif
