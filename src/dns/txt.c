/* TXT lookups through the DNS layer for the txt_lookup seam (see txt.h). */
#include "dns/txt.h"

#include <stdlib.h>

#include "dns/dns.h"
#include "lib/xalloc.h"

struct txt_dns_req {
    struct dns_query *q;
    txt_done_fn done;
    void *done_arg;
    /* exists(): the MX, A and AAAA queries in turn */
    struct dns *dns;
    char *name;
    int step;
    void (*exists_done)(void *done_arg, int exists);
};

static void txt_dns_answer(void *arg, const struct dns_answer *ans)
{
    struct txt_dns_req *r = arg;
    txt_done_fn done = r->done;
    void *done_arg = r->done_arg;
    free(r);
    switch (ans->status) {
    case DNS_OK:
        done(done_arg, ans->count ? TXT_FOUND : TXT_NOTFOUND, (const char *const *)ans->txt,
             ans->count);
        return;
    case DNS_NXDOMAIN:
    case DNS_NODATA:
        done(done_arg, TXT_NOTFOUND, NULL, 0);
        return;
    case DNS_PERMFAIL:
        done(done_arg, TXT_MALFORMED, NULL, 0);
        return;
    case DNS_TEMPFAIL:
        break;
    }
    done(done_arg, TXT_TEMPFAIL, NULL, 0);
}

static void *txt_dns_start(void *arg, const char *name, txt_done_fn done, void *done_arg)
{
    struct txt_dns_req *r = xcalloc(1, sizeof *r);
    r->done = done;
    r->done_arg = done_arg;
    /* dns_query never answers before returning, so r is still ours here. */
    r->q = dns_query(arg, name, DNS_T_TXT, txt_dns_answer, r);
    return r;
}

static void txt_dns_cancel(void *arg, void *handle)
{
    struct txt_dns_req *r = handle;
    (void)arg;
    if (r == NULL)
        return;
    dns_cancel(r->q);
    free(r->name);
    free(r);
}

static void txt_dns_exists_answer(void *arg, const struct dns_answer *ans)
{
    static const int types[] = {DNS_T_MX, DNS_T_A, DNS_T_AAAA};
    struct txt_dns_req *r = arg;
    r->q = NULL;
    /* NXDOMAIN ends it (nothing at all there); NODATA asks the next type. */
    if (ans->status == DNS_NODATA && r->step + 1 < 3) {
        r->step++;
        r->q = dns_query(r->dns, r->name, types[r->step], txt_dns_exists_answer, r);
        return;
    }
    int exists = ans->status != DNS_NXDOMAIN && ans->status != DNS_NODATA;
    void (*done)(void *, int) = r->exists_done;
    void *done_arg = r->done_arg;
    free(r->name);
    free(r);
    done(done_arg, exists);
}

static void *txt_dns_exists(void *arg, const char *name, void (*done)(void *done_arg, int exists),
                            void *done_arg)
{
    struct txt_dns_req *r = xcalloc(1, sizeof *r);
    r->exists_done = done;
    r->done_arg = done_arg;
    r->dns = arg;
    r->name = xstrdup(name);
    r->q = dns_query(arg, name, DNS_T_MX, txt_dns_exists_answer, r);
    return r;
}

struct txt_lookup txt_dns_lookup(struct dns *dns)
{
    struct txt_lookup lk = {txt_dns_start, txt_dns_cancel, dns, txt_dns_exists};
    return lk;
}
