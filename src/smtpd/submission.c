/*
 * Where TLS and AUTH apply in an SMTP session, sender ownership for
 * logged-in users, and the Received header words for them; see submission.h.
 */
#include "smtpd/submission.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "smtp/address.h"
#include "smtpd/auth.h"
#include "tls/tls.h"

int submission_starttls_offered(const struct config *cfg, enum listener_kind kind,
                                int have_tls_context, int tls_active)
{
    if (!have_tls_context || tls_active || kind == LISTEN_SMTPS)
        return 0;
    if (kind == LISTEN_SMTPD)
        return strcmp(config_get(cfg, "smtpd_tls_security_level"), "none") != 0;
    return 1;
}

int submission_tls_required(const struct config *cfg, enum listener_kind kind)
{
    if (kind == LISTEN_SUBMISSION)
        return 1;
    if (kind == LISTEN_SMTPD)
        return strcmp(config_get(cfg, "smtpd_tls_security_level"), "encrypt") == 0;
    return 0; /* smtps is TLS from the first byte */
}

int submission_auth_enabled(const struct config *cfg, enum listener_kind kind,
                            const struct auth *auth)
{
    if (!auth_available(auth))
        return 0;
    if (kind == LISTEN_SMTPD)
        return config_get_bool(cfg, "smtpd_sasl_auth_enable");
    return 1;
}

int submission_auth_offered(const struct config *cfg, enum listener_kind kind,
                            const struct auth *auth, int tls_active)
{
    if (!submission_auth_enabled(cfg, kind, auth))
        return 0;
    return tls_active || !config_get_bool(cfg, "smtpd_tls_auth_only");
}

const char *submission_auth_refusal(const struct config *cfg, enum listener_kind kind,
                                    const struct auth *auth, int tls_active, int authenticated)
{
    if (!submission_auth_enabled(cfg, kind, auth))
        return "503 5.5.1 Error: authentication not enabled";
    /* RFC 4954 section 4: AUTH is not permitted once authenticated. */
    if (authenticated)
        return "503 5.5.1 Error: already authenticated";
    /* RFC 4954 section 6: the plaintext mechanisms need an encrypted channel. */
    if (!tls_active && config_get_bool(cfg, "smtpd_tls_auth_only"))
        return "538 5.7.11 Encryption required for requested authentication mechanism";
    return NULL;
}

int submission_auth_required(enum listener_kind kind)
{
    return kind == LISTEN_SUBMISSION || kind == LISTEN_SMTPS;
}

/* 1 when user is one of the logins in value (a main.cf-style list). */
static int submission_owner_listed(const char *value, const char *user)
{
    char **owners = strlist_split(value, NULL);
    int found = 0;
    for (size_t i = 0; owners[i] && !found; i++)
        found = strcmp(owners[i], user) == 0;
    strlist_free(owners);
    return found;
}

int submission_sender_login_decide(submission_login_lookup_fn lookup, void *ctx, const char *sender,
                                   const char *user, struct buf *reply)
{
    if (sender[0] == '\0')
        return 0;
    struct buf err = BUF_INIT, value = BUF_INIT;
    int rc = -1;
    const char *keys[2] = {sender, strrchr(sender, '@')};
    for (int i = 0; i < 2; i++) {
        if (keys[i] == NULL)
            continue;
        enum map_result r = lookup(ctx, keys[i], &value, &err);
        if (r == MAP_TEMPFAIL) {
            /* Postfix's reject_dict_retry() text; the reason goes to the log, not the client. */
            log_warning("smtpd_sender_login_maps lookup for <%s> failed: %s", keys[i],
                        buf_cstr(&err));
            buf_printf(reply, "451 4.3.0 <%s>: Temporary lookup failure", sender);
            rc = -2;
            goto out;
        }
        if (r == MAP_FOUND) {
            /* The most specific entry decides (Postfix: address before @domain). */
            rc = submission_owner_listed(buf_cstr(&value), user) ? 0 : -1;
            break;
        }
    }
    if (rc == -1)
        buf_printf(reply, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", sender,
                   user);
out:
    buf_free(&value);
    buf_free(&err);
    return rc;
}

static enum map_result submission_list_lookup(void *ctx, const char *key, struct buf *value,
                                              struct buf *err)
{
    return map_list_lookup(ctx, key, value, err);
}

int submission_sender_login_check(const struct config *cfg, const char *sender, const char *user,
                                  struct buf *reply)
{
    const char *specs = config_get(cfg, "smtpd_sender_login_maps");
    if (specs[0] == '\0' || sender[0] == '\0')
        return 0;
    struct buf err = BUF_INIT;
    struct map_list *maps = map_list_open(specs, &err);
    if (maps == NULL) {
        /* A broken setting must not open senders to everyone: try later, and say why in the log. */
        log_warning("smtpd_sender_login_maps: %s", buf_cstr(&err));
        buf_printf(reply, "451 4.3.0 <%s>: Temporary lookup failure", sender);
        buf_free(&err);
        return -2;
    }
    buf_free(&err);
    int rc = submission_sender_login_decide(submission_list_lookup, maps, sender, user, reply);
    map_list_free(maps);
    return rc;
}

const char *submission_received_with(int esmtp, int tls_active, int authenticated)
{
    if (!esmtp)
        return tls_active ? "SMTPS" : "SMTP";
    if (tls_active)
        return authenticated ? "ESMTPSA" : "ESMTPS";
    return authenticated ? "ESMTPA" : "ESMTP";
}

/*
 * RFC 5322 section 3.2.2: inside a comment, "(", ")" and "\\" are quoted;
 * bytes that are not text (the login is the client's) become '?'.
 */
static void submission_comment_text(struct buf *out, const char *s)
{
    char *text = smtp_printable(xstrdup(s), '?');
    for (const char *p = text; *p; p++) {
        if (*p == '(' || *p == ')' || *p == '\\')
            buf_putc(out, '\\');
        buf_putc(out, *p);
    }
    free(text);
}

void submission_received_comment(const struct config *cfg, SSL *ssl, const char *user,
                                 struct buf *out)
{
    if (ssl) {
        buf_puts(out, "(using ");
        tls_describe(ssl, out);
        buf_putc(out, ')');
    }
    if (user && user[0] && config_get_bool(cfg, "smtpd_sasl_authenticated_header")) {
        if (ssl)
            buf_putc(out, ' ');
        buf_puts(out, "(Authenticated sender: ");
        submission_comment_text(out, user);
        buf_putc(out, ')');
    }
}
