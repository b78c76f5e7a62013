/*
 * `hongyan queue --json` (src/cli/queue_json.c): Postfix's `postqueue -j`
 * output, one JSON object per queued message per line; and the one walk
 * over the queue that it and `hongyan queue list` share (src/cli/queue.c).
 */
#ifndef HONGYAN_CLI_QUEUE_JSON_H
#define HONGYAN_CLI_QUEUE_JSON_H

#include "queue/spool.h"

struct envelope;

/* One message as the listings see it; valid during the callback only. */
struct queue_entry {
    const struct envelope *e;
    const char *id;         /* the queue ID, or the maildrop file's name */
    enum spool_where where; /* SPOOL_ACTIVE or SPOOL_HOLD; maildrop: see below */
    int maildrop;           /* sent by sendmail, not picked up yet (the server is not running) */
    long long size;         /* the message's bytes */
};

/* Calls fn for every readable message: active/, hold/, then maildrop/. */
void queue_walk(struct spool *s, void (*fn)(void *arg, const struct queue_entry *q), void *arg);

/* Prints every queued message; 0. */
int queue_list_json(struct spool *s);

#endif
