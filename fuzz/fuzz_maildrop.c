/*
 * Fuzz target: the parsing of maildrop files, which any local user writes
 * through hongyan-postdrop: pickup_parse (the helper's uid line and
 * sendmail's envelope), pickup_validate and pickup_normalize. Checks what
 * pickup promises: no CR or LF left in any envelope field, no bare CR or LF
 * in the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/pickup.h"

static void fuzz_field(const char *s)
{
    if (s != NULL && strpbrk(s, "\r\n") != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf err = BUF_INIT, body = BUF_INIT;
    struct envelope *e = NULL;
    size_t off = 0;
    long uid;
    if (pickup_parse((const char *)data, size, &uid, &e, &off, &err) == 0) {
        if (off > size)
            abort(); /* the message must start inside the file */
        if (pickup_validate(e, 50, &err) == 0) {
            fuzz_field(e->sender);
            fuzz_field(e->envid);
            if (e->nrcpts > 50)
                abort();
            for (size_t i = 0; i < e->nrcpts; i++) {
                fuzz_field(e->rcpts[i].address);
                fuzz_field(e->rcpts[i].orcpt);
            }
        }
        pickup_normalize((const char *)data + off, size - off, &body);
        for (size_t i = 0; i < body.len; i++) {
            if (body.data[i] == '\r' && (i + 1 >= body.len || body.data[i + 1] != '\n'))
                abort();
            if (body.data[i] == '\n' && (i == 0 || body.data[i - 1] != '\r'))
                abort();
        }
        envelope_free(e);
    }
    buf_free(&body);
    buf_free(&err);
    return 0;
}
