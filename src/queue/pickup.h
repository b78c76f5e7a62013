/*
 * maildrop/: mail submitted by `sendmail`, written without the server by
 * the setgid helper hongyan-postdrop (src/postdrop/postdrop.c). A maildrop
 * file is the helper's line "HONGYAN-POSTDROP uid=N" (the one trusted part:
 * who submitted), then sendmail's "HONGYAN-MAILDROP 1 ENVLEN" line, ENVLEN
 * bytes of envelope records (envelope.h), then the message.
 *
 * Everything after the helper's line is the submitting user's to write, so
 * pickup treats it as untrusted input: the files are opened without
 * following links or blocking, read and checked on the work queue (every
 * address through the SMTP parser, line ends made CRLF, recipients
 * de-duplicated and capped), and a file that fails is moved to corrupt/
 * with a log line, never retried. Then, on the loop, each recipient is
 * expanded with the resolver, Received (with the uid), Message-ID and Date
 * are added, the message is queued durably and only then the file removed.
 */
#ifndef HONGYAN_QUEUE_PICKUP_H
#define HONGYAN_QUEUE_PICKUP_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/spool.h"

struct config;
struct resolver;

#define PICKUP_MAGIC "HONGYAN-MAILDROP 1"
#define PICKUP_POSTDROP_MAGIC "HONGYAN-POSTDROP uid="

void pickup_encode(const struct envelope *e, const char *msg, size_t len, struct buf *out);
/*
 * Parses sendmail's part of a maildrop file; 0 with *env (caller frees) and
 * the message's offset in *msg_off, or -1 with err.
 */
int pickup_decode(const char *text, size_t len, struct envelope **env, size_t *msg_off,
                  struct buf *err);
/*
 * Parses a whole maildrop file: the helper's uid line (*uid; -1 for a file
 * from before the helper, whose owner is then the submitter), then as
 * pickup_decode. 0 or -1 with err.
 */
int pickup_parse(const char *text, size_t len, long *uid, struct envelope **env, size_t *msg_off,
                 struct buf *err);
/*
 * Checks every envelope field as the SMTP server would (src/smtp/address.c:
 * no CR, LF, NUL or other control character anywhere), normalises the
 * addresses, drops duplicate recipients, and refuses more than max_rcpts
 * (0: no cap). 0 or -1 with err.
 */
int pickup_validate(struct envelope *e, size_t max_rcpts, struct buf *err);
/* Appends msg with every line ending made CRLF: a bare CR or a bare LF becomes CRLF. */
void pickup_normalize(const char *msg, size_t len, struct buf *out);

/* What pickup needs to know, copied from the configuration for the work queue. */
struct pickup_limits {
    size_t max_message; /* message_size_limit (0: none) */
    size_t max_rcpts;   /* smtpd_recipient_limit (0: none) */
    size_t max_batch_bytes;
    char *submit_users; /* authorized_submit_users */
    char *mail_owner;
};

/* One maildrop file, read and checked. */
struct pickup_file {
    char *name;
    uid_t uid;
    char user[64];
    struct envelope *env;
    struct buf body; /* CRLF line ends */
    struct pickup_file *next;
};

void pickup_file_free(struct pickup_file *f);

/*
 * Reads the next files of maildrop/ (blocking: call from the work queue),
 * skipping names for which skip(name, arg) says so (already in progress).
 * Bad files are quarantined and logged here; files that cannot be read
 * right now (a table lookup failed) are left. Stops at 200 files or at
 * max_batch_bytes; *more says whether files were left for the next round.
 * Returns the list (pickup_file_free each), or NULL.
 */
struct pickup_file *pickup_read_batch(struct spool *s, const struct pickup_limits *lim,
                                      int (*skip)(const char *name, void *arg), void *skip_arg,
                                      int *more);

/* Names of files waiting in maildrop/ (a bounded batch, for listing); strlist_free(). */
char **pickup_names(struct spool *s);

/* What pickup logs about a message it queued. */
struct pickup_info {
    char id[QUEUE_ID_MAX];
    char sender[512];
    long uid; /* who ran sendmail, as the helper recorded it */
    size_t size, nrcpt;
};

/*
 * Expands the recipients of f and builds the spool message (not yet
 * committed) in *out, with Received (naming the uid), Message-ID and Date.
 * 1: ready, commit it and then call pickup_finish; 0: leave the file for
 * later (a lookup or the disk failed for now). Bad files never get here:
 * pickup_read_batch took them aside.
 */
int pickup_prepare(struct spool *s, const struct config *cfg, struct resolver *r,
                   struct pickup_file *f, struct spool_msg **out, struct pickup_info *info);
/* Removes maildrop/NAME durably (blocking: call from the work queue). */
void pickup_finish(struct spool *s, const char *name);
void pickup_log(const struct pickup_info *info);
/* Fills lim from cfg; pickup_limits_free releases the copies. */
void pickup_limits_init(struct pickup_limits *lim, const struct config *cfg);
void pickup_limits_free(struct pickup_limits *lim);

#endif
