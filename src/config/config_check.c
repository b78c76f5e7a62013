/*
 * Value checks that stand alone, the type check of every main.cf value
 * among them; see config_check.h.
 */
#include "config/config_check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/dnsname.h"
#include "lib/hostport.h"
#include "lib/util.h"
#include "maps/maps.h"

/*
 * One host:port item, parsed as its users parse it (lib/hostport.h).
 * listen: "host:port", "[v6]:port", "*:port" or ":port", a port required;
 * otherwise relayhost's forms: host, host:port, [host], [host]:port.
 */
int config_hostport_ok(const char *item, int listen)
{
    struct hostport hp;
    if (listen && item[0] == ':') /* ":port": every address, as "*:port" */
        return hostport_port(item + 1) > 0;
    if (hostport_split(item, 0, &hp) < 0)
        return 0;
    if (hp.port[0] ? hostport_port(hp.port) < 0 : listen)
        return 0;
    if (listen && !hp.bracketed && strcmp(hp.host, "*") == 0)
        return 1;
    unsigned char addr[16];
    if (inet_pton(AF_INET, hp.host, addr) == 1 || inet_pton(AF_INET6, hp.host, addr) == 1)
        return 1;
    return dnsname_ok(hp.host, strlen(hp.host), DNSNAME_UNDERSCORE | DNSNAME_ROOT_DOT);
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

int config_parse_int(const char *s, long long *out)
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

int config_value_ok(const struct config_key *k, const char *val, struct buf *why)
{
    long long n;
    switch (k->type) {
    case CONFIG_BOOL:
        if (!str_eq_ci(val, "yes") && !str_eq_ci(val, "no")) {
            buf_printf(why, "%s: expected yes or no, not '%s'", k->name, val);
            return -1;
        }
        return 0;
    case CONFIG_INT:
        if (config_parse_int(val, &n) < 0) {
            buf_printf(why, "%s: expected a whole number, not '%s'", k->name, val);
            return -1;
        }
        if (k->choices && n > atoll(k->choices)) {
            buf_printf(why, "%s: at most %s, not '%s'", k->name, k->choices, val);
            return -1;
        }
        return 0;
    case CONFIG_TIME:
        if (config_parse_time(val, k->choices, &n) < 0) {
            buf_printf(why, "%s: expected a time like 300s, 5m, 2h or 5d, not '%s'", k->name, val);
            return -1;
        }
        return 0;
    case CONFIG_ENUM:
    case CONFIG_ENUM_LIST: {
        size_t count;
        char **words = strlist_split(val, &count);
        int rc = 0;
        if (k->type == CONFIG_ENUM && count != 1) {
            buf_printf(why, "%s: expected one of: %s", k->name, k->choices);
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (!config_word_in(words[i], k->choices)) {
                buf_printf(why, "%s: '%s' is not one of: %s", k->name, words[i], k->choices);
                rc = -1;
            }
        }
        strlist_free(words);
        return rc;
    }
    case CONFIG_NEXTHOP:
    case CONFIG_LISTEN: {
        size_t count;
        char **items = strlist_split(val, &count);
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < count; i++) {
            if (!config_hostport_ok(items[i], k->type == CONFIG_LISTEN)) {
                buf_printf(why, "%s: '%s' is not %s", k->name, items[i],
                           k->type == CONFIG_LISTEN
                               ? "host:port, [address]:port or *:port (port 1-65535)"
                               : "host, host:port, [host] or [host]:port (port 1-65535)");
                rc = -1;
            }
        }
        strlist_free(items);
        return rc;
    }
    case CONFIG_MAPS: {
        struct buf maps_why = BUF_INIT;
        int rc = map_list_check(val, &maps_why);
        if (rc < 0)
            buf_printf(why, "%s: %s", k->name, buf_cstr(&maps_why));
        buf_free(&maps_why);
        return rc;
    }
    case CONFIG_TABLE: {
        const char *colon = strchr(val, ':');
        int ok = *val == '\0' || (colon && colon > val && colon[1]);
        for (const char *p = val; ok && colon && p < colon; p++)
            ok = isalnum((unsigned char)*p) || *p == '_';
        if (!ok)
            buf_printf(why, "%s: expected TYPE:FILE (as btree:/var/lib/x), not '%s'", k->name, val);
        return ok ? 0 : -1;
    }
    default:
        return 0;
    }
}
