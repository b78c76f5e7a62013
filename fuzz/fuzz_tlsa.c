/*
 * Fuzz target: TLSA RDATA parsing and the DANE usability rules
 * (src/tls/tls_client.c). The input is a TLSA RRset: records as a length
 * octet then that many RDATA octets. Checks that kept records are usable
 * and that every record is either kept or counted as unusable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_client.h"

#define FUZZ_TLSA_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *rdata[FUZZ_TLSA_MAX];
    size_t rdlen[FUZZ_TLSA_MAX];
    size_t n = 0, i = 0;
    while (i < size && n < FUZZ_TLSA_MAX) {
        size_t l = data[i++];
        if (l > size - i)
            l = size - i;
        /* Copies, so that reads past a record's end are caught. */
        rdata[n] = malloc(l ? l : 1);
        memcpy(rdata[n], data + i, l);
        rdlen[n++] = l;
        i += l;
    }
    struct tls_dane *d = tls_dane_from_rdata(rdata, rdlen, n);
    if (d->n + d->unusable != n)
        abort();
    for (size_t k = 0; k < d->n; k++)
        if (!tls_tlsa_usable(&d->recs[k]))
            abort();
    tls_dane_free(d);
    for (size_t k = 0; k < n; k++)
        free(rdata[k]);
    return 0;
}
