/*
 * Fuzz target: the DATA/BDAT reader (src/smtp/data.c). The input is fed in
 * pieces whose sizes come from the first bytes; the result must not depend
 * on how the bytes were split, and the output never holds a bare CR or LF.
 * A Date or Message-ID field the reader notes is one that reading the
 * stored message back (msghdr_has) finds too: the session skips that read.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "smtp/data.h"
#include "smtp/msghdr.h"

static int sink(void *arg, const char *d, size_t n)
{
    buf_append(arg, d, n);
    return 0;
}

static void run(const uint8_t *in, size_t n, enum smtp_data_mode mode, size_t step, struct buf *out,
                enum smtp_data_status *st, size_t *used, int *done, unsigned *fields)
{
    struct smtp_data d = {0};
    smtp_data_init(&d, mode, 5000, 300, sink, out);
    size_t pos = 0;
    while (pos < n && !smtp_data_done(&d)) {
        size_t k = step && n - pos > step ? step : n - pos;
        pos += smtp_data_feed(&d, in + pos, k);
    }
    *done = smtp_data_done(&d);
    *st = mode == SMTP_DATA_BDAT ? smtp_data_finish(&d) : d.status;
    *used = pos;
    *fields =
        (smtp_data_has_fields(&d, SMTP_DATA_FIELD_DATE) ? SMTP_DATA_FIELD_DATE : 0) |
        (smtp_data_has_fields(&d, SMTP_DATA_FIELD_MESSAGE_ID) ? SMTP_DATA_FIELD_MESSAGE_ID : 0);
    smtp_data_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum smtp_data_mode mode = data[0] & 1 ? SMTP_DATA_BDAT : SMTP_DATA_DOT;
    size_t step = data[1] % 17 + 1;
    struct buf a = BUF_INIT, b = BUF_INIT;
    enum smtp_data_status sa, sb;
    size_t ua, ub;
    int da, db;
    unsigned fa, fb;
    run(data + 2, size - 2, mode, 0, &a, &sa, &ua, &da, &fa);
    run(data + 2, size - 2, mode, step, &b, &sb, &ub, &db, &fb);
    if (sa != sb || ua != ub || da != db || fa != fb)
        abort();
    if (sa == SMTP_DATA_OK) {
        if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
            abort();
        for (size_t i = 0; i < a.len; i++) {
            if (a.data[i] == '\n' && (i == 0 || a.data[i - 1] != '\r'))
                abort();
            if (a.data[i] == '\r' && (i + 1 >= a.len || a.data[i + 1] != '\n'))
                abort();
        }
        /*
         * Only a whole message: the session asks after the end of DATA, and
         * before it the reader may hold back a line it has already noted.
         */
        const char *text = a.data ? a.data : "";
        if (da && (fa & SMTP_DATA_FIELD_DATE) && !msghdr_has(text, a.len, "Date"))
            abort();
        if (da && (fa & SMTP_DATA_FIELD_MESSAGE_ID) && !msghdr_has(text, a.len, "Message-ID"))
            abort();
    }
    buf_free(&a);
    buf_free(&b);
    return 0;
}
