/*
 * The two ends of the smtpd -> delivery socket of the process split
 * (ipc/ipc_proto.h; docs/architecture.md, "Process split"): smtpd's
 * sender, which never blocks a session on it, and delivery's receiver,
 * which hands each hint to the queue manager to check against the spool.
 */
#ifndef HONGYAN_DAEMON_SPLIT_LINK_H
#define HONGYAN_DAEMON_SPLIT_LINK_H

struct event_base;
struct qmgr;
struct split_sender;
struct split_receiver;

/*
 * smtpd's end (fd, non-blocking sends, kept by the caller's supervisor):
 * sends HELLO. Hints are gathered for the rest of the loop pass and sent
 * together (a commit round's ids in one datagram). Hints the socket cannot
 * take now (the kernel queues only a few datagrams) wait in a bounded
 * queue and go out when it is writable;
 * past that bound they are dropped and a HELLO after the backlog makes
 * delivery scan its queue, so no message waits for the periodic scan.
 * Free with split_sender_free (closes nothing).
 */
struct split_sender *split_sender_new(struct event_base *base, int fd);
/* srv->queued (server/server.h): arg is the split_sender. */
void split_sender_queued(void *arg, const char *queue_id);
void split_sender_free(struct split_sender *s);

/*
 * delivery's end: every HELLO makes q scan its queue soon, every QUEUED is
 * qmgr_hint. A datagram that does not decode ends the conversation
 * (logged): delivery goes on with its queue scans alone until restarted.
 * Free with split_receiver_free (closes fd).
 */
struct split_receiver *split_receiver_new(struct event_base *base, int fd, struct qmgr *q);
void split_receiver_free(struct split_receiver *r);

#endif
