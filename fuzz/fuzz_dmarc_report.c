/*
 * Fuzz target: the DMARC report parsers (src/mailauth/dmarc_report.c): a
 * rua= value (remote input, RFC 7489 6.2, with "!" size limits) and a
 * recorded line. Every destination kept is a plain mailbox (an "@", no
 * line break, no "!" or "?" left over).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct dmarc_rua *r;
    size_t n = dmarc_rua_parse(s, &r);
    for (size_t i = 0; i < n; i++)
        if (!strchr(r[i].addr, '@') || strpbrk(r[i].addr, "\r\n?"))
            abort();
    dmarc_rua_free(r, n);
    struct dmarc_report_line l;
    if (dmarc_report_line_parse(s, &l) == 0 && (!l.domain || !l.rua || strchr(l.rua, '\t')))
        abort();
    free(s);
    return 0;
}
