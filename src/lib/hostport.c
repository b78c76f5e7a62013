/* host:port parsing, one implementation for every caller (see hostport.h). */
#include "lib/hostport.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static int hostport_copy(char *dst, size_t size, const char *src, size_t n)
{
    if (n == 0 || n >= size)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

int hostport_split(const char *spec, unsigned flags, struct hostport *out)
{
    memset(out, 0, sizeof *out);
    const char *port = NULL;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL)
            return -1;
        const char *h = spec + 1;
        if (str_prefix_ci(h, "ipv6:"))
            h += 5;
        if (close < h || hostport_copy(out->host, sizeof out->host, h, (size_t)(close - h)) < 0)
            return -1;
        out->bracketed = 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return -1;
    } else {
        const char *colon = strchr(spec, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            unsigned char a[16];
            if (!(flags & HOSTPORT_BARE_IPV6) || inet_pton(AF_INET6, spec, a) != 1)
                return -1;
            colon = NULL;
        }
        size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
        if (hostport_copy(out->host, sizeof out->host, spec, n) < 0)
            return -1;
        if (colon)
            port = colon + 1;
    }
    if (port != NULL &&
        (*port == '\0' || str_copy(out->port, sizeof out->port, port) >= sizeof out->port))
        return -1;
    return 0;
}

int hostport_port(const char *s)
{
    static const struct {
        const char *name;
        int port;
    } services[] = {
        {"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"submissions", 465}, {"lmtp", 24}};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (str_eq_ci(s, services[i].name))
            return services[i].port;
    size_t n = strlen(s);
    if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
        return -1;
    long v = strtol(s, NULL, 10);
    return v >= 1 && v <= 65535 ? (int)v : -1;
}
