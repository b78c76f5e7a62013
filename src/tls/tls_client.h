/*
 * The TLS client for outbound SMTP (STARTTLS and wrapper mode): one OpenSSL
 * context per configuration, one SSL per connection set up for the
 * smtp_tls_security_level in force (SNI always; certificate name checks for
 * verify and secure), and after the handshake the verdict and the summary
 * for the Postfix-shaped log line:
 *   "Verified TLS connection established to host[ip]:port: TLSv1.3 with cipher X (256/256 bits)"
 *
 * Ownership: tls_client_new() returns a context freed with tls_client_free();
 * tls_client_ssl() returns an SSL the caller owns (libevent's openssl
 * bufferevent frees it when created with BEV_OPT_CLOSE_ON_FREE).
 */
#ifndef HONGYAN_TLS_TLS_CLIENT_H
#define HONGYAN_TLS_TLS_CLIENT_H

#include <openssl/ssl.h>

#include "lib/buf.h"

struct config;

/* smtp_tls_security_level (Postfix TLS_README "Client TLS security levels"). */
enum tls_level {
    TLS_LEVEL_NONE,
    TLS_LEVEL_MAY,     /* STARTTLS when offered, any certificate; plain otherwise */
    TLS_LEVEL_ENCRYPT, /* TLS required, any certificate */
    TLS_LEVEL_VERIFY,  /* TLS required, chain trusted, name = the server's host name */
    TLS_LEVEL_SECURE,  /* TLS required, chain trusted, name = the next-hop domain or a subdomain */
    TLS_LEVEL_DANE,    /* not yet: treated as may (without DNSSEC answers DANE is may) */
};

enum tls_trust {
    TLS_TRUST_ANONYMOUS, /* no certificate */
    TLS_TRUST_UNTRUSTED, /* a certificate whose chain did not verify */
    TLS_TRUST_TRUSTED,   /* chain verified, name not checked */
    TLS_TRUST_VERIFIED,  /* chain verified and the name matched */
};

struct tls_client;

enum tls_level tls_level_parse(const char *word);
const char *tls_trust_name(enum tls_trust t); /* "Verified", "Trusted", ... */

/* Reads smtp_tls_CAfile (or the system store). NULL with err. */
struct tls_client *tls_client_new(const struct config *cfg, struct buf *err);
void tls_client_free(struct tls_client *c);

/*
 * A client SSL for one connection: SNI = sni (when it is a name, not an
 * address); for verify, the certificate must match match_name; for secure,
 * match_name or any subdomain of it.
 */
SSL *tls_client_ssl(struct tls_client *c, enum tls_level level, const char *sni,
                    const char *match_name);

/*
 * After a completed handshake: the trust reached, and in summary
 * "TLSv1.3 with cipher NAME (256/256 bits)". For verify/secure, a result
 * below VERIFIED means the caller must not go on; why says what failed.
 */
enum tls_trust tls_client_result(SSL *ssl, enum tls_level level, struct buf *summary,
                                 struct buf *why);

/* The OpenSSL error queue as text (emptied), for handshake failures. */
void tls_client_errors(struct buf *out);

#endif
