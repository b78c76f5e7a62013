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
 *   QUEUED  u32 count (1..SPLIT_QUEUED_MAX_IDS), then count times bytes
 *           queue id: sent right after the group commit that made the
 *           messages durable, the ids of one loop pass together (one
 *           datagram and one wake-up of delivery for a whole commit
 *           round); delivery checks each id against the spool
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

/* 2: QUEUED carries several ids (1 had one). */
#define SPLIT_PROTO_VERSION 2
/* Queue ids one QUEUED carries at most. */
#define SPLIT_QUEUED_MAX_IDS 32
/* Largest message: a header, a count and SPLIT_QUEUED_MAX_IDS ids, with room to spare. */
#define SPLIT_MSG_MAX 1536
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
            uint32_t count;                                /* 1..SPLIT_QUEUED_MAX_IDS */
            struct keeper_bytes ids[SPLIT_QUEUED_MAX_IDS]; /* 1..SPLIT_QUEUE_ID_MAX letters and
                                                              digits each */
        } queued;
    } u;
};

/* Appends one whole message to msg (which the caller empties and frees). */
void split_put_hello(struct buf *msg, uint32_t started);
/* n (1..SPLIT_QUEUED_MAX_IDS) spool ids (letters and digits, at most SPLIT_QUEUE_ID_MAX each). */
void split_put_queued(struct buf *msg, const char *const *ids, size_t n);

/*
 * Decodes one datagram: a known type, id and status 0, every field within
 * its cap, a count within its bounds, queue ids of letters and digits
 * only, nothing left over. HELLO
 * of another version is refused too. 0, or -1 (the receiver then closes
 * the connection).
 */
int split_msg_decode(const void *msg, size_t len, struct split_msg *out);

#endif
