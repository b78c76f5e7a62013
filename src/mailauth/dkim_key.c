/*
 * DKIM keys: the public key record in DNS (RFC 6376 3.6.1, RFC 8463 for
 * k=ed25519), the signing and verifying primitives over OpenSSL 3 EVP, and
 * the TXT record that publishes a private key's public half.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "lib/base64.h"
#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

/* RFC 8301 3.2: verifiers must not accept RSA keys shorter than 1024 bits. */
#define DKIM_RSA_MIN_BITS 1024

/* 1 when the colon-separated list contains item (white space around items ignored). */
static int list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        const char *e = p;
        while (*e && *e != ':')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r' || t[-1] == '\n'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, item, n) == 0)
            return 1;
        p = *e ? e + 1 : e;
    }
    return 0;
}

void dkim_pubkey_clear(struct dkim_pubkey *k)
{
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof(*k));
}

enum dkim_keyerr dkim_pubkey_parse(const char *txt, size_t len, struct dkim_pubkey *k,
                                   struct buf *reason)
{
    memset(k, 0, sizeof(*k));
    struct dkim_tags t;
    struct buf e = BUF_INIT;
    enum dkim_keyerr rc = DKIM_KEY_SYNTAX;
    if (dkim_tags_parse(&t, txt, len, &e) < 0) {
        buf_printf(reason, "key record: %s", buf_cstr(&e));
        goto out;
    }
    /* v= is optional, but when present it must be the first tag and "DKIM1". */
    const char *v = dkim_tags_get(&t, "v");
    if (v && (strcmp(t.tag[0].name, "v") != 0 || strcmp(v, "DKIM1") != 0)) {
        buf_printf(reason, "key record: bad version v=%s", v);
        goto out;
    }
    const char *h = dkim_tags_get(&t, "h");
    if (h && !list_has(h, "sha256")) {
        buf_printf(reason, "key record: h=%s does not allow sha256", h);
        goto out;
    }
    const char *kt = dkim_tags_get(&t, "k");
    if (kt == NULL || strcmp(kt, "rsa") == 0)
        k->type = DKIM_KEY_RSA;
    else if (strcmp(kt, "ed25519") == 0)
        k->type = DKIM_KEY_ED25519;
    else {
        buf_printf(reason, "key record: unknown key type k=%s", kt);
        goto out;
    }
    const char *s = dkim_tags_get(&t, "s");
    if (s && !list_has(s, "*") && !list_has(s, "email")) {
        buf_printf(reason, "key record: service s=%s is not email", s);
        goto out;
    }
    const char *fl = dkim_tags_get(&t, "t");
    if (fl) {
        k->testing = list_has(fl, "y");
        k->strict = list_has(fl, "s");
    }
    const char *p = dkim_tags_get(&t, "p");
    if (p == NULL) {
        buf_puts(reason, "key record: no p= tag");
        goto out;
    }
    struct buf der = BUF_INIT;
    if (base64_decode_buf(p, strlen(p), BASE64_FWS, &der) < 0) {
        buf_puts(reason, "key record: p= is not base64");
        buf_free(&der);
        goto out;
    }
    if (der.len == 0) {
        /* 3.6.1: an empty p= means the key has been revoked. */
        buf_puts(reason, "key revoked (empty p=)");
        rc = DKIM_KEY_REVOKED;
        buf_free(&der);
        goto out;
    }
    const unsigned char *q = (const unsigned char *)der.data;
    if (k->type == DKIM_KEY_ED25519) {
        /* RFC 8463 4.2: the raw 32-byte public key. */
        if (der.len == 32)
            k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, q, 32);
        if (k->pkey == NULL)
            buf_printf(reason, "key record: Ed25519 key of %zu bytes, not 32", der.len);
    } else {
        /* SubjectPublicKeyInfo as 3.6.1 says; some publish a bare RSAPublicKey. */
        k->pkey = d2i_PUBKEY(NULL, &q, (long)der.len);
        if (k->pkey == NULL) {
            q = (const unsigned char *)der.data;
            k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)der.len);
        }
        if (k->pkey == NULL || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
            buf_puts(reason, "key record: p= is not an RSA public key");
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
        } else if (EVP_PKEY_get_bits(k->pkey) < DKIM_RSA_MIN_BITS) {
            buf_printf(reason, "RSA key of %d bits is too short (RFC 8301)",
                       EVP_PKEY_get_bits(k->pkey));
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
        }
    }
    buf_free(&der);
    if (k->pkey)
        rc = DKIM_KEY_OK;
out:
    dkim_tags_free(&t);
    buf_free(&e);
    return rc;
}

int dkim_crypto_sign_digest(EVP_PKEY *key, const unsigned char digest[32], struct buf *sig)
{
    int rc = -1;
    size_t n = 0;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        /* RFC 8463 3: PureEdDSA over the SHA-256 hash of the header data. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx == NULL)
            return -1;
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestSign(ctx, NULL, &n, digest, 32) == 1) {
            buf_reserve(sig, n);
            if (EVP_DigestSign(ctx, (unsigned char *)sig->data + sig->len, &n, digest, 32) == 1)
                rc = 0;
        }
        EVP_MD_CTX_free(ctx);
    } else {
        /* rsa-sha256: PKCS#1 v1.5 over the digest, as EVP_DigestSign would do over the data. */
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        if (ctx == NULL)
            return -1;
        if (EVP_PKEY_sign_init(ctx) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
            EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
            EVP_PKEY_sign(ctx, NULL, &n, digest, 32) == 1) {
            buf_reserve(sig, n);
            if (EVP_PKEY_sign(ctx, (unsigned char *)sig->data + sig->len, &n, digest, 32) == 1)
                rc = 0;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    if (rc == 0) {
        sig->len += n;
        sig->data[sig->len] = '\0';
    }
    return rc;
}

int dkim_crypto_sign(EVP_PKEY *key, const struct buf *data, struct buf *sig)
{
    unsigned char h[32];
    SHA256((const unsigned char *)(data->data ? data->data : ""), data->len, h);
    return dkim_crypto_sign_digest(key, h, sig);
}

int dkim_crypto_verify(EVP_PKEY *key, const struct buf *data, const unsigned char *sig,
                       size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = 0;
    if (ctx == NULL)
        return 0;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
        unsigned char h[32];
        SHA256((const unsigned char *)(data->data ? data->data : ""), data->len, h);
        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, h, sizeof(h)) == 1;
    } else {
        ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerifyUpdate(ctx, data->data ? data->data : "", data->len) == 1 &&
             EVP_DigestVerifyFinal(ctx, sig, siglen) == 1;
    }
    EVP_MD_CTX_free(ctx);
    return ok;
}

int dkim_key_record(EVP_PKEY *key, struct buf *out)
{
    int id = EVP_PKEY_get_base_id(key);
    if (id == EVP_PKEY_ED25519) {
        unsigned char raw[32];
        size_t n = sizeof(raw);
        if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32)
            return -1;
        buf_puts(out, "v=DKIM1; k=ed25519; p=");
        base64_encode(raw, n, out);
        return 0;
    }
    if (id != EVP_PKEY_RSA)
        return -1;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return -1;
    buf_puts(out, "v=DKIM1; k=rsa; p=");
    base64_encode(der, (size_t)n, out);
    OPENSSL_free(der);
    return 0;
}

void dkim_key_record_zone(const char *name, const char *record, struct buf *out)
{
    /* A TXT character-string holds at most 255 octets (RFC 1035 3.3). */
    const size_t max = 255;
    const char *p = strstr(record, "p=");
    size_t head = p ? (size_t)(p - record) : strlen(record);
    buf_printf(out, "%s. IN TXT ( \"%.*s\"", name, (int)head, record);
    const char *rest = record + head;
    size_t n = strlen(rest);
    while (n > 0) {
        size_t take = n < max ? n : max;
        buf_printf(out, " \"%.*s\"", (int)take, rest);
        rest += take;
        n -= take;
    }
    buf_puts(out, " )");
}

int dkim_key_record_matches(EVP_PKEY *key, const char *txt, size_t len, struct buf *why)
{
    struct dkim_pubkey k;
    if (dkim_pubkey_parse(txt, len, &k, why) != DKIM_KEY_OK) {
        dkim_pubkey_clear(&k);
        return 0;
    }
    /* EVP_PKEY_eq compares the public components (and the type). */
    int same = EVP_PKEY_eq(k.pkey, key) == 1;
    if (!same)
        buf_puts(why, "the record's p= is not this key's public key");
    dkim_pubkey_clear(&k);
    return same;
}
