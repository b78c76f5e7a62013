/*
 * Local delivery into a Maildir (https://cr.yp.to/proto/maildir.html): the
 * message is written under tmp/ with a unique name, synced, and renamed into
 * new/. Blocking: the queue manager calls it from the work queue.
 */
#ifndef HONGYAN_DELIVER_MAILDIR_H
#define HONGYAN_DELIVER_MAILDIR_H

#include <sys/types.h>

#include "deliver/agent.h"
#include "lib/buf.h"
#include "queue/spool.h"

/*
 * Delivers the message data (its range only: spool.h; CRLF line ends, kept as they are) to
 * the Maildir mailbox (an absolute path; tmp/ new/ cur/ are created mode
 * 0700 when a file cannot be created for want of them), with "Return-Path: <sender>" and
 * "Delivered-To: rcpt" prepended. DELIVERY_OK, DELIVERY_TEMPFAIL (disk full, I/O error: retry) or
 * DELIVERY_PERMFAIL (the path cannot be used); dsn gets X.Y.Z, reason a sentence for the log and
 * the DSN. The new file's path goes to path_out when it is not NULL.
 */
/*
 * Exactly-once delivery across crashes. The queue records a result only
 * after the message is in new/, so a crash in between delivers again: with
 * a stem (unique per queued message and recipient) the file name is the
 * same on every attempt, so the retry replaces its own earlier copy instead
 * of adding a second. With check_cur, a copy that a mail reader already
 * moved to cur/ also counts as delivered (a directory scan: the queue asks
 * for it only for messages it did not see arrive, i.e. after a restart).
 */
struct maildir_once {
    const char *stem; /* letters, digits, '_' and '-' only */
    int check_cur;
    /*
     * Shared syncs (optional): when sync_deferred is not NULL and the file
     * lands on device sync_dev, neither the file nor new/ is synced here;
     * *sync_deferred is set to 1 and the caller must sync that filesystem
     * (spool_sync()) before it records the delivery.
     */
    dev_t sync_dev;
    int *sync_deferred;
};

/* once may be NULL: a fresh unique name, no duplicate check. */
enum delivery_status maildir_deliver(const char *mailbox, const struct spool_data *data,
                                     const char *sender, const char *rcpt,
                                     const struct maildir_once *once, char dsn[16],
                                     struct buf *reason, struct buf *path_out);

#endif
