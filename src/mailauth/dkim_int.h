/*
 * Pieces shared by the DKIM files and reached by the unit tests and fuzz
 * targets: the tag-list parser (RFC 6376 3.2), base64, the message's header
 * fields, canonicalization (3.4) and the key record (3.6.1).
 */
#ifndef HONGYAN_MAILAUTH_DKIM_INT_H
#define HONGYAN_MAILAUTH_DKIM_INT_H

#include <stddef.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "mailauth/dkim.h"

/* ---- Tag lists (RFC 6376 3.2) ---- */

#define DKIM_MAX_TAGS 64

struct dkim_tag {
    char *name;  /* NUL-terminated, points into the list's copy */
    char *value; /* leading and trailing FWS removed; inner FWS kept */
};

struct dkim_tags {
    char *copy;
    size_t count;
    struct dkim_tag tag[DKIM_MAX_TAGS];
};

/*
 * Parses a tag-list. 0, or -1 with err set (syntax error, duplicate tag,
 * too many tags). Free with dkim_tags_free() either way.
 */
int dkim_tags_parse(struct dkim_tags *t, const char *s, size_t len, struct buf *err);
void dkim_tags_free(struct dkim_tags *t);
/* The value of tag name, or NULL. */
const char *dkim_tags_get(const struct dkim_tags *t, const char *name);

/* ---- Header fields ---- */

struct dkim_field {
    const char *start; /* the field as received, name to CRLF included */
    size_t len;
    size_t name_len; /* the name, before ':' and any white space */
};

struct dkim_msg {
    struct dkim_field *fields;
    size_t nfields;
    const char *body; /* after the empty line; NULL when there is none */
    size_t body_len;
};

/* Splits msg (CRLF) into header fields and body. -1 when the header has a line that is not a field.
 */
int dkim_msg_parse(struct dkim_msg *m, const char *msg, size_t len);
void dkim_msg_free(struct dkim_msg *m);

/* ---- Canonicalization (RFC 6376 3.4) ---- */

/* Appends one header field canonicalized, with its CRLF. */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out);
/* Appends the canonical body (whole; the caller truncates for l=). */
void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, struct buf *out);

/*
 * The bytes the header signature covers (RFC 6376 3.7): the fields named in
 * hnames (each use takes the next instance from the bottom), then sigfield
 * (the DKIM-Signature as it appears) with its b= value removed and no final CRLF.
 */
void dkim_signed_headers(const struct dkim_msg *m, enum dkim_canon c, char *const *hnames,
                         size_t nh, const char *sigfield, size_t siglen, struct buf *out);

/* SHA-256 of the canonical body, l= bytes when l >= 0; -1 when l exceeds it. */
int dkim_body_hash(enum dkim_canon c, const char *body, size_t len, long long l,
                   unsigned char out[32], size_t *canon_len);

/* Signs data (header hash input) with key: rsa-sha256 or ed25519-sha256 by key type. */
int dkim_crypto_sign(EVP_PKEY *key, const struct buf *data, struct buf *sig);
/* Signs the SHA-256 digest of the header data: what the keeper does for the worker. */
int dkim_crypto_sign_digest(EVP_PKEY *key, const unsigned char digest[32], struct buf *sig);
/* 1 verified, 0 not. */
int dkim_crypto_verify(EVP_PKEY *key, const struct buf *data, const unsigned char *sig,
                       size_t siglen);

/* ---- Key records (RFC 6376 3.6.1) ---- */

enum dkim_keytype { DKIM_KEY_RSA, DKIM_KEY_ED25519 };

struct dkim_pubkey {
    enum dkim_keytype type;
    EVP_PKEY *pkey; /* NULL when revoked (empty p=) */
    int testing;    /* t=y */
    int strict;     /* t=s */
};

enum dkim_keyerr {
    DKIM_KEY_OK,
    DKIM_KEY_SYNTAX,  /* permerror */
    DKIM_KEY_REVOKED, /* permerror */
};

/* Parses a key record; on error reason says what. Free with dkim_pubkey_clear(). */
enum dkim_keyerr dkim_pubkey_parse(const char *txt, size_t len, struct dkim_pubkey *k,
                                   struct buf *reason);
void dkim_pubkey_clear(struct dkim_pubkey *k);

/* Header names signed by default, and those signed once more than present. */
extern const char *const dkim_default_headers[];
extern const char *const dkim_oversign_headers[];

/*
 * One signature with explicit parameters (the RFC 8463 test needs its exact
 * tag text): template is the DKIM-Signature value up to and including the
 * final "b=" (bh= already filled in); the b= value is computed and appended.
 * Result: the whole field "DKIM-Signature: ...b=VALUE\r\n" in out.
 */
int dkim_sign_template(EVP_PKEY *key, const struct dkim_msg *m, const char *template_value,
                       struct buf *out, struct buf *err);

#endif
