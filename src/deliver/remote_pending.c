/*
 * Stand-in for remote delivery until src/deliver/remote.c lands: every
 * remote recipient is deferred with a clear reason, so the system is whole
 * and nothing is lost. The outbound engineer deletes this file.
 */
#include <string.h>

#include "deliver/agent.h"
#include "lib/util.h"
#include "lib/xalloc.h"

void remote_deliver(const struct delivery_request *req, delivery_done_cb done, void *arg)
{
    struct delivery_rcpt_result *res = xcalloc(req->nrcpts ? req->nrcpts : 1, sizeof *res);
    for (size_t i = 0; i < req->nrcpts; i++) {
        res[i].rcpt = req->rcpts[i];
        res[i].status = DELIVERY_TEMPFAIL;
        str_copy(res[i].dsn, sizeof res[i].dsn, "4.4.0");
        res[i].reply = xstrdup("4.4.0 remote delivery is not available in this build");
        res[i].relay = xstrdup("none");
    }
    done(arg, res, req->nrcpts);
}
