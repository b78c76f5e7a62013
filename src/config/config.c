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

#include "config/config_keys.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "version.h"

/* Deeper than any sane chain of $name references; a loop hits it fast. */
#define CONFIG_EXPAND_DEPTH 20
#define CONFIG_MAX_FILE (4 * 1024 * 1024)

struct config_value {
    char *raw;      /* as written, or the default */
    char *expanded; /* after $name expansion */
    int line;       /* 0: the default */
};

struct config {
    char *path;
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

/* Postfix wants a fully qualified myhostname; ask the resolver for one. */
static char *config_default_hostname(void)
{
    char name[256] = "localhost";
    if (gethostname(name, sizeof name - 1) != 0)
        str_copy(name, sizeof name, "localhost");
    name[sizeof name - 1] = '\0';
    if (strchr(name, '.') == NULL) {
        struct addrinfo hints = {.ai_flags = AI_CANONNAME, .ai_family = AF_UNSPEC};
        struct addrinfo *res = NULL;
        if (getaddrinfo(name, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
            strchr(res->ai_canonname, '.'))
            str_copy(name, sizeof name, res->ai_canonname);
        if (res)
            freeaddrinfo(res);
    }
    if (strchr(name, '.') == NULL)
        return xasprintf("%s.localdomain", name);
    str_lower(name);
    return xstrdup(name);
}

/* Postfix 3's mynetworks_style = host: this host's own addresses. */
static char *config_default_mynetworks(void)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "127.0.0.0/8 [::1]/128");
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (i->ifa_addr == NULL)
                continue;
            char text[INET6_ADDRSTRLEN];
            if (i->ifa_addr->sa_family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;
                if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
                    continue;
                inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
                buf_printf(&b, " %s/32", text);
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)i->ifa_addr;
                if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
                    IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
                    continue;
                inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
                buf_printf(&b, " [%s]/128", text);
            }
        }
        freeifaddrs(ifs);
    }
    return buf_steal(&b);
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

int config_parse_time(const char *s, const char *default_unit, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || errno || n < 0)
        return -1;
    const char *unit = *end ? end : default_unit;
    if (unit[0] && unit[1])
        return -1;
    long long mult;
    switch (unit[0]) {
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'w':
        mult = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (n > (long long)1e12 / mult)
        return -1;
    *out = n * mult;
    return 0;
}

static int config_parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || *end || errno || n < 0)
        return -1;
    *out = n;
    return 0;
}

static int config_word_in(const char *word, const char *choices)
{
    size_t len = strlen(word);
    for (const char *p = choices; *p;) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (n == len && strncasecmp(p, word, n) == 0)
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static int config_check(struct config *cfg, int idx, struct buf *err)
{
    const struct config_key *k = &config_keys[idx];
    const struct config_value *v = &cfg->values[idx];
    const char *val = v->expanded;
    long long n;
    switch (k->type) {
    case CONFIG_BOOL:
        if (!str_eq_ci(val, "yes") && !str_eq_ci(val, "no")) {
            config_error(err, cfg, v->line, "%s: expected yes or no, not '%s'", k->name, val);
            return -1;
        }
        return 0;
    case CONFIG_INT:
        if (config_parse_int(val, &n) < 0) {
            config_error(err, cfg, v->line, "%s: expected a whole number, not '%s'", k->name, val);
            return -1;
        }
        return 0;
    case CONFIG_TIME:
        if (config_parse_time(val, k->choices, &n) < 0) {
            config_error(err, cfg, v->line, "%s: expected a time like 300s, 5m, 2h or 5d, not '%s'",
                         k->name, val);
            return -1;
        }
        return 0;
    case CONFIG_ENUM:
    case CONFIG_ENUM_LIST: {
        size_t count;
        char **words = strlist_split(val, &count);
        int rc = 0;
        if (k->type == CONFIG_ENUM && count != 1) {
            config_error(err, cfg, v->line, "%s: expected one of: %s", k->name, k->choices);
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (!config_word_in(words[i], k->choices)) {
                config_error(err, cfg, v->line, "%s: '%s' is not one of: %s", k->name, words[i],
                             k->choices);
                rc = -1;
            }
        }
        strlist_free(words);
        return rc;
    }
    default:
        return 0;
    }
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
        if (!isalnum((unsigned char)*p) && *p != '_') {
            config_error(err, cfg, line, "'%s' is not a valid key name", key);
            return -1;
        }
    }
    int idx = config_key_index(key);
    if (idx < 0) {
        config_error(err, cfg, line, "unknown key '%s'", key);
        return -1;
    }
    if (config_keys[idx].type == CONFIG_READONLY) {
        config_error(err, cfg, line, "'%s' is read-only", key);
        return -1;
    }
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
    for (size_t i = 0; i < config_key_count; i++) {
        if (config_expand(cfg, (int)i, 0, err) < 0 || config_check(cfg, (int)i, err) < 0)
            return -1;
    }
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
