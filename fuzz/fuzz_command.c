/*
 * Fuzz target: command lines and MAIL/RCPT/BDAT/EHLO argument parsing
 * (src/smtp/command.c), as the session would run them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ext = data[0] & 0x3f;
    const char *line = (const char *)data + 1;
    size_t n = size - 1;
    struct smtp_command c;
    struct smtp_reply r = {0};
    if (smtp_command_parse(line, n, &c, &r) < 0) {
        if (r.code != 500)
            abort();
        return 0;
    }
    if (c.args < line || c.args + c.args_len > line + n)
        abort();
    struct smtp_mail m;
    struct smtp_rcpt t;
    unsigned long long sz;
    int last;
    switch (c.verb) {
    case SMTP_CMD_MAIL:
        if (smtp_mail_parse(c.args, c.args_len, ext, 1000, &m, &r) == 0) {
            if (m.size > 1000 || strlen(m.envid) > SMTP_ENVID_MAX)
                abort();
        } else if (r.code < 500) {
            abort();
        }
        break;
    case SMTP_CMD_RCPT:
        if (smtp_rcpt_parse(c.args, c.args_len, ext, data[0] >> 7, &t, &r) == 0 &&
            strlen(t.orcpt) > SMTP_ORCPT_MAX)
            abort();
        break;
    case SMTP_CMD_BDAT:
        smtp_bdat_parse(c.args, c.args_len, &sz, &last, &r);
        break;
    case SMTP_CMD_EHLO:
    case SMTP_CMD_HELO:
        smtp_helo_check(c.args, c.args_len, &r);
        break;
    default:
        break;
    }
    char out[64];
    smtp_xtext_decode(line, n, out, sizeof out);
    return 0;
}
