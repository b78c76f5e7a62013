/*
 * The server side of SMTP AUTH (RFC 4954) for the PLAIN (RFC 4616) and LOGIN
 * mechanisms, as a state machine without I/O: the session feeds it the AUTH
 * arguments and then each client line, and it answers with the next 334
 * challenge, credentials to check, or the error to send. It never logs and
 * wipes the password when reset or freed.
 *
 * Ownership: sasl_new() returns an object freed with sasl_free(). Strings
 * returned by sasl_challenge/user/password live until the next call.
 */
#ifndef HONGYAN_SMTPD_SASL_H
#define HONGYAN_SMTPD_SASL_H

#include <stddef.h>

/* RFC 4954 section 4: an AUTH line (and each response) may be 12288 octets. */
#define SASL_LINE_MAX 12288
/* RFC 4616 section 2: each of authzid, authcid and passwd is at most 255 octets. */
#define SASL_FIELD_MAX 255

enum sasl_status {
    SASL_CHALLENGE,  /* send "334 " + sasl_challenge() and feed the next line to sasl_step */
    SASL_CHECK,      /* sasl_user() and sasl_password() are ready to be checked */
    SASL_ERR_MECH,   /* 504 5.5.4 unknown or missing mechanism */
    SASL_ERR_SYNTAX, /* 501 5.5.2 bad base64 or malformed message */
    SASL_ERR_AUTHZ,  /* 535 5.7.8 the authorization identity is not the user's own */
    SASL_ABORTED,    /* 501 5.0.0 the client sent "*" */
};

struct sasl;

struct sasl *sasl_new(void);
void sasl_free(struct sasl *s);
/* Back to the initial state, with any password wiped. */
void sasl_reset(struct sasl *s);

/*
 * Starts an exchange: mech is the AUTH argument (case-insensitive),
 * initial the optional initial response (NULL when absent, "=" for empty,
 * RFC 4954 section 4).
 */
enum sasl_status sasl_start(struct sasl *s, const char *mech, const char *initial);
/* The client's line (without CRLF) in answer to a challenge. */
enum sasl_status sasl_step(struct sasl *s, const char *line, size_t len);

/* The base64 challenge text to send after "334 " (may be empty). */
const char *sasl_challenge(const struct sasl *s);
/* "PLAIN" or "LOGIN" once started. */
const char *sasl_mechanism(const struct sasl *s);
const char *sasl_user(const struct sasl *s);
const char *sasl_password(const struct sasl *s);

/* The complete SMTP reply line (without CRLF) for an error status. */
const char *sasl_status_reply(enum sasl_status st);


#endif
