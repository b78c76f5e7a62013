/* Fuzz target: a DKIM key record from DNS (RFC 6376 3.6.1, RFC 8463). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/buf.h"
#include "mailauth/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkim_pubkey k;
    struct buf why = BUF_INIT;
    enum dkim_keyerr e = dkim_pubkey_parse((const char *)data, size, &k, &why);
    /* A usable key has a public key; a refused one says why. */
    if ((e == DKIM_KEY_OK) != (k.pkey != NULL) || (e != DKIM_KEY_OK && why.len == 0))
        abort();
    dkim_pubkey_clear(&k);
    buf_free(&why);
    return 0;
}
