/*
 * Server TLS context, the self-signed fallback certificate, and the glue
 * that puts libevent bufferevents under TLS for STARTTLS (RFC 3207) and for
 * implicit TLS (RFC 8314). See tls.h.
 */
#include "tls/tls.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "ipc/keeper_client.h"
#include "lib/dnsname.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "tls/tls_keeper_key.h"

/*
 * Mozilla "intermediate" (server side TLS guidelines, version 5): forward
 * secret AEAD suites only for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults,
 * which are the same three Mozilla lists.
 */
#define TLS_CIPHERS_TLS12                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_TLS13                                                                          \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:prime256v1:secp384r1"

#define TLS_SELFSIGNED_DAYS 3650

struct tls_server {
    SSL_CTX *ctx;
    char *cert_file;
};

/* Appends OpenSSL's error queue (most recent last) to err and clears it. */
static void tls_openssl_error(struct buf *err)
{
    unsigned long e;
    int first = 1;
    while ((e = ERR_get_error()) != 0) {
        char line[256];
        ERR_error_string_n(e, line, sizeof line);
        buf_puts(err, first ? ": " : "; ");
        buf_puts(err, line);
        first = 0;
    }
}

/*
 * Any SNI name is accepted: there is one certificate for now. The name is
 * kept by OpenSSL (SSL_get_servername) for the log line after the handshake.
 */
static int tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name && log_debug_enabled())
        log_debug("TLS SNI name requested: %.255s", name);
    return SSL_TLSEXT_ERR_OK;
}

/* A host name safe to put in a certificate extension string: LDH and dots. */
static int tls_hostname_ok(const char *h)
{
    return dnsname_ok(h, strlen(h), 0);
}

static int tls_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int rc = X509_add_ext(x, ext, -1) ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

/* Makes an ECDSA P-256 key and a certificate for hostname; PEM into key/cert. */
static int tls_make_selfsigned(const char *hostname, struct buf *key_pem, struct buf *cert_pem,
                               struct buf *err)
{
    int rc = -1;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    BIO *kb = BIO_new(BIO_s_mem());
    BIO *cb = BIO_new(BIO_s_mem());
    if (!pkey || !x || !serial || !kb || !cb)
        goto out;
    /* RFC 5280 4.1.2.2: a positive serial of at most 20 octets; 127 random bits. */
    unsigned char rnd[16];
    random_bytes(rnd, sizeof rnd);
    rnd[0] &= 0x7f;
    if (!BN_bin2bn(rnd, sizeof rnd, serial) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
        goto out;
    if (!X509_set_version(x, X509_VERSION_3) || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), TLS_SELFSIGNED_DAYS, 0, NULL) ||
        !X509_set_pubkey(x, pkey))
        goto out;
    X509_NAME *name = X509_get_subject_name(x);
    /* The CN is at most 64 octets (RFC 5280 upper bound); the SAN carries the name anyway. */
    size_t hlen = strlen(hostname);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
                                    hlen <= 64 ? (int)hlen : 64, -1, 0) ||
        !X509_set_issuer_name(x, name))
        goto out;
    char *san = xasprintf("DNS:%s", hostname);
    int ext_rc = tls_add_ext(x, NID_subject_alt_name, san);
    free(san);
    if (ext_rc < 0 || tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        tls_add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
        tls_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
        tls_add_ext(x, NID_subject_key_identifier, "hash") < 0)
        goto out;
    if (!X509_sign(x, pkey, EVP_sha256()))
        goto out;
    if (!PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, x))
        goto out;
    char *p;
    long n = BIO_get_mem_data(kb, &p);
    buf_append(key_pem, p, (size_t)n);
    n = BIO_get_mem_data(cb, &p);
    buf_append(cert_pem, p, (size_t)n);
    rc = 0;
out:
    if (rc < 0) {
        buf_puts(err, "cannot make a self-signed certificate");
        tls_openssl_error(err);
    }
    BIO_free(kb);
    BIO_free(cb);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/*
 * Whether the pair at cert/key is usable for hostname: both parse, they
 * match, the certificate names hostname and has not expired.
 */
static int tls_pair_usable(const char *cert_path, const char *key_path, const char *hostname)
{
    int ok = 0;
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    FILE *f = fopen(cert_path, "r");
    if (f) {
        x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    f = fopen(key_path, "r");
    if (f) {
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (x && pkey && X509_check_private_key(x, pkey) == 1 &&
        X509_check_host(x, hostname, 0, 0, NULL) == 1 &&
        X509_cmp_current_time(X509_get0_notAfter(x)) > 0)
        ok = 1;
    X509_free(x);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return ok;
}

int tls_selfsigned_ensure(const char *dir, const char *hostname, struct buf *err)
{
    char *cert_path = xasprintf("%s/cert.pem", dir);
    char *key_path = xasprintf("%s/key.pem", dir);
    struct buf key = BUF_INIT, cert = BUF_INIT;
    int rc = -1;
    struct stat st;
    int existed = stat(cert_path, &st) == 0;

    if (!tls_hostname_ok(hostname)) {
        buf_printf(err, "myhostname '%s' is not a host name usable in a certificate", hostname);
        goto out;
    }
    if (existed && tls_pair_usable(cert_path, key_path, hostname)) {
        rc = 0;
        goto out;
    }
    if (mkdir_p(dir, 0700) < 0) {
        buf_printf(err, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    if (tls_make_selfsigned(hostname, &key, &cert, err) < 0)
        goto out;
    /* The key first: a crash in between leaves a key without its certificate, remade next time. */
    if (write_file_atomic(key_path, key.data, key.len, 0600) < 0) {
        buf_printf(err, "cannot write %s: %s", key_path, strerror(errno));
        goto out;
    }
    if (write_file_atomic(cert_path, cert.data, cert.len, 0644) < 0) {
        buf_printf(err, "cannot write %s: %s", cert_path, strerror(errno));
        goto out;
    }
    log_info("created a self-signed TLS certificate for %s in %s (10 years, ECDSA P-256)%s; "
             "set smtpd_tls_cert_file and smtpd_tls_key_file to use a real one",
             hostname, cert_path,
             existed ? " replacing one that was unusable, expired or for another name" : "");
    rc = 0;
out:
    if (key.data)
        OPENSSL_cleanse(key.data, key.len);
    buf_free(&key);
    buf_free(&cert);
    free(cert_path);
    free(key_path);
    return rc;
}

/*
 * Whether the keeper holds the private half of pub: one signature through
 * k, checked with pub. It stands in for the key/certificate match a worker
 * that read the key itself made at load time (a mismatch is refused now,
 * not at the first handshake).
 */
static int tls_keeper_key_matches(EVP_PKEY *k, EVP_PKEY *pub)
{
    static const unsigned char probe[] = "hongyan: does the keeper hold this key?";
    unsigned char sig[1024];
    size_t n = sizeof sig;
    EVP_MD_CTX *sc = EVP_MD_CTX_new(), *vc = EVP_MD_CTX_new();
    int ok = sc && vc && EVP_DigestSignInit(sc, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestSign(sc, sig, &n, probe, sizeof probe) == 1 &&
             EVP_DigestVerifyInit(vc, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(vc, sig, n, probe, sizeof probe) == 1;
    EVP_MD_CTX_free(sc);
    EVP_MD_CTX_free(vc);
    return ok;
}

struct tls_server *tls_server_new(const struct config *cfg, struct buf *err)
{
    const char *cert = config_get(cfg, "smtpd_tls_cert_file");
    const char *key = config_get(cfg, "smtpd_tls_key_file");
    char *cert_path, *key_path;
    if (cert[0] == '\0') {
        char *dir = xasprintf("%s/tls", config_get(cfg, "data_directory"));
        const char *host = config_get(cfg, "myhostname");
        if (!tls_hostname_ok(host)) {
            /* Not worth refusing to start over a self-signed certificate's name. */
            log_warning("myhostname '%s' cannot be a certificate name; the self-signed "
                        "certificate says localhost",
                        host);
            host = "localhost";
        }
        /* The keeper makes the pair (it alone may write the key); we only read the certificate. */
        if (keeper_client_default() == NULL && tls_selfsigned_ensure(dir, host, err) < 0) {
            free(dir);
            return NULL;
        }
        cert_path = xasprintf("%s/cert.pem", dir);
        key_path = xasprintf("%s/key.pem", dir);
        free(dir);
    } else {
        cert_path = xstrdup(cert);
        key_path = xstrdup(key[0] ? key : cert);
    }

    struct tls_server *ts = xcalloc(1, sizeof *ts);
    ts->cert_file = cert_path;
    SSL_CTX *ctx = ts->ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        buf_puts(err, "cannot create a TLS context");
        goto fail;
    }
    static const unsigned char sid_ctx[] = "hongyan-smtpd";
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) ||
        !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_TLS13) ||
        !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) || !SSL_CTX_set_dh_auto(ctx, 1) ||
        !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
        buf_puts(err, "cannot configure the TLS context");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        buf_printf(err, "smtpd_tls_cert_file: cannot load certificate chain %s", cert_path);
        goto fail;
    }
    if (keeper_client_default()) {
        /* The worker: the key is the keeper's; this one forwards its signatures there. */
        X509 *x = SSL_CTX_get0_certificate(ctx);
        EVP_PKEY *k =
            x ? tls_keeper_key_new(keeper_client_default(), X509_get0_pubkey(x), err) : NULL;
        int used = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
        int matches = used && tls_keeper_key_matches(k, X509_get0_pubkey(x));
        EVP_PKEY_free(k);
        if (!used) {
            buf_printf(err, "%ssmtpd_tls_cert_file: cannot use the keeper's key for %s",
                       err->len ? "; " : "", cert_path);
            goto fail;
        }
        if (!matches) {
            buf_printf(err,
                       "smtpd_tls_key_file: %s does not match the certificate in %s, or the "
                       "keeper cannot read it (the keeper's log says which)",
                       key_path, cert_path);
            goto fail;
        }
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            buf_printf(err, "smtpd_tls_key_file: %s does not match the certificate in %s", key_path,
                       cert_path);
        else
            buf_printf(err, "smtpd_tls_key_file: cannot load private key %s", key_path);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        buf_printf(err, "smtpd_tls_key_file: %s does not match the certificate in %s", key_path,
                   cert_path);
        goto fail;
    }
    free(key_path);
    return ts;
fail:
    tls_openssl_error(err);
    free(key_path);
    tls_server_free(ts);
    return NULL;
}

void tls_server_free(struct tls_server *ts)
{
    if (ts == NULL)
        return;
    SSL_CTX_free(ts->ctx);
    free(ts->cert_file);
    free(ts);
}

SSL_CTX *tls_server_ctx(struct tls_server *ts)
{
    return ts->ctx;
}

const char *tls_server_cert_file(const struct tls_server *ts)
{
    return ts->cert_file;
}

int tls_server_starttls(struct tls_server *ts, struct bufferevent **bevp)
{
    struct bufferevent *plain = *bevp;
    evutil_socket_t fd = bufferevent_getfd(plain);
    /* The 220 must have left: a TLS stream on the socket would not send it. */
    if (fd < 0 || evbuffer_get_length(bufferevent_get_output(plain)) > 0)
        return -1;
    SSL *ssl = SSL_new(ts->ctx);
    if (ssl == NULL)
        return -1;
    /*
     * RFC 3207 section 5 / CVE-2011-0411: commands pipelined behind STARTTLS
     * arrived in the clear; they must not be executed as if they came over
     * TLS. Drop them: the handshake starts with what the socket holds next.
     */
    struct evbuffer *in = bufferevent_get_input(plain);
    evbuffer_drain(in, evbuffer_get_length(in));
    /*
     * A TLS bufferevent on the socket itself, rather than a filter over the
     * plain one: a filter's underlying output could still hold the last
     * reply when the session frees it (QUIT, 421), and that reply would be
     * lost. The plain bufferevent lets go of the socket and is freed.
     */
    bufferevent_disable(plain, EV_READ | EV_WRITE);
    bufferevent_setfd(plain, -1);
    struct bufferevent *tls = bufferevent_openssl_socket_new(
        bufferevent_get_base(plain), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        bufferevent_setfd(plain, fd);
        SSL_free(ssl);
        return -1;
    }
    /* Many clients close without close_notify; that is an end, not an attack on SMTP. */
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    bufferevent_free(plain);
    *bevp = tls;
    return 0;
}

struct bufferevent *tls_server_accept(struct tls_server *ts, struct event_base *base, int fd)
{
    SSL *ssl = SSL_new(ts->ctx);
    if (ssl == NULL)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

SSL *tls_bev_ssl(struct bufferevent *bev)
{
    return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

void tls_describe(SSL *ssl, struct buf *out)
{
    if (ssl == NULL)
        return;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int alg_bits = 0;
    int bits = c ? SSL_CIPHER_get_bits(c, &alg_bits) : 0;
    buf_printf(out, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
               c ? SSL_CIPHER_get_name(c) : "unknown", bits, alg_bits);
}

const char *tls_sni_name(SSL *ssl)
{
    return ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}
