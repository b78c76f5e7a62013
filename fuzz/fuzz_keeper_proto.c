/*
 * Fuzz target: the keeper's request decoder (src/ipc/keeper_proto.c), the
 * one parser in the key-holding process, fed whatever a compromised worker
 * could send as one datagram. A request that decodes must hold only fields
 * within the buffer and their caps; re-encoding it must give the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_proto.h"

static void fuzz_keeper_inside(const uint8_t *data, size_t size, struct keeper_bytes b, size_t max)
{
    if (b.len > max)
        abort();
    if (b.len && (b.data < data || b.data + b.len > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keeper_request rq;
    if (keeper_request_decode(data, size, &rq) < 0)
        return 0;
    struct buf again = BUF_INIT;
    keeper_put_hdr(&again, rq.hdr.id, (enum keeper_type)rq.hdr.type, rq.hdr.status);
    switch (rq.hdr.type) {
    case KEEPER_TLS_SIGN:
        fuzz_keeper_inside(data, size, rq.u.tls_sign.keyid, KEEPER_KEYID_LEN);
        fuzz_keeper_inside(data, size, rq.u.tls_sign.input, KEEPER_SIGN_IN_MAX);
        keeper_put_u8(&again, rq.u.tls_sign.op);
        keeper_put_bytes(&again, rq.u.tls_sign.keyid.data, rq.u.tls_sign.keyid.len);
        keeper_put_bytes(&again, rq.u.tls_sign.input.data, rq.u.tls_sign.input.len);
        break;
    case KEEPER_DKIM_SIGN:
        fuzz_keeper_inside(data, size, rq.u.dkim_sign.domain, KEEPER_NAME_MAX);
        fuzz_keeper_inside(data, size, rq.u.dkim_sign.selector, KEEPER_NAME_MAX);
        fuzz_keeper_inside(data, size, rq.u.dkim_sign.digest, KEEPER_DIGEST_LEN);
        keeper_put_bytes(&again, rq.u.dkim_sign.domain.data, rq.u.dkim_sign.domain.len);
        keeper_put_bytes(&again, rq.u.dkim_sign.selector.data, rq.u.dkim_sign.selector.len);
        keeper_put_bytes(&again, rq.u.dkim_sign.digest.data, rq.u.dkim_sign.digest.len);
        break;
    case KEEPER_PASSWORD:
        fuzz_keeper_inside(data, size, rq.u.password.user, KEEPER_NAME_MAX);
        fuzz_keeper_inside(data, size, rq.u.password.pass, KEEPER_PASS_MAX);
        keeper_put_bytes(&again, rq.u.password.user.data, rq.u.password.user.len);
        keeper_put_bytes(&again, rq.u.password.pass.data, rq.u.password.pass.len);
        break;
    case KEEPER_DKIM_KEYS:
        break;
    default:
        abort(); /* decoded a type it does not know */
    }
    if (again.len != size || memcmp(again.data, data, size) != 0)
        abort();
    buf_free(&again);
    return 0;
}
