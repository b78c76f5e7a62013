/*
 * Fuzz target: the spool's version marker (src/queue/spool_disk.c). Input:
 * any bytes, the file's content. A number comes back only for the exact
 * form "hongyan-spool N\n", and printing it gives the input back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long v = spool_version_parse((const char *)data, size);
    if (v < 0)
        abort();
    if (v > 0) {
        char again[64];
        int n = snprintf(again, sizeof again, "hongyan-spool %ld\n", v);
        if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
            abort();
    }
    return 0;
}
