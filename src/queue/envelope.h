/*
 * The envelope of a queued message: who it is from, each recipient with its
 * state, the DSN parameters (RFC 3461), timing. Encoded as text records in
 * the spool; per-recipient results are appended later, so a restart never
 * delivers again to a recipient already done.
 *
 * Ownership: strings in these structs are heap copies owned by the
 * envelope; envelope_free() releases everything.
 */
#ifndef HONGYAN_QUEUE_ENVELOPE_H
#define HONGYAN_QUEUE_ENVELOPE_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

#define QUEUE_ID_MAX 32

/* DSN NOTIFY= (RFC 3461 4.1); 0 means not given (the default: FAILURE). */
enum dsn_notify {
    DSN_NOTIFY_NEVER = 1,
    DSN_NOTIFY_SUCCESS = 2,
    DSN_NOTIFY_FAILURE = 4,
    DSN_NOTIFY_DELAY = 8,
};

enum dsn_ret {
    DSN_RET_DEFAULT = 0,
    DSN_RET_FULL,
    DSN_RET_HDRS,
};

enum rcpt_state {
    RCPT_PENDING,   /* not yet delivered; may carry a last error from a deferral */
    RCPT_DELIVERED, /* done */
    RCPT_BOUNCED,   /* failed for good; a DSN was (or will be) queued */
    RCPT_DELETED,   /* removed by the operator */
};

struct envelope_rcpt {
    char *address;   /* final recipient */
    char *orcpt;     /* original recipient as "rfc822;addr", or NULL */
    unsigned notify; /* enum dsn_notify bits */
    enum rcpt_state state;
    char *last_error; /* last reply or reason, or NULL */
    char *dsn_status; /* X.Y.Z of the last result, or NULL */
    int attempts;
};

struct envelope {
    char queue_id[QUEUE_ID_MAX];
    time_t arrival;
    char *sender; /* "" for the null sender <> */
    char *envid;  /* DSN ENVID=, or NULL */
    enum dsn_ret ret;
    int smtputf8;
    int body_8bit;
    int hold;
    time_t next_try; /* 0: as soon as possible */
    int attempts;
    int is_bounce; /* a DSN we made: never bounce it again */
    /*
     * When a delay notice (delay_warning_time) was queued for this message;
     * 0: never. Recorded ("W" record) so a restart does not send another.
     */
    time_t delay_warned;
    /*
     * The commit record (version 2): the data file's size when the message
     * was committed; -1 when absent (version 1 files, maildrop files, or an
     * envelope whose commit was cut short by a crash).
     */
    long long data_size;
    struct envelope_rcpt *rcpts;
    size_t nrcpts;
};

struct envelope *envelope_new(void);
void envelope_free(struct envelope *e);
/* Adds a recipient; returns it for the caller to set orcpt/notify. */
struct envelope_rcpt *envelope_add_rcpt(struct envelope *e, const char *address);

/* Serialisation, for the spool and tests: encode all records / parse them back. */
void envelope_encode(const struct envelope *e, struct buf *out);
/* NULL with err when the text is malformed (the spool quarantines such files). */
struct envelope *envelope_decode(const char *text, size_t len, struct buf *err);
/*
 * The same, telling how much of the text is intact: *intact is the length of
 * the records decoded. Less than len means a torn tail: a last line without
 * its newline, or, after the commit record (the part synced before the 250),
 * a line that does not parse (NULs or stale bytes left by a power cut in the
 * middle of an unsynced append). The tail is ignored, and recovery cuts it
 * off. Damage before the commit record is still an error.
 */
struct envelope *envelope_decode_prefix(const char *text, size_t len, size_t *intact,
                                        struct buf *err);
/*
 * Appended records (added for the spool): the result of recipient i as it
 * stands in e, and the message's retry schedule (next_try, attempts). The
 * decoder replays them in order, so the last record wins.
 */
void envelope_encode_result(const struct envelope *e, size_t i, struct buf *out);
void envelope_encode_schedule(const struct envelope *e, struct buf *out);
/* The delay-notice record: e->delay_warned (only a binary that knows it reads it). */
void envelope_encode_delay_warned(const struct envelope *e, struct buf *out);
/* The commit record, written by the spool after the initial records (see data_size). */
void envelope_encode_commit(long long data_size, struct buf *out);

#endif
