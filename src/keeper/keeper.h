/*
 * The keeper: the one process that can read the TLS private key, the DKIM
 * private keys and the SASL users file, and that uses them on request over
 * socketpairs (ipc/ipc_proto.h). It runs as keeper_user with its own
 * group, opens no socket, and parses nothing from the network; the
 * supervisor starts it (`hongyan keeper`, an exec of the binary) and
 * restarts it when it dies. docs/security.md has its profile.
 */
#ifndef HONGYAN_KEEPER_KEEPER_H
#define HONGYAN_KEEPER_KEEPER_H

#include <stdint.h>

#include "lib/buf.h"

struct config;

/* `hongyan keeper --parent PID [--config PATH] [--config-fd N] [--log-fd N] [--ready-fd N] --client
 * FD,CAPS...` */
int keeper_main(int argc, char **argv);

/* What the keeper holds (keeper_state.c); used by the main thread and the hash threads. */
struct keeper_state;

/* Every key, as cfg (loaded from config_path, which reloads read again; taken over) says. */
struct keeper_state *keeper_state_new(const char *config_path, struct config *cfg);
/*
 * Re-reads main.cf, the TLS and DKIM keys and the users file; keeps what was
 * loaded on error. limited: asked for by a client, so not again within 200 ms
 * (a hostile one must not keep the keeper reloading).
 */
void keeper_state_reload(struct keeper_state *ks, int limited);
void keeper_state_free(struct keeper_state *ks);
/* The configuration loaded last. */
const struct config *keeper_state_config(const struct keeper_state *ks);

/* The private operations; each answers an enum keeper_status and appends to sig. */
int keeper_state_tls_sign(struct keeper_state *ks, int op, const uint8_t *keyid, const uint8_t *in,
                          size_t inlen, struct buf *sig);
int keeper_state_dkim_sign(struct keeper_state *ks, const char *domain, const char *selector,
                           const uint8_t *digest, struct buf *sig);
/* The DKIM_KEYS reply's fields (ipc_proto.h), after a reload. */
void keeper_state_dkim_keys(struct keeper_state *ks, struct buf *body);
/* Thread-safe: KEEPER_ST_OK or KEEPER_ST_NO; costs one hash either way. */
int keeper_state_password(struct keeper_state *ks, const char *user, const char *pass);

/* The syscall allowlist (keeper_sandbox.c): no socket, no exec. 0 or -1 with err. */
int keeper_sandbox_enter(struct buf *err);

#endif
