/*
 * Fuzz target: the DMARC record parser (RFC 7489 6.3), and on the same bytes
 * the From: domain extraction (smtp/msghdr_from.c) and Authentication-Results field-id reading,
 * the other parsers of untrusted text in the DMARC stage.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mailauth/authres.h"
#include "mailauth/dmarc.h"
#include "smtp/msghdr_from.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct dmarc_record rec;
    struct buf err = BUF_INIT;
    enum dmarc_parse_status st = dmarc_record_parse(s, size, &rec, &err);
    if (st == DMARC_PARSE_OK && (rec.pct < 0 || rec.pct > 100))
        abort();
    dmarc_record_clear(&rec);

    buf_reset(&err);
    char *d = msghdr_from_domain(s, size, &err);
    free(d);
    size_t n = 0;
    char **list = msghdr_from_domains(s, size, &n, &err);
    if (list == NULL ? n != 0 : n == 0 || n > MSGHDR_FROM_MAX_DOMAINS)
        abort();
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);

    struct buf out = BUF_INIT;
    authres_field_id(s, size, &err);
    if (authres_strip(s, size, "mx.example.org", &out) > size || out.len > size)
        abort();
    buf_free(&out);
    buf_free(&err);
    return 0;
}
