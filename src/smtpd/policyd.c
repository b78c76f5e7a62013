/*
 * Policy delegation client; see policyd.h. One pool of idle connections
 * per process (smtpd's loop); a connection is taken by one request at
 * a time and handed back after a complete reply.
 */
#include "smtpd/policyd.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

struct policyd_conn {
    char *endpoint;
    struct bufferevent *bev;
    time_t created, last_used;
    long long requests;
    struct policyd_conn *next; /* in the idle pool */
};

struct policyd_req {
    struct event_base *base;
    char *endpoint;
    char *request;
    struct policyd_settings set;
    policyd_cb cb;
    void *arg;
    struct policyd_conn *conn;
    long long tries;
    struct event *timer; /* retry delay, or the deferred failure callback */
    int fail_now;        /* the timer reports failure instead of retrying */
};

static struct policyd_conn *policyd_idle;

int policyd_endpoint_valid(const char *endpoint)
{
    if (str_prefix_ci(endpoint, "unix:"))
        return endpoint[5] == '/' &&
               strlen(endpoint + 5) < sizeof(((struct sockaddr_un *)0)->sun_path);
    if (!str_prefix_ci(endpoint, "inet:"))
        return 0;
    const char *colon = strrchr(endpoint + 5, ':');
    return colon && colon > endpoint + 5 && colon[1] &&
           strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

int policyd_reply_parse(const char *data, size_t len, struct buf *action, size_t *used)
{
    size_t pos = 0;
    int have_action = 0;
    buf_reset(action);
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t llen = (size_t)(nl - (data + pos));
        const char *line = data + pos;
        pos += llen + 1;
        if (llen && line[llen - 1] == '\r')
            llen--;
        if (llen == 0) {
            if (!have_action)
                return -1;
            *used = pos;
            return 1;
        }
        const char *eq = memchr(line, '=', llen);
        if (!eq || eq == line || memchr(line, '\0', llen))
            return -1;
        if ((size_t)(eq - line) == 6 && memcmp(line, "action", 6) == 0) {
            buf_reset(action);
            buf_append(action, eq + 1, llen - 7);
            have_action = 1;
        }
    }
    return len > POLICYD_REPLY_MAX ? -1 : 0;
}

static void policyd_conn_free(struct policyd_conn *c)
{
    if (!c)
        return;
    if (c->bev)
        bufferevent_free(c->bev);
    free(c->endpoint);
    free(c);
}

void policyd_pool_clear(void)
{
    while (policyd_idle) {
        struct policyd_conn *c = policyd_idle;
        policyd_idle = c->next;
        policyd_conn_free(c);
    }
}

/* The server closed an idle connection (or spoke out of turn): forget it. */
static void policyd_idle_event(struct bufferevent *bev, short what, void *arg)
{
    struct policyd_conn *c = arg;
    for (struct policyd_conn **pp = &policyd_idle; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    policyd_conn_free(c);
}

static void policyd_idle_read(struct bufferevent *bev, void *arg)
{
    policyd_idle_event(bev, BEV_EVENT_ERROR, arg);
}

static struct policyd_conn *policyd_take(const char *endpoint, const struct policyd_settings *set)
{
    time_t now = time(NULL);
    for (struct policyd_conn **pp = &policyd_idle; *pp;) {
        struct policyd_conn *c = *pp;
        int stale = now - c->last_used > set->max_idle || now - c->created > set->max_ttl;
        if (stale) {
            *pp = c->next;
            policyd_conn_free(c);
            continue;
        }
        if (strcmp(c->endpoint, endpoint) == 0) {
            *pp = c->next;
            c->next = NULL;
            return c;
        }
        pp = &c->next;
    }
    return NULL;
}

static void policyd_give_back(struct policyd_req *r)
{
    struct policyd_conn *c = r->conn;
    r->conn = NULL;
    c->requests++;
    c->last_used = time(NULL);
    if ((r->set.request_limit > 0 && c->requests >= r->set.request_limit) ||
        c->last_used - c->created > r->set.max_ttl) {
        policyd_conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, policyd_idle_read, NULL, policyd_idle_event, c);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_enable(c->bev, EV_READ);
    c->next = policyd_idle;
    policyd_idle = c;
}

static struct policyd_conn *policyd_connect(struct event_base *base, const char *endpoint)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    memset(&ss, 0, sizeof ss);
    if (str_prefix_ci(endpoint, "unix:")) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        /* A cut path would name another socket: refuse it as unreachable. */
        if (str_copy(un->sun_path, sizeof un->sun_path, endpoint + 5) >= sizeof un->sun_path) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        sl = sizeof *un;
    } else {
        char host[256];
        const char *hp = endpoint + 5, *colon = strrchr(hp, ':');
        size_t hl = (size_t)(colon - hp);
        if (hl >= sizeof host)
            return NULL;
        memcpy(host, hp, hl);
        host[hl] = '\0';
        char *h = host;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h[hl - 1] = '\0';
            h++;
        }
        /* Policy servers are local or named in /etc/hosts: the lookup does not wait on DNS. */
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(h, colon + 1, &hints, &ai) != 0 || !ai)
            return NULL;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        sl = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&ss, (int)sl) < 0) {
        bufferevent_free(bev);
        return NULL;
    }
    struct policyd_conn *c = xcalloc(1, sizeof *c);
    c->endpoint = xstrdup(endpoint);
    c->bev = bev;
    c->created = c->last_used = time(NULL);
    return c;
}

static void policyd_try(struct policyd_req *r);

/* This attempt failed: drop the connection, then retry after the delay or give up. */
static void policyd_attempt_failed(struct policyd_req *r, const char *why)
{
    log_warning("policy server %s: %s", r->endpoint, why);
    policyd_conn_free(r->conn);
    r->conn = NULL;
    r->fail_now = r->tries >= r->set.try_limit;
    struct timeval tv = {r->fail_now ? 0 : (time_t)r->set.retry_delay, 0};
    evtimer_add(r->timer, &tv);
}

static void policyd_done(struct policyd_req *r, const char *action)
{
    policyd_cb cb = r->cb;
    void *arg = r->arg;
    policyd_conn_free(r->conn);
    event_free(r->timer);
    free(r->endpoint);
    free(r->request);
    free(r);
    cb(arg, action);
}

static void policyd_read(struct bufferevent *bev, void *arg)
{
    struct policyd_req *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    size_t take = len > POLICYD_REPLY_MAX + 1 ? POLICYD_REPLY_MAX + 1 : len;
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
    struct buf action = BUF_INIT;
    size_t used = 0;
    int rc = policyd_reply_parse(data, take, &action, &used);
    if (rc == 0 && len <= POLICYD_REPLY_MAX) {
        buf_free(&action);
        return; /* more to come, within the timeout */
    }
    if (rc <= 0 || used != len) {
        buf_free(&action);
        /* Garbage, too long, or more than one reply: the connection is not in step. */
        policyd_attempt_failed(r, rc <= 0 ? "malformed or over-long reply" : "unexpected data");
        return;
    }
    evbuffer_drain(in, used);
    policyd_give_back(r);
    char *act = buf_steal(&action);
    policyd_done(r, act);
    free(act);
}

static void policyd_event(struct bufferevent *bev, short what, void *arg)
{
    struct policyd_req *r = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    policyd_attempt_failed(r, (what & BEV_EVENT_TIMEOUT) ? "timeout"
                              : (what & BEV_EVENT_EOF)   ? "connection closed"
                                                         : "connection error");
}

static void policyd_timer(evutil_socket_t fd, short what, void *arg)
{
    struct policyd_req *r = arg;
    if (r->fail_now)
        policyd_done(r, NULL);
    else
        policyd_try(r);
}

static void policyd_try(struct policyd_req *r)
{
    r->tries++;
    r->conn = policyd_take(r->endpoint, &r->set);
    if (!r->conn)
        r->conn = policyd_connect(r->base, r->endpoint);
    if (!r->conn) {
        policyd_attempt_failed(r, strerror(errno ? errno : ECONNREFUSED));
        return;
    }
    struct bufferevent *bev = r->conn->bev;
    bufferevent_setcb(bev, policyd_read, NULL, policyd_event, r);
    struct timeval tv = {(time_t)r->set.timeout, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    evbuffer_add_printf(bufferevent_get_output(bev), "%s\n", r->request);
}

struct policyd_req *policyd_query(struct event_base *base, const char *endpoint,
                                  const struct policyd_settings *set, const char *request,
                                  policyd_cb cb, void *arg)
{
    struct policyd_req *r = xcalloc(1, sizeof *r);
    r->base = base;
    r->endpoint = xstrdup(endpoint);
    r->request = xstrdup(request);
    r->set = *set;
    if (r->set.try_limit < 1)
        r->set.try_limit = 1;
    if (r->set.timeout < 1)
        r->set.timeout = 1;
    r->cb = cb;
    r->arg = arg;
    r->timer = evtimer_new(base, policyd_timer, r);
    if (!policyd_endpoint_valid(endpoint)) {
        r->fail_now = 1;
        struct timeval tv = {0, 0};
        evtimer_add(r->timer, &tv);
        return r;
    }
    policyd_try(r);
    return r;
}

void policyd_cancel(struct policyd_req *r)
{
    if (!r)
        return;
    policyd_conn_free(r->conn);
    event_free(r->timer);
    free(r->endpoint);
    free(r->request);
    free(r);
}
