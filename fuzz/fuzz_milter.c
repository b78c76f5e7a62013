/*
 * Fuzz target: what a milter sends back (src/milter/milter_proto.c and the
 * edits of milter_msg.c). The input is a stream of packets, as read from a
 * filter's socket: each is split, decoded for its command (or as an OPTNEG
 * answer), and the header and body edits are applied to a small message,
 * which must serialise again into a message that parses.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "milter/milter_msg.h"
#include "milter/milter_proto.h"

static const char MSG[] = "From: a@example.com\r\nSubject: s\r\nX: a\r\n b\r\n\r\nbody\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct milter_msg m;
    milter_msg_parse(&m, MSG, sizeof MSG - 1);
    int body = 0;
    while (size > 0) {
        char cmd;
        const char *d;
        size_t dlen, used;
        int rc = milter_pkt_split(in, size, 4096, &cmd, &d, &dlen, &used);
        if (rc <= 0)
            break;
        if (used > size || dlen + 5 != used)
            abort();
        /* The decoder gets its own copy, as the client hands it one. */
        char *copy = malloc(dlen + 1);
        memcpy(copy, d, dlen);
        copy[dlen] = '\0';
        struct milter_reply r;
        struct milter_optneg o;
        const char *why = NULL;
        if (cmd == 'O') {
            milter_optneg_decode(copy, dlen, &o, &why);
        } else if (milter_reply_decode(cmd, copy, dlen, &r, &why) == 0) {
            switch (cmd) {
            case 'h':
                milter_msg_add_header(&m, r.name, " ", r.value);
                break;
            case 'i':
                milter_msg_insert_header(&m, r.index, r.name, "", r.value);
                break;
            case 'm':
                milter_msg_change_header(&m, r.index, r.name, " ", r.value);
                break;
            case 'b':
                if (!body++)
                    milter_msg_body_begin(&m);
                milter_msg_body_chunk(&m, r.body, r.body_len);
                break;
            case 'y':
                milter_reply_text_valid(r.text);
                break;
            case '+':
            case '-':
            case 'e':
                milter_msg_env_edit(&m, MILTER_ENV_ADDRCPT, r.name, r.value);
                break;
            }
        } else if (!why) {
            abort(); /* a refusal always says why */
        }
        free(copy);
        in += used;
        size -= used;
    }
    if (body)
        milter_msg_body_end(&m);
    struct buf out = BUF_INIT;
    milter_msg_serialize(&m, &out);
    struct milter_msg again;
    milter_msg_parse(&again, out.data, out.len);
    milter_msg_free(&again);
    buf_free(&out);
    milter_msg_free(&m);
    return 0;
}
