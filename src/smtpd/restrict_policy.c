/*
 * check_policy_service: the request (SMTPD_POLICY_README's attributes),
 * the answer remembered for the command, and the action applied as an
 * access-table result. A server that cannot be asked gives
 * smtpd_policy_service_default_action instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtpd/policyd.h"
#include "smtpd/restrict_int.h"

/* Attribute values are one line: newlines would end the request early. */
static void policy_attr(struct buf *b, const char *name, const char *value)
{
    buf_printf(b, "%s=", name);
    for (const char *p = value ? value : ""; *p; p++)
        buf_putc(b, (*p == '\n' || *p == '\r') ? ' ' : *p);
    buf_putc(b, '\n');
}

static void policy_request(const struct restrict_walk *w, struct buf *b)
{
    const struct restrict_facts *f = w->f;
    const struct config *cfg = w->rs->rc->cfg;
    char num[32];
    policy_attr(b, "request", "smtpd_access_policy");
    policy_attr(b, "protocol_state", w->protocol_state);
    policy_attr(b, "protocol_name", f->proto);
    policy_attr(b, "helo_name", f->helo);
    policy_attr(b, "queue_id", f->queue_id);
    policy_attr(b, "sender", f->sender);
    policy_attr(b, "recipient", f->recipient);
    snprintf(num, sizeof num, "%zu", f->rcpt_count);
    policy_attr(b, "recipient_count", num);
    policy_attr(b, "client_address", f->addr);
    policy_attr(b, "client_name", f->host);
    policy_attr(b, "reverse_client_name", f->reverse ? f->reverse : "unknown");
    policy_attr(b, "instance", f->instance);
    policy_attr(b, "sasl_method", f->sasl_user ? f->sasl_method : "");
    policy_attr(b, "sasl_username", f->sasl_user);
    policy_attr(b, "sasl_sender", "");
    snprintf(num, sizeof num, "%llu", f->size);
    policy_attr(b, "size", num);
    policy_attr(b, "ccert_subject", "");
    policy_attr(b, "ccert_issuer", "");
    policy_attr(b, "ccert_fingerprint", "");
    policy_attr(b, "ccert_pubkey_fingerprint", "");
    policy_attr(b, "encryption_protocol", f->tls_protocol ? f->tls_protocol : "");
    policy_attr(b, "encryption_cipher", f->tls_cipher ? f->tls_cipher : "");
    snprintf(num, sizeof num, "%d", f->tls_protocol ? f->tls_bits : 0);
    policy_attr(b, "encryption_keysize", num);
    policy_attr(b, "etrn_domain", "");
    policy_attr(b, "stress", "");
    snprintf(num, sizeof num, "%u", f->client_port);
    policy_attr(b, "client_port", num);
    policy_attr(b, "policy_context", config_get(cfg, "smtpd_policy_service_policy_context"));
    policy_attr(b, "compatibility_level", "3.6");
    policy_attr(b, "mail_version", config_get(cfg, "mail_version"));
}

static void policy_done(void *arg, const char *action)
{
    struct restrict_session *rs = arg;
    rs->policy_q = NULL;
    /* The key was set when the request started; the memo owns it from here. */
    struct restrict_memo *m = restrict_memo_add(rs, "");
    free(m->key);
    m->key = rs->pending_key;
    rs->pending_key = NULL;
    m->action = xstrdup(action ? action : "");
    rs->hooks.resume(rs->hooks.arg);
}

enum restrict_rc restrict_policy(struct restrict_walk *w, const char *endpoint,
                                 const char *protocol_state)
{
    struct restrict_session *rs = w->rs;
    const struct config *cfg = rs->rc->cfg;
    (void)protocol_state;
    struct buf req = BUF_INIT;
    policy_request(w, &req);
    struct buf key = BUF_INIT;
    buf_printf(&key, "P:%s\n%s", endpoint, buf_cstr(&req));
    for (size_t i = 0; i < rs->nmemo; i++) {
        if (rs->memo[i].action && strcmp(rs->memo[i].key, buf_cstr(&key)) == 0) {
            buf_free(&req);
            buf_free(&key);
            const char *action = rs->memo[i].action;
            char table[300];
            snprintf(table, sizeof table, "check_policy_service %s", endpoint);
            if (!*action)
                action = config_get(cfg, "smtpd_policy_service_default_action");
            return restrict_apply_result(w, action, table);
        }
    }
    if (!rs->base) {
        buf_free(&req);
        buf_free(&key);
        return restrict_apply_result(w, config_get(cfg, "smtpd_policy_service_default_action"),
                                     "check_policy_service");
    }
    struct policyd_settings set = {
        .timeout = config_get_time(cfg, "smtpd_policy_service_timeout"),
        .max_idle = config_get_time(cfg, "smtpd_policy_service_max_idle"),
        .max_ttl = config_get_time(cfg, "smtpd_policy_service_max_ttl"),
        .retry_delay = config_get_time(cfg, "smtpd_policy_service_retry_delay"),
        .request_limit = config_get_int(cfg, "smtpd_policy_service_request_limit"),
        .try_limit = config_get_int(cfg, "smtpd_policy_service_try_limit"),
    };
    rs->pending_key = buf_steal(&key);
    rs->policy_q = policyd_query(rs->base, endpoint, &set, buf_cstr(&req), policy_done, rs);
    buf_free(&req);
    return RC_PENDING;
}
