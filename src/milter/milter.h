/*
 * The MTA side of the Sendmail 8 milter protocol, asynchronous on the
 * event loop: one connection per configured filter per SMTP session (as
 * Postfix: libmilter closes its socket when the client leaves), every wait
 * bounded by milter_connect_timeout, milter_command_timeout or
 * milter_content_timeout. Each event goes to the filters in order; the
 * first that rejects decides. A filter that is down, times out or breaks
 * the protocol is given up for the session and milter_default_action
 * stands in for its answers, with Postfix's replies.
 *
 * Ownership: milter_conf_load() returns a conf the caller frees with
 * milter_conf_free(); a milter_session borrows its conf (keep it alive,
 * e.g. with the configuration generation) and is freed with
 * milter_session_free(), which also cancels a callback not yet run.
 * Callbacks always run from the loop, never inside the call that started
 * the event.
 */
#ifndef HONGYAN_MILTER_H
#define HONGYAN_MILTER_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "milter/milter_msg.h"
#include "milter/milter_proto.h"

struct config;
struct event_base;

enum milter_default {
    MILTER_DEFAULT_TEMPFAIL,
    MILTER_DEFAULT_ACCEPT,
    MILTER_DEFAULT_REJECT,
    MILTER_DEFAULT_QUARANTINE,
};

struct milter_spec {
    char *name; /* "inet:127.0.0.1:8891" or "unix:/path", as configured */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    long long connect_timeout, command_timeout, content_timeout; /* seconds */
    int version;                                                 /* milter_protocol: 2, 3, 4 or 6 */
    int no_header_reply; /* "no_header_reply" in milter_protocol */
    enum milter_default default_action;
};

struct milter_conf {
    struct milter_spec *specs;
    size_t count;
    char *macros[MILTER_M_COUNT]; /* milter_*_macros, names separated by spaces */
};

/*
 * Reads list_key (smtpd_milters or non_smtpd_milters) and the milter_*
 * keys. Postfix's syntax: "inet:host:port" (host an address or localhost),
 * "unix:/path", or "{ inet:host:port, default_action=accept, ... }" with
 * per-filter command_timeout, connect_timeout, content_timeout,
 * default_action, protocol. NULL with err naming the bad item; an empty
 * list gives a conf with count 0.
 */
struct milter_conf *milter_conf_load(const struct config *cfg, const char *list_key,
                                     struct buf *err);
void milter_conf_free(struct milter_conf *mc);

/* What an event came to, after every filter had its say. */
enum milter_verdict {
    MILTER_CONTINUE, /* go on (possibly with hold set) */
    MILTER_REJECT,   /* refuse with reply ("550 5.7.1 Command rejected", a filter's text...) */
    MILTER_DISCARD,  /* accept and drop the message */
    MILTER_SHUTDOWN, /* 421 and close the session */
};

struct milter_result {
    enum milter_verdict verdict;
    const char *reply;       /* for REJECT: a whole SMTP reply, maybe multi-line (CRLF) */
    int hold;                /* quarantine: the message goes to the hold queue */
    const char *hold_reason; /* the filter's reason, or "default_action" */
    const char *milter;      /* the filter that decided (for the log) */
};

typedef void (*milter_cb)(void *arg, const struct milter_result *res);
/* A macro's value for the filters, or NULL when it has none; name without braces. */
typedef const char *(*milter_macro_fn)(void *arg, const char *name);

struct milter_session;

struct milter_session *milter_session_new(struct event_base *base, const struct milter_conf *mc,
                                          milter_macro_fn macro, void *macro_arg);
void milter_session_free(struct milter_session *ms);

/*
 * The SMTP events. family is AF_INET, AF_INET6, AF_UNIX or 0 (unknown);
 * argv lists are the command's arguments as Postfix sends them ("<addr>",
 * then ESMTP parameters), NULL-terminated.
 */
void milter_connect(struct milter_session *ms, const char *client_name, const char *client_addr,
                    int family, unsigned port, milter_cb cb, void *arg);
void milter_helo(struct milter_session *ms, const char *helo, milter_cb cb, void *arg);
void milter_mail(struct milter_session *ms, const char *const *argv, milter_cb cb, void *arg);
void milter_rcpt(struct milter_session *ms, const char *const *argv, milter_cb cb, void *arg);
void milter_data(struct milter_session *ms, milter_cb cb, void *arg);
/*
 * The content: headers, end of headers, body, end of message, to each
 * filter in turn; each filter's edits are applied to msg before the next
 * one sees it (envelope edits are collected in msg->edits for the caller).
 */
void milter_message(struct milter_session *ms, struct milter_msg *msg, milter_cb cb, void *arg);
/* The transaction ended without a message (RSET, HELO, a rejected command). */
void milter_abort(struct milter_session *ms);

#endif
