/*
 * The rules that tie TLS and AUTH into an SMTP session, kept apart from the
 * session's state machine: where STARTTLS and AUTH are offered, what an
 * unencrypted or unauthenticated client is refused, which envelope senders
 * a logged-in user may use, and how the Received header says so (RFC 3848).
 * Pure functions of the configuration and the session's facts.
 */
#ifndef HONGYAN_SMTPD_SUBMISSION_H
#define HONGYAN_SMTPD_SUBMISSION_H

#include "server/server.h"
#include "lib/buf.h"
#include "maps/maps.h"

struct config;
struct auth;
typedef struct ssl_st SSL;

/* STARTTLS in EHLO: a context exists, not yet in TLS, and (on smtpd_listen) the level is not none.
 */
int submission_starttls_offered(const struct config *cfg, enum listener_kind kind,
                                int have_tls_context, int tls_active);
/*
 * Whether TLS is required before MAIL: always on submission_listen, and on
 * smtpd_listen with smtpd_tls_security_level = encrypt. When it is and the
 * session is not in TLS, MAIL gets "530 5.7.0 Must issue a STARTTLS command first".
 */
int submission_tls_required(const struct config *cfg, enum listener_kind kind);

/*
 * AUTH may be used on this listener at all: the users file exists, and on
 * smtpd_listen smtpd_sasl_auth_enable = yes.
 */
int submission_auth_enabled(const struct config *cfg, enum listener_kind kind,
                            const struct auth *auth);
/* AUTH in EHLO: enabled, and (smtpd_tls_auth_only = yes) only over TLS. */
int submission_auth_offered(const struct config *cfg, enum listener_kind kind,
                            const struct auth *auth, int tls_active);
/*
 * Checks an AUTH command before starting SASL: NULL when it may go on,
 * else the reply line: 503 when AUTH is not available or already done,
 * 538 5.7.11 before TLS with smtpd_tls_auth_only (RFC 4954 section 6).
 */
const char *submission_auth_refusal(const struct config *cfg, enum listener_kind kind,
                                    const struct auth *auth, int tls_active, int authenticated);
/* Submission and smtps require a login before MAIL (RFC 6409 section 4.3). */
int submission_auth_required(enum listener_kind kind);

/*
 * smtpd_sender_login_maps for an authenticated user: the envelope sender
 * (address without brackets; "" for the null sender, always allowed) is
 * looked up whole and then as "@domain"; the value lists the logins that
 * may use it. 0 allowed; -1 with "553 5.7.1 ..." in reply when the sender
 * is not the user's (also when the map has no entry for it); -2 with a
 * 451 4.3.0 reply when a table cannot be read now. No map set: allowed.
 */
int submission_sender_login_check(const struct config *cfg, const char *sender, const char *user,
                                  struct buf *reply);

/*
 * The same decision over tables the caller has open: lookup(ctx, key)
 * answers like map_list_lookup() over smtpd_sender_login_maps (an enum
 * map_result). Thread-safe when lookup is, so it may run on the work queue
 * (restrict_lookup.c).
 */
typedef enum map_result (*submission_login_lookup_fn)(void *ctx, const char *key, struct buf *value,
                                                      struct buf *err);
int submission_sender_login_decide(submission_login_lookup_fn lookup, void *ctx, const char *sender,
                                   const char *user, struct buf *reply);

/* RFC 3848 WITH protocol: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
const char *submission_received_with(int esmtp, int tls_active, int authenticated);
/*
 * The Received header comment for TLS and AUTH (Postfix style):
 * "(using TLSv1.3 with cipher X (256/256 bits))" and, when
 * smtpd_sasl_authenticated_header = yes, "(Authenticated sender: USER)".
 * Appends nothing for a plain, anonymous session.
 */
void submission_received_comment(const struct config *cfg, SSL *ssl, const char *user,
                                 struct buf *out);

#endif
