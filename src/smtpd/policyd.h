/*
 * Client of Postfix's policy delegation protocol (SMTPD_POLICY_README):
 * name=value lines and an empty line out, "action=..." and an empty line
 * back, over inet:host:port or unix:/path. Connections are kept per
 * endpoint and reused (smtpd_policy_service_max_idle, _max_ttl,
 * _request_limit); each request is bounded by _timeout and tried up to
 * _try_limit times, _retry_delay apart. A server that sends garbage, too
 * much or nothing costs the asking session that bounded wait, nothing else.
 *
 * Ownership: the request handle lives until its callback starts or
 * policyd_cancel(); the action passed to the callback is valid during the
 * call only.
 */
#ifndef HONGYAN_SMTPD_POLICYD_H
#define HONGYAN_SMTPD_POLICYD_H

#include <stddef.h>

#include "lib/buf.h"

struct event_base;
struct policyd_req;

/* A reply longer than this (Postfix's line limits are of this order) is garbage. */
#define POLICYD_REPLY_MAX 4096

struct policyd_settings {
    long long timeout, max_idle, max_ttl, retry_delay; /* seconds */
    long long request_limit;                           /* 0: no limit */
    long long try_limit;
};

/* 1 for "inet:host:port" or "unix:/path". */
int policyd_endpoint_valid(const char *endpoint);

/*
 * Parses what a policy server sent so far. 1: a complete reply (up to the
 * empty line; *used says how many bytes) with its action= value in action;
 * 0: incomplete; -1: malformed (no action=, a line that is not name=value,
 * over POLICYD_REPLY_MAX). Pure, for fuzz/fuzz_policy_reply.c.
 */
int policyd_reply_parse(const char *data, size_t len, struct buf *action, size_t *used);

/* action: the server's action= value, or NULL when the request failed (then the default action). */
typedef void (*policyd_cb)(void *arg, const char *action);

/* Sends request (the attribute lines, without the final empty line); never calls cb before
 * returning. */
struct policyd_req *policyd_query(struct event_base *base, const char *endpoint,
                                  const struct policyd_settings *set, const char *request,
                                  policyd_cb cb, void *arg);
/* The callback will not be called. NULL does nothing. */
void policyd_cancel(struct policyd_req *r);

/* Closes the kept connections (worker shutdown, tests). */
void policyd_pool_clear(void);

#endif
