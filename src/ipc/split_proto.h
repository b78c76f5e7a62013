/*
 * The smtpd → delivery protocol of the process split (docs/architecture.md,
 * "Process split"): what the network-facing smtpd may tell the delivery
 * process, which holds the relay passwords. Only wake-ups: the spool stays
 * the one hand-over point, so a message lost here delays mail until the next
 * queue scan and loses none, and nothing smtpd sends can make delivery open,
 * read or send anything it would not have found in the spool on its own.
 *
 * Framing as the keeper's (keeper_proto.h, whose field codec it uses): one
 * message per SOCK_SEQPACKET datagram, the 8-byte header (id, type, status),
 * then the fields; host byte order (one binary at both ends). A message that
 * does not decode closes the connection and is logged; the receiver keeps
 * running and rescans the queue.
 *
 * Messages (after the header; id 0, status 0):
 *   HELLO   u32 version (SPLIT_PROTO_VERSION), u32 sender's start time
 *           (seconds): first message each way after a start, so that each
 *           side sees a restarted peer (delivery then rescans at once)
 *   QUEUED  bytes queue id: sent right after the group commit that made
 *           the message durable; delivery checks the id against the spool
 *           (spool_valid_id, then active/) before acting on it
 *
 * Ownership: decoded structs point into the message buffer they came from.
 */
#ifndef HONGYAN_IPC_SPLIT_PROTO_H
#define HONGYAN_IPC_SPLIT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/keeper_proto.h"
#include "lib/buf.h"

#define SPLIT_PROTO_VERSION 1
/* Largest message: a header and a queue id, with room to spare. */
#define SPLIT_MSG_MAX 256
/* A queue id's longest (queue/envelope.h's QUEUE_ID_MAX less its NUL). */
#define SPLIT_QUEUE_ID_MAX 31

enum split_type {
    SPLIT_HELLO = 1,
    SPLIT_QUEUED = 2,
};

struct split_msg {
    enum split_type type;
    union {
        struct {
            uint32_t version;
            uint32_t started;
        } hello;
        struct {
            struct keeper_bytes id; /* 1..SPLIT_QUEUE_ID_MAX letters and digits */
        } queued;
    } u;
};

/* Appends one whole message to msg (which the caller empties and frees). */
void split_put_hello(struct buf *msg, uint32_t started);
/* queue_id: a spool id (letters and digits, at most SPLIT_QUEUE_ID_MAX). */
void split_put_queued(struct buf *msg, const char *queue_id);

/*
 * Decodes one datagram: a known type, id and status 0, every field within
 * its cap, a queue id of letters and digits only, nothing left over. HELLO
 * of another version is refused too. 0, or -1 (the receiver then closes
 * the connection).
 */
int split_msg_decode(const void *msg, size_t len, struct split_msg *out);

#endif
