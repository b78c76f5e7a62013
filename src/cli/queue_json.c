/*
 * `hongyan queue --json`: the queue for scripts, one JSON object per
 * message per line, in the shape of Postfix's `postqueue -j` (queue_name,
 * queue_id, arrival_time, message_size, forced_expire, sender, recipients
 * with delay_reason), so tools written for Postfix read it unchanged.
 */
#include "cli/queue_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli/doctor.h"
#include "lib/buf.h"
#include "queue/envelope.h"
#include "queue/spool.h"

static void queue_json_line(const char *queue_name, const struct envelope *e, const char *id,
                            long long size, int pending_only)
{
    struct buf out = BUF_INIT;
    buf_puts(&out, "{\"queue_name\": ");
    doctor_json_string(queue_name, &out);
    buf_puts(&out, ", \"queue_id\": ");
    doctor_json_string(id, &out);
    buf_printf(&out, ", \"arrival_time\": %lld, \"message_size\": %lld, \"forced_expire\": false",
               (long long)e->arrival, size);
    buf_puts(&out, ", \"sender\": ");
    doctor_json_string(e->sender, &out);
    buf_puts(&out, ", \"recipients\": [");
    int first = 1;
    for (size_t k = 0; k < e->nrcpts; k++) {
        const struct envelope_rcpt *r = &e->rcpts[k];
        if (pending_only && r->state != RCPT_PENDING)
            continue;
        buf_puts(&out, first ? "{\"address\": " : ", {\"address\": ");
        first = 0;
        doctor_json_string(r->address, &out);
        if (r->last_error) {
            buf_puts(&out, ", \"delay_reason\": ");
            doctor_json_string(r->last_error, &out);
        }
        buf_puts(&out, "}");
    }
    buf_puts(&out, "]}\n");
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
}

static void queue_json_one(void *arg, const struct queue_entry *q)
{
    const time_t *now = arg;
    const struct envelope *e = q->e;
    /* Postfix's deferred queue: tried, and waiting for the next try. */
    const char *name = q->maildrop                             ? "maildrop"
                       : q->where == SPOOL_HOLD                ? "hold"
                       : e->attempts > 0 && e->next_try > *now ? "deferred"
                                                               : "active";
    queue_json_line(name, e, q->id, q->size, !q->maildrop);
}

int queue_list_json(struct spool *s)
{
    time_t now = time(NULL);
    queue_walk(s, queue_json_one, &now);
    return 0;
}
