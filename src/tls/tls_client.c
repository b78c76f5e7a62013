/*
 * Outbound TLS contexts and certificate verdicts; see tls_client.h. The
 * chain is always checked by OpenSSL but only enforced at verify/secure
 * (SSL_VERIFY_NONE plus SSL_get_verify_result afterwards), so that at may
 * and encrypt we can still log Trusted vs Untrusted as Postfix does.
 */
#include "tls/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"

struct tls_client {
    SSL_CTX *ctx;
    /* MTA-STS's trust: the system CAs plus smtp_tls_CAfile (built on first use). */
    X509_STORE *webpki;
    char *cafile;
};

enum tls_level tls_level_parse(const char *word)
{
    if (str_eq_ci(word, "none"))
        return TLS_LEVEL_NONE;
    if (str_eq_ci(word, "encrypt"))
        return TLS_LEVEL_ENCRYPT;
    if (str_eq_ci(word, "verify"))
        return TLS_LEVEL_VERIFY;
    if (str_eq_ci(word, "secure"))
        return TLS_LEVEL_SECURE;
    if (str_eq_ci(word, "dane"))
        return TLS_LEVEL_DANE;
    return TLS_LEVEL_MAY;
}

const char *tls_trust_name(enum tls_trust t)
{
    switch (t) {
    case TLS_TRUST_VERIFIED:
        return "Verified";
    case TLS_TRUST_TRUSTED:
        return "Trusted";
    case TLS_TRUST_UNTRUSTED:
        return "Untrusted";
    default:
        return "Anonymous";
    }
}

void tls_client_errors(struct buf *out)
{
    unsigned long e;
    int first = 1;
    while ((e = ERR_get_error()) != 0) {
        char tmp[256];
        ERR_error_string_n(e, tmp, sizeof tmp);
        buf_printf(out, "%s%s", first ? "" : "; ", tmp);
        first = 0;
    }
}

struct tls_client *tls_client_new(const struct config *cfg, struct buf *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        buf_puts(err, "cannot create a TLS client context: ");
        tls_client_errors(err);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /*
     * DANE matching for the connections that ask for it (SSL_dane_enable);
     * RFC 7672 3.1.1: a DANE-EE(3) match authenticates the server whatever
     * names the certificate carries.
     */
    if (SSL_CTX_dane_enable(ctx) <= 0) {
        buf_puts(err, "cannot enable DANE in the TLS client context: ");
        tls_client_errors(err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    const char *cafile = config_get(cfg, "smtp_tls_CAfile");
    if (cafile && *cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            buf_printf(err, "smtp_tls_CAfile %s: ", cafile);
            tls_client_errors(err);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    struct tls_client *c = xcalloc(1, sizeof *c);
    c->ctx = ctx;
    c->cafile = xstrdup(cafile ? cafile : "");
    return c;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    X509_STORE_free(c->webpki);
    free(c->cafile);
    free(c);
}

static int tls_is_address(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

SSL *tls_client_ssl(struct tls_client *c, enum tls_level level, const char *sni,
                    const char *match_name)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    /* RFC 6066 3: SNI carries a host name, never an address literal. */
    if (sni && *sni && !tls_is_address(sni))
        SSL_set_tlsext_host_name(ssl, sni);
    if ((level == TLS_LEVEL_VERIFY || level == TLS_LEVEL_SECURE) && match_name && *match_name) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (tls_is_address(match_name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), match_name);
        } else {
            SSL_set1_host(ssl, match_name);
            if (level == TLS_LEVEL_SECURE) {
                /* Postfix's smtp_tls_secure_cert_match = nexthop, dot-nexthop. */
                char *dot = xasprintf(".%s", match_name);
                SSL_add1_host(ssl, dot);
                free(dot);
            }
        }
    }
    return ssl;
}

SSL *tls_client_ssl_webpki(struct tls_client *c, const char *name)
{
    if (!c->webpki) {
        /*
         * RFC 8461 4.2 asks for a certificate valid for the MX name that
         * chains to a trusted root: the system's, and smtp_tls_CAfile's
         * (which alone is what verify and secure trust, as in Postfix).
         */
        X509_STORE *st = X509_STORE_new();
        if (!st || X509_STORE_set_default_paths(st) != 1 ||
            (*c->cafile && X509_STORE_load_file(st, c->cafile) != 1)) {
            X509_STORE_free(st);
            return NULL;
        }
        c->webpki = st;
    }
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    if (SSL_set1_verify_cert_store(ssl, c->webpki) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    if (name && *name && !tls_is_address(name)) {
        SSL_set_tlsext_host_name(ssl, name);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl, name);
    }
    return ssl;
}

SSL *tls_client_ssl_names(struct tls_client *c, enum tls_level level, const char *sni,
                          const char *const *names)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    if (sni && *sni && !tls_is_address(sni))
        SSL_set_tlsext_host_name(ssl, sni);
    if (level != TLS_LEVEL_VERIFY && level != TLS_LEVEL_SECURE)
        return ssl;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int first = 1;
    for (size_t i = 0; names && names[i]; i++) {
        if (!*names[i])
            continue;
        if (tls_is_address(names[i])) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), names[i]);
        } else if (first) {
            SSL_set1_host(ssl, names[i]);
            first = 0;
        } else {
            SSL_add1_host(ssl, names[i]);
        }
    }
    return ssl;
}

int tls_tlsa_parse(const unsigned char *rdata, size_t len, struct tls_tlsa *out)
{
    /* RFC 6698 2.1: usage, selector, matching type, then at least one octet of data. */
    if (rdata == NULL || len < 4)
        return -1;
    out->usage = rdata[0];
    out->selector = rdata[1];
    out->mtype = rdata[2];
    out->data = rdata + 3;
    out->len = len - 3;
    return 0;
}

int tls_tlsa_usable(const struct tls_tlsa *t)
{
    /* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP; others are unknown. */
    if (t->usage != 2 && t->usage != 3)
        return 0;
    if (t->selector > 1)
        return 0;
    switch (t->mtype) {
    case 0:
        return t->len > 0;
    case 1:
        return t->len == 32;
    case 2:
        return t->len == 64;
    default:
        return 0;
    }
}

struct tls_dane *tls_dane_from_rdata(unsigned char *const *rdata, const size_t *rdlen, size_t count)
{
    struct tls_dane *d = xcalloc(1, sizeof *d);
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += rdlen[i];
    d->recs = xcalloc(count ? count : 1, sizeof *d->recs);
    d->blob = xmalloc(total ? total : 1);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        struct tls_tlsa t;
        if (tls_tlsa_parse(rdata[i], rdlen[i], &t) != 0 || !tls_tlsa_usable(&t)) {
            d->unusable++;
            continue;
        }
        memcpy(d->blob + used, t.data, t.len);
        t.data = d->blob + used;
        used += t.len;
        d->recs[d->n++] = t;
    }
    return d;
}

void tls_dane_free(struct tls_dane *d)
{
    if (!d)
        return;
    free(d->recs);
    free(d->blob);
    free(d->base);
    free(d);
}

int tls_tlsa_data(X509 *cert, unsigned selector, unsigned mtype, struct buf *out)
{
    unsigned char *der = NULL;
    int len;
    if (selector == 0)
        len = i2d_X509(cert, &der);
    else if (selector == 1)
        len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    else
        return -1;
    if (len <= 0)
        return -1;
    int rc = 0;
    if (mtype == 0) {
        buf_append(out, der, (size_t)len);
    } else if (mtype == 1 || mtype == 2) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(der, (size_t)len, md, &n, mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL) !=
            1)
            rc = -1;
        else
            buf_append(out, md, n);
    } else {
        rc = -1;
    }
    OPENSSL_free(der);
    return rc;
}

int tls_tlsa_matches(const struct tls_tlsa *t, X509 *cert)
{
    struct buf data = BUF_INIT;
    int ok = tls_tlsa_data(cert, t->selector, t->mtype, &data) == 0 && data.len == t->len &&
             memcmp(data.data, t->data, t->len) == 0;
    buf_free(&data);
    return ok;
}

SSL *tls_client_ssl_dane(struct tls_client *c, const struct tls_dane *d, const char *name)
{
    if (!d || d->n == 0 || !name || !*name)
        return NULL;
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    const char *base = d->base && *d->base ? d->base : name;
    if (!tls_is_address(base))
        SSL_set_tlsext_host_name(ssl, base);
    /* The reference identifiers for DANE-TA(2): the base domain and the MX host (RFC 7672 3.2.2).
     */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_dane_enable(ssl, base) <= 0 || (base != name && SSL_add1_host(ssl, name) != 1)) {
        SSL_free(ssl);
        return NULL;
    }
    size_t loaded = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct tls_tlsa *t = &d->recs[i];
        /* 0 (unsupported) or -1 (malformed, e.g. a selector 1 "exact" that is no SPKI): skip. */
        if (SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0)
            loaded++;
    }
    ERR_clear_error();
    if (loaded == 0) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

enum tls_trust tls_client_result(SSL *ssl, enum tls_level level, struct buf *summary,
                                 struct buf *why)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int alg_bits = 0;
    int bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
    buf_printf(summary, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
               cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer) {
        buf_puts(why, "the server presented no certificate");
        return TLS_TRUST_ANONYMOUS;
    }
    X509_free(peer);
    long v = SSL_get_verify_result(ssl);
    if (level == TLS_LEVEL_DANE) {
        uint8_t usage, selector, mtype;
        int depth = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, NULL, NULL);
        if (v != X509_V_OK || depth < 0) {
            buf_printf(why, "no TLSA record matched the certificate chain: %s",
                       X509_verify_cert_error_string(v));
            return TLS_TRUST_UNTRUSTED;
        }
        buf_printf(summary, " dane: matched %u %u %u", usage, selector, mtype);
        if (depth > 0)
            buf_printf(summary, " at depth %d", depth);
        return TLS_TRUST_VERIFIED;
    }
    if (v != X509_V_OK) {
        buf_printf(why, "certificate verification failed: %s", X509_verify_cert_error_string(v));
        return TLS_TRUST_UNTRUSTED;
    }
    if (level == TLS_LEVEL_VERIFY || level == TLS_LEVEL_SECURE)
        return TLS_TRUST_VERIFIED; /* the name was part of the verification */
    return TLS_TRUST_TRUSTED;
}
