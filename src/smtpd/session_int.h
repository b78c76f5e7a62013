/*
 * What the parts of the SMTP server session share: the session and
 * transaction structs and the functions one part calls in another. Private to
 * src/smtpd/session*.c; the rest of the tree sees smtpd/session.h.
 *
 * The parts: session.c (state, replies, the transaction, input, life cycle,
 * the client's name), session_cmd.c (EHLO, MAIL, RCPT, the small commands,
 * the command table and dispatch), session_data.c (DATA and BDAT, the inbound
 * checks, signing and the commit), session_tlsauth.c (STARTTLS and AUTH),
 * session_restrict.c (the restriction lists and rate limits at each stage),
 * session_milter.c (smtpd_milters).
 */
#ifndef HONGYAN_SMTPD_SESSION_INT_H
#define HONGYAN_SMTPD_SESSION_INT_H

#include "smtpd/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "queue/dkim_spool.h"
#include "mailauth/inbound.h"
#include "smtpd/hold.h"
#include "queue/resolve.h"
#include "milter/milter.h"
#include "queue/envelope.h"
#include "queue/spool.h"
#include "smtp/address.h"
#include "smtp/command.h"
#include "smtp/data.h"
#include "smtpd/anvil.h"
#include "smtpd/auth.h"
#include "smtpd/policy.h"
#include "smtpd/restrict.h"
#include "smtpd/sasl.h"
#include "server/server.h"
#include "server/smtpd_milter.h"
#include "smtpd/submission.h"
#include "tls/tls.h"

/* Input we let pile up (pipelined commands while a commit runs) before we stop reading. */
#define SMTPD_INPUT_HIGH (128 * 1024)
/* Replies the client has not read yet before we stop executing its commands. */
#define SMTPD_OUTPUT_HIGH (64 * 1024)
/* How long a session we close keeps reading, and dropping, what the client still sends. */
#define SMTPD_LINGER_SECONDS 5

/* One mail transaction, from MAIL to the end of the data; allocated at MAIL. */
struct smtpd_tx {
    char *sender; /* "" for <> */
    char *envid;
    int ret;
    int smtputf8;
    int body_8bit;
    struct spool_msg *msg; /* opened at the first accepted recipient */
    size_t nrcpt;          /* accepted RCPT commands */
    size_t rcpt_overshoot; /* RCPTs refused for smtpd_recipient_limit */
    char *first_rcpt;      /* as the client wrote it, for "for <...>" */
    int data_open;         /* the data reader has been set up */
    struct smtp_data data;
    unsigned long long instance; /* the policy protocol's "instance": one per transaction */
    int auth;                    /* the inbound checks run on this message (mailauth/inbound.h) */
    struct smtpd_hold hold;      /* the message held for them until the verdict */
    int milter;                  /* smtpd_milters see this message: held for them too */
    int bdat;                    /* sent with BDAT: the milters get their DATA event at the end */
    struct milter_msg milter_msg;
};

struct smtpd_session {
    struct server *srv;
    struct server_gen *gen; /* config and resolver for the whole session */
    struct bufferevent *bev;
    struct event *life_timer; /* smtpd_session_timeout */
    /* Plain TCP: the replies are written by session.c itself (session_flush); NULL otherwise. */
    struct event *flush_ev;
    struct evbuffer_cb_entry *flush_cb;
    enum listener_kind kind;
    enum smtpd_state state;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char addr[INET6_ADDRSTRLEN]; /* the client's address, text */
    const char *host;            /* its forward-confirmed name (host_name) or "unknown" */
    char *host_name;             /* heap, when confirmed */
    struct dns_query *peer_q;    /* the PTR or address lookup before the greeting */
    char *ptr_name;              /* the PTR answer awaiting forward confirmation */
    int greeted;                 /* the 220 is queued: commands may be read */
    char *helo;
    int esmtp;
    int tls;           /* set by the STARTTLS work */
    int authenticated; /* set by the AUTH work */
    /* STARTTLS and AUTH (session_tlsauth.c) */
    int tls_up;                  /* the handshake has completed */
    int starttls_wait;           /* 220 sent; TLS starts once it has been written */
    struct sasl *sasl;           /* an AUTH exchange; NULL outside one */
    int auth_step;               /* the next line is a SASL response */
    struct auth_pending *auth_q; /* a password check in flight */
    struct rcpt_lookup *rcpt_q;  /* a recipient lookup on the work queue */
    int rcpt_local;              /* the RCPT address is in a local domain (milter {rcpt_mailer}) */
    char *auth_user;             /* the login, once authenticated or being checked */
    int trusted_net;             /* the client is in mynetworks */
    unsigned ext;                /* what EHLO advertised (enum smtp_ext) */
    int errors;
    int discard_line; /* inside an over-long command line */
    int in_run;       /* smtpd_session_run() is on the stack */
    int dead;         /* the connection is gone; free when safe */
    int commit_pending;
    int eof;        /* the client has shut down its side */
    int lingering;  /* our side is shut down; reading until the client's */
    int quit_asked; /* the session ends by the client's QUIT */
    const char *last_cmd;
    unsigned cmd_total[SMTP_CMD_COUNT];
    unsigned cmd_ok[SMTP_CMD_COUNT];
    unsigned unknown_cmds;
    /* BDAT chunk being read */
    unsigned long long bdat_left;
    int bdat_last;
    int bdat_ok;      /* the chunk goes into a transaction (else it is skipped) */
    int bdat_replied; /* its reply has already been given */
    /* limits from the configuration, read once */
    size_t max_msg, max_hdr, rcpt_limit, rcpt_overshoot_limit;
    long long queue_minfree; /* free bytes the queue needs before MAIL FROM */
    int hard_errors;
    const char *myhostname;
    struct inbound_settings auth_set; /* the smtpd_*_policy keys */
    struct smtpd_tx *tx;
    /* Postfix's restriction lists (smtpd/restrict.h; the hooks are in session_restrict.c) */
    struct restrict_session *rs;
    int restrict_wait;   /* a check waits for DNS or a policy server */
    char *replay;        /* the command line to run again once it has answered */
    int ill_pipelining;  /* reject_unauth_pipelining: input came before it was allowed */
    int greet_logged;    /* "connect from" is out (the greeting may wait for a check) */
    char *access_denied; /* smtpd_delay_reject = no: the client's refusal, for every command */
    int replaying;       /* dispatching s->replay: its rate-limit events were counted already */
    /* smtpd_milters: session_milter.c */
    struct milter_session *milter; /* NULL without smtpd_milters */
    struct smtpd_milter_info minfo;
    int milter_wait;   /* an event is with the filters: commands wait */
    int milter_pass;   /* the filters agreed: the command runs on past its gate */
    char milter_ev;    /* the event at the gate */
    char *milter_args; /* the command's arguments, to run it again */
    size_t milter_args_len;
    int (*milter_redo)(struct smtpd_session *s, const char *args, size_t len);
    char *milter_addr; /* the sender or recipient of the event */
    int milter_hold;   /* quarantined: the message goes to hold/ */
    char *milter_hold_reason;
    int milter_discard; /* a filter discards the message: no more events for it */
};

/* session.c: state changes, replies, the transaction, input and life cycle. */
void smtpd_session_queued(struct smtpd_session *s, const char *queue_id);
void smtpd_session_enter(struct smtpd_session *s, enum smtpd_state st);
void smtpd_reply(struct smtpd_session *s, int code, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void smtpd_reply_r(struct smtpd_session *s, const struct smtp_reply *r);
void smtpd_reply_write_error(struct smtpd_session *s, int err);
void smtpd_tx_free(struct smtpd_session *s);
void smtpd_tx_reset(struct smtpd_session *s);
const char *smtpd_proto_name(const struct smtpd_session *s);
void smtpd_session_run(struct smtpd_session *s);
void smtpd_session_close(struct smtpd_session *s);
/* For a callback that ends a wait: 1 after freeing a session whose client left. */
int smtpd_session_end_if_dead(struct smtpd_session *s);
void smtpd_session_on_read(struct bufferevent *bev, void *arg);
void smtpd_session_on_write(struct bufferevent *bev, void *arg);
void smtpd_session_on_event(struct bufferevent *bev, short what, void *arg);
/* Hands the writing back to the bufferevent (before STARTTLS replaces it). */
void smtpd_session_direct_write_end(struct smtpd_session *s);
void smtpd_session_greet(struct smtpd_session *s);

/* session_cmd.c: the commands before DATA and the command table. */
int smtpd_check_no_args(struct smtpd_session *s, const char *args, size_t len);
int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args, size_t len);
void smtpd_dispatch(struct smtpd_session *s, const char *line, size_t len);

/* session_data.c: the message, from DATA/BDAT to the commit. */
int smtpd_check_data(struct smtpd_session *s, const char *args, size_t len);
int smtpd_cmd_data(struct smtpd_session *s, const char *args, size_t len);
void smtpd_message_end(struct smtpd_session *s);
void smtpd_message_checked(struct smtpd_session *s);
void smtpd_message_commit(struct smtpd_session *s);
int smtpd_cmd_bdat(struct smtpd_session *s, const char *args, size_t len);
void smtpd_bdat_chunk_end(struct smtpd_session *s);

/* session_tlsauth.c: STARTTLS and AUTH (the rules live in smtpd/submission.c). */
/* A whole reply line from the submission/SASL/auth modules ("535 5.7.8 text"). */
void smtpd_reply_line(struct smtpd_session *s, const char *line);
int smtpd_offer_starttls(const struct smtpd_session *s);
int smtpd_offer_auth(const struct smtpd_session *s);
int smtpd_tlsauth_check_mail(struct smtpd_session *s);
int smtpd_tlsauth_check_sender(struct smtpd_session *s, const char *addr, size_t len);
void smtpd_tlsauth_received(struct smtpd_session *s, struct buf *h);
int smtpd_cmd_starttls(struct smtpd_session *s, const char *args, size_t len);
void smtpd_tlsauth_starttls_go(struct smtpd_session *s);
void smtpd_tlsauth_handshake_done(struct smtpd_session *s);
void smtpd_tlsauth_handshake_failed(struct smtpd_session *s);
int smtpd_cmd_auth(struct smtpd_session *s, const char *args, size_t len);
void smtpd_tlsauth_sasl_line(struct smtpd_session *s, const char *line, size_t len);

/* session_restrict.c: Postfix's smtpd_*_restrictions (smtpd/restrict.h). */
void smtpd_restrict_log(void *arg, const struct restrict_facts *f, const char *whatsup,
                        const char *text);
void smtpd_restrict_resume(void *arg);
/* The restriction lists at each check point: 0 to go on, -1 after replying (or while waiting). */
int smtpd_restrict_at(struct smtpd_session *s, enum restrict_point point, const char *rcpt);
/* anvil rate limits (smtpd/anvil.h): 1 after refusing with Postfix's reply. */
int smtpd_rate_limited(struct smtpd_session *s, enum anvil_event ev);
int smtpd_restrict_tx_effects(struct smtpd_session *s);

/* session_milter.c: smtpd_milters (milter/milter.h, server/smtpd_milter.h). */
void smtpd_session_milter_start(struct smtpd_session *s, int fd);
void smtpd_session_milter_tx_end(struct smtpd_session *s);
int smtpd_session_milter_gate(struct smtpd_session *s, char ev, const char *addr, const char *args,
                              size_t len,
                              int (*redo)(struct smtpd_session *, const char *, size_t));
void smtpd_session_milter_greet(struct smtpd_session *s);
void smtpd_session_milter_content(struct smtpd_session *s, const char *msg, size_t len);

#endif
