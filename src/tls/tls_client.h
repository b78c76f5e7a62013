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
 * tls_dane_from_rdata() returns a struct tls_dane freed with tls_dane_free().
 *
 * DANE (RFC 7672, 7671) uses OpenSSL's own TLSA matching: the caller (the
 * delivery agent) decides from DNSSEC-validated answers whether a server has
 * usable TLSA records; this module parses them and has OpenSSL check them.
 */
#ifndef HONGYAN_TLS_TLS_CLIENT_H
#define HONGYAN_TLS_TLS_CLIENT_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "lib/buf.h"

struct config;

/* smtp_tls_security_level (Postfix TLS_README "Client TLS security levels"). */
enum tls_level {
    TLS_LEVEL_NONE,
    TLS_LEVEL_MAY,     /* STARTTLS when offered, any certificate; plain otherwise */
    TLS_LEVEL_ENCRYPT, /* TLS required, any certificate */
    TLS_LEVEL_VERIFY,  /* TLS required, chain trusted, name = the server's host name */
    TLS_LEVEL_SECURE,  /* TLS required, chain trusted, name = the next-hop domain or a subdomain */
    TLS_LEVEL_DANE,    /* RFC 7672: TLS required and the peer must match a TLSA record */
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

/*
 * Reads smtp_tls_CAfile and smtp_tls_CApath (neither: the system store).
 * With smtp_tls_session_cache_database set, connections made by
 * tls_client_ssl and tls_client_ssl_names resume the sessions their server
 * issued before (same server name, level and names), for
 * smtp_tls_session_cache_timeout. NULL with err.
 */
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
 * For MTA-STS (RFC 8461 4.2): SNI name, the certificate must name it and
 * chain to the system CAs or smtp_tls_CAfile, whatever the level; at
 * verify the result is then VERIFIED or UNTRUSTED, below it TRUSTED or
 * UNTRUSTED. NULL if the trust store cannot be built.
 */
SSL *tls_client_ssl_webpki(struct tls_client *c, const char *name);
/*
 * The same with a list of acceptable names (smtp_tls_policy_maps match=,
 * already expanded): for verify and secure the certificate must match one
 * of names (NULL-terminated); a name with a leading dot matches its
 * subdomains; an address literal is checked as an IP address.
 */
SSL *tls_client_ssl_names(struct tls_client *c, enum tls_level level, const char *sni,
                          const char *const *names);

/*
 * After a completed handshake: the trust reached, and in summary
 * "TLSv1.3 with cipher NAME (256/256 bits)" (", session reused" after it
 * for a resumed session). For verify/secure, a result
 * below VERIFIED means the caller must not go on; why says what failed.
 */
enum tls_trust tls_client_result(SSL *ssl, enum tls_level level, struct buf *summary,
                                 struct buf *why);

/* One TLSA record (RFC 6698 2.1); data points into the RDATA or the struct tls_dane. */
struct tls_tlsa {
    unsigned char usage;    /* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
    unsigned char selector; /* 0 full certificate, 1 SubjectPublicKeyInfo */
    unsigned char mtype;    /* 0 exact, 1 SHA2-256, 2 SHA2-512 */
    const unsigned char *data;
    size_t len;
};

/* The usable TLSA records of one server (from a secure RRset). */
struct tls_dane {
    struct tls_tlsa *recs;
    size_t n;            /* usable records; 0: all unusable (RFC 7672 2.2: encrypt) */
    size_t unusable;     /* records dropped as unusable or malformed */
    unsigned char *blob; /* the records' data, which recs[i].data point into */
    /*
     * The TLSA base domain when it is not the name connected to (the MX
     * host's CNAME-expanded name, RFC 7672 2.2.2), or NULL; the caller sets
     * it (heap, freed with the struct).
     */
    char *base;
};

/* Splits one TLSA RDATA into its fields; 0, or -1 when shorter than 4 octets. */
int tls_tlsa_parse(const unsigned char *rdata, size_t len, struct tls_tlsa *out);
/*
 * Whether a TLSA record can authenticate an SMTP server: RFC 7672 3.1.3
 * makes PKIX-TA(0)/PKIX-EE(1) unusable; selector must be 0 or 1, matching
 * type 0 (non-empty data), 1 (32 octets) or 2 (64 octets) (RFC 6698 2.1).
 */
int tls_tlsa_usable(const struct tls_tlsa *t);
/* The usable records out of a TLSA RRset's RDATA (count entries). Never NULL. */
struct tls_dane *tls_dane_from_rdata(unsigned char *const *rdata, const size_t *rdlen,
                                     size_t count);
void tls_dane_free(struct tls_dane *d);

/*
 * The association data of cert for a selector and matching type (RFC 6698
 * 2.1.2, 2.1.3: the DER certificate or SubjectPublicKeyInfo, as is or its
 * SHA2-256/512), appended to out. 0, or -1 for an unknown selector or type.
 */
int tls_tlsa_data(X509 *cert, unsigned selector, unsigned mtype, struct buf *out);
/* 1 when t's data is cert's for t's selector and matching type (the usage is not looked at). */
int tls_tlsa_matches(const struct tls_tlsa *t, X509 *cert);

/*
 * A client SSL that must match one of d's records (d->n > 0): SNI is the
 * TLSA base domain (d->base, else name: RFC 7672 8.1), and a DANE-TA(2)
 * match needs a certificate naming it or name, the MX host name as found
 * (RFC 7672 3.2.2); DANE-EE(3) matches ignore names and expiry (RFC 7672
 * 3.1.1). NULL if
 * no record could be loaded. tls_client_result(ssl, TLS_LEVEL_DANE, ...)
 * then says VERIFIED only when a record matched, and adds
 * " dane: matched U S M" to the summary.
 */
SSL *tls_client_ssl_dane(struct tls_client *c, const struct tls_dane *d, const char *name);

/* The OpenSSL error queue as text (emptied), for handshake failures. */
void tls_client_errors(struct buf *out);

#endif
