/*
 * DKIM signing at spool entry: the glue between a message being received
 * (src/queue/spool.h) and the signer (dkim.h). The message is read back from
 * its incoming file, signed, and the DKIM-Signature field(s) put at its very
 * top, all on a work-queue thread, before the caller commits it; so the
 * queued bytes are signed once and every retry sends the same ones.
 *
 * Which mail is signed (the caller's half of the rule, see docs/dkim.md):
 * only mail we originate (an authenticated session, a mynetworks client on
 * smtpd_listen, sendmail/pickup) is passed here; the signer decides by the
 * From: domain (dkim_domains) and signs with every key it has for it.
 */
#ifndef HONGYAN_QUEUE_DKIM_SPOOL_H
#define HONGYAN_QUEUE_DKIM_SPOOL_H

struct workq;
struct spool_msg;
struct dkim_signer;

/*
 * Runs on the loop thread once m is signed, or left unsigned (logged why):
 * err_code 0, commit it. err_code an errno (ENOSPC, EDQUOT, EIO...): the
 * queue file could not be read back or the new fields written, so m is
 * unfinished (maybe without its Date, or unsigned though keys are
 * configured): abort it and answer 4xx, never commit it.
 */
typedef void (*dkim_spool_done_fn)(void *arg, struct spool_msg *m, int err_code);

/*
 * Signs m with signer and calls done(arg, m, err_code); m is the caller's
 * again then (commit or abort it). A signing failure never loses the
 * message: it is left as it was, unsigned, with a warning in the log
 * ("QUEUEID: not DKIM-signed: why"), also when the From: domain's keys
 * could not be loaded (dkim.h). A storage failure is err_code (above). With no signer, or a signer
 * without keys or broken domains, done runs at once, before this returns, and nothing is read. q
 * NULL: all of it synchronously. signer and m must stay valid until done has run.
 *
 * fixup_host non-NULL: this is submitted mail (RFC 6409), so a missing Date
 * or Message-ID field is added first (8.2, 8.3; the Message-ID names
 * fixup_host), at the top with the signature, and signed with the rest.
 * That costs a read of the message even without keys; pickup passes NULL
 * because sendmail's files get theirs there.
 */
void dkim_spool_sign(struct workq *q, const struct dkim_signer *signer, const char *fixup_host,
                     struct spool_msg *m, dkim_spool_done_fn done, void *arg);

#endif
