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
/* What pickup logs about a message it queued. */
struct pickup_info {
    char id[QUEUE_ID_MAX];
    char sender[512];
    long uid; /* owner of the maildrop file: who ran sendmail */
    size_t size, nrcpt;
};

/* Names of files waiting in maildrop/ (a bounded batch); strlist_free(). */
char **pickup_names(struct spool *s);
/*
 * Reads maildrop/NAME, expands its recipients, and builds the spool message
 * (not yet committed) in *out. 1: ready, commit it and then call
 * pickup_finish; 0: leave the file for later (a lookup or the disk failed
 * for now); -1: the file was bad and moved to corrupt/.
 */
int pickup_prepare(struct spool *s, const struct config *cfg, struct resolver *r, const char *name,
                   struct spool_msg **out, struct pickup_info *info);
/* Removes maildrop/NAME durably (blocking: call from the work queue). */
void pickup_finish(struct spool *s, const char *name);
void pickup_log(const struct pickup_info *info);
/* All of the above, synchronously; returns the new queue ids (strlist_free), never NULL. */
char **pickup_run(struct spool *s, const struct config *cfg, struct resolver *r);

#endif
