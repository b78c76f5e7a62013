/*
 * `hongyan queue --json` (src/cli/queue_json.c): Postfix's `postqueue -j`
 * output, one JSON object per queued message per line.
 */
#ifndef HONGYAN_CLI_QUEUE_JSON_H
#define HONGYAN_CLI_QUEUE_JSON_H

struct spool;

/* Prints every queued message; 0. */
int queue_list_json(struct spool *s);

#endif
