/*
 * Fuzz target for the held-message budget (src/smtpd/hold.c): pieces of
 * arbitrary sizes appended to two messages sharing a tiny budget, so that
 * they move between memory and a file at any point; what comes back must be
 * exactly what went in, and the budget must be whole again after release.
 * Also the client key of an address (client_addr_key, lib/util.c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "smtpd/hold.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 1 << 20)
        return 0;
    struct smtpd_hold_budget budget = {.limit = (size_t)data[0] << 10};
    struct smtpd_hold h[2];
    smtpd_hold_init(&h[0], &budget, "/tmp");
    smtpd_hold_init(&h[1], &budget, "/tmp");
    char *want[2] = {malloc(size), malloc(size)};
    size_t want_len[2] = {0, 0};
    if (!want[0] || !want[1])
        abort();
    size_t p = 1;
    while (p + 2 <= size) {
        int which = data[p] & 1;
        size_t n = ((size_t)data[p] >> 1) * (data[p + 1] + 1u);
        p += 2;
        if (n > size - p)
            n = size - p;
        if (smtpd_hold_append(&h[which], data + p, n) < 0)
            abort(); /* /tmp is there and has room */
        memcpy(want[which] + want_len[which], data + p, n);
        want_len[which] += n;
        p += n;
        if (budget.used > budget.limit)
            abort();
    }
    for (int i = 0; i < 2; i++) {
        const char *got;
        size_t len;
        if (smtpd_hold_view(&h[i], &got, &len) < 0 || len != want_len[i] ||
            (len && memcmp(got, want[i], len) != 0))
            abort();
        smtpd_hold_release(&h[i]);
        free(want[i]);
    }
    if (budget.used != 0)
        abort();

    char addr[64], key[64];
    size_t n = size - 1 < sizeof addr - 1 ? size - 1 : sizeof addr - 1;
    memcpy(addr, data + 1, n);
    addr[n] = '\0';
    client_addr_key(addr, data[0] % 130, key, sizeof key);
    return 0;
}
