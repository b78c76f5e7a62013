/* Milter packet encoding and decoding; see milter_proto.h. */
#include "milter/milter_proto.h"

#include <string.h>

size_t milter_pkt_begin(struct buf *out, char cmd)
{
    size_t start = out->len;
    static const char hdr[4] = {0, 0, 0, 0};
    buf_append(out, hdr, 4);
    buf_putc(out, cmd);
    return start;
}

void milter_pkt_put_str(struct buf *out, const char *s)
{
    buf_append(out, s, strlen(s) + 1);
}

void milter_pkt_put_u32(struct buf *out, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_append(out, b, 4);
}

void milter_pkt_put_u16(struct buf *out, uint16_t v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    buf_append(out, b, 2);
}

void milter_pkt_end(struct buf *out, size_t start)
{
    uint32_t n = (uint32_t)(out->len - start - 4); /* the command byte and the data */
    unsigned char *p = (unsigned char *)out->data + start;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

void milter_pkt_raw(struct buf *out, char cmd, const void *data, size_t len)
{
    size_t start = milter_pkt_begin(out, cmd);
    if (len)
        buf_append(out, data, len);
    milter_pkt_end(out, start);
}

static uint32_t get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

int milter_pkt_split(const char *in, size_t len, size_t max, char *cmd, const char **data,
                     size_t *dlen, size_t *used)
{
    if (len < 4)
        return 0;
    uint32_t n = get_u32(in);
    if (n == 0 || n > max)
        return -1;
    if (len - 4 < n)
        return 0;
    *cmd = in[4];
    *data = in + 5;
    *dlen = n - 1;
    *used = 4 + (size_t)n;
    return 1;
}

/* A NUL-terminated string at *p within end; advances past its NUL. */
static const char *take_str(const char **p, const char *end)
{
    const char *s = *p;
    if (s >= end)
        return NULL;
    const char *nul = memchr(s, '\0', (size_t)(end - s));
    if (!nul)
        return NULL;
    *p = nul + 1;
    return s;
}

int milter_reply_decode(char cmd, const char *data, size_t len, struct milter_reply *r,
                        const char **why)
{
    const char *p = data, *end = data + len;
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    r->value = "";
    switch (cmd) {
    case MILTER_R_ACCEPT:
    case MILTER_R_CONTINUE:
    case MILTER_R_DISCARD:
    case MILTER_R_REJECT:
    case MILTER_R_TEMPFAIL:
    case MILTER_R_PROGRESS:
    case MILTER_R_SKIP:
    case MILTER_R_SHUTDOWN:
    case MILTER_R_CONN_FAIL:
        if (len) {
            *why = "reply followed by data";
            return -1;
        }
        return 0;
    case MILTER_R_REPLYCODE:
    case MILTER_R_QUARANTINE:
        /* The text is one string; its NUL is the last byte. */
        if (len == 0 || data[len - 1] != '\0' || memchr(data, '\0', len) != data + len - 1) {
            *why = "malformed text";
            return -1;
        }
        r->text = data;
        return 0;
    case MILTER_R_ADDHEADER:
        if (!(r->name = take_str(&p, end)) || !(r->value = take_str(&p, end)) || p != end) {
            *why = "malformed header request";
            return -1;
        }
        break;
    case MILTER_R_INSHEADER:
    case MILTER_R_CHGHEADER:
        if (len < 4) {
            *why = "header request too short";
            return -1;
        }
        r->index = get_u32(p);
        p += 4;
        if (!(r->name = take_str(&p, end)) || !(r->value = take_str(&p, end)) || p != end) {
            *why = "malformed header request";
            return -1;
        }
        break;
    case MILTER_R_ADDRCPT:
    case MILTER_R_DELRCPT:
        if (!(r->name = take_str(&p, end)) || p != end) {
            *why = "malformed recipient request";
            return -1;
        }
        break;
    case MILTER_R_ADDRCPT_PAR:
    case MILTER_R_CHGFROM:
        /* The address, then optional ESMTP parameters as one string. */
        if (!(r->name = take_str(&p, end))) {
            *why = "malformed address request";
            return -1;
        }
        if (p != end && (!(r->value = take_str(&p, end)) || p != end)) {
            *why = "malformed ESMTP parameters";
            return -1;
        }
        break;
    case MILTER_R_REPLBODY:
        r->body = data;
        r->body_len = len;
        return 0;
    default:
        *why = "unknown reply";
        return -1;
    }
    if (r->name && !r->name[0] && cmd != MILTER_R_CHGFROM) {
        *why = "empty name";
        return -1;
    }
    return 0;
}

int milter_optneg_decode(const char *data, size_t len, struct milter_optneg *o, const char **why)
{
    memset(o, 0, sizeof *o);
    if (len < 12) {
        *why = "option negotiation too short";
        return -1;
    }
    o->version = get_u32(data);
    o->actions = get_u32(data + 4);
    o->protocol = get_u32(data + 8);
    const char *p = data + 12, *end = data + len;
    /* Sendmail 8.14: the filter may name the macros it wants, per stage. */
    while (p < end) {
        if (end - p < 4) {
            *why = "truncated macro list";
            return -1;
        }
        uint32_t stage = get_u32(p);
        p += 4;
        const char *list = take_str(&p, end);
        if (!list) {
            *why = "malformed macro list";
            return -1;
        }
        if (stage < MILTER_M_COUNT)
            o->macros[stage] = list;
    }
    return 0;
}

int milter_reply_text_valid(const char *t)
{
    const char *code = t;
    for (;;) {
        size_t n = strcspn(t, "\r\n");
        int last = t[n] == '\0';
        if (n < 4 || (t[0] != '4' && t[0] != '5') || t[1] < '0' || t[1] > '9' || t[2] < '0' ||
            t[2] > '9' || t[3] != (last ? ' ' : '-') || memcmp(t, code, 3) != 0)
            return 0;
        /* An enhanced status code, when present, has the reply's class. */
        if (n > 4 && t[4] >= '0' && t[4] <= '9' && t[4] != t[0])
            return 0;
        if (last)
            return 1;
        if (t[n] != '\r' || t[n + 1] != '\n')
            return 0;
        t += n + 2;
    }
}
