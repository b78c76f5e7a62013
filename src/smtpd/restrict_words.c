/*
 * The restriction words of Postfix's lists and the access(5) results they
 * apply: one function per kind of check, and restrict_word() that picks it
 * (the walk and the check points are in restrict.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/resolve.h"
#include "smtp/address.h"
#include "smtpd/access.h"
#include "smtpd/restrict_int.h"
#include "smtpd/submission.h"

/* ---- access tables ---- */

enum restrict_rc restrict_apply_result(struct restrict_walk *w, const char *value,
                                       const char *table)
{
    struct access_result a;
    access_parse(value, &a);
    const char *name = w->reply_name, *cls = w->reply_class;
    char dsn[16];
    switch (a.action) {
    case ACCESS_DUNNO:
        return RC_DUNNO;
    case ACCESS_OK:
        return RC_PERMIT;
    case ACCESS_REJECT:
    case ACCESS_DEFER: {
        int reject = a.action == ACCESS_REJECT;
        int code =
            a.code ? a.code
                   : restrict_code(w, reject ? "access_map_reject_code" : "access_map_defer_code");
        snprintf(dsn, sizeof dsn, "%s", a.dsn[0] ? a.dsn : reject ? "5.7.1" : "4.7.1");
        restrict_dsn_fix(dsn, cls);
        return restrict_refuse(w, code, dsn, "<%s>: %s rejected: %s", name, cls,
                               *a.text ? a.text : "Access denied");
    }
    case ACCESS_DEFER_IF_PERMIT:
    case ACCESS_DEFER_IF_REJECT: {
        struct restrict_reply *slot =
            a.action == ACCESS_DEFER_IF_PERMIT ? &w->defer_if_permit : &w->defer_if_reject;
        if (!slot->code) {
            struct restrict_reply keep = *w->reply;
            int warn = w->warn_next;
            w->warn_next = 0;
            snprintf(dsn, sizeof dsn, "%s", a.dsn[0] ? a.dsn : "4.7.1");
            restrict_dsn_fix(dsn, cls);
            restrict_refuse(w, restrict_code(w, "access_map_defer_code"), dsn,
                            "<%s>: %s rejected: %s", name, cls,
                            *a.text ? a.text : "Service unavailable");
            *slot = *w->reply;
            *w->reply = keep;
            w->warn_next = warn;
        }
        return RC_DUNNO;
    }
    case ACCESS_HOLD:
        w->effects.hold = 1;
        restrict_event(w, "hold", "<%s>: %s %s", name, cls,
                       *a.text ? a.text : "triggers HOLD action");
        return RC_DUNNO;
    case ACCESS_DISCARD:
        w->effects.discard = 1;
        restrict_event(w, "discard", "<%s>: %s %s", name, cls,
                       *a.text ? a.text : "triggers DISCARD action");
        return RC_PERMIT;
    case ACCESS_REDIRECT:
        free(w->effects.redirect);
        w->effects.redirect = xstrdup(a.text);
        restrict_event(w, "redirect", "<%s>: %s triggers REDIRECT %s", name, cls, a.text);
        return RC_DUNNO;
    case ACCESS_PREPEND:
        buf_printf(&w->effects.prepend, "%s\r\n", a.text);
        return RC_DUNNO;
    case ACCESS_WARN:
    case ACCESS_INFO:
        restrict_event(w, a.action == ACCESS_WARN ? "warn" : "info", "%s", a.text);
        return RC_DUNNO;
    case ACCESS_UNSUPPORTED:
        log_warning("%s: action \"%s\" is not supported by hongyan; ignored", table, value);
        return RC_DUNNO;
    case ACCESS_BAD:
        return restrict_config_error(w, "%s: bad access table value \"%s\"", table, value);
    case ACCESS_RESTRICTIONS: {
        if (w->depth >= RESTRICT_DEPTH_MAX)
            return restrict_config_error(w, "%s: entry \"%s\" causes unreasonable recursion", table,
                                         value);
        size_t n = 0;
        char **words = strlist_split(a.text, &n);
        w->depth++;
        enum restrict_rc rc = restrict_walk_list(w, words, n);
        w->depth--;
        strlist_free(words);
        return rc;
    }
    }
    return RC_DUNNO;
}

static enum restrict_rc restrict_check_access(struct restrict_walk *w, const char *spec,
                                              char **keys)
{
    struct restrict_table *t = restrict_table(w->rs->rc, spec);
    if (!t->map)
        return restrict_config_error(w, "access table %s: %s", spec, t->why);
    struct buf value = BUF_INIT, err = BUF_INIT;
    enum restrict_rc rc = RC_DUNNO;
    for (size_t i = 0; keys[i]; i++) {
        int mr = restrict_lookup(w->rs, RESTRICT_LOOKUP_TABLE, t->map, keys[i], NULL, &value, &err);
        if (mr == RESTRICT_LOOKUP_PENDING) {
            rc = RC_PENDING;
            break;
        }
        if (mr == MAP_NOTFOUND)
            continue;
        if (mr == MAP_TEMPFAIL) {
            /*
             * Postfix's check_access(): the table's failure becomes the
             * access value "451 4.3.5 Server configuration error", so the
             * reply is "451 4.3.5 <name>: Sender address rejected: Server
             * configuration error" (compared with Postfix 3.7 and
             * postfix-pgsql by bench/compare_restrict.py).
             */
            log_warning("%s lookup error for \"%s\": %s", spec, keys[i], buf_cstr(&err));
            rc = restrict_apply_result(w, "451 4.3.5 Server configuration error", spec);
            break;
        }
        rc = restrict_apply_result(w, buf_cstr(&value), spec);
        break;
    }
    buf_free(&value);
    buf_free(&err);
    return rc;
}

/* ---- the restrictions ---- */

/*
 * Host name syntax as Postfix's valid_hostname(): letters, digits, '_'
 * (which Postfix tolerates) and inner '-' in labels of 1-63 octets, not all
 * digits; "name." names the same host as "name" (its dup_if_truncate).
 */
static int restrict_hostname_ok(const char *name, int need_dot)
{
    size_t len = strlen(name);
    if (len > 1 && name[len - 1] == '.' && name[len - 2] != '.')
        len--;
    if (len == 0 || len > 255)
        return 0;
    size_t label = 0;
    int non_numeric = 0, dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        int last_in_label = i + 1 == len || name[i + 1] == '.';
        if (isalnum(c) || c == '_') {
            non_numeric |= !isdigit(c);
        } else if (c == '-') {
            non_numeric = 1;
            if (label == 0 || last_in_label)
                return 0;
        } else if (c == '.') {
            if (label == 0 || i + 1 == len)
                return 0;
            dots++;
            label = 0;
            continue;
        } else {
            return 0;
        }
        if (++label > 63)
            return 0;
    }
    return non_numeric && (!need_dot || dots > 0);
}

/* A bare IPv4 address as a HELO name: Postfix lets it pass reject_invalid_helo_hostname. */
static int restrict_is_ipv4(const char *name)
{
    struct in_addr a;
    return inet_pton(AF_INET, name, &a) == 1;
}

static enum restrict_rc restrict_non_fqdn_address(struct restrict_walk *w, const char *addr,
                                                  const char *cls)
{
    const char *at = strrchr(addr, '@');
    const char *dom = at ? at + 1 : "";
    if (dom[0] == '[')
        return RC_DUNNO; /* an address literal: nothing to qualify */
    if (restrict_hostname_ok(dom, 1))
        return RC_DUNNO;
    return restrict_refuse(w, restrict_code(w, "non_fqdn_reject_code"), "4.5.2",
                           "<%s>: %s rejected: need fully-qualified address", addr, cls);
}

static enum restrict_rc restrict_unlisted(struct restrict_walk *w, const char *addr, int sender)
{
    if (!w->rs->rc->resolver)
        return RC_DUNNO;
    struct buf value = BUF_INIT, err = BUF_INIT;
    /* MAP_FOUND also for an address outside the local domains: nothing to check. */
    int mr = restrict_lookup(w->rs, RESTRICT_LOOKUP_UNLISTED, NULL, addr, NULL, &value, &err);
    buf_free(&value);
    enum restrict_rc rc = RC_DUNNO;
    const char *cls = sender ? "Sender address" : "Recipient address";
    if (mr == RESTRICT_LOOKUP_PENDING)
        rc = RC_PENDING;
    else if (mr == MAP_NOTFOUND)
        rc = restrict_refuse(w, restrict_code(w, "unlisted_recipient_reject_code"),
                             sender ? "5.1.0" : "5.1.1",
                             "<%s>: %s rejected: User unknown in local recipient table", addr, cls);
    else if (mr == MAP_TEMPFAIL) {
        log_warning("recipient lookup for <%s> failed: %s", addr, buf_cstr(&err));
        rc = restrict_refuse_hard(w, 451, "4.3.0", "<%s>: Temporary lookup failure", addr);
    }
    buf_free(&err);
    return rc;
}

static enum restrict_rc restrict_login_mismatch(struct restrict_walk *w, int authenticated_only)
{
    const struct restrict_facts *f = w->f;
    const struct config *cfg = w->rs->rc->cfg;
    if (!f->sender || !*f->sender)
        return RC_DUNNO;
    if (f->sasl_user) {
        struct buf r = BUF_INIT, why = BUF_INIT;
        enum restrict_rc rc = RC_DUNNO;
        int st =
            restrict_lookup(w->rs, RESTRICT_LOOKUP_LOGIN, NULL, f->sender, f->sasl_user, &r, &why);
        buf_free(&why);
        if (st == RESTRICT_LOOKUP_PENDING)
            rc = RC_PENDING;
        else if (st == -1)
            rc = restrict_refuse(w, 553, "5.7.1",
                                 "<%s>: Sender address rejected: not owned by user %s", f->sender,
                                 f->sasl_user);
        else if (st < -1)
            rc = restrict_refuse_hard(w, 451, "4.3.0", "<%s>: Temporary lookup failure", f->sender);
        buf_free(&r);
        return rc;
    }
    if (authenticated_only)
        return RC_DUNNO;
    /* Not logged in, but the address belongs to a login: Postfix's "not logged in". */
    size_t n = 0;
    char **specs = config_get_list(cfg, "smtpd_sender_login_maps", &n);
    const char *at = strrchr(f->sender, '@');
    char *keys[3] = {xstrdup(f->sender), at ? xstrdup(at) : NULL, NULL};
    enum restrict_rc rc = RC_DUNNO;
    struct buf value = BUF_INIT, err = BUF_INIT;
    for (size_t i = 0; i < n && rc == RC_DUNNO; i++) {
        struct restrict_table *t = restrict_table(w->rs->rc, specs[i]);
        if (!t->map) {
            rc = restrict_config_error(w, "smtpd_sender_login_maps %s: %s", specs[i], t->why);
            break;
        }
        for (int k = 0; keys[k] && rc == RC_DUNNO; k++) {
            int mr =
                restrict_lookup(w->rs, RESTRICT_LOOKUP_TABLE, t->map, keys[k], NULL, &value, &err);
            if (mr == RESTRICT_LOOKUP_PENDING)
                rc = RC_PENDING;
            else if (mr == MAP_FOUND)
                rc = restrict_refuse(w, 553, "5.7.1",
                                     "<%s>: Sender address rejected: not logged in", f->sender);
            else if (mr == MAP_TEMPFAIL)
                rc = restrict_refuse_hard(w, 451, "4.3.0", "<%s>: Temporary lookup failure",
                                          f->sender);
        }
    }
    buf_free(&value);
    buf_free(&err);
    free(keys[0]);
    free(keys[1]);
    strlist_free(specs);
    return rc;
}

/* check_*_access: which value is looked up, and under which name and class it replies. */
static enum restrict_rc restrict_access_word(struct restrict_walk *w, const char *word,
                                             const char *spec)
{
    const struct restrict_facts *f = w->f;
    const char *name = w->reply_name, *cls = w->reply_class;
    char **keys = NULL;
    char namaddr[600];
    snprintf(namaddr, sizeof namaddr, "%s[%s]", f->host, f->addr);
    if (str_eq_ci(word, "check_client_access")) {
        /* The name (if known), its parents, then the address and its prefixes. */
        size_t nh = 0, ni = 0;
        char **h = access_keys_host(strcmp(f->host, "unknown") ? f->host : "", &nh);
        char **ip = access_keys_ip(f->addr, &ni);
        keys = xcalloc(nh + ni + 1, sizeof *keys);
        memcpy(keys, h, nh * sizeof *keys);
        memcpy(keys + nh, ip, ni * sizeof *keys);
        free(h);
        free(ip);
        w->reply_name = namaddr, w->reply_class = "Client host";
    } else if (str_eq_ci(word, "check_reverse_client_hostname_access")) {
        if (!f->reverse)
            return RC_DUNNO;
        keys = access_keys_host(f->reverse, NULL);
        w->reply_name = namaddr, w->reply_class = "Unverified Client host";
    } else if (str_eq_ci(word, "check_helo_access")) {
        if (!f->helo)
            return RC_DUNNO;
        keys = access_keys_host(f->helo, NULL);
        w->reply_name = f->helo, w->reply_class = "Helo command";
    } else if (str_eq_ci(word, "check_sender_access")) {
        if (!f->sender)
            return RC_DUNNO;
        keys = *f->sender ? access_keys_addr(f->sender, NULL) : access_keys_host("<>", NULL);
        w->reply_name = f->sender, w->reply_class = "Sender address";
    } else {
        if (!f->recipient)
            return RC_DUNNO;
        keys = access_keys_addr(f->recipient, NULL);
        w->reply_name = f->recipient, w->reply_class = "Recipient address";
    }
    enum restrict_rc rc = restrict_check_access(w, spec, keys);
    strlist_free(keys);
    w->reply_name = name, w->reply_class = cls;
    return rc;
}

static const char *const restrict_arg_words[] = {
    "check_client_access",    "check_reverse_client_hostname_access",
    "check_helo_access",      "check_sender_access",
    "check_recipient_access", "reject_rbl_client",
    "reject_rhsbl_client",    "reject_rhsbl_reverse_client",
    "reject_rhsbl_sender",    "reject_rhsbl_helo",
    "reject_rhsbl_recipient", "permit_dnswl_client",
    "permit_rhswl_client",    "check_policy_service",
};

int restrict_takes_arg(const char *word)
{
    for (size_t i = 0; i < sizeof restrict_arg_words / sizeof restrict_arg_words[0]; i++)
        if (str_eq_ci(word, restrict_arg_words[i]))
            return 1;
    return 0;
}

int restrict_is_class(const struct config *cfg, const char *word)
{
    size_t n = 0;
    char **classes = config_get_list(cfg, "smtpd_restriction_classes", &n);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(classes[i], word) == 0;
    strlist_free(classes);
    return found && config_get_class(cfg, word) != NULL;
}

/* Words that need no argument and no lookup: 1 when word is one of them. */
static const char *const restrict_plain_words[] = {
    "permit",
    "reject",
    "defer",
    "warn_if_reject",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "permit_tls_clientcerts",
    "permit_tls_all_clientcerts",
    "reject_unauth_destination",
    "defer_unauth_destination",
    "permit_auth_destination",
    "reject_unauth_pipelining",
    "reject_unknown_sender_domain",
    "reject_unknown_recipient_domain",
    "reject_unknown_client_hostname",
    "reject_unknown_client",
    "reject_unknown_reverse_client_hostname",
    "reject_non_fqdn_sender",
    "reject_non_fqdn_recipient",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_hostname",
    "reject_unlisted_recipient",
    "reject_unlisted_sender",
    "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch",
};

int restrict_is_plain(const char *word)
{
    for (size_t i = 0; i < sizeof restrict_plain_words / sizeof restrict_plain_words[0]; i++)
        if (str_eq_ci(word, restrict_plain_words[i]))
            return 1;
    return 0;
}

/* One restriction; *i moves past its argument. */
static enum restrict_rc restrict_word(struct restrict_walk *w, char **words, size_t n, size_t *i)
{
    const struct restrict_facts *f = w->f;
    const struct config *cfg = w->rs->rc->cfg;
    const char *word = words[*i];
    const char *arg = NULL;
    if (restrict_takes_arg(word)) {
        if (*i + 1 >= n)
            return restrict_config_error(w, "restriction %s requires an argument", word);
        arg = words[++*i];
    }
    const char *rcpt = f->recipient;
    enum restrict_rc class_rc = RC_DUNNO;
    if (str_eq_ci(word, "permit"))
        return RC_PERMIT;
    if (str_eq_ci(word, "reject"))
        return restrict_refuse(w, restrict_code(w, "reject_code"), "5.7.1",
                               "<%s>: %s rejected: Access denied", w->reply_name, w->reply_class);
    if (str_eq_ci(word, "defer"))
        return restrict_refuse(w, restrict_code(w, "defer_code"), "4.7.1",
                               "<%s>: %s rejected: Access denied", w->reply_name, w->reply_class);
    if (str_eq_ci(word, "permit_mynetworks"))
        return f->mynetworks ? RC_PERMIT : RC_DUNNO;
    if (str_eq_ci(word, "permit_sasl_authenticated"))
        return f->sasl_user ? RC_PERMIT : RC_DUNNO;
    if (str_eq_ci(word, "permit_tls_clientcerts") || str_eq_ci(word, "permit_tls_all_clientcerts"))
        return RC_DUNNO; /* no client certificates are asked for: never a permit */
    if (str_eq_ci(word, "reject_unauth_destination") ||
        str_eq_ci(word, "defer_unauth_destination")) {
        if (!rcpt)
            return RC_DUNNO;
        int remote = restrict_rcpt_remote(w, rcpt, &class_rc);
        if (remote <= 0)
            return remote < 0 ? class_rc : RC_DUNNO;
        int defer = str_eq_ci(word, "defer_unauth_destination");
        int code = restrict_code(w, "relay_domains_reject_code") - (defer ? 100 : 0);
        return restrict_refuse(w, code, defer ? "4.7.1" : "5.7.1", "<%s>: Relay access denied",
                               rcpt);
    }
    if (str_eq_ci(word, "permit_auth_destination")) {
        int remote = rcpt ? restrict_rcpt_remote(w, rcpt, &class_rc) : 1;
        return remote < 0 ? class_rc : remote ? RC_DUNNO : RC_PERMIT;
    }
    if (str_eq_ci(word, "reject_unauth_pipelining"))
        return f->ill_pipelining
                   ? restrict_refuse(w, 503, "5.5.0",
                                     "<%s>: %s rejected: Improper use of SMTP command pipelining",
                                     w->reply_name, w->reply_class)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_unknown_sender_domain"))
        return f->sender && *f->sender ? restrict_unknown_domain(w, f->sender, 1) : RC_DUNNO;
    if (str_eq_ci(word, "reject_unknown_recipient_domain")) {
        int remote = rcpt ? restrict_rcpt_remote(w, rcpt, &class_rc) : 0;
        return remote < 0 ? class_rc : remote ? restrict_unknown_domain(w, rcpt, 0) : RC_DUNNO;
    }
    if (str_eq_ci(word, "reject_unknown_client_hostname") ||
        str_eq_ci(word, "reject_unknown_client"))
        return strcmp(f->host, "unknown") == 0
                   ? restrict_refuse(w, restrict_code(w, "unknown_client_reject_code"), "4.7.25",
                                     "Client host rejected: cannot find your hostname, [%s]",
                                     f->addr)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_unknown_reverse_client_hostname"))
        return !f->reverse
                   ? restrict_refuse(
                         w, restrict_code(w, "unknown_client_reject_code"), "4.7.1",
                         "Client host rejected: cannot find your reverse hostname, [%s]", f->addr)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_non_fqdn_sender"))
        return f->sender && *f->sender ? restrict_non_fqdn_address(w, f->sender, "Sender address")
                                       : RC_DUNNO;
    if (str_eq_ci(word, "reject_non_fqdn_recipient"))
        return rcpt ? restrict_non_fqdn_address(w, rcpt, "Recipient address") : RC_DUNNO;
    if (str_eq_ci(word, "reject_non_fqdn_helo_hostname") ||
        str_eq_ci(word, "reject_non_fqdn_hostname"))
        return f->helo && f->helo[0] != '[' && !restrict_hostname_ok(f->helo, 1)
                   ? restrict_refuse(w, restrict_code(w, "non_fqdn_reject_code"), "5.5.2",
                                     "<%s>: Helo command rejected: need fully-qualified hostname",
                                     f->helo)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_invalid_helo_hostname") ||
        str_eq_ci(word, "reject_invalid_hostname"))
        return f->helo && f->helo[0] != '[' && !restrict_hostname_ok(f->helo, 0) &&
                       !restrict_is_ipv4(f->helo)
                   ? restrict_refuse(w, restrict_code(w, "invalid_hostname_reject_code"), "5.5.2",
                                     "<%s>: Helo command rejected: Invalid name", f->helo)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_unknown_helo_hostname") ||
        str_eq_ci(word, "reject_unknown_hostname"))
        return f->helo && f->helo[0] != '[' ? restrict_unknown_helo(w) : RC_DUNNO;
    if (str_eq_ci(word, "reject_unlisted_recipient"))
        return rcpt ? restrict_unlisted(w, rcpt, 0) : RC_DUNNO;
    if (str_eq_ci(word, "reject_unlisted_sender"))
        return f->sender && *f->sender ? restrict_unlisted(w, f->sender, 1) : RC_DUNNO;
    if (str_eq_ci(word, "reject_sender_login_mismatch") ||
        str_eq_ci(word, "reject_authenticated_sender_login_mismatch"))
        return restrict_login_mismatch(
            w, str_eq_ci(word, "reject_authenticated_sender_login_mismatch"));
    if (str_prefix_ci(word, "check_") && str_eq_ci(word + strlen(word) - 7, "_access"))
        return restrict_access_word(w, word, arg);
    if (str_eq_ci(word, "reject_rbl_client") || str_eq_ci(word, "permit_dnswl_client"))
        return restrict_rbl_client(w, arg, str_eq_ci(word, "permit_dnswl_client"));
    if (str_eq_ci(word, "reject_rhsbl_client") || str_eq_ci(word, "permit_rhswl_client"))
        return strcmp(f->host, "unknown") ? restrict_rhsbl(w, arg, f->host, f->host, "Client host",
                                                           str_eq_ci(word, "permit_rhswl_client"))
                                          : RC_DUNNO;
    if (str_eq_ci(word, "reject_rhsbl_reverse_client"))
        return f->reverse
                   ? restrict_rhsbl(w, arg, f->reverse, f->reverse, "Unverified Client host", 0)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_rhsbl_helo"))
        return f->helo && f->helo[0] != '['
                   ? restrict_rhsbl(w, arg, f->helo, f->helo, "Helo command", 0)
                   : RC_DUNNO;
    if (str_eq_ci(word, "reject_rhsbl_sender") || str_eq_ci(word, "reject_rhsbl_recipient")) {
        const char *a = str_eq_ci(word, "reject_rhsbl_sender") ? f->sender : rcpt;
        const char *at = a ? strrchr(a, '@') : NULL;
        return at && at[1] && at[1] != '['
                   ? restrict_rhsbl(w, arg, at + 1, a,
                                    a == rcpt ? "Recipient address" : "Sender address", 0)
                   : RC_DUNNO;
    }
    if (str_eq_ci(word, "check_policy_service"))
        return restrict_policy(w, arg, w->protocol_state);
    if (restrict_is_class(cfg, word)) {
        if (w->depth >= RESTRICT_DEPTH_MAX)
            return restrict_config_error(w, "restriction class %s: unreasonable recursion", word);
        size_t cn = 0;
        char **cwords = strlist_split(config_get_class(cfg, word), &cn);
        w->depth++;
        enum restrict_rc rc = restrict_walk_list(w, cwords, cn);
        w->depth--;
        strlist_free(cwords);
        return rc;
    }
    return restrict_config_error(w, "unknown smtpd restriction: \"%s\"", word);
}

enum restrict_rc restrict_walk_list(struct restrict_walk *w, char **words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (str_eq_ci(words[i], "warn_if_reject")) {
            w->warn_next = 1;
            continue;
        }
        enum restrict_rc rc = restrict_word(w, words, n, &i);
        w->warn_next = 0;
        if (rc != RC_DUNNO)
            return rc;
    }
    return RC_DUNNO;
}
