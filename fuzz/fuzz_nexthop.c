/*
 * Fuzz target for next-hop parsing (src/deliver/route.c): transport(5)
 * SMTP next hops and lmtp(8) ones (unix:PATH, inet:HOST:PORT), as they come
 * from transport_maps values, relayhost and mailbox/virtual_transport.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/route.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct route r = {0};
    struct buf err = BUF_INIT;
    if (route_parse_nexthop(s, 25, &r, &err) == 0) {
        strlist_free(route_sasl_keys(&r, "mx.example.com"));
        strlist_free(route_tls_policy_keys(&r));
    }
    route_clear(&r);
    buf_reset(&err);
    route_parse_lmtp(s, "/var/lib/hongyan/queue", 24, &r, &err);
    route_clear(&r);
    buf_free(&err);
    free(s);
    return 0;
}
