/* Shared helpers of the delivery agent interface (agent.h). */
#include "deliver/agent.h"

#include <stdlib.h>

void delivery_results_free(struct delivery_rcpt_result *results, size_t count)
{
    if (results == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(results[i].reply);
        free(results[i].relay);
    }
    free(results);
}

void delivery_route_clear(struct delivery_route *r)
{
    if (r == NULL)
        return;
    route_clear(&r->route);
    free(r->why);
    r->why = NULL;
}
