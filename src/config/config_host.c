/*
 * The defaults main.cf takes from the host (Postfix's): myhostname from the
 * resolver, mynetworks from the interfaces; and, for a process that must not
 * look them up again after its start (the keeper, which has no socket), a
 * way to keep the first answers (config_freeze_host_defaults, config.h).
 */
#include "config/config_host.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/*
 * The host-derived defaults as first computed, for a process that must not
 * ask again (the keeper: no socket after its start); NULL until frozen.
 */
static char *config_frozen_hostname, *config_frozen_mynetworks;
static int config_frozen;

/* Postfix wants a fully qualified myhostname; ask the resolver for one. */
static char *config_default_hostname_lookup(void);
static char *config_default_mynetworks_lookup(void);

char *config_default_hostname(void)
{
    if (config_frozen)
        return xstrdup(config_frozen_hostname);
    return config_default_hostname_lookup();
}

char *config_default_mynetworks(void)
{
    if (config_frozen)
        return xstrdup(config_frozen_mynetworks);
    return config_default_mynetworks_lookup();
}

void config_freeze_host_defaults(void)
{
    if (config_frozen)
        return;
    config_frozen_hostname = config_default_hostname_lookup();
    config_frozen_mynetworks = config_default_mynetworks_lookup();
    config_frozen = 1;
}

static char *config_default_hostname_lookup(void)
{
    char name[CONFIG_HOSTNAME_MAX + 1] = "localhost";
    if (gethostname(name, sizeof name - 1) != 0)
        str_copy(name, sizeof name, "localhost");
    name[sizeof name - 1] = '\0';
    if (strchr(name, '.') == NULL) {
        struct addrinfo hints = {.ai_flags = AI_CANONNAME, .ai_family = AF_UNSPEC};
        struct addrinfo *res = NULL;
        /* A canonical name that does not fit (not a DNS name then) is not used. */
        if (getaddrinfo(name, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
            strchr(res->ai_canonname, '.') && strlen(res->ai_canonname) < sizeof name)
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
static char *config_default_mynetworks_lookup(void)
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
