/*
 * Fuzz target: RFC 5321 path and mailbox parsing (src/smtp/address.c). The
 * first byte picks the options; checks that accepted output respects the
 * limits and that parsing the normalised form again gives the same result;
 * and that smtp_printable() leaves only printable ASCII and UTF-8, in place.
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

    char *text = malloc(n + 1);
    if (text == NULL)
        return 0;
    memcpy(text, s, n);
    text[n] = '\0';
    size_t len = strlen(text);
    smtp_printable(text, '?');
    if (strlen(text) != len)
        abort(); /* replaced in place, byte for byte */
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        size_t k = c >= 0x80 ? smtp_utf8_seq((const unsigned char *)text + i, len - i) : 1;
        if (k == 0 || c < 0x20 || c == 0x7f)
            abort(); /* what is left must be text */
        i += k;
    }
    free(text);
    return 0;
}
