/*
 * main.cf reader: logical lines (a line starting with white space continues
 * the previous one), '#' comments, key = value, then $name / ${name} /
 * ${name?text} / ${name:text} expansion with a depth guard against loops,
 * then a type check of every value. Errors name FILE:LINE.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_check.h"
#include "config/config_host.h"
#include "config/config_keys.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "version.h"

/* Deeper than any sane chain of $name references; a loop hits it fast. */
#define CONFIG_EXPAND_DEPTH 20
#define CONFIG_MAX_FILE (4 * 1024 * 1024)

struct config_value {
    char *raw;      /* as written, or the default */
    char *expanded; /* after $name expansion */
    int line;       /* 0: the default */
};

/* A Postfix key that is accepted and has no effect here (config_keys.h). */
struct config_ignored {
    char *name;
    char *value;
    int line;
    const char *reason;
};

/*
 * A key main.cf defines for itself: the restriction classes that
 * smtpd_restriction_classes names (Postfix's user-defined parameters).
 */
struct config_extra {
    char *name;
    char *value;
    int line;
};

struct config {
    char *path;
    struct config_ignored *ignored;
    size_t ignored_count;
    struct buf warnings; /* one line each, no trailing newline on the last */
    struct config_extra *extras;
    size_t nextras;
    struct config_value values[]; /* one per config_keys entry */
};

const char *config_locate(const char *cli_path)
{
    if (cli_path && *cli_path)
        return cli_path;
    const char *env = getenv("HONGYAN_CONFIG");
    if (env && *env)
        return env;
    struct stat st;
    if (stat("/etc/hongyan/main.cf", &st) == 0)
        return "/etc/hongyan/main.cf";
    return NULL;
}

static char *config_default_for(int idx, int embedded, const char *hostname)
{
    const char *name = config_keys[idx].name;
    if (config_keys[idx].fallback)
        return xstrdup(config_keys[idx].fallback);
    if (strcmp(name, "myhostname") == 0)
        return xstrdup(hostname);
    if (strcmp(name, "mynetworks") == 0)
        return config_default_mynetworks();
    if (strcmp(name, "mail_version") == 0)
        return xstrdup(HONGYAN_VERSION);
    if (strcmp(name, "data_directory") == 0) {
        if (!embedded)
            return xstrdup("/var/lib/hongyan");
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return xstrdup("./hongyan-data");
        return xasprintf("%s/hongyan-data", strcmp(cwd, "/") == 0 ? "" : cwd);
    }
    return xstrdup("");
}

static void config_error(struct buf *err, const struct config *cfg, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void config_error(struct buf *err, const struct config *cfg, int line, const char *fmt, ...)
{
    va_list ap;
    if (line > 0)
        buf_printf(err, "%s:%d: ", cfg->path ? cfg->path : "(embedded default)", line);
    else
        buf_printf(err, "%s: ", cfg->path ? cfg->path : "(embedded default)");
    va_start(ap, fmt);
    buf_vprintf(err, fmt, ap);
    va_end(ap);
}

static int config_expand(struct config *cfg, int idx, int depth, struct buf *err);

/*
 * Expands text (the value of key idx) into out. Nested references expand
 * recursively; depth catches $a -> $b -> $a.
 */
static int config_expand_text(struct config *cfg, int idx, const char *text, int depth,
                              struct buf *out, struct buf *err)
{
    const char *p = text;
    while (*p) {
        if (*p != '$') {
            buf_putc(out, *p++);
            continue;
        }
        p++;
        if (*p == '$') {
            buf_putc(out, *p++);
            continue;
        }
        char name[128];
        const char *alt = NULL;
        size_t alt_len = 0;
        char op = 0;
        size_t n = 0;
        if (*p == '{' || *p == '(') {
            char close = *p == '{' ? '}' : ')';
            p++;
            while (*p && (isalnum((unsigned char)*p) || *p == '_') && n < sizeof name - 1)
                name[n++] = *p++;
            if (*p == '?' || *p == ':') {
                op = *p++;
                alt = p;
                int nest = 0;
                while (*p && (nest > 0 || *p != close)) {
                    if (*p == '{')
                        nest++;
                    else if (*p == '}')
                        nest--;
                    p++;
                }
                alt_len = (size_t)(p - alt);
            }
            if (*p != close) {
                config_error(err, cfg, cfg->values[idx].line, "%s: unterminated $%c in value",
                             config_keys[idx].name, close == '}' ? '{' : '(');
                return -1;
            }
            p++;
        } else {
            while (*p && (isalnum((unsigned char)*p) || *p == '_') && n < sizeof name - 1)
                name[n++] = *p++;
        }
        name[n] = '\0';
        if (n == 0) {
            config_error(err, cfg, cfg->values[idx].line, "%s: '$' not followed by a key name",
                         config_keys[idx].name);
            return -1;
        }
        int ref = config_key_index(name);
        if (ref < 0) {
            config_error(err, cfg, cfg->values[idx].line, "%s: refers to unknown key '$%s'",
                         config_keys[idx].name, name);
            return -1;
        }
        if (config_expand(cfg, ref, depth + 1, err) < 0)
            return -1;
        const char *val = cfg->values[ref].expanded;
        if (op == 0) {
            buf_puts(out, val);
        } else if ((op == '?' && *val) || (op == ':' && !*val)) {
            /* ${name?{text}} allows braces around the text, as Postfix 3.0 does. */
            if (alt_len >= 2 && alt[0] == '{' && alt[alt_len - 1] == '}') {
                alt++;
                alt_len -= 2;
            }
            char *sub = xstrndup(alt, alt_len);
            int rc = config_expand_text(cfg, idx, sub, depth + 1, out, err);
            free(sub);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

static int config_expand(struct config *cfg, int idx, int depth, struct buf *err)
{
    struct config_value *v = &cfg->values[idx];
    if (v->expanded)
        return 0;
    if (config_keys[idx].type == CONFIG_TEMPLATE) {
        v->expanded = xstrdup(v->raw);
        return 0;
    }
    if (depth > CONFIG_EXPAND_DEPTH) {
        config_error(err, cfg, v->line, "%s: $name expansion loops", config_keys[idx].name);
        return -1;
    }
    struct buf out = BUF_INIT;
    if (config_expand_text(cfg, idx, v->raw, depth, &out, err) < 0) {
        buf_free(&out);
        return -1;
    }
    v->expanded = buf_steal(&out);
    return 0;
}

/* The type check of one value (config_check.c), its error at the key's line. */
static int config_check(struct config *cfg, int idx, struct buf *err)
{
    const struct config_value *v = &cfg->values[idx];
    struct buf why = BUF_INIT;
    int rc = config_value_ok(&config_keys[idx], v->expanded, &why);
    if (rc < 0)
        config_error(err, cfg, v->line, "%s", buf_cstr(&why));
    buf_free(&why);
    return rc;
}

static void config_warn(struct config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void config_warn(struct config *cfg, const char *fmt, ...)
{
    va_list ap;
    if (cfg->warnings.len)
        buf_putc(&cfg->warnings, '\n');
    va_start(ap, fmt);
    buf_vprintf(&cfg->warnings, fmt, ap);
    va_end(ap);
}

/* Postfix's words, so that habits and log greps carry over. */
static void config_warn_override(struct config *cfg, int line, const char *key, const char *old,
                                 const char *val)
{
    if (strcmp(old, val) != 0)
        config_warn(cfg, "%s, line %d: overriding earlier entry: %s=%s",
                    cfg->path ? cfg->path : "(text)", line, key, old);
}

/* A Postfix key with no effect here: remembered for `hongyan config` and the start-up log. */
static void config_note_ignored(struct config *cfg, const struct config_postfix_param *pf,
                                const char *val, int line)
{
    for (size_t i = 0; i < cfg->ignored_count; i++) {
        struct config_ignored *ig = &cfg->ignored[i];
        if (strcmp(ig->name, pf->name) == 0) {
            config_warn_override(cfg, line, pf->name, ig->value, val);
            free(ig->value);
            ig->value = xstrdup(val);
            ig->line = line;
            return;
        }
    }
    cfg->ignored = xrealloc(cfg->ignored, (cfg->ignored_count + 1) * sizeof *cfg->ignored);
    cfg->ignored[cfg->ignored_count++] = (struct config_ignored){
        .name = xstrdup(pf->name), .value = xstrdup(val), .line = line, .reason = pf->reason};
}

/* Parses one logical line "key = value" into cfg. */
static int config_parse_line(struct config *cfg, char *text, int line, struct buf *err)
{
    char *eq = strchr(text, '=');
    if (eq == NULL) {
        config_error(err, cfg, line, "missing '=' (expected 'key = value')");
        return -1;
    }
    *eq = '\0';
    char *key = str_trim(text);
    char *val = str_trim(eq + 1);
    if (*key == '\0') {
        config_error(err, cfg, line, "missing key before '='");
        return -1;
    }
    for (char *p = key; *p; p++) {
        /* Postfix allows '-' for master.cf service names (scalemail-backend_time_limit). */
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
            config_error(err, cfg, line, "'%s' is not a valid key name", key);
            return -1;
        }
    }
    int idx = config_key_index(key);
    if (idx < 0) {
        const struct config_postfix_param *pf = config_postfix_param(key);
        if (pf && pf->class == CONFIG_PF_IGNORED) {
            config_note_ignored(cfg, pf, val, line);
            return 0;
        }
        if (pf) {
            config_error(err, cfg, line, "%s: Postfix's key is not supported by hongyan: %s", key,
                         pf->reason ? pf->reason : "not implemented");
            return -1;
        }
        /* Perhaps a restriction class: config_finish() checks once all is read. */
        for (size_t i = 0; i < cfg->nextras; i++) {
            if (strcmp(cfg->extras[i].name, key) == 0) {
                free(cfg->extras[i].value);
                cfg->extras[i].value = xstrdup(val);
                cfg->extras[i].line = line;
                return 0;
            }
        }
        cfg->extras = xrealloc(cfg->extras, (cfg->nextras + 1) * sizeof *cfg->extras);
        cfg->extras[cfg->nextras++] = (struct config_extra){xstrdup(key), xstrdup(val), line};
        return 0;
    }
    if (config_keys[idx].type == CONFIG_READONLY) {
        config_error(err, cfg, line, "'%s' is read-only", key);
        return -1;
    }
    if (cfg->values[idx].line > 0)
        config_warn_override(cfg, line, key, cfg->values[idx].raw, val);
    free(cfg->values[idx].raw);
    cfg->values[idx].raw = xstrdup(val);
    cfg->values[idx].line = line;
    return 0;
}

static int config_parse(struct config *cfg, const char *text, size_t len, struct buf *err)
{
    struct buf logical = BUF_INIT;
    int logical_line = 0, line = 0;
    const char *p = text, *end = text + len;
    int rc = 0;
    while (rc == 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        if (memchr(p, '\0', n)) {
            config_error(err, cfg, line, "NUL byte in configuration file");
            rc = -1;
            break;
        }
        char *raw = xstrndup(p, n);
        p += n + (nl ? 1 : 0);
        if (n && raw[n - 1] == '\r')
            raw[n - 1] = '\0';
        char *trimmed = str_trim(raw);
        if (*trimmed == '\0' || *trimmed == '#') {
            free(raw);
            continue;
        }
        if (isspace((unsigned char)raw[0])) {
            if (logical_line == 0) {
                config_error(err, cfg, line, "continuation line without a key before it");
                rc = -1;
            } else {
                buf_putc(&logical, ' ');
                buf_puts(&logical, trimmed);
            }
            free(raw);
            continue;
        }
        if (logical_line)
            rc = config_parse_line(cfg, logical.data, logical_line, err);
        buf_set(&logical, trimmed);
        logical_line = line;
        free(raw);
    }
    if (rc == 0 && logical_line)
        rc = config_parse_line(cfg, logical.data, logical_line, err);
    buf_free(&logical);
    return rc;
}

static struct config *config_with_defaults(const char *path, int embedded)
{
    struct config *cfg = xcalloc(1, sizeof *cfg + config_key_count * sizeof(struct config_value));
    cfg->path = path ? xstrdup(path) : NULL;
    char *hostname = config_default_hostname();
    for (size_t i = 0; i < config_key_count; i++)
        cfg->values[i].raw = config_default_for((int)i, embedded, hostname);
    free(hostname);
    return cfg;
}

/* Debian's myorigin = /etc/mailname: Postfix uses the first line of the file. */
static int config_myorigin_file(struct config *cfg, struct buf *err)
{
    int idx = config_key_index("myorigin");
    if (config_expand(cfg, idx, 0, err) < 0)
        return -1;
    struct config_value *v = &cfg->values[idx];
    if (v->expanded[0] != '/')
        return 0;
    /* A device or FIFO could block or never end; Postfix's mailname is a plain file. */
    struct stat st;
    if (stat(v->expanded, &st) == 0 && !S_ISREG(st.st_mode)) {
        config_error(err, cfg, v->line, "myorigin: %s is not a regular file", v->expanded);
        return -1;
    }
    struct buf text = BUF_INIT;
    if (read_file(v->expanded, &text, 4096) < 0) {
        config_error(err, cfg, v->line, "myorigin: cannot read %s: %s", v->expanded,
                     strerror(errno));
        buf_free(&text);
        return -1;
    }
    char *first = xstrdup(buf_cstr(&text));
    first[strcspn(first, "\r\n")] = '\0';
    char *name = str_trim(first);
    int ok = *name && strcspn(name, " \t/@") == strlen(name);
    if (!ok)
        config_error(err, cfg, v->line, "myorigin: the first line of %s is not a domain name",
                     v->expanded);
    else {
        free(v->expanded);
        v->expanded = xstrdup(name);
    }
    free(first);
    buf_free(&text);
    return ok ? 0 : -1;
}

static int config_has_word(char **words, size_t count, const char *word)
{
    for (size_t i = 0; i < count; i++)
        if (str_eq_ci(words[i], word))
            return 1;
    return 0;
}

/*
 * Postfix's inet_interfaces and inet_protocols, when smtpd_listen is not set:
 * the smtp service (port 25) on those addresses, as master.cf's "smtp inet"
 * line would listen.
 */
static int config_inet_listen(struct config *cfg, struct buf *err)
{
    int listen = config_key_index("smtpd_listen");
    int ifs = config_key_index("inet_interfaces"), protos = config_key_index("inet_protocols");
    if (cfg->values[listen].line > 0 ||
        (cfg->values[ifs].line == 0 && cfg->values[protos].line == 0))
        return 0;
    if (config_expand(cfg, ifs, 0, err) < 0 || config_expand(cfg, protos, 0, err) < 0 ||
        config_check(cfg, protos, err) < 0)
        return -1;
    size_t np, ni;
    char **p = strlist_split(cfg->values[protos].expanded, &np);
    int v4 = config_has_word(p, np, "all") || config_has_word(p, np, "ipv4");
    int v6 = config_has_word(p, np, "all") || config_has_word(p, np, "ipv6");
    strlist_free(p);
    char **names = strlist_split(cfg->values[ifs].expanded, &ni);
    struct buf out = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < ni; i++) {
        const char *n = names[i];
        if (str_eq_ci(n, "all"))
            buf_puts(&out, v4 && v6 ? " *:25" : v4 ? " 0.0.0.0:25" : " [::]:25");
        else if (str_eq_ci(n, "loopback-only") || str_eq_ci(n, "localhost"))
            buf_printf(&out, "%s%s", v4 ? " 127.0.0.1:25" : "", v6 ? " [::1]:25" : "");
        else if (strchr(n, ':')) {
            /* [::1] or ::1 */
            size_t len = strlen(n);
            if (n[0] == '[' && len > 2 && n[len - 1] == ']')
                buf_printf(&out, " %s:25", n);
            else
                buf_printf(&out, " [%s]:25", n);
            if (!v6) {
                config_error(err, cfg, cfg->values[ifs].line,
                             "inet_interfaces: %s is IPv6 but inet_protocols has no ipv6", n);
                rc = -1;
            }
        } else
            buf_printf(&out, " %s:25", n);
    }
    strlist_free(names);
    if (rc == 0 && out.len == 0) {
        config_error(err, cfg, cfg->values[ifs].line, "inet_interfaces: no address to listen on");
        rc = -1;
    }
    if (rc == 0) {
        free(cfg->values[listen].raw);
        cfg->values[listen].raw = xstrdup(buf_cstr(&out) + 1);
        free(cfg->values[listen].expanded);
        cfg->values[listen].expanded = NULL;
    }
    buf_free(&out);
    return rc;
}

/* Checks across keys, after each key's own check. */
static int config_check_together(struct config *cfg, struct buf *err)
{
    long long mailbox = config_get_int(cfg, "mailbox_size_limit");
    long long message = config_get_int(cfg, "message_size_limit");
    int mbx = config_key_index("mailbox_size_limit");
    /* Postfix refuses this too: every accepted message would then bounce at delivery. */
    if (mailbox != 0 && (message == 0 || mailbox < message)) {
        config_error(err, cfg, cfg->values[mbx].line,
                     "mailbox_size_limit (%lld) is smaller than message_size_limit (%lld)", mailbox,
                     message);
        return -1;
    }
    /* Values kept in fixed buffers elsewhere (config.h): refused here, never cut there. */
    static const struct {
        const char *key;
        size_t max;
    } limits[] = {{"myhostname", CONFIG_HOSTNAME_MAX},
                  {"authserv_id", CONFIG_HOSTNAME_MAX},
                  {"data_directory", CONFIG_DATA_DIR_MAX}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const char *v = config_get(cfg, limits[i].key);
        if (strlen(v) > limits[i].max) {
            config_error(err, cfg, cfg->values[config_key_index(limits[i].key)].line,
                         "%s is longer than %zu octets", limits[i].key, limits[i].max);
            return -1;
        }
    }
    /* Postfix 3's default; appending .$mydomain to user@host is not implemented. */
    if (config_get_bool(cfg, "append_dot_mydomain")) {
        config_error(err, cfg, cfg->values[config_key_index("append_dot_mydomain")].line,
                     "append_dot_mydomain = yes is not supported: hongyan leaves user@host as it "
                     "is (Postfix 3's default, no)");
        return -1;
    }
    return 0;
}

static int config_finish(struct config *cfg, struct buf *err)
{
    /* Postfix: mydomain defaults to $myhostname minus its first component. */
    int host = config_key_index("myhostname"), dom = config_key_index("mydomain");
    if (cfg->values[dom].line == 0) {
        if (config_expand(cfg, host, 0, err) < 0)
            return -1;
        const char *dot = strchr(cfg->values[host].expanded, '.');
        free(cfg->values[dom].raw);
        cfg->values[dom].raw = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
    }
    if (config_myorigin_file(cfg, err) < 0 || config_inet_listen(cfg, err) < 0)
        return -1;
    for (size_t i = 0; i < config_key_count; i++) {
        if (config_expand(cfg, (int)i, 0, err) < 0 || config_check(cfg, (int)i, err) < 0)
            return -1;
    }
    if (config_check_together(cfg, err) < 0)
        return -1;
    /* A key that is neither ours nor a declared restriction class is a typo. */
    size_t nclasses = 0;
    char **classes = config_get_list(cfg, "smtpd_restriction_classes", &nclasses);
    for (size_t i = 0; i < cfg->nextras; i++) {
        size_t k = 0;
        while (k < nclasses && strcmp(classes[k], cfg->extras[i].name) != 0)
            k++;
        if (k == nclasses) {
            const char *key = cfg->extras[i].name;
            const char *near = config_key_suggest(key);
            if (near)
                config_error(err, cfg, cfg->extras[i].line, "unknown key '%s' (did you mean '%s'?)",
                             key, near);
            else
                config_error(err, cfg, cfg->extras[i].line, "unknown key '%s'", key);
            strlist_free(classes);
            return -1;
        }
    }
    strlist_free(classes);
    return 0;
}

struct config *config_defaults(int embedded)
{
    struct config *cfg = config_with_defaults(NULL, embedded);
    struct buf err = BUF_INIT;
    if (config_finish(cfg, &err) < 0) {
        fprintf(stderr, "hongyan: internal error: defaults do not check: %s\n", buf_cstr(&err));
        abort();
    }
    buf_free(&err);
    return cfg;
}

struct config *config_load_text(const char *name, const char *text, size_t len, struct buf *err)
{
    struct config *cfg = config_with_defaults(name, 0);
    if (config_parse(cfg, text, len, err) < 0 || config_finish(cfg, err) < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct config *config_load(const char *path, struct buf *err)
{
    if (path == NULL)
        return config_defaults(1);
    struct buf text = BUF_INIT;
    if (read_file(path, &text, CONFIG_MAX_FILE) < 0) {
        buf_printf(err, "%s: cannot read: %s", path, strerror(errno));
        buf_free(&text);
        return NULL;
    }
    struct config *cfg = config_load_text(path, buf_cstr(&text), text.len, err);
    buf_free(&text);
    return cfg;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < config_key_count; i++) {
        free(cfg->values[i].raw);
        free(cfg->values[i].expanded);
    }
    for (size_t i = 0; i < cfg->ignored_count; i++) {
        free(cfg->ignored[i].name);
        free(cfg->ignored[i].value);
    }
    free(cfg->ignored);
    buf_free(&cfg->warnings);
    for (size_t i = 0; i < cfg->nextras; i++) {
        free(cfg->extras[i].name);
        free(cfg->extras[i].value);
    }
    free(cfg->extras);
    free(cfg->path);
    free(cfg);
}

const char *config_file(const struct config *cfg)
{
    return cfg->path;
}

static const struct config_value *config_value_of(const struct config *cfg, const char *key)
{
    int idx = config_key_index(key);
    if (idx < 0) {
        fprintf(stderr, "hongyan: internal error: unknown configuration key '%s'\n", key);
        abort();
    }
    return &cfg->values[idx];
}

const char *config_get(const struct config *cfg, const char *key)
{
    return config_value_of(cfg, key)->expanded;
}

const char *config_get_raw(const struct config *cfg, const char *key)
{
    return config_value_of(cfg, key)->raw;
}

long long config_get_int(const struct config *cfg, const char *key)
{
    long long n = 0;
    config_parse_int(config_get(cfg, key), &n);
    return n;
}

int config_get_bool(const struct config *cfg, const char *key)
{
    return str_eq_ci(config_get(cfg, key), "yes");
}

long long config_get_time(const struct config *cfg, const char *key)
{
    long long n = 0;
    int idx = config_key_index(key);
    config_parse_time(config_get(cfg, key),
                      idx >= 0 && config_keys[idx].choices ? config_keys[idx].choices : "s", &n);
    return n;
}

char **config_get_list(const struct config *cfg, const char *key, size_t *count)
{
    return strlist_split(config_get(cfg, key), count);
}

int config_is_set(const struct config *cfg, const char *key)
{
    return config_value_of(cfg, key)->line > 0;
}

const char *config_warnings(const struct config *cfg)
{
    return buf_cstr(&cfg->warnings);
}

size_t config_ignored_count(const struct config *cfg)
{
    return cfg->ignored_count;
}

const char *config_ignored(const struct config *cfg, size_t i, const char **value,
                           const char **reason, int *line)
{
    const struct config_ignored *ig = &cfg->ignored[i];
    if (value)
        *value = ig->value;
    if (reason)
        *reason = ig->reason;
    if (line)
        *line = ig->line;
    return ig->name;
}

const char *config_ignored_value(const struct config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->ignored_count; i++)
        if (strcmp(cfg->ignored[i].name, key) == 0)
            return cfg->ignored[i].value;
    return NULL;
}

void config_log_notes(const struct config *cfg, int with_ignored)
{
    const char *w = buf_cstr(&cfg->warnings);
    while (*w) {
        size_t n = strcspn(w, "\n");
        log_warning("%.*s", (int)n, w);
        w += n + (w[n] == '\n');
    }
    for (size_t i = 0; with_ignored && i < cfg->ignored_count; i++)
        log_info("%s, line %d: %s = %s: ignored: %s", cfg->path ? cfg->path : "(text)",
                 cfg->ignored[i].line, cfg->ignored[i].name, cfg->ignored[i].value,
                 cfg->ignored[i].reason);
}
const char *config_get_class(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nextras; i++)
        if (strcmp(cfg->extras[i].name, name) == 0)
            return cfg->extras[i].value;
    return NULL;
}
