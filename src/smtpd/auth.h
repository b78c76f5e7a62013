/*
 * SMTP AUTH password checks: the users file (smtpd_sasl_users, lines of
 * "user:crypt-hash"), checks with libxcrypt run on the work queue so the
 * event loop never waits for yescrypt, and per-client-address throttling of
 * failures (a growing delay before each next attempt, then refusal).
 *
 * One struct auth lives for the whole worker (the throttle must survive a
 * reload); auth_reload() re-reads the users file on SIGHUP.
 *
 * Ownership: auth_new() returns an object freed with auth_free(); checks
 * still in flight keep it alive until they finish. auth_check() returns a
 * handle that is valid until done runs or auth_cancel() is called.
 */
#ifndef HONGYAN_SMTPD_AUTH_H
#define HONGYAN_SMTPD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/buf.h"

struct config;
struct event_base;
struct workq;
struct auth;
struct auth_pending;

enum auth_result {
    AUTH_OK,       /* 235 2.7.0 */
    AUTH_FAIL,     /* 535 5.7.8: wrong user or password */
    AUTH_REFUSED,  /* 421 4.7.0: too many failures from this address; close the session */
    AUTH_TEMPFAIL, /* 454 4.7.0: the check itself failed */
};

/*
 * Reads the users file named by smtpd_sasl_users and the throttle settings
 * (smtpd_sasl_failure_limit, _window, _delay). A missing file means no users
 * (auth_available() is 0). NULL with err naming FILE:LINE on a bad file.
 */
struct auth *auth_new(struct event_base *base, struct workq *q, const struct config *cfg,
                      struct buf *err);
/* Re-reads the users file and settings; on error keeps the old ones and returns -1. */
int auth_reload(struct auth *a, const struct config *cfg, struct buf *err);
void auth_free(struct auth *a);

/*
 * Re-reads the users file when it changed on disk (checked at most once a
 * second), so that `hongyan user add` takes effect without a reload, as
 * saslpasswd2 does for Postfix.
 */
void auth_refresh(struct auth *a);
/* Whether AUTH can be offered at all: the users file exists. */
int auth_available(const struct auth *a);
size_t auth_user_count(const struct auth *a);

/*
 * Checks user/pass for a client at client_addr (the IP address as text).
 * done(arg, result) always runs later on the event loop, never inside this
 * call. An unknown user costs one hash computation like a known one. After
 * failures from the same address the check waits first (1x, 2x, 4x ...
 * smtpd_sasl_failure_delay); after smtpd_sasl_failure_limit failures within
 * smtpd_sasl_failure_window the answer is AUTH_REFUSED without checking.
 * pass is copied and wiped after use.
 */
struct auth_pending *auth_check(struct auth *a, const char *user, const char *pass,
                                const char *client_addr,
                                void (*done)(void *arg, enum auth_result result), void *arg);
/* The session went away: done will not be called. */
void auth_cancel(struct auth_pending *p);

/*
 * The keeper's side of a check (src/keeper/): the hash to check pass
 * against, into hash; 1 when user is known, 0 when hash is the dummy setting
 * that costs what a real check costs. Call with the auth object locked
 * against auth_refresh/auth_reload.
 */
int auth_lookup_hash(const struct auth *a, const char *user, size_t pass_len, char *hash,
                     size_t size);

/*
 * The keeper's: the users file is read only when root or owner owns it, not
 * through a symlink (one the worker planted in data_directory, which it can
 * write, is refused, and the users loaded before are kept); no event loop,
 * checks by auth_lookup_hash and auth_hash_verify.
 */
struct auth *auth_new_owned(const struct config *cfg, uid_t owner, struct buf *err);

/* The SMTP reply line (without CRLF) for a result. */
const char *auth_result_reply(enum auth_result r);

/*
 * Logs a failure as Postfix does, e.g.
 *   warning: unknown[127.0.0.1]: SASL LOGIN authentication failed: authentication failure,
 * sasl_username=bob client is "name[addr]"; the password is never an argument.
 */
void auth_log_failure(const char *client, const char *mech, const char *user, enum auth_result r);

/* A user name the users file can hold: 1..255 octets, no ':', no control bytes, no white space. */
int auth_user_name_ok(const char *user);

/* One-shot synchronous check of a password against a crypt hash (constant-time compare). */
int auth_hash_verify(const char *hash, const char *pass);

/*
 * The failure throttle, with the clock passed in (for tests). Addresses are
 * keyed as given, IPv6 by their prefix (/64 unless set below).
 * auth_throttle_wait answers -1 when the address is refused, -2 when the
 * global limit is reached, else the milliseconds to wait before checking.
 */
struct auth_throttle;
struct auth_throttle *auth_throttle_new(unsigned limit, uint64_t window_ms, uint64_t delay_ms);
void auth_throttle_free(struct auth_throttle *t);
void auth_throttle_set(struct auth_throttle *t, unsigned limit, uint64_t window_ms,
                       uint64_t delay_ms);
long long auth_throttle_wait(struct auth_throttle *t, const char *addr, uint64_t now);
void auth_throttle_failed(struct auth_throttle *t, const char *addr, uint64_t now);
/* Failures counted for addr now (0 once the window has passed). */
unsigned auth_throttle_failures(struct auth_throttle *t, const char *addr, uint64_t now);
/*
 * The limit on failures from all clients together within the window (0:
 * none), beside the per-address one: past it auth_throttle_wait answers -2
 * for everyone (auth_check then gives AUTH_TEMPFAIL, 454, without hashing),
 * so that a flood spread over many networks still gets few guesses. IPv6
 * addresses are keyed by their first v6_prefix bits (64 until set).
 */
void auth_throttle_set_global(struct auth_throttle *t, unsigned global_limit, int v6_prefix);
/* Failures from everybody over the last window, estimated from two fixed windows. */
unsigned auth_throttle_global_failures(struct auth_throttle *t, uint64_t now);

#endif
