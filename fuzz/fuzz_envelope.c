/* Fuzz target: envelope_decode_prefix on arbitrary bytes; a decoded envelope must re-encode and
 * decode again, and its intact prefix alone must decode to the same envelope. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/buf.h"
#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf err = BUF_INIT, again = BUF_INIT;
    size_t intact = 0;
    struct envelope *e = envelope_decode_prefix((const char *)data, size, &intact, &err);
    if (e) {
        if (intact > size)
            abort();
        size_t again_intact = 0;
        struct envelope *p =
            envelope_decode_prefix((const char *)data, intact, &again_intact, &err);
        if (p == NULL || again_intact != intact || p->nrcpts != e->nrcpts)
            abort(); /* recovery cuts the file to the intact prefix: it must read the same */
        envelope_free(p);
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
