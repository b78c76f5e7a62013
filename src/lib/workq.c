/*
 * Thread pool with completions delivered through an eventfd watched by the
 * event loop; see workq.h.
 */
#include "lib/workq.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/xalloc.h"

struct workq_job {
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
    struct workq_job *next;
};

struct workq {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct workq_job *todo_head, *todo_tail;
    struct workq_job *done_head, *done_tail;
    int stopping;
    int pending;
    int nthreads;
    pthread_t *threads;
    int efd;
    struct event *ev;
};

static void workq_push(struct workq_job **head, struct workq_job **tail, struct workq_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *workq_thread(void *arg)
{
    struct workq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->todo_head == NULL && !q->stopping)
            pthread_cond_wait(&q->ready, &q->lock);
        struct workq_job *j = q->todo_head;
        if (j == NULL)
            break;
        q->todo_head = j->next;
        if (q->todo_head == NULL)
            q->todo_tail = NULL;
        pthread_mutex_unlock(&q->lock);
        j->work(j->arg);
        pthread_mutex_lock(&q->lock);
        workq_push(&q->done_head, &q->done_tail, j);
        uint64_t one = 1;
        ssize_t n = write(q->efd, &one, sizeof one);
        (void)n; /* an eventfd write only fails on counter overflow */
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void workq_run_done(struct workq *q)
{
    pthread_mutex_lock(&q->lock);
    struct workq_job *j = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (j) {
        struct workq_job *next = j->next;
        q->pending--;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

static void workq_on_event(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    ssize_t n = read(fd, &count, sizeof count);
    (void)n;
    workq_run_done(arg);
}

struct workq *workq_new(struct event_base *base, int threads)
{
    struct workq *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->ready, NULL);
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0)
        xalloc_die("eventfd failed");
    q->ev = event_new(base, q->efd, EV_READ | EV_PERSIST, workq_on_event, q);
    event_add(q->ev, NULL);
    q->nthreads = threads > 0 ? threads : 1;
    q->threads = xcalloc((size_t)q->nthreads, sizeof *q->threads);
    for (int i = 0; i < q->nthreads; i++)
        if (pthread_create(&q->threads[i], NULL, workq_thread, q) != 0)
            xalloc_die("pthread_create failed");
    return q;
}

void workq_submit(struct workq *q, void (*work)(void *), void (*done)(void *), void *arg)
{
    struct workq_job *j = xmalloc(sizeof *j);
    j->work = work;
    j->done = done;
    j->arg = arg;
    q->pending++;
    pthread_mutex_lock(&q->lock);
    workq_push(&q->todo_head, &q->todo_tail, j);
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

int workq_pending(struct workq *q)
{
    return q->pending;
}

void workq_free(struct workq *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    workq_run_done(q);
    event_free(q->ev);
    close(q->efd);
    pthread_cond_destroy(&q->ready);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q);
}
