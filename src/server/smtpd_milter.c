/* Macros for milters and envelope edits from them; see smtpd_milter.h. */
#include "server/smtpd_milter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/config.h"
#include "server/server.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/resolve.h"

const char *smtpd_milter_macro(void *arg, const char *name)
{
    struct smtpd_milter_info *in = arg;
    if (strcmp(name, "j") == 0)
        return in->myhostname;
    if (strcmp(name, "daemon_name") == 0)
        return in->daemon_name;
    if (strcmp(name, "v") == 0)
        return in->version;
    if (strcmp(name, "daemon_addr") == 0)
        return in->daemon_addr[0] ? in->daemon_addr : NULL;
    if (strcmp(name, "daemon_port") == 0) {
        snprintf(in->port, sizeof in->port, "%u", in->daemon_port);
        return in->port;
    }
    if (strcmp(name, "_") == 0) {
        /* Postfix: "ptr-name [addr]", and "(may be forged)" when it did not confirm. */
        const char *ptr = in->client_ptr ? in->client_ptr : in->client_name;
        snprintf(in->forged, sizeof in->forged, "%s [%s]%s", ptr, in->client_addr,
                 strcmp(ptr, in->client_name) != 0 ? " (may be forged)" : "");
        return in->forged;
    }
    if (strcmp(name, "client_addr") == 0)
        return in->client_addr;
    if (strcmp(name, "client_name") == 0)
        return in->client_name;
    if (strcmp(name, "client_ptr") == 0)
        return in->client_ptr ? in->client_ptr : in->client_name;
    if (strcmp(name, "client_port") == 0) {
        snprintf(in->port, sizeof in->port, "%u", in->client_port);
        return in->port;
    }
    if (strcmp(name, "i") == 0)
        return in->queue_id;
    if (strcmp(name, "auth_type") == 0)
        return in->auth_type;
    if (strcmp(name, "auth_authen") == 0 || strcmp(name, "auth_author") == 0)
        return in->auth_authen;
    if (strcmp(name, "mail_addr") == 0)
        return in->mail_addr;
    if (strcmp(name, "rcpt_addr") == 0)
        return in->rcpt_addr;
    if (strcmp(name, "rcpt_mailer") == 0)
        return in->rcpt_mailer;
    if (strcmp(name, "rcpt_host") == 0)
        return in->rcpt_host;
    if (strcmp(name, "tls_version") == 0)
        return in->tls_version;
    if (strcmp(name, "cipher") == 0)
        return in->cipher;
    if (strcmp(name, "cipher_bits") == 0 && in->cipher) {
        snprintf(in->bits, sizeof in->bits, "%d", in->cipher_bits);
        return in->bits;
    }
    return NULL;
}

static int env_has_rcpt(const struct envelope *env, const char *addr)
{
    for (size_t i = 0; i < env->nrcpts; i++)
        if (env->rcpts[i].state != RCPT_DELETED && str_eq_ci(env->rcpts[i].address, addr))
            return 1;
    return 0;
}

static void env_add(struct envelope *env, struct resolver *res, const char *addr)
{
    struct resolved_list list = {0};
    struct buf err = BUF_INIT;
    /* A local recipient is expanded as one given at RCPT would be. */
    if (resolver_classify(res, addr) == RESOLVE_LOCAL &&
        resolver_expand(res, addr, &list, &err) == MAP_FOUND && list.count) {
        for (size_t i = 0; i < list.count; i++)
            if (!env_has_rcpt(env, list.items[i].address))
                envelope_add_rcpt(env, list.items[i].address)->orcpt = xasprintf("rfc822;%s", addr);
    } else if (!env_has_rcpt(env, addr)) {
        /* Unknown or remote: delivery decides (and bounces an unknown one). */
        envelope_add_rcpt(env, addr)->orcpt = xasprintf("rfc822;%s", addr);
    }
    resolved_list_free(&list);
    buf_free(&err);
}

void smtpd_milter_apply_envelope(const struct milter_msg *msg, struct envelope *env,
                                 struct resolver *res, const char *queue_id)
{
    for (size_t i = 0; i < msg->nedits; i++) {
        const struct milter_env_edit *e = &msg->edits[i];
        switch (e->op) {
        case MILTER_ENV_CHGFROM: {
            free(env->sender);
            env->sender = xstrdup(e->addr);
            /* RET and ENVID are kept with the sender (Postfix 3.3); other parameters are not. */
            size_t n = 0;
            char **args = strlist_split(e->args, &n);
            for (size_t k = 0; k < n; k++) {
                if (str_prefix_ci(args[k], "RET=FULL"))
                    env->ret = DSN_RET_FULL;
                else if (str_prefix_ci(args[k], "RET=HDRS"))
                    env->ret = DSN_RET_HDRS;
                else if (str_prefix_ci(args[k], "ENVID=") && args[k][6]) {
                    free(env->envid);
                    env->envid = xstrdup(args[k] + 6);
                } else
                    log_warning("%s: ignoring bad ESMTP parameter \"%s\" in SMFI_CHGFROM "
                                "request",
                                queue_id, args[k]);
            }
            strlist_free(args);
            break;
        }
        case MILTER_ENV_ADDRCPT:
            if (e->args[0])
                log_warning("%s: cleanup_add_rcpt: ignoring ESMTP arguments \"%s\"", queue_id,
                            e->args);
            env_add(env, res, e->addr);
            break;
        case MILTER_ENV_DELRCPT: {
            /* The recipient as given at RCPT, and whatever it expanded to. */
            char *orcpt = xasprintf("rfc822;%s", e->addr);
            for (size_t k = 0; k < env->nrcpts; k++) {
                struct envelope_rcpt *r = &env->rcpts[k];
                if (str_eq_ci(r->address, e->addr) || (r->orcpt && str_eq_ci(r->orcpt, orcpt)))
                    r->state = RCPT_DELETED;
            }
            free(orcpt);
            break;
        }
        }
    }
}

char **smtpd_milter_argv(const char *addr, const char *args, size_t len)
{
    /* The parameters follow the path: skip to its closing '>' (quotes may hold one). */
    size_t i = 0;
    int quoted = 0;
    while (i < len && args[i] != '<')
        i++;
    for (; i < len; i++) {
        if (args[i] == '\\' && i + 1 < len)
            i++;
        else if (args[i] == '"')
            quoted = !quoted;
        else if (args[i] == '>' && !quoted)
            break;
    }
    /* Parameters are separated by spaces; commas belong to them (NOTIFY=SUCCESS,DELAY). */
    char **argv = xcalloc(2, sizeof *argv);
    size_t n = 1;
    argv[0] = xasprintf("<%s>", addr);
    for (i = i < len ? i + 1 : len; i < len;) {
        while (i < len && args[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && args[i] != ' ')
            i++;
        if (i > start) {
            argv = xrealloc(argv, (n + 2) * sizeof *argv);
            argv[n++] = xstrndup(args + start, i - start);
            argv[n] = NULL;
        }
    }
    return argv;
}

static unsigned sockaddr_port(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void smtpd_milter_info_init(struct smtpd_milter_info *in, const struct config *cfg,
                            const char *client_addr, const struct sockaddr_storage *peer, int fd)
{
    in->myhostname = config_get(cfg, "myhostname");
    in->daemon_name = config_get(cfg, "milter_macro_daemon_name");
    in->version = config_get(cfg, "milter_macro_v");
    in->client_addr = client_addr;
    in->client_port = sockaddr_port(peer);
    struct sockaddr_storage me;
    socklen_t me_len = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &me_len) == 0) {
        server_addr_text((struct sockaddr *)&me, in->daemon_addr, sizeof in->daemon_addr);
        in->daemon_port = sockaddr_port(&me);
    }
}

const char *smtpd_milter_where(char ev)
{
    switch (ev) {
    case MILTER_C_CONNECT:
        return "CONNECT";
    case MILTER_C_HELO:
        return "HELO";
    case MILTER_C_MAIL:
        return "MAIL";
    case MILTER_C_RCPT:
        return "RCPT";
    case MILTER_C_DATA:
        return "DATA";
    }
    return "END-OF-MESSAGE";
}

void smtpd_milter_log(const char *queue_id, const char *action, const char *where, const char *host,
                      const char *addr, const char *text, const char *from, const char *to,
                      const char *proto, const char *helo)
{
    struct buf l = BUF_INIT;
    buf_printf(&l, "%s: %s: %s from %s[%s]: %s;", queue_id, action, where, host, addr, text);
    if (from)
        buf_printf(&l, " from=<%s>", from);
    if (to)
        buf_printf(&l, " to=<%s>", to);
    buf_printf(&l, " proto=%s helo=<%s>", proto, helo ? helo : "");
    log_info("%s", buf_cstr(&l));
    buf_free(&l);
}
