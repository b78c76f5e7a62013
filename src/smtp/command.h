/*
 * One SMTP command line (without its CRLF) split into verb and arguments,
 * and the arguments of MAIL and RCPT parsed with their ESMTP parameters
 * (SIZE RFC 1870, BODY RFC 6152/3030, SMTPUTF8 RFC 6531, RET/ENVID/NOTIFY/
 * ORCPT RFC 3461, AUTH RFC 4954). Pure functions on caller memory, no
 * allocation; errors come back as a ready reply. Fuzzed by fuzz_command.c.
 */
#ifndef HONGYAN_SMTP_COMMAND_H
#define HONGYAN_SMTP_COMMAND_H

#include <stddef.h>

#include "smtp/address.h"
#include "smtp/reply.h"

enum smtp_verb {
    SMTP_CMD_UNKNOWN = 0,
    SMTP_CMD_HELO,
    SMTP_CMD_EHLO,
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_BDAT,
    SMTP_CMD_RSET,
    SMTP_CMD_NOOP,
    SMTP_CMD_QUIT,
    SMTP_CMD_VRFY,
    SMTP_CMD_EXPN,
    SMTP_CMD_HELP,
    SMTP_CMD_STARTTLS,
    SMTP_CMD_AUTH,
    SMTP_CMD_COUNT
};

struct smtp_command {
    enum smtp_verb verb;
    const char *name; /* canonical upper-case verb, static */
    const char *args; /* points into the line, after the verb and its space(s) */
    size_t args_len;  /* trailing white space removed */
};

/* Splits line; returns 0, or -1 with 500 5.5.2 for an unknown or malformed verb. */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
                       struct smtp_reply *err);

/* What the server advertised/allows, for the parameter checks. */
enum smtp_ext {
    SMTP_EXT_SIZE = 1,
    SMTP_EXT_8BITMIME = 2,
    SMTP_EXT_SMTPUTF8 = 4,
    SMTP_EXT_DSN = 8,
    SMTP_EXT_AUTH = 16,
    SMTP_EXT_CHUNKING = 32,
    /* Not an extension: MAIL FROM may name a local part alone (submission, RFC 6409 8.1). */
    SMTP_EXT_UNQUALIFIED_SENDER = 64,
};

enum smtp_body {
    SMTP_BODY_NONE = 0, /* not given: 7BIT */
    SMTP_BODY_7BIT,
    SMTP_BODY_8BITMIME,
};

#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2: "rfc822;" plus the address, decoded */
#define SMTP_XTEXT_MAX 500

struct smtp_mail {
    struct smtp_path from;
    unsigned long long size; /* SIZE=, 0 when not given */
    enum smtp_body body;
    int smtputf8;
    int ret;                        /* 0 none, 1 FULL, 2 HDRS (enum dsn_ret) */
    char envid[SMTP_ENVID_MAX + 1]; /* decoded xtext, "" when not given */
    char auth[SMTP_XTEXT_MAX + 1];  /* AUTH= decoded, "" when not given or "<>" */
};

/* NOTIFY= bits (RFC 3461 4.1); the same values as enum dsn_notify in queue/envelope.h. */
enum smtp_notify {
    SMTP_NOTIFY_NEVER = 1,
    SMTP_NOTIFY_SUCCESS = 2,
    SMTP_NOTIFY_FAILURE = 4,
    SMTP_NOTIFY_DELAY = 8,
};

struct smtp_rcpt {
    struct smtp_path to;
    unsigned notify;                /* enum smtp_notify bits; 0 when not given */
    char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;addr" decoded, "" when not given */
};

/*
 * MAIL arguments ("FROM:<path> params"); ext says which extensions were
 * advertised (EHLO) and may be used. A space after the colon is tolerated,
 * as Postfix does. 0, or -1 with the reply (501, 504, 552 for SIZE over
 * max_size when max_size is not 0, 555 5.5.4 for an unknown parameter).
 */
int smtp_mail_parse(const char *args, size_t len, unsigned ext, unsigned long long max_size,
                    struct smtp_mail *out, struct smtp_reply *err);

/* RCPT arguments ("TO:<path> params"); smtputf8 from the MAIL command. */
int smtp_rcpt_parse(const char *args, size_t len, unsigned ext, int smtputf8, struct smtp_rcpt *out,
                    struct smtp_reply *err);

/* EHLO/HELO argument: 0, or -1 with 501 5.5.4. */
int smtp_helo_check(const char *args, size_t len, struct smtp_reply *err);

/* BDAT arguments: "SIZE [LAST]"; 0, or -1 with 501 5.5.4. */
int smtp_bdat_parse(const char *args, size_t len, unsigned long long *size, int *last,
                    struct smtp_reply *err);

/*
 * Decodes RFC 3461 4 xtext ("+XX" hex escapes; other octets 33-126 except
 * '+' and '=') into out (NUL-terminated). -1 when malformed or too long.
 */
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t out_size);

#endif
