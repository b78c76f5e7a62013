/*
 * The SMTP client: one connection to one server address, as a state machine
 * on a libevent bufferevent. smtp_client_connect() connects, reads the
 * greeting, says EHLO (HELO when EHLO gets a 5xx), does STARTTLS per the TLS
 * level (or TLS from the first byte in wrapper mode) and AUTH when
 * credentials are given; then smtp_client_send() runs one mail transaction
 * (MAIL, RCPT..., DATA streamed with dot-stuffing from the message's
 * range of its spool file), pipelined when the server offers PIPELINING
 * (RFC 2920). A connection that finished a transaction cleanly can be
 * reused: smtp_client_reset() (RSET) then smtp_client_send() again.
 *
 * LMTP (RFC 2033) is the same machine with opts.lmtp set: LHLO instead of
 * EHLO (no HELO fallback), and after the final dot one reply per accepted
 * recipient, in RCPT order (RFC 2033 4.2), so that each recipient gets its
 * own result; a connection lost among those replies settles the recipients
 * already answered and leaves the rest TEMPFAIL.
 *
 * Ownership: the caller owns the struct smtp_client and ends it with
 * smtp_client_quit() (polite) or smtp_client_free() (at once). Callbacks may
 * call any of these, including on the client that called them back; the
 * client never touches itself after calling back. Strings passed in
 * struct smtp_client_opts and struct smtp_msg must live until the
 * callback of the call that used them.
 */
#ifndef HONGYAN_DELIVER_CLIENT_H
#define HONGYAN_DELIVER_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

#include "deliver/agent.h"
#include "queue/spool.h"
#include "smtp/response.h"
#include "tls/tls_client.h"

struct event_base;
struct smtp_client;

struct smtp_client_opts {
    struct event_base *base;
    struct tls_client *tls;      /* NULL: no TLS possible (as level none) */
    enum tls_level level;        /* DANE needs dane; DANE without usable records is MAY */
    const struct tls_dane *dane; /* DANE: the server's usable TLSA records (RFC 7672) */
    int wrappermode;             /* TLS from the first byte (port 465) */
    int no_starttls;             /* plain only: a may-level retry after a failed handshake */
    int lmtp;                    /* speak LMTP (RFC 2033): LHLO, a reply per recipient after DATA */
    const char *helo_name;
    const char *server_name; /* the host name dialled: SNI, name checks, logs */
    const char *match_name;  /* secure: the next-hop domain; verify, dane: server_name */
    /* verify/secure from smtp_tls_policy_maps match=: the names to accept instead of match_name */
    const char *const *match_names;
    /*
     * MTA-STS (RFC 8461 4.2): trust the system CAs plus smtp_tls_CAfile and
     * check the certificate names server_name at every level below dane, so
     * that testing mode can tell (smtp_client_tls_trust) what enforce would
     * have refused.
     */
    int webpki;
    const char *queue_id; /* for log lines; may be NULL */
    /* AUTH (RFC 4954): NULL user means do not authenticate. */
    const char *sasl_user;
    const char *sasl_pass;
    int sasl_noplaintext; /* smtp_sasl_security_options has noplaintext */
    /* Seconds per stage (Postfix smtp_*_timeout). */
    int connect_timeout, helo_timeout, starttls_timeout, mail_timeout, rcpt_timeout;
    int data_init_timeout, data_xfer_timeout, data_done_timeout, quit_timeout;
};

/* Why a connection is not usable, for the caller's next-address decision. */
enum smtp_client_fail {
    SMTP_FAIL_NONE,
    SMTP_FAIL_CONNECT,  /* refused, unreachable, timed out, lost: try the next address */
    SMTP_FAIL_REPLY,    /* the server refused us (greeting, EHLO, STARTTLS, AUTH) */
    SMTP_FAIL_TLS,      /* handshake failed: at may, retry this address in plain text */
    SMTP_FAIL_POLICY,   /* our own rule (TLS required, no password in plain text) */
    SMTP_FAIL_PROTOCOL, /* malformed reply */
};

/*
 * Called once: ok with the session ready for MAIL, or not ok with fail,
 * permanent (the server said 5xx), dsn and why (a complete sentence for the
 * log and the recipients' last error). The client is to be freed on failure.
 */
typedef void (*smtp_client_ready_cb)(void *arg, struct smtp_client *c, int ok,
                                     enum smtp_client_fail fail, int permanent, const char *dsn,
                                     const char *why);

/* label is "host[ip]:port" for logs and relay=. Never NULL; failures come through cb. */
struct smtp_client *smtp_client_connect(const struct smtp_client_opts *o, const struct sockaddr *sa,
                                        socklen_t salen, const char *label, smtp_client_ready_cb cb,
                                        void *arg);

struct smtp_msg_rcpt {
    const char *address;
    const char *orcpt; /* "rfc822;addr" or NULL */
    unsigned notify;   /* enum dsn_notify bits (queue/envelope.h) */
};

struct smtp_msg {
    const char *sender; /* "" for <> */
    const char *envid;  /* or NULL */
    int ret;            /* enum dsn_ret */
    int body_8bit;
    int smtputf8;
    /* Its range only is sent (CRLF line ends, not dot-stuffed); borrowed, not closed. */
    struct spool_data data;
    const struct smtp_msg_rcpt *rcpts;
    size_t nrcpts;
};

/*
 * Per-recipient outcome: status, dsn, and reply for the log/DSN ("250 2.0.0
 * Ok: queued as X" or "host h[ip] said: 550 5.1.1 ... (in reply to RCPT TO
 * command)"); reply is heap, the caller takes it.
 */
struct smtp_rcpt_out {
    enum delivery_status status;
    char dsn[16];
    char *reply;
};

/*
 * conn_ok: the connection can be reused (or reset); not ok: it broke, and
 * recipients without an answer are TEMPFAIL with why. out has nrcpts
 * entries and belongs to the caller (free each reply, then the array).
 */
typedef void (*smtp_client_sent_cb)(void *arg, struct smtp_client *c, int conn_ok,
                                    struct smtp_rcpt_out *out);
void smtp_client_send(struct smtp_client *c, const struct smtp_msg *m, smtp_client_sent_cb cb,
                      void *arg);

/* RSET before reusing a connection; ok 0 means it died while idle: free it. */
typedef void (*smtp_client_reset_cb)(void *arg, struct smtp_client *c, int ok);
void smtp_client_reset(struct smtp_client *c, smtp_client_reset_cb cb, void *arg);
/*
 * smtp_client_reset then smtp_client_send in one go, for a server that
 * offered PIPELINING: RSET leads the group of MAIL, RCPT and DATA (RFC 2920
 * 3.1 lets it stand anywhere in one), a round trip less per message on a
 * cached connection. When RSET is not answered 2xx, or the connection ends
 * before its reply (it died while idle), cb gets conn_ok 0 and
 * smtp_client_reuse_failed(c) is 1: the server took nothing; free c and
 * open a new connection, as after a failed reset. Returns 0, doing nothing,
 * when the server did not offer PIPELINING.
 */
int smtp_client_send_reused(struct smtp_client *c, const struct smtp_msg *m, smtp_client_sent_cb cb,
                            void *arg);
int smtp_client_reuse_failed(const struct smtp_client *c);

/*
 * While idle (between transactions), closed(arg, c) runs if the server
 * hangs up or sends something unasked; the caller then frees c. NULL stops
 * watching.
 */
void smtp_client_watch_idle(struct smtp_client *c, void (*closed)(void *arg, struct smtp_client *c),
                            void *arg);

/* Sends QUIT and frees itself after the reply (bounded by quit_timeout). */
void smtp_client_quit(struct smtp_client *c);
void smtp_client_free(struct smtp_client *c);

const char *smtp_client_label(const struct smtp_client *c);
/* The ESMTP options the server announced (after TLS, the second EHLO's). */
const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c);
int smtp_client_is_tls(const struct smtp_client *c);
/*
 * After TLS: the trust reached (with opts.webpki below verify, TRUSTED means
 * the chain and the name checked out) and, below VERIFIED, why (never NULL).
 */
enum tls_trust smtp_client_tls_trust(const struct smtp_client *c, const char **why);
/* After TLS: OpenSSL's certificate verification result (X509_V_OK, X509_V_ERR_...). */
long smtp_client_verify_error(const struct smtp_client *c);

#endif
