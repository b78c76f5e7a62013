/* Fuzz target: pickup_decode, the parser of maildrop files that any local user can write. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/pickup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf err = BUF_INIT;
    struct envelope *e = NULL;
    size_t off = 0;
    if (pickup_decode((const char *)data, size, &e, &off, &err) == 0) {
        if (off > size)
            abort(); /* the message must start inside the file */
        envelope_free(e);
    }
    buf_free(&err);
    return 0;
}
