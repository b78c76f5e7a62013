/*
 * smtpd_milters / non_smtpd_milters and the milter_* keys, read into a
 * struct milter_conf (milter.h), with Postfix's per-filter overrides in
 * braces: "{ inet:127.0.0.1:8891, default_action=accept, command_timeout=10s }".
 */
#include "milter/milter.h"

#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"

static int conf_default_action(const char *s, enum milter_default *out)
{
    static const struct {
        const char *name;
        enum milter_default v;
    } t[] = {{"tempfail", MILTER_DEFAULT_TEMPFAIL},
             {"accept", MILTER_DEFAULT_ACCEPT},
             {"reject", MILTER_DEFAULT_REJECT},
             {"quarantine", MILTER_DEFAULT_QUARANTINE}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0) {
            *out = t[i].v;
            return 0;
        }
    return -1;
}

/* milter_protocol: one version (2, 3, 4, 6) and optionally no_header_reply. */
static int conf_protocol(const char *s, struct milter_spec *sp)
{
    size_t n = 0;
    char **words = strlist_split(s, &n);
    int rc = 0;
    sp->version = 0;
    sp->no_header_reply = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (strcmp(words[i], "no_header_reply") == 0)
            sp->no_header_reply = 1;
        else if (!sp->version && (strcmp(words[i], "2") == 0 || strcmp(words[i], "3") == 0 ||
                                  strcmp(words[i], "4") == 0 || strcmp(words[i], "6") == 0))
            sp->version = atoi(words[i]);
        else
            rc = -1;
    }
    strlist_free(words);
    return rc == 0 && sp->version ? 0 : -1;
}

/*
 * inet:host:port (host a numeric address, [v6], or localhost: names are
 * not looked up here, so that connecting never blocks the loop) or
 * unix:/path (local:/path).
 */
static int conf_endpoint(const char *ep, struct milter_spec *sp, struct buf *err)
{
    memset(&sp->addr, 0, sizeof sp->addr);
    if (strncmp(ep, "unix:", 5) == 0 || strncmp(ep, "local:", 6) == 0) {
        const char *path = strchr(ep, ':') + 1;
        struct sockaddr_un *un = (struct sockaddr_un *)&sp->addr;
        if (!path[0] || strlen(path) >= sizeof un->sun_path) {
            buf_printf(err, "milter %s: bad socket path", ep);
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        sp->addr_len = (socklen_t)sizeof *un;
        return 0;
    }
    if (strncmp(ep, "inet:", 5) != 0) {
        buf_printf(err, "milter %s: needs inet:host:port or unix:/path", ep);
        return -1;
    }
    const char *hp = ep + 5;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp) {
        buf_printf(err, "milter %s: needs inet:host:port", ep);
        return -1;
    }
    char host[256];
    size_t hl = (size_t)(colon - hp);
    if (hl >= sizeof host) {
        buf_printf(err, "milter %s: host name too long", ep);
        return -1;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        buf_printf(err, "milter %s: bad port", ep);
        return -1;
    }
    if (strcmp(host, "localhost") == 0)
        str_copy(host, sizeof host, "127.0.0.1");
    if (sockaddr_from_ip(host, (int)port, &sp->addr, &sp->addr_len) < 0) {
        buf_printf(err, "milter %s: the host must be an IP address or localhost", ep);
        return -1;
    }
    return 0;
}

/* One "name=value" override inside braces (the milter_ prefix left out, as in Postfix). */
static int conf_override(const char *item, struct milter_spec *sp, struct buf *err)
{
    const char *eq = strchr(item, '=');
    if (!eq) {
        buf_printf(err, "milter %s: expected name=value, got \"%s\"", sp->name, item);
        return -1;
    }
    size_t nl = (size_t)(eq - item);
    const char *v = eq + 1;
    int rc = -1;
    if (nl == 15 && strncmp(item, "connect_timeout", nl) == 0)
        rc = config_parse_time(v, "s", &sp->connect_timeout);
    else if (nl == 15 && strncmp(item, "command_timeout", nl) == 0)
        rc = config_parse_time(v, "s", &sp->command_timeout);
    else if (nl == 15 && strncmp(item, "content_timeout", nl) == 0)
        rc = config_parse_time(v, "s", &sp->content_timeout);
    else if (nl == 14 && strncmp(item, "default_action", nl) == 0)
        rc = conf_default_action(v, &sp->default_action);
    else if (nl == 8 && strncmp(item, "protocol", nl) == 0)
        rc = conf_protocol(v, sp);
    if (rc < 0)
        buf_printf(err, "milter %s: bad setting \"%s\"", sp->name, item);
    return rc;
}

/* Splits the list at commas and white space, keeping {...} groups whole. */
static char **conf_split(const char *s, size_t *count, struct buf *err)
{
    char **items = xcalloc(1, sizeof *items);
    size_t n = 0;
    while (*s) {
        if (*s == ',' || *s == ' ' || *s == '\t' || *s == '\n') {
            s++;
            continue;
        }
        const char *start = s;
        if (*s == '{') {
            const char *close = strchr(s, '}');
            if (!close) {
                buf_printf(err, "missing '}' in \"%s\"", start);
                strlist_free(items);
                return NULL;
            }
            s = close + 1;
        } else {
            while (*s && *s != ',' && *s != ' ' && *s != '\t' && *s != '\n')
                s++;
        }
        items = xrealloc(items, (n + 2) * sizeof *items);
        items[n++] = xstrndup(start, (size_t)(s - start));
        items[n] = NULL;
    }
    *count = n;
    return items;
}

struct milter_conf *milter_conf_load(const struct config *cfg, const char *list_key,
                                     struct buf *err)
{
    size_t n = 0;
    char **items = conf_split(config_get(cfg, list_key), &n, err);
    if (!items)
        return NULL;
    struct milter_conf *mc = xcalloc(1, sizeof *mc);
    mc->specs = xcalloc(n ? n : 1, sizeof *mc->specs);
    static const char *const macro_keys[MILTER_M_COUNT] = {
        [MILTER_M_CONNECT] = "milter_connect_macros",
        [MILTER_M_HELO] = "milter_helo_macros",
        [MILTER_M_ENVFROM] = "milter_mail_macros",
        [MILTER_M_ENVRCPT] = "milter_rcpt_macros",
        [MILTER_M_DATA] = "milter_data_macros",
        [MILTER_M_EOM] = "milter_end_of_data_macros",
        [MILTER_M_EOH] = "milter_end_of_header_macros",
    };
    for (int i = 0; i < MILTER_M_COUNT; i++)
        mc->macros[i] = xstrdup(config_get(cfg, macro_keys[i]));
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        struct milter_spec *sp = &mc->specs[mc->count++];
        sp->connect_timeout = config_get_time(cfg, "milter_connect_timeout");
        sp->command_timeout = config_get_time(cfg, "milter_command_timeout");
        sp->content_timeout = config_get_time(cfg, "milter_content_timeout");
        conf_default_action(config_get(cfg, "milter_default_action"), &sp->default_action);
        char *item = items[i];
        size_t sub_n = 0;
        char **sub;
        if (item[0] == '{') {
            item[strlen(item) - 1] = '\0';
            sub = strlist_split(item + 1, &sub_n);
        } else {
            sub = strlist_split(item, &sub_n);
        }
        if (sub_n == 0) {
            buf_printf(err, "%s: empty milter entry", list_key);
            ok = 0;
        } else {
            sp->name = xstrdup(sub[0]);
            if (conf_protocol(config_get(cfg, "milter_protocol"), sp) < 0) {
                buf_printf(err, "milter_protocol: bad value \"%s\"",
                           config_get(cfg, "milter_protocol"));
                ok = 0;
            }
            ok = ok && conf_endpoint(sub[0], sp, err) == 0;
            for (size_t k = 1; k < sub_n && ok; k++)
                ok = conf_override(sub[k], sp, err) == 0;
        }
        strlist_free(sub);
    }
    strlist_free(items);
    if (!ok) {
        milter_conf_free(mc);
        return NULL;
    }
    return mc;
}

void milter_conf_free(struct milter_conf *mc)
{
    if (!mc)
        return;
    for (size_t i = 0; i < mc->count; i++)
        free(mc->specs[i].name);
    free(mc->specs);
    for (int i = 0; i < MILTER_M_COUNT; i++)
        free(mc->macros[i]);
    free(mc);
}
