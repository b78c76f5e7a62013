/*
 * The host-derived defaults of main.cf (config_host.c), for config.c.
 * Ownership: both return a string the caller frees.
 */
#ifndef HONGYAN_CONFIG_CONFIG_HOST_H
#define HONGYAN_CONFIG_CONFIG_HOST_H

/* A fully qualified myhostname: gethostname(), completed by the resolver, else ".localdomain". */
char *config_default_hostname(void);
/* Postfix 3's mynetworks_style = host: loopback and this host's own addresses. */
char *config_default_mynetworks(void);

#endif
