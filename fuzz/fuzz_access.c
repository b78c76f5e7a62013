/*
 * Fuzz target: access(5) values and policy actions (src/smtpd/access.c),
 * and the lookup keys made from hosts, addresses and IP addresses. Input:
 * any bytes, cut at the first NUL, used as a value and as a name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "smtpd/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct access_result r;
    access_parse(s, &r);
    /* The text always points into the value, and codes are what the action says. */
    if (r.text < s || r.text > s + strlen(s))
        abort();
    if ((r.action == ACCESS_REJECT && r.code && (r.code < 500 || r.code > 599)) ||
        (r.action == ACCESS_DEFER && r.code && (r.code < 400 || r.code > 499)))
        abort();
    size_t n = 0;
    char **k = access_keys_host(s, &n);
    strlist_free(k);
    k = access_keys_addr(s, &n);
    strlist_free(k);
    k = access_keys_ip(s, &n);
    strlist_free(k);
    free(s);
    return 0;
}
