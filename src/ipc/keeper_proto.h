/*
 * The keeper's protocol: every request a client (the worker) may send to the
 * keeper, the process that alone holds the private keys and the password
 * hashes (src/keeper/), and every reply. One message per SOCK_SEQPACKET
 * datagram, so a message is read whole or not at all and a keeper that dies
 * mid-request leaves no half message for the next one to misread.
 *
 * A message is a fixed header (id, type, status) and fields: u8, u32, and
 * length-prefixed byte strings (u16 length). Both ends are the same binary,
 * so integers are in host order. Decoders check every length against its
 * own cap and that nothing is left over; a request that does not decode
 * closes its connection (keeper.c), it never reaches a key.
 *
 * Requests (after the header):
 *   TLS_SIGN   u8 op (enum keeper_tls_op), bytes key id (32), bytes input
 *   DKIM_KEYS  nothing: the keeper re-reads main.cf and its keys first
 *   DKIM_SIGN  bytes domain, bytes selector, bytes SHA-256 of the header data
 *   PASSWORD   bytes user, bytes password
 * Replies (same id and type; status says how it went; fields only on OK):
 *   TLS_SIGN, DKIM_SIGN  bytes signature
 *   DKIM_KEYS  u32 n, n x (bytes domain, bytes error: empty when its keys
 *              loaded), u32 k, k x (bytes domain, bytes selector, u8 alg)
 *   PASSWORD   nothing (OK or NO)
 *
 * Ownership: decoded structs point into the message buffer they came from.
 */
#ifndef HONGYAN_IPC_KEEPER_PROTO_H
#define HONGYAN_IPC_KEEPER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Largest message either way: a DKIM key list of a few hundred domains fits. */
#define KEEPER_MSG_MAX (64u * 1024)
#define KEEPER_HDR_LEN 8
/* Field caps. */
#define KEEPER_KEYID_LEN 32     /* SHA-256 of the public key's SubjectPublicKeyInfo */
#define KEEPER_SIGN_IN_MAX 1024 /* an RSA-8192 block, or a digest */
#define KEEPER_SIG_MAX 1024
#define KEEPER_NAME_MAX 255 /* a DKIM domain or selector, a user name */
#define KEEPER_PASS_MAX 1023
#define KEEPER_ERR_MAX 1024
#define KEEPER_DIGEST_LEN 32 /* SHA-256 */

enum keeper_type {
    KEEPER_TLS_SIGN = 1,  /* a TLS handshake signature with the server key */
    KEEPER_DKIM_KEYS = 2, /* re-read dkim_key_directory; which keys exist */
    KEEPER_DKIM_SIGN = 3, /* a DKIM signature over a header hash */
    KEEPER_PASSWORD = 4,  /* is this the user's password? */
    KEEPER_TYPE_MAX = 4,
};

/* What one socketpair may ask, fixed by the supervisor when it starts the keeper. */
#define KEEPER_CAP(type) (1u << (type))
#define KEEPER_CAPS_ALL                                                                            \
    (KEEPER_CAP(KEEPER_TLS_SIGN) | KEEPER_CAP(KEEPER_DKIM_KEYS) | KEEPER_CAP(KEEPER_DKIM_SIGN) |   \
     KEEPER_CAP(KEEPER_PASSWORD))

enum keeper_status {
    KEEPER_ST_OK = 0,
    KEEPER_ST_NO = 1,          /* PASSWORD: wrong user or password */
    KEEPER_ST_TEMPFAIL = 2,    /* try again later (busy, key not loaded, I/O) */
    KEEPER_ST_UNKNOWN_KEY = 3, /* no such key, even after re-reading the configuration */
};

/* TLS_SIGN operations: what OpenSSL's key method asks for (tls/tls_keeper_key.c). */
enum keeper_tls_op {
    KEEPER_TLS_RSA_PKCS1 = 1, /* RSA private operation with PKCS#1 v1.5 type 1 padding */
    KEEPER_TLS_RSA_RAW = 2,   /* RSA private operation, no padding (PSS padded by the caller) */
    KEEPER_TLS_ECDSA = 3,     /* ECDSA over a digest; DER signature */
};

enum keeper_dkim_alg {
    KEEPER_DKIM_RSA_SHA256 = 1,
    KEEPER_DKIM_ED25519_SHA256 = 2,
};

struct keeper_bytes {
    const uint8_t *data;
    size_t len;
};

struct keeper_hdr {
    uint32_t id;     /* chosen by the client; the reply carries it back */
    uint16_t type;   /* enum keeper_type */
    uint16_t status; /* replies: enum keeper_status; requests: 0 */
};

struct keeper_request {
    struct keeper_hdr hdr;
    union {
        struct {
            uint8_t op; /* enum keeper_tls_op */
            struct keeper_bytes keyid, input;
        } tls_sign;
        struct {
            struct keeper_bytes domain, selector, digest;
        } dkim_sign;
        struct {
            struct keeper_bytes user, pass;
        } password;
    } u;
};

/* Appends the request header; the fields follow with keeper_put_*. */
void keeper_put_hdr(struct buf *msg, uint32_t id, enum keeper_type type, uint16_t status);
void keeper_put_u8(struct buf *msg, uint8_t v);
void keeper_put_u32(struct buf *msg, uint32_t v);
/* A byte string of at most 65535 bytes (callers keep to the field's cap). */
void keeper_put_bytes(struct buf *msg, const void *data, size_t len);
void keeper_put_str(struct buf *msg, const char *s);

/* Reading fields: any overrun sets bad and returns zeroes. */
struct keeper_reader {
    const uint8_t *p;
    size_t left;
    int bad;
};
void keeper_reader_init(struct keeper_reader *r, const void *data, size_t len);
uint8_t keeper_get_u8(struct keeper_reader *r);
uint32_t keeper_get_u32(struct keeper_reader *r);
/* A byte string of at most max bytes. */
struct keeper_bytes keeper_get_bytes(struct keeper_reader *r, size_t max);
/* 0 when the reader read exactly all of it and nothing was bad. */
int keeper_reader_done(const struct keeper_reader *r);

/* The header of any message; -1 when too short. */
int keeper_get_hdr(struct keeper_reader *r, struct keeper_hdr *h);

/*
 * Decodes a request: a known type, every field within its cap, nothing left
 * over. 0, or -1 (the keeper then closes the connection).
 */
int keeper_request_decode(const void *msg, size_t len, struct keeper_request *out);

/* Whether b is a NUL-free string (a name) of 1..max bytes. */
int keeper_bytes_is_name(struct keeper_bytes b, size_t max);

#endif
