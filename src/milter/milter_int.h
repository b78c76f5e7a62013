/*
 * Inside the milter client (milter.h), shared by its two halves:
 * milter.c talks to one filter (connection, replies, errors), and
 * milter_event.c walks an event through the filters in order (the SMTP
 * events, the content phase, the public functions). Not for other modules.
 */
#ifndef HONGYAN_MILTER_INT_H
#define HONGYAN_MILTER_INT_H

#include <event2/util.h>

#include "milter/milter.h"

enum conn_state {
    CONN_CLOSED,     /* not connected yet */
    CONN_NEGOTIATE,  /* connecting, or OPTNEG sent */
    CONN_READY,      /* negotiated, connect event not sent */
    CONN_ENVELOPE,   /* in the session */
    CONN_ACCEPT_MSG, /* accepted this message: nothing more until the next one */
    CONN_ACCEPT_CON, /* accepted the connection: nothing more at all */
    CONN_REJECT_CON, /* rejected the connection: its reply stands for every event */
    CONN_ERROR,      /* given up: milter_default_action stands for every event */
};

/* Where a filter is in the content phase. */
enum content_step {
    STEP_HEADERS,
    STEP_EOH,
    STEP_BODY,
    STEP_EOB,
};

struct milter_conn {
    struct milter_session *ms;
    const struct milter_spec *spec;
    struct bufferevent *bev;
    struct event *timer;
    enum conn_state state;
    uint32_t version, actions, events; /* what the filter negotiated */
    uint32_t not_in_protocol;          /* events our protocol version does not have */
    char *macros[MILTER_M_COUNT];      /* the filter's own macro lists, or NULL */
    char *def_reply;                   /* the reply that stands for it after an error or reject */
    int def_hold;                      /* quarantine is its default action */
    int def_shutdown;                  /* it asked for a shutdown */
    char skip_event;                   /* SMFIR_SKIP: drop further events of this kind */
    int waiting;                       /* a reply is due */
    uint64_t wait_deadline;            /* now_ms() past which progress reports stop helping */
    unsigned replies;
    /* content phase */
    enum content_step step;
    size_t hdr_i, body_off;
    int body_skipped;
    int body_editing;  /* REPLBODY packets are coming */
    int body_replaced; /* a replacement is complete: another one is refused, as by Postfix */
    int edited;        /* it changed the message in this end of message */
};

struct milter_session {
    struct event_base *base;
    const struct milter_conf *conf;
    struct milter_conn *conns;
    size_t count;
    milter_macro_fn macro;
    void *macro_arg;
    int in_message; /* MAIL was sent: an ABORT is due if no end of message comes */
    /* the event in progress */
    char ev;
    enum milter_stage stage;
    struct buf pkt; /* the event packet, built once for every filter */
    size_t cur;
    milter_cb cb;
    void *cb_arg;
    struct milter_result res;
    char *reply;       /* owned copy of res.reply */
    char *hold_reason; /* owned copy of res.hold_reason */
    struct milter_msg *msg;
    struct event *done_ev;
    /* connect event arguments, for a filter that connects at that point */
};

/* milter.c: one filter. */
void milter_conn_close(struct milter_conn *c);
/* The filter is given up; conf: it asked for something invalid (else it could not be reached). */
void milter_conn_fail(struct milter_conn *c, int conf);
/* What a filter that takes no part any more answers; 1 when that ended the event. */
int milter_conn_standing(struct milter_session *ms, struct milter_conn *c);
/* The filter is done with this event: on to the next one. */
void milter_conn_next(struct milter_conn *c);
int milter_conn_connect(struct milter_conn *c);
void milter_conn_write(struct milter_conn *c, const struct buf *b);
/* A reply is due: arm the stage's timeout. */
void milter_conn_wait(struct milter_conn *c);
void milter_conn_send_macros(struct milter_conn *c, enum milter_stage stage, char cmd);
void milter_conn_on_timeout(evutil_socket_t fd, short what, void *arg);
/* Ends the event with the verdict in ms->res; the callback runs from the loop. */
void milter_ev_finish(struct milter_session *ms);

/* milter_event.c: the event across the filters. */
void milter_ev_next(struct milter_session *ms);
/* Sends the current event to filter c (the content phase, for the end of message). */
void milter_conn_send_event(struct milter_conn *c);
void milter_content_next(struct milter_conn *c);

#endif
