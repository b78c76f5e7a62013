/*
 * The keeper's keys and users (keeper.h): loaded from the same main.cf as
 * the worker's, again at each SIGHUP and each DKIM key-list request (which
 * the worker makes when it builds a configuration generation), so both
 * sides agree on what the configuration says. TLS keys are looked up by the
 * hash of their public key and kept across reloads: a worker still on the
 * previous certificate keeps working until it has the new one.
 */
#include <crypt.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "ipc/ipc_proto.h"
#include "keeper/keeper.h"
#include "lib/dnsname.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "smtpd/auth.h"
#include "tls/tls.h"
#include "tls/tls_keeper_key.h"

/* TLS keys remembered at once: the current ones and those of a few reloads before. */
#define KEEPER_TLS_KEYS_MAX 8
#define KEEPER_KEY_FILE_MAX (64 * 1024)

struct keeper_tlskey {
    uint8_t id[KEEPER_KEYID_LEN];
    EVP_PKEY *pkey;
};

struct keeper_state {
    char *config_path;
    struct config *cfg;
    struct keeper_tlskey tls[KEEPER_TLS_KEYS_MAX];
    size_t ntls, next_tls; /* next_tls: the slot a new key replaces when full */
    struct dkim_signer *dkim;
    pthread_mutex_t auth_mu; /* the hash threads read auth while reloads replace its users */
    uint64_t reloaded_ms;    /* a client may ask for reloads: at most 5 a second */
    struct auth *auth;
};

static void keeper_state_add_tls(struct keeper_state *ks, EVP_PKEY *k)
{
    uint8_t id[KEEPER_KEYID_LEN];
    if (tls_keeper_keyid(k, id) < 0) {
        EVP_PKEY_free(k);
        return;
    }
    for (size_t i = 0; i < ks->ntls; i++)
        if (memcmp(ks->tls[i].id, id, sizeof id) == 0) {
            EVP_PKEY_free(ks->tls[i].pkey);
            ks->tls[i].pkey = k;
            return;
        }
    size_t slot = ks->ntls < KEEPER_TLS_KEYS_MAX ? ks->ntls++ : ks->next_tls;
    if (ks->ntls == KEEPER_TLS_KEYS_MAX && slot == ks->next_tls)
        ks->next_tls = (ks->next_tls + 1) % KEEPER_TLS_KEYS_MAX;
    EVP_PKEY_free(ks->tls[slot].pkey);
    memcpy(ks->tls[slot].id, id, sizeof id);
    ks->tls[slot].pkey = k;
}

/* The server key: smtpd_tls_key_file, or the self-signed pair, made here when due. */
static void keeper_state_load_tls(struct keeper_state *ks)
{
    const char *cert = config_get(ks->cfg, "smtpd_tls_cert_file");
    const char *key = config_get(ks->cfg, "smtpd_tls_key_file");
    char *key_path;
    struct buf err = BUF_INIT;
    if (cert[0] == '\0') {
        char *dir = xasprintf("%s/tls", config_get(ks->cfg, "data_directory"));
        const char *host = config_get(ks->cfg, "myhostname");
        if (!dnsname_ok(host, strlen(host), 0))
            host = "localhost"; /* as tls_server_new, which says so in the log */
        if (tls_selfsigned_ensure(dir, host, &err) < 0)
            log_error("keeper: %s", buf_cstr(&err));
        key_path = xasprintf("%s/key.pem", dir);
        free(dir);
    } else {
        key_path = xstrdup(key[0] ? key : cert);
    }
    struct buf pem = BUF_INIT;
    /* Not one the worker planted: root's or ours (the worker can write data_directory). */
    if (read_file_trusted(key_path, geteuid(), &pem, KEEPER_KEY_FILE_MAX) < 0) {
        log_error("keeper: smtpd_tls_key_file: cannot read %s: %s", key_path,
                  errno == EPERM ? "owned by another user than root or the keeper"
                                 : strerror(errno));
    } else {
        BIO *bio = BIO_new_mem_buf(pem.data ? pem.data : "", (int)pem.len);
        EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (k == NULL)
            log_error("keeper: smtpd_tls_key_file: %s is not a PEM private key", key_path);
        else
            keeper_state_add_tls(ks, k);
        OPENSSL_cleanse(pem.data ? pem.data : "", pem.len);
    }
    buf_free(&pem);
    buf_free(&err);
    free(key_path);
}

static void keeper_state_load(struct keeper_state *ks)
{
    keeper_state_load_tls(ks);
    struct buf err = BUF_INIT;
    dkim_signer_free(ks->dkim);
    ks->dkim = dkim_signer_from_config(ks->cfg, &err);
    buf_reset(&err);
    pthread_mutex_lock(&ks->auth_mu);
    if (ks->auth == NULL)
        ks->auth = auth_new_owned(ks->cfg, geteuid(), &err);
    else if (auth_reload(ks->auth, ks->cfg, &err) < 0)
        log_warning("keeper: %s; keeping the users loaded before", buf_cstr(&err));
    pthread_mutex_unlock(&ks->auth_mu);
    if (ks->auth == NULL)
        log_error("keeper: %s; AUTH answers temporary failures", buf_cstr(&err));
    buf_free(&err);
}

struct keeper_state *keeper_state_new(const char *config_path, struct config *cfg)
{
    struct keeper_state *ks = xcalloc(1, sizeof *ks);
    ks->config_path = config_path ? xstrdup(config_path) : NULL;
    ks->cfg = cfg;
    pthread_mutex_init(&ks->auth_mu, NULL);
    keeper_state_load(ks);
    return ks;
}

void keeper_state_reload(struct keeper_state *ks, int limited)
{
    uint64_t now = now_ms();
    if (limited && now - ks->reloaded_ms < 200)
        return;
    ks->reloaded_ms = now;
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(ks->config_path, &err);
    if (cfg == NULL) {
        log_error("keeper: %s; keeping the keys loaded before", buf_cstr(&err));
    } else {
        config_free(ks->cfg);
        ks->cfg = cfg;
        keeper_state_load(ks);
    }
    buf_free(&err);
}

const struct config *keeper_state_config(const struct keeper_state *ks)
{
    return ks->cfg;
}

void keeper_state_free(struct keeper_state *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->ntls; i++)
        EVP_PKEY_free(ks->tls[i].pkey);
    dkim_signer_free(ks->dkim);
    auth_free(ks->auth);
    config_free(ks->cfg);
    pthread_mutex_destroy(&ks->auth_mu);
    free(ks->config_path);
    free(ks);
}

static EVP_PKEY *keeper_state_find_tls(struct keeper_state *ks, const uint8_t *keyid)
{
    for (size_t i = 0; i < ks->ntls; i++)
        if (memcmp(ks->tls[i].id, keyid, KEEPER_KEYID_LEN) == 0)
            return ks->tls[i].pkey;
    return NULL;
}

int keeper_state_tls_sign(struct keeper_state *ks, int op, const uint8_t *keyid, const uint8_t *in,
                          size_t inlen, struct buf *sig)
{
    EVP_PKEY *k = keeper_state_find_tls(ks, keyid);
    if (k == NULL) {
        /* A worker that reloaded before us (SIGHUP order): read the configuration now. */
        keeper_state_reload(ks, 1);
        k = keeper_state_find_tls(ks, keyid);
    }
    if (k == NULL)
        return KEEPER_ST_UNKNOWN_KEY;
    int id = EVP_PKEY_get_base_id(k);
    if ((op == KEEPER_TLS_ECDSA) != (id == EVP_PKEY_EC))
        return KEEPER_ST_UNKNOWN_KEY;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    size_t n = 0;
    int st = KEEPER_ST_TEMPFAIL;
    if (ctx && EVP_PKEY_sign_init(ctx) == 1 &&
        (op == KEEPER_TLS_ECDSA ||
         EVP_PKEY_CTX_set_rsa_padding(ctx, op == KEEPER_TLS_RSA_PKCS1 ? RSA_PKCS1_PADDING
                                                                      : RSA_NO_PADDING) == 1) &&
        EVP_PKEY_sign(ctx, NULL, &n, in, inlen) == 1 && n <= KEEPER_SIG_MAX) {
        buf_reserve(sig, n);
        if (EVP_PKEY_sign(ctx, (unsigned char *)sig->data + sig->len, &n, in, inlen) == 1) {
            sig->len += n;
            st = KEEPER_ST_OK;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    return st;
}

int keeper_state_dkim_sign(struct keeper_state *ks, const char *domain, const char *selector,
                           const uint8_t *digest, struct buf *sig)
{
    if (ks->dkim == NULL)
        return KEEPER_ST_TEMPFAIL;
    return dkim_signer_sign_digest(ks->dkim, domain, selector, digest, sig) == 0
               ? KEEPER_ST_OK
               : KEEPER_ST_UNKNOWN_KEY;
}

void keeper_state_dkim_keys(struct keeper_state *ks, struct buf *body)
{
    keeper_state_reload(ks, 1);
    size_t nd = dkim_signer_domain_count(ks->dkim);
    keeper_put_u32(body, (uint32_t)nd);
    for (size_t i = 0; i < nd; i++) {
        const char *why;
        const char *dom = dkim_signer_domain_at(ks->dkim, i, &why);
        keeper_put_str(body, dom);
        size_t wl = why ? strlen(why) : 0;
        keeper_put_bytes(body, why ? why : "", wl > KEEPER_ERR_MAX ? KEEPER_ERR_MAX : wl);
    }
    size_t nk = dkim_signer_key_count(ks->dkim);
    keeper_put_u32(body, (uint32_t)nk);
    for (size_t i = 0; i < nk; i++) {
        const char *sel;
        int ed;
        keeper_put_str(body, dkim_signer_key_at(ks->dkim, i, &sel, &ed));
        keeper_put_str(body, sel);
        keeper_put_u8(body, ed ? KEEPER_DKIM_ED25519_SHA256 : KEEPER_DKIM_RSA_SHA256);
    }
}

int keeper_state_password(struct keeper_state *ks, const char *user, const char *pass)
{
    char hash[CRYPT_OUTPUT_SIZE];
    pthread_mutex_lock(&ks->auth_mu);
    if (ks->auth == NULL) {
        pthread_mutex_unlock(&ks->auth_mu);
        return KEEPER_ST_TEMPFAIL;
    }
    /* `hongyan user add` takes effect without a reload, as in the worker before. */
    auth_refresh(ks->auth);
    int known = auth_lookup_hash(ks->auth, user, strlen(pass), hash, sizeof hash);
    pthread_mutex_unlock(&ks->auth_mu);
    int ok = auth_hash_verify(hash, pass) && known;
    explicit_bzero(hash, sizeof hash);
    return ok ? KEEPER_ST_OK : KEEPER_ST_NO;
}
