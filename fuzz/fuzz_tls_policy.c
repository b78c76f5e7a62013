/*
 * Fuzz target for smtp_tls_policy_maps values (src/deliver/route.c
 * route_tls_policy_parse): a level, then match=/protocols=/ciphers=
 * attributes, as they come from a policy table.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct route_tls_policy p;
    struct buf err = BUF_INIT;
    if (route_tls_policy_parse(s, &p, &err) == 0)
        route_tls_policy_clear(&p);
    buf_free(&err);
    free(s);
    return 0;
}
