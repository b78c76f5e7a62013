/*
 * client_int: what the parts of the SMTP client share (client.c: state,
 * reading and dispatch, life cycle; client_setup.c: greeting to ready, with
 * STARTTLS and AUTH; client_txn.c: MAIL, RCPT, DATA and the body). Not for
 * use outside src/deliver/client*.c.
 */
#ifndef HONGYAN_DELIVER_CLIENT_INT_H
#define HONGYAN_DELIVER_CLIENT_INT_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "deliver/client.h"
#include "lib/buf.h"
#include "smtp/response.h"

enum client_state {
    CS_CONNECTING,
    CS_TLS_WRAP, /* wrapper mode handshake */
    CS_GREETING,
    CS_EHLO,
    CS_HELO,
    CS_STARTTLS,
    CS_TLS_HANDSHAKE,
    CS_EHLO2, /* EHLO again after TLS (RFC 3207 4.2) */
    CS_AUTH,  /* AUTH PLAIN <ir> or the last LOGIN step sent */
    CS_AUTH_LOGIN_USER,
    CS_AUTH_LOGIN_PASS,
    CS_READY,     /* idle, between transactions */
    CS_LOCAL,     /* a transaction answered without the server (size, SMTPUTF8) */
    CS_TXN,       /* MAIL/RCPT/DATA replies being read */
    CS_DATA_BODY, /* streaming the message */
    CS_DOT,       /* waiting for the reply to the final dot */
    CS_RSET,
    CS_QUIT,
};

#define CLIENT_CHUNK 65536
#define CLIENT_OUT_HIGH (4 * CLIENT_CHUNK)

struct smtp_client {
    struct smtp_client_opts o;
    struct event_base *base;
    struct bufferevent *bev;
    enum client_state state;
    char *label;  /* host[ip]:port */
    char *hostip; /* host[ip] */
    struct smtp_response reply;
    struct smtp_ehlo ehlo;
    int tls;
    enum tls_trust trust; /* after the handshake */
    long verify_error;    /* SSL_get_verify_result() after the handshake */
    char *trust_why;      /* why trust is below VERIFIED, or NULL */
    struct event *kick;   /* deferred completion for CS_LOCAL and connect failures */
    int connect_errno;
    int depth; /* handlers running: a free inside a callback waits for them */
    int dead;  /* smtp_client_free() was called inside a handler */

    smtp_client_ready_cb ready_cb;
    void *ready_arg;
    smtp_client_reset_cb reset_cb;
    void *reset_arg;
    void (*idle_cb)(void *arg, struct smtp_client *c);
    void *idle_arg;

    /* The transaction in progress. */
    const struct smtp_msg *m;
    smtp_client_sent_cb sent_cb;
    void *sent_arg;
    struct smtp_rcpt_out *out;
    unsigned char *accepted;
    size_t naccepted;
    size_t reply_idx; /* 0: MAIL, 1..n: RCPT, n+1: DATA */
    int pipelining;
    int mail_ok;
    off_t data_pos; /* the next byte of m->data to send */
    int at_bol;
    int after_cr;        /* the last chunk ended with a CR, not yet written */
    int dot_for_nothing; /* 354 with no recipient accepted: send "." and ignore */
    int rset_first;      /* smtp_client_send_reused: the group's first reply is RSET's */
    int reuse_failed;    /* ... and it was not 2xx, or the connection ended before it */
    size_t dot_next;     /* LMTP: the recipient the next reply to the dot is for */
};

/* The bufferevent callbacks (client.c), set again when TLS wraps the socket. */
void client_read_cb(struct bufferevent *bev, void *arg);
void client_write_cb(struct bufferevent *bev, void *arg);
void client_event_cb(struct bufferevent *bev, short what, void *arg);

/* The one place the state changes: sets that stage's read/write timeout. */
void client_state(struct smtp_client *c, enum client_state st);
/* "host X[ip] said: 550 5.1.1 text (in reply to RCPT TO command)" into out. */
void client_said(const struct smtp_client *c, struct buf *out);
/* Sends one command line (CR/LF cut off: no smuggling), AUTH redacted in the debug log. */
void client_send(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* EHLO, or for LMTP LHLO (RFC 2033 4.1), which takes its place everywhere. */
void client_hello(struct smtp_client *c, enum client_state st);
/* Set-up failed: calls the ready callback once with the failure; reading stops. */
void client_ready_fail(struct smtp_client *c, enum smtp_client_fail fail, int permanent,
                       const char *dsn, const char *why);
/* A server refusal during set-up: "host X said ..." with its dsn. */
void client_ready_refused(struct smtp_client *c, const char *prefix);
/* Set-up done: state READY, the ready callback called once with success. */
void client_ready_ok(struct smtp_client *c);
/* Wraps the connection in TLS as the policy asks (DANE, WebPKI, names); st is the handshake state.
 */
void client_start_tls(struct smtp_client *c, enum client_state st);
/* 0: go on; -1: the caller was called back and c may be gone. */
int client_tls_done(struct smtp_client *c);
/* After EHLO/HELO: STARTTLS, the TLS policy, then AUTH, then ready. */
void client_after_ehlo(struct smtp_client *c);
/* Ends the transaction: recipients without a reply get why (4.4.2), the sent callback runs. */
void client_txn_finish(struct smtp_client *c, int conn_ok, const char *why);
/* Pushes message data while the output buffer is short; at the end the final dot. */
void client_pump(struct smtp_client *c);
/* The deferred completion: a transaction answered locally, or a connect failure. */
void client_kick_inner(struct smtp_client *c);
/* A complete reply while in CS_TXN. */
void client_txn_reply(struct smtp_client *c);
/* A reply to the final dot (LMTP: one per accepted recipient, RFC 2033 4.2). */
void client_dot_reply(struct smtp_client *c);

#endif
