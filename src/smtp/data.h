/*
 * The message reader for DATA (dot-terminated, dot-stuffed; RFC 5321 4.1.1.4,
 * 4.5.2) and BDAT (counted chunks; RFC 3030) as a push state machine: the
 * caller feeds bytes as they arrive and the reader hands unstuffed message
 * bytes, CRLF kept, to a sink in large chunks.
 *
 * Only <CRLF>.<CRLF> ends DATA. A bare LF or bare CR anywhere, a line over
 * 998 octets (4.5.3.1.6), a header block over the header limit or a message
 * over the size limit is an error; the reader then stops writing to the
 * sink but keeps consuming to the terminator so the session stays in step
 * with the client (no SMTP smuggling). The error is reported at the end.
 *
 * Memory: a struct smtp_data lives in the session; its 64 KB output buffer
 * is allocated at the first byte and freed at the end.
 */
#ifndef HONGYAN_SMTP_DATA_H
#define HONGYAN_SMTP_DATA_H

#include <stddef.h>

#include "smtp/reply.h"

#define SMTP_DATA_CHUNK 65536
#define SMTP_DATA_LINE_MAX 998 /* octets before CRLF, RFC 5321 4.5.3.1.6 */

enum smtp_data_mode {
    SMTP_DATA_DOT,  /* DATA */
    SMTP_DATA_BDAT, /* BDAT chunks: no stuffing, the end is BDAT LAST */
};

enum smtp_data_status {
    SMTP_DATA_OK = 0,
    SMTP_DATA_BARE_LF,
    SMTP_DATA_BARE_CR,
    SMTP_DATA_LINE_TOO_LONG,
    SMTP_DATA_HEADER_TOO_BIG,
    SMTP_DATA_TOO_BIG,
    SMTP_DATA_WRITE_ERROR, /* the sink failed; errno in sink_errno */
};

/*
 * Header fields the reader notes (names matched case-insensitively, with
 * the colon right after the name; "Date :" is not noted), so that the
 * session knows without reading the message back that submitted mail
 * already has what RFC 6409 8.2 and 8.3 would make it add.
 */
enum smtp_data_field {
    SMTP_DATA_FIELD_DATE = 1 << 0,
    SMTP_DATA_FIELD_MESSAGE_ID = 1 << 1,
};

/* Receives message bytes; returns 0, or -1 with errno set (e.g. ENOSPC). */
typedef int (*smtp_data_sink)(void *arg, const char *data, size_t len);

struct smtp_data {
    enum smtp_data_mode mode;
    int state;
    int in_header;
    int hdr_line; /* what the current line looks like while in the header */
    int done;
    enum smtp_data_status status;
    int sink_errno;
    size_t line_len;
    size_t header_bytes;
    size_t msg_bytes; /* message octets after unstuffing, counted even past errors */
    size_t max_msg;   /* 0: no limit */
    size_t max_header;
    unsigned
        fields_seen;     /* enum smtp_data_field bits, in the header block as the client wrote it */
    char field_name[12]; /* the start of the current line's field name */
    smtp_data_sink sink;
    void *sink_arg;
    char *out; /* NULL until the first byte */
    size_t out_len;
};

/* Sets d up for one message; limits of 0 mean none. */
void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, size_t max_msg,
                    size_t max_header, smtp_data_sink sink, void *sink_arg);
/*
 * Feeds n bytes; returns how many were consumed. In DOT mode consumption
 * stops just past the terminator (smtp_data_done() is then true) and the
 * rest belongs to the next command; in BDAT mode everything is consumed.
 */
size_t smtp_data_feed(struct smtp_data *d, const void *data, size_t n);
/* BDAT LAST: final checks and flush. Also safe after DOT end. Returns the status. */
enum smtp_data_status smtp_data_finish(struct smtp_data *d);
int smtp_data_done(const struct smtp_data *d);
/* 1 when every field in fields (enum smtp_data_field bits) was in the header block. */
int smtp_data_has_fields(const struct smtp_data *d, unsigned fields);
/* Frees the output buffer (safe any time; idempotent). */
void smtp_data_release(struct smtp_data *d);
/* The reply for a failed status (5xx for the message, 4xx for our disk). */
void smtp_data_reply(const struct smtp_data *d, struct smtp_reply *r);

#endif
