/*
 * What only the delivery process runs of the worker loop (worker.h): the
 * queue manager (recovery, scan, pickup, flush FIFO, the agents it
 * starts), its orderly stop on SIGTERM, and the receiver of smtpd's
 * wake-ups (split_link.c).
 */
#include "daemon/split_link.h"
#include "daemon/worker.h"
#include "qmgr/qmgr.h"

static void worker_qmgr_stopped(void *arg)
{
    struct worker *w = arg;
    w->qmgr_stopped = 1;
}

/* Delivery: the queue manager (recovery, scan, pickup, flush FIFO) and smtpd's hints. */
void worker_delivery_start(struct worker *w)
{
    w->srv.qmgr = qmgr_new(&w->srv);
    if (w->split_fd >= 0)
        w->split_in = split_receiver_new(w->srv.base, w->split_fd, w->srv.qmgr);
}

void worker_delivery_drain(struct worker *w)
{
    if (w->srv.qmgr)
        qmgr_stop(w->srv.qmgr, worker_qmgr_stopped, w);
}

void worker_delivery_stop(struct worker *w)
{
    split_receiver_free(w->split_in);
}
