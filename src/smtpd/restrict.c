/*
 * The restriction engine: Postfix's smtpd_*_restrictions lists walked
 * word by word, each restriction answering dunno, permit or refuse (see
 * restrict.h for how lookups that must wait are handled). Replies and log
 * lines follow Postfix's smtpd_check.c texts.
 */
#include "smtpd/restrict.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/resolve.h"
#include "smtpd/access.h"
#include "smtpd/policyd.h"
#include "smtpd/restrict_int.h"

/* ---- the generation's conf ---- */

static const char *const restrict_list_keys[] = {
    "smtpd_client_restrictions",      "smtpd_helo_restrictions",      "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",       "smtpd_recipient_restrictions", "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions", "smtpd_etrn_restrictions",
};

/* Words that make a relay or recipient list refuse unauthorised relaying (Postfix's rule). */
static int restrict_is_relay_guard(const char *w)
{
    return str_eq_ci(w, "reject_unauth_destination") || str_eq_ci(w, "defer_unauth_destination") ||
           str_eq_ci(w, "reject") || str_eq_ci(w, "defer") || str_eq_ci(w, "defer_if_permit") ||
           str_eq_ci(w, "check_relay_domains");
}

struct restrict_conf *restrict_conf_get(struct restrict_conf **slot, const struct config *cfg,
                                        struct resolver *resolver)
{
    if (*slot)
        return *slot;
    struct restrict_conf *rc = xcalloc(1, sizeof *rc);
    rc->cfg = cfg;
    rc->resolver = resolver;
    rc->delay_reject = config_get_bool(cfg, "smtpd_delay_reject");
    const char *rm = config_get(cfg, "rbl_reply_maps");
    if (*rm) {
        struct buf err = BUF_INIT;
        rc->rbl_reply_maps = map_list_open(rm, &err);
        if (!rc->rbl_reply_maps) {
            log_warning("rbl_reply_maps: %s", buf_cstr(&err));
            rc->rbl_reply_maps_bad = 1;
        }
        buf_free(&err);
    }
    for (int k = 3; k <= 4; k++) {
        size_t n = 0;
        char **words = config_get_list(cfg, restrict_list_keys[k], &n);
        for (size_t i = 0; i < n; i++)
            if (restrict_is_relay_guard(words[i]))
                rc->relay_guard_ok = 1;
        strlist_free(words);
    }
    *slot = rc;
    return rc;
}

void restrict_conf_free(struct restrict_conf *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->ntables; i++) {
        free(rc->tables[i].spec);
        map_free(rc->tables[i].map);
        free(rc->tables[i].why);
    }
    free(rc->tables);
    map_list_free(rc->rbl_reply_maps);
    free(rc);
}

struct restrict_table *restrict_table(struct restrict_conf *rc, const char *spec)
{
    for (size_t i = 0; i < rc->ntables; i++)
        if (strcmp(rc->tables[i].spec, spec) == 0)
            return &rc->tables[i];
    rc->tables = xrealloc(rc->tables, (rc->ntables + 1) * sizeof *rc->tables);
    struct restrict_table *t = &rc->tables[rc->ntables++];
    memset(t, 0, sizeof *t);
    t->spec = xstrdup(spec);
    struct buf err = BUF_INIT;
    t->map = map_open(spec, &err);
    if (!t->map)
        t->why = buf_steal(&err);
    buf_free(&err);
    return t;
}

/* ---- the session ---- */

struct restrict_session *restrict_session_new(struct restrict_conf *rc, struct dns *dns,
                                              struct event_base *base, struct workq *wq,
                                              const struct restrict_hooks *hooks)
{
    struct restrict_session *rs = xcalloc(1, sizeof *rs);
    rs->rc = rc;
    rs->dns = dns;
    rs->base = base;
    rs->wq = wq;
    rs->hooks = *hooks;
    return rs;
}

static void restrict_effects_clear(struct restrict_effects *e)
{
    free(e->redirect);
    free(e->discard_why);
    buf_free(&e->prepend);
    memset(e, 0, sizeof *e);
}

static void restrict_memo_drop(struct restrict_memo *m)
{
    free(m->key);
    dns_answer_free(m->dns);
    free(m->action);
    if (m->answer) {
        free(m->answer->value);
        free(m->answer->why);
        free(m->answer);
    }
    memset(m, 0, sizeof *m);
}

void restrict_session_free(struct restrict_session *rs)
{
    if (!rs)
        return;
    dns_cancel(rs->dns_q);
    policyd_cancel(rs->policy_q);
    restrict_lookup_abandon(rs, 1);
    free(rs->pending_key);
    for (size_t i = 0; i < rs->nmemo; i++)
        restrict_memo_drop(&rs->memo[i]);
    free(rs->memo);
    restrict_effects_clear(&rs->effects);
    free(rs);
}

void restrict_command_start(struct restrict_session *rs)
{
    /* Policy and table answers are for one command; DNS answers hold for the session. */
    size_t keep = 0;
    for (size_t i = 0; i < rs->nmemo; i++) {
        if (rs->memo[i].action || rs->memo[i].answer)
            restrict_memo_drop(&rs->memo[i]);
        else
            rs->memo[keep++] = rs->memo[i];
    }
    rs->nmemo = keep;
}

void restrict_tx_reset(struct restrict_session *rs)
{
    restrict_effects_clear(&rs->effects);
}

const struct restrict_effects *restrict_effects(const struct restrict_session *rs)
{
    return &rs->effects;
}

struct restrict_memo *restrict_memo_find(struct restrict_session *rs, const char *key)
{
    for (size_t i = 0; i < rs->nmemo; i++)
        if (strcmp(rs->memo[i].key, key) == 0)
            return &rs->memo[i];
    return NULL;
}

struct restrict_memo *restrict_memo_add(struct restrict_session *rs, const char *key)
{
    if (rs->nmemo == rs->memo_cap && rs->memo_cap < RESTRICT_MEMO_MAX) {
        rs->memo_cap = rs->memo_cap ? rs->memo_cap * 2 : 8;
        rs->memo = xrealloc(rs->memo, rs->memo_cap * sizeof *rs->memo);
    }
    if (rs->nmemo == RESTRICT_MEMO_MAX) {
        /* Full: the oldest goes (a long session asking many lists). */
        restrict_memo_drop(&rs->memo[0]);
        memmove(&rs->memo[0], &rs->memo[1], (RESTRICT_MEMO_MAX - 1) * sizeof rs->memo[0]);
        rs->nmemo--;
    }
    struct restrict_memo *m = &rs->memo[rs->nmemo++];
    memset(m, 0, sizeof *m);
    m->key = xstrdup(key);
    return m;
}

static void restrict_dns_done(void *arg, const struct dns_answer *ans)
{
    struct restrict_session *rs = arg;
    rs->dns_q = NULL;
    struct restrict_memo *m = restrict_memo_add(rs, rs->pending_key);
    m->dns = dns_answer_copy(ans);
    free(rs->pending_key);
    rs->pending_key = NULL;
    rs->hooks.resume(rs->hooks.arg);
}

const struct dns_answer *restrict_dns(struct restrict_walk *w, const char *name, int type,
                                      enum restrict_rc *rc)
{
    static const struct dns_answer no_resolver = {.status = DNS_TEMPFAIL};
    struct restrict_session *rs = w->rs;
    char key[600];
    snprintf(key, sizeof key, "%d:%s", type, name);
    struct restrict_memo *m = restrict_memo_find(rs, key);
    if (m)
        return m->dns;
    if (!rs->dns)
        return &no_resolver; /* no resolver in this process: as a DNS failure */
    rs->pending_key = xstrdup(key);
    rs->dns_q = dns_query(rs->dns, name, type, restrict_dns_done, rs);
    if (!rs->dns_q) {
        free(rs->pending_key);
        rs->pending_key = NULL;
        return &no_resolver;
    }
    *rc = RC_PENDING;
    return NULL;
}

/* ---- replies and log events ---- */

void restrict_event(struct restrict_walk *w, const char *whatsup, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    buf_printf(&w->events, "%s\t%s\n", whatsup, text);
}

static void restrict_reply_set(struct restrict_reply *r, int code, const char *dsn, const char *fmt,
                               va_list ap)
{
    /* A reply code outside 4xx/5xx or a bad DSN: Postfix's generic 450 instead. */
    char d[16];
    const char *rest;
    if (code < 400 || code > 599 || !access_dsn_split(dsn, d, sizeof d, &rest)) {
        log_warning("SMTP reply code configuration error: %d %s", code, dsn);
        code = 450;
        snprintf(d, sizeof d, "4.7.1");
        snprintf(r->text, sizeof r->text, "Service unavailable");
    } else {
        vsnprintf(r->text, sizeof r->text, fmt, ap);
    }
    d[0] = (char)('0' + code / 100); /* the class follows the reply code */
    r->code = code;
    snprintf(r->dsn, sizeof r->dsn, "%s", d);
    /* Replies are one printable line (RFC 5321 4.5.3.1.5 caps it at 512). */
    for (char *p = r->text; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
            *p = ' ';
    if (strlen(r->text) > 500)
        r->text[500] = '\0';
}

static enum restrict_rc restrict_refuse_v(struct restrict_walk *w, int soft_ok, int code,
                                          const char *dsn, const char *fmt, va_list ap)
{
    struct restrict_reply r;
    restrict_reply_set(&r, code, dsn, fmt, ap);
    if (soft_ok && w->warn_next) {
        restrict_event(w, "reject_warning", "%d %s %s", r.code, r.dsn, r.text);
        return RC_DUNNO;
    }
    /* DEFER_IF_REJECT turns a later hard refusal into the deferral it gave. */
    if (soft_ok && r.code >= 500 && w->defer_if_reject.code)
        r = w->defer_if_reject;
    *w->reply = r;
    return RC_REFUSE;
}

void restrict_dsn_fix(char *dsn, const char *reply_class)
{
    /*
     * An address status (X.1.Y, RFC 3463 3.2) must fit what is refused: a
     * recipient code given for a sender becomes the sender's twin and the
     * reverse; for anything that is no address it becomes X.0.0. This is
     * Postfix's smtpd_dsn_fix() table, so the same table value gives the
     * same reply.
     */
    static const char *const sender[] = {"1.0", "1.7", "1.8", "1.7", "1.7",
                                         "1.0", "1.7", "1.7", "1.8"};
    static const char *const rcpt[] = {"1.0", "1.1", "1.2", "1.3", "1.4",
                                       "1.5", "1.6", "1.3", "1.2"};
    if (strncmp(dsn + 1, ".1.", 3) != 0)
        return;
    int micro = dsn[4] >= '1' && dsn[4] <= '8' && dsn[5] == '\0' ? dsn[4] - '0' : 0;
    const char *fixed = strcmp(reply_class, "Sender address") == 0      ? sender[micro]
                        : strcmp(reply_class, "Recipient address") == 0 ? rcpt[micro]
                                                                        : "0.0";
    if (strcmp(dsn + 2, fixed) != 0)
        log_info("mapping DSN status %s into %s status %c.%s", dsn, reply_class, dsn[0], fixed);
    snprintf(dsn + 2, 14, "%s", fixed);
}

enum restrict_rc restrict_refuse(struct restrict_walk *w, int code, const char *dsn,
                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum restrict_rc rc = restrict_refuse_v(w, 1, code, dsn, fmt, ap);
    va_end(ap);
    return rc;
}

enum restrict_rc restrict_refuse_hard(struct restrict_walk *w, int code, const char *dsn,
                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum restrict_rc rc = restrict_refuse_v(w, 0, code, dsn, fmt, ap);
    va_end(ap);
    return rc;
}

enum restrict_rc restrict_config_error(struct restrict_walk *w, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    log_warning("%s", why);
    w->warn_next = 0; /* configuration errors are never just warnings */
    snprintf(w->reply->text, sizeof w->reply->text, "Server configuration error");
    w->reply->code = 451;
    snprintf(w->reply->dsn, sizeof w->reply->dsn, "4.3.5");
    return RC_REFUSE;
}

int restrict_code(struct restrict_walk *w, const char *key)
{
    return (int)config_get_int(w->rs->rc->cfg, key);
}

/* ---- check points ---- */

static enum restrict_rc restrict_run_list(struct restrict_walk *w, const char *key,
                                          const char *name, const char *cls)
{
    size_t n = 0;
    char **words = config_get_list(w->rs->rc->cfg, key, &n);
    w->reply_name = name;
    w->reply_class = cls;
    w->warn_next = 0;
    /* As Postfix: DEFER_IF_REJECT holds within a list, DEFER_IF_PERMIT to the end. */
    w->defer_if_reject.code = 0;
    enum restrict_rc rc = restrict_walk_list(w, words, n);
    strlist_free(words);
    return rc;
}

/* The client, HELO and sender lists; a permit ends only its own list. */
static enum restrict_rc restrict_early_lists(struct restrict_walk *w, int client, int helo,
                                             int sender, const char *namaddr)
{
    const struct restrict_facts *f = w->f;
    enum restrict_rc rc = RC_DUNNO;
    if (client)
        rc = restrict_run_list(w, "smtpd_client_restrictions", namaddr, "Client host");
    if (helo && (rc == RC_DUNNO || rc == RC_PERMIT) && f->helo)
        rc = restrict_run_list(w, "smtpd_helo_restrictions", f->helo, "Helo command");
    if (sender && (rc == RC_DUNNO || rc == RC_PERMIT) && f->sender)
        rc = restrict_run_list(w, "smtpd_sender_restrictions", f->sender, "Sender address");
    return rc;
}

enum restrict_status restrict_check(struct restrict_session *rs, enum restrict_point point,
                                    const struct restrict_facts *f, struct restrict_reply *reply)
{
    static const char *const states[] = {"CONNECT", "HELO", "MAIL",
                                         "RCPT",    "DATA", "END-OF-MESSAGE"};
    struct restrict_conf *rc_conf = rs->rc;
    struct restrict_walk w = {.rs = rs, .f = f, .reply = reply};
    w.protocol_state = states[point];
    memset(reply, 0, sizeof *reply);
    char namaddr[600];
    snprintf(namaddr, sizeof namaddr, "%s[%s]", f->host, f->addr);
    int delay = rc_conf->delay_reject;
    enum restrict_rc rc = RC_DUNNO;
    switch (point) {
    case RESTRICT_CONNECT:
        if (!delay)
            rc = restrict_early_lists(&w, 1, 0, 0, namaddr);
        break;
    case RESTRICT_HELO:
        if (!delay)
            rc = restrict_early_lists(&w, 0, 1, 0, namaddr);
        break;
    case RESTRICT_MAIL:
        if (!delay)
            rc = restrict_early_lists(&w, 0, 0, 1, namaddr);
        break;
    case RESTRICT_RCPT:
        if (delay)
            rc = restrict_early_lists(&w, 1, 1, 1, namaddr);
        if (rc == RC_DUNNO || rc == RC_PERMIT) {
            if (!rc_conf->relay_guard_ok) {
                w.reply_name = f->recipient;
                rc = restrict_config_error(
                    &w, "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                        "specify at least one working instance of: reject_unauth_destination, "
                        "defer_unauth_destination, reject, defer, defer_if_permit or "
                        "check_relay_domains");
                break;
            }
            rc = restrict_run_list(&w, "smtpd_relay_restrictions", f->recipient,
                                   "Recipient address");
        }
        if (rc == RC_DUNNO || rc == RC_PERMIT)
            rc = restrict_run_list(&w, "smtpd_recipient_restrictions", f->recipient,
                                   "Recipient address");
        break;
    case RESTRICT_DATA:
        rc = restrict_run_list(&w, "smtpd_data_restrictions", "DATA", "Data command");
        break;
    case RESTRICT_EOD:
        rc = restrict_run_list(&w, "smtpd_end_of_data_restrictions", "END-OF-MESSAGE",
                               "End-of-data");
        break;
    }
    if (rc == RC_PENDING) {
        buf_free(&w.events);
        restrict_effects_clear(&w.effects);
        if (++rs->pendings <= RESTRICT_MEMO_MAX)
            return RESTRICT_PENDING;
        /* More lookups than answers we keep: it would never complete. */
        dns_cancel(rs->dns_q);
        policyd_cancel(rs->policy_q);
        rs->dns_q = NULL;
        rs->policy_q = NULL;
        restrict_lookup_abandon(rs, 0);
        free(rs->pending_key);
        rs->pending_key = NULL;
        rc = restrict_config_error(&w, "more than %d DNS, policy or table lookups in one check",
                                   RESTRICT_MEMO_MAX);
    }
    rs->pendings = 0;
    if (rc != RC_REFUSE && w.defer_if_permit.code) {
        *reply = w.defer_if_permit;
        rc = RC_REFUSE;
    }
    if (rc == RC_REFUSE) {
        restrict_event(&w, "reject", "%d %s %s", reply->code, reply->dsn, reply->text);
    } else {
        /* What the access results asked for holds for the transaction. */
        struct restrict_effects *e = &rs->effects;
        e->hold |= w.effects.hold;
        if (w.effects.discard && !e->discard)
            e->discard = 1;
        if (w.effects.redirect) {
            free(e->redirect);
            e->redirect = w.effects.redirect;
            w.effects.redirect = NULL;
        }
        if (w.effects.prepend.len)
            buf_append(&e->prepend, w.effects.prepend.data, w.effects.prepend.len);
    }
    restrict_effects_clear(&w.effects);
    /* The log lines of this walk, in order, now that it is final. */
    char *lines = buf_steal(&w.events);
    for (char *line = lines, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        *next++ = '\0';
        char *tab = strchr(line, '\t');
        *tab = '\0';
        rs->hooks.log(rs->hooks.arg, f, line, tab + 1);
    }
    free(lines);
    return rc == RC_REFUSE ? RESTRICT_REFUSE : RESTRICT_PASS;
}

/* ---- configuration check (hongyan config, reload) ---- */

/* The words of one list (a key or a class): each problem is one line in warnings. */
static int restrict_check_words(const struct config *cfg, const char *label, char **words, size_t n,
                                struct buf *warnings)
{
    int problems = 0;
    for (size_t i = 0; i < n; i++) {
        const char *word = words[i];
        if (str_eq_ci(word, "warn_if_reject") || restrict_is_plain(word) ||
            restrict_is_class(cfg, word))
            continue;
        if (!restrict_takes_arg(word)) {
            buf_printf(warnings, "%s: unknown smtpd restriction \"%s\"\n", label, word);
            problems++;
            continue;
        }
        if (i + 1 >= n) {
            buf_printf(warnings, "%s: restriction %s requires an argument\n", label, word);
            problems++;
            continue;
        }
        const char *arg = words[++i];
        if (str_prefix_ci(word, "check_") && !str_eq_ci(word, "check_policy_service")) {
            struct buf err = BUF_INIT;
            struct map *m = map_open(arg, &err);
            if (!m) {
                buf_printf(warnings, "%s: %s %s: %s\n", label, word, arg, buf_cstr(&err));
                problems++;
            }
            map_free(m);
            buf_free(&err);
        } else if (str_eq_ci(word, "check_policy_service") && !policyd_endpoint_valid(arg)) {
            buf_printf(warnings, "%s: check_policy_service %s: want inet:host:port or unix:/path\n",
                       label, arg);
            problems++;
        }
    }
    return problems;
}

int restrict_conf_check(const struct config *cfg, struct buf *warnings)
{
    int problems = 0, guard = 0;
    for (size_t k = 0; k < sizeof restrict_list_keys / sizeof restrict_list_keys[0]; k++) {
        size_t n = 0;
        char **words = config_get_list(cfg, restrict_list_keys[k], &n);
        for (size_t i = 0; (k == 3 || k == 4) && i < n; i++)
            guard |= restrict_is_relay_guard(words[i]);
        problems += restrict_check_words(cfg, restrict_list_keys[k], words, n, warnings);
        strlist_free(words);
    }
    size_t nc = 0;
    char **classes = config_get_list(cfg, "smtpd_restriction_classes", &nc);
    for (size_t c = 0; c < nc; c++) {
        const char *value = config_get_class(cfg, classes[c]);
        if (!value) {
            buf_printf(warnings, "smtpd_restriction_classes: %s is not defined\n", classes[c]);
            problems++;
            continue;
        }
        size_t n = 0;
        char **words = strlist_split(value, &n);
        problems += restrict_check_words(cfg, classes[c], words, n, warnings);
        strlist_free(words);
    }
    strlist_free(classes);
    if (!guard) {
        buf_puts(warnings, "smtpd_relay_restrictions and smtpd_recipient_restrictions: neither "
                           "has reject_unauth_destination (or defer_unauth_destination, reject, "
                           "defer): every RCPT gets 451 4.3.5\n");
        problems++;
    }
    return problems;
}
