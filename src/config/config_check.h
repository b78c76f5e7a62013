/*
 * Checks of single values that need no configuration around them: the
 * type check of a main.cf value, and the host:port forms of relayhost and
 * the *_listen keys. Used by config.c when a file is loaded.
 */
#ifndef HONGYAN_CONFIG_CHECK_H
#define HONGYAN_CONFIG_CHECK_H

#include "config/config_keys.h"
#include "lib/buf.h"

/*
 * One item of a list. listen: "host:port", "[v6]:port", "*:port" or
 * ":port", numeric port 1-65535 required. Otherwise relayhost's forms:
 * host, host:port, [host], [host]:port, the port a number or a service name.
 * 1 when it is well formed.
 */
int config_hostport_ok(const char *item, int listen);

/* A whole number >= 0 with nothing after it into *out; 0, or -1. */
int config_parse_int(const char *s, long long *out);

/*
 * Whether val (expanded) is of k's type (config_keys.h: yes/no, a whole
 * number within its bound, a time, one or more of its words, host:port
 * forms, lookup tables, TYPE:FILE). 0, or -1 with "KEY: what is wrong"
 * appended to why.
 */
int config_value_ok(const struct config_key *k, const char *val, struct buf *why);

#endif
