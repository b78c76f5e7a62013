/*
 * The MTA-STS policy fetch (RFC 8461 3.3) on libcurl's multi interface,
 * driven by the worker's libevent loop (curl asks which sockets to watch and
 * when to wake it; we never call a blocking curl function). The host name is
 * resolved by our own resolver beforehand and pinned with CURLOPT_RESOLVE,
 * so curl never resolves anything itself and the fetch follows dns_resolver.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliver/mta_sts.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

struct mta_sts_fetch {
    CURL *easy;
    struct curl_slist *resolve;
    char *cafile;
    char *url;
    struct buf body;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
    mta_sts_fetch_cb cb;
    void *arg;
};

/* One multi handle per worker loop; the worker has a single loop. */
static struct {
    CURLM *multi;
    struct event_base *base;
    struct event *timer;
} fetcher;

static void mta_sts_fetch_finish(struct mta_sts_fetch *f, CURLcode rc)
{
    enum mta_sts_fetch_fail fail = MTA_STS_FETCH_OK;
    struct buf why = BUF_INIT;
    long status = 0;
    char *ctype = NULL;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &ctype);
    if (rc != CURLE_OK) {
        fail = rc == CURLE_PEER_FAILED_VERIFICATION ? MTA_STS_FETCH_WEBPKI : MTA_STS_FETCH_ERROR;
        if (f->too_big)
            buf_printf(&why, "%s: policy larger than %d bytes", f->url, MTA_STS_BODY_LIMIT);
        else
            buf_printf(&why, "%s: %s", f->url, f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
    } else if (status != 200) {
        /* RFC 8461 3.3: only 200 counts; redirects are not followed. */
        fail = MTA_STS_FETCH_ERROR;
        buf_printf(&why, "%s: HTTP status %ld", f->url, status);
    } else {
        /* "text/plain", with or without parameters (RFC 8461 3.3). */
        size_t tl = ctype ? strcspn(ctype, "; \t") : 0;
        if (!ctype || tl != 10 || strncasecmp(ctype, "text/plain", 10) != 0) {
            fail = MTA_STS_FETCH_ERROR;
            buf_printf(&why, "%s: Content-Type is %s, not text/plain", f->url,
                       ctype ? ctype : "missing");
        }
    }
    f->cb(f->arg, fail, &f->body, fail == MTA_STS_FETCH_OK ? NULL : buf_cstr(&why));
    buf_free(&why);
    curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->resolve);
    buf_free(&f->body);
    free(f->cafile);
    free(f->url);
    free(f);
}

static void mta_sts_fetch_check_done(void)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(fetcher.multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct mta_sts_fetch *f = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f);
        curl_multi_remove_handle(fetcher.multi, easy);
        mta_sts_fetch_finish(f, rc);
    }
}

static void mta_sts_fetch_event(evutil_socket_t fd, short what, void *arg)
{
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(fetcher.multi, fd, action, &running);
    mta_sts_fetch_check_done();
}

static void mta_sts_fetch_timeout(evutil_socket_t fd, short what, void *arg)
{
    int running;
    curl_multi_socket_action(fetcher.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    mta_sts_fetch_check_done();
}

/* curl's CURLMOPT_SOCKETFUNCTION: watch s for what curl wants, one event per socket. */
static int mta_sts_fetch_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct event *ev = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ev) {
            event_free(ev);
            curl_multi_assign(fetcher.multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev) {
        event_del(ev);
        event_assign(ev, fetcher.base, s, kind, mta_sts_fetch_event, NULL);
    } else {
        ev = event_new(fetcher.base, s, kind, mta_sts_fetch_event, NULL);
        curl_multi_assign(fetcher.multi, s, ev);
    }
    event_add(ev, NULL);
    return 0;
}

/* curl's CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int mta_sts_fetch_timer(CURLM *multi, long timeout_ms, void *userp)
{
    if (timeout_ms < 0) {
        evtimer_del(fetcher.timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(fetcher.timer, &tv);
    return 0;
}

static size_t mta_sts_fetch_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct mta_sts_fetch *f = arg;
    size_t n = size * nmemb;
    if (f->body.len + n > MTA_STS_BODY_LIMIT) {
        f->too_big = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    buf_append(&f->body, data, n);
    return n;
}

/*
 * RFC 8461 3.3: the certificate must chain to a trusted root. curl has
 * loaded the system bundle into the context; smtp_tls_CAfile is added to
 * it, so that both are trusted (the same set the MX check uses).
 */
static CURLcode mta_sts_fetch_ssl_ctx(CURL *easy, void *ssl_ctx, void *arg)
{
    struct mta_sts_fetch *f = arg;
    if (f->cafile && *f->cafile &&
        SSL_CTX_load_verify_locations((SSL_CTX *)ssl_ctx, f->cafile, NULL) != 1)
        log_warning("MTA-STS: cannot read smtp_tls_CAfile %s", f->cafile);
    return CURLE_OK;
}

static int mta_sts_fetch_init(struct event_base *base)
{
    if (fetcher.multi)
        return fetcher.base == base ? 0 : -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    fetcher.multi = curl_multi_init();
    if (!fetcher.multi)
        return -1;
    fetcher.base = base;
    fetcher.timer = evtimer_new(base, mta_sts_fetch_timeout, NULL);
    curl_multi_setopt(fetcher.multi, CURLMOPT_SOCKETFUNCTION, mta_sts_fetch_socket);
    curl_multi_setopt(fetcher.multi, CURLMOPT_TIMERFUNCTION, mta_sts_fetch_timer);
    return 0;
}

static void mta_sts_fetch_fail_later(evutil_socket_t fd, short what, void *arg)
{
    struct mta_sts_fetch *f = arg;
    struct buf empty = BUF_INIT;
    f->cb(f->arg, MTA_STS_FETCH_ERROR, &empty, "cannot start the HTTPS client");
    free(f->url);
    free(f->cafile);
    free(f);
}

void mta_sts_fetch(struct event_base *base, const char *host, const char *ip, int port,
                   const char *cafile, int timeout, mta_sts_fetch_cb cb, void *arg)
{
    struct mta_sts_fetch *f = xcalloc(1, sizeof *f);
    f->cb = cb;
    f->arg = arg;
    f->cafile = cafile ? xstrdup(cafile) : NULL;
    f->url = port == 443 ? xasprintf("https://%s/.well-known/mta-sts.txt", host)
                         : xasprintf("https://%s:%d/.well-known/mta-sts.txt", host, port);
    if (mta_sts_fetch_init(base) < 0 || !(f->easy = curl_easy_init())) {
        /* Never called back before returning: the caller's state is not set up yet. */
        event_base_once(base, -1, EV_TIMEOUT, mta_sts_fetch_fail_later, f, &(struct timeval){0, 0});
        return;
    }
    /* The address our resolver found, as "host:port:addr" ("[v6]" for IPv6). */
    char *pin = strchr(ip, ':') ? xasprintf("%s:%d:[%s]", host, port, ip)
                                : xasprintf("%s:%d:%s", host, port, ip);
    f->resolve = curl_slist_append(NULL, pin);
    free(pin);
    CURL *e = f->easy;
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_RESOLVE, f->resolve);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* No proxy from the environment: the policy comes from the domain's own server. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)timeout);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    /* A shared CA cache would keep one smtp_tls_CAfile's roots for the next. */
    curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, mta_sts_fetch_ssl_ctx);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, f);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hongyan MTA-STS");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mta_sts_fetch_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_multi_add_handle(fetcher.multi, e);
}
