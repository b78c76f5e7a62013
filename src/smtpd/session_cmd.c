/*
 * The SMTP server session's commands before the message: EHLO/HELO and the
 * extensions it lists, MAIL, RCPT (with its recipient lookup off the event
 * loop), RSET, NOOP, QUIT, VRFY, HELP, and the command table that dispatch()
 * runs each line through (OpenSMTPD's check/proceed pairs).
 */
#include "smtpd/session_int.h"

/* ---- EHLO ---- */

/*
 * The extensions EHLO lists, in order; offer() says whether this session
 * gets it. STARTTLS and AUTH slot in here (RFC 3207, RFC 4954) as one line
 * each, with their commands in the command table below.
 */
struct ehlo_ext {
    const char *keyword;
    unsigned ext; /* enum smtp_ext bit the parsers then accept, or 0 */
    int (*offer)(const struct smtpd_session *s);
};

static int offer_always(const struct smtpd_session *s)
{
    return 1;
}

static int offer_size(const struct smtpd_session *s)
{
    return 1;
}

static const struct ehlo_ext ehlo_exts[] = {
    {"PIPELINING", 0, offer_always},
    {"SIZE", SMTP_EXT_SIZE, offer_size},
    {"STARTTLS", 0, smtpd_offer_starttls},
    {"AUTH PLAIN LOGIN", 0, smtpd_offer_auth},
    {"8BITMIME", SMTP_EXT_8BITMIME, offer_always},
    {"ENHANCEDSTATUSCODES", 0, offer_always},
    {"SMTPUTF8", SMTP_EXT_SMTPUTF8, offer_always},
    {"CHUNKING", SMTP_EXT_CHUNKING, offer_always},
    {"DSN", SMTP_EXT_DSN, offer_always},
};

/* ---- commands ---- */

#define ST(x) (1u << SMTPD_STATE_##x)
#define ST_SESSION (ST(CONNECTED) | ST(HELO) | ST(MAIL) | ST(RCPT) | ST(BDAT_MORE))

struct smtpd_cmd {
    enum smtp_verb verb;
    unsigned states;       /* where the command is legal */
    const char *bad_state; /* 503 text otherwise */
    /* Extra legality check beyond the state; 0 to go on, -1 after replying. */
    int (*check)(struct smtpd_session *s, const char *args, size_t len);
    /* Does it; 0 when it succeeded (for the disconnect statistics), -1 otherwise. */
    int (*proceed)(struct smtpd_session *s, const char *args, size_t len);
};

int smtpd_check_no_args(struct smtpd_session *s, const char *args, size_t len)
{
    if (len) {
        smtpd_reply(s, 501, "5.5.4", "Syntax error: no arguments allowed");
        return -1;
    }
    return 0;
}

static int helo_common(struct smtpd_session *s, const char *args, size_t len, int esmtp)
{
    struct smtp_reply r;
    if (smtp_helo_check(args, len, &r) < 0) {
        smtpd_reply(s, r.code, r.status, "Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return -1;
    }
    free(s->helo);
    /* It goes into Received:, Authentication-Results and the log: only text, as Postfix. */
    s->helo = smtp_printable(xstrndup(args, len), '?');
    s->esmtp = esmtp;
    if (smtpd_restrict_at(s, RESTRICT_HELO, NULL) < 0) {
        free(s->helo);
        s->helo = NULL;
        return -1;
    }
    /* RFC 5321 4.1.4: EHLO/HELO in a transaction resets it. */
    smtpd_tx_free(s);
    smtpd_session_enter(s, SMTPD_STATE_HELO);
    return 0;
}

static int cmd_helo(struct smtpd_session *s, const char *args, size_t len)
{
    if (helo_common(s, args, len, 0) < 0)
        return -1;
    if (smtpd_session_milter_gate(s, MILTER_C_HELO, s->helo, args, len, cmd_helo))
        return 0;
    s->ext = 0;
    smtpd_reply(s, 250, NULL, "%s", s->myhostname);
    return 0;
}

static int cmd_ehlo(struct smtpd_session *s, const char *args, size_t len)
{
    if (helo_common(s, args, len, 1) < 0)
        return -1;
    if (smtpd_session_milter_gate(s, MILTER_C_HELO, s->helo, args, len, cmd_ehlo))
        return 0;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evbuffer_add_printf(out, "250-%s\r\n", s->myhostname);
    s->ext = 0;
    size_t n = sizeof ehlo_exts / sizeof ehlo_exts[0], last = 0;
    for (size_t i = 0; i < n; i++)
        if (ehlo_exts[i].offer(s))
            last = i;
    for (size_t i = 0; i < n; i++) {
        if (!ehlo_exts[i].offer(s))
            continue;
        s->ext |= ehlo_exts[i].ext;
        char sep = i == last ? ' ' : '-';
        if (ehlo_exts[i].ext == SMTP_EXT_SIZE && s->max_msg)
            evbuffer_add_printf(out, "250%cSIZE %zu\r\n", sep, s->max_msg);
        else
            evbuffer_add_printf(out, "250%c%s\r\n", sep, ehlo_exts[i].keyword);
    }
    return 0;
}

static int check_mail(struct smtpd_session *s, const char *args, size_t len)
{
    /*
     * Postfix takes MAIL before HELO/EHLO unless smtpd_helo_required says
     * otherwise (RFC 5321 4.1.4 asks for EHLO first, but clients that skip
     * it exist and Postfix has always served them).
     */
    if (s->state == SMTPD_STATE_CONNECTED && config_get_bool(s->gen->cfg, "smtpd_helo_required")) {
        smtpd_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return -1;
    }
    if (s->srv->draining) {
        smtpd_reply(s, 421, "4.3.2", "%s Service shutting down, closing transmission channel",
                    s->myhostname);
        smtpd_session_close(s);
        return -1;
    }
    return smtpd_tlsauth_check_mail(s);
}

static int cmd_mail(struct smtpd_session *s, const char *args, size_t len)
{
    struct smtp_mail m;
    struct smtp_reply r;
    /* A logged-in user's bare "user" is completed with myorigin (RFC 6409 8.1). */
    unsigned ext = s->ext | (s->authenticated ? SMTP_EXT_UNQUALIFIED_SENDER : 0);
    if (smtp_mail_parse(args, len, ext, s->max_msg, &m, &r) < 0) {
        smtpd_reply_r(s, &r);
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_MAIL))
        return -1;
    /*
     * Refuse early, as Postfix does, rather than after the client sent a
     * whole body we would have no room for: a SIZE= declared, plus
     * queue_minfree, must fit in the free space (cached, see spool.h).
     */
    long long free_bytes = spool_free_space(s->srv->spool);
    if (free_bytes >= 0 &&
        (unsigned long long)free_bytes < m.size + (unsigned long long)s->queue_minfree) {
        log_warning("NOQUEUE: reject: MAIL from %s[%s]: 452 4.3.1 Insufficient system storage; "
                    "%lld bytes free in the queue file system, %lld needed",
                    s->host, s->addr, free_bytes, (long long)m.size + s->queue_minfree);
        smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
        return -1;
    }
    char *sender = (m.from.flags & SMTP_ADDR_NO_DOMAIN)
                       ? xasprintf("%.*s@%s", (int)m.from.len, m.from.addr,
                                   config_get(s->gen->cfg, "myorigin"))
                       : xstrndup(m.from.addr, m.from.len);
    if (smtpd_tlsauth_check_sender(s, sender, strlen(sender)) < 0) {
        free(sender);
        return -1;
    }
    if (smtpd_session_milter_gate(s, MILTER_C_MAIL, sender, args, len, cmd_mail)) {
        free(sender);
        return 0;
    }
    struct smtpd_tx *tx = xcalloc(1, sizeof *tx);
    tx->sender = sender;
    tx->envid = m.envid[0] ? xstrdup(m.envid) : NULL;
    tx->ret = m.ret;
    tx->smtputf8 = m.smtputf8;
    tx->body_8bit = m.body == SMTP_BODY_8BITMIME;
    smtpd_hold_init(&tx->hold, &s->srv->hold_budget, spool_incoming_dir(s->srv->spool));
    static unsigned long long transactions;
    tx->instance = ++transactions;
    s->tx = tx;
    if (smtpd_restrict_at(s, RESTRICT_MAIL, NULL) < 0) {
        smtpd_tx_free(s);
        return -1;
    }
    smtpd_session_enter(s, SMTPD_STATE_MAIL);
    smtpd_reply(s, 250, "2.1.0", "Ok");
    return 0;
}

/* Postfix's reject line, which log tools know: NOQUEUE: reject: RCPT from ... */
static void log_reject(struct smtpd_session *s, const char *cmd, const char *rcpt, int code,
                       const char *status, const char *text)
{
    log_as("smtpd", "%s: reject: %s from %s[%s]: %d %s %s; from=<%s> to=<%s> proto=%s helo=<%s>",
           s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "NOQUEUE", cmd, s->host, s->addr, code,
           status, text, s->tx ? s->tx->sender : "", rcpt, smtpd_proto_name(s),
           s->helo ? s->helo : "");
}

/* Opens the queue file at the first accepted recipient (Postfix's smtpd_delay_open...). */
static int tx_open(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    if (tx->msg)
        return 0;
    struct buf err = BUF_INIT;
    tx->msg = spool_msg_new(s->srv->spool, &err);
    if (!tx->msg) {
        int e = errno;
        log_warning("cannot open a queue file: %s", buf_cstr(&err));
        buf_free(&err);
        smtpd_reply_write_error(s, e);
        return -1;
    }
    struct envelope *env = spool_msg_envelope(tx->msg);
    free(env->sender);
    env->sender = xstrdup(tx->sender);
    free(env->envid);
    env->envid = tx->envid ? xstrdup(tx->envid) : NULL;
    env->ret = tx->ret == 1 ? DSN_RET_FULL : tx->ret == 2 ? DSN_RET_HDRS : DSN_RET_DEFAULT;
    env->smtputf8 = tx->smtputf8;
    env->body_8bit = tx->body_8bit;
    /*
     * env->arrival is the queue id's second (spool_msg_new): time(NULL)
     * here could read the second before it (a coarser clock, at a second's
     * edge), and delay= then counted a second too many.
     */
    if (s->authenticated)
        log_as("smtpd", "%s: client=%s[%s], sasl_method=%s, sasl_username=%s",
               spool_msg_id(tx->msg), s->host, s->addr, sasl_mechanism(s->sasl), s->auth_user);
    else
        log_as("smtpd", "%s: client=%s[%s]", spool_msg_id(tx->msg), s->host, s->addr);
    return 0;
}

static void tx_add_rcpt(struct smtpd_session *s, const char *final, const char *orcpt,
                        unsigned notify)
{
    struct envelope *env = spool_msg_envelope(s->tx->msg);
    for (size_t i = 0; i < env->nrcpts; i++)
        if (strcmp(env->rcpts[i].address, final) == 0)
            return; /* an alias expanding to someone already there */
    struct envelope_rcpt *r = envelope_add_rcpt(env, final);
    r->orcpt = xstrdup(orcpt);
    r->notify = notify;
}

/*
 * A recipient as resolved: the path of RCPT TO (RFC 5321 4.5.3.1.3: 256
 * octets), or "Postmaster" alone completed with @myhostname, a local part
 * and a domain at their limits (4.5.3.1.1, 4.5.3.1.2), and the NUL.
 */
#define SMTPD_RCPT_ADDR_SIZE (SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX + 1)
/*
 * Its ORCPT (RFC 3461 4.2): as given, decoded (at most SMTP_ORCPT_MAX), or
 * "utf-8;" / "rfc822;" and the address; both fit.
 */
#define SMTPD_RCPT_ORCPT_SIZE (SMTP_ORCPT_MAX + 1)
_Static_assert(SMTPD_RCPT_ADDR_SIZE > SMTP_PATH_MAX, "a path always fits");
_Static_assert(sizeof "rfc822;" - 1 + SMTPD_RCPT_ADDR_SIZE <= SMTPD_RCPT_ORCPT_SIZE,
               "the ORCPT made from an address always fits");

/*
 * A recipient lookup that may wait on the network (a pgsql: alias or
 * mailbox table) runs on the work queue; the session reads no further
 * command until it is answered (s->rcpt_q), and a session that ends
 * meanwhile is freed when the answer comes back.
 */
struct rcpt_lookup {
    struct smtpd_session *s;
    struct resolver *res;
    char addr[SMTPD_RCPT_ADDR_SIZE];
    char orcpt[SMTPD_RCPT_ORCPT_SIZE];
    char *args; /* the command's arguments, for the milter gate */
    size_t args_len;
    unsigned notify;
    enum map_result mr;
    enum resolve_class cls;
    int milter_pass; /* the filters had agreed to this RCPT when the lookup started */
    struct resolved_list list;
    struct buf err;
};

/*
 * The RCPT reply once the recipient is resolved; 0 accepted (or waiting for
 * the milters, which run the command again: args), -1 refused.
 */
static int rcpt_finish(struct smtpd_session *s, const char *args, size_t len, const char *addr,
                       const char *orcpt, unsigned notify, enum map_result mr,
                       struct resolved_list *list, struct buf *err)
{
    struct smtpd_tx *tx = s->tx;
    if (mr != MAP_FOUND) {
        /* Not found is permanent; a table we cannot read is never a 5xx. */
        int code = mr == MAP_NOTFOUND ? 550 : 451;
        const char *st = mr == MAP_NOTFOUND ? "5.1.1" : "4.3.0";
        struct buf text = BUF_INIT;
        if (mr == MAP_NOTFOUND && list->status[0] == '5') {
            /* The resolver's own refusal: its detail code with its text (resolve.h). */
            st = list->status;
            buf_puts(&text, buf_cstr(err));
        } else if (mr == MAP_NOTFOUND) {
            buf_printf(&text,
                       "<%s>: Recipient address rejected: User unknown in local recipient table",
                       addr);
        } else {
            /* Postfix's reject_dict_retry() text, for a domain list or a recipient table. */
            buf_printf(&text, "<%s>: Temporary lookup failure", addr);
            log_warning("recipient lookup for <%s> failed: %s", addr, buf_cstr(err));
        }
        smtpd_reply(s, code, st, "%s", buf_cstr(&text));
        log_reject(s, "RCPT", addr, code, st, buf_cstr(&text));
        buf_free(&text);
        resolved_list_free(list);
        return -1;
    }
    /* The filters hear of a recipient that passed our own checks (milter gate). */
    if (smtpd_session_milter_gate(s, MILTER_C_RCPT, addr, args, len, smtpd_cmd_rcpt)) {
        resolved_list_free(list);
        return 0;
    }
    if (tx_open(s) < 0) {
        resolved_list_free(list);
        return -1;
    }
    if (list->count) {
        for (size_t i = 0; i < list->count; i++)
            tx_add_rcpt(s, list->items[i].address, orcpt, notify);
    } else {
        tx_add_rcpt(s, addr, orcpt, notify);
    }
    resolved_list_free(list);
    if (tx->nrcpt++ == 0)
        tx->first_rcpt = xstrdup(addr);
    smtpd_session_enter(s, SMTPD_STATE_RCPT);
    metrics_recipient_accepted();
    smtpd_reply(s, 250, "2.1.5", "Ok");
    return 0;
}

static void rcpt_lookup_work(void *arg)
{
    struct rcpt_lookup *q = arg;
    q->mr = resolver_lookup_rcpt(q->res, q->addr, &q->cls, &q->list, &q->err);
}

static void rcpt_lookup_done(void *arg)
{
    struct rcpt_lookup *q = arg;
    struct smtpd_session *s = q->s;
    s->rcpt_q = NULL;
    int closing = s->dead || s->state == SMTPD_STATE_QUIT;
    if (closing) {
        resolved_list_free(&q->list);
    } else {
        s->rcpt_local = q->mr != MAP_TEMPFAIL && q->cls == RESOLVE_LOCAL;
        /* Past the milter gate already (this run came from it): do not ask the filters again. */
        s->milter_pass = q->milter_pass;
        if (rcpt_finish(s, q->args, q->args_len, q->addr, q->orcpt, q->notify, q->mr, &q->list,
                        &q->err) < 0)
            s->cmd_ok[SMTP_CMD_RCPT]--; /* counted as accepted when the lookup started */
        s->milter_pass = 0;
    }
    buf_free(&q->err);
    free(q->args);
    free(q);
    if (closing)
        smtpd_session_close(s);
    else if (!s->in_run)
        smtpd_session_run(s);
}

int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args, size_t len)
{
    struct smtpd_tx *tx = s->tx;
    struct smtp_rcpt t;
    struct smtp_reply r;
    if (smtp_rcpt_parse(args, len, s->ext, tx->smtputf8, &t, &r) < 0) {
        smtpd_reply_r(s, &r);
        return -1;
    }
    if (tx->nrcpt >= s->rcpt_limit) {
        smtpd_reply(s, 452, "4.5.3", "Error: too many recipients");
        /*
         * As Postfix: the first smtpd_recipient_overshoot_limit excess
         * recipients are not errors. A client that pipelines a long list
         * expects 452s for the rest and sends them again in another
         * transaction (RFC 5321 4.5.3.1.10); counting them would close the
         * session with 421 before its DATA.
         */
        if (tx->rcpt_overshoot++ < s->rcpt_overshoot_limit)
            s->errors--;
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_RCPT))
        return -1;
    /* "Postmaster" alone (RFC 5321 4.1.1.3) is the postmaster of this host. */
    char addr[SMTPD_RCPT_ADDR_SIZE];
    int alen = (t.to.flags & SMTP_ADDR_NO_DOMAIN)
                   ? snprintf(addr, sizeof addr, "%s@%s", t.to.addr, s->myhostname)
                   : snprintf(addr, sizeof addr, "%s", t.to.addr);
    if (alen < 0 || (size_t)alen >= sizeof addr) {
        /* Not reached: loading refuses a myhostname over 255 octets (config.h); never cut. */
        log_warning("myhostname is too long to complete <%s>", t.to.addr);
        smtpd_reply(s, 451, "4.3.5", "Server configuration error");
        return -1;
    }
    struct resolver *res = s->gen->resolver;
    /* Relay control is smtpd_relay_restrictions (default: mynetworks, AUTH, else 454). */
    if (smtpd_restrict_at(s, RESTRICT_RCPT, addr) < 0)
        return -1;
    /* Cannot be cut: both forms fit SMTPD_RCPT_ORCPT_SIZE (asserted above). */
    char orcpt[SMTPD_RCPT_ORCPT_SIZE];
    if (t.orcpt[0])
        str_copy(orcpt, sizeof orcpt, t.orcpt);
    else
        snprintf(orcpt, sizeof orcpt, "%s;%s", (t.to.flags & SMTP_ADDR_UTF8) ? "utf-8" : "rfc822",
                 addr);
    struct resolved_list list = {0};
    struct buf err = BUF_INIT;
    /* Domain lists and alias or mailbox tables that may wait (pgsql:) are asked off the loop. */
    if (resolver_lookup_rcpt_may_block(res, addr)) {
        struct rcpt_lookup *q = xcalloc(1, sizeof *q);
        q->s = s;
        q->res = res; /* the session's generation holds it until the session ends */
        /* Same sizes as the locals above: nothing is cut. */
        str_copy(q->addr, sizeof q->addr, addr);
        str_copy(q->orcpt, sizeof q->orcpt, orcpt);
        q->notify = t.notify;
        q->args = xstrndup(args, len);
        q->args_len = len;
        q->milter_pass = s->milter_pass;
        buf_init(&q->err);
        s->rcpt_q = q;
        workq_submit(server_map_workq(s->srv), rcpt_lookup_work, rcpt_lookup_done, q);
        return 0;
    }
    enum resolve_class cls;
    enum map_result mr = resolver_lookup_rcpt(res, addr, &cls, &list, &err);
    s->rcpt_local = mr != MAP_TEMPFAIL && cls == RESOLVE_LOCAL;
    int rc = rcpt_finish(s, args, len, addr, orcpt, t.notify, mr, &list, &err);
    buf_free(&err);
    return rc;
}

static int cmd_rset(struct smtpd_session *s, const char *args, size_t len)
{
    smtpd_tx_reset(s);
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

static int cmd_noop(struct smtpd_session *s, const char *args, size_t len)
{
    smtpd_reply(s, 250, "2.0.0", "Ok");
    return 0;
}

static int cmd_quit(struct smtpd_session *s, const char *args, size_t len)
{
    smtpd_reply(s, 221, "2.0.0", "Bye");
    s->quit_asked = 1;
    smtpd_session_close(s);
    return 0;
}

static int cmd_vrfy(struct smtpd_session *s, const char *args, size_t len)
{
    if (len == 0) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return -1;
    }
    /* RFC 5321 3.5.3: 252 without confirming anything (no address harvesting). */
    smtpd_reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
    return 0;
}

static int cmd_help(struct smtpd_session *s, const char *args, size_t len)
{
    smtpd_reply(s, 214, "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; see RFC 5321");
    return 0;
}

static int cmd_not_implemented(struct smtpd_session *s, const char *args, size_t len)
{
    smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
    return -1;
}

/*
 * The command table. STARTTLS (RFC 3207) and AUTH (RFC 4954) replace their
 * cmd_not_implemented rows; STARTTLS's proceed must drain the input buffer
 * (evbuffer_drain of everything read so far) before the handshake.
 */
static const struct smtpd_cmd smtpd_cmds[] = {
    {SMTP_CMD_HELO, ST_SESSION, NULL, NULL, cmd_helo},
    {SMTP_CMD_EHLO, ST_SESSION, NULL, NULL, cmd_ehlo},
    {SMTP_CMD_MAIL, ST(CONNECTED) | ST(HELO), NULL, check_mail, cmd_mail},
    {SMTP_CMD_RCPT, ST(MAIL) | ST(RCPT), "Error: need MAIL command", NULL, smtpd_cmd_rcpt},
    {SMTP_CMD_DATA, ST(MAIL) | ST(RCPT), "Error: need RCPT command", smtpd_check_data,
     smtpd_cmd_data},
    {SMTP_CMD_BDAT, ~0u, NULL, NULL, smtpd_cmd_bdat},
    {SMTP_CMD_RSET, ST_SESSION, NULL, smtpd_check_no_args, cmd_rset},
    {SMTP_CMD_NOOP, ST_SESSION, NULL, NULL, cmd_noop},
    {SMTP_CMD_QUIT, ST_SESSION, NULL, NULL, cmd_quit},
    {SMTP_CMD_VRFY, ST_SESSION, NULL, NULL, cmd_vrfy},
    {SMTP_CMD_EXPN, ST_SESSION, NULL, NULL, cmd_not_implemented},
    {SMTP_CMD_HELP, ST_SESSION, NULL, NULL, cmd_help},
    {SMTP_CMD_STARTTLS, ST(CONNECTED) | ST(HELO), "Error: MAIL transaction in progress",
     smtpd_check_no_args, smtpd_cmd_starttls},
    {SMTP_CMD_AUTH, ST(HELO), "Error: send EHLO first, and not in a mail transaction", NULL,
     smtpd_cmd_auth},
};

static const char *bad_sequence_text(const struct smtpd_session *s, const struct smtpd_cmd *c)
{
    if (s->state == SMTPD_STATE_BDAT_MORE)
        return "Error: BDAT transaction in progress (RFC 3030)";
    if (c->verb == SMTP_CMD_MAIL && s->state != SMTPD_STATE_CONNECTED)
        return "Error: nested MAIL command";
    return c->bad_state ? c->bad_state : "Error: bad sequence of commands";
}

void smtpd_dispatch(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtp_command cmd;
    struct smtp_reply r;
    if (smtp_command_parse(line, len, &cmd, &r) < 0) {
        s->unknown_cmds++;
        s->last_cmd = "UNKNOWN";
        smtpd_reply_r(s, &r);
        return;
    }
    s->last_cmd = cmd.name;
    if (s->access_denied && cmd.verb != SMTP_CMD_QUIT) {
        s->cmd_total[cmd.verb]++;
        smtpd_reply(s, 503, "5.7.0", "Error: access denied for %s[%s]", s->host, s->addr);
        return;
    }
    for (size_t i = 0; i < sizeof smtpd_cmds / sizeof smtpd_cmds[0]; i++) {
        const struct smtpd_cmd *c = &smtpd_cmds[i];
        if (c->verb != cmd.verb)
            continue;
        s->cmd_total[cmd.verb]++;
        if (!(c->states & (1u << s->state))) {
            smtpd_reply(s, 503, "5.5.1", "%s", bad_sequence_text(s, c));
            return;
        }
        if (c->check && c->check(s, cmd.args, cmd.args_len) < 0) {
            if (s->restrict_wait) {
                s->cmd_total[cmd.verb]--;
                s->replay = xstrndup(line, len);
            }
            return;
        }
        if (c->proceed(s, cmd.args, cmd.args_len) == 0)
            s->cmd_ok[cmd.verb]++;
        if (s->restrict_wait) {
            /* Waiting for a list or policy server: the same line runs again after. */
            s->cmd_total[cmd.verb]--;
            s->replay = xstrndup(line, len);
        }
        return;
    }
    smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
}
