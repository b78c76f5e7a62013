/*
 * The milter client, one filter at a time: its connection and negotiation,
 * its replies and edits, and what stands in for it when it fails (Postfix's
 * milter8.c states and replies). See milter.h; milter_event.c walks the
 * events through the filters.
 */
#include "milter/milter_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* Replies one event may bring before its verdict (edits, progress): beyond, the filter is broken.
 */
#define MILTER_REPLIES_MAX 100000u
/* How many timeouts a filter may stretch one wait to with progress reports. */
#define MILTER_PROGRESS_FACTOR 10

/* ---- errors: what stands in for a failed filter (Postfix's milter8_comm/conf_error) ---- */

void milter_conn_close(struct milter_conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->timer)
        evtimer_del(c->timer);
    c->waiting = 0;
}

static void conn_set_reply(struct milter_conn *c, const char *reply)
{
    free(c->def_reply);
    c->def_reply = reply ? xstrdup(reply) : NULL;
}

/* conf: the filter asked for something invalid (else it could not be talked to). */
void milter_conn_fail(struct milter_conn *c, int conf)
{
    milter_conn_close(c);
    c->state = CONN_ERROR;
    c->def_hold = 0;
    switch (c->spec->default_action) {
    case MILTER_DEFAULT_ACCEPT:
        conn_set_reply(c, NULL);
        break;
    case MILTER_DEFAULT_QUARANTINE:
        conn_set_reply(c, NULL);
        c->def_hold = 1;
        break;
    case MILTER_DEFAULT_REJECT:
        conn_set_reply(c, conf ? "451 4.3.5 Server configuration problem - try again later"
                               : "550 5.5.0 Service unavailable");
        break;
    case MILTER_DEFAULT_TEMPFAIL:
        conn_set_reply(c, conf ? "451 4.3.5 Server configuration problem - try again later"
                               : "451 4.7.1 Service unavailable - try again later");
        break;
    }
}

/* ---- the end of an event ---- */

/* Ends the event with the verdict in ms->res; the callback runs from the loop. */
void milter_ev_finish(struct milter_session *ms)
{
    event_active(ms->done_ev, EV_TIMEOUT, 0);
}

static void ev_reject(struct milter_session *ms, struct milter_conn *c, const char *reply)
{
    free(ms->reply);
    ms->reply = xstrdup(reply);
    ms->res.verdict = MILTER_REJECT;
    ms->res.reply = ms->reply;
    ms->res.milter = c->spec->name;
    milter_ev_finish(ms);
}

static void ev_hold(struct milter_session *ms, struct milter_conn *c, const char *reason)
{
    if (ms->res.hold)
        return;
    free(ms->hold_reason);
    ms->hold_reason = xstrdup(reason && reason[0] ? reason : "milter triggers HOLD action");
    ms->res.hold = 1;
    ms->res.hold_reason = ms->hold_reason;
    if (!ms->res.milter)
        ms->res.milter = c->spec->name;
}

/*
 * What a filter that takes no part any more answers: its standing reply
 * (REJECT_CON, ERROR with a refusing default action), a hold, or nothing.
 * 1 when that ended the event.
 */
int milter_conn_standing(struct milter_session *ms, struct milter_conn *c)
{
    if (c->def_hold && ms->ev != MILTER_C_CONNECT && ms->ev != MILTER_C_HELO)
        ev_hold(ms, c, "default_action");
    if (c->def_shutdown) {
        ms->res.verdict = MILTER_SHUTDOWN;
        ms->res.milter = c->spec->name;
        milter_ev_finish(ms);
        return 1;
    }
    if (c->def_reply) {
        ev_reject(ms, c, c->def_reply);
        return 1;
    }
    return 0;
}

/* The filter is done with this event: on to the next one. */
void milter_conn_next(struct milter_conn *c)
{
    struct milter_session *ms = c->ms;
    c->waiting = 0;
    evtimer_del(c->timer);
    ms->cur++;
    milter_ev_next(ms);
}

/* The filter failed during the event: its default action stands in, then the next filter. */
static void conn_fail_next(struct milter_conn *c, int conf)
{
    struct milter_session *ms = c->ms;
    int half_edited = c->edited && ms->ev == MILTER_C_BODYEOB;
    milter_conn_fail(c, conf);
    if (half_edited) {
        /* Its edits may be half done: never accept such a message, whatever the default. */
        ev_reject(ms, c, "451 4.7.1 Service unavailable - try again later");
        return;
    }
    if (milter_conn_standing(ms, c))
        return;
    ms->cur++;
    milter_ev_next(ms);
}

/* ---- I/O ---- */

static void conn_arm(struct milter_conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static long long conn_timeout(const struct milter_conn *c)
{
    if (c->state == CONN_NEGOTIATE)
        return c->spec->connect_timeout;
    switch (c->ms->ev) {
    case MILTER_C_HEADER:
    case MILTER_C_EOH:
    case MILTER_C_BODY:
    case MILTER_C_BODYEOB:
        return c->spec->content_timeout;
    }
    return c->spec->command_timeout;
}

void milter_conn_write(struct milter_conn *c, const struct buf *b)
{
    if (c->bev && b->len)
        bufferevent_write(c->bev, b->data, b->len);
}

/*
 * A reply is due. A new wait gets the stage's timeout; progress reports
 * and edit requests within it start the timeout again (libmilter's
 * smfi_progress), but never beyond MILTER_PROGRESS_FACTOR timeouts from the
 * start, so a filter that keeps "working" forever still costs a bounded wait.
 */
void milter_conn_wait(struct milter_conn *c)
{
    long long t = conn_timeout(c);
    uint64_t step = (uint64_t)(t > 0 ? t : 1) * 1000, now = now_ms();
    if (!c->waiting) {
        c->waiting = 1;
        c->replies = 0;
        c->wait_deadline = now + step * MILTER_PROGRESS_FACTOR;
    }
    /* Past the deadline the timer fires at once, however often the filter says "progress". */
    uint64_t left = c->wait_deadline > now ? c->wait_deadline - now : 0;
    conn_arm(c, left < step ? left : step);
}

void milter_conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct milter_conn *c = arg;
    log_warning("milter %s: timeout while waiting for a reply (%s)", c->spec->name,
                c->state == CONN_NEGOTIATE ? "connect" : "command");
    conn_fail_next(c, 0);
}

/* The macros of this stage, as the filter asked for them or as configured. */
void milter_conn_send_macros(struct milter_conn *c, enum milter_stage stage, char cmd)
{
    struct milter_session *ms = c->ms;
    const char *list = c->macros[stage] ? c->macros[stage] : ms->conf->macros[stage];
    if (!list || !list[0] || !ms->macro)
        return;
    struct buf pkt = BUF_INIT;
    size_t start = milter_pkt_begin(&pkt, MILTER_C_MACRO);
    buf_putc(&pkt, cmd);
    int any = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *name = strtok_r(copy, " ,\t", &save); name; name = strtok_r(NULL, " ,\t", &save)) {
        char bare[128];
        size_t n = strlen(name);
        if (n >= 2 && name[0] == '{' && name[n - 1] == '}')
            snprintf(bare, sizeof bare, "%.*s", (int)(n - 2), name + 1);
        else
            snprintf(bare, sizeof bare, "%s", name);
        const char *v = ms->macro(ms->macro_arg, bare);
        if (!v)
            continue; /* Postfix sends only macros that have a value */
        milter_pkt_put_str(&pkt, name);
        milter_pkt_put_str(&pkt, v);
        any = 1;
    }
    free(copy);
    milter_pkt_end(&pkt, start);
    if (any)
        milter_conn_write(c, &pkt);
    buf_free(&pkt);
}

/* ---- replies ---- */

static void conn_apply_edit(struct milter_conn *c, const struct milter_reply *r)
{
    struct milter_msg *m = c->ms->msg;
    const char *space = (c->events & MILTER_P_HDR_LEADSPC) ? "" : " ";
    int rc = 0;
    uint32_t need = 0;
    switch (r->cmd) {
    case MILTER_R_ADDHEADER:
        need = MILTER_F_ADDHDRS;
        rc = milter_msg_add_header(m, r->name, space, r->value);
        break;
    case MILTER_R_INSHEADER:
        need = MILTER_F_ADDHDRS;
        rc = milter_msg_insert_header(m, r->index, r->name, space, r->value);
        break;
    case MILTER_R_CHGHEADER:
        need = MILTER_F_CHGHDRS;
        rc = milter_msg_change_header(m, r->index, r->name, space, r->value);
        break;
    case MILTER_R_CHGFROM:
        need = MILTER_F_CHGFROM;
        milter_msg_env_edit(m, MILTER_ENV_CHGFROM, r->name, r->value);
        break;
    case MILTER_R_ADDRCPT:
        need = MILTER_F_ADDRCPT;
        milter_msg_env_edit(m, MILTER_ENV_ADDRCPT, r->name, "");
        break;
    case MILTER_R_ADDRCPT_PAR:
        need = MILTER_F_ADDRCPT_PAR;
        milter_msg_env_edit(m, MILTER_ENV_ADDRCPT, r->name, r->value);
        break;
    case MILTER_R_DELRCPT:
        need = MILTER_F_DELRCPT;
        milter_msg_env_edit(m, MILTER_ENV_DELRCPT, r->name, "");
        break;
    }
    c->edited = 1;
    if ((c->actions & need) == 0 || rc < 0) {
        log_warning("milter %s: %s edit request (reply '%c')", c->spec->name,
                    rc < 0 ? "invalid" : "unannounced", r->cmd);
        conn_fail_next(c, 1);
        return;
    }
    milter_conn_wait(c);
}

/* The end of a body replacement, which may come in several REPLBODY packets. */
static void conn_body_done(struct milter_conn *c)
{
    if (c->body_editing) {
        milter_msg_body_end(c->ms->msg);
        c->body_editing = 0;
        c->body_replaced = 1;
    }
}

static void conn_reply(struct milter_conn *c, char cmd, const char *data, size_t len)
{
    struct milter_session *ms = c->ms;
    struct milter_reply r;
    const char *why = NULL;
    int connect_stage = ms->ev == MILTER_C_CONNECT || ms->ev == MILTER_C_HELO;
    if (milter_reply_decode(cmd, data, len, &r, &why) < 0) {
        log_warning("milter %s: malformed reply '%c': %s", c->spec->name,
                    (unsigned char)cmd >= ' ' && (unsigned char)cmd < 127 ? cmd : '?', why);
        conn_fail_next(c, 0);
        return;
    }
    if (++c->replies > MILTER_REPLIES_MAX) {
        log_warning("milter %s: too many replies to one event", c->spec->name);
        conn_fail_next(c, 0);
        return;
    }
    if (c->body_editing && cmd != MILTER_R_REPLBODY)
        conn_body_done(c);
    switch (cmd) {
    case MILTER_R_PROGRESS:
        milter_conn_wait(c); /* still working: the wait starts again */
        return;
    case MILTER_R_CONTINUE:
        if (ms->ev == MILTER_C_HEADER || ms->ev == MILTER_C_EOH || ms->ev == MILTER_C_BODY) {
            c->waiting = 0;
            milter_content_next(c);
            return;
        }
        milter_conn_next(c);
        return;
    case MILTER_R_SKIP:
        if (ms->ev == MILTER_C_BODY) {
            c->waiting = 0;
            c->body_skipped = 1;
            milter_content_next(c);
            return;
        }
        c->skip_event = ms->ev;
        milter_conn_next(c);
        return;
    case MILTER_R_ACCEPT:
        if (connect_stage) {
            milter_conn_close(c); /* nothing more for this connection */
            c->state = CONN_ACCEPT_CON;
        } else {
            c->state = CONN_ACCEPT_MSG;
        }
        milter_conn_next(c);
        return;
    case MILTER_R_DISCARD:
        if (connect_stage) {
            log_warning("milter %s: DISCARD action is not allowed for connect or helo",
                        c->spec->name);
            milter_conn_next(c);
            return;
        }
        c->state = CONN_ACCEPT_MSG;
        c->waiting = 0;
        evtimer_del(c->timer);
        ms->res.verdict = MILTER_DISCARD;
        ms->res.milter = c->spec->name;
        milter_ev_finish(ms);
        return;
    case MILTER_R_REJECT:
    case MILTER_R_TEMPFAIL:
    case MILTER_R_REPLYCODE: {
        const char *reply = cmd == MILTER_R_REJECT     ? "550 5.7.1 Command rejected"
                            : cmd == MILTER_R_TEMPFAIL ? "451 4.7.1 Service unavailable - try "
                                                         "again later"
                                                       : r.text;
        if (cmd == MILTER_R_REPLYCODE && !milter_reply_text_valid(reply)) {
            log_warning("milter %s: malformed reply: %.100s", c->spec->name, reply);
            conn_fail_next(c, 1);
            return;
        }
        /* Sendmail formats the text with '%': "%%" is one '%', a lone one goes. */
        char *text = xstrdup(reply), *w = text;
        for (const char *p = text; *p; p++) {
            if (*p == '%' && *++p == '\0')
                break;
            *w++ = *p;
        }
        *w = '\0';
        c->waiting = 0;
        evtimer_del(c->timer);
        if (connect_stage) {
            milter_conn_close(c);
            c->state = CONN_REJECT_CON;
            conn_set_reply(c, text);
        }
        ev_reject(ms, c, text);
        free(text);
        return;
    }
    case MILTER_R_SHUTDOWN:
        milter_conn_close(c);
        c->state = CONN_REJECT_CON;
        c->def_shutdown = 1;
        ms->res.verdict = MILTER_SHUTDOWN;
        ms->res.milter = c->spec->name;
        milter_ev_finish(ms);
        return;
    case MILTER_R_QUARANTINE:
        if (!(c->actions & MILTER_F_QUARANTINE) || ms->ev != MILTER_C_BODYEOB) {
            log_warning("milter %s: unexpected quarantine request", c->spec->name);
            conn_fail_next(c, 1);
            return;
        }
        ev_hold(ms, c, r.text);
        milter_conn_wait(c);
        return;
    case MILTER_R_REPLBODY:
        if (ms->ev != MILTER_C_BODYEOB || !(c->actions & MILTER_F_CHGBODY)) {
            log_warning("milter %s: unexpected body replacement", c->spec->name);
            conn_fail_next(c, 1);
            return;
        }
        c->edited = 1;
        if (!c->body_editing) {
            if (c->body_replaced) {
                /* A second replacement after other requests: Postfix refuses it too. */
                log_warning("milter %s: body replacement requests can't be mixed with other "
                            "requests",
                            c->spec->name);
                conn_fail_next(c, 1);
                return;
            }
            milter_msg_body_begin(ms->msg);
            c->body_editing = 1;
        }
        milter_msg_body_chunk(ms->msg, r.body, r.body_len);
        milter_conn_wait(c);
        return;
    case MILTER_R_ADDHEADER:
    case MILTER_R_INSHEADER:
    case MILTER_R_CHGHEADER:
    case MILTER_R_CHGFROM:
    case MILTER_R_ADDRCPT:
    case MILTER_R_ADDRCPT_PAR:
    case MILTER_R_DELRCPT:
        if (ms->ev != MILTER_C_BODYEOB) {
            log_warning("milter %s: edit request '%c' outside end of message", c->spec->name, cmd);
            conn_fail_next(c, 0);
            return;
        }
        conn_apply_edit(c, &r);
        return;
    default:
        log_warning("milter %s: unexpected reply '%c'", c->spec->name, cmd);
        conn_fail_next(c, 0);
        return;
    }
}

static void conn_negotiated(struct milter_conn *c, const char *data, size_t len);

static void on_read(struct bufferevent *bev, void *arg)
{
    struct milter_conn *c = arg;
    /*
     * libmilter writes an edit and the verdict as two packets without
     * TCP_NODELAY: the second waits for our ACK, which Linux would delay by
     * some 40 ms. Acknowledge at once (Linux re-arms delayed ACKs: set it
     * after every read).
     */
    if (c->spec->addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->bev == bev) {
        size_t have = evbuffer_get_length(in);
        if (have < 4)
            return;
        unsigned char hdr[4];
        evbuffer_copyout(in, hdr, 4);
        size_t need =
            4 + ((size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3]);
        char cmd;
        const char *data;
        size_t dlen, used;
        /* The length is checked before anything is buffered for it: no endless packet. */
        int rc = milter_pkt_split((const char *)hdr, 4, MILTER_PKT_MAX, &cmd, &data, &dlen, &used);
        if (rc < 0 || !c->waiting) {
            log_warning("milter %s: %s", c->spec->name,
                        rc < 0 ? "bad packet length" : "data when no reply was due");
            if (c->waiting)
                conn_fail_next(c, 0);
            else
                milter_conn_fail(c, 0); /* between events: the next one meets the default action */
            return;
        }
        if (have < need)
            return;
        const char *pkt = (const char *)evbuffer_pullup(in, (ev_ssize_t)need);
        /* A private copy: the handlers may free the connection's buffers. */
        struct buf copy = BUF_INIT;
        buf_append(&copy, pkt + 4, need - 4);
        evbuffer_drain(in, need);
        if (c->state == CONN_NEGOTIATE) {
            if (copy.data[0] != MILTER_C_OPTNEG) {
                log_warning("milter %s: unexpected reply in the initial handshake", c->spec->name);
                buf_free(&copy);
                conn_fail_next(c, 0);
                return;
            }
            conn_negotiated(c, copy.data + 1, copy.len - 1);
        } else {
            conn_reply(c, copy.data[0], copy.data + 1, copy.len - 1);
        }
        buf_free(&copy);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct milter_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /*
         * Small packets in both directions, each awaited: without this,
         * Nagle and delayed ACKs add tens of milliseconds per event.
         */
        if (c->spec->addr.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        /* Open the negotiation: our version, every action, the events we may skip. */
        static const uint32_t v_events[] = {[2] = 0x7f, [3] = 0x17f, [4] = 0x37f, [6] = 0x1fffff};
        uint32_t events = v_events[c->spec->version];
        if (c->spec->no_header_reply)
            events |= MILTER_P_NR_HDR;
        c->not_in_protocol = 0x37f & ~events;
        struct buf pkt = BUF_INIT;
        size_t start = milter_pkt_begin(&pkt, MILTER_C_OPTNEG);
        milter_pkt_put_u32(&pkt, (uint32_t)c->spec->version);
        milter_pkt_put_u32(&pkt, MILTER_F_ALL);
        milter_pkt_put_u32(&pkt, events);
        milter_pkt_end(&pkt, start);
        milter_conn_write(c, &pkt);
        buf_free(&pkt);
        return;
    }
    int e = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_EOF)
        log_warning("milter %s: connection closed by the filter", c->spec->name);
    else
        log_warning("milter %s: %s", c->spec->name,
                    c->state == CONN_NEGOTIATE ? "cannot connect" : "read/write error");
    (void)e;
    if (c->waiting) {
        conn_fail_next(c, 0);
    } else {
        /* Between events: the next event meets the default action. */
        milter_conn_fail(c, 0);
    }
}

static void conn_negotiated(struct milter_conn *c, const char *data, size_t len)
{
    struct milter_optneg o;
    const char *why = NULL;
    if (milter_optneg_decode(data, len, &o, &why) < 0) {
        log_warning("milter %s: %s", c->spec->name, why);
        conn_fail_next(c, 0);
        return;
    }
    if (o.version > (uint32_t)c->spec->version || o.version < 2) {
        log_warning("milter %s: protocol version %u conflict with MTA protocol version %d",
                    c->spec->name, o.version, c->spec->version);
        conn_fail_next(c, 0);
        return;
    }
    if ((o.actions & MILTER_F_ALL) != o.actions) {
        log_warning("milter %s: request mask 0x%x conflict with MTA request mask 0x%x",
                    c->spec->name, o.actions, MILTER_F_ALL);
        conn_fail_next(c, 0);
        return;
    }
    c->version = o.version;
    c->actions = o.actions;
    c->events = o.protocol;
    /* An older filter is not sent events its version does not know. */
    if (o.version < 4)
        c->not_in_protocol |= MILTER_P_NODATA;
    if (o.version < 3)
        c->not_in_protocol |= MILTER_P_NOUNKNOWN;
    for (int i = 0; i < MILTER_M_COUNT; i++) {
        free(c->macros[i]);
        c->macros[i] = o.macros[i] ? xstrdup(o.macros[i]) : NULL;
    }
    c->state = CONN_READY;
    c->waiting = 0;
    evtimer_del(c->timer);
    milter_conn_send_event(c);
}

/* ---- connecting ---- */

int milter_conn_connect(struct milter_conn *c)
{
    struct milter_session *ms = c->ms;
    c->bev = bufferevent_socket_new(ms->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        return -1;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = CONN_NEGOTIATE;
    milter_conn_wait(c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->spec->addr,
                                   (int)c->spec->addr_len) < 0) {
        /* e.g. a unix socket that is not there: the error is immediate. */
        log_warning("milter %s: cannot connect: %s", c->spec->name, strerror(errno));
        return -1;
    }
    return 0;
}
