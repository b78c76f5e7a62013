/* Value checks that stand alone; see config_check.h. */
#include "config/config_check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/dnsname.h"
#include "lib/hostport.h"

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
