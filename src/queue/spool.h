/*
 * The spool: the one hand-over point between receiving and delivering. A
 * message is a data file plus its envelope under queue_directory. Receiving
 * writes to a temporary file; the commit makes it durable before the caller
 * may answer 250. Commits from sessions that finish together share one
 * round (group commit) on the work queue: each message's files are written
 * and renamed into active/, then one syncfs(2) makes the whole round
 * durable; the callback comes back on the event loop. spool_sync() lets
 * delivery share those rounds (docs/queue.md, Durability).
 *
 * Layout under queue_directory: incoming/ (being received), active/
 * (committed, waiting or being delivered), hold/, corrupt/ (files that could
 * not be parsed, kept and logged, never deleted), maildrop/ (from sendmail,
 * written without the server), public/ (the flush FIFO).
 *
 * Disk full while writing or committing is a temporary failure (452 4.3.1)
 * and leaves nothing half-written behind.
 */
#ifndef HONGYAN_QUEUE_SPOOL_H
#define HONGYAN_QUEUE_SPOOL_H

#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

#include "lib/buf.h"
#include "queue/envelope.h"

struct event_base;
struct workq;
struct spool;
struct spool_msg;

/*
 * The on-disk format this release writes and reads: queue_directory/
 * spool-version says "hongyan-spool N". A queue without the marker was
 * written by a release from before it (the same layout, version 1) and is
 * marked; a marker with a higher number (a newer release's queue) or an
 * unreadable one is refused, so nothing misreads or quarantines a queue it
 * does not understand. spool_open() calls the check; 0 or -1 with err.
 */
#define SPOOL_VERSION 2
int spool_version_check(const char *queue_dir, struct buf *err);
/*
 * The marker's number, or 0 when text is not one line "hongyan-spool N\n"
 * (N decimal, 1 to 9 digits, no sign or leading zero).
 */
long spool_version_parse(const char *text, size_t len);
/*
 * Logs a warning when the spool's filesystem cannot keep a 250's promise
 * (ext4 without a journal). The supervisor calls it at start: it reads /sys.
 */
void spool_check_filesystem(const char *queue_dir, int dir_fd);

/*
 * As root: the queue's own directories (incoming/, active/, hold/, corrupt/)
 * inside qfd, the open queue_directory, given to owner and group by
 * descriptor; missing ones are made (mode create_mode, exactly) unless
 * create_mode is 0. Their contents are never walked: owner writes in them,
 * so root changing owners inside would act on names another user controls.
 * A name that is a symbolic link, not a directory or owned by anyone but
 * root or owner is an error naming it. So nothing root runs leaves a
 * directory there that the worker cannot use. 0 or -1 with err.
 */
int spool_dirs_hand_over(int qfd, const char *queue_dir, uid_t owner, gid_t group,
                         mode_t create_mode, struct buf *err);

/*
 * Each process that writes new messages has its own incoming directory
 * (docs/architecture.md, Process split): smtpd receives into incoming/,
 * delivery writes bounces and picked-up mail into incoming.delivery/. A
 * process recovers only its own (spool_recover_incoming), so a restart of
 * one never removes a file the other is still writing. Both are on the
 * queue's filesystem: the commit stays a rename. Queue ids made by the two
 * never collide (the last character's low bit says which made it), since
 * both publish into the one active/.
 */
#define SPOOL_INCOMING_SMTPD "incoming"
#define SPOOL_INCOMING_DELIVERY "incoming.delivery"
/*
 * Opens (creating the layout if needed) the spool, writing new messages
 * into queue_dir/incoming (SPOOL_INCOMING_SMTPD or SPOOL_INCOMING_DELIVERY);
 * NULL with err.
 */
struct spool *spool_open(const char *queue_dir, const char *incoming, struct buf *err);
void spool_free(struct spool *s);
/* Group commit needs the loop and the work queue; without them commits are synchronous. */
void spool_attach(struct spool *s, struct event_base *base, struct workq *wq);
/*
 * smtpd's: commits small messages to the journal (queue/journal.h,
 * docs/queue.md "The journal"): a message whose data stayed in the receive
 * buffer (SPOOL_WBUF) and that is not headed for hold/ is one record
 * appended to a segment, a round's records synced by one fdatasync; others
 * still take two files and the round's syncfs. 0 or -1 with err.
 */
int spool_journal_enable(struct spool *s, struct buf *err);
/*
 * Learns of messages committed to the journal since the last look (the
 * queue manager calls it for a hint it does not know yet; spool_list does
 * it itself). Only bytes its writer has synced are read.
 */
void spool_refresh(struct spool *s);
/* 1 when id is queued as a journal record (not as files in active/). */
int spool_journaled(const struct spool *s, const char *id);

/* A message being received. NULL with err (e.g. disk full) is a 4xx. */
struct spool_msg *spool_msg_new(struct spool *s, struct buf *err);
const char *spool_msg_id(const struct spool_msg *m);
struct envelope *spool_msg_envelope(struct spool_msg *m); /* fill sender, rcpts, DSN */
/* Appends message bytes (CRLF line ends, unstuffed); 0 or -1 with errno. */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len);
size_t spool_msg_size(const struct spool_msg *m);

/*
 * Makes the message durable and hands it to delivery. Takes ownership of m.
 * cb runs on the event loop with result 0 (durable: answer 250) or -1
 * (nothing kept: answer 4xx; errno-like code in err_code).
 */
typedef void (*spool_commit_cb)(void *arg, int result, int err_code, const char *queue_id);
void spool_msg_commit(struct spool_msg *m, spool_commit_cb cb, void *arg);
/*
 * Makes durable everything this process wrote on the spool's filesystem
 * before the call (e.g. Maildir files: see spool_device()), sharing the next
 * group-commit round's syncfs. cb runs on the event loop with 0 or an errno.
 */
typedef void (*spool_sync_cb)(void *arg, int err_code);
void spool_sync(struct spool *s, spool_sync_cb cb, void *arg);
/*
 * Removes a journaled message in the next round, on its pool thread: its
 * done-log record is written there, with the others of the round, so a
 * delivery's last step costs no trip to a thread of its own. With durable
 * (after a remote server's 250), the round then syncs the done-logs with
 * fdatasync, no syncfs unless another caller or a commit needs one. cb
 * runs on the event loop with 0, or the errno of a removal that failed
 * (ENOENT: deleted or held meanwhile). A failed sync of the record is
 * logged here and not reported: the message is gone either way, and the
 * failure only means a crash could deliver it again.
 */
void spool_finish_journaled(struct spool *s, const char *id, int durable, spool_sync_cb cb,
                            void *arg);
/* The device the spool is on: files elsewhere are not covered by spool_sync(). */
dev_t spool_device(const struct spool *s);
/* The same, synchronously (CLI use); 0 or -1 with err. Takes ownership. */
int spool_msg_commit_sync(struct spool_msg *m, struct buf *err);
/* Drops a message being received, removing its files. */
void spool_msg_abort(struct spool_msg *m);

/*
 * For DKIM signing at spool entry (added; self-contained). Both work on a
 * message being received, before its commit, and touch nothing but that
 * message's own files: they may run on a work-queue thread while the loop
 * goes on, as long as nothing else uses m meanwhile.
 *
 * spool_msg_read: appends the bytes written so far to out (after flushing
 * the write buffer); -1 with errno (EFBIG when more than max bytes).
 *
 * spool_msg_prepend: puts data (whole header lines, CRLF) in front of the
 * message. A new file incoming/QUEUEID.pre gets data, then the old
 * contents by copy_file_range (a reflink or in-kernel copy where the file
 * system can; read/write otherwise), and is renamed over QUEUEID.data; the
 * commit then syncs and renames it as usual (a crash in between leaves only
 * incoming/ files, which recovery removes). 0, or -1 with errno and the
 * message unchanged.
 */
int spool_msg_read(struct spool_msg *m, struct buf *out, size_t max);
/*
 * Empties the data file of a message being received, so that it can be
 * written again (non_smtpd_milters edit a picked-up message); 0 or -1 with
 * errno (the commit then fails too).
 */
int spool_msg_truncate(struct spool_msg *m);
int spool_msg_prepend(struct spool_msg *m, const void *data, size_t len);

/*
 * Added for the queue manager, the CLI and tests (compatible additions).
 *
 * On disk a message is two files in the same directory: DIR/QUEUEID, the
 * envelope (envelope.h text records, results appended), and
 * DIR/QUEUEID.data, the message itself. The envelope is renamed into
 * active/ last and ends its initial records with the commit record (the
 * data's size): recovery removes a message whose round a crash cut short
 * (never acknowledged) by that record.
 */
enum spool_where {
    SPOOL_ACTIVE,
    SPOOL_HOLD,
};

const char *spool_dir(const struct spool *s);
/* public/flush: the FIFO sendmail and `hongyan queue` write to wake the server. */
const char *spool_fifo_path(const struct spool *s);
const char *spool_maildrop_dir(const struct spool *s);
/*
 * This writer's incoming directory: where its files that are not yet queued
 * live (smtpd/hold.h puts held messages there).
 */
const char *spool_incoming_dir(const struct spool *s);
/*
 * Bytes free for us on the spool's filesystem (statvfs f_bavail), read at
 * most once a second (so asking at every MAIL FROM costs nothing); -1 when
 * it cannot be told. Loop thread only.
 */
long long spool_free_space(struct spool *s);
/* Completed sync rounds of the group commit (tests, statistics). */
unsigned long spool_sync_rounds(const struct spool *s);

/* A new queue id: time, microseconds and randomness in base 32, 15 chars, roughly sortable. */
void spool_new_id(char id[QUEUE_ID_MAX]);
int spool_valid_id(const char *id);
/*
 * The moment a queue id made by spool_new_id() was made, to the
 * microsecond (the envelope's arrival record has whole seconds only): 0
 * with *tv set, -1 when id is not such an id (a hand-made file name).
 */
int spool_id_time(const char *id, struct timeval *tv);

/*
 * Reads the envelope of a queued message from active/ or hold/ (where says
 * which; may be NULL). NULL with errno ENOENT when the message is gone, or
 * with errno EINVAL and err when malformed. Caller frees with envelope_free.
 */
struct envelope *spool_read_envelope(struct spool *s, const char *id, enum spool_where *where,
                                     struct buf *err);
/*
 * 1 when id is a committed message in active/ (its envelope there: a
 * complete message, spool.h layout), 0 otherwise (not an id, not yet
 * committed, on hold, gone).
 */
int spool_is_active(const struct spool *s, const char *id);
/*
 * Today's layout's data file (out is replaced): for the spool's own files,
 * recovery and tests. Readers of a message's data use spool_data_open().
 */
void spool_data_path(const struct spool *s, const char *id, enum spool_where where,
                     struct buf *out);

/*
 * A queued message's data (headers and body, CRLF line ends, not
 * dot-stuffed): bytes [offset, offset + length) of the file open on fd.
 * Today each message has a file of its own (offset 0, length its size);
 * a spool that keeps several messages in one file gives a range of it, so
 * a reader never assumes offset 0 and never reads past length. Readers
 * use pread, copy_file_range and the helpers below, never fd's file
 * position: several deliveries of one message share the descriptor, on
 * different threads.
 */
struct spool_data {
    int fd;
    off_t offset;
    off_t length;
};
#define SPOOL_DATA_INIT                                                                            \
    {                                                                                              \
        .fd = -1, .offset = 0, .length = 0                                                         \
    }
/*
 * Opens the data of message id in active/ or hold/ into *d, which the
 * caller closes with spool_data_close(). Not through a symbolic link and a
 * regular file only (the CLI may run as root in directories the server's
 * user writes). 0, or -1 with errno (ENOENT: no such message) and err
 * ("PATH: reason"; err may be NULL), and d->fd -1.
 */
int spool_data_open(const struct spool *s, const char *id, enum spool_where where,
                    struct spool_data *d, struct buf *err);
/*
 * The same for a message being received (before its commit): what was
 * written so far (the write buffer is flushed first).
 */
int spool_msg_data_open(struct spool_msg *m, struct spool_data *d);
/* Closes d's descriptor (if open) and sets it to -1. */
void spool_data_close(struct spool_data *d);
/*
 * The data's size without opening it (queue listings, gauges): 0 with
 * *size, or -1 with errno (ENOENT: no such message).
 */
int spool_data_size(const struct spool *s, const char *id, enum spool_where where,
                    unsigned long long *size);
/*
 * Reads up to len bytes of the data from pos (0 is the message's first
 * byte) into out: the count, 0 at the message's end, -1 with errno (EIO
 * when the file ends before the range does).
 */
ssize_t spool_data_pread(const struct spool_data *d, off_t pos, void *out, size_t len);
/* Appends the whole message to out: 0, or -1 with errno (EFBIG when longer than max). */
int spool_data_read(const struct spool_data *d, struct buf *out, size_t max);
/* Writes the whole message to out_fd at its file position: 0, or -1 with errno. */
int spool_data_copy(const struct spool_data *d, int out_fd);
/*
 * Appends records (whole lines) to an active message's envelope durably
 * (write + fdatasync); on failure the file is cut back to its old length.
 * 0 or -1 with errno (ENOENT: the message was deleted or held meanwhile).
 * A journaled message is moved to active/ as files with the records
 * appended, synced, whatever sync says (delivery's results mean it stays).
 */
int spool_append(struct spool *s, const char *id, const char *records, size_t len);
/* The same; sync 0 skips the fdatasync (records a crash may lose without harm). */
int spool_append_sync(struct spool *s, const char *id, const char *records, size_t len, int sync);
/*
 * Removes a finished message from active/ without syncing the directory: a
 * crash may bring it back, and it is then delivered again (for Maildir,
 * idempotently: maildir.h). A journaled one is marked done in its
 * segment's done-log, not synced either. 0 or -1 with errno.
 */
int spool_remove(struct spool *s, const char *id);
/*
 * Operator actions by rename; 0 or -1 with errno (ENOENT: no such message
 * there; EBUSY: a journal record, which these do not touch: it is in
 * active/ as files once a delivery defers it).
 */
int spool_hold(struct spool *s, const char *id);
int spool_release(struct spool *s, const char *id);
int spool_delete(struct spool *s, const char *id);
/* Queue ids in active/ or hold/, sorted; strlist_free(). */
char **spool_list(struct spool *s, enum spool_where where, size_t *count);
/*
 * A writer's start-up recovery, of its own incoming directory only: removes
 * what is there (never acknowledged), and the data file a commit cut short
 * between its two renames left in active/ or hold/. Returns the number of
 * files removed.
 */
int spool_recover_incoming(struct spool *s);
/*
 * The committed queue's repair, by its owner (the delivery process) at its
 * start, while smtpd may be committing: rejoins pairs split by a crash
 * between renames, cuts a torn tail (a partial or unreadable append after
 * the commit record) off envelopes and keeps those messages queued, and
 * moves what cannot be parsed to corrupt/ (logged, never deleted). A data
 * file whose envelope is still in a writer's incoming directory is a commit
 * in progress and is left alone. Returns the number of files quarantined.
 */
int spool_recover(struct spool *s);

#endif
