/*
 * Fuzz target: the TLS-RPT parsers (src/deliver/tlsrpt.c): the rua= of a
 * _smtp._tls TXT record (remote input, RFC 8460 3) and a journal line. An
 * accepted record gives mailto: addresses that are plain mailboxes (no
 * line breaks, no "?", an "@"), and at least one URI; an accepted line has a valid domain and ten
 * fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mta_sts.h"
#include "deliver/tlsrpt.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char **mailto = NULL;
    size_t https = 0;
    struct buf why = BUF_INIT;
    if (tlsrpt_rua_parse(s, &mailto, &https, &why) == 0) {
        size_t n = 0;
        for (; mailto[n]; n++)
            if (strpbrk(mailto[n], "\r\n?") || !strchr(mailto[n], '@'))
                abort();
        if (n == 0 && https == 0)
            abort();
    } else if (why.len == 0) {
        abort();
    }
    strlist_free(mailto);
    buf_free(&why);
    struct tlsrpt_line l;
    if (tlsrpt_line_parse(s, &l) == 0 && (!mta_sts_domain_ok(l.domain) || !l.mx))
        abort();
    free(s);
    return 0;
}
