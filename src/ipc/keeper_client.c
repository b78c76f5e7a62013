/*
 * The worker's end of the keeper socketpair (keeper_client.h). Requests
 * from any thread go out at once (a SEQPACKET send is one message, never
 * interleaved); one waiting thread at a time reads replies and hands each to
 * the caller whose id it carries, the others sleep on a condition variable,
 * so a slow password hash does not hold up a TLS signature behind it.
 */
#include "ipc/keeper_client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* Requests in flight at once: the loop, the work queues and the hash threads, with room. */
#define KEEPER_CLIENT_SLOTS 64

struct keeper_slot {
    int used, done;
    uint32_t id;
    uint16_t status;
    struct buf body;
};

struct keeper_client {
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reading; /* a thread is reading replies for everyone */
    int dead;    /* the keeper shut this connection: every call fails at once */
    uint32_t next_id;
    void (*on_closed)(void); /* called once when the keeper shuts the connection */
    uint8_t *rbuf;           /* used by the reading thread only */
    struct keeper_slot slots[KEEPER_CLIENT_SLOTS];
};

static struct keeper_client *keeper_client_the;

struct keeper_client *keeper_client_default(void)
{
    return keeper_client_the;
}

void keeper_client_set_default(struct keeper_client *kc)
{
    keeper_client_the = kc;
}

struct keeper_client *keeper_client_new(int fd)
{
    struct keeper_client *kc = xcalloc(1, sizeof *kc);
    kc->fd = fd;
    pthread_mutex_init(&kc->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&kc->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Ids start at random: a reply to a request of a previous worker on this socket matches none.
     */
    random_bytes(&kc->next_id, sizeof kc->next_id);
    kc->rbuf = xmalloc(KEEPER_MSG_MAX + 1);
    return kc;
}

void keeper_client_on_closed(struct keeper_client *kc, void (*fn)(void))
{
    kc->on_closed = fn;
}

void keeper_client_free(struct keeper_client *kc)
{
    if (kc == NULL)
        return;
    close(kc->fd);
    for (int i = 0; i < KEEPER_CLIENT_SLOTS; i++)
        buf_free(&kc->slots[i].body);
    pthread_cond_destroy(&kc->cv);
    pthread_mutex_destroy(&kc->mu);
    free(kc->rbuf);
    free(kc);
}

static int64_t keeper_client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keeper_client_wait(struct keeper_client *kc, int64_t deadline_ms)
{
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(&kc->cv, &kc->mu, &ts);
}

/* Called with mu held: the connection is gone (the keeper shut it), once. */
static void keeper_client_lost(struct keeper_client *kc, const char *why)
{
    if (kc->dead)
        return;
    kc->dead = 1;
    log_error("keeper connection closed (%s): TLS signatures, DKIM signing and AUTH answer "
              "temporary failures until the worker restarts",
              why);
    if (kc->on_closed)
        kc->on_closed();
}

/* Called with mu held and reading set; reads one reply (or waits up to ms) and files it. */
static void keeper_client_read_one(struct keeper_client *kc, int ms)
{
    pthread_mutex_unlock(&kc->mu);
    struct pollfd pfd = {kc->fd, POLLIN, 0};
    ssize_t n = -1;
    int closed = 0, e = 0;
    if (poll(&pfd, 1, ms) > 0) {
        n = recv(kc->fd, kc->rbuf, KEEPER_MSG_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
        e = errno;
        closed = n == 0 || (n < 0 && e != EAGAIN && e != EINTR);
    }
    pthread_mutex_lock(&kc->mu);
    if (closed)
        keeper_client_lost(kc, n == 0 ? "end of file" : strerror(e));
    struct keeper_reader r;
    struct keeper_hdr h;
    if (n > 0 && (size_t)n <= KEEPER_MSG_MAX) {
        keeper_reader_init(&r, kc->rbuf, (size_t)n);
        if (keeper_get_hdr(&r, &h) == 0) {
            /* A reply nobody waits for (its caller timed out) is dropped. */
            for (int i = 0; i < KEEPER_CLIENT_SLOTS; i++) {
                struct keeper_slot *s = &kc->slots[i];
                if (s->used && !s->done && s->id == h.id) {
                    buf_reset(&s->body);
                    buf_append(&s->body, r.p, r.left);
                    s->status = h.status;
                    s->done = 1;
                    break;
                }
            }
        }
    }
    kc->reading = 0;
    pthread_cond_broadcast(&kc->cv);
}

enum keeper_status keeper_client_call(struct keeper_client *kc, struct buf *req, int timeout_ms,
                                      struct buf *body)
{
    if (kc == NULL || req->len < KEEPER_HDR_LEN || req->len > KEEPER_MSG_MAX)
        return KEEPER_ST_TEMPFAIL;
    int64_t deadline = keeper_client_now_ms() + timeout_ms;
    pthread_mutex_lock(&kc->mu);
    struct keeper_slot *slot = NULL;
    while (!kc->dead && slot == NULL) {
        for (int i = 0; i < KEEPER_CLIENT_SLOTS && slot == NULL; i++)
            if (!kc->slots[i].used)
                slot = &kc->slots[i];
        if (slot == NULL) {
            if (keeper_client_now_ms() >= deadline)
                break;
            keeper_client_wait(kc, deadline);
        }
    }
    if (slot == NULL) {
        pthread_mutex_unlock(&kc->mu);
        return KEEPER_ST_TEMPFAIL;
    }
    slot->used = 1;
    slot->done = 0;
    slot->id = ++kc->next_id;
    memcpy(req->data, &slot->id, 4);
    pthread_mutex_unlock(&kc->mu);

    ssize_t sent = send(kc->fd, req->data, req->len, MSG_NOSIGNAL);
    int send_errno = errno;

    pthread_mutex_lock(&kc->mu);
    if (sent != (ssize_t)req->len)
        keeper_client_lost(kc, sent < 0 ? strerror(send_errno) : "short send");
    while (!slot->done && !kc->dead) {
        int64_t left = deadline - keeper_client_now_ms();
        if (left <= 0)
            break;
        if (!kc->reading) {
            kc->reading = 1;
            keeper_client_read_one(kc, (int)left);
        } else {
            keeper_client_wait(kc, deadline);
        }
    }
    enum keeper_status st = KEEPER_ST_TEMPFAIL;
    if (slot->done) {
        st = (enum keeper_status)slot->status;
        if (body)
            buf_append(body, slot->body.data ? slot->body.data : "", slot->body.len);
    } else if (!kc->dead) {
        log_warning("keeper: no answer within %d ms; a temporary failure", timeout_ms);
    }
    if (slot->body.data)
        explicit_bzero(slot->body.data, slot->body.len);
    buf_reset(&slot->body);
    slot->used = 0;
    pthread_cond_broadcast(&kc->cv);
    pthread_mutex_unlock(&kc->mu);
    return st;
}

/* The signature field of a TLS_SIGN or DKIM_SIGN reply, appended to sig. */
static enum keeper_status keeper_client_sig(enum keeper_status st, const struct buf *body,
                                            struct buf *sig)
{
    if (st != KEEPER_ST_OK)
        return st;
    struct keeper_reader r;
    keeper_reader_init(&r, body->data ? body->data : "", body->len);
    struct keeper_bytes b = keeper_get_bytes(&r, KEEPER_SIG_MAX);
    if (keeper_reader_done(&r) < 0 || b.len == 0)
        return KEEPER_ST_TEMPFAIL;
    buf_append(sig, b.data, b.len);
    return KEEPER_ST_OK;
}

enum keeper_status keeper_client_tls_sign(struct keeper_client *kc, enum keeper_tls_op op,
                                          const uint8_t keyid[KEEPER_KEYID_LEN], const uint8_t *in,
                                          size_t inlen, struct buf *sig)
{
    if (inlen == 0 || inlen > KEEPER_SIGN_IN_MAX)
        return KEEPER_ST_UNKNOWN_KEY;
    struct buf req = BUF_INIT, body = BUF_INIT;
    keeper_put_hdr(&req, 0, KEEPER_TLS_SIGN, 0);
    keeper_put_u8(&req, (uint8_t)op);
    keeper_put_bytes(&req, keyid, KEEPER_KEYID_LEN);
    keeper_put_bytes(&req, in, inlen);
    enum keeper_status st = keeper_client_call(kc, &req, KEEPER_TIMEOUT_TLS_MS, &body);
    st = keeper_client_sig(st, &body, sig);
    buf_free(&req);
    buf_free(&body);
    return st;
}

enum keeper_status keeper_client_dkim_sign(struct keeper_client *kc, const char *domain,
                                           const char *selector,
                                           const uint8_t digest[KEEPER_DIGEST_LEN], struct buf *sig)
{
    struct buf req = BUF_INIT, body = BUF_INIT;
    keeper_put_hdr(&req, 0, KEEPER_DKIM_SIGN, 0);
    keeper_put_str(&req, domain);
    keeper_put_str(&req, selector);
    keeper_put_bytes(&req, digest, KEEPER_DIGEST_LEN);
    enum keeper_status st = keeper_client_call(kc, &req, KEEPER_TIMEOUT_WORK_MS, &body);
    st = keeper_client_sig(st, &body, sig);
    buf_free(&req);
    buf_free(&body);
    return st;
}

enum keeper_status keeper_client_dkim_keys(struct keeper_client *kc, struct buf *body)
{
    struct buf req = BUF_INIT;
    keeper_put_hdr(&req, 0, KEEPER_DKIM_KEYS, 0);
    enum keeper_status st = keeper_client_call(kc, &req, KEEPER_TIMEOUT_WORK_MS, body);
    buf_free(&req);
    return st;
}

enum keeper_status keeper_client_password(struct keeper_client *kc, const char *user,
                                          const char *pass)
{
    size_t ul = strlen(user), pl = strlen(pass);
    if (ul == 0 || ul > KEEPER_NAME_MAX || pl > KEEPER_PASS_MAX)
        return KEEPER_ST_NO;
    struct buf req = BUF_INIT;
    keeper_put_hdr(&req, 0, KEEPER_PASSWORD, 0);
    keeper_put_bytes(&req, user, ul);
    keeper_put_bytes(&req, pass, pl);
    enum keeper_status st = keeper_client_call(kc, &req, KEEPER_TIMEOUT_WORK_MS, NULL);
    explicit_bzero(req.data, req.len);
    buf_free(&req);
    return st == KEEPER_ST_OK || st == KEEPER_ST_NO ? st : KEEPER_ST_TEMPFAIL;
}
