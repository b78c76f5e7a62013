/*
 * The client end of a keeper socketpair (ipc_proto.h), as the worker
 * holds it: any thread may call, several requests may be in flight at once
 * (each waits for the reply with its own id), and a caller never waits past
 * its timeout. A keeper that is restarting leaves the socket open (the
 * supervisor holds the keeper's end), so requests sent meanwhile are
 * answered by the next keeper; one the old keeper had taken times out.
 *
 * Ownership: keeper_client_new() takes the descriptor; keeper_client_free()
 * closes it. The process-wide default is set once at start (worker_exec.c)
 * and never freed.
 */
#ifndef HONGYAN_IPC_KEEPER_CLIENT_H
#define HONGYAN_IPC_KEEPER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/ipc_proto.h"
#include "lib/buf.h"

struct keeper_client;

/* Timeouts: the TLS signature runs on the event loop and must be short. */
#define KEEPER_TIMEOUT_TLS_MS 2000
#define KEEPER_TIMEOUT_WORK_MS 10000

struct keeper_client *keeper_client_new(int fd);
/*
 * fn runs once (on whichever thread reads) when the keeper shuts this
 * connection down, which it does only to a client that sent a malformed
 * request: the worker then stops, and its successor gets a fresh one.
 */
void keeper_client_on_closed(struct keeper_client *kc, void (*fn)(void));
void keeper_client_free(struct keeper_client *kc);
/* The worker's connection to its keeper; NULL when it has none (tests, commands). */
struct keeper_client *keeper_client_default(void);
void keeper_client_set_default(struct keeper_client *kc);

/*
 * Sends req (a message begun with keeper_put_hdr; its id is filled in here)
 * and waits up to timeout_ms for the reply. The reply's fields (after the
 * header) go to body. Returns the reply's status, or KEEPER_ST_TEMPFAIL on
 * timeout or a closed connection.
 */
enum keeper_status keeper_client_call(struct keeper_client *kc, struct buf *req, int timeout_ms,
                                      struct buf *body);

/* The typed requests. Signatures are appended to sig. */
enum keeper_status keeper_client_tls_sign(struct keeper_client *kc, enum keeper_tls_op op,
                                          const uint8_t keyid[KEEPER_KEYID_LEN], const uint8_t *in,
                                          size_t inlen, struct buf *sig);
enum keeper_status keeper_client_dkim_sign(struct keeper_client *kc, const char *domain,
                                           const char *selector,
                                           const uint8_t digest[KEEPER_DIGEST_LEN],
                                           struct buf *sig);
/* The DKIM_KEYS reply's fields into body, decoded by the caller (layout in ipc_proto.h). */
enum keeper_status keeper_client_dkim_keys(struct keeper_client *kc, struct buf *body);
/* KEEPER_ST_OK, KEEPER_ST_NO, or KEEPER_ST_TEMPFAIL. */
enum keeper_status keeper_client_password(struct keeper_client *kc, const char *user,
                                          const char *pass);

#endif
