/*
 * The SMTP server session: one per client connection, on the worker's event
 * loop. Reads command lines (capped), runs them through the command table,
 * streams DATA/BDAT into the spool through the data reader, and answers 250
 * only once the spool says the message is durable.
 */
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

_Static_assert((int)SMTP_NOTIFY_NEVER == (int)DSN_NOTIFY_NEVER &&
                   (int)SMTP_NOTIFY_SUCCESS == (int)DSN_NOTIFY_SUCCESS &&
                   (int)SMTP_NOTIFY_FAILURE == (int)DSN_NOTIFY_FAILURE &&
                   (int)SMTP_NOTIFY_DELAY == (int)DSN_NOTIFY_DELAY,
               "NOTIFY bits must match the envelope's");

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
    /* STARTTLS and AUTH (the tlsauth section below) */
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
    int eof;       /* the client has shut down its side */
    int lingering; /* our side is shut down; reading until the client's */
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
    /* Postfix's restriction lists (smtpd/restrict.h; the hooks are in the restrict section) */
    struct restrict_session *rs;
    int restrict_wait;   /* a check waits for DNS or a policy server */
    char *replay;        /* the command line to run again once it has answered */
    int ill_pipelining;  /* reject_unauth_pipelining: input came before it was allowed */
    int greet_logged;    /* "connect from" is out (the greeting may wait for a check) */
    char *access_denied; /* smtpd_delay_reject = no: the client's refusal, for every command */
    int replaying;       /* dispatching s->replay: its rate-limit events were counted already */
    /* smtpd_milters: the section "milters" below */
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

static const char *state_names[SMTPD_STATE_COUNT] = {
    "CONNECTED", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "BDAT_MORE", "COMMIT", "QUIT",
};

const char *smtpd_state_name(enum smtpd_state st)
{
    return st < SMTPD_STATE_COUNT ? state_names[st] : "?";
}

static void smtpd_session_run(struct smtpd_session *s);
static void smtpd_session_close(struct smtpd_session *s);

/* Tells the queue manager a message is in the queue (server/server.h, "queued"). */
static void smtpd_session_queued(struct smtpd_session *s, const char *queue_id)
{
    if (s->srv->queued)
        s->srv->queued(s->srv->qmgr, queue_id);
}
static void session_linger(struct smtpd_session *s);
static void on_life_timeout(evutil_socket_t fd, short what, void *arg);
static void smtpd_session_milter_tx_end(struct smtpd_session *s);
static int smtpd_session_milter_gate(struct smtpd_session *s, char ev, const char *addr,
                                     const char *args, size_t len,
                                     int (*redo)(struct smtpd_session *, const char *, size_t));
static void smtpd_session_milter_content(struct smtpd_session *s, const char *msg, size_t len);
static void smtpd_session_on_read(struct bufferevent *bev, void *arg);
static void smtpd_session_on_write(struct bufferevent *bev, void *arg);
static void smtpd_session_on_event(struct bufferevent *bev, short what, void *arg);

/* Every state change goes through here (OpenSMTPD's smtp_enter_state). */
static void smtpd_session_enter(struct smtpd_session *s, enum smtpd_state st)
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

static void smtpd_reply(struct smtpd_session *s, int code, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void smtpd_reply(struct smtpd_session *s, int code, const char *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_raw(s, code, status, fmt, ap);
    va_end(ap);
}

static void smtpd_reply_r(struct smtpd_session *s, const struct smtp_reply *r)
{
    smtpd_reply(s, r->code, r->status, "%s", r->text);
}

/* ---- transaction ---- */

static void smtpd_tx_free(struct smtpd_session *s)
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
static void smtpd_tx_reset(struct smtpd_session *s)
{
    smtpd_tx_free(s);
    if (s->state != SMTPD_STATE_QUIT)
        smtpd_session_enter(s, s->helo ? SMTPD_STATE_HELO : SMTPD_STATE_CONNECTED);
}

static const char *smtpd_proto_name(const struct smtpd_session *s)
{
    return s->esmtp ? "ESMTP" : "SMTP";
}

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

/* STARTTLS and AUTH: the tlsauth section below the commands. */
static int smtpd_offer_starttls(const struct smtpd_session *s);
static int smtpd_offer_auth(const struct smtpd_session *s);
static int smtpd_tlsauth_check_mail(struct smtpd_session *s);
static int smtpd_tlsauth_check_sender(struct smtpd_session *s, const char *addr, size_t len);
static void smtpd_tlsauth_received(struct smtpd_session *s, struct buf *h);
/* The restriction lists at each check point: 0 to go on, -1 after replying (or while waiting). */
static int smtpd_restrict_at(struct smtpd_session *s, enum restrict_point point, const char *rcpt);
/* anvil rate limits (smtpd/anvil.h): 1 after refusing with Postfix's reply. */
static int smtpd_rate_limited(struct smtpd_session *s, enum anvil_event ev);

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

static int smtpd_check_no_args(struct smtpd_session *s, const char *args, size_t len)
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
        if (e == ENOSPC || e == EDQUOT)
            smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
        else
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
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
    env->arrival = time(NULL);
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

static int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args, size_t len);

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

static int smtpd_cmd_rcpt(struct smtpd_session *s, const char *args, size_t len)
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

static int smtpd_check_data(struct smtpd_session *s, const char *args, size_t len)
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
    buf_printf(&h, "Received: from %s (%s [%s])", s->helo, s->host, s->addr);
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
        int e = errno;
        if (e == ENOSPC || e == EDQUOT)
            smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
        else
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
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

static int smtpd_cmd_data(struct smtpd_session *s, const char *args, size_t len)
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
static int smtpd_restrict_tx_effects(struct smtpd_session *s);
static void smtpd_message_checked(struct smtpd_session *s);
static void sign_done(void *arg, struct spool_msg *m, int err_code);
static void smtpd_message_commit(struct smtpd_session *s);
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
    if (s->dead) {
        s->commit_pending = 0;
        smtpd_session_close(s);
        return;
    }
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
        int e = errno;
        if (e == ENOSPC || e == EDQUOT)
            smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
        else
            smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
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
static void smtpd_message_end(struct smtpd_session *s)
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
static void smtpd_message_checked(struct smtpd_session *s)
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
static void smtpd_message_commit(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    if (smtpd_restrict_tx_effects(s) > 0)
        return; /* DISCARD: answered as accepted, nothing queued */
    struct spool_msg *m = tx->msg;
    tx->msg = NULL; /* the spool owns it now */
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
     */
    if (s->authenticated || s->trusted_net)
        dkim_spool_sign(s->srv->workq, s->gen->dkim, config_get(s->gen->cfg, "myhostname"), m,
                        sign_done, s);
    else
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
    /* HOLD (access table or policy): parked in hold/ until the queue command releases it. */
    int held = 0;
    if (result == 0 && restrict_effects(s->rs)->hold) {
        held = spool_hold(s->srv->spool, queue_id) == 0;
        if (!held)
            log_warning("%s: cannot move to hold: %s; delivering it", queue_id, strerror(errno));
    }
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
static int smtpd_cmd_bdat(struct smtpd_session *s, const char *args, size_t len)
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
static void smtpd_bdat_chunk_end(struct smtpd_session *s)
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

/* ---- STARTTLS (RFC 3207) and AUTH (RFC 4954): the rules live in smtpd/submission.c ---- */

/* A whole reply line from the submission/SASL/auth modules ("535 5.7.8 text"). */
static void smtpd_reply_line(struct smtpd_session *s, const char *line)
{
    evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
    if (line[0] >= '4')
        s->errors++;
}

static int smtpd_offer_starttls(const struct smtpd_session *s)
{
    return submission_starttls_offered(s->gen->cfg, s->kind, s->gen->tls != NULL, s->tls);
}

static int smtpd_offer_auth(const struct smtpd_session *s)
{
    auth_refresh(s->srv->auth);
    return submission_auth_offered(s->gen->cfg, s->kind, s->srv->auth, s->tls) && !s->authenticated;
}

static int smtpd_tlsauth_check_mail(struct smtpd_session *s)
{
    if (!s->tls && submission_tls_required(s->gen->cfg, s->kind)) {
        smtpd_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return -1;
    }
    /* RFC 6409 section 4.3: submission needs a login. */
    if (!s->authenticated && submission_auth_required(s->kind)) {
        smtpd_reply(s, 530, "5.7.0", "Authentication required");
        return -1;
    }
    return 0;
}

static int smtpd_tlsauth_check_sender(struct smtpd_session *s, const char *addr, size_t len)
{
    if (!s->authenticated)
        return 0;
    char *sender = xstrndup(addr, len);
    struct restrict_reply r;
    /* A pgsql: login map is asked on the work queue: the MAIL command runs again after. */
    enum restrict_status st = restrict_sender_login(s->rs, sender, s->auth_user, &r);
    if (st == RESTRICT_PENDING)
        s->restrict_wait = 1;
    if (st == RESTRICT_REFUSE) {
        smtpd_reply(s, r.code, r.dsn, "%s", r.text);
        log_as("smtpd", "NOQUEUE: reject: MAIL from %s[%s]: %d %s %s; from=<%s> proto=%s helo=<%s>",
               s->host, s->addr, r.code, r.dsn, r.text, sender, smtpd_proto_name(s),
               s->helo ? s->helo : "");
    }
    free(sender);
    return st == RESTRICT_PASS ? 0 : -1;
}

static void smtpd_tlsauth_received(struct smtpd_session *s, struct buf *h)
{
    struct buf c = BUF_INIT;
    submission_received_comment(s->gen->cfg, tls_bev_ssl(s->bev),
                                s->authenticated ? s->auth_user : NULL, &c);
    if (c.len)
        buf_printf(h, "\r\n\t%s", buf_cstr(&c));
    buf_free(&c);
}

/* Forgets what the client said in the clear (RFC 3207 section 4.2), AUTH included. */
static void tlsauth_forget(struct smtpd_session *s)
{
    smtpd_tx_free(s);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    s->ext = 0;
    s->authenticated = 0;
    s->auth_step = 0;
    free(s->auth_user);
    s->auth_user = NULL;
    if (s->sasl)
        sasl_reset(s->sasl);
    smtpd_session_enter(s, SMTPD_STATE_CONNECTED);
}

static int smtpd_cmd_starttls(struct smtpd_session *s, const char *args, size_t len)
{
    if (s->tls) {
        smtpd_reply(s, 554, "5.5.1", "Error: TLS already active");
        return -1;
    }
    if (!smtpd_offer_starttls(s)) {
        smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_NEWTLS))
        return -1;
    smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
    /*
     * CVE-2011-0411: what was pipelined behind STARTTLS came in the clear
     * and is dropped, and nothing more is read until TLS is up; the
     * handshake starts in smtpd_session_on_write once the 220 has been written.
     */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_disable(s->bev, EV_READ);
    s->starttls_wait = 1;
    return 0;
}

static void smtpd_tlsauth_starttls_go(struct smtpd_session *s)
{
    s->starttls_wait = 0;
    if (tls_server_starttls(s->gen->tls, &s->bev) < 0) {
        log_warning("cannot start TLS for %s[%s]: out of resources", s->host, s->addr);
        s->dead = 1;
        smtpd_session_close(s);
        return;
    }
    s->tls = 1;
    bufferevent_setcb(s->bev, smtpd_session_on_read, smtpd_session_on_write, smtpd_session_on_event,
                      s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    long long idle = config_get_time(s->gen->cfg, "smtpd_timeout");
    if (idle > 0) {
        struct timeval tv = {(time_t)idle, 0};
        bufferevent_set_timeouts(s->bev, &tv, &tv);
    }
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    tlsauth_forget(s);
}

static void smtpd_tlsauth_handshake_done(struct smtpd_session *s)
{
    s->tls_up = 1;
    SSL *ssl = tls_bev_ssl(s->bev);
    struct buf d = BUF_INIT;
    tls_describe(ssl, &d);
    const char *sni = tls_sni_name(ssl);
    /* Postfix's line, which log tools know; the SNI name when the client sent one. */
    log_info("Anonymous TLS connection established from %s[%s]: %s%s%.255s", s->host, s->addr,
             buf_cstr(&d), sni ? " sni=" : "", sni ? sni : "");
    buf_free(&d);
    metrics_tls_handshake(METRICS_IN, SSL_get_version(ssl));
}

static void smtpd_tlsauth_handshake_failed(struct smtpd_session *s)
{
    unsigned long e = bufferevent_get_openssl_error(s->bev);
    char why[256] = "connection closed";
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    log_info("SSL_accept error from %s[%s]: %s", s->host, s->addr, why);
}

static void tlsauth_auth_done(void *arg, enum auth_result r)
{
    struct smtpd_session *s = arg;
    s->auth_q = NULL;
    const char *mech = sasl_mechanism(s->sasl);
    char client[INET6_ADDRSTRLEN + 64];
    snprintf(client, sizeof client, "%s[%s]", s->host, s->addr);
    metrics_auth(r == AUTH_OK);
    if (r == AUTH_OK) {
        s->authenticated = 1;
        /* The password is gone; keep the mechanism for the log (sasl_method=). */
        log_debug("%s: SASL %s login as %s", client, mech, s->auth_user);
    } else {
        auth_log_failure(client, mech, s->auth_user, r);
        free(s->auth_user);
        s->auth_user = NULL;
    }
    smtpd_reply_line(s, auth_result_reply(r));
    if (r == AUTH_REFUSED) {
        smtpd_session_close(s);
        return;
    }
    if (!s->in_run)
        smtpd_session_run(s);
}

/* The SASL machine answered: challenge, check, or an error. */
static void tlsauth_sasl_status(struct smtpd_session *s, enum sasl_status st)
{
    switch (st) {
    case SASL_CHALLENGE:
        s->auth_step = 1;
        evbuffer_add_printf(bufferevent_get_output(s->bev), "334 %s\r\n", sasl_challenge(s->sasl));
        return;
    case SASL_CHECK:
        s->auth_step = 0;
        free(s->auth_user);
        s->auth_user = xstrdup(sasl_user(s->sasl));
        s->auth_q = auth_check(s->srv->auth, s->auth_user, sasl_password(s->sasl), s->addr,
                               tlsauth_auth_done, s);
        /* auth_check copied the password: wipe ours now, keep the mechanism name. */
        explicit_bzero((char *)sasl_password(s->sasl), strlen(sasl_password(s->sasl)));
        return;
    case SASL_ERR_AUTHZ: {
        char client[INET6_ADDRSTRLEN + 64];
        snprintf(client, sizeof client, "%s[%s]", s->host, s->addr);
        auth_log_failure(client, sasl_mechanism(s->sasl), "", AUTH_FAIL);
        break;
    }
    case SASL_ERR_MECH:
    case SASL_ERR_SYNTAX:
    case SASL_ABORTED:
        break;
    }
    s->auth_step = 0;
    smtpd_reply_line(s, sasl_status_reply(st));
}

static int smtpd_cmd_auth(struct smtpd_session *s, const char *args, size_t len)
{
    const char *no =
        submission_auth_refusal(s->gen->cfg, s->kind, s->srv->auth, s->tls, s->authenticated);
    if (no) {
        smtpd_reply_line(s, no);
        return -1;
    }
    if (smtpd_rate_limited(s, ANVIL_AUTH))
        return -1;
    /* AUTH mechanism [initial-response] (RFC 4954 section 4). */
    char mech[32], *initial = NULL;
    const char *sp = memchr(args, ' ', len);
    size_t mlen = sp ? (size_t)(sp - args) : len;
    if (mlen == 0 || mlen >= sizeof mech) {
        smtpd_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return -1;
    }
    memcpy(mech, args, mlen);
    mech[mlen] = '\0';
    if (sp) {
        size_t ilen = len - mlen - 1;
        initial = xstrndup(sp + 1, ilen);
    }
    if (!s->sasl)
        s->sasl = sasl_new();
    tlsauth_sasl_status(s, sasl_start(s->sasl, mech, initial));
    if (initial) {
        explicit_bzero(initial, strlen(initial));
        free(initial);
    }
    return s->auth_step || s->auth_q ? 0 : -1;
}

static void smtpd_tlsauth_sasl_line(struct smtpd_session *s, const char *line, size_t len)
{
    tlsauth_sasl_status(s, sasl_step(s->sasl, line, len));
}

/* ---- restrictions (Postfix's smtpd_*_restrictions: smtpd/restrict.h) ---- */

static void smtpd_restrict_log(void *arg, const struct restrict_facts *f, const char *whatsup,
                               const char *text)
{
    struct smtpd_session *s = arg;
    struct buf tail = BUF_INIT;
    if (f->sender)
        buf_printf(&tail, " from=<%s>", f->sender);
    if (f->recipient)
        buf_printf(&tail, " to=<%s>", f->recipient);
    /* Postfix's line, which log tools know: "NOQUEUE: reject: RCPT from host[addr]: ...". */
    log_as("smtpd", "%s: %s: %s from %s[%s]: %s;%s proto=%s helo=<%s>",
           s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "NOQUEUE", whatsup,
           s->last_cmd ? s->last_cmd : "CONNECT", s->host, s->addr, text, buf_cstr(&tail),
           smtpd_proto_name(s), s->helo ? s->helo : "");
    buf_free(&tail);
}

static void smtpd_session_greet(struct smtpd_session *s);

/* A DNS list, policy server or table answered: the command that waited runs again. */
static void smtpd_restrict_resume(void *arg)
{
    struct smtpd_session *s = arg;
    int waited = s->restrict_wait;
    s->restrict_wait = 0;
    if (s->dead) {
        smtpd_session_close(s);
        return;
    }
    if (!waited)
        return; /* a table lookup the check gave up waiting for (restrict_lookup_abandon) */
    if (!s->greeted) {
        smtpd_session_greet(s);
    } else if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT) {
        smtpd_message_checked(s);
        if (!s->restrict_wait && !s->in_run)
            smtpd_session_run(s);
    } else if (!s->in_run) {
        smtpd_session_run(s);
    }
}

static int smtpd_restrict_at(struct smtpd_session *s, enum restrict_point point, const char *rcpt)
{
    struct smtpd_tx *tx = s->tx;
    char instance[64];
    snprintf(instance, sizeof instance, "%lx.%llx", (unsigned long)getpid(),
             tx ? tx->instance : 0ULL);
    struct restrict_facts f = {
        .sa = (const struct sockaddr *)&s->peer,
        .addr = s->addr,
        .host = s->host,
        .reverse = s->host_name ? s->host_name : s->ptr_name,
        .helo = s->helo,
        .sender = tx ? tx->sender : NULL,
        .recipient = rcpt,
        .sasl_user = s->authenticated ? s->auth_user : NULL,
        .sasl_method = s->sasl ? sasl_mechanism(s->sasl) : "",
        .proto = smtpd_proto_name(s),
        .queue_id = tx && tx->msg ? spool_msg_id(tx->msg) : "",
        .mynetworks = s->trusted_net,
        .tls = s->tls,
        .ill_pipelining = s->ill_pipelining,
        .smtputf8 = tx ? tx->smtputf8 : 0,
        .rcpt_count = tx ? tx->nrcpt : 0,
        .size = tx && tx->msg ? spool_msg_size(tx->msg) : 0,
        .instance = instance,
    };
    SSL *ssl = s->tls_up ? tls_bev_ssl(s->bev) : NULL;
    if (ssl) {
        f.tls_protocol = SSL_get_version(ssl);
        f.tls_cipher = SSL_get_cipher_name(ssl);
        f.tls_bits = SSL_get_cipher_bits(ssl, NULL);
    }
    if (s->peer.ss_family == AF_INET)
        f.client_port = ntohs(((const struct sockaddr_in *)&s->peer)->sin_port);
    else if (s->peer.ss_family == AF_INET6)
        f.client_port = ntohs(((const struct sockaddr_in6 *)&s->peer)->sin6_port);
    struct restrict_reply r;
    switch (restrict_check(s->rs, point, &f, &r)) {
    case RESTRICT_PASS:
        return 0;
    case RESTRICT_PENDING:
        s->restrict_wait = 1;
        return -1;
    case RESTRICT_REFUSE:
        break;
    }
    if (point == RESTRICT_CONNECT) {
        /* smtpd_delay_reject = no: the refusal greets, and answers every command after. */
        s->access_denied = xasprintf("%d %s %s", r.code, r.dsn, r.text);
        return -1;
    }
    smtpd_reply(s, r.code, r.dsn, "%s", r.text);
    /* As Postfix: a 421 or 521 (from an access table or policy server) ends the session. */
    if (r.code == 421 || r.code == 521)
        smtpd_session_close(s);
    return -1;
}

static int smtpd_rate_limited(struct smtpd_session *s, enum anvil_event ev)
{
    struct buf r = BUF_INIT;
    int over = !s->replaying && anvil_session_event(s->gen->cfg, (const struct sockaddr *)&s->peer,
                                                    ev, s->host, s->addr, &r);
    if (over)
        smtpd_reply_line(s, buf_cstr(&r));
    buf_free(&r);
    return over;
}

/*
 * DISCARD and REDIRECT, applied as the message is handed to the spool.
 * 1 when the message was discarded (answered as queued, as Postfix does).
 */
static int smtpd_restrict_tx_effects(struct smtpd_session *s)
{
    const struct restrict_effects *fx = restrict_effects(s->rs);
    struct smtpd_tx *tx = s->tx;
    if (fx->discard) {
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", spool_msg_id(tx->msg));
        s->commit_pending = 0; /* set when the inbound checks ran first */
        smtpd_tx_reset(s);     /* aborts the queue file */
        if (!s->in_run)
            smtpd_session_run(s);
        return 1;
    }
    if (fx->redirect) {
        struct envelope *env = spool_msg_envelope(tx->msg);
        for (size_t i = 1; i < env->nrcpts; i++) {
            free(env->rcpts[i].address);
            free(env->rcpts[i].orcpt);
        }
        env->nrcpts = env->nrcpts ? 1 : 0;
        if (env->nrcpts) {
            free(env->rcpts[0].address);
            env->rcpts[0].address = xstrdup(fx->redirect);
        }
    }
    return 0;
}

/*
 * The command table. STARTTLS (RFC 3207) and AUTH (RFC 4954) replace their
 * cmd_not_implemented rows; STARTTLS's proceed must drain the input buffer
 * (evbuffer_drain of everything read so far) before the handshake.
 */
static const struct smtpd_cmd smtpd_cmds[] = {
    {SMTP_CMD_HELO, ST_SESSION, NULL, NULL, cmd_helo},
    {SMTP_CMD_EHLO, ST_SESSION, NULL, NULL, cmd_ehlo},
    {SMTP_CMD_MAIL, ST(HELO), "Error: send HELO/EHLO first", check_mail, cmd_mail},
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

static void smtpd_dispatch(struct smtpd_session *s, const char *line, size_t len)
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
static void smtpd_session_run(struct smtpd_session *s)
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

/* ---- milters (smtpd_milters: milter/milter.h, smtpd/smtpd_milter.h) ---- */

/* One connection per filter for the session, opened at the connect event. */
static void smtpd_session_milter_start(struct smtpd_session *s, int fd)
{
    const struct milter_conf *mc = s->gen->smtpd_milters;
    if (!mc || mc->count == 0)
        return;
    smtpd_milter_info_init(&s->minfo, s->gen->cfg, s->addr, &s->peer, fd);
    s->milter = milter_session_new(s->srv->base, mc, smtpd_milter_macro, &s->minfo);
}

/* The macros' values as the session stands now. */
static void session_milter_info(struct smtpd_session *s)
{
    struct smtpd_milter_info *in = &s->minfo;
    in->client_name = s->host;
    in->client_ptr = s->host_name ? s->host_name : s->ptr_name ? s->ptr_name : "unknown";
    in->helo = s->helo;
    in->queue_id = s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : NULL;
    in->auth_type = s->authenticated ? sasl_mechanism(s->sasl) : NULL;
    in->auth_authen = s->authenticated ? s->auth_user : NULL;
    in->mail_addr = s->tx ? s->tx->sender : NULL;
    in->rcpt_addr = in->rcpt_mailer = in->rcpt_host = NULL;
    SSL *ssl = s->tls_up ? tls_bev_ssl(s->bev) : NULL;
    in->tls_version = ssl ? SSL_get_version(ssl) : NULL;
    in->cipher = ssl ? SSL_get_cipher_name(ssl) : NULL;
    in->cipher_bits = ssl ? SSL_get_cipher_bits(ssl, NULL) : 0;
}

/* Postfix's line: "QUEUEID: milter-reject: MAIL from host[addr]: 550 ...; from=<...> ..." */
static void session_milter_log(struct smtpd_session *s, const char *action, const char *where,
                               const char *text)
{
    const char *from = s->tx                           ? s->tx->sender
                       : s->milter_ev == MILTER_C_MAIL ? s->milter_addr
                                                       : NULL;
    const char *to = s->milter_ev == MILTER_C_RCPT ? s->milter_addr : NULL;
    smtpd_milter_log(s->tx && s->tx->msg ? spool_msg_id(s->tx->msg) : "NOQUEUE", action, where,
                     s->host, s->addr, text, from, to, smtpd_proto_name(s), s->helo);
}

static void session_milter_hold(struct smtpd_session *s, const struct milter_result *res,
                                const char *where)
{
    if (!res->hold || s->milter_hold)
        return;
    s->milter_hold = 1;
    free(s->milter_hold_reason);
    s->milter_hold_reason = xstrdup(res->hold_reason);
    session_milter_log(s, "milter-hold", where, res->hold_reason);
}

/* The transaction is over: the filters forget it, and so do we. */
static void smtpd_session_milter_tx_end(struct smtpd_session *s)
{
    milter_abort(s->milter);
    s->milter_hold = 0;
    s->milter_discard = 0;
}

static void session_milter_gate_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    char ev = s->milter_ev;
    s->milter_wait = 0;
    session_milter_hold(s, res, smtpd_milter_where(ev));
    int shutdown = res->verdict == MILTER_SHUTDOWN ||
                   (res->verdict == MILTER_REJECT && strncmp(res->reply, "421", 3) == 0);
    if (shutdown) {
        const char *r =
            res->verdict == MILTER_SHUTDOWN ? "421 4.7.0 Server closing connection" : res->reply;
        session_milter_log(s, "milter-reject", smtpd_milter_where(ev), r);
        smtpd_reply_line(s, r);
        smtpd_session_close(s);
    } else if (res->verdict == MILTER_REJECT && ev != MILTER_C_HELO) {
        /* (Sendmail compatibility: a rejected HELO still gets its 250; MAIL meets the reply.) */
        session_milter_log(s, "milter-reject", smtpd_milter_where(ev), res->reply);
        smtpd_reply_line(s, res->reply);
        if (ev == MILTER_C_MAIL)
            milter_abort(s->milter);
    } else {
        if (res->verdict == MILTER_DISCARD && !s->milter_discard) {
            s->milter_discard = 1;
            session_milter_log(s, "milter-discard", smtpd_milter_where(ev),
                               "milter triggers DISCARD action");
        }
        s->milter_pass = 1;
        s->milter_redo(s, s->milter_args, s->milter_args_len);
        s->milter_pass = 0;
    }
    if (!s->in_run)
        smtpd_session_run(s);
}

/*
 * A command's milter event, once its own checks have passed (Postfix's
 * order). 1: the command waits; it runs again, whole, when the filters
 * agree, and then gets past this point (milter_pass).
 */
static int smtpd_session_milter_gate(struct smtpd_session *s, char ev, const char *addr,
                                     const char *args, size_t len,
                                     int (*redo)(struct smtpd_session *, const char *, size_t))
{
    if (!s->milter || s->milter_discard)
        return 0;
    if (s->milter_pass) {
        s->milter_pass = 0;
        return 0;
    }
    free(s->milter_args);
    s->milter_args = xstrndup(args, len);
    s->milter_args_len = len;
    s->milter_redo = redo;
    s->milter_ev = ev;
    free(s->milter_addr);
    s->milter_addr = addr ? xstrdup(addr) : NULL;
    s->milter_wait = 1;
    session_milter_info(s);
    if (ev == MILTER_C_HELO) {
        milter_helo(s->milter, addr, session_milter_gate_done, s);
    } else if (ev == MILTER_C_MAIL || ev == MILTER_C_RCPT) {
        char **argv = smtpd_milter_argv(addr, args, len);
        if (ev == MILTER_C_MAIL) {
            s->minfo.mail_addr = s->milter_addr;
            milter_mail(s->milter, (const char *const *)argv, session_milter_gate_done, s);
        } else {
            s->minfo.rcpt_addr = s->milter_addr;
            int local = s->rcpt_local; /* classified by smtpd_cmd_rcpt, maybe off the loop */
            const char *at = strrchr(addr, '@');
            s->minfo.rcpt_mailer = local ? "local" : "smtp";
            s->minfo.rcpt_host = local ? s->myhostname : at ? at + 1 : NULL;
            milter_rcpt(s->milter, (const char *const *)argv, session_milter_gate_done, s);
        }
        strlist_free(argv);
    } else {
        milter_data(s->milter, session_milter_gate_done, s);
    }
    return 1;
}

static void session_milter_greet_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    s->milter_wait = 0;
    s->milter_ev = MILTER_C_CONNECT;
    /* Postfix: 421 closes; a 5xx is "554 not accepting"; else the 220, and the reply waits at MAIL.
     */
    if (res->verdict == MILTER_SHUTDOWN ||
        (res->verdict == MILTER_REJECT && strncmp(res->reply, "421", 3) == 0)) {
        session_milter_log(s, "milter-reject", "CONNECT", res->reply ? res->reply : "421 4.7.0");
        smtpd_reply(s, 421, NULL, "%s Service unavailable - try again later", s->myhostname);
        smtpd_session_close(s);
        return;
    }
    if (res->verdict == MILTER_REJECT) {
        session_milter_log(s, "milter-reject", "CONNECT", res->reply);
        if (res->reply[0] == '5')
            smtpd_reply(s, 554, NULL, "%s ESMTP not accepting connections", s->myhostname);
        else
            smtpd_reply(s, 220, NULL, "%s", config_get(s->gen->cfg, "smtpd_banner"));
    } else {
        smtpd_reply(s, 220, NULL, "%s", config_get(s->gen->cfg, "smtpd_banner"));
    }
    s->greeted = 1;
    if (s->eof || evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        smtpd_session_run(s);
}

static void smtpd_session_milter_greet(struct smtpd_session *s)
{
    s->milter_wait = 1;
    session_milter_info(s);
    int family = s->peer.ss_family;
    if (family == AF_INET6 && strchr(s->addr, ':') == NULL)
        family = AF_INET; /* a v4 client on a dual-stack socket */
    milter_connect(s->milter, s->host, s->addr, family, s->minfo.client_port,
                   session_milter_greet_done, s);
}

/*
 * The filters' envelope changes go into the queue file, then the commit.
 * Recipients a filter added are resolved as at RCPT, so with tables that
 * may wait on the network (pgsql:) that runs on the work queue while the
 * session waits (commit_pending); session_milter_queue() then goes on.
 */
static void session_milter_queue(struct smtpd_session *s)
{
    struct smtpd_tx *tx = s->tx;
    struct envelope *env = spool_msg_envelope(tx->msg);
    env->hold = s->milter_hold;
    struct buf out = BUF_INIT;
    milter_msg_serialize(&tx->milter_msg, &out);
    int rc = spool_msg_write(tx->msg, out.data, out.len);
    buf_free(&out);
    if (rc == 0) {
        smtpd_message_commit(s);
        return;
    }
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
    else
        smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
    s->commit_pending = 0;
    smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
    if (!s->in_run)
        smtpd_session_run(s);
}

static void session_milter_envelope_work(void *arg)
{
    struct smtpd_session *s = arg;
    smtpd_milter_apply_envelope(&s->tx->milter_msg, spool_msg_envelope(s->tx->msg),
                                s->gen->resolver, spool_msg_id(s->tx->msg));
}

static void session_milter_envelope_done(void *arg)
{
    struct smtpd_session *s = arg;
    if (s->dead) {
        s->commit_pending = 0;
        smtpd_session_close(s);
        return;
    }
    session_milter_queue(s);
}

static void session_milter_content_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    struct smtpd_tx *tx = s->tx;
    if (s->dead) {
        s->commit_pending = 0;
        smtpd_session_close(s);
        return;
    }
    s->milter_ev = MILTER_C_BODYEOB;
    session_milter_hold(s, res, "END-OF-MESSAGE");
    if (res->verdict == MILTER_REJECT || res->verdict == MILTER_SHUTDOWN) {
        const char *r =
            res->verdict == MILTER_SHUTDOWN ? "421 4.7.0 Server closing connection" : res->reply;
        session_milter_log(s, "milter-reject", "END-OF-MESSAGE", r);
        smtpd_reply_line(s, r);
        if (res->verdict == MILTER_SHUTDOWN || strncmp(r, "421", 3) == 0)
            smtpd_session_close(s);
    } else if (res->verdict == MILTER_DISCARD || s->milter_discard) {
        /* Accepted and dropped, as Postfix does: the client sees a 250. */
        if (res->verdict == MILTER_DISCARD)
            session_milter_log(s, "milter-discard", "END-OF-MESSAGE",
                               "milter triggers DISCARD action");
        smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", spool_msg_id(tx->msg));
    } else {
        struct resolver *resolver = s->gen->resolver;
        if (resolver_class_may_block(resolver) || resolver_expand_may_block(resolver)) {
            workq_submit(server_map_workq(s->srv), session_milter_envelope_work,
                         session_milter_envelope_done, s);
            return;
        }
        smtpd_milter_apply_envelope(&tx->milter_msg, spool_msg_envelope(tx->msg), resolver,
                                    spool_msg_id(tx->msg));
        session_milter_queue(s);
        return;
    }
    s->commit_pending = 0;
    smtpd_tx_reset(s); /* aborts the queue file: nothing is kept */
    if (!s->in_run)
        smtpd_session_run(s);
}

/* With BDAT the filters get their DATA event now, before the content (Postfix's order). */
static void session_milter_data_done(void *arg, const struct milter_result *res)
{
    struct smtpd_session *s = arg;
    if (res->verdict == MILTER_CONTINUE && !s->dead) {
        session_milter_hold(s, res, "DATA");
        milter_message(s->milter, &s->tx->milter_msg, session_milter_content_done, s);
        return;
    }
    session_milter_content_done(s, res);
}

/*
 * The held message goes to the filters, then (edited) into the queue
 * file; the session waits as for a commit. Our Received: field is already
 * in the queue file: the filters do not see it, as with Postfix.
 */
static void smtpd_session_milter_content(struct smtpd_session *s, const char *msg, size_t len)
{
    struct smtpd_tx *tx = s->tx;
    smtpd_session_enter(s, SMTPD_STATE_COMMIT);
    s->commit_pending = 1;
    milter_msg_parse(&tx->milter_msg, msg, len); /* a copy: the held message can go */
    smtpd_hold_release(&tx->hold);
    session_milter_info(s);
    if (s->milter_discard) {
        struct milter_result none = {.verdict = MILTER_CONTINUE};
        session_milter_content_done(s, &none);
    } else if (tx->bdat) {
        milter_data(s->milter, session_milter_data_done, s);
    } else {
        milter_message(s->milter, &tx->milter_msg, session_milter_content_done, s);
    }
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
 * for at most SMTPD_LINGER_SECONDS, and only then close.
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
static void smtpd_session_close(struct smtpd_session *s)
{
    if (s->state != SMTPD_STATE_QUIT) {
        smtpd_session_enter(s, SMTPD_STATE_QUIT);
        bufferevent_disable(s->bev, EV_READ);
    }
    if (!s->dead && evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return; /* the write callback comes back here once the replies are out */
    if (!s->dead && !s->eof && !s->lingering && !s->tls) {
        session_linger(s);
        return;
    }
    s->dead = 1;
    if (s->in_run || s->commit_pending || s->rcpt_q || restrict_session_busy(s->rs))
        return;
    session_free(s);
}

static void smtpd_session_on_read(struct bufferevent *bev, void *arg)
{
    smtpd_session_run(arg);
}

static void smtpd_session_on_write(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
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

static void smtpd_session_on_event(struct bufferevent *bev, short what, void *arg)
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

static void smtpd_session_milter_greet(struct smtpd_session *s);

static void smtpd_session_greet(struct smtpd_session *s)
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
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (!peer_lookup_start(s))
        smtpd_session_greet(s);
}
