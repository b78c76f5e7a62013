/* Value checks that stand alone; see config_check.h. */
#include "config/config_check.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A port: 1-65535, or a service name when names are allowed (relayhost = host:submission). */
static int config_port_ok(const char *port, int names_allowed)
{
    if (*port == '\0')
        return 0;
    if (isdigit((unsigned char)*port)) {
        char *end;
        errno = 0;
        long n = strtol(port, &end, 10);
        return *end == '\0' && errno == 0 && n >= 1 && n <= 65535;
    }
    if (!names_allowed)
        return 0;
    for (const char *p = port; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return 0;
    return 1;
}

static int config_host_ok(const char *host, size_t len, int bracketed)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && !(bracketed && c == ':'))
            return 0;
    }
    return 1;
}

/*
 * One host:port item. listen: "host:port", "[v6]:port", "*:port" or ":port",
 * numeric port required; otherwise relayhost's forms: host, host:port,
 * [host], [host]:port.
 */
int config_hostport_ok(const char *item, int listen)
{
    const char *host = item, *port = NULL;
    size_t hlen;
    int bracketed = item[0] == '[';
    if (bracketed) {
        const char *close = strchr(item, ']');
        if (close == NULL)
            return 0;
        host = item + 1;
        hlen = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return 0;
    } else {
        const char *colon = strchr(item, ':');
        if (colon && strchr(colon + 1, ':'))
            return 0; /* an IPv6 address must be in brackets */
        hlen = colon ? (size_t)(colon - item) : strlen(item);
        port = colon ? colon + 1 : NULL;
    }
    if (listen) {
        if (port == NULL || !config_port_ok(port, 0))
            return 0;
        return hlen == 0 || (hlen == 1 && host[0] == '*') || config_host_ok(host, hlen, bracketed);
    }
    return config_host_ok(host, hlen, bracketed) && (port == NULL || config_port_ok(port, 1));
}
