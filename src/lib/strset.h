/*
 * A set of strings compared without regard to ASCII case (mail addresses as
 * recipients are de-duplicated), in a hash table with open addressing:
 * constant time per insert, so a message with many recipients costs linear
 * time, not quadratic. The set keeps pointers to the caller's strings,
 * which must outlive it.
 */
#ifndef HONGYAN_LIB_STRSET_H
#define HONGYAN_LIB_STRSET_H

#include <stddef.h>

struct strset {
    const char **slots;
    size_t cap, count;
};

#define STRSET_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* 1 when s was added, 0 when an equal string was already there. */
int strset_add(struct strset *set, const char *s);
int strset_has(const struct strset *set, const char *s);
void strset_free(struct strset *set);

#endif
