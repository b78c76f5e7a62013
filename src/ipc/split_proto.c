/*
 * Encoding and decoding of the smtpd → delivery messages (ipc_proto.h),
 * with the keeper protocol's field codec, so that the wire layout of our
 * socketpairs is written once.
 */
#include "ipc/ipc_proto.h"

#include <string.h>

void split_put_hello(struct buf *msg, uint32_t started)
{
    keeper_put_hdr(msg, 0, (enum keeper_type)SPLIT_HELLO, 0);
    keeper_put_u32(msg, SPLIT_PROTO_VERSION);
    keeper_put_u32(msg, started);
}

void split_put_queued(struct buf *msg, const char *const *ids, size_t n)
{
    keeper_put_hdr(msg, 0, (enum keeper_type)SPLIT_QUEUED, 0);
    keeper_put_u32(msg, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        keeper_put_str(msg, ids[i]);
}

/* A spool queue id: letters and digits only, so it can name nothing but a file in the queue. */
static int split_is_queue_id(struct keeper_bytes b)
{
    if (b.len == 0 || b.len > SPLIT_QUEUE_ID_MAX)
        return 0;
    for (size_t i = 0; i < b.len; i++) {
        uint8_t c = b.data[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

int split_msg_decode(const void *msg, size_t len, struct split_msg *out)
{
    memset(out, 0, sizeof *out);
    if (len > SPLIT_MSG_MAX)
        return -1;
    struct keeper_reader r;
    struct keeper_hdr h;
    keeper_reader_init(&r, msg, len);
    if (keeper_get_hdr(&r, &h) < 0 || h.id != 0 || h.status != 0)
        return -1;
    switch (h.type) {
    case SPLIT_HELLO:
        out->u.hello.version = keeper_get_u32(&r);
        out->u.hello.started = keeper_get_u32(&r);
        if (out->u.hello.version != SPLIT_PROTO_VERSION)
            return -1;
        break;
    case SPLIT_QUEUED:
        out->u.queued.count = keeper_get_u32(&r);
        if (r.bad || out->u.queued.count == 0 || out->u.queued.count > SPLIT_QUEUED_MAX_IDS)
            return -1;
        for (uint32_t i = 0; i < out->u.queued.count; i++) {
            out->u.queued.ids[i] = keeper_get_bytes(&r, SPLIT_QUEUE_ID_MAX);
            if (r.bad || !split_is_queue_id(out->u.queued.ids[i]))
                return -1;
        }
        break;
    default:
        return -1;
    }
    if (keeper_reader_done(&r) < 0)
        return -1;
    out->type = (enum split_type)h.type;
    return 0;
}
