/*
 * The table of every configuration key: name, default, type and check, and
 * the one-line doc that `hongyan config -d` and docs/ show. Keys with a
 * Postfix twin keep its name, meaning and default (SPEC.md).
 */
#ifndef HONGYAN_CONFIG_KEYS_H
#define HONGYAN_CONFIG_KEYS_H

#include <stddef.h>

enum config_type {
    CONFIG_STRING,
    CONFIG_BOOL,
    CONFIG_INT,       /* a non-negative integer */
    CONFIG_TIME,      /* a number with an optional s/m/h/d/w unit; `unit` is the default */
    CONFIG_LIST,      /* commas and/or white space */
    CONFIG_ENUM,      /* one word of `choices` (a space-separated list) */
    CONFIG_ENUM_LIST, /* zero or more words of `choices` */
    CONFIG_READONLY,  /* set by the program (mail_version) */
    CONFIG_TEMPLATE,  /* text whose $names are filled in when used ($rbl_code), not at load */
};

struct config_key {
    const char *name;
    const char *fallback; /* the default, before $name expansion; NULL: computed */
    enum config_type type;
    const char *choices; /* CONFIG_ENUM*: allowed words; CONFIG_TIME: default unit */
    const char *doc;
};

extern const struct config_key config_keys[];
extern const size_t config_key_count;

/* Index of the key in config_keys, or -1. */
int config_key_index(const char *name);

#endif
