/*
 * DKIM (RFC 6376) signing and verification with rsa-sha256 and
 * ed25519-sha256 (RFC 8463), following RFC 8301 (no rsa-sha1, RSA keys of
 * at least 1024 bits). Messages are given as stored: CRLF line ends.
 *
 * Signing: a dkim_signer is built once per configuration (keys loaded once)
 * and dkim_sign() is pure and thread-safe, so that the server can run it on
 * its work queue. Verification: dkim_verify_start() does all the message
 * work at once, then asks a key-lookup interface for each selector's TXT
 * records (asynchronously, e.g. the DNS layer on the event loop, or from a
 * file in tests) and reports every signature's result through a callback.
 */
#ifndef HONGYAN_MAILAUTH_DKIM_H
#define HONGYAN_MAILAUTH_DKIM_H

#include <stddef.h>
#include <time.h>

#include "dns/txt.h"
#include "lib/buf.h"

struct config;

/* RFC 8601 result words (section 2.7.1). */
enum dkim_result {
    DKIM_NONE,
    DKIM_PASS,
    DKIM_FAIL,
    DKIM_NEUTRAL,
    DKIM_POLICY,
    DKIM_TEMPERROR,
    DKIM_PERMERROR,
};
const char *dkim_result_name(enum dkim_result r);

/* Most signatures evaluated per message; later ones get DKIM_POLICY. */
#define DKIM_MAX_SIGNATURES 8

/* ---- Signing ---- */

enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };
/* Parses a c= value: "simple", "relaxed" or "HEADER/BODY" (RFC 6376 3.5); -1 when unknown. */
int dkim_canon_parse(const char *s, enum dkim_canon *header, enum dkim_canon *body);

enum dkim_sign_status {
    DKIM_SIGN_OK,       /* out holds the DKIM-Signature field(s) */
    DKIM_SIGN_NODOMAIN, /* From: domain not in dkim_domains, or no key for it */
    DKIM_SIGN_ERROR,    /* no usable From:, or a crypto failure; err says */
};

struct dkim_signer;

/*
 * Loads every key DIR/DOMAIN/SELECTOR.pem (PEM private key, RSA >= 1024
 * bits or Ed25519) for each domain in the list. A missing directory means
 * no key for that domain. An unreadable or unusable key takes its domain
 * out of signing, not the others: err gets "FILE: what" (several joined by
 * "; ") and dkim_sign() answers DKIM_SIGN_ERROR for that domain's mail, so
 * each such message is logged. Never NULL; free with dkim_signer_free().
 */
struct dkim_signer *dkim_signer_new(const char *key_dir, char *const *domains, size_t ndomains,
                                    struct buf *err);
/* The same from dkim_key_directory and dkim_domains. */
struct dkim_signer *dkim_signer_from_config(const struct config *cfg, struct buf *err);
void dkim_signer_free(struct dkim_signer *s);

/*
 * The worker's signer: the keeper (src/keeper/) holds the keys and says
 * which exist (it re-reads dkim_key_directory for this call); signing sends
 * it the SHA-256 of the header data and gets the signature back. A keeper
 * that does not answer gives a signer whose every signature fails
 * (DKIM_SIGN_ERROR, a temporary failure for the message), not one that
 * silently signs nothing. Never NULL.
 */
struct keeper_client;
struct dkim_signer *dkim_signer_from_keeper(struct keeper_client *kc, struct buf *err);
/* The keeper's side: its domains (with why their keys did not load, or NULL) and keys. */
size_t dkim_signer_domain_count(const struct dkim_signer *s);
const char *dkim_signer_domain_at(const struct dkim_signer *s, size_t i, const char **error);
const char *dkim_signer_key_at(const struct dkim_signer *s, size_t i, const char **selector,
                               int *ed25519);
/* Signs a header-data digest with domain/selector's key; -1 when there is no such key. */
int dkim_signer_sign_digest(const struct dkim_signer *s, const char *domain, const char *selector,
                            const unsigned char digest[32], struct buf *sig);
/* Default relaxed/relaxed; set before the signer is shared between threads. */
void dkim_signer_set_canon(struct dkim_signer *s, enum dkim_canon header, enum dkim_canon body);
/* Number of keys loaded (all domains). */
size_t dkim_signer_key_count(const struct dkim_signer *s);
/*
 * Whether s (n bytes) is a DNS name fit for a DKIM domain or selector
 * (RFC 6376 3.1: dot-separated labels of letters, digits, '-' and '_', each
 * 1-63 long, not starting with '-'). Also what keeps key file paths safe:
 * no "/", no empty label, so never "." or "..".
 */
int dkim_name_ok(const char *s, size_t n);
/* Why domain's keys (as configured, lower case) are not loaded; NULL when they are.
 * domain NULL: the first domain with unusable keys, if any. */
const char *dkim_signer_domain_error(const struct dkim_signer *s, const char *domain);

/*
 * Signs msg (CRLF) with every key of the signing domain chosen from the
 * From: domain; appends the DKIM-Signature fields (folded, CRLF, ready to be
 * prepended) to out. now is the t= value. Pure: safe to call from several
 * threads at once on the same signer. On DKIM_SIGN_NODOMAIN/ERROR err says
 * why and out is unchanged.
 */
enum dkim_sign_status dkim_sign(const struct dkim_signer *s, const char *msg, size_t len,
                                time_t now, struct buf *out, struct buf *err);

/*
 * dkim_sign() on a thread of q (src/lib/workq.h); done runs later on the
 * loop thread with the status, the DKIM-Signature field(s) (on
 * DKIM_SIGN_OK) or the reason, all valid during the call only. msg and s
 * must stay valid until done has run.
 */
struct workq;
typedef void (*dkim_sign_done_fn)(void *arg, enum dkim_sign_status st, const struct buf *fields,
                                  const char *err);
void dkim_sign_submit(struct workq *q, const struct dkim_signer *s, const char *msg, size_t len,
                      time_t now, dkim_sign_done_fn done, void *arg);

/* ---- Key lookup: the TXT seam shared with DMARC (dns/txt.h) ---- */
/*
 * Key records are looked up through a struct txt_lookup: txt_dns_lookup()
 * in the server. TXT_NOTFOUND and TXT_MALFORMED mean no key (permerror),
 * TXT_TEMPFAIL a temperror.
 */

/*
 * A lookup backed by a file of "NAME TXT VALUE" lines (the conformance
 * dns.txt format; VALUE "" is an empty record; "NAME TIMEOUT" and
 * "NAME SERVFAIL" answer TEMPFAIL; '#' starts a comment). Answers at once.
 */
struct dkim_keyfile;
struct dkim_keyfile *dkim_keyfile_load(const char *path, struct buf *err);
void dkim_keyfile_free(struct dkim_keyfile *kf);
/* Adds one record by hand (tests). */
void dkim_keyfile_add(struct dkim_keyfile *kf, const char *name, const char *txt);
struct dkim_keyfile *dkim_keyfile_new(void);
struct txt_lookup dkim_keyfile_lookup(struct dkim_keyfile *kf);

/* ---- Verification ---- */

struct dkim_sig_result {
    enum dkim_result result;
    char *domain;          /* d=, "" when the signature did not parse that far */
    char *selector;        /* s= */
    char *algorithm;       /* a= */
    char *identity;        /* i= (decoded), "" when unknown */
    char *reason;          /* why, for anything but pass; "" for a plain pass */
    long long body_length; /* l= when given (only that much body is covered), else -1 */
    int testing;           /* the key record says t=y */
};

struct dkim_verify_result {
    size_t count;                 /* 0: the message is unsigned (result none) */
    struct dkim_sig_result *sigs; /* in message order, top first */
};

/*
 * Verifies every DKIM-Signature in msg (CRLF) at time now. All the work on
 * the message is done before this returns (msg may be freed then); the key
 * lookups may finish later, and done() runs once when the last one has, with
 * a result owned by the library and valid only during the call. lk is
 * copied. Returns a handle for dkim_verify_cancel() while done() has not
 * run, or NULL when done() has already run (every lookup answered at once).
 */
struct dkim_verify;
typedef void (*dkim_verify_done_fn)(void *arg, const struct dkim_verify_result *res);
struct dkim_verify *dkim_verify_start(const char *msg, size_t len, time_t now,
                                      const struct txt_lookup *lk, dkim_verify_done_fn done,
                                      void *arg);
/* Cancels the pending key lookups and frees; done() is not called. NULL does nothing. */
void dkim_verify_cancel(struct dkim_verify *v);

/* Copies a result (dkim_verify_result_free() it). */
struct dkim_verify_result *dkim_verify_result_dup(const struct dkim_verify_result *r);
void dkim_verify_result_free(struct dkim_verify_result *r);

/* ---- Helpers ---- */

/* Appends src to out with every bare LF made CRLF (messages read from files and stdin). */
void dkim_crlf_normalize(const char *src, size_t len, struct buf *out);

/*
 * The TXT record for a private key, "v=DKIM1; k=rsa; p=BASE64" (or
 * k=ed25519), into out; -1 when the key is of neither type.
 */
struct evp_pkey_st;
int dkim_key_record(struct evp_pkey_st *key, struct buf *out);
/*
 * The zone-file line publishing record at name (no trailing newline), as
 * `dkim keygen` and `doctor` print it: NAME. IN TXT ( "v=...; p=" "..." )
 * with the tags before p= in one string and p= in strings of at most 255
 * octets (RFC 1035 3.3). Appended to out.
 */
void dkim_key_record_zone(const char *name, const char *record, struct buf *out);
/*
 * Whether the key record txt (as published in DNS) is usable and carries
 * the public half of key: 1 yes; 0 no, with why in why (for doctor).
 */
int dkim_key_record_matches(struct evp_pkey_st *key, const char *txt, size_t len, struct buf *why);
/* Loads a PEM private key usable for signing (RSA >= 1024 bits or Ed25519); NULL with err. */
struct evp_pkey_st *dkim_load_private_key(const char *path, struct buf *err);

#endif
