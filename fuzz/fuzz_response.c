/*
 * Fuzz target for the SMTP client's reply parser and EHLO keyword reader:
 * the input is what a hostile server might send, split into lines.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_response r = {0};
    struct buf err = BUF_INIT, out = BUF_INIT;
    const char *p = (const char *)data;
    const char *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        enum smtp_response_feed st = smtp_response_feed(&r, p, n, &err);
        if (st == SMTP_RESPONSE_DONE) {
            struct smtp_ehlo e;
            char dsn[16];
            smtp_ehlo_parse(&r, &e);
            smtp_response_dsn(&r, dsn);
            buf_reset(&out);
            smtp_response_format(&r, &out);
        } else if (st == SMTP_RESPONSE_ERROR) {
            smtp_response_reset(&r);
            buf_reset(&err);
        }
        p += n + 1;
    }
    smtp_response_clear(&r);
    buf_free(&err);
    buf_free(&out);
    return 0;
}
