/*
 * Listening sockets from smtpd_listen, submission_listen, smtps_listen and
 * metrics_listen.
 * Addresses are "host:port", "[v6]:port", or "*:port" / ":port" for every
 * address (one dual-stack socket when the kernel allows it).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "lib/hostport.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* Deep enough for a burst of 100+ parallel clients and the 10k idle-session bench. */
#define LISTEN_BACKLOG 4096

/* "host:port", "[address]:port", "*:port" or ":port" (the last two: every address). */
static int listen_split(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    struct hostport hp;
    const char *addr = "";
    int p;
    if (spec[0] == ':') {
        p = hostport_port(spec + 1);
    } else {
        if (hostport_split(spec, 0, &hp) < 0)
            return -1;
        p = hostport_port(hp.port);
        if (hp.bracketed || strcmp(hp.host, "*") != 0)
            addr = hp.host;
    }
    if (p < 0 || str_copy(host, hostlen, addr) >= hostlen)
        return -1;
    return snprintf(port, portlen, "%d", p) < (int)portlen ? 0 : -1;
}

static int listen_one(const char *key, const char *spec, enum listener_kind kind,
                      struct listen_sock **socks, int *count, struct buf *err)
{
    char host[256], port[32];
    if (listen_split(spec, host, sizeof host, port, sizeof port) < 0) {
        buf_printf(err, "%s: '%s' is not host:port or [address]:port", key, spec);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    hints.ai_family = host[0] ? AF_UNSPEC : AF_INET6;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 && !host[0]) {
        hints.ai_family = AF_INET; /* no IPv6 on this host */
        rc = getaddrinfo(NULL, port, &hints, &res);
    }
    if (rc != 0) {
        buf_printf(err, "%s: cannot resolve '%s': %s", key, spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && !host[0])
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
            break;
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        buf_printf(err, "%s: cannot listen on %s: %s", key, spec, strerror(errno));
        return -1;
    }
    *socks = xrealloc(*socks, (size_t)(*count + 1) * sizeof **socks);
    (*socks)[*count].fd = fd;
    (*socks)[*count].kind = kind;
    (*socks)[*count].addr = xstrdup(spec);
    (*count)++;
    return 0;
}

int daemon_listeners_bind(const struct config *cfg, struct listen_sock **out, struct buf *err)
{
    static const struct {
        const char *key;
        enum listener_kind kind;
    } keys[] = {
        {"smtpd_listen", LISTEN_SMTPD},
        {"submission_listen", LISTEN_SUBMISSION},
        {"smtps_listen", LISTEN_SMTPS},
        {"metrics_listen", LISTEN_METRICS},
    };
    struct listen_sock *socks = NULL;
    int count = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        char **list = config_get_list(cfg, keys[k].key, NULL);
        for (char **p = list; *p; p++) {
            if (listen_one(keys[k].key, *p, keys[k].kind, &socks, &count, err) < 0) {
                strlist_free(list);
                daemon_listeners_free(socks, count);
                return -1;
            }
        }
        strlist_free(list);
    }
    *out = socks;
    return count;
}

void daemon_listeners_free(struct listen_sock *socks, int count)
{
    for (int i = 0; i < count; i++) {
        if (socks[i].fd >= 0)
            close(socks[i].fd);
        free(socks[i].addr);
    }
    free(socks);
}
