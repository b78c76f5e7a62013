/*
 * Fuzz target: the delivery process's decoder of what smtpd sends it
 * (src/ipc/split_proto.c), fed whatever a compromised smtpd could send as
 * one datagram. A message that decodes must hold queue ids within the
 * buffer, of letters and digits; re-encoding it must give the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct split_msg msg;
    if (split_msg_decode(data, size, &msg) < 0)
        return 0;
    struct buf again = BUF_INIT;
    char ids[SPLIT_QUEUED_MAX_IDS][SPLIT_QUEUE_ID_MAX + 1];
    const char *idp[SPLIT_QUEUED_MAX_IDS];
    switch (msg.type) {
    case SPLIT_HELLO:
        split_put_hello(&again, msg.u.hello.started);
        break;
    case SPLIT_QUEUED:
        if (msg.u.queued.count == 0 || msg.u.queued.count > SPLIT_QUEUED_MAX_IDS)
            abort();
        for (uint32_t i = 0; i < msg.u.queued.count; i++) {
            struct keeper_bytes b = msg.u.queued.ids[i];
            if (b.len == 0 || b.len > SPLIT_QUEUE_ID_MAX || b.data < data ||
                b.data + b.len > data + size)
                abort();
            memcpy(ids[i], b.data, b.len);
            ids[i][b.len] = '\0';
            if (strspn(ids[i], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") !=
                b.len)
                abort();
            idp[i] = ids[i];
        }
        split_put_queued(&again, idp, msg.u.queued.count);
        break;
    default:
        abort(); /* decoded a type it does not know */
    }
    if (again.len != size || memcmp(again.data, data, size) != 0)
        abort();
    buf_free(&again);
    return 0;
}
