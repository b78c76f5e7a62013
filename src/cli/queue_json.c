/*
 * `hongyan queue --json`: the queue for scripts, one JSON object per
 * message per line, in the shape of Postfix's `postqueue -j` (queue_name,
 * queue_id, arrival_time, message_size, forced_expire, sender, recipients
 * with delay_reason), so tools written for Postfix read it unchanged.
 */
#include "cli/queue_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/doctor.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/envelope.h"
#include "queue/pickup.h"
#include "queue/spool.h"

/* The size cap when decoding maildrop files, as `queue list` uses. */
#define QUEUE_JSON_MAILDROP_MAX (256 * 1024 * 1024)

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

int queue_list_json(struct spool *s)
{
    time_t now = time(NULL);
    for (int w = 0; w < 2; w++) {
        size_t n;
        char **ids = spool_list(s, w ? SPOOL_HOLD : SPOOL_ACTIVE, &n);
        for (size_t i = 0; i < n; i++) {
            struct buf err = BUF_INIT, path = BUF_INIT;
            enum spool_where where;
            struct envelope *e = spool_read_envelope(s, ids[i], &where, &err);
            buf_free(&err);
            if (e == NULL)
                continue;
            spool_data_path(s, ids[i], where, &path);
            struct stat st;
            long long size = stat(buf_cstr(&path), &st) == 0 ? (long long)st.st_size : 0;
            buf_free(&path);
            /* Postfix's deferred queue: tried, and waiting for the next try. */
            const char *name = where == SPOOL_HOLD                    ? "hold"
                               : e->attempts > 0 && e->next_try > now ? "deferred"
                                                                      : "active";
            queue_json_line(name, e, e->queue_id, size, 1);
            envelope_free(e);
        }
        strlist_free(ids);
    }
    char **names = pickup_names(s);
    for (char **p = names; *p; p++) {
        struct buf text = BUF_INIT, err = BUF_INIT;
        struct envelope *e = NULL;
        size_t off;
        char *path = xasprintf("%s/%s", spool_maildrop_dir(s), *p);
        if (read_file(path, &text, QUEUE_JSON_MAILDROP_MAX) == 0 &&
            pickup_decode(text.data ? text.data : "", text.len, &e, &off, &err) == 0)
            queue_json_line("maildrop", e, *p, (long long)(text.len - off), 0);
        envelope_free(e);
        free(path);
        buf_free(&text);
        buf_free(&err);
    }
    strlist_free(names);
    return 0;
}
