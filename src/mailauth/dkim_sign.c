/*
 * DKIM signing (RFC 6376 5): keys loaded once per configuration from
 * DIR/DOMAIN/SELECTOR.pem, the signing domain chosen from the From: domain,
 * one signature per key. dkim_sign() only reads the signer, so the server
 * can run it on its thread pool (RSA signing is slow).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/sha.h>

#include "config/config.h"
#include "lib/base64.h"
#include "lib/dnsname.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "ipc/keeper_client.h"
#include "mailauth/dkim_int.h"
#include "smtp/msghdr_from.h"

/* A PEM key file is small; anything bigger is not one. */
#define DKIM_KEY_FILE_MAX (64 * 1024)
#define DKIM_LINE_MAX 78

static int load_key(const char *path, EVP_PKEY **out, struct buf *err);

/*
 * RFC 6376 5.4.1's list, with the mailing-list fields (RFC 2369, 2919, 8058)
 * that receivers show. Fields absent from the message are not signed...
 */
const char *const dkim_default_headers[] = {
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "MIME-Version",
    "Sender",
    NULL,
};

/* ...except these, listed once more than present (RFC 6376 8.15), so that
 * none can be added without breaking the signature. */
const char *const dkim_oversign_headers[] = {
    "From", "To", "Subject", "Date", "Message-ID", "Content-Type", "MIME-Version", NULL,
};

struct dkim_signkey {
    char *domain; /* as configured, lower case */
    char *selector;
    EVP_PKEY *pkey; /* NULL: the keeper holds it (dkim_signer_from_keeper) */
    int ed25519;
};

struct dkim_signer {
    char **domains;
    char **domain_errs; /* per domain: why its keys are not loaded (heap), or NULL */
    size_t ndomains;
    struct dkim_signkey *keys;
    size_t nkeys;
    enum dkim_canon hcanon, bcanon;
    struct keeper_client *keeper; /* signs for the keys without pkey */
    int keeper_failed;            /* the keeper did not say which keys it has */
};

static int key_cmp(const void *a, const void *b)
{
    const struct dkim_signkey *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);
    return c ? c : strcmp(x->selector, y->selector);
}

EVP_PKEY *dkim_load_private_key(const char *path, struct buf *err)
{
    EVP_PKEY *k = NULL;
    return load_key(path, &k, err) == 0 ? k : NULL;
}

static int load_key(const char *path, EVP_PKEY **out, struct buf *err)
{
    struct buf pem = BUF_INIT;
    if (read_file(path, &pem, DKIM_KEY_FILE_MAX) < 0) {
        buf_printf(err, "%s: %s", path, strerror(errno));
        buf_free(&pem);
        return -1;
    }
    BIO *bio = BIO_new_mem_buf(pem.data ? pem.data : "", (int)pem.len);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem.data, pem.len);
    buf_free(&pem);
    if (k == NULL) {
        buf_printf(err, "%s: not a PEM private key", path);
        return -1;
    }
    int id = EVP_PKEY_get_base_id(k);
    if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) < 1024) {
        buf_printf(err, "%s: RSA key of %d bits is too short (RFC 8301 wants 1024 or more)", path,
                   EVP_PKEY_get_bits(k));
        EVP_PKEY_free(k);
        return -1;
    }
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
        buf_printf(err, "%s: key is neither RSA nor Ed25519", path);
        EVP_PKEY_free(k);
        return -1;
    }
    *out = k;
    return 0;
}

int dkim_name_ok(const char *s, size_t n)
{
    return dnsname_ok(s, n, DNSNAME_UNDERSCORE | DNSNAME_NO_EDGE_HYPHEN);
}

/*
 * Loads one domain's keys onto s->keys. On failure the domain's keys loaded
 * so far are dropped again (they are the tail of s->keys) and why says which
 * file failed: a domain signs with all its keys or with none.
 */
static int load_domain_keys(struct dkim_signer *s, size_t *cap, const char *key_dir,
                            const char *dom, struct buf *why)
{
    size_t first = s->nkeys;
    char *dir = xasprintf("%s/%s", key_dir, dom);
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        int e = errno;
        free(dir);
        if (e == ENOENT || e == ENOTDIR)
            return 0;
        buf_printf(why, "%s/%s: %s", key_dir, dom, strerror(e));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dh)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pem") != 0 || !dkim_name_ok(de->d_name, n - 4))
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        EVP_PKEY *k = NULL;
        rc = load_key(path, &k, why);
        free(path);
        if (rc < 0)
            break;
        if (s->nkeys == *cap) {
            *cap = *cap ? *cap * 2 : 4;
            s->keys = xrealloc(s->keys, *cap * sizeof(*s->keys));
        }
        s->keys[s->nkeys].domain = xstrdup(dom);
        s->keys[s->nkeys].selector = xstrndup(de->d_name, n - 4);
        s->keys[s->nkeys].pkey = k;
        s->keys[s->nkeys].ed25519 = EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519;
        s->nkeys++;
    }
    closedir(dh);
    free(dir);
    if (rc < 0) {
        while (s->nkeys > first) {
            struct dkim_signkey *key = &s->keys[--s->nkeys];
            free(key->domain);
            free(key->selector);
            EVP_PKEY_free(key->pkey);
        }
    }
    return rc;
}

struct dkim_signer *dkim_signer_new(const char *key_dir, char *const *domains, size_t ndomains,
                                    struct buf *err)
{
    struct dkim_signer *s = xcalloc(1, sizeof(*s));
    s->hcanon = s->bcanon = DKIM_CANON_RELAXED;
    s->domains = xcalloc(ndomains + 1, sizeof(char *));
    s->domain_errs = xcalloc(ndomains + 1, sizeof(char *));
    size_t cap = 0;
    for (size_t d = 0; d < ndomains; d++) {
        char *dom = xstrdup(domains[d]);
        str_lower(dom);
        size_t dl = strlen(dom);
        while (dl > 0 && dom[dl - 1] == '.')
            dom[--dl] = '\0';
        s->domains[s->ndomains] = dom;
        struct buf why = BUF_INIT;
        if (load_domain_keys(s, &cap, key_dir, dom, &why) < 0) {
            s->domain_errs[s->ndomains] = buf_steal(&why);
            buf_printf(err, "%s%s", err->len ? "; " : "", s->domain_errs[s->ndomains]);
        }
        buf_free(&why);
        s->ndomains++;
    }
    if (s->nkeys > 1)
        qsort(s->keys, s->nkeys, sizeof(*s->keys), key_cmp);
    return s;
}

struct dkim_signer *dkim_signer_from_config(const struct config *cfg, struct buf *err)
{
    size_t n = 0;
    char **doms = config_get_list(cfg, "dkim_domains", &n);
    struct dkim_signer *s = dkim_signer_new(config_get(cfg, "dkim_key_directory"), doms, n, err);
    strlist_free(doms);
    return s;
}

/* Adds a key the keeper holds; selector and domain are copied. */
static void dkim_signer_add_remote(struct dkim_signer *s, size_t *cap, struct keeper_bytes dom,
                                   struct keeper_bytes sel, int ed25519)
{
    if (s->nkeys == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        s->keys = xrealloc(s->keys, *cap * sizeof(*s->keys));
    }
    struct dkim_signkey *k = &s->keys[s->nkeys++];
    k->domain = xstrndup((const char *)dom.data, dom.len);
    k->selector = xstrndup((const char *)sel.data, sel.len);
    k->pkey = NULL;
    k->ed25519 = ed25519;
}

struct dkim_signer *dkim_signer_from_keeper(struct keeper_client *kc, struct buf *err)
{
    struct dkim_signer *s = xcalloc(1, sizeof(*s));
    s->hcanon = s->bcanon = DKIM_CANON_RELAXED;
    s->keeper = kc;
    struct buf body = BUF_INIT;
    enum keeper_status st = keeper_client_dkim_keys(kc, &body);
    struct keeper_reader r;
    keeper_reader_init(&r, body.data ? body.data : "", body.len);
    uint32_t nd = st == KEEPER_ST_OK ? keeper_get_u32(&r) : 0;
    if (nd > 4096)
        r.bad = 1;
    s->domains = xcalloc((r.bad ? 0 : nd) + 1, sizeof(char *));
    s->domain_errs = xcalloc((r.bad ? 0 : nd) + 1, sizeof(char *));
    for (uint32_t i = 0; i < nd && !r.bad; i++) {
        struct keeper_bytes dom = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        struct keeper_bytes why = keeper_get_bytes(&r, KEEPER_ERR_MAX);
        if (r.bad || !keeper_bytes_is_name(dom, KEEPER_NAME_MAX))
            break;
        s->domains[s->ndomains] = xstrndup((const char *)dom.data, dom.len);
        if (why.len) {
            s->domain_errs[s->ndomains] = xstrndup((const char *)why.data, why.len);
            buf_printf(err, "%s%s", err->len ? "; " : "", s->domain_errs[s->ndomains]);
        }
        s->ndomains++;
    }
    uint32_t nk = r.bad || st != KEEPER_ST_OK ? 0 : keeper_get_u32(&r);
    size_t cap = 0;
    for (uint32_t i = 0; i < nk && !r.bad; i++) {
        struct keeper_bytes dom = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        struct keeper_bytes sel = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        uint8_t alg = keeper_get_u8(&r);
        if (!r.bad && keeper_bytes_is_name(dom, KEEPER_NAME_MAX) &&
            dkim_name_ok((const char *)sel.data, sel.len))
            dkim_signer_add_remote(s, &cap, dom, sel, alg == KEEPER_DKIM_ED25519_SHA256);
    }
    if (st != KEEPER_ST_OK || keeper_reader_done(&r) < 0) {
        /* Signing must not silently stop: every domain of ours then fails (and says why). */
        buf_printf(err, "%sthe keeper did not list the DKIM keys", err->len ? "; " : "");
        s->keeper_failed = 1;
    }
    buf_free(&body);
    if (s->nkeys > 1)
        qsort(s->keys, s->nkeys, sizeof(*s->keys), key_cmp);
    return s;
}

size_t dkim_signer_domain_count(const struct dkim_signer *s)
{
    return s->ndomains;
}

const char *dkim_signer_domain_at(const struct dkim_signer *s, size_t i, const char **error)
{
    *error = s->domain_errs[i];
    return s->domains[i];
}

const char *dkim_signer_key_at(const struct dkim_signer *s, size_t i, const char **selector,
                               int *ed25519)
{
    *selector = s->keys[i].selector;
    *ed25519 = s->keys[i].ed25519;
    return s->keys[i].domain;
}

int dkim_signer_sign_digest(const struct dkim_signer *s, const char *domain, const char *selector,
                            const unsigned char digest[32], struct buf *sig)
{
    struct dkim_signkey want = {(char *)domain, (char *)selector, NULL, 0};
    const struct dkim_signkey *k =
        s->nkeys ? bsearch(&want, s->keys, s->nkeys, sizeof want, key_cmp) : NULL;
    if (k == NULL || k->pkey == NULL)
        return -1;
    return dkim_crypto_sign_digest(k->pkey, digest, sig);
}

void dkim_signer_free(struct dkim_signer *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ndomains; i++) {
        free(s->domains[i]);
        free(s->domain_errs[i]);
    }
    free(s->domains);
    free(s->domain_errs);
    for (size_t i = 0; i < s->nkeys; i++) {
        free(s->keys[i].domain);
        free(s->keys[i].selector);
        EVP_PKEY_free(s->keys[i].pkey);
    }
    free(s->keys);
    free(s);
}

void dkim_signer_set_canon(struct dkim_signer *s, enum dkim_canon header, enum dkim_canon body)
{
    s->hcanon = header;
    s->bcanon = body;
}

size_t dkim_signer_key_count(const struct dkim_signer *s)
{
    return s->nkeys;
}

const char *dkim_signer_domain_error(const struct dkim_signer *s, const char *domain)
{
    for (size_t i = 0; i < s->ndomains; i++)
        if (s->domain_errs[i] && (domain == NULL || strcmp(s->domains[i], domain) == 0))
            return s->domain_errs[i];
    return NULL;
}

static int field_is(const struct dkim_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->start, name, n) == 0;
}

/* The configured domain that dom is, or is a subdomain of; the longest wins. */
static const char *match_domain(const struct dkim_signer *s, const char *dom)
{
    const char *best = NULL;
    size_t dl = strlen(dom);
    for (size_t i = 0; i < s->ndomains; i++) {
        const char *c = s->domains[i];
        size_t cl = strlen(c);
        int hit = strcmp(dom, c) == 0 ||
                  (dl > cl && dom[dl - cl - 1] == '.' && strcmp(dom + dl - cl, c) == 0);
        if (hit && (best == NULL || cl > strlen(best)))
            best = c;
    }
    return best;
}

/* Appends tag text to the field, breaking the line first when it would pass 78 columns. */
static void fold_add(struct buf *f, size_t *col, const char *text, size_t n, int space)
{
    if (*col + (space ? 1 : 0) + n > DKIM_LINE_MAX && *col > 1) {
        buf_append(f, "\r\n ", 3);
        *col = 1;
    } else if (space) {
        buf_putc(f, ' ');
        (*col)++;
    }
    buf_append(f, text, n);
    *col += n;
}

/* Appends a long value (b=) in pieces that fill each line; FWS inside base64 is allowed (3.5). */
static void fold_value(struct buf *f, size_t *col, const char *v, size_t n)
{
    while (n > 0) {
        size_t room = *col < DKIM_LINE_MAX ? DKIM_LINE_MAX - *col : 0;
        if (room == 0) {
            buf_append(f, "\r\n ", 3);
            *col = 1;
            continue;
        }
        size_t take = n < room ? n : room;
        buf_append(f, v, take);
        *col += take;
        v += take;
        n -= take;
    }
}

int dkim_sign_template(EVP_PKEY *key, const struct dkim_msg *m, const char *template_value,
                       struct buf *out, struct buf *err)
{
    struct dkim_tags t;
    struct buf e = BUF_INIT, field = BUF_INIT, data = BUF_INIT, sig = BUF_INIT;
    int rc = -1;
    char **names = NULL;
    size_t nn = 0;
    if (dkim_tags_parse(&t, template_value, strlen(template_value), &e) < 0) {
        buf_printf(err, "signature template: %s", buf_cstr(&e));
        goto out;
    }
    enum dkim_canon hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
    const char *c = dkim_tags_get(&t, "c");
    const char *h = dkim_tags_get(&t, "h");
    if ((c && dkim_canon_parse(c, &hc, &bc) < 0) || h == NULL) {
        buf_puts(err, "signature template: bad c= or no h=");
        goto out;
    }
    /* h= names, FWS around the colons removed. */
    char *hl = xstrdup(h);
    names = xcalloc(strlen(hl) + 2, sizeof(char *));
    char *save = NULL;
    for (char *tok = strtok_r(hl, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
        names[nn++] = xstrdup(str_trim(tok));
    free(hl);
    buf_puts(&field, "DKIM-Signature: ");
    buf_puts(&field, template_value);
    dkim_signed_headers(m, hc, names, nn, field.data, field.len, &data);
    if (dkim_crypto_sign(key, &data, &sig) < 0) {
        buf_puts(err, "signing failed (OpenSSL)");
        goto out;
    }
    struct buf b64 = BUF_INIT;
    base64_encode((const unsigned char *)sig.data, sig.len, &b64);
    const char *lastnl = field.data;
    for (const char *p = field.data; p < field.data + field.len; p++)
        if (*p == '\n')
            lastnl = p + 1;
    size_t col = (size_t)(field.data + field.len - lastnl);
    fold_value(&field, &col, b64.data, b64.len);
    buf_free(&b64);
    buf_append(&field, "\r\n", 2);
    buf_append(out, field.data, field.len);
    rc = 0;
out:
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    dkim_tags_free(&t);
    buf_free(&e);
    buf_free(&field);
    buf_free(&data);
    buf_free(&sig);
    return rc;
}

/* The keeper signs the digest of the header data; the worker never sees the key. */
static int dkim_sign_by_keeper(const struct dkim_signer *s, const struct dkim_signkey *key,
                               const struct buf *data, struct buf *sig)
{
    unsigned char h[KEEPER_DIGEST_LEN];
    SHA256((const unsigned char *)(data->data ? data->data : ""), data->len, h);
    return keeper_client_dkim_sign(s->keeper, key->domain, key->selector, h, sig) == KEEPER_ST_OK
               ? 0
               : -1;
}

static const char *canon_name(enum dkim_canon c)
{
    return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

enum dkim_sign_status dkim_sign(const struct dkim_signer *s, const char *msg, size_t len,
                                time_t now, struct buf *out, struct buf *err)
{
    struct dkim_msg m;
    if (dkim_msg_parse(&m, msg, len) < 0) {
        buf_puts(err, "the message header does not parse");
        dkim_msg_free(&m);
        return DKIM_SIGN_ERROR;
    }
    /* The first domain of the one From: field; the parser is DMARC's, so
     * the domain we sign for is the author domain a verifier aligns with. */
    size_t ndoms = 0;
    char **doms = msghdr_from_domains(msg, len, &ndoms, err);
    if (doms == NULL) {
        dkim_msg_free(&m);
        return DKIM_SIGN_ERROR;
    }
    char dom[256];
    size_t domlen = str_copy(dom, sizeof(dom), doms[0]);
    for (size_t i = 0; i < ndoms; i++)
        free(doms[i]);
    free(doms);
    if (domlen >= sizeof(dom)) {
        /* Cannot happen: the parser accepts only DNS names (253 octets). */
        buf_puts(err, "the From: domain is too long");
        dkim_msg_free(&m);
        return DKIM_SIGN_ERROR;
    }
    if (s->keeper_failed) {
        buf_puts(err, "the keeper did not list the DKIM keys when the configuration was loaded");
        dkim_msg_free(&m);
        return DKIM_SIGN_ERROR;
    }
    const char *d = match_domain(s, dom);
    if (d == NULL) {
        buf_printf(err, "From: domain %s is not in dkim_domains", dom);
        dkim_msg_free(&m);
        return DKIM_SIGN_NODOMAIN;
    }
    const char *broken = dkim_signer_domain_error(s, d);
    if (broken) {
        buf_printf(err, "signing keys for %s not loaded: %s", d, broken);
        dkim_msg_free(&m);
        return DKIM_SIGN_ERROR;
    }

    /* h=: each default field as often as present; the over-signed ones once more. */
    char *names[512];
    size_t nn = 0;
    for (size_t k = 0; dkim_default_headers[k]; k++) {
        const char *name = dkim_default_headers[k];
        size_t count = 0;
        for (size_t i = 0; i < m.nfields; i++)
            count += field_is(&m.fields[i], name);
        for (size_t o = 0; dkim_oversign_headers[o]; o++)
            if (strcmp(dkim_oversign_headers[o], name) == 0)
                count++;
        for (size_t j = 0; j < count && nn < sizeof(names) / sizeof(names[0]); j++)
            names[nn++] = (char *)name;
    }

    unsigned char bh[32];
    dkim_body_hash(s->bcanon, m.body, m.body_len, -1, bh, NULL);
    struct buf bh64 = BUF_INIT;
    base64_encode(bh, sizeof(bh), &bh64);

    struct buf all = BUF_INIT;
    enum dkim_sign_status st = DKIM_SIGN_OK;
    size_t signed_count = 0;
    for (size_t k = 0; k < s->nkeys; k++) {
        const struct dkim_signkey *key = &s->keys[k];
        if (strcmp(key->domain, d) != 0)
            continue;
        int ed = key->ed25519;
        struct buf f = BUF_INIT, piece = BUF_INIT, data = BUF_INIT, sig = BUF_INIT, b64 = BUF_INIT;
        buf_puts(&f, "DKIM-Signature:");
        size_t col = f.len;
        buf_printf(&piece, "v=1; a=%s; c=%s/%s;", ed ? "ed25519-sha256" : "rsa-sha256",
                   canon_name(s->hcanon), canon_name(s->bcanon));
        fold_add(&f, &col, piece.data, piece.len, 1);
        buf_reset(&piece);
        buf_printf(&piece, "d=%s;", d);
        fold_add(&f, &col, piece.data, piece.len, 1);
        buf_reset(&piece);
        buf_printf(&piece, "s=%s;", key->selector);
        fold_add(&f, &col, piece.data, piece.len, 1);
        buf_reset(&piece);
        buf_printf(&piece, "t=%lld;", (long long)now);
        fold_add(&f, &col, piece.data, piece.len, 1);
        for (size_t i = 0; i < nn; i++) {
            buf_reset(&piece);
            buf_printf(&piece, "%s%s%s", i == 0 ? "h=" : "", names[i], i + 1 == nn ? ";" : ":");
            fold_add(&f, &col, piece.data, piece.len, i == 0);
        }
        buf_reset(&piece);
        buf_printf(&piece, "bh=%s;", bh64.data);
        fold_add(&f, &col, piece.data, piece.len, 1);
        fold_add(&f, &col, "b=", 2, 1);
        dkim_signed_headers(&m, s->hcanon, names, nn, f.data, f.len, &data);
        int rc = key->pkey ? dkim_crypto_sign(key->pkey, &data, &sig)
                           : dkim_sign_by_keeper(s, key, &data, &sig);
        if (rc == 0) {
            base64_encode((const unsigned char *)sig.data, sig.len, &b64);
            fold_value(&f, &col, b64.data, b64.len);
            buf_append(&f, "\r\n", 2);
            buf_append(&all, f.data, f.len);
            signed_count++;
        }
        buf_free(&f);
        buf_free(&piece);
        buf_free(&data);
        buf_free(&sig);
        buf_free(&b64);
        if (rc < 0) {
            buf_printf(err, "signing with %s/%s.pem failed", key->domain, key->selector);
            st = DKIM_SIGN_ERROR;
            break;
        }
    }
    if (st == DKIM_SIGN_OK && signed_count == 0) {
        buf_printf(err, "no key for %s (dkim keygen %s)", d, d);
        st = DKIM_SIGN_NODOMAIN;
    }
    if (st == DKIM_SIGN_OK)
        buf_append(out, all.data ? all.data : "", all.len);
    buf_free(&all);
    buf_free(&bh64);
    dkim_msg_free(&m);
    return st;
}

struct dkim_sign_job {
    const struct dkim_signer *s;
    const char *msg;
    size_t len;
    time_t now;
    enum dkim_sign_status st;
    struct buf out, err;
    dkim_sign_done_fn done;
    void *arg;
};

static void dkim_sign_job_work(void *arg)
{
    struct dkim_sign_job *j = arg;
    j->st = dkim_sign(j->s, j->msg, j->len, j->now, &j->out, &j->err);
}

static void dkim_sign_job_done(void *arg)
{
    struct dkim_sign_job *j = arg;
    j->done(j->arg, j->st, &j->out, buf_cstr(&j->err));
    buf_free(&j->out);
    buf_free(&j->err);
    free(j);
}

void dkim_sign_submit(struct workq *q, const struct dkim_signer *s, const char *msg, size_t len,
                      time_t now, dkim_sign_done_fn done, void *arg)
{
    struct dkim_sign_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->msg = msg;
    j->len = len;
    j->now = now;
    j->done = done;
    j->arg = arg;
    workq_submit(q, dkim_sign_job_work, dkim_sign_job_done, j);
}
