/* Base64 encoding and decoding; see base64.h. */
#include "lib/base64.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void base64_encode(const void *data, size_t len, struct buf *out)
{
    const unsigned char *p = data;
    buf_reserve(out, (len + 2) / 3 * 4);
    for (size_t i = 0; i < len; i += 3) {
        unsigned long bits = (unsigned long)p[i] << 16;
        if (i + 1 < len)
            bits |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < len)
            bits |= p[i + 2];
        char q[4] = {base64_alphabet[(bits >> 18) & 63], base64_alphabet[(bits >> 12) & 63],
                     i + 1 < len ? base64_alphabet[(bits >> 6) & 63] : '=',
                     i + 2 < len ? base64_alphabet[bits & 63] : '='};
        buf_append(out, q, 4);
    }
}

long base64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t max)
{
    unsigned long acc = 0;
    size_t chars = 0, o = 0;
    int pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if ((flags & BASE64_FWS) && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
            continue;
        if (c == '=') {
            pad++;
            chars++;
            acc <<= 6;
            continue;
        }
        int v = base64_value(c);
        if (v < 0 || pad > 0)
            return -1; /* not base64, or data after the padding */
        acc = (acc << 6) | (unsigned long)v;
        if (++chars % 4 != 0)
            continue;
        if (o + 3 > max)
            return -1;
        out[o++] = (unsigned char)(acc >> 16);
        out[o++] = (unsigned char)(acc >> 8);
        out[o++] = (unsigned char)acc;
        acc = 0;
    }
    if (pad > 2 || chars % 4 != 0)
        return -1;
    if (pad == 0)
        return (long)o;
    /* The last quantum had padding: it was not written above (acc shifted in). */
    acc &= 0xffffff;
    if ((flags & BASE64_CANONICAL) && ((pad == 1 && (acc & 0xff)) || (pad == 2 && (acc & 0xffff))))
        return -1;
    size_t n = 3 - (size_t)pad;
    if (o + n > max)
        return -1;
    out[o++] = (unsigned char)(acc >> 16);
    if (n > 1)
        out[o++] = (unsigned char)(acc >> 8);
    return (long)o;
}

int base64_decode_buf(const char *in, size_t len, unsigned flags, struct buf *out)
{
    buf_reserve(out, BASE64_DECODED_MAX(len));
    long n = base64_decode(in, len, flags, (unsigned char *)out->data + out->len,
                           out->cap - out->len - 1);
    if (n < 0) {
        out->data[out->len] = '\0';
        return -1;
    }
    out->len += (size_t)n;
    out->data[out->len] = '\0';
    return 0;
}
