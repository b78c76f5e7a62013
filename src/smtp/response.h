/*
 * SMTP replies as a client reads them (RFC 5321 4.2): one or more lines
 * "CODE-text" ending with "CODE text", every line with the same code, the
 * enhanced status code (RFC 2034, RFC 3463) picked from the first line, and
 * the EHLO keywords (RFC 5321 4.1.1.1) the server announced. Malformed
 * replies are errors with a reason, never guesses; line count and length
 * are capped so a peer cannot make us buffer without end. (The server's
 * own replies are struct smtp_reply in smtp/reply.h: a different thing.)
 *
 * Ownership: struct smtp_response owns its strings; smtp_response_reset() empties
 * it for reuse and smtp_response_clear() releases everything.
 */
#ifndef HONGYAN_SMTP_RESPONSE_H
#define HONGYAN_SMTP_RESPONSE_H

#include <stddef.h>

#include "lib/buf.h"

/* RFC 5321 4.5.3.1.5 allows 512 octets; we take more, for real servers' sake. */
#define SMTP_RESPONSE_LINE_MAX 4096
#define SMTP_RESPONSE_LINES_MAX 100

struct smtp_response {
    int code;                             /* 200..599 once complete */
    char enh[16];                         /* "5.1.1", or "" when the server sent none */
    char *lines[SMTP_RESPONSE_LINES_MAX]; /* text of each line after "CODE-" (heap) */
    size_t nlines;
    int done; /* the last line ("CODE text") was seen */
};

enum smtp_response_feed {
    SMTP_RESPONSE_MORE,  /* a continuation line: feed the next */
    SMTP_RESPONSE_DONE,  /* the reply is complete */
    SMTP_RESPONSE_ERROR, /* malformed: err says why; the connection is not to be trusted */
};

void smtp_response_reset(struct smtp_response *r);
void smtp_response_clear(struct smtp_response *r);

/*
 * Feeds one line without its CRLF (a trailing CR is tolerated and
 * stripped). Lines may contain any octet; NUL and other control characters
 * are replaced by '?' in the stored text so that logs stay one line.
 */
enum smtp_response_feed smtp_response_feed(struct smtp_response *r, const char *line, size_t len,
                                           struct buf *err);

/*
 * The reply for logs and DSNs, as Postfix prints it: "550 5.1.1 text of
 * line one text of line two" (lines joined with a space; the enhanced code
 * once). Appends to out.
 */
void smtp_response_format(const struct smtp_response *r, struct buf *out);

/*
 * The enhanced status code to record: the server's when it sent one whose
 * class matches the reply code, else one derived from the code and the
 * stage ("X.0.0" with X from the reply class, as Postfix does).
 */
const char *smtp_response_dsn(const struct smtp_response *r, char out[16]);

/* Service extensions (EHLO keywords) the client uses. */
enum smtp_ehlo_ext {
    SMTP_EHLO_PIPELINING = 1 << 0,
    SMTP_EHLO_SIZE = 1 << 1,
    SMTP_EHLO_8BITMIME = 1 << 2,
    SMTP_EHLO_SMTPUTF8 = 1 << 3,
    SMTP_EHLO_DSN = 1 << 4,
    SMTP_EHLO_STARTTLS = 1 << 5,
    SMTP_EHLO_AUTH = 1 << 6,
    SMTP_EHLO_CHUNKING = 1 << 7,
    SMTP_EHLO_ENHANCEDSTATUSCODES = 1 << 8,
};

enum smtp_ehlo_auth {
    SMTP_EHLO_AUTH_PLAIN = 1 << 0,
    SMTP_EHLO_AUTH_LOGIN = 1 << 1,
    SMTP_EHLO_AUTH_CRAM_MD5 = 1 << 2,
    SMTP_EHLO_AUTH_XOAUTH2 = 1 << 3,
    SMTP_EHLO_AUTH_OTHER = 1 << 4,
};

struct smtp_ehlo {
    unsigned ext;            /* enum smtp_ehlo_ext bits */
    unsigned auth;           /* enum smtp_ehlo_auth bits */
    unsigned long long size; /* SIZE limit; 0 when none was announced (RFC 1870: no limit) */
};

/*
 * Reads the keywords of a complete 250 EHLO reply (the first line is the
 * greeting and is skipped). Unknown keywords are ignored; "AUTH=PLAIN" (the
 * old pre-standard form) is read as AUTH too.
 */
void smtp_ehlo_parse(const struct smtp_response *r, struct smtp_ehlo *out);

#endif
