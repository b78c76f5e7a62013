/* Case-insensitive string set; see strset.h. */
#include "lib/strset.h"

#include <stdint.h>
#include <stdlib.h>

#include "lib/util.h"
#include "lib/xalloc.h"

/* FNV-1a over the lower-cased bytes: equal under str_eq_ci means equal hash. */
static uint64_t strset_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
        h = (h ^ c) * 1099511628211ULL;
    }
    return h;
}

static size_t strset_find(const struct strset *set, const char *s)
{
    size_t mask = set->cap - 1;
    size_t i = (size_t)strset_hash(s) & mask;
    while (set->slots[i] != NULL && !str_eq_ci(set->slots[i], s))
        i = (i + 1) & mask;
    return i;
}

static void strset_grow(struct strset *set)
{
    struct strset bigger = {NULL, set->cap ? set->cap * 2 : 16, 0};
    bigger.slots = xcalloc(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i] != NULL)
            bigger.slots[strset_find(&bigger, set->slots[i])] = set->slots[i];
    bigger.count = set->count;
    free(set->slots);
    *set = bigger;
}

int strset_add(struct strset *set, const char *s)
{
    /* Kept at most half full, so probes stay short and a free slot always exists. */
    if ((set->count + 1) * 2 > set->cap)
        strset_grow(set);
    size_t i = strset_find(set, s);
    if (set->slots[i] != NULL)
        return 0;
    set->slots[i] = s;
    set->count++;
    return 1;
}

int strset_has(const struct strset *set, const char *s)
{
    return set->cap > 0 && set->slots[strset_find(set, s)] != NULL;
}

void strset_free(struct strset *set)
{
    free(set->slots);
    set->slots = NULL;
    set->cap = set->count = 0;
}
