/*
 * The queue manager's per-next-hop lines (qmgr_int.h): every delivery (a
 * message's recipients that share a next hop, or its Maildir recipients)
 * waits in the line of its next hop and starts when that next hop has fewer
 * than its destination concurrency limit running and fewer than
 * default_process_limit deliveries run in all. As Postfix's qmgr(8): one
 * slow or unreachable destination holds at most its own limit of slots,
 * never every slot, and a next hop that frees a slot starts its own next
 * delivery first (so a cached connection is reused), then the next hops
 * that waited only for the global limit, in the order they began to wait.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "qmgr/qmgr_int.h"

struct qdest {
    char *key;
    int limit, active;
    /* Inside qmgr_dest_pump(): a start that finishes at once must not free us. */
    int pumping;
    /* In q->dest_ready: has waiters and room of its own, waits for the global limit. */
    int in_ready;
    struct qslot *wait_head, *wait_tail;
    struct qdest *hnext, *rnext;
};

static unsigned qmgr_dest_hash(const char *key)
{
    return hash_str(key) % QMGR_DEST_BUCKETS;
}

static struct qdest *qmgr_dest_get(struct qmgr *q, const char *key)
{
    unsigned h = qmgr_dest_hash(key);
    for (struct qdest *d = q->dest_buckets[h]; d; d = d->hnext)
        if (strcmp(d->key, key) == 0)
            return d;
    struct qdest *d = xcalloc(1, sizeof *d);
    d->key = xstrdup(key);
    d->hnext = q->dest_buckets[h];
    q->dest_buckets[h] = d;
    q->ndests++;
    return d;
}

/* A next hop with nothing running and nothing waiting is forgotten: memory follows the load. */
static void qmgr_dest_forget_idle(struct qmgr *q, struct qdest *d)
{
    if (d->active || d->wait_head || d->in_ready || d->pumping)
        return;
    for (struct qdest **pp = &q->dest_buckets[qmgr_dest_hash(d->key)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    }
    q->ndests--;
    free(d->key);
    free(d);
}

/* Starts d's waiting deliveries while d and the whole queue manager have room. */
static void qmgr_dest_pump(struct qmgr *q, struct qdest *d)
{
    d->pumping = 1;
    while (d->wait_head && d->active < d->limit) {
        if (q->running >= q->process_limit) {
            if (!d->in_ready) {
                d->in_ready = 1;
                d->rnext = NULL;
                if (q->dest_ready_tail)
                    q->dest_ready_tail->rnext = d;
                else
                    q->dest_ready = d;
                q->dest_ready_tail = d;
            }
            break;
        }
        struct qslot *s = d->wait_head;
        d->wait_head = s->next;
        if (!d->wait_head)
            d->wait_tail = NULL;
        s->next = NULL;
        d->active++;
        q->running++;
        s->start(s);
    }
    d->pumping = 0;
}

void qmgr_dest_submit(struct qmgr *q, const char *key, int limit, struct qslot *s)
{
    struct qdest *d = qmgr_dest_get(q, key);
    /* The limit of the newest configuration: a reload changes it for what waits too. */
    d->limit = limit < 1 ? 1 : limit;
    s->dest = d;
    s->next = NULL;
    if (d->wait_tail)
        d->wait_tail->next = s;
    else
        d->wait_head = s;
    d->wait_tail = s;
    qmgr_dest_pump(q, d);
    qmgr_dest_forget_idle(q, d);
}

void qmgr_dest_done(struct qmgr *q, struct qslot *s)
{
    struct qdest *d = s->dest;
    s->dest = NULL;
    d->active--;
    q->running--;
    qmgr_dest_pump(q, d);
    while (q->dest_ready && q->running < q->process_limit) {
        struct qdest *w = q->dest_ready;
        q->dest_ready = w->rnext;
        if (!q->dest_ready)
            q->dest_ready_tail = NULL;
        w->in_ready = 0;
        qmgr_dest_pump(q, w);
        qmgr_dest_forget_idle(q, w);
    }
    qmgr_dest_forget_idle(q, d);
}

void qmgr_dest_cancel_waiting(struct qmgr *q)
{
    for (size_t h = 0; h < QMGR_DEST_BUCKETS; h++) {
        for (struct qdest *d = q->dest_buckets[h]; d; d = d->hnext) {
            /* Unlinked first: a cancel callback may submit or finish nothing here. */
            struct qslot *s = d->wait_head;
            d->wait_head = d->wait_tail = NULL;
            while (s) {
                struct qslot *next = s->next;
                s->next = NULL;
                s->dest = NULL;
                s->cancel(s);
                s = next;
            }
        }
    }
    q->dest_ready = q->dest_ready_tail = NULL;
    for (size_t h = 0; h < QMGR_DEST_BUCKETS; h++)
        for (struct qdest *d = q->dest_buckets[h]; d; d = d->hnext)
            d->in_ready = 0;
}

void qmgr_dest_free_all(struct qmgr *q)
{
    for (size_t h = 0; h < QMGR_DEST_BUCKETS; h++) {
        while (q->dest_buckets[h]) {
            struct qdest *d = q->dest_buckets[h];
            q->dest_buckets[h] = d->hnext;
            free(d->key);
            free(d);
        }
    }
    q->dest_ready = q->dest_ready_tail = NULL;
    q->ndests = 0;
}
