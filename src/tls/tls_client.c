/*
 * Outbound TLS contexts and certificate verdicts; see tls_client.h. The
 * chain is always checked by OpenSSL but only enforced at verify/secure
 * (SSL_VERIFY_NONE plus SSL_get_verify_result afterwards), so that at may
 * and encrypt we can still log Trusted vs Untrusted as Postfix does.
 */
#include "tls/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"

struct tls_client {
    SSL_CTX *ctx;
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
    return c;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
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
    if (v != X509_V_OK) {
        buf_printf(why, "certificate verification failed: %s", X509_verify_cert_error_string(v));
        return TLS_TRUST_UNTRUSTED;
    }
    if (level == TLS_LEVEL_VERIFY || level == TLS_LEVEL_SECURE)
        return TLS_TRUST_VERIFIED; /* the name was part of the verification */
    return TLS_TRUST_TRUSTED;
}
