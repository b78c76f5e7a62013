/*
 * A small thread pool for blocking work (fsync batches, RSA signing, crypt
 * checks, Maildir writes) whose results come back on the event loop thread,
 * so the rest of the worker stays single-threaded.
 *
 * work(arg) runs on a pool thread; done(arg) then runs on the loop thread.
 * The caller owns arg throughout and frees it in done.
 */
#ifndef HONGYAN_LIB_WORKQ_H
#define HONGYAN_LIB_WORKQ_H

struct event_base;
struct workq;

struct workq *workq_new(struct event_base *base, int threads);
/* Finishes queued and running jobs, runs their done callbacks, then frees. */
void workq_free(struct workq *q);
void workq_submit(struct workq *q, void (*work)(void *arg), void (*done)(void *arg), void *arg);
/* Jobs submitted and not yet done; for shutdown and tests. */
int workq_pending(struct workq *q);

#endif
