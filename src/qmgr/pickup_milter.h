/*
 * non_smtpd_milters for mail from `sendmail` (maildrop/ pickup): as
 * Postfix's cleanup does, the filters are told of an ESMTP session from
 * localhost [127.0.0.1] (CONNECT, EHLO localhost, MAIL, one RCPT per
 * recipient, DATA), then get the message; their edits land in the queued
 * message before it is signed and committed. A 5xx refusal bounces the
 * message to its sender (mail from a local user is never silently lost),
 * a 4xx or a refused recipient leaves it in maildrop/ for a later pickup.
 */
#ifndef HONGYAN_QMGR_PICKUP_MILTER_H
#define HONGYAN_QMGR_PICKUP_MILTER_H

#include "queue/envelope.h"
#include "queue/spool.h"

struct server;
struct server_gen;

enum pickup_milter_outcome {
    PICKUP_MILTER_GO,      /* commit m (edited; hold set when quarantined) */
    PICKUP_MILTER_DROPPED, /* discarded or bounced: m is gone, remove the maildrop file */
    PICKUP_MILTER_LATER,   /* m is gone; leave the maildrop file for a later try */
};

/* bounce_id: the DSN queued for a refused message, or NULL. */
typedef void (*pickup_milter_cb)(void *arg, struct spool_msg *m, enum pickup_milter_outcome o,
                                 const char *bounce_id);

/*
 * Runs gen's non_smtpd_milters over m (prepared by pickup_prepare); cb
 * runs from the loop, at once with GO when there are no such filters. gen
 * must stay referenced until cb.
 */
void pickup_milter_run(struct server *srv, struct server_gen *gen, struct spool_msg *m,
                       pickup_milter_cb cb, void *arg);

#endif
