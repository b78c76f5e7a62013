/*
 * DKIM key lookups through the DNS layer: one asynchronous TXT query per
 * signature on the event loop (RFC 6376 3.6.2.2), answers mapped to
 * found / not found / try later.
 */
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"

struct dkim_dns_req {
    struct dns_query *q;
    dkim_lookup_done_fn done;
    void *done_arg;
};

static void dkim_dns_answer(void *arg, const struct dns_answer *ans)
{
    struct dkim_dns_req *r = arg;
    dkim_lookup_done_fn done = r->done;
    void *done_arg = r->done_arg;
    free(r);
    switch (ans->status) {
    case DNS_OK: {
        size_t n = ans->count;
        const char **txt = xcalloc(n ? n : 1, sizeof(char *));
        size_t *len = xcalloc(n ? n : 1, sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            txt[i] = ans->txt[i] ? ans->txt[i] : "";
            len[i] = strlen(txt[i]);
        }
        done(done_arg, n ? DKIM_LOOKUP_FOUND : DKIM_LOOKUP_NOTFOUND, txt, len, n);
        free(txt);
        free(len);
        return;
    }
    case DNS_TEMPFAIL:
        done(done_arg, DKIM_LOOKUP_TEMPFAIL, NULL, NULL, 0);
        return;
    case DNS_NXDOMAIN:
    case DNS_NODATA:
    case DNS_PERMFAIL:
        break;
    }
    done(done_arg, DKIM_LOOKUP_NOTFOUND, NULL, NULL, 0);
}

static void *dkim_dns_start(void *arg, const char *name, dkim_lookup_done_fn done, void *done_arg)
{
    struct dkim_dns_req *r = xcalloc(1, sizeof(*r));
    r->done = done;
    r->done_arg = done_arg;
    /* dns_query never answers before returning, so r is still ours here. */
    r->q = dns_query(arg, name, DNS_T_TXT, dkim_dns_answer, r);
    return r;
}

static void dkim_dns_cancel(void *arg, void *handle)
{
    struct dkim_dns_req *r = handle;
    (void)arg;
    dns_cancel(r->q);
    free(r);
}

struct dkim_key_lookup dkim_dns_lookup(struct dns *dns)
{
    struct dkim_key_lookup lk = {dkim_dns_start, dkim_dns_cancel, dns};
    return lk;
}
