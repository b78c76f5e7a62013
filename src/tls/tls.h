/*
 * Server-side TLS: one context per configuration generation (a SIGHUP builds
 * a new one and the daemon swaps generations), the certificate from
 * smtpd_tls_cert_file/smtpd_tls_key_file or a self-signed one made once under
 * $data_directory/tls, and the two ways a session gets TLS: STARTTLS on a
 * live plain stream (RFC 3207) and implicit TLS from the first byte (RFC 8314).
 *
 * Ownership: tls_server_new() returns an object freed with tls_server_free();
 * SSL objects made from it hold their own reference to the underlying
 * SSL_CTX, so freeing the tls_server while sessions still use TLS is safe.
 */
#ifndef HONGYAN_TLS_TLS_H
#define HONGYAN_TLS_TLS_H

#include "lib/buf.h"

struct config;
struct event_base;
struct bufferevent;
struct tls_server;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * Builds the server context: TLS 1.2 and 1.3 only, Mozilla "intermediate"
 * ciphers with server preference, no compression, no renegotiation. When
 * smtpd_tls_cert_file is empty, uses $data_directory/tls/{cert,key}.pem,
 * creating them (ECDSA P-256, CN and SAN = myhostname, 10 years) when
 * missing; that is logged. NULL with the reason (naming the file) in err.
 */
struct tls_server *tls_server_new(const struct config *cfg, struct buf *err);
void tls_server_free(struct tls_server *ts);
SSL_CTX *tls_server_ctx(struct tls_server *ts);
/* The certificate file in use (configured or self-signed). */
const char *tls_server_cert_file(const struct tls_server *ts);

/*
 * STARTTLS: replaces *bev, an accepted plain socket bufferevent whose
 * output has been written out (call it from the write callback after "220
 * Ready to start TLS"), with a TLS bufferevent on the same socket, in the
 * accepting state, owning the socket (BEV_OPT_CLOSE_ON_FREE). Whatever the
 * client pipelined after STARTTLS and is still unread in *bev's input is
 * discarded (CVE-2011-0411: plaintext must never be taken as if it came
 * over TLS); the caller should stop reading at STARTTLS so that nothing
 * more is read in the clear. The old bufferevent is freed; the caller sets
 * its callbacks, watermarks and timeouts on the new *bev. 0, or -1 (output
 * not yet written, or no resources; then *bev is unchanged and still the
 * caller's).
 */
int tls_server_starttls(struct tls_server *ts, struct bufferevent **bev);

/*
 * Implicit TLS (smtps): a TLS bufferevent over the accepted socket fd,
 * accepting, owning fd (BEV_OPT_CLOSE_ON_FREE). NULL on failure (fd is
 * then still the caller's).
 */
struct bufferevent *tls_server_accept(struct tls_server *ts, struct event_base *base, int fd);

/* The SSL of a TLS bufferevent, or NULL for a plain one. */
SSL *tls_bev_ssl(struct bufferevent *bev);

/*
 * Appends "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (the
 * Postfix wording, for Received headers and logs); nothing when ssl is NULL.
 */
void tls_describe(SSL *ssl, struct buf *out);
/* The name the client asked for with SNI, or NULL. */
const char *tls_sni_name(SSL *ssl);

/*
 * The self-signed certificate pair, made when missing (or when made for
 * another host name); exposed for tests. 0, or -1 with err.
 */
int tls_selfsigned_ensure(const char *dir, const char *hostname, struct buf *err);

#endif
