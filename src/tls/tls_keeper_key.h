/*
 * A TLS private key that is not here: an EVP_PKEY with the certificate's
 * public half whose private operations go to the keeper (src/keeper/) over
 * the worker's keeper socketpair. The worker's TLS context uses it in place
 * of the key file, which it cannot read.
 *
 * Ownership: tls_keeper_key_new() returns a key the caller frees with
 * EVP_PKEY_free() (SSL_CTX_use_PrivateKey takes its own reference).
 */
#ifndef HONGYAN_TLS_TLS_KEEPER_KEY_H
#define HONGYAN_TLS_TLS_KEEPER_KEY_H

#include <stdint.h>

#include "lib/buf.h"

typedef struct evp_pkey_st EVP_PKEY;
struct keeper_client;

/*
 * The key for pub (the certificate's public key: RSA or EC). NULL with err
 * for another type.
 */
EVP_PKEY *tls_keeper_key_new(struct keeper_client *kc, EVP_PKEY *pub, struct buf *err);

/* How both ends name a key: SHA-256 of its DER SubjectPublicKeyInfo. 0 or -1. */
int tls_keeper_keyid(EVP_PKEY *key, uint8_t out[32]);

#endif
