/*
 * Relay policy for the SMTP server: who may send to which recipient. The
 * rule (SPEC "never an open relay"): local and relay_domains recipients from
 * anyone; any other domain only from mynetworks or an authenticated client.
 * mynetworks is Postfix syntax: CIDR blocks, IPv6 in brackets or not
 * ("[::1]/128", "::1/128"), bare addresses, "!" to exclude.
 */
#ifndef HONGYAN_SMTPD_POLICY_H
#define HONGYAN_SMTPD_POLICY_H

#include <sys/socket.h>

#include "lib/buf.h"
#include "queue/resolve.h"
#include "smtp/reply.h"

struct config;
struct smtpd_netlist;

/*
 * Parses a mynetworks value (a main.cf list). NULL with err naming the bad
 * item; the caller frees the result with smtpd_netlist_free().
 */
struct smtpd_netlist *smtpd_netlist_parse(const char *spec, struct buf *err);
void smtpd_netlist_free(struct smtpd_netlist *nl);
/* 1 when sa matches (the first matching item wins; "!" items refuse), else 0. */
int smtpd_netlist_match(const struct smtpd_netlist *nl, const struct sockaddr *sa);

/*
 * Whether the client is in the configuration's mynetworks. The parsed list
 * is cached and parsed again only when the value changes (a new config
 * generation). A malformed list is logged and matches nothing, so a typo
 * never opens the relay.
 */
int smtpd_policy_mynetworks(const struct config *cfg, const struct sockaddr *sa);

/*
 * The relay decision for one recipient of class cls: 0 to accept, or -1
 * with 554 5.7.1 "Relay access denied" in reply. trusted: the client is in
 * mynetworks or authenticated.
 */
int smtpd_policy_relay(enum resolve_class cls, int trusted, int defer, struct smtp_reply *reply);

/* Frees the mynetworks cache (tests, shutdown). */
void smtpd_policy_cache_clear(void);

#endif
