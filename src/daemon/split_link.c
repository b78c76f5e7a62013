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

#include "ipc/split_proto.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "qmgr/qmgr.h"

/* Hints smtpd keeps while the socket is full (about 32 KiB); a burst past it costs a rescan. */
#define SPLIT_PENDING_MAX 1024
/* Datagrams delivery reads per wake-up, so that a flood of hints cannot starve its loop. */
#define SPLIT_READ_BATCH 256

struct split_sender {
    int fd;
    struct event *writable;
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

static int split_send_queued(int fd, const char *queue_id)
{
    struct buf msg = BUF_INIT;
    split_put_queued(&msg, queue_id);
    int rc = split_send(fd, &msg);
    buf_free(&msg);
    return rc;
}

/* Sends what waits, oldest first, until the socket is full again. */
static void split_sender_flush(evutil_socket_t fd, short what, void *arg)
{
    struct split_sender *s = arg;
    while (s->count > 0 && split_send_queued(s->fd, s->pending[s->head]) == 0) {
        s->head = (s->head + 1) % SPLIT_PENDING_MAX;
        s->count--;
    }
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
    if (s->count == 0 && !s->overflowed && split_send_queued(s->fd, queue_id) == 0)
        return;
    if (s->count == SPLIT_PENDING_MAX) {
        s->overflowed = 1; /* the HELLO after the backlog makes delivery scan for this one */
    } else {
        str_copy(s->pending[(s->head + s->count) % SPLIT_PENDING_MAX], SPLIT_QUEUE_ID_MAX + 1,
                 queue_id);
        s->count++;
    }
    event_add(s->writable, NULL);
}

void split_sender_free(struct split_sender *s)
{
    if (s == NULL)
        return;
    event_free(s->writable);
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
            char id[SPLIT_QUEUE_ID_MAX + 1];
            memcpy(id, m.u.queued.id.data, m.u.queued.id.len);
            id[m.u.queued.id.len] = '\0';
            qmgr_hint(r->q, id);
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
