/*
 * The queue manager: the scheduler that runs in delivery's event loop. At
 * start it rebuilds its state from the spool (recovery after any crash) and
 * picks up mail that `sendmail` left in maildrop/; then it delivers each
 * message's pending recipients (local domains: the built-in Maildir, unless
 * transport_maps, mailbox_transport or virtual_transport name another
 * transport; everything else: remote_deliver(), by MX, relayhost, SMTP or
 * LMTP next hop), records each result in the envelope, retries with backoff, and bounces what fails
 * for good. Blocking work (Maildir writes, fsyncs) runs on the work queue.
 */
#ifndef HONGYAN_QMGR_QMGR_H
#define HONGYAN_QMGR_QMGR_H

#include <stddef.h>

#include "queue/envelope.h"

struct server;
struct qmgr;

struct qmgr *qmgr_new(struct server *srv);
/* Recovery scan, maildrop pickup, timers. */
void qmgr_start(struct qmgr *q);
/* A message was just committed: schedule it now. */
void qmgr_kick(struct qmgr *q, const char *queue_id);
/* Retry every deferred message now (hongyan queue flush, the flush FIFO). */
void qmgr_flush(struct qmgr *q);
/*
 * The smtpd process says queue_id was committed (ipc/ipc_proto.h): a
 * wake-up only. Ignored unless it names a message in active/ that the
 * queue manager does not know yet; then as qmgr_kick.
 */
void qmgr_hint(struct qmgr *q, const char *queue_id);
/* Scans the queue at the next tick (a restarted smtpd: hints may have been lost). */
void qmgr_scan_soon(struct qmgr *q);
/* Stops starting deliveries; done(arg) runs once those in flight have finished. */
void qmgr_stop(struct qmgr *q, void (*done)(void *arg), void *arg);
void qmgr_free(struct qmgr *q);

#endif
