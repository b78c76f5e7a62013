/*
 * `hongyan keeper`: the key-holding process (keeper.h). One thread reads
 * every client socketpair and does the signatures (a TLS or DKIM signature
 * is a millisecond or two); password hashes, which cost what the hash
 * method makes them cost, go to two threads of their own, so a flood of
 * AUTH attempts waits behind itself and not in front of a TLS handshake.
 * A request that does not decode, or that its socketpair may not make,
 * shuts that connection down: the client is broken or hostile.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "config/config.h"
#include "ipc/ipc_proto.h"
#include "keeper/keeper.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

#define KEEPER_CLIENTS_MAX 8
#define KEEPER_HASH_THREADS 2
/* Password checks waiting at once; past that a check is answered "try later". */
#define KEEPER_HASH_QUEUE 128

struct keeper_conn {
    int fd;
    uint32_t caps; /* KEEPER_CAP bits this socketpair may ask */
    int open;
};

struct keeper_hash_job {
    int fd;
    uint32_t id;
    char user[KEEPER_NAME_MAX + 1];
    char pass[KEEPER_PASS_MAX + 1];
};

struct keeper {
    struct keeper_state *state;
    struct keeper_conn conns[KEEPER_CLIENTS_MAX];
    int nconns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct keeper_hash_job *queue; /* ring */
    size_t head, count;
};

static volatile sig_atomic_t keeper_got_term, keeper_got_hup;

static void keeper_on_signal(int sig)
{
    if (sig == SIGHUP)
        keeper_got_hup = 1;
    else
        keeper_got_term = 1;
}

/*
 * Sends a reply without waiting: a client that does not read its replies
 * (it timed out on them, or is hostile) loses them rather than stall the
 * keeper for everyone.
 */
static void keeper_reply(int fd, uint32_t id, uint16_t type, int status, const struct buf *body)
{
    struct buf msg = BUF_INIT;
    keeper_put_hdr(&msg, id, (enum keeper_type)type, (uint16_t)status);
    if (status == KEEPER_ST_OK && body && body->len)
        buf_append(&msg, body->data, body->len);
    if (send(fd, msg.data, msg.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
        log_debug("keeper: reply: %s", strerror(errno));
    explicit_bzero(msg.data, msg.len);
    buf_free(&msg);
}

static void *keeper_hash_thread(void *arg)
{
    struct keeper *k = arg;
    struct keeper_hash_job job;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        while (k->count == 0)
            pthread_cond_wait(&k->cv, &k->mu);
        job = k->queue[k->head];
        explicit_bzero(&k->queue[k->head], sizeof job);
        k->head = (k->head + 1) % KEEPER_HASH_QUEUE;
        k->count--;
        pthread_mutex_unlock(&k->mu);
        int st = keeper_state_password(k->state, job.user, job.pass);
        explicit_bzero(job.pass, sizeof job.pass);
        keeper_reply(job.fd, job.id, KEEPER_PASSWORD, st, NULL);
    }
    return NULL;
}

static void keeper_hash_submit(struct keeper *k, int fd, const struct keeper_request *rq)
{
    pthread_mutex_lock(&k->mu);
    if (k->count == KEEPER_HASH_QUEUE) {
        pthread_mutex_unlock(&k->mu);
        keeper_reply(fd, rq->hdr.id, KEEPER_PASSWORD, KEEPER_ST_TEMPFAIL, NULL);
        return;
    }
    struct keeper_hash_job *job = &k->queue[(k->head + k->count) % KEEPER_HASH_QUEUE];
    job->fd = fd;
    job->id = rq->hdr.id;
    memcpy(job->user, rq->u.password.user.data, rq->u.password.user.len);
    job->user[rq->u.password.user.len] = '\0';
    if (rq->u.password.pass.len)
        memcpy(job->pass, rq->u.password.pass.data, rq->u.password.pass.len);
    job->pass[rq->u.password.pass.len] = '\0';
    k->count++;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* A name field as a C string (decoded fields are NUL-free and within KEEPER_NAME_MAX). */
static void keeper_name(struct keeper_bytes b, char out[KEEPER_NAME_MAX + 1])
{
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
}

static void keeper_serve(struct keeper *k, const struct keeper_request *rq, int fd)
{
    struct buf body = BUF_INIT, sig = BUF_INIT;
    int st = KEEPER_ST_TEMPFAIL;
    char dom[KEEPER_NAME_MAX + 1], sel[KEEPER_NAME_MAX + 1];
    switch (rq->hdr.type) {
    case KEEPER_TLS_SIGN:
        st = keeper_state_tls_sign(k->state, rq->u.tls_sign.op, rq->u.tls_sign.keyid.data,
                                   rq->u.tls_sign.input.data, rq->u.tls_sign.input.len, &sig);
        break;
    case KEEPER_DKIM_SIGN:
        keeper_name(rq->u.dkim_sign.domain, dom);
        keeper_name(rq->u.dkim_sign.selector, sel);
        st = keeper_state_dkim_sign(k->state, dom, sel, rq->u.dkim_sign.digest.data, &sig);
        break;
    case KEEPER_DKIM_KEYS:
        keeper_state_dkim_keys(k->state, &body);
        st = KEEPER_ST_OK;
        break;
    case KEEPER_PASSWORD:
        keeper_hash_submit(k, fd, rq);
        return;
    }
    if (st == KEEPER_ST_OK && sig.len)
        keeper_put_bytes(&body, sig.data, sig.len);
    keeper_reply(fd, rq->hdr.id, rq->hdr.type, st, &body);
    buf_free(&body);
    buf_free(&sig);
}

/* Reads and answers what one connection has waiting; shuts it down on a bad request. */
static void keeper_read(struct keeper *k, struct keeper_conn *c, uint8_t *msg)
{
    for (int i = 0; i < 64; i++) { /* a bounded batch, then the others get their turn */
        ssize_t n = recv(c->fd, msg, KEEPER_MSG_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            /* The supervisor holds the other end too: this only happens when it lets go. */
            log_info("keeper: client fd %d closed", c->fd);
            c->open = 0;
            return;
        }
        struct keeper_request rq;
        const char *bad = NULL;
        if ((size_t)n > KEEPER_MSG_MAX || keeper_request_decode(msg, (size_t)n, &rq) < 0)
            bad = "malformed request";
        else if (!(c->caps & KEEPER_CAP(rq.hdr.type)))
            bad = "request type this client may not make";
        if (bad) {
            log_error("keeper: %s on client fd %d (%zd bytes); closing that connection", bad, c->fd,
                      n);
            shutdown(c->fd, SHUT_RDWR);
            c->open = 0;
            return;
        }
        keeper_serve(k, &rq, c->fd);
        explicit_bzero(msg, (size_t)n);
    }
}

/* "FD,CAPS": a socketpair end and what its client may ask. */
static int keeper_parse_client(const char *spec, struct keeper_conn *c)
{
    const char *comma = strchr(spec, ',');
    char num[32];
    long fd, caps;
    if (comma == NULL || (size_t)(comma - spec) >= sizeof num)
        return -1;
    memcpy(num, spec, (size_t)(comma - spec));
    num[comma - spec] = '\0';
    if (str_to_long(num, 3, INT_MAX, &fd) < 0 ||
        str_to_long(comma + 1, 1, KEEPER_CAPS_ALL, &caps) < 0)
        return -1;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET ||
        fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    c->fd = (int)fd;
    c->caps = (uint32_t)caps;
    c->open = 1;
    return 0;
}

int keeper_main(int argc, char **argv)
{
    log_set_service("keeper");
    static struct keeper k;
    long parent = -1, log_fd = -1, ready_fd = -1, snapshot_fd = -1;
    const char *config_path = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = val == NULL;
        if (bad)
            ;
        else if (strcmp(opt, "--parent") == 0)
            bad = str_to_long(val, 1, INT_MAX, &parent) < 0;
        else if (strcmp(opt, "--log-fd") == 0)
            bad = str_to_long(val, 3, INT_MAX, &log_fd) < 0;
        else if (strcmp(opt, "--ready-fd") == 0)
            bad = str_to_long(val, 3, INT_MAX, &ready_fd) < 0;
        else if (strcmp(opt, "--config") == 0)
            config_path = val;
        else if (strcmp(opt, "--config-fd") == 0)
            bad = str_to_long(val, 3, INT_MAX, &snapshot_fd) < 0;
        else if (strcmp(opt, "--client") == 0 && k.nconns < KEEPER_CLIENTS_MAX)
            bad = keeper_parse_client(val, &k.conns[k.nconns++]) < 0;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "hongyan keeper: started by the supervisor only (bad argument %s)\n",
                    opt);
            return EX_USAGE;
        }
    }
    int deathsig = 0;
    if (parent < 0 || k.nconns == 0 || prctl(PR_GET_PDEATHSIG, &deathsig) < 0 ||
        deathsig != SIGTERM || getppid() != parent) {
        fprintf(stderr, "hongyan keeper: started by the supervisor only\n");
        return EX_USAGE;
    }
    prctl(PR_SET_NAME, "hongyan-keeper");
    if (log_fd >= 0) {
        fcntl((int)log_fd, F_SETFD, FD_CLOEXEC);
        log_adopt_fd((int)log_fd);
    }
    /* Reloads re-read main.cf inside the sandbox, which has no socket for getifaddrs. */
    config_freeze_host_defaults();
    /* As the worker: a main.cf broken since the supervisor read it falls back to its snapshot. */
    struct config *cfg = config_load_or_snapshot(config_path, (int)snapshot_fd);
    if (snapshot_fd >= 0)
        close((int)snapshot_fd);
    if (cfg == NULL)
        return EX_CONFIG;
    struct buf err = BUF_INIT;
    k.state = keeper_state_new(config_path, cfg);
    log_set_hostname(config_get(keeper_state_config(k.state), "myhostname"));
    struct sigaction sa = {.sa_handler = keeper_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    k.queue = xcalloc(KEEPER_HASH_QUEUE, sizeof *k.queue);
    for (int i = 0; i < KEEPER_HASH_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, keeper_hash_thread, &k) != 0) {
            log_error("keeper: cannot start a hash thread");
            return EX_OSERR;
        }
        pthread_detach(t);
    }
    if (keeper_sandbox_enter(&err) < 0) {
        log_error("keeper: cannot enter its sandbox: %s", buf_cstr(&err));
        return EX_OSERR;
    }
    buf_free(&err);
    if (ready_fd >= 0) {
        /* The supervisor starts the worker once the keys (and the self-signed pair) are here. */
        if (write((int)ready_fd, "k", 1) < 0)
            log_warning("keeper: readiness pipe: %s", strerror(errno));
        close((int)ready_fd);
    }
    log_info("keeper started: %d client connection(s)", k.nconns);

    uint8_t *msg = xmalloc(KEEPER_MSG_MAX + 1);
    while (!keeper_got_term) {
        if (keeper_got_hup) {
            keeper_got_hup = 0;
            keeper_state_reload(k.state, 0);
        }
        struct pollfd pfd[KEEPER_CLIENTS_MAX];
        int map[KEEPER_CLIENTS_MAX], n = 0;
        for (int i = 0; i < k.nconns; i++)
            if (k.conns[i].open) {
                pfd[n] = (struct pollfd){k.conns[i].fd, POLLIN, 0};
                map[n++] = i;
            }
        if (n == 0) {
            /*
             * Nobody left to serve (their connections shut): wait for the
             * supervisor's SIGTERM rather than exit and be restarted on them.
             */
            poll(NULL, 0, -1);
            continue;
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("keeper: poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            if (pfd[i].revents)
                keeper_read(&k, &k.conns[map[i]], msg);
    }
    /* Hash threads may be mid-check; the process ends under them, nothing is held on disk. */
    log_info("keeper stopped");
    _exit(0);
}
