/*
 * Client rate limits, as Postfix's anvil(8) counts them: connections,
 * MAIL, RCPT, new TLS sessions and AUTH per client address and per
 * anvil_rate_time_unit (a window that starts at the client's first event
 * and restarts once it has passed). IPv6 clients are counted per prefix
 * (smtpd_client_ipv6_prefix_length), so one host cannot dodge the limit by
 * walking its /64. In memory, one table per process; each event costs O(1)
 * (a hash lookup plus at most a couple of expired entries dropped).
 */
#ifndef HONGYAN_SMTPD_ANVIL_H
#define HONGYAN_SMTPD_ANVIL_H

#include <sys/socket.h>
#include <time.h>

#include "lib/buf.h"

struct config;

enum anvil_event {
    ANVIL_CONNECT,
    ANVIL_MAIL,
    ANVIL_RCPT,
    ANVIL_NEWTLS,
    ANVIL_AUTH,
    ANVIL_EVENT_COUNT,
};

/*
 * Counts one event for the client and says whether it is over its limit
 * (the smtpd_client_*_rate_limit key of the event; 0 there means none):
 * 1 over, 0 not. Clients in smtpd_client_event_limit_exceptions are never
 * over. *rate gets the count in the current window.
 */
int anvil_event(const struct config *cfg, const struct sockaddr *sa, enum anvil_event ev,
                time_t now, long long *rate);

/*
 * anvil_event() for a session: when over, puts Postfix's reply line for
 * the event in reply ("450 4.7.1 Error: too much mail from ADDR", ...),
 * logs Postfix's warning, and returns 1. host and addr name the client.
 */
int anvil_session_event(const struct config *cfg, const struct sockaddr *sa, enum anvil_event ev,
                        const char *host, const char *addr, struct buf *reply);

/* Whether smtpd_client_event_limit_exceptions covers the client (also for the count limit). */
int anvil_exempt(const struct config *cfg, const struct sockaddr *sa);

/* Drops every counter (tests, shutdown). */
void anvil_clear(void);

#endif
