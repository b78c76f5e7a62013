/*
 * Encoding and decoding of the keeper's messages (ipc_proto.h): the one
 * place that knows the wire layout, bounds-checked field by field.
 */
#include "ipc/ipc_proto.h"

#include <string.h>

void keeper_put_hdr(struct buf *msg, uint32_t id, enum keeper_type type, uint16_t status)
{
    struct keeper_hdr h = {id, (uint16_t)type, status};
    uint8_t raw[KEEPER_HDR_LEN];
    memcpy(raw, &h.id, 4);
    memcpy(raw + 4, &h.type, 2);
    memcpy(raw + 6, &h.status, 2);
    buf_append(msg, raw, sizeof raw);
}

void keeper_put_u8(struct buf *msg, uint8_t v)
{
    buf_append(msg, &v, 1);
}

void keeper_put_u32(struct buf *msg, uint32_t v)
{
    buf_append(msg, &v, 4);
}

void keeper_put_bytes(struct buf *msg, const void *data, size_t len)
{
    uint16_t n = len > 0xffff ? 0xffff : (uint16_t)len;
    buf_append(msg, &n, 2);
    if (n)
        buf_append(msg, data, n);
}

void keeper_put_str(struct buf *msg, const char *s)
{
    keeper_put_bytes(msg, s, strlen(s));
}

void keeper_reader_init(struct keeper_reader *r, const void *data, size_t len)
{
    r->p = data;
    r->left = len;
    r->bad = 0;
}

static const uint8_t *keeper_take(struct keeper_reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t keeper_get_u8(struct keeper_reader *r)
{
    const uint8_t *p = keeper_take(r, 1);
    return p ? *p : 0;
}

uint32_t keeper_get_u32(struct keeper_reader *r)
{
    uint32_t v = 0;
    const uint8_t *p = keeper_take(r, 4);
    if (p)
        memcpy(&v, p, 4);
    return v;
}

struct keeper_bytes keeper_get_bytes(struct keeper_reader *r, size_t max)
{
    struct keeper_bytes b = {NULL, 0};
    uint16_t n = 0;
    const uint8_t *p = keeper_take(r, 2);
    if (p == NULL)
        return b;
    memcpy(&n, p, 2);
    if (n > max) {
        r->bad = 1;
        return b;
    }
    p = keeper_take(r, n);
    if (p) {
        b.data = p;
        b.len = n;
    }
    return b;
}

int keeper_reader_done(const struct keeper_reader *r)
{
    return r->bad || r->left != 0 ? -1 : 0;
}

int keeper_get_hdr(struct keeper_reader *r, struct keeper_hdr *h)
{
    const uint8_t *p = keeper_take(r, KEEPER_HDR_LEN);
    if (p == NULL)
        return -1;
    memcpy(&h->id, p, 4);
    memcpy(&h->type, p + 4, 2);
    memcpy(&h->status, p + 6, 2);
    return 0;
}

int keeper_bytes_is_name(struct keeper_bytes b, size_t max)
{
    return b.len >= 1 && b.len <= max && memchr(b.data, '\0', b.len) == NULL;
}

int keeper_request_decode(const void *msg, size_t len, struct keeper_request *out)
{
    struct keeper_reader r;
    memset(out, 0, sizeof *out);
    if (len > KEEPER_MSG_MAX)
        return -1;
    keeper_reader_init(&r, msg, len);
    if (keeper_get_hdr(&r, &out->hdr) < 0 || out->hdr.status != 0)
        return -1;
    switch (out->hdr.type) {
    case KEEPER_TLS_SIGN:
        out->u.tls_sign.op = keeper_get_u8(&r);
        out->u.tls_sign.keyid = keeper_get_bytes(&r, KEEPER_KEYID_LEN);
        out->u.tls_sign.input = keeper_get_bytes(&r, KEEPER_SIGN_IN_MAX);
        if (out->u.tls_sign.op < KEEPER_TLS_RSA_PKCS1 || out->u.tls_sign.op > KEEPER_TLS_ECDSA ||
            out->u.tls_sign.keyid.len != KEEPER_KEYID_LEN || out->u.tls_sign.input.len == 0)
            return -1;
        break;
    case KEEPER_DKIM_KEYS:
        break;
    case KEEPER_DKIM_SIGN:
        out->u.dkim_sign.domain = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        out->u.dkim_sign.selector = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        out->u.dkim_sign.digest = keeper_get_bytes(&r, KEEPER_DIGEST_LEN);
        if (!keeper_bytes_is_name(out->u.dkim_sign.domain, KEEPER_NAME_MAX) ||
            !keeper_bytes_is_name(out->u.dkim_sign.selector, KEEPER_NAME_MAX) ||
            out->u.dkim_sign.digest.len != KEEPER_DIGEST_LEN)
            return -1;
        break;
    case KEEPER_PASSWORD:
        out->u.password.user = keeper_get_bytes(&r, KEEPER_NAME_MAX);
        out->u.password.pass = keeper_get_bytes(&r, KEEPER_PASS_MAX);
        /* The password may be empty (a wrong one, then); it must not hide a NUL. */
        if (!keeper_bytes_is_name(out->u.password.user, KEEPER_NAME_MAX) ||
            (out->u.password.pass.len &&
             memchr(out->u.password.pass.data, '\0', out->u.password.pass.len) != NULL))
            return -1;
        break;
    default:
        return -1;
    }
    return keeper_reader_done(&r);
}
