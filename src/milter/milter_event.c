/*
 * The milter client, one event at a time: each SMTP event and the content
 * phase go to the filters in order, the first refusal deciding; and the
 * public functions of milter.h. milter.c talks to each filter.
 */
#include "milter/milter_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/xalloc.h"

/* The protocol flag that says the filter does not want this event, and the one for no reply. */
static void event_flags(char ev, uint32_t *no, uint32_t *no_reply)
{
    *no = *no_reply = 0;
    switch (ev) {
    case MILTER_C_CONNECT:
        *no = MILTER_P_NOCONNECT, *no_reply = MILTER_P_NR_CONN;
        break;
    case MILTER_C_HELO:
        *no = MILTER_P_NOHELO, *no_reply = MILTER_P_NR_HELO;
        break;
    case MILTER_C_MAIL:
        *no = MILTER_P_NOMAIL, *no_reply = MILTER_P_NR_MAIL;
        break;
    case MILTER_C_RCPT:
        *no = MILTER_P_NORCPT, *no_reply = MILTER_P_NR_RCPT;
        break;
    case MILTER_C_DATA:
        *no = MILTER_P_NODATA, *no_reply = MILTER_P_NR_DATA;
        break;
    case MILTER_C_HEADER:
        *no = MILTER_P_NOHDRS, *no_reply = MILTER_P_NR_HDR;
        break;
    case MILTER_C_EOH:
        *no = MILTER_P_NOEOH, *no_reply = MILTER_P_NR_EOH;
        break;
    case MILTER_C_BODY:
        *no = MILTER_P_NOBODY, *no_reply = MILTER_P_NR_BODY;
        break;
    }
}

/*
 * Sends packet pkt of event ev (after the stage's macros) unless the filter
 * does not want it. 1: a reply is due (the wait is armed); 0: go on.
 */
static int conn_send(struct milter_conn *c, char ev, enum milter_stage stage, const struct buf *pkt)
{
    uint32_t no, no_reply;
    event_flags(ev, &no, &no_reply);
    if (no & c->not_in_protocol)
        return 0;
    milter_conn_send_macros(c, stage, ev);
    if (c->events & no)
        return 0;
    milter_conn_write(c, pkt);
    if (ev != MILTER_C_BODYEOB && (c->events & no_reply))
        return 0;
    milter_conn_wait(c);
    return 1;
}

/* Sends the current (non-content) event to the current filter, connecting it first if needed. */
void milter_conn_send_event(struct milter_conn *c)
{
    struct milter_session *ms = c->ms;
    if (ms->ev == MILTER_C_BODYEOB) {
        c->step = STEP_HEADERS;
        c->hdr_i = c->body_off = 0;
        c->body_skipped = c->body_editing = c->body_replaced = c->edited = 0;
        ms->ev = MILTER_C_HEADER;
        milter_content_next(c);
        return;
    }
    if (c->state == CONN_READY)
        c->state = CONN_ENVELOPE;
    if (c->skip_event && c->skip_event != ms->ev)
        c->skip_event = 0;
    if (c->skip_event == ms->ev || !conn_send(c, ms->ev, ms->stage, &ms->pkt))
        milter_conn_next(c);
}

void milter_ev_next(struct milter_session *ms)
{
    while (ms->cur < ms->count) {
        struct milter_conn *c = &ms->conns[ms->cur];
        int content = ms->msg != NULL;
        if (content)
            ms->ev = MILTER_C_BODYEOB; /* each filter starts its content phase afresh */
        switch (c->state) {
        case CONN_CLOSED:
            if (ms->ev != MILTER_C_CONNECT) {
                ms->cur++;
                continue;
            }
            if (milter_conn_connect(c) < 0) {
                milter_conn_fail(c, 0);
                if (milter_conn_standing(ms, c))
                    return;
                ms->cur++;
                continue;
            }
            return; /* on_event, then conn_negotiated, go on */
        case CONN_ERROR:
        case CONN_REJECT_CON:
            if (milter_conn_standing(ms, c))
                return;
            ms->cur++;
            continue;
        case CONN_ACCEPT_CON:
            ms->cur++;
            continue;
        case CONN_ACCEPT_MSG:
            if (ms->ev == MILTER_C_RCPT || ms->ev == MILTER_C_DATA || content) {
                ms->cur++;
                continue;
            }
            c->state = CONN_ENVELOPE; /* a new transaction */
            break;
        case CONN_NEGOTIATE:
        case CONN_READY:
        case CONN_ENVELOPE:
            break;
        }
        milter_conn_send_event(c);
        return;
    }
    milter_ev_finish(ms);
}

static void milter_ev_start(struct milter_session *ms, char ev, enum milter_stage stage,
                            milter_cb cb, void *arg)
{
    ms->ev = ev;
    ms->stage = stage;
    ms->cur = 0;
    ms->cb = cb;
    ms->cb_arg = arg;
    memset(&ms->res, 0, sizeof ms->res);
    ms->res.verdict = MILTER_CONTINUE;
    milter_ev_next(ms);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct milter_session *ms = arg;
    milter_cb cb = ms->cb;
    ms->cb = NULL;
    ms->msg = NULL;
    if (cb)
        cb(ms->cb_arg, &ms->res);
}

/* ---- the content phase of one filter ---- */

void milter_content_next(struct milter_conn *c)
{
    struct milter_session *ms = c->ms;
    struct milter_msg *m = ms->msg;
    struct buf pkt = BUF_INIT, name = BUF_INIT, value = BUF_INIT;
    for (;;) {
        buf_reset(&pkt);
        if (c->step == STEP_HEADERS) {
            if (c->hdr_i >= m->nhdrs) {
                c->step = STEP_EOH;
                continue;
            }
            milter_hdr_split(&m->hdrs[c->hdr_i++], (c->events & MILTER_P_HDR_LEADSPC) != 0, &name,
                             &value);
            size_t start = milter_pkt_begin(&pkt, MILTER_C_HEADER);
            milter_pkt_put_str(&pkt, buf_cstr(&name));
            milter_pkt_put_str(&pkt, buf_cstr(&value));
            milter_pkt_end(&pkt, start);
            ms->ev = MILTER_C_HEADER;
            if (conn_send(c, MILTER_C_HEADER, MILTER_M_EOH, &pkt))
                break;
        } else if (c->step == STEP_EOH) {
            c->step = STEP_BODY;
            milter_pkt_raw(&pkt, MILTER_C_EOH, NULL, 0);
            ms->ev = MILTER_C_EOH;
            if (conn_send(c, MILTER_C_EOH, MILTER_M_EOH, &pkt))
                break;
        } else if (c->step == STEP_BODY) {
            if (c->body_skipped || c->body_off >= m->body.len) {
                c->step = STEP_EOB;
                continue;
            }
            size_t n = m->body.len - c->body_off;
            if (n > MILTER_CHUNK_MAX)
                n = MILTER_CHUNK_MAX;
            milter_pkt_raw(&pkt, MILTER_C_BODY, m->body.data + c->body_off, n);
            c->body_off += n;
            ms->ev = MILTER_C_BODY;
            if (conn_send(c, MILTER_C_BODY, MILTER_M_EOM, &pkt))
                break;
        } else {
            milter_pkt_raw(&pkt, MILTER_C_BODYEOB, NULL, 0);
            ms->ev = MILTER_C_BODYEOB;
            conn_send(c, MILTER_C_BODYEOB, MILTER_M_EOM, &pkt);
            break;
        }
    }
    buf_free(&pkt);
    buf_free(&name);
    buf_free(&value);
}

/* ---- the public side ---- */

struct milter_session *milter_session_new(struct event_base *base, const struct milter_conf *mc,
                                          milter_macro_fn macro, void *macro_arg)
{
    struct milter_session *ms = xcalloc(1, sizeof *ms);
    ms->base = base;
    ms->conf = mc;
    ms->count = mc->count;
    ms->conns = xcalloc(mc->count ? mc->count : 1, sizeof *ms->conns);
    ms->macro = macro;
    ms->macro_arg = macro_arg;
    ms->done_ev = evtimer_new(base, on_done, ms);
    for (size_t i = 0; i < mc->count; i++) {
        struct milter_conn *c = &ms->conns[i];
        c->ms = ms;
        c->spec = &mc->specs[i];
        c->timer = evtimer_new(base, milter_conn_on_timeout, c);
    }
    return ms;
}

void milter_session_free(struct milter_session *ms)
{
    if (!ms)
        return;
    for (size_t i = 0; i < ms->count; i++) {
        struct milter_conn *c = &ms->conns[i];
        if (c->bev && c->state != CONN_NEGOTIATE) {
            /* A courtesy QUIT; libmilter copes with a plain close as well. */
            struct evbuffer *out = bufferevent_get_output(c->bev);
            struct buf q = BUF_INIT;
            milter_pkt_raw(&q, MILTER_C_QUIT, NULL, 0);
            evbuffer_add(out, q.data, q.len);
            /* Non-blocking: what the socket does not take now is dropped with it. */
            (void)evbuffer_write(out, bufferevent_getfd(c->bev));
            buf_free(&q);
        }
        milter_conn_close(c);
        if (c->timer)
            event_free(c->timer);
        for (int k = 0; k < MILTER_M_COUNT; k++)
            free(c->macros[k]);
        free(c->def_reply);
    }
    event_free(ms->done_ev);
    free(ms->conns);
    buf_free(&ms->pkt);
    free(ms->reply);
    free(ms->hold_reason);
    free(ms);
}

void milter_connect(struct milter_session *ms, const char *client_name, const char *client_addr,
                    int family, unsigned port, milter_cb cb, void *arg)
{
    buf_reset(&ms->pkt);
    size_t start = milter_pkt_begin(&ms->pkt, MILTER_C_CONNECT);
    /* An unknown name goes as "[addr]", as Sendmail writes it. */
    char name[300];
    if (strcmp(client_name, "unknown") == 0 && strcmp(client_addr, "unknown") != 0)
        snprintf(name, sizeof name, "[%s]", client_addr);
    else
        snprintf(name, sizeof name, "%s", client_name);
    milter_pkt_put_str(&ms->pkt, name);
    char fam = family == AF_INET ? '4' : family == AF_INET6 ? '6' : family == AF_UNIX ? 'L' : 'U';
    buf_putc(&ms->pkt, fam);
    if (fam != 'U') {
        milter_pkt_put_u16(&ms->pkt, (uint16_t)(fam == 'L' ? 0 : port));
        milter_pkt_put_str(&ms->pkt, client_addr);
    }
    milter_pkt_end(&ms->pkt, start);
    milter_ev_start(ms, MILTER_C_CONNECT, MILTER_M_CONNECT, cb, arg);
}

void milter_helo(struct milter_session *ms, const char *helo, milter_cb cb, void *arg)
{
    buf_reset(&ms->pkt);
    size_t start = milter_pkt_begin(&ms->pkt, MILTER_C_HELO);
    milter_pkt_put_str(&ms->pkt, helo);
    milter_pkt_end(&ms->pkt, start);
    milter_ev_start(ms, MILTER_C_HELO, MILTER_M_HELO, cb, arg);
}

static void pkt_argv(struct buf *pkt, char cmd, const char *const *argv)
{
    buf_reset(pkt);
    size_t start = milter_pkt_begin(pkt, cmd);
    for (; *argv; argv++)
        milter_pkt_put_str(pkt, *argv);
    milter_pkt_end(pkt, start);
}

void milter_mail(struct milter_session *ms, const char *const *argv, milter_cb cb, void *arg)
{
    pkt_argv(&ms->pkt, MILTER_C_MAIL, argv);
    ms->in_message = 1;
    milter_ev_start(ms, MILTER_C_MAIL, MILTER_M_ENVFROM, cb, arg);
}

void milter_rcpt(struct milter_session *ms, const char *const *argv, milter_cb cb, void *arg)
{
    pkt_argv(&ms->pkt, MILTER_C_RCPT, argv);
    milter_ev_start(ms, MILTER_C_RCPT, MILTER_M_ENVRCPT, cb, arg);
}

void milter_data(struct milter_session *ms, milter_cb cb, void *arg)
{
    buf_reset(&ms->pkt);
    milter_pkt_raw(&ms->pkt, MILTER_C_DATA, NULL, 0);
    milter_ev_start(ms, MILTER_C_DATA, MILTER_M_DATA, cb, arg);
}

void milter_message(struct milter_session *ms, struct milter_msg *msg, milter_cb cb, void *arg)
{
    ms->msg = msg;
    milter_ev_start(ms, MILTER_C_BODYEOB, MILTER_M_EOM, cb, arg);
}

void milter_abort(struct milter_session *ms)
{
    if (!ms || !ms->in_message)
        return;
    ms->in_message = 0;
    struct buf pkt = BUF_INIT;
    milter_pkt_raw(&pkt, MILTER_C_ABORT, NULL, 0);
    for (size_t i = 0; i < ms->count; i++) {
        struct milter_conn *c = &ms->conns[i];
        if (c->state == CONN_ENVELOPE || c->state == CONN_ACCEPT_MSG) {
            milter_conn_write(c, &pkt);
            c->state = CONN_ENVELOPE;
        }
    }
    buf_free(&pkt);
}
