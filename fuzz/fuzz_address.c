/*
 * Fuzz target: RFC 5321 path and mailbox parsing (src/smtp/address.c). The
 * first byte picks the options; checks that accepted output respects the
 * limits and that parsing the normalised form again gives the same result.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned opts = data[0] & 7;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct smtp_path p;
    struct smtp_reply r;
    size_t end = 0;
    if (smtp_path_parse(s, n, opts, &p, &end, &r) == 0) {
        if (end > n || p.len > SMTP_PATH_MAX || p.addr[p.len] != '\0')
            abort();
        if (!(p.flags & (SMTP_ADDR_NULL | SMTP_ADDR_NO_DOMAIN))) {
            /* The normalised mailbox must parse again to itself. */
            struct smtp_path q;
            if (smtp_mailbox_parse(p.addr, p.len, opts, &q, &r) != 0)
                abort();
            if (q.len != p.len || memcmp(q.addr, p.addr, p.len) != 0)
                abort();
        }
    } else if (r.code < 400 || !r.status || !r.text) {
        abort();
    }
    smtp_mailbox_parse(s, n, opts, &p, &r);
    smtp_domain_valid(s, n, opts & 1);
    return 0;
}
