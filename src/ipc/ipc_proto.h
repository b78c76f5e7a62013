/*
 * Every message our processes send each other, in one place
 * (docs/architecture.md, "Processes"): three channels, each a section
 * below with who may send what. What they share:
 *
 * - One message per SOCK_SEQPACKET datagram, so a message is read whole or
 *   not at all, and a peer that dies mid-message leaves no half message for
 *   the next one to misread.
 * - The same 8-byte header (id, type, status) and the same field codec
 *   (keeper_put_* / keeper_get_*, ipc/keeper_proto.c): u8, u32, and
 *   length-prefixed byte strings (u16 length). Both ends are the same
 *   binary, so integers are in host order.
 * - Decoders check every length against its own cap and that nothing is
 *   left over; a message that does not decode closes its connection, it
 *   never kills the receiver nor reaches a key, a file or the spool.
 *
 * The codecs stay one .c file per channel: keeper_proto.c (with the
 * shared field codec), split_proto.c, mapfd_proto.c.
 *
 * Ownership: decoded structs point into the message buffer they came from.
 */
#ifndef HONGYAN_IPC_IPC_PROTO_H
#define HONGYAN_IPC_IPC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* ======== Channel 1: smtpd and delivery -> keeper (requests), keeper -> them (replies) ======== */

/*
 * The keeper's protocol: every request a client may send to the keeper,
 * the process that alone holds the private keys and the password hashes
 * (src/keeper/), and every reply. Who may send what is fixed per socketpair
 * by the supervisor when it starts the keeper (KEEPER_CAP below): smtpd may
 * send every request; delivery only DKIM_KEYS and DKIM_SIGN (it signs the
 * mail sendmail drops, checks no password and makes no TLS server). The
 * keeper sends only replies. A request of a type its socketpair may not
 * send, or one that does not decode, closes that connection (keeper.c); it
 * never reaches a key.
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
 */

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

/* ======== Channel 2: smtpd -> delivery (wake-ups of the process split) ======== */

/*
 * The smtpd → delivery protocol of the process split (docs/architecture.md,
 * "Process split"): what the network-facing smtpd may tell the delivery
 * process, which holds the relay passwords. Only wake-ups: the spool stays
 * the one hand-over point, so a message lost here delays mail until the next
 * queue scan and loses none, and nothing smtpd sends can make delivery open,
 * read or send anything it would not have found in the spool on its own.
 *
 * Framing as the keeper's (channel 1 above, whose field codec it uses): one
 * message per SOCK_SEQPACKET datagram, the 8-byte header (id, type, status),
 * then the fields; host byte order (one binary at both ends). A message that
 * does not decode closes the connection and is logged; the receiver keeps
 * running and rescans the queue.
 *
 * Messages (after the header; id 0, status 0):
 *   HELLO   u32 version (SPLIT_PROTO_VERSION), u32 sender's start time
 *           (seconds): first message each way after a start, so that each
 *           side sees a restarted peer (delivery then rescans at once)
 *   QUEUED  u32 count (1..SPLIT_QUEUED_MAX_IDS), then count times bytes
 *           queue id: sent right after the group commit that made the
 *           messages durable, the ids of one loop pass together (one
 *           datagram and one wake-up of delivery for a whole commit
 *           round); delivery checks each id against the spool
 *           (spool_valid_id, then active/) before acting on it
 */

/* 2: QUEUED carries several ids (1 had one). */
#define SPLIT_PROTO_VERSION 2
/* Queue ids one QUEUED carries at most. */
#define SPLIT_QUEUED_MAX_IDS 32
/* Largest message: a header, a count and SPLIT_QUEUED_MAX_IDS ids, with room to spare. */
#define SPLIT_MSG_MAX 1536
/* A queue id's longest (queue/envelope.h's QUEUE_ID_MAX less its NUL). */
#define SPLIT_QUEUE_ID_MAX 31

enum split_type {
    SPLIT_HELLO = 1,
    SPLIT_QUEUED = 2,
};

struct split_msg {
    enum split_type type;
    union {
        struct {
            uint32_t version;
            uint32_t started;
        } hello;
        struct {
            uint32_t count;                                /* 1..SPLIT_QUEUED_MAX_IDS */
            struct keeper_bytes ids[SPLIT_QUEUED_MAX_IDS]; /* 1..SPLIT_QUEUE_ID_MAX letters and
                                                              digits each */
        } queued;
    } u;
};

/* Appends one whole message to msg (which the caller empties and frees). */
void split_put_hello(struct buf *msg, uint32_t started);
/* n (1..SPLIT_QUEUED_MAX_IDS) spool ids (letters and digits, at most SPLIT_QUEUE_ID_MAX each). */
void split_put_queued(struct buf *msg, const char *const *ids, size_t n);

/*
 * Decodes one datagram: a known type, id and status 0, every field within
 * its cap, a count within its bounds, queue ids of letters and digits
 * only, nothing left over. HELLO
 * of another version is refused too. 0, or -1 (the receiver then closes
 * the connection).
 */
int split_msg_decode(const void *msg, size_t len, struct split_msg *out);

/* ======== Channel 3: supervisor -> delivery (root-opened table files) ======== */

/*
 * The supervisor → child message that hands over the table files root
 * opened for a process that may not open them itself (the relay password
 * maps, docs/security.md; daemon/mapfd.c sends and receives it). Root writes
 * it, so no network input reaches it, but the child still decodes it with
 * the rules of every socketpair of ours: one SOCK_SEQPACKET datagram, the
 * keeper's header and field codec (channel 1 above), every length capped,
 * nothing left over.
 *
 *   FILES  u32 n (at most MAPFD_FILES_MAX), then n x (bytes path, u32 error):
 *          error 0 means the file's descriptor is the next one of the
 *          datagram's SCM_RIGHTS descriptors, in order; otherwise it is the
 *          errno of root's open (1..4095) and no descriptor goes with it.
 *          The number of descriptors must equal the number of errors 0.
 */

/* Files in one message: far more than any smtp_sasl_password_maps lists (SCM_RIGHTS allows 253). */
#define MAPFD_FILES_MAX 16
/* A path's longest in the message; a longer one is not handed over (the supervisor logs it). */
#define MAPFD_PATH_MAX 1024
#define MAPFD_MSG_MAX (KEEPER_HDR_LEN + 4 + MAPFD_FILES_MAX * (2 + MAPFD_PATH_MAX + 4))
/* errno values fit below this (Linux's are under 4096). */
#define MAPFD_ERRNO_MAX 4095

enum mapfd_type {
    MAPFD_FILES = 1,
};

struct mapfd_file {
    struct keeper_bytes path; /* 1..MAPFD_PATH_MAX bytes, no NUL */
    uint32_t error;           /* 0: with a descriptor */
};

struct mapfd_msg {
    uint32_t count;
    struct mapfd_file files[MAPFD_FILES_MAX];
};

/* Appends the message header and the count; then one mapfd_put_file per file. */
void mapfd_put_files(struct buf *msg, uint32_t count);
/* path: at most MAPFD_PATH_MAX bytes; error 0 when its descriptor goes along. */
void mapfd_put_file(struct buf *msg, const char *path, uint32_t error);

/*
 * Decodes one datagram that came with nfds descriptors: type FILES, id and
 * status 0, at most MAPFD_FILES_MAX files, each path 1..MAPFD_PATH_MAX
 * bytes without NUL, each error 0..MAPFD_ERRNO_MAX, as many errors 0 as
 * descriptors, nothing left over. 0, or -1.
 */
int mapfd_msg_decode(const void *msg, size_t len, size_t nfds, struct mapfd_msg *out);

#endif
