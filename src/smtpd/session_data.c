/*
 * The SMTP server session's message: DATA and BDAT (RFC 3030) into the data
 * reader, the trace header, the inbound checks (SPF, DKIM, DMARC) on the held
 * message, signing, and the commit whose durability the 250 waits for.
 */
#include "smtpd/session_int.h"

int smtpd_check_data(struct smtpd_session *s, const char *args, size_t len)
{
    if (s->state == SMTPD_STATE_MAIL) {
        smtpd_reply(s, 554, "5.5.1", "Error: no valid recipients");
        return -1;
    }
    if (smtpd_check_no_args(s, args, len) < 0)
        return -1;
    return smtpd_restrict_at(s, RESTRICT_DATA, NULL);
}

static int data_sink(void *arg, const char *data, size_t len)
{
    struct smtpd_tx *tx = arg;
    if (tx->auth || tx->milter)
        return smtpd_hold_append(&tx->hold, data, len);
    return spool_msg_write(tx->msg, data, len);
}

/*
 * The trace header (RFC 5321 4.4), Postfix's layout, with the protocol
 * names of RFC 3848 and RFC 6531 (UTF8SMTP...).
 */
static int write_received(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    char with[16], date[64];
    snprintf(with, sizeof with, "%s%s%s", tx->smtputf8 ? "UTF8SMTP" : smtpd_proto_name(s),
             s->tls ? "S" : "", s->authenticated ? "A" : "");
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    struct buf h = BUF_INIT;
    const struct restrict_effects *fx = restrict_effects(s->rs);
    buf_append(&h, fx->prepend.data ? fx->prepend.data : "", fx->prepend.len);
    /* Without HELO, Postfix names the client by its host name here. */
    buf_printf(&h, "Received: from %s (%s [%s])", s->helo ? s->helo : s->host, s->host, s->addr);
    smtpd_tlsauth_received(s, &h);
    buf_printf(&h, "\r\n\tby %s (hongyan) with %s id %s", s->myhostname, with,
               spool_msg_id(tx->msg));
    if (tx->nrcpt == 1)
        buf_printf(&h, "\r\n\tfor <%s>", tx->first_rcpt);
    buf_printf(&h, "; %s\r\n", date);
    int rc = spool_msg_write(tx->msg, h.data, h.len);
    buf_free(&h);
    return rc;
}

/* Sets up the data reader for DATA or the first BDAT chunk; -1 after replying. */
static int data_open(struct smtpd_session *s, enum smtp_data_mode mode)
{
    struct smtpd_tx *tx = s->tx;
    if (write_received(s) < 0) {
        smtpd_reply_write_error(s, errno);
        return -1;
    }
    tx->auth =
        s->srv->dns &&
        inbound_applies(smtpd_policy_mynetworks(s->gen->cfg, (const struct sockaddr *)&s->peer),
                        s->authenticated);
    tx->milter = s->milter != NULL;
    tx->bdat = mode == SMTP_DATA_BDAT;
    smtp_data_init(&tx->data, mode, s->max_msg, s->max_hdr, data_sink, tx);
    tx->data_open = 1;
    return 0;
}

int smtpd_cmd_data(struct smtpd_session *s, const char *args, size_t len)
{
    if (smtpd_session_milter_gate(s, MILTER_C_DATA, NULL, args, len, smtpd_cmd_data))
        return 0;
    if (data_open(s, SMTP_DATA_DOT) < 0) {
        smtpd_tx_reset(s);
        return -1;
    }
    smtpd_session_enter(s, SMTPD_STATE_DATA);
    smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    return 0;
}

static void commit_done(void *arg, int result, int err_code, const char *queue_id);
static void sign_done(void *arg, struct spool_msg *m, int err_code);
static void auth_done(void *arg, const struct inbound_result *res);

/*
 * SPF, DKIM and DMARC on the held message (mailauth/inbound.h), before the
 * commit; the session waits as it does for a commit.
 */
static void auth_start(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    const char *msg;
    size_t len;
    if (smtpd_hold_view(&tx->hold, &msg, &len) < 0) {
        log_warning("%s: cannot map the held message: %s", spool_msg_id(tx->msg), strerror(errno));
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
        smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
        return;
    }
    if (smtpd_hold_spilled(&tx->hold))
        log_info("%s: held for the inbound checks in a file: smtpd_inbound_memory_limit (%zu "
                 "bytes) is taken by other messages",
                 spool_msg_id(tx->msg), s->srv->hold_budget.limit);
    smtpd_session_enter(s, SMTPD_STATE_COMMIT);
    s->commit_pending = 1;
    /* The hold stays until auth_done(): the result's body points into it. */
    struct inbound_request req = {
        .client_ip = s->addr,
        .helo = s->helo,
        .mailfrom = tx->sender,
        .queue_id = spool_msg_id(tx->msg),
        .msg = msg,
        .len = len,
        .now = time(NULL),
    };
    inbound_start(s->srv->dns, &s->auth_set, &req, auth_done, s);
}

/* The verdict: refuse, or prepend Authentication-Results and commit. */
static void auth_done(void *arg, const struct inbound_result *res)
{
    struct smtpd_session *s = arg;
    struct smtpd_tx *tx = s->tx;
    if (smtpd_session_end_if_dead(s))
        return;
    if (res->verdict == INBOUND_ACCEPT && tx->milter) {
        /* The filters see the message with our Authentication-Results, as Postfix's would. */
        struct buf all = BUF_INIT;
        buf_append(&all, res->header, res->header_len);
        buf_append(&all, res->msg, res->msg_len);
        buf_append(&all, res->body, res->body_len);
        smtpd_hold_release(&tx->hold); /* res->body pointed into it */
        smtpd_session_milter_content(s, all.data ? all.data : "", all.len);
        buf_free(&all);
        return;
    }
    if (res->verdict == INBOUND_ACCEPT) {
        if (spool_msg_write(tx->msg, res->header, res->header_len) == 0 &&
            spool_msg_write(tx->msg, res->msg, res->msg_len) == 0 &&
            spool_msg_write(tx->msg, res->body, res->body_len) == 0) {
            smtpd_hold_release(&tx->hold);
            smtpd_message_commit(s);
            return;
        }
        smtpd_reply_write_error(s, errno);
    } else {
        log_as("smtpd",
               "%s: reject: END-OF-MESSAGE from %s[%s]: %d %s %s; from=<%s> proto=%s helo=<%s>",
               spool_msg_id(tx->msg), s->host, s->addr, res->code, res->status, res->text,
               tx->sender, smtpd_proto_name(s), s->helo ? s->helo : "");
        smtpd_reply(s, res->code, res->status, "%s", res->text);
    }
    s->commit_pending = 0;
    smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
    if (!s->in_run)
        smtpd_session_run(s);
}

/* The reader has the whole message: refuse it, or hand it to the spool. */
void smtpd_message_end(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    enum smtp_data_status st = smtp_data_finish(&tx->data);
    if (st != SMTP_DATA_OK) {
        struct smtp_reply r;
        smtp_data_reply(&tx->data, &r);
        log_as("smtpd", "%s: reject: %s from %s[%s]: %d %s %s; from=<%s> proto=%s helo=<%s>",
               spool_msg_id(tx->msg), s->state == SMTPD_STATE_DATA ? "DATA" : "BDAT", s->host,
               s->addr, r.code, r.status, r.text, tx->sender, smtpd_proto_name(s),
               s->helo ? s->helo : "");
        smtpd_reply_r(s, &r);
        smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
        return;
    }
    smtpd_message_checked(s);
}

/*
 * smtpd_end_of_data_restrictions, then the inbound checks and the commit.
 * Also the resume point when those restrictions had to wait.
 */
void smtpd_message_checked(struct smtpd_session *s)
{
    s->last_cmd = "END-OF-MESSAGE"; /* Postfix's name for this stage in its log lines */
    if (smtpd_restrict_at(s, RESTRICT_EOD, NULL) < 0) {
        if (!s->restrict_wait)
            smtpd_tx_reset(s); /* refused: aborts the queue file, nothing is kept */
        return;
    }
    struct smtpd_tx *tx = s->tx;
    if (tx->auth) {
        auth_start(s);
        return;
    }
    if (tx->milter) {
        const char *msg;
        size_t len;
        if (smtpd_hold_view(&tx->hold, &msg, &len) < 0) {
            log_warning("%s: cannot map the held message: %s", spool_msg_id(tx->msg),
                        strerror(errno));
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
            smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
            return;
        }
        smtpd_session_milter_content(s, msg, len);
        return;
    }
    smtpd_message_commit(s);
}

/* Hands the message to the spool; the 250 comes from commit_done(). */
void smtpd_message_commit(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    if (smtpd_restrict_tx_effects(s) > 0)
        return; /* DISCARD: answered as accepted, nothing queued */
    struct spool_msg *m = tx->msg;
    tx->msg = NULL; /* the spool owns it now */
    /*
     * HOLD (access table or policy): committed straight into hold/, as a
     * milter's quarantine is, rather than moved there after a commit that
     * may have gone to the journal (where nothing is moved by rename).
     */
    if (restrict_effects(s->rs)->hold)
        spool_msg_envelope(m)->hold = 1;
    log_as("qmgr", "%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", spool_msg_id(m), tx->sender,
           spool_msg_size(m), spool_msg_envelope(m)->nrcpts);
    smtpd_session_enter(s, SMTPD_STATE_COMMIT);
    s->commit_pending = 1;
    /*
     * Reading goes on (smtpd_session_run() does not run commands in COMMIT), so a
     * client that leaves is noticed; the read watermark bounds what piles up.
     * Mail we originate (AUTH, or mynetworks on smtpd_listen: the clients
     * allowed to relay without AUTH) is DKIM-signed first, off the loop, so
     * the queued bytes carry the signature; the 250 waits for both.
     * Its missing Date or Message-ID is added there too, which means reading
     * the message back; when the data reader saw both (and no milter could
     * have removed one since), there is nothing to add, and without DKIM
     * keys nothing to read: the commit follows at once.
     */
    if (s->authenticated || s->trusted_net) {
        int complete =
            !tx->milter &&
            smtp_data_has_fields(&tx->data, SMTP_DATA_FIELD_DATE | SMTP_DATA_FIELD_MESSAGE_ID);
        dkim_spool_sign(s->srv->workq, s->gen->dkim,
                        complete ? NULL : config_get(s->gen->cfg, "myhostname"), m, sign_done, s);
    } else
        spool_msg_commit(m, commit_done, s);
}

/*
 * Signed (or left unsigned, logged): now the commit, still under
 * commit_pending. A message that could not be finished (no room for its
 * Date or signature) is removed and refused like a failed commit.
 */
static void sign_done(void *arg, struct spool_msg *m, int err_code)
{
    if (err_code) {
        char id[QUEUE_ID_MAX];
        str_copy(id, sizeof id, spool_msg_id(m));
        spool_msg_abort(m);
        commit_done(arg, -1, err_code, id);
        return;
    }
    spool_msg_commit(m, commit_done, arg);
}

static void commit_done(void *arg, int result, int err_code, const char *queue_id)
{
    struct smtpd_session *s = arg;
    s->commit_pending = 0;
    /* HOLD: the commit parked it in hold/ until the queue command releases it. */
    int held = result == 0 && restrict_effects(s->rs)->hold;
    if (s->dead) {
        if (result == 0 && !held)
            smtpd_session_queued(s, queue_id);
        smtpd_session_close(s);
        return;
    }
    if (result == 0) {
        metrics_message_received(server_listener_metric(s->kind));
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", queue_id);
        if (!held)
            smtpd_session_queued(s, queue_id);
    } else if (err_code == ENOSPC || err_code == EDQUOT) {
        smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
    } else {
        log_warning("%s: queue commit failed: %s", queue_id ? queue_id : "?", strerror(err_code));
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
    }
    smtpd_tx_reset(s);
    if (s->state == SMTPD_STATE_COMMIT)
        smtpd_session_enter(s, SMTPD_STATE_HELO);
    if (!s->in_run)
        smtpd_session_run(s);
}

/*
 * BDAT (RFC 3030): the chunk's bytes are always read, whatever the state,
 * so that the session stays in step; the verdict comes after them.
 */
int smtpd_cmd_bdat(struct smtpd_session *s, const char *args, size_t len)
{
    unsigned long long size;
    int last;
    struct smtp_reply r;
    if (smtp_bdat_parse(args, len, &size, &last, &r) < 0) {
        /* Without a size we cannot skip the chunk: the session cannot go on. */
        smtpd_reply_r(s, &r);
        smtpd_session_close(s);
        return -1;
    }
    /* The first chunk is where smtpd_data_restrictions apply, as Postfix does. */
    int refused = 0;
    if (s->state == SMTPD_STATE_RCPT && smtpd_restrict_at(s, RESTRICT_DATA, NULL) < 0) {
        if (s->restrict_wait || s->state == SMTPD_STATE_QUIT)
            return -1; /* runs again once the answer is in; or the session ends */
        refused = 1;
    }
    s->bdat_left = size;
    s->bdat_last = last;
    s->bdat_ok = 0;
    s->bdat_replied = 0;
    if (s->state == SMTPD_STATE_RCPT) {
        if (!refused && data_open(s, SMTP_DATA_BDAT) == 0) {
            s->bdat_ok = 1;
        } else {
            s->bdat_replied = 1; /* the chunk is still skipped */
            smtpd_tx_free(s);
        }
    } else if (s->state == SMTPD_STATE_BDAT_MORE) {
        s->bdat_ok = 1;
    }
    s->last_cmd = "BDAT";
    smtpd_session_enter(s, SMTPD_STATE_BDAT);
    return 0;
}

/* The whole chunk has been read. */
void smtpd_bdat_chunk_end(struct smtpd_session *s)
{
    if (!s->bdat_ok) {
        /* No transaction (or it failed earlier): the chunk was skipped. */
        if (!s->bdat_replied)
            smtpd_reply(s, 503, "5.5.1", "Error: need RCPT command");
        smtpd_tx_reset(s);
        return;
    }
    if (s->bdat_last) {
        smtpd_message_end(s);
        return;
    }
    if (s->tx->data.status != SMTP_DATA_OK) {
        /* Refuse now; the later chunks of this message meet "no transaction". */
        smtpd_message_end(s);
        return;
    }
    smtpd_session_enter(s, SMTPD_STATE_BDAT_MORE);
    smtpd_reply(s, 250, "2.0.0", "Ok: %llu octets", (unsigned long long)s->tx->data.msg_bytes);
}
