/*
 * Outbound TLS contexts and certificate verdicts; see tls_client.h. The
 * chain is always checked by OpenSSL but only enforced at verify/secure
 * (SSL_VERIFY_NONE plus SSL_get_verify_result afterwards), so that at may
 * and encrypt we can still log Trusted vs Untrusted as Postfix does.
 */
#include "tls/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <pthread.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/*
 * Client TLS session cache (Postfix's smtp_tls_session_cache_database): a
 * session a server issued is offered again on the next connection to the
 * same server name with the same level and names to match, so the
 * handshake is shorter. Kept in memory, per generation, for
 * smtp_tls_session_cache_timeout; DANE connections are never resumed (their
 * trust comes from the TLSA records of the moment).
 */
#define TLS_CACHE_MAX 1024

struct tls_cached {
    char *key;
    SSL_SESSION *session; /* one reference, ours */
    time_t stored;
};

struct tls_client {
    SSL_CTX *ctx;
    long long cache_seconds; /* 0: no cache */
    pthread_mutex_t lock;
    struct tls_cached *cache;
    size_t ncache;
    /* MTA-STS's trust: the system CAs plus smtp_tls_CAfile (built on first use). */
    X509_STORE *webpki;
    char *cafile;
};

/* SSL ex_data slot holding the connection's cache key (heap, freed with the SSL). */
static int tls_cache_key_index = -1;
static pthread_once_t tls_cache_once = PTHREAD_ONCE_INIT;

static void tls_cache_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
    free(ptr);
}

static void tls_cache_index_init(void)
{
    tls_cache_key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_cache_key_free);
}

/* OpenSSL hands us each session the server issues (TLS 1.3: after the handshake). */
static int tls_cache_new_session(SSL *ssl, SSL_SESSION *session)
{
    struct tls_client *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *key = SSL_get_ex_data(ssl, tls_cache_key_index);
    if (c == NULL || key == NULL || !SSL_SESSION_is_resumable(session))
        return 0;
    /*
     * A copy: OpenSSL marks the connection's own session not resumable when
     * the connection ends without a TLS shutdown (we allow dirty shutdowns).
     */
    session = SSL_SESSION_dup(session);
    if (session == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    struct tls_cached *slot = NULL;
    for (size_t i = 0; i < c->ncache && !slot; i++)
        if (strcmp(c->cache[i].key, key) == 0)
            slot = &c->cache[i];
    if (slot == NULL && c->ncache == TLS_CACHE_MAX) {
        slot = &c->cache[0]; /* the oldest goes */
        for (size_t i = 1; i < c->ncache; i++)
            if (c->cache[i].stored < slot->stored)
                slot = &c->cache[i];
    }
    if (slot == NULL) {
        c->cache = xrealloc(c->cache, (c->ncache + 1) * sizeof *c->cache);
        slot = &c->cache[c->ncache++];
        *slot = (struct tls_cached){0};
    }
    if (slot->key == NULL || strcmp(slot->key, key) != 0) {
        free(slot->key);
        slot->key = xstrdup(key);
    }
    if (slot->session)
        SSL_SESSION_free(slot->session);
    slot->session = session;
    slot->stored = time(NULL);
    pthread_mutex_unlock(&c->lock);
    return 0; /* OpenSSL keeps its own reference; the cache holds the copy */
}

/* Names the connection for the cache and offers a stored session for that name. */
static void tls_cache_offer(struct tls_client *c, SSL *ssl, enum tls_level level, const char *sni,
                            const char *const *names, const char *name)
{
    if (c->cache_seconds <= 0)
        return;
    struct buf key = BUF_INIT;
    buf_printf(&key, "%d|%s", (int)level, sni ? sni : "");
    for (size_t i = 0; names && names[i]; i++)
        buf_printf(&key, "|%s", names[i]);
    if (name)
        buf_printf(&key, "|%s", name);
    time_t now = time(NULL);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->ncache; i++) {
        struct tls_cached *e = &c->cache[i];
        if (strcmp(e->key, buf_cstr(&key)) != 0)
            continue;
        if (now - e->stored < c->cache_seconds &&
            (long long)SSL_SESSION_get_time(e->session) + SSL_SESSION_get_timeout(e->session) > now)
            SSL_set_session(ssl, e->session);
        break;
    }
    pthread_mutex_unlock(&c->lock);
    SSL_set_ex_data(ssl, tls_cache_key_index, buf_steal(&key));
}

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
    /* Postfix's pair: a bundle file and/or a c_rehash directory (Debian: /etc/ssl/certs). */
    const char *cafile = config_get(cfg, "smtp_tls_CAfile");
    const char *capath = config_get(cfg, "smtp_tls_CApath");
    if (*cafile || *capath) {
        if (SSL_CTX_load_verify_locations(ctx, *cafile ? cafile : NULL, *capath ? capath : NULL) !=
            1) {
            buf_printf(err, "smtp_tls_CAfile %s, smtp_tls_CApath %s: ", cafile, capath);
            tls_client_errors(err);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    struct tls_client *c = xcalloc(1, sizeof *c);
    c->ctx = ctx;
    pthread_mutex_init(&c->lock, NULL);
    if (*config_get(cfg, "smtp_tls_session_cache_database")) {
        pthread_once(&tls_cache_once, tls_cache_index_init);
        c->cache_seconds = config_get_time(cfg, "smtp_tls_session_cache_timeout");
        SSL_CTX_set_app_data(ctx, c);
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, tls_cache_new_session);
    }
    c->cafile = xstrdup(cafile ? cafile : "");
    return c;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->ncache; i++) {
        free(c->cache[i].key);
        SSL_SESSION_free(c->cache[i].session);
    }
    free(c->cache);
    pthread_mutex_destroy(&c->lock);
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
    tls_cache_offer(c, ssl, level, sni, NULL, match_name);
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
    tls_cache_offer(c, ssl, level, sni, names, NULL);
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
    if (SSL_session_reused(ssl))
        buf_puts(summary, ", session reused");
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
