/*
 * Fuzz target for the PROXY protocol v1/v2 header parser: the first bytes
 * of a connection on a listener behind smtpd_upstream_proxy_protocol.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t used = 0;
    struct sockaddr_storage src;
    socklen_t src_len = 0;
    const char *why = NULL;
    enum proxy_parse_result r = proxy_parse(data, size, &used, &src, &src_len, &why);
    /* A whole header never claims more bytes than were given. */
    if ((r == PROXY_PARSE_OK || r == PROXY_PARSE_LOCAL) && (used == 0 || used > size))
        __builtin_trap();
    if (r == PROXY_PARSE_OK && (src_len == 0 || src_len > sizeof src))
        __builtin_trap();
    if (r == PROXY_PARSE_BAD && (why == NULL || why[0] == '\0'))
        __builtin_trap();
    return 0;
}
