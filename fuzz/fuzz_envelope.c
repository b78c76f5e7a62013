/* Fuzz target: envelope_decode on arbitrary bytes; a decoded envelope must re-encode and decode
 * again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/buf.h"
#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf err = BUF_INIT, again = BUF_INIT;
    struct envelope *e = envelope_decode((const char *)data, size, &err);
    if (e) {
        envelope_encode(e, &again);
        struct envelope *e2 = envelope_decode(again.data, again.len, &err);
        if (e2 == NULL || e2->nrcpts != e->nrcpts)
            abort(); /* what we wrote, we must read back */
        envelope_free(e2);
    }
    envelope_free(e);
    buf_free(&err);
    buf_free(&again);
    return 0;
}
