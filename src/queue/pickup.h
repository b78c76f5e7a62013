/*
 * maildrop/: mail submitted by `sendmail`, written without the server. A
 * maildrop file is one line "HONGYAN-MAILDROP 1 ENVLEN", then ENVLEN bytes
 * of envelope records (envelope.h), then the message with CRLF line ends.
 * Pickup expands each recipient with the resolver, adds Message-ID and Date
 * when missing, queues the message durably and only then removes the file.
 */
#ifndef HONGYAN_QUEUE_PICKUP_H
#define HONGYAN_QUEUE_PICKUP_H

#include <stddef.h>

#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/spool.h"

struct config;
struct resolver;

#define PICKUP_MAGIC "HONGYAN-MAILDROP 1"

void pickup_encode(const struct envelope *e, const char *msg, size_t len, struct buf *out);
/*
 * Parses a maildrop file; 0 with *env (caller frees) and the message's
 * offset in *msg_off, or -1 with err.
 */
int pickup_decode(const char *text, size_t len, struct envelope **env, size_t *msg_off,
                  struct buf *err);
/* Picks up every file in maildrop/; returns the new queue ids (strlist_free), never NULL. */
char **pickup_run(struct spool *s, const struct config *cfg, struct resolver *r);

#endif
