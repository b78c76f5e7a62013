/* Fuzz target: the SPF record parser (RFC 7208 4.6, 5, 6) on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A TXT record arrives as a C string: stop at the first NUL as DNS text does. */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct buf err = BUF_INIT;
    struct spf_record *rec = spf_record_parse(text, &err);
    if (rec != NULL) {
        /* Whatever parsed must be self-consistent. */
        for (size_t i = 0; i < rec->count; i++) {
            const struct spf_mech *m = &rec->mechs[i];
            if (m->cidr4 < 0 || m->cidr4 > 32 || m->cidr6 < 0 || m->cidr6 > 128)
                abort();
        }
    } else if (err.len == 0) {
        abort(); /* a rejection always says why */
    }
    spf_record_free(rec);
    buf_free(&err);
    free(text);
    return 0;
}
