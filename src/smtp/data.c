/*
 * DATA/BDAT reader; see data.h. One state per position in the line so that
 * the terminator and every bare CR/LF are recognised whatever the chunk
 * boundaries, and a fast path that copies body text in spans.
 */
#include "smtp/data.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <stdlib.h>

#include "lib/xalloc.h"

enum {
    ST_BOL,    /* at the start of a line (after CRLF, or the first byte) */
    ST_TEXT,   /* inside a line */
    ST_CR,     /* saw CR inside a line */
    ST_DOT,    /* DATA: a '.' at the start of a line */
    ST_DOT_CR, /* DATA: ".\r" at the start of a line */
};

enum {
    HL_START, /* nothing seen on this line yet */
    HL_NAME,  /* field-name characters so far */
    HL_VALUE, /* a header field (after ':' or a continuation line) */
    HL_NOT,   /* not a header line: the body starts here */
};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, size_t max_msg,
                    size_t max_header, smtp_data_sink sink, void *sink_arg)
{
    char *keep = d->out; /* reuse the buffer when the caller kept it */
    memset(d, 0, sizeof *d);
    d->out = keep;
    d->mode = mode;
    d->state = ST_BOL;
    d->in_header = 1;
    d->hdr_line = HL_START;
    d->max_msg = max_msg;
    d->max_header = max_header;
    d->sink = sink;
    d->sink_arg = sink_arg;
}

static void fail(struct smtp_data *d, enum smtp_data_status s)
{
    if (d->status == SMTP_DATA_OK)
        d->status = s;
}

static void flush(struct smtp_data *d)
{
    if (d->out_len && d->status == SMTP_DATA_OK && d->sink(d->sink_arg, d->out, d->out_len) < 0) {
        d->sink_errno = errno ? errno : EIO;
        fail(d, SMTP_DATA_WRITE_ERROR);
    }
    d->out_len = 0;
}

/* Message bytes out: counted always, written only while nothing has failed. */
static void emit(struct smtp_data *d, const char *p, size_t n)
{
    d->msg_bytes += n;
    if (d->max_msg && d->msg_bytes > d->max_msg)
        fail(d, SMTP_DATA_TOO_BIG);
    if (d->status != SMTP_DATA_OK)
        return;
    if (!d->out)
        d->out = xmalloc(SMTP_DATA_CHUNK);
    while (n) {
        size_t room = SMTP_DATA_CHUNK - d->out_len;
        size_t k = n < room ? n : room;
        memcpy(d->out + d->out_len, p, k);
        d->out_len += k;
        p += k;
        n -= k;
        if (d->out_len == SMTP_DATA_CHUNK) {
            flush(d);
            if (d->status != SMTP_DATA_OK)
                return;
        }
    }
}

/* A field name ended with its colon: note the ones smtp_data_has_fields() answers for. */
static void header_name_end(struct smtp_data *d)
{
    static const struct {
        const char *name;
        unsigned bit;
    } noted[] = {
        {"Date", SMTP_DATA_FIELD_DATE},
        {"Message-ID", SMTP_DATA_FIELD_MESSAGE_ID},
    };
    for (size_t i = 0; i < sizeof noted / sizeof noted[0]; i++)
        if (d->line_len == strlen(noted[i].name) &&
            strncasecmp(d->field_name, noted[i].name, d->line_len) == 0)
            d->fields_seen |= noted[i].bit;
}

/* RFC 5322 3.6.8 ftext: printable US-ASCII except ':'. */
static void header_char(struct smtp_data *d, unsigned char c)
{
    /* line_len is the octet's offset in the line: it is counted after this. */
    switch (d->hdr_line) {
    case HL_START:
        if (c == ' ' || c == '\t')
            d->hdr_line = HL_VALUE; /* folded continuation (RFC 5322 2.2.3) */
        else if (c >= 33 && c <= 126 && c != ':')
            d->hdr_line = HL_NAME;
        else
            d->hdr_line = HL_NOT;
        if (d->hdr_line == HL_NAME)
            d->field_name[0] = (char)c;
        break;
    case HL_NAME:
        if (c == ':') {
            d->hdr_line = HL_VALUE;
            header_name_end(d);
        } else if (c < 33 || c > 126) {
            d->hdr_line = HL_NOT;
        } else if (d->line_len < sizeof d->field_name) {
            d->field_name[d->line_len] = (char)c;
        }
        break;
    default:
        break;
    }
}

static void line_check(struct smtp_data *d)
{
    if (d->line_len > SMTP_DATA_LINE_MAX)
        fail(d, SMTP_DATA_LINE_TOO_LONG);
}

/* A CRLF ended the current line. */
static void eol(struct smtp_data *d)
{
    emit(d, "\r\n", 2);
    if (d->in_header) {
        if (d->line_len == 0 || d->hdr_line != HL_VALUE) {
            d->in_header = 0; /* the empty line, or a line that is no header */
        } else {
            d->header_bytes += d->line_len + 2;
            if (d->max_header && d->header_bytes > d->max_header)
                fail(d, SMTP_DATA_HEADER_TOO_BIG);
        }
    }
    d->line_len = 0;
    d->hdr_line = HL_START;
    d->state = ST_BOL;
}

/* One ordinary octet (not CR or LF) of a line. */
static void text_char(struct smtp_data *d, const char *p)
{
    if (d->in_header)
        header_char(d, (unsigned char)*p);
    d->line_len++;
    line_check(d);
    emit(d, p, 1);
    d->state = ST_TEXT;
}

/* Where the run of ordinary octets from i ends: the next CR or LF, or n. */
static size_t text_run_end(const char *p, size_t i, size_t n)
{
    const char *cr = memchr(p + i, '\r', n - i);
    size_t end = cr ? (size_t)(cr - p) : n;
    const char *lf = memchr(p + i, '\n', end - i);
    return lf ? (size_t)(lf - p) : end;
}

/* A bare LF: an error, and the line does not end (so no terminator can follow). */
static void bare_lf(struct smtp_data *d)
{
    fail(d, SMTP_DATA_BARE_LF);
    d->line_len = 0;
    d->state = ST_TEXT;
}

size_t smtp_data_feed(struct smtp_data *d, const void *data, size_t n)
{
    const char *p = data;
    size_t i = 0;
    if (d->done)
        return 0;
    while (i < n) {
        char c = p[i];
        switch (d->state) {
        case ST_BOL:
            if (c == '.' && d->mode == SMTP_DATA_DOT) {
                d->state = ST_DOT;
                i++;
                continue;
            }
            /* the first octet of a line is otherwise ordinary text */
            __attribute__((fallthrough));
        case ST_TEXT:
            if (c == '\r') {
                d->state = ST_CR;
                i++;
            } else if (c == '\n') {
                bare_lf(d);
                i++;
            } else if (!d->in_header || d->hdr_line == HL_VALUE || d->hdr_line == HL_NOT) {
                /*
                 * Fast path: copy the run up to the next CR or LF. In the
                 * header too once the field name is over: header_char()
                 * looks at nothing after it.
                 */
                size_t j = text_run_end(p, i, n);
                d->line_len += j - i;
                line_check(d);
                emit(d, p + i, j - i);
                d->state = ST_TEXT;
                i = j;
            } else {
                text_char(d, p + i);
                i++;
            }
            continue;
        case ST_CR:
            if (c == '\n') {
                eol(d);
                i++;
                continue;
            }
            /* a bare CR; c is then read as ordinary text (it may be another CR) */
            fail(d, SMTP_DATA_BARE_CR);
            d->state = ST_TEXT;
            continue;
        case ST_DOT:
            if (c == '\r') {
                d->state = ST_DOT_CR;
                i++;
            } else if (c == '\n') {
                bare_lf(d);
                i++;
            } else {
                d->state = ST_TEXT; /* dot-stuffing: the leading '.' is dropped */
            }
            continue;
        case ST_DOT_CR:
            if (c == '\n') {
                /* <CRLF>.<CRLF>: the end of the message */
                i++;
                flush(d);
                d->done = 1;
                smtp_data_release(d);
                return i;
            }
            /* ".\r" then something else: a bare CR on a line that read "." */
            fail(d, SMTP_DATA_BARE_CR);
            d->line_len = 1;
            if (d->in_header)
                header_char(d, '.');
            emit(d, ".", 1);
            d->state = ST_TEXT;
            continue;
        }
    }
    return i;
}

enum smtp_data_status smtp_data_finish(struct smtp_data *d)
{
    if (!d->done) {
        if (d->state == ST_CR)
            fail(d, SMTP_DATA_BARE_CR);
        else if (d->state == ST_TEXT && d->line_len > 0)
            eol(d); /* BDAT: a last line without CRLF gets one */
        flush(d);
        d->done = 1;
    }
    smtp_data_release(d);
    return d->status;
}

int smtp_data_done(const struct smtp_data *d)
{
    return d->done;
}

void smtp_data_release(struct smtp_data *d)
{
    free(d->out);
    d->out = NULL;
    d->out_len = 0;
}

void smtp_data_reply(const struct smtp_data *d, struct smtp_reply *r)
{
    switch (d->status) {
    case SMTP_DATA_OK:
        smtp_reply_set(r, 250, "2.0.0", "Ok");
        break;
    case SMTP_DATA_BARE_LF:
        smtp_reply_set(r, 550, "5.6.0",
                       "Message contains a bare LF: lines must end with CRLF (RFC 5321 2.3.8)");
        break;
    case SMTP_DATA_BARE_CR:
        smtp_reply_set(r, 550, "5.6.0",
                       "Message contains a bare CR: lines must end with CRLF (RFC 5321 2.3.8)");
        break;
    case SMTP_DATA_LINE_TOO_LONG:
        smtp_reply_set(r, 550, "5.6.0", "Message has a line longer than 998 octets");
        break;
    case SMTP_DATA_HEADER_TOO_BIG:
        smtp_reply_set(r, 552, "5.3.4", "Message header size exceeds fixed limit");
        break;
    case SMTP_DATA_TOO_BIG:
        smtp_reply_set(r, 552, "5.3.4", "Message size exceeds fixed limit");
        break;
    case SMTP_DATA_WRITE_ERROR:
        if (d->sink_errno == ENOSPC || d->sink_errno == EDQUOT)
            smtp_reply_set(r, 452, "4.3.1", "Insufficient system storage");
        else
            smtp_reply_set(r, 451, "4.3.0", "Error: queue file write error");
        break;
    }
}

int smtp_data_has_fields(const struct smtp_data *d, unsigned fields)
{
    return (d->fields_seen & fields) == fields;
}
