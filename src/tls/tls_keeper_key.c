/*
 * The worker's TLS key that signs through the keeper (tls_keeper_key.h).
 *
 * An RSA_METHOD and an EC_KEY_METHOD, not an OpenSSL 3 provider: a key with
 * a method of its own is a "foreign" legacy key to OpenSSL 3, which then
 * keeps libssl's signing on the legacy path and so calls these methods for
 * every handshake signature (RSA PKCS#1 v1.5 for TLS 1.2's rsa_pkcs1_*,
 * RSA-PSS padded by OpenSSL before the raw private operation, ECDSA). A
 * provider (keymgmt plus signature, with its own parameter plumbing for
 * PSS) does the same in several hundred lines more. These interfaces are
 * deprecated in OpenSSL 3 but still supported there; the deprecation
 * warnings are switched off in this file only, and it is the only one that
 * would change when they go.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls/tls_keeper_key.h"

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/keeper_client.h"
#include "lib/xalloc.h"

/* What a key needs to ask the keeper: the connection and the key's name. */
struct tls_keeper_ref {
    struct keeper_client *kc;
    uint8_t keyid[KEEPER_KEYID_LEN];
};

static RSA_METHOD *tls_keeper_rsa_method;
static EC_KEY_METHOD *tls_keeper_ec_method;
static int tls_keeper_rsa_idx = -1, tls_keeper_ec_idx = -1;
static pthread_once_t tls_keeper_once = PTHREAD_ONCE_INIT;

int tls_keeper_keyid(EVP_PKEY *key, uint8_t out[32])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return -1;
    SHA256(der, (size_t)n, out);
    OPENSSL_free(der);
    return 0;
}

static void tls_keeper_ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

/* One private operation at the keeper; the signature (at most cap bytes) into to. */
static int tls_keeper_sign(const struct tls_keeper_ref *ref, enum keeper_tls_op op,
                           const unsigned char *in, size_t inlen, unsigned char *to, size_t cap)
{
    if (ref == NULL)
        return -1;
    struct buf sig = BUF_INIT;
    int n = -1;
    if (keeper_client_tls_sign(ref->kc, op, ref->keyid, in, inlen, &sig) == KEEPER_ST_OK &&
        sig.len <= cap) {
        memcpy(to, sig.data, sig.len);
        n = (int)sig.len;
    }
    buf_free(&sig);
    return n;
}

static int tls_keeper_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
                                   int padding)
{
    enum keeper_tls_op op;
    if (padding == RSA_PKCS1_PADDING)
        op = KEEPER_TLS_RSA_PKCS1;
    else if (padding == RSA_NO_PADDING)
        op = KEEPER_TLS_RSA_RAW;
    else
        return -1;
    int n = tls_keeper_sign(RSA_get_ex_data(rsa, tls_keeper_rsa_idx), op, from, (size_t)flen, to,
                            (size_t)RSA_size(rsa));
    return n == RSA_size(rsa) ? n : -1;
}

/* No RSA key exchange is configured (forward-secret suites only): nothing to decrypt. */
static int tls_keeper_rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
                                   int padding)
{
    (void)flen, (void)from, (void)to, (void)rsa, (void)padding;
    return -1;
}

static int tls_keeper_ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
                              unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r,
                              EC_KEY *eckey)
{
    (void)type, (void)kinv, (void)r;
    int n = tls_keeper_sign(EC_KEY_get_ex_data(eckey, tls_keeper_ec_idx), KEEPER_TLS_ECDSA, dgst,
                            (size_t)dlen, sig, (size_t)ECDSA_size(eckey));
    if (n <= 0)
        return 0;
    *siglen = (unsigned)n;
    return 1;
}

static ECDSA_SIG *tls_keeper_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
                                         const BIGNUM *r, EC_KEY *eckey)
{
    unsigned char der[KEEPER_SIG_MAX];
    unsigned int n = 0;
    if (!tls_keeper_ec_sign(0, dgst, dlen, der, &n, kinv, r, eckey))
        return NULL;
    const unsigned char *p = der;
    return d2i_ECDSA_SIG(NULL, &p, (long)n);
}

static void tls_keeper_init(void)
{
    tls_keeper_rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, tls_keeper_ref_free);
    tls_keeper_ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, tls_keeper_ref_free);
    tls_keeper_rsa_method = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    if (tls_keeper_rsa_method) {
        RSA_meth_set1_name(tls_keeper_rsa_method, "hongyan keeper");
        RSA_meth_set_priv_enc(tls_keeper_rsa_method, tls_keeper_rsa_priv_enc);
        RSA_meth_set_priv_dec(tls_keeper_rsa_method, tls_keeper_rsa_priv_dec);
    }
    tls_keeper_ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (tls_keeper_ec_method) {
        int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
        EC_KEY_METHOD_get_sign(tls_keeper_ec_method, NULL, &sign_setup, NULL);
        EC_KEY_METHOD_set_sign(tls_keeper_ec_method, tls_keeper_ec_sign, sign_setup,
                               tls_keeper_ec_sign_sig);
    }
}

EVP_PKEY *tls_keeper_key_new(struct keeper_client *kc, EVP_PKEY *pub, struct buf *err)
{
    pthread_once(&tls_keeper_once, tls_keeper_init);
    struct tls_keeper_ref *ref = xcalloc(1, sizeof *ref);
    ref->kc = kc;
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (pkey == NULL || tls_keeper_keyid(pub, ref->keyid) < 0)
        goto fail;
    int id = EVP_PKEY_get_base_id(pub);
    if (id == EVP_PKEY_RSA && tls_keeper_rsa_method) {
        const RSA *src = EVP_PKEY_get0_RSA(pub);
        RSA *rsa = src ? RSAPublicKey_dup(src) : NULL;
        /* The method before the assignment: that is when OpenSSL marks the key foreign. */
        if (rsa == NULL || !RSA_set_method(rsa, tls_keeper_rsa_method) ||
            !RSA_set_ex_data(rsa, tls_keeper_rsa_idx, ref)) {
            RSA_free(rsa);
            goto fail;
        }
        ref = NULL; /* the RSA object frees it */
        if (!EVP_PKEY_assign_RSA(pkey, rsa)) {
            RSA_free(rsa);
            goto fail;
        }
        return pkey;
    }
    if (id == EVP_PKEY_EC && tls_keeper_ec_method) {
        const EC_KEY *src = EVP_PKEY_get0_EC_KEY(pub);
        EC_KEY *ec = src ? EC_KEY_dup(src) : NULL;
        if (ec == NULL || !EC_KEY_set_method(ec, tls_keeper_ec_method) ||
            !EC_KEY_set_ex_data(ec, tls_keeper_ec_idx, ref)) {
            EC_KEY_free(ec);
            goto fail;
        }
        ref = NULL;
        if (!EVP_PKEY_assign_EC_KEY(pkey, ec)) {
            EC_KEY_free(ec);
            goto fail;
        }
        return pkey;
    }
    buf_puts(err, "the certificate's key is neither RSA nor EC (the keeper signs only those)");
    free(ref);
    EVP_PKEY_free(pkey);
    return NULL;
fail:
    if (err->len == 0)
        buf_puts(err, "cannot make the keeper-backed TLS key");
    free(ref);
    EVP_PKEY_free(pkey);
    return NULL;
}
