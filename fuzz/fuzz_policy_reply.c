/*
 * Fuzz target: the policy server reply parser (src/smtpd/policyd.c).
 * Input: what a policy server might send, fed whole and then in two parts
 * (as it may arrive); the verdict on the whole must not depend on the cut.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/policyd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf action = BUF_INIT;
    size_t used = 0;
    int rc = policyd_reply_parse((const char *)data, size, &action, &used);
    if (rc == 1 && (used == 0 || used > size || action.len > size))
        abort();
    if (rc == 0 && size > POLICYD_REPLY_MAX)
        abort();
    /* A prefix is never "complete" with a different length than the whole. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    size_t used2 = 0;
    int rc2 = policyd_reply_parse((const char *)data, cut, &action, &used2);
    if (rc2 == 1 && rc == 1 && used2 != used)
        abort();
    buf_free(&action);
    return 0;
}
