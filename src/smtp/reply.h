/*
 * An SMTP reply as the parsers report it: basic code (RFC 5321 4.2),
 * enhanced status (RFC 3463) and text. Parsers fill these with static
 * strings, so a reply costs nothing to make and nothing to free.
 */
#ifndef HONGYAN_SMTP_REPLY_H
#define HONGYAN_SMTP_REPLY_H

struct smtp_reply {
    int code;           /* 0 when there is no reply */
    const char *status; /* "5.5.4", static */
    const char *text;   /* static */
};

static inline void smtp_reply_set(struct smtp_reply *r, int code, const char *status,
                                  const char *text)
{
    if (r) {
        r->code = code;
        r->status = status;
        r->text = text;
    }
}

#endif
