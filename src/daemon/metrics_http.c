/*
 * The metrics_listen HTTP server (metrics_http.h). Each connection reads
 * one request head of at most METRICS_HTTP_HEAD_MAX bytes within
 * METRICS_HTTP_TIMEOUT seconds, answers it and closes: enough for
 * Prometheus, curl and a browser, and nothing a client can hold open. The
 * active and deferred gauges and the oldest deferred message are the
 * delivery process's queue manager's, read from the shared metrics region
 * (metrics_queue_read); the held messages are counted here from hold/, a
 * stat of each, so they are gathered on the work queue and the answer is
 * written when they come back.
 */
#include "daemon/metrics_http.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "server/server.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "metrics/metrics_status.h"
#include "queue/spool.h"

/* A request head larger than this is not a scrape (Prometheus sends ~300 bytes). */
#define METRICS_HTTP_HEAD_MAX 8192
#define METRICS_HTTP_TIMEOUT 10
/* Connections at once; more are closed at accept, so scrapes cannot pile up. */
#define METRICS_HTTP_MAX_CONNS 32

static int metrics_http_conns;

struct metrics_conn {
    struct server *srv;
    struct bufferevent *bev;
    int want_status; /* GET / rather than GET /metrics */
    int gathering;   /* a work-queue job holds this connection */
    int dead;        /* the peer left while gathering: free when the job is back */
    int responding;  /* the answer is being written; then the connection closes */
    /* Filled on the loop, then by the work queue. */
    struct metrics_gauges gauges;
    struct metrics_oldest oldest;
    char hostname[256];
};

static void metrics_conn_free(struct metrics_conn *c)
{
    if (c->gathering) {
        c->dead = 1;
        if (c->bev) {
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
        return;
    }
    if (c->bev)
        bufferevent_free(c->bev);
    free(c);
    metrics_http_conns--;
}

int metrics_http_parse(const char *head, size_t len, const char **path)
{
    /* Request line only (RFC 9112 3): method SP request-target SP HTTP-version. */
    const char *end = memchr(head, '\n', len);
    size_t line = end ? (size_t)(end - head) : len;
    if (line > 0 && head[line - 1] == '\r')
        line--;
    const char *sp1 = memchr(head, ' ', line);
    if (sp1 == NULL)
        return 400;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line - (size_t)(target - head));
    if (sp2 == NULL || sp2 == target)
        return 400;
    const char *version = sp2 + 1;
    size_t vlen = line - (size_t)(version - head);
    size_t mlen = (size_t)(sp1 - head);
    size_t tlen = (size_t)(sp2 - target);
    if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0)
        return vlen >= 5 && memcmp(version, "HTTP/", 5) == 0 ? 505 : 400;
    /* HTTP/1.1 only (what Prometheus, curl and browsers send). */
    if (version[7] != '1')
        return 505;
    if (!(mlen == 3 && memcmp(head, "GET", 3) == 0))
        return 405;
    /* A query string is ignored, as Prometheus' own exporters do. */
    const char *q = memchr(target, '?', tlen);
    if (q)
        tlen = (size_t)(q - target);
    if (tlen == 8 && memcmp(target, "/metrics", 8) == 0)
        *path = "/metrics";
    else if (tlen == 1 && target[0] == '/')
        *path = "/";
    else
        return 404;
    return 200;
}

static void metrics_conn_written(struct bufferevent *bev, void *arg)
{
    struct metrics_conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        metrics_conn_free(c);
}

static void metrics_conn_event(struct bufferevent *bev, short what, void *arg);

static void metrics_conn_respond(struct metrics_conn *c, int status, const char *type,
                                 const struct buf *body)
{
    static const struct {
        int code;
        const char *text;
    } reasons[] = {{200, "OK"},
                   {400, "Bad Request"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {408, "Request Timeout"},
                   {431, "Request Header Fields Too Large"},
                   {505, "HTTP Version Not Supported"}};
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == status)
            reason = reasons[i].text;
    struct buf out = BUF_INIT;
    buf_printf(&out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
               status, reason, type, body ? body->len : strlen(reason) + 1,
               status == 405 ? "Allow: GET\r\n" : "");
    if (body)
        buf_append(&out, body->data, body->len);
    else
        buf_printf(&out, "%s\n", reason);
    c->responding = 1;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, metrics_conn_written, metrics_conn_event, c);
    bufferevent_write(c->bev, out.data, out.len);
    buf_free(&out);
}

/* Work queue: the held messages and their sizes (hold/ is not the queue manager's). */
static void metrics_gather_work(void *arg)
{
    struct metrics_conn *c = arg;
    struct spool *spool = c->srv->spool;
    size_t nhold = 0;
    char **held = spool_list(spool, SPOOL_HOLD, &nhold);
    for (size_t i = 0; i < nhold; i++) {
        unsigned long long size;
        if (spool_data_size(spool, held[i], SPOOL_HOLD, &size) < 0)
            continue;
        c->gauges.queue_messages[2]++;
        c->gauges.queue_bytes[2] += size;
    }
    strlist_free(held);
}

static void metrics_gather_done(void *arg)
{
    struct metrics_conn *c = arg;
    c->gathering = 0;
    if (c->dead) {
        metrics_conn_free(c);
        return;
    }
    struct buf body = BUF_INIT;
    if (c->want_status) {
        metrics_status_render(&body, c->hostname, &c->gauges, &c->oldest);
        metrics_conn_respond(c, 200, "text/html; charset=utf-8", &body);
    } else {
        metrics_render(&body, &c->gauges);
        metrics_conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    buf_free(&body);
}

static void metrics_conn_read(struct bufferevent *bev, void *arg)
{
    struct metrics_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        end = evbuffer_search(in, "\n\n", 2, NULL);
    if (end.pos < 0) {
        if (len > METRICS_HTTP_HEAD_MAX)
            metrics_conn_respond(c, 431, "text/plain", NULL);
        return;
    }
    size_t head_len = (size_t)end.pos;
    if (head_len > METRICS_HTTP_HEAD_MAX) {
        metrics_conn_respond(c, 431, "text/plain", NULL);
        return;
    }
    char *head = xmalloc(head_len + 1);
    evbuffer_remove(in, head, head_len);
    head[head_len] = '\0';
    const char *path = NULL;
    int status = metrics_http_parse(head, head_len, &path);
    free(head);
    if (status != 200) {
        metrics_conn_respond(c, status, "text/plain", NULL);
        return;
    }
    bufferevent_disable(bev, EV_READ);
    c->want_status = strcmp(path, "/") == 0;
    /* The queue manager is the delivery process's: its view comes through the region. */
    if (metrics_queue_read(&c->gauges, &c->oldest) < 0)
        log_warning("metrics: the queue view in the shared region is being rewritten or was left "
                    "half-written; shown as empty");
    c->gauges.sessions_open = c->srv->sessions;
    str_copy(c->hostname, sizeof c->hostname, config_get(c->srv->gen->cfg, "myhostname"));
    c->gathering = 1;
    workq_submit(c->srv->workq, metrics_gather_work, metrics_gather_done, c);
}

static void metrics_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct metrics_conn *c = arg;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !c->responding) {
        metrics_conn_respond(c, 408, "text/plain", NULL);
        return;
    }
    metrics_conn_free(c);
}

void metrics_http_accept(struct server *srv, int fd)
{
    if (metrics_http_conns >= METRICS_HTTP_MAX_CONNS || srv->draining) {
        close(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    struct metrics_conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->bev = bev;
    metrics_http_conns++;
    struct timeval tv = {METRICS_HTTP_TIMEOUT, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setwatermark(bev, EV_READ, 0, METRICS_HTTP_HEAD_MAX + 1);
    bufferevent_setcb(bev, metrics_conn_read, NULL, metrics_conn_event, c);
    bufferevent_enable(bev, EV_READ);
}
