/*
 * Unit tests for the DANE part of the TLS client (src/tls/tls_client.c):
 * TLSA RDATA parsing and the usability rules of RFC 7672 3.1.3, and
 * in-process handshakes (a BIO pair) against a server with a fresh
 * self-signed certificate, matched by 3 1 1 and 3 0 1 or not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/config.h"
#include "lib/buf.h"
#include "tls/tls_client.h"

static void test_tlsa_parse(void **state)
{
    (void)state;
    struct tls_tlsa t;
    unsigned char rd[4 + 32] = {3, 1, 1};
    memset(rd + 3, 0xab, 32);
    assert_int_equal(tls_tlsa_parse(rd, 35, &t), 0);
    assert_int_equal(t.usage, 3);
    assert_int_equal(t.selector, 1);
    assert_int_equal(t.mtype, 1);
    assert_int_equal(t.len, 32);
    assert_ptr_equal(t.data, rd + 3);
    assert_true(tls_tlsa_usable(&t));
    /* Too short: no data octet. */
    assert_int_equal(tls_tlsa_parse(rd, 3, &t), -1);
    assert_int_equal(tls_tlsa_parse(NULL, 0, &t), -1);
}

static int usable(unsigned u, unsigned s, unsigned m, size_t len)
{
    unsigned char rd[3 + 80] = {(unsigned char)u, (unsigned char)s, (unsigned char)m};
    struct tls_tlsa t;
    if (tls_tlsa_parse(rd, 3 + len, &t) != 0)
        return -1;
    return tls_tlsa_usable(&t);
}

static void test_tlsa_usable(void **state)
{
    (void)state;
    assert_int_equal(usable(3, 1, 1, 32), 1);
    assert_int_equal(usable(3, 0, 2, 64), 1);
    assert_int_equal(usable(2, 0, 1, 32), 1);
    assert_int_equal(usable(2, 1, 0, 60), 1);
    /* RFC 7672 3.1.3: PKIX-TA(0), PKIX-EE(1) unusable for SMTP; unknown usages too. */
    assert_int_equal(usable(0, 0, 1, 32), 0);
    assert_int_equal(usable(1, 1, 1, 32), 0);
    assert_int_equal(usable(4, 1, 1, 32), 0);
    /* Unknown selector or matching type, or a digest of the wrong length. */
    assert_int_equal(usable(3, 2, 1, 32), 0);
    assert_int_equal(usable(3, 1, 3, 32), 0);
    assert_int_equal(usable(3, 1, 1, 31), 0);
    assert_int_equal(usable(3, 1, 2, 32), 0);
}

static void test_dane_from_rdata(void **state)
{
    (void)state;
    unsigned char a[35] = {3, 1, 1}, b[35] = {1, 1, 1}, c[67] = {2, 0, 2}, d[2] = {3, 1};
    memset(a + 3, 0x11, 32);
    memset(b + 3, 0x22, 32);
    memset(c + 3, 0x33, 64);
    unsigned char *rd[] = {a, b, c, d};
    size_t len[] = {sizeof a, sizeof b, sizeof c, sizeof d};
    struct tls_dane *dn = tls_dane_from_rdata(rd, len, 4);
    assert_int_equal(dn->n, 2);
    assert_int_equal(dn->unusable, 2);
    assert_int_equal(dn->recs[0].usage, 3);
    assert_int_equal(dn->recs[0].data[0], 0x11);
    assert_int_equal(dn->recs[1].usage, 2);
    assert_int_equal(dn->recs[1].mtype, 2);
    assert_int_equal(dn->recs[1].len, 64);
    assert_int_equal(dn->recs[1].data[63], 0x33);
    /* The records are copies: the RDATA may go. */
    memset(a, 0, sizeof a);
    assert_int_equal(dn->recs[0].data[0], 0x11);
    tls_dane_free(dn);
    tls_dane_free(NULL);

    struct tls_dane *none = tls_dane_from_rdata(NULL, NULL, 0);
    assert_int_equal(none->n, 0);
    tls_dane_free(none);
}

/* ---- Handshakes over a BIO pair ---- */

struct peer {
    EVP_PKEY *key;
    X509 *cert;
    SSL_CTX *ctx;
};

static void peer_make(struct peer *p, const char *cn)
{
    p->key = EVP_EC_gen("P-256");
    assert_non_null(p->key);
    p->cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(p->cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(p->cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(p->cert), 86400);
    X509_set_pubkey(p->cert, p->key);
    X509_NAME *name = X509_get_subject_name(p->cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(p->cert, name);
    assert_true(X509_sign(p->cert, p->key, EVP_sha256()) > 0);
    p->ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(p->ctx, p->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->ctx, p->key), 1);
}

static void peer_free(struct peer *p)
{
    SSL_CTX_free(p->ctx);
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
}

/* The 3 S 1 record data (SHA2-256) of the peer's certificate or its key. */
static void peer_digest(const struct peer *p, int selector, unsigned char out[32])
{
    unsigned char *der = NULL;
    int len = selector == 1 ? i2d_PUBKEY(p->key, &der) : i2d_X509(p->cert, &der);
    assert_true(len > 0);
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(der, (size_t)len, out, &n, EVP_sha256(), NULL), 1);
    OPENSSL_free(der);
}

/* Runs a handshake; returns the client's verdict, the summary in summary. */
static enum tls_trust handshake(struct peer *p, SSL *cli, struct buf *summary, struct buf *why)
{
    SSL *srv = SSL_new(p->ctx);
    BIO *bc, *bs;
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(cli, bc, bc);
    SSL_set_bio(srv, bs, bs);
    SSL_set_connect_state(cli);
    SSL_set_accept_state(srv);
    int done_c = 0, done_s = 0;
    for (int i = 0; i < 100 && !(done_c && done_s); i++) {
        if (!done_c)
            done_c = SSL_do_handshake(cli) == 1;
        if (!done_s)
            done_s = SSL_do_handshake(srv) == 1;
    }
    assert_true(done_c && done_s);
    enum tls_trust t = tls_client_result(cli, TLS_LEVEL_DANE, summary, why);
    SSL_free(srv);
    return t;
}

static struct tls_client *client_new(struct config **cfg)
{
    struct buf err = BUF_INIT;
    *cfg = config_load_text("main.cf", "", 0, &err);
    assert_non_null(*cfg);
    struct tls_client *c = tls_client_new(*cfg, &err);
    assert_non_null(c);
    buf_free(&err);
    return c;
}

static void test_dane_handshakes(void **state)
{
    (void)state;
    struct config *cfg;
    struct tls_client *c = client_new(&cfg);
    struct peer p;
    /* The certificate names someone else: DANE-EE ignores names (RFC 7672 3.1.1). */
    peer_make(&p, "unrelated.example.com");

    unsigned char rd[35] = {3, 1, 1};
    peer_digest(&p, 1, rd + 3);
    unsigned char *rdv[] = {rd};
    size_t lenv[] = {sizeof rd};
    struct tls_dane *dn = tls_dane_from_rdata(rdv, lenv, 1);
    SSL *ssl = tls_client_ssl_dane(c, dn, "mx.example.com");
    assert_non_null(ssl);
    struct buf summary = BUF_INIT, why = BUF_INIT;
    assert_int_equal(handshake(&p, ssl, &summary, &why), TLS_TRUST_VERIFIED);
    assert_non_null(strstr(buf_cstr(&summary), " dane: matched 3 1 1"));
    SSL_free(ssl);
    tls_dane_free(dn);

    /* 3 0 1: the whole certificate. */
    rd[1] = 0;
    peer_digest(&p, 0, rd + 3);
    dn = tls_dane_from_rdata(rdv, lenv, 1);
    ssl = tls_client_ssl_dane(c, dn, "mx.example.com");
    buf_reset(&summary);
    assert_int_equal(handshake(&p, ssl, &summary, &why), TLS_TRUST_VERIFIED);
    assert_non_null(strstr(buf_cstr(&summary), " dane: matched 3 0 1"));
    SSL_free(ssl);
    tls_dane_free(dn);

    /* A digest of something else: no match, never Verified. */
    rd[1] = 1;
    memset(rd + 3, 0x5a, 32);
    dn = tls_dane_from_rdata(rdv, lenv, 1);
    ssl = tls_client_ssl_dane(c, dn, "mx.example.com");
    buf_reset(&summary);
    buf_reset(&why);
    assert_int_equal(handshake(&p, ssl, &summary, &why), TLS_TRUST_UNTRUSTED);
    assert_non_null(strstr(buf_cstr(&why), "no TLSA record matched"));
    assert_null(strstr(buf_cstr(&summary), "dane:"));
    SSL_free(ssl);
    tls_dane_free(dn);

    /* tls_tlsa_data/tls_tlsa_matches: what doctor compares published records with. */
    struct buf data = BUF_INIT;
    unsigned char want[32];
    peer_digest(&p, 1, want);
    assert_int_equal(tls_tlsa_data(p.cert, 1, 1, &data), 0);
    assert_int_equal(data.len, 32);
    assert_memory_equal(data.data, want, 32);
    buf_reset(&data);
    assert_int_equal(tls_tlsa_data(p.cert, 0, 2, &data), 0);
    assert_int_equal(data.len, 64);
    buf_reset(&data);
    assert_int_equal(tls_tlsa_data(p.cert, 0, 0, &data), 0);
    assert_int_equal((int)data.len, i2d_X509(p.cert, NULL));
    assert_int_equal(tls_tlsa_data(p.cert, 2, 1, &data), -1);
    assert_int_equal(tls_tlsa_data(p.cert, 1, 3, &data), -1);
    struct tls_tlsa t = {3, 1, 1, want, 32};
    assert_true(tls_tlsa_matches(&t, p.cert));
    t.selector = 0;
    assert_false(tls_tlsa_matches(&t, p.cert));
    buf_free(&data);

    /* No usable record: no DANE SSL at all (the caller uses encrypt). */
    struct tls_dane *empty = tls_dane_from_rdata(NULL, NULL, 0);
    assert_null(tls_client_ssl_dane(c, empty, "mx.example.com"));
    tls_dane_free(empty);

    buf_free(&summary);
    buf_free(&why);
    peer_free(&p);
    tls_client_free(c);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlsa_parse),
        cmocka_unit_test(test_tlsa_usable),
        cmocka_unit_test(test_dane_from_rdata),
        cmocka_unit_test(test_dane_handshakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
