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
    CONFIG_INT,       /* a non-negative integer; `choices`, when set, is the largest allowed */
    CONFIG_TIME,      /* a number with an optional s/m/h/d/w unit; `unit` is the default */
    CONFIG_LIST,      /* commas and/or white space */
    CONFIG_ENUM,      /* one word of `choices` (a space-separated list) */
    CONFIG_ENUM_LIST, /* zero or more words of `choices` */
    CONFIG_READONLY,  /* set by the program (mail_version) */
    CONFIG_NEXTHOP,   /* list of host, host:port, [host], [host]:port (relayhost's forms) */
    CONFIG_LISTEN,    /* list of host:port, [address]:port, *:port */
    CONFIG_MAPS,      /* list of type:name lookup tables of a known type */
    CONFIG_TABLE,     /* one type:name of any type (a Postfix cache database) */
    CONFIG_TEMPLATE,  /* text whose $names are filled in when used ($rbl_code), not at load */
};

struct config_key {
    const char *name;
    const char *fallback; /* the default, before $name expansion; NULL: computed */
    enum config_type type;
    const char
        *choices; /* CONFIG_ENUM*: allowed words; CONFIG_TIME: default unit; CONFIG_INT: max */
    const char *doc;
};

extern const struct config_key config_keys[];
extern const size_t config_key_count;

/* Index of the key in config_keys, or -1. */
int config_key_index(const char *name);

/*
 * Every Postfix 3.7 parameter name, classed (postfix_params.def). A name in
 * config_keys is implemented; the others are accepted and ignored as not
 * applicable, or refused because ignoring them would change security or
 * delivery. reason says why (NULL for implemented keys).
 */
enum config_postfix_class {
    CONFIG_PF_IMPLEMENTED,
    CONFIG_PF_IGNORED,
    CONFIG_PF_UNSUPPORTED,
};

struct config_postfix_param {
    const char *name;
    enum config_postfix_class class;
    const char *reason;
};

extern const struct config_postfix_param config_postfix_params[];
extern const size_t config_postfix_param_count;

/* The Postfix parameter of that name, or NULL when Postfix has none. */
const struct config_postfix_param *config_postfix_param(const char *name);

/*
 * The known name (ours or Postfix's) nearest to a misspelt one, for "did you
 * mean"; NULL when none is close. Static storage.
 */
const char *config_key_suggest(const char *name);

#endif
