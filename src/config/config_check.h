/*
 * Checks of single values that need no configuration around them: the
 * host:port forms of relayhost and the *_listen keys. Used by config.c when
 * a file is loaded.
 */
#ifndef HONGYAN_CONFIG_CHECK_H
#define HONGYAN_CONFIG_CHECK_H

/*
 * One item of a list. listen: "host:port", "[v6]:port", "*:port" or
 * ":port", numeric port 1-65535 required. Otherwise relayhost's forms:
 * host, host:port, [host], [host]:port, the port a number or a service name.
 * 1 when it is well formed.
 */
int config_hostport_ok(const char *item, int listen);

#endif
