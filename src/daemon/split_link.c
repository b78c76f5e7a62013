/*
 * The two ends of the smtpd -> delivery socket (split_link.h). The socket
 * carries wake-ups only: the spool is the hand-over, so whatever happens
 * here (a full socket, a dead peer, a message that does not decode) delays
 * mail until a queue scan and loses none.
 */
#include "daemon/split_link.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc_proto.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "qmgr/qmgr.h"

/* Hints smtpd keeps while the socket is full (about 32 KiB); a burst past it costs a rescan. */
#define SPLIT_PENDING_MAX 1024
/* Datagrams delivery reads per wake-up, so that a flood of hints cannot starve its loop. */
#define SPLIT_READ_BATCH 64

struct split_sender {
    int fd;
    struct event *writable;
    struct event *flush; /* at the end of this loop pass: the ids queued in it, together */
    char (*pending)[SPLIT_QUEUE_ID_MAX + 1]; /* a ring of queue ids */
    size_t head, count;
    int overflowed; /* hints were dropped: a HELLO follows the backlog */
};

struct split_receiver {
    int fd;
    struct event *readable;
    struct qmgr *q;
};

/* 0 when the socket took msg; -1 when it is full (EAGAIN) or gone (logged at debug). */
static int split_send(int fd, const struct buf *msg)
{
    if (send(fd, msg->data, msg->len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)msg->len)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        log_debug("split: send: %s", strerror(errno));
    return -1;
}

static int split_send_hello(int fd)
{
    struct buf msg = BUF_INIT;
    split_put_hello(&msg, (uint32_t)time(NULL));
    int rc = split_send(fd, &msg);
    buf_free(&msg);
    return rc;
}

/* Sends up to SPLIT_QUEUED_MAX_IDS of the oldest waiting ids in one datagram; -1 when full. */
static int split_send_batch(struct split_sender *s)
{
    const char *ids[SPLIT_QUEUED_MAX_IDS];
    size_t n = 0;
    while (n < SPLIT_QUEUED_MAX_IDS && n < s->count) {
        ids[n] = s->pending[(s->head + n) % SPLIT_PENDING_MAX];
        n++;
    }
    struct buf msg = BUF_INIT;
    split_put_queued(&msg, ids, n);
    int rc = split_send(s->fd, &msg);
    buf_free(&msg);
    if (rc == 0) {
        s->head = (s->head + n) % SPLIT_PENDING_MAX;
        s->count -= n;
    }
    return rc;
}

/*
 * Sends what waits, oldest first, until the socket is full again: at the
 * end of the loop pass that queued the ids (a commit round's completions
 * come in one pass: one datagram, one wake-up of delivery for all of them),
 * or when the socket has room again.
 */
static void split_sender_flush(evutil_socket_t fd, short what, void *arg)
{
    struct split_sender *s = arg;
    while (s->count > 0 && split_send_batch(s) == 0)
        ;
    if (s->count == 0 && s->overflowed && split_send_hello(s->fd) == 0)
        s->overflowed = 0;
    if (s->count == 0 && !s->overflowed)
        event_del(s->writable);
    else
        event_add(s->writable, NULL);
}

struct split_sender *split_sender_new(struct event_base *base, int fd)
{
    struct split_sender *s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->pending = xcalloc(SPLIT_PENDING_MAX, sizeof *s->pending);
    s->writable = event_new(base, fd, EV_WRITE, split_sender_flush, s);
    s->flush = event_new(base, -1, 0, split_sender_flush, s);
    /* A HELLO that does not fit now goes when the socket drains. */
    if (split_send_hello(fd) < 0) {
        s->overflowed = 1;
        event_add(s->writable, NULL);
    }
    return s;
}

void split_sender_queued(void *arg, const char *queue_id)
{
    struct split_sender *s = arg;
    if (s->count == SPLIT_PENDING_MAX) {
        s->overflowed = 1; /* the HELLO after the backlog makes delivery scan for this one */
        return;
    }
    str_copy(s->pending[(s->head + s->count) % SPLIT_PENDING_MAX], SPLIT_QUEUE_ID_MAX + 1,
             queue_id);
    s->count++;
    /* Once per pass, and not while waiting for room (the writable event sends then). */
    if (!event_pending(s->flush, EV_TIMEOUT, NULL) && !event_pending(s->writable, EV_WRITE, NULL))
        event_active(s->flush, EV_TIMEOUT, 0);
}

void split_sender_free(struct split_sender *s)
{
    if (s == NULL)
        return;
    event_free(s->writable);
    event_free(s->flush);
    free(s->pending);
    free(s);
}

static void split_receiver_read(evutil_socket_t fd, short what, void *arg)
{
    struct split_receiver *r = arg;
    for (int i = 0; i < SPLIT_READ_BATCH; i++) {
        unsigned char msg[SPLIT_MSG_MAX + 1];
        ssize_t n = recv(fd, msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        struct split_msg m;
        if (n <= 0 || (size_t)n > SPLIT_MSG_MAX || split_msg_decode(msg, (size_t)n, &m) < 0) {
            log_error("split: %s from smtpd; not listening to it until delivery restarts "
                      "(the queue scans find its mail)",
                      n < 0    ? strerror(errno)
                      : n == 0 ? "connection ended"
                               : "a message that does not decode");
            event_del(r->readable);
            return;
        }
        if (m.type == SPLIT_HELLO) {
            /* A new smtpd, or one whose hints overflowed: what they did not say, a scan finds. */
            qmgr_scan_soon(r->q);
        } else {
            for (uint32_t k = 0; k < m.u.queued.count; k++) {
                char id[SPLIT_QUEUE_ID_MAX + 1];
                memcpy(id, m.u.queued.ids[k].data, m.u.queued.ids[k].len);
                id[m.u.queued.ids[k].len] = '\0';
                qmgr_hint(r->q, id);
            }
        }
    }
}

struct split_receiver *split_receiver_new(struct event_base *base, int fd, struct qmgr *q)
{
    struct split_receiver *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    r->q = q;
    r->readable = event_new(base, fd, EV_READ | EV_PERSIST, split_receiver_read, r);
    event_add(r->readable, NULL);
    return r;
}

void split_receiver_free(struct split_receiver *r)
{
    if (r == NULL)
        return;
    event_free(r->readable);
    close(r->fd);
    free(r);
}
