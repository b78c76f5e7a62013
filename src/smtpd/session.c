/*
 * The SMTP server session: one per client connection, on smtpd's event
 * loop. This part holds the state, the replies, the transaction's life, the
 * input (command lines, capped; DATA/BDAT bytes to the data reader), the
 * session's life cycle and the client's name; smtpd/session_int.h lists the
 * other parts. The 250 after the data goes out only once the spool says the
 * message is durable (session_data.c).
 */
#include "smtpd/session_int.h"

_Static_assert((int)SMTP_NOTIFY_NEVER == (int)DSN_NOTIFY_NEVER &&
                   (int)SMTP_NOTIFY_SUCCESS == (int)DSN_NOTIFY_SUCCESS &&
                   (int)SMTP_NOTIFY_FAILURE == (int)DSN_NOTIFY_FAILURE &&
                   (int)SMTP_NOTIFY_DELAY == (int)DSN_NOTIFY_DELAY,
               "NOTIFY bits must match the envelope's");

static const char *state_names[SMTPD_STATE_COUNT] = {
    "CONNECTED", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "BDAT_MORE", "COMMIT", "QUIT",
};

const char *smtpd_state_name(enum smtpd_state st)
{
    return st < SMTPD_STATE_COUNT ? state_names[st] : "?";
}

/* Tells the delivery side a message is in the queue (server/server.h, "queued"). */
void smtpd_session_queued(struct smtpd_session *s, const char *queue_id)
{
    if (s->srv->queued)
        s->srv->queued(s->srv->queued_arg, queue_id);
}
static void session_linger(struct smtpd_session *s);
static void session_flush(evutil_socket_t fd, short what, void *arg);
static void on_life_timeout(evutil_socket_t fd, short what, void *arg);

/*
 * A check the message waited for (the inbound checks, the milters) answered
 * after the client left: the wait is over and the session goes. 1 when so.
 */
int smtpd_session_end_if_dead(struct smtpd_session *s)
{
    if (!s->dead)
        return 0;
    s->commit_pending = 0;
    smtpd_session_close(s);
    return 1;
}

/* Every state change goes through here (OpenSMTPD's smtp_enter_state). */
void smtpd_session_enter(struct smtpd_session *s, enum smtpd_state st)
{
    if (log_debug_enabled())
        log_debug("smtpd %p [%s]: %s -> %s", (void *)s, s->addr, state_names[s->state],
                  state_names[st]);
    s->state = st;
}

/* ---- replies ---- */

static void reply_raw(struct smtpd_session *s, int code, const char *status, const char *fmt,
                      va_list ap)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    char text[1024];
    vsnprintf(text, sizeof text, fmt, ap);
    if (status)
        evbuffer_add_printf(out, "%d %s %s\r\n", code, status, text);
    else
        evbuffer_add_printf(out, "%d %s\r\n", code, text);
    if (log_debug_enabled())
        log_debug("smtpd %p [%s]: > %d %s %s", (void *)s, s->addr, code, status ? status : "",
                  text);
    if (code >= 400)
        s->errors++;
}

void smtpd_reply(struct smtpd_session *s, int code, const char *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_raw(s, code, status, fmt, ap);
    va_end(ap);
}

void smtpd_reply_r(struct smtpd_session *s, const struct smtp_reply *r)
{
    smtpd_reply(s, r->code, r->status, "%s", r->text);
}

/* A queue file that could not be written: 452 4.3.1 for a full disk (RFC 3463), else 451. */
void smtpd_reply_write_error(struct smtpd_session *s, int err)
{
    if (err == ENOSPC || err == EDQUOT)
        smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
    else
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
}

/* ---- transaction ---- */

void smtpd_tx_free(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    if (!tx)
        return;
    if (tx->msg)
        spool_msg_abort(tx->msg);
    smtp_data_release(&tx->data);
    smtpd_hold_release(&tx->hold);
    milter_msg_free(&tx->milter_msg);
    free(tx->sender);
    free(tx->envid);
    free(tx->first_rcpt);
    free(tx);
    s->tx = NULL;
    restrict_tx_reset(s->rs);
    smtpd_session_milter_tx_end(s);
}

/* Back to "no transaction" (RSET, end of message, errors that end it). */
void smtpd_tx_reset(struct smtpd_session *s)
{
    smtpd_tx_free(s);
    if (s->state != SMTPD_STATE_QUIT)
        smtpd_session_enter(s, s->helo ? SMTPD_STATE_HELO : SMTPD_STATE_CONNECTED);
}

const char *smtpd_proto_name(const struct smtpd_session *s)
{
    return s->esmtp ? "ESMTP" : "SMTP";
}

/* ---- input ---- */

/* Feeds buffered input to the data reader (DATA) or skips/feeds a BDAT chunk. */
static void read_data(struct smtpd_session *s, struct evbuffer *in)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(in, -1, NULL, v, 16);
    size_t used = 0;
    for (int i = 0; i < n && i < 16; i++) {
        const char *p = v[i].iov_base;
        size_t len = v[i].iov_len;
        if (s->state == SMTPD_STATE_DATA) {
            size_t k = smtp_data_feed(&s->tx->data, p, len);
            used += k;
            if (smtp_data_done(&s->tx->data))
                break;
        } else {
            if (len > s->bdat_left)
                len = (size_t)s->bdat_left;
            if (s->bdat_ok)
                smtp_data_feed(&s->tx->data, p, len);
            used += len;
            s->bdat_left -= len;
            if (s->bdat_left == 0)
                break;
        }
    }
    evbuffer_drain(in, used);
    if (s->state == SMTPD_STATE_DATA && smtp_data_done(&s->tx->data))
        smtpd_message_end(s);
    else if (s->state == SMTPD_STATE_BDAT && s->bdat_left == 0)
        smtpd_bdat_chunk_end(s);
}

/* Runs whatever complete input there is, as far as the state allows. */
void smtpd_session_run(struct smtpd_session *s)
{
    if (!s->greeted)
        return; /* a client talking before the 220 is read once it is sent */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    s->in_run = 1;
    while (!s->dead && s->state != SMTPD_STATE_QUIT && s->state != SMTPD_STATE_COMMIT &&
           !s->auth_q && !s->starttls_wait && !s->restrict_wait && !s->milter_wait && !s->rcpt_q) {
        if (s->replay) {
            /* The command that waited for a restriction lookup: its answers are in now. */
            char *line = s->replay;
            s->replay = NULL;
            s->replaying = 1;
            smtpd_dispatch(s, line, strlen(line));
            s->replaying = 0;
            free(line);
            continue;
        }
        if (evbuffer_get_length(out) > SMTPD_OUTPUT_HIGH)
            break; /* the client is not reading its replies: wait for the write callback */
        if (s->hard_errors > 0 && s->errors >= s->hard_errors) {
            smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors", s->myhostname);
            log_info("too many errors after %s from %s[%s]", s->last_cmd ? s->last_cmd : "CONNECT",
                     s->host, s->addr);
            smtpd_session_close(s);
            break;
        }
        if (s->state == SMTPD_STATE_BDAT && s->bdat_left == 0) {
            smtpd_bdat_chunk_end(s); /* "BDAT 0 LAST" */
            continue;
        }
        if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT) {
            /* read_data() takes all it can; what stops it short ends the state */
            if (evbuffer_get_length(in) == 0)
                break;
            read_data(s, in);
            continue;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            size_t have = evbuffer_get_length(in);
            if (have > SMTPD_LINE_MAX) {
                /* No end in sight: drop what we have and remember to answer at its end. */
                evbuffer_drain(in, have);
                s->discard_line = 1;
            }
            break;
        }
        size_t len = (size_t)p.pos;
        if (s->discard_line || len + eol_len > SMTPD_LINE_MAX) {
            evbuffer_drain(in, len + eol_len);
            s->discard_line = 0;
            s->last_cmd = "UNKNOWN";
            /* RFC 5321 4.5.3.1.4 allows 512; we take up to SMTPD_LINE_MAX. */
            smtpd_reply(s, 500, "5.5.6", "Error: line too long");
            continue;
        }
        char line[SMTPD_LINE_MAX + 1];
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        if (s->auth_step) {
            /* A SASL response: never logged (it carries the password). */
            smtpd_tlsauth_sasl_line(s, line, len);
            explicit_bzero(line, len);
            continue;
        }
        if (log_debug_enabled())
            log_debug("smtpd %p [%s]: < %.*s", (void *)s, s->addr,
                      str_prefix_ci(line, "AUTH ") ? 4 : (int)len, line);
        /*
         * RFC 2920 3.1: EHLO, DATA and STARTTLS end a pipelined group, and a
         * client that did not see PIPELINING (HELO) may not pipeline at all.
         */
        if (evbuffer_get_length(in) > 0 &&
            (!s->esmtp || str_prefix_ci(line, "DATA") || str_prefix_ci(line, "EHLO") ||
             str_prefix_ci(line, "HELO") || str_prefix_ci(line, "STARTTLS")))
            s->ill_pipelining = 1;
        restrict_command_start(s->rs);
        smtpd_dispatch(s, line, len);
        explicit_bzero(line, len);
    }
    s->in_run = 0;
    /*
     * The client closed its side: what was complete has run (a pipelined
     * QUIT among it); anything else can never complete.
     */
    if (s->eof && !s->dead && !s->commit_pending && !s->auth_q && !s->restrict_wait && !s->replay &&
        !s->milter_wait && !s->rcpt_q && s->state != SMTPD_STATE_QUIT) {
        log_info("lost connection after %s from %s[%s]", s->last_cmd ? s->last_cmd : "CONNECT",
                 s->host, s->addr);
        s->dead = 1;
    }
    if (s->dead)
        smtpd_session_close(s); /* frees s unless a commit is pending */
}

/* ---- life cycle ---- */

static void session_free(struct smtpd_session *s)
{
    struct buf stats = BUF_INIT;
    static const char *names[SMTP_CMD_COUNT] = {
        [SMTP_CMD_HELO] = "helo", [SMTP_CMD_EHLO] = "ehlo",         [SMTP_CMD_MAIL] = "mail",
        [SMTP_CMD_RCPT] = "rcpt", [SMTP_CMD_DATA] = "data",         [SMTP_CMD_BDAT] = "bdat",
        [SMTP_CMD_RSET] = "rset", [SMTP_CMD_NOOP] = "noop",         [SMTP_CMD_QUIT] = "quit",
        [SMTP_CMD_VRFY] = "vrfy", [SMTP_CMD_EXPN] = "expn",         [SMTP_CMD_HELP] = "help",
        [SMTP_CMD_AUTH] = "auth", [SMTP_CMD_STARTTLS] = "starttls",
    };
    unsigned total = s->unknown_cmds, ok_total = 0;
    /* Postfix's "disconnect from" statistics: name=ok or name=ok/total. */
    for (int v = 1; v < SMTP_CMD_COUNT; v++) {
        if (!s->cmd_total[v])
            continue;
        total += s->cmd_total[v];
        ok_total += s->cmd_ok[v];
        if (s->cmd_ok[v] == s->cmd_total[v])
            buf_printf(&stats, " %s=%u", names[v], s->cmd_ok[v]);
        else
            buf_printf(&stats, " %s=%u/%u", names[v], s->cmd_ok[v], s->cmd_total[v]);
    }
    if (s->unknown_cmds)
        buf_printf(&stats, " unknown=0/%u", s->unknown_cmds);
    if (ok_total == total)
        buf_printf(&stats, " commands=%u", total);
    else
        buf_printf(&stats, " commands=%u/%u", ok_total, total);
    log_as("smtpd", "disconnect from %s[%s]%s", s->host, s->addr, buf_cstr(&stats));
    buf_free(&stats);
    smtpd_tx_free(s);
    restrict_session_free(s->rs);
    free(s->replay);
    free(s->access_denied);
    milter_session_free(s->milter);
    free(s->milter_args);
    free(s->milter_addr);
    free(s->milter_hold_reason);
    dns_cancel(s->peer_q);
    free(s->ptr_name);
    free(s->host_name);
    auth_cancel(s->auth_q);
    sasl_free(s->sasl);
    free(s->auth_user);
    if (s->life_timer)
        event_free(s->life_timer);
    smtpd_session_direct_write_end(s);
    if (s->bev)
        bufferevent_free(s->bev); /* closes the socket */
    server_session_ended(s->srv, (struct sockaddr *)&s->peer, s->peer_len);
    server_gen_unref(s->gen);
    free(s->helo);
    free(s);
}

static void on_linger_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_linger_end(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* the client's EOF, an error, or SMTPD_LINGER_SECONDS */
    struct smtpd_session *s = arg;
    s->dead = 1;
    smtpd_session_close(s);
}

/*
 * A lingering close. Closing a socket with unread input makes the kernel
 * answer with a reset, which throws away replies still on their way to a
 * client that pipelined more commands than we answer (a 421 after too many
 * errors) and reads slowly. So we send our FIN after the last reply
 * (shutdown), read and drop what the client still sends until its own FIN,
 * for at most SMTPD_LINGER_SECONDS, and only then close. Not after a QUIT
 * that nothing followed: the client sends no more, and there is nothing to
 * throw away (Postfix closes then too). That saves a shutdown, a read and
 * a turn of the loop per message.
 */
static void session_linger(struct smtpd_session *s)
{
    s->lingering = 1;
    if (shutdown(bufferevent_getfd(s->bev), SHUT_WR) < 0) {
        s->dead = 1;
        smtpd_session_close(s);
        return;
    }
    bufferevent_setcb(s->bev, on_linger_read, NULL, on_linger_end, s);
    struct timeval tv = {SMTPD_LINGER_SECONDS, 0};
    bufferevent_set_timeouts(s->bev, &tv, NULL);
    bufferevent_disable(s->bev, EV_WRITE);
    bufferevent_enable(s->bev, EV_READ);
    /* The read timeout is per read: the session clock bounds a client that keeps sending. */
    if (s->life_timer == NULL)
        s->life_timer = evtimer_new(s->srv->base, on_life_timeout, s);
    if (s->life_timer)
        evtimer_add(s->life_timer, &tv);
}

/*
 * Ends the session: once the replies written so far have left (QUIT, 421),
 * or at once when the client is gone. Waits for a pending commit, whose
 * callback needs the session.
 */
void smtpd_session_close(struct smtpd_session *s)
{
    if (s->state != SMTPD_STATE_QUIT) {
        smtpd_session_enter(s, SMTPD_STATE_QUIT);
        bufferevent_disable(s->bev, EV_READ);
    }
    if (!s->dead && evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return; /* the write callback comes back here once the replies are out */
    int quit_clean = s->quit_asked && evbuffer_get_length(bufferevent_get_input(s->bev)) == 0;
    if (!s->dead && !s->eof && !s->lingering && !s->tls && !quit_clean) {
        session_linger(s);
        return;
    }
    s->dead = 1;
    if (s->in_run || s->commit_pending || s->rcpt_q || restrict_session_busy(s->rs))
        return;
    session_free(s);
}

void smtpd_session_on_read(struct bufferevent *bev, void *arg)
{
    smtpd_session_run(arg);
}

void smtpd_session_on_write(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->flush_ev)
        bufferevent_disable(bev, EV_WRITE); /* drained: session_flush() writes the next replies */
    if (s->starttls_wait && s->state != SMTPD_STATE_QUIT) {
        smtpd_tlsauth_starttls_go(s); /* the 220 is out */
        return;
    }
    if (s->state == SMTPD_STATE_QUIT) {
        smtpd_session_close(s);
        return;
    }
    /* Replies drained: go on with commands held back by the output cap. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        smtpd_session_run(s);
}

/*
 * Replies on a plain TCP session are written here, once per pass of the
 * event loop (all that one read produced, pipelined replies together), not
 * by the bufferevent's write event: libevent adds that event when a reply
 * is queued and deletes it once the reply has left, two epoll_ctl calls per
 * reply, 14 of the 16 per message. The write event is enabled only when the
 * socket does not take everything (a client that does not read), or fails
 * (the bufferevent then reports the error as before).
 */
static void session_output_added(struct evbuffer *out, const struct evbuffer_cb_info *info,
                                 void *arg)
{
    (void)out;
    struct smtpd_session *s = arg;
    if (info->n_added > 0 && !(bufferevent_get_enabled(s->bev) & EV_WRITE))
        event_active(s->flush_ev, EV_WRITE, 0); /* no-op when already active */
}

static void session_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_session *s = arg;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (bufferevent_get_enabled(s->bev) & EV_WRITE || evbuffer_get_length(out) == 0)
        return; /* the bufferevent is writing, or a close took the replies */
    /* A socket bufferevent keeps its output's start frozen; it thaws it to write, as here. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, bufferevent_getfd(s->bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(s->bev, EV_WRITE);
        return;
    }
    smtpd_session_on_write(s->bev, s); /* what waited for the replies to leave */
}

static void session_direct_write_start(struct smtpd_session *s)
{
    s->flush_ev = event_new(s->srv->base, -1, 0, session_flush, s);
    if (s->flush_ev == NULL)
        return; /* the bufferevent writes, as for TLS */
    s->flush_cb = evbuffer_add_cb(bufferevent_get_output(s->bev), session_output_added, s);
    if (s->flush_cb == NULL) {
        event_free(s->flush_ev);
        s->flush_ev = NULL;
    }
}

void smtpd_session_direct_write_end(struct smtpd_session *s)
{
    if (s->flush_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(s->bev), s->flush_cb);
    s->flush_cb = NULL;
    if (s->flush_ev)
        event_free(s->flush_ev);
    s->flush_ev = NULL;
}

void smtpd_session_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        smtpd_tlsauth_handshake_done(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        log_info("timeout after %s from %s[%s]", s->last_cmd ? s->last_cmd : "CONNECT", s->host,
                 s->addr);
        if (s->state == SMTPD_STATE_QUIT || (what & BEV_EVENT_WRITING)) {
            s->dead = 1;
            smtpd_session_close(s);
            return;
        }
        smtpd_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->myhostname);
        bufferevent_enable(bev, EV_WRITE);
        smtpd_session_close(s);
        return;
    }
    if (s->tls && !s->tls_up) {
        smtpd_tlsauth_handshake_failed(s); /* a TLS session that never got going */
        s->dead = 1;
        smtpd_session_close(s);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->state != SMTPD_STATE_QUIT) {
        /* Half-closed: replies can still go out; smtpd_session_run() decides. */
        s->eof = 1;
        if (!s->in_run)
            smtpd_session_run(s);
        return;
    }
    if (s->state != SMTPD_STATE_QUIT)
        log_info("lost connection after %s from %s[%s]", s->last_cmd ? s->last_cmd : "CONNECT",
                 s->host, s->addr);
    s->dead = 1;
    smtpd_session_close(s);
}

static void on_life_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->state == SMTPD_STATE_QUIT || s->dead) {
        s->dead = 1;
        smtpd_session_close(s);
        return;
    }
    if (s->commit_pending || s->rcpt_q)
        return; /* the commit or lookup answers first; the idle timeout still applies after */
    log_info("session time limit exceeded after %s from %s[%s]",
             s->last_cmd ? s->last_cmd : "CONNECT", s->host, s->addr);
    smtpd_reply(s, 421, "4.4.2", "%s Error: session time limit exceeded", s->myhostname);
    smtpd_session_close(s);
}

/* ---- the client's name (Postfix's smtpd_peername_lookup) ---- */

void smtpd_session_greet(struct smtpd_session *s)
{
    if (!s->restrict_wait && !s->access_denied && !s->greet_logged) {
        log_as("smtpd", "connect from %s[%s]", s->host, s->addr);
        s->greet_logged = 1;
        /* Talking before the greeting is the first misuse of pipelining (RFC 2920). */
        if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
            s->ill_pipelining = 1;
        /* Once: a resumed greeting must keep the answers it waited for. */
        restrict_command_start(s->rs);
    }
    if (smtpd_restrict_at(s, RESTRICT_CONNECT, NULL) < 0 && s->restrict_wait)
        return; /* smtpd_restrict_resume() greets */
    if (s->milter && !s->access_denied) {
        smtpd_session_milter_greet(
            s); /* the filters hear of the client first; the greeting follows */
        return;
    }
    if (s->access_denied) {
        evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", s->access_denied);
        s->errors++;
    } else {
        smtpd_reply(s, 220, NULL, "%s", config_get(s->gen->cfg, "smtpd_banner"));
    }
    s->greeted = 1;
    /* What came while we looked the name up: early commands, or the client's EOF. */
    if (s->eof || evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        smtpd_session_run(s);
}

static void peer_addr_done(void *arg, const struct dns_answer *ans)
{
    struct smtpd_session *s = arg;
    s->peer_q = NULL;
    for (size_t i = 0; ans->status == DNS_OK && i < ans->count && !s->host_name; i++)
        if (strcmp(ans->addrs[i], s->addr) == 0)
            s->host_name = s->ptr_name, s->ptr_name = NULL;
    if (s->host_name)
        s->host = s->host_name;
    else if (ans->status == DNS_TEMPFAIL)
        log_warning("%s: hostname %s verification failed: temporary DNS failure", s->addr,
                    s->ptr_name);
    else
        log_warning("hostname %s does not resolve to address %s", s->ptr_name, s->addr);
    smtpd_session_greet(s);
}

static void peer_ptr_done(void *arg, const struct dns_answer *ans)
{
    struct smtpd_session *s = arg;
    s->peer_q = NULL;
    /* The name goes into logs and Received: only if it is a well-formed host name. */
    const char *name = ans->status == DNS_OK && ans->count ? ans->names[0] : NULL;
    if (name && smtp_domain_valid(name, strlen(name), 0) && name[0] != '[') {
        s->ptr_name = xstrdup(name);
        str_lower(s->ptr_name);
        int type = strchr(s->addr, ':') ? DNS_T_AAAA : DNS_T_A;
        s->peer_q = dns_query(s->srv->dns, s->ptr_name, type, peer_addr_done, s);
        if (s->peer_q)
            return;
    }
    smtpd_session_greet(s);
}

/*
 * Forward-confirmed reverse DNS, as Postfix's smtpd: the PTR name counts
 * only when it resolves back to the client's address (else "unknown").
 * The greeting waits for it, so every log line and the Received: field use
 * one name. 1 when started; the lookups are bounded by the DNS timeout.
 */
static int peer_lookup_start(struct smtpd_session *s)
{
    struct buf name = BUF_INIT;
    if (s->srv->dns == NULL || !config_get_bool(s->gen->cfg, "smtpd_peername_lookup") ||
        dns_reverse_name(s->addr, &name) < 0) {
        buf_free(&name);
        return 0;
    }
    s->peer_q = dns_query(s->srv->dns, buf_cstr(&name), DNS_T_PTR, peer_ptr_done, s);
    buf_free(&name);
    return s->peer_q != NULL;
}

void smtpd_session_start(struct server *srv, int fd, const struct sockaddr *peer,
                         socklen_t peer_len, enum listener_kind kind)
{
    struct smtpd_session *s = xcalloc(1, sizeof *s);
    s->srv = srv;
    s->gen = server_gen_ref(srv);
    s->kind = kind;
    s->state = SMTPD_STATE_CONNECTED;
    if (peer_len > sizeof s->peer)
        peer_len = sizeof s->peer;
    memcpy(&s->peer, peer, peer_len);
    s->peer_len = peer_len;
    server_addr_text(peer, s->addr, sizeof s->addr);
    s->host = "unknown";

    const struct config *cfg = s->gen->cfg;
    s->myhostname = config_get(cfg, "myhostname");
    long long v = config_get_int(cfg, "message_size_limit");
    s->max_msg = v > 0 ? (size_t)v : 0;
    inbound_settings_load(cfg, &s->auth_set);
    v = config_get_int(cfg, "header_size_limit");
    s->max_hdr = v > 0 ? (size_t)v : 0;
    v = config_get_int(cfg, "smtpd_recipient_limit");
    s->rcpt_limit = v > 0 ? (size_t)v : (size_t)-1;
    /* Postfix's rule: queue_minfree 0 means room for one and a half of the largest message. */
    s->queue_minfree = config_get_int(cfg, "queue_minfree");
    if (s->queue_minfree <= 0)
        s->queue_minfree = (long long)s->max_msg + (long long)s->max_msg / 2;
    v = config_get_int(cfg, "smtpd_recipient_overshoot_limit");
    s->rcpt_overshoot_limit = v > 0 ? (size_t)v : 0;
    s->hard_errors = (int)config_get_int(cfg, "smtpd_hard_error_limit");
    /*
     * mynetworks lets a client relay on the MX port only; on the submission
     * ports relaying needs AUTH (SPEC, RFC 6409), as Postfix's master.cf
     * submission entry does with permit_sasl_authenticated.
     */
    s->trusted_net = kind == LISTEN_SMTPD && smtpd_policy_mynetworks(cfg, peer);
    struct restrict_hooks hooks = {smtpd_restrict_resume, smtpd_restrict_log, s};
    s->rs = restrict_session_new(restrict_conf_get(&s->gen->restrict_conf, cfg, s->gen->resolver),
                                 srv->dns, srv->base, server_map_workq(srv), &hooks);
    smtpd_session_milter_start(s, fd);

    evutil_make_socket_nonblocking(fd);
    if (kind == LISTEN_SMTPS) {
        /* RFC 8314: TLS from the first byte; the greeting waits for the handshake. */
        s->bev = s->gen->tls ? tls_server_accept(s->gen->tls, srv->base, fd) : NULL;
        s->tls = s->bev != NULL;
    } else {
        s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!s->bev) {
        log_error("cannot set up a session for %s: out of resources", s->addr);
        evutil_closesocket(fd);
        server_session_ended(srv, peer, peer_len);
        server_gen_unref(s->gen);
        free(s);
        return;
    }
    bufferevent_setcb(s->bev, smtpd_session_on_read, smtpd_session_on_write, smtpd_session_on_event,
                      s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    long long idle = config_get_time(cfg, "smtpd_timeout");
    if (idle > 0) {
        struct timeval tv = {(time_t)idle, 0};
        bufferevent_set_timeouts(s->bev, &tv, &tv);
    }
    long long life = config_get_time(cfg, "smtpd_session_timeout");
    if (life > 0) {
        struct timeval tv = {(time_t)life, 0};
        s->life_timer = evtimer_new(srv->base, on_life_timeout, s);
        evtimer_add(s->life_timer, &tv);
    }
    if (!s->tls)
        session_direct_write_start(s);
    if (s->flush_ev)
        bufferevent_disable(s->bev, EV_WRITE); /* a new bufferevent starts with it enabled */
    bufferevent_enable(s->bev, s->flush_ev ? EV_READ : EV_READ | EV_WRITE);
    if (!peer_lookup_start(s))
        smtpd_session_greet(s);
}
