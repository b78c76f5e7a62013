/*
 * SMTP command lines: verb table, MAIL/RCPT argument grammar (RFC 5321
 * 4.1.1.2-3) and the ESMTP parameters hongyan advertises. Everything works on
 * the caller's line and fixed-size output structs.
 */
#include "smtp/command.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_CMD_HELO},         {"EHLO", SMTP_CMD_EHLO}, {"MAIL", SMTP_CMD_MAIL},
    {"RCPT", SMTP_CMD_RCPT},         {"DATA", SMTP_CMD_DATA}, {"BDAT", SMTP_CMD_BDAT},
    {"RSET", SMTP_CMD_RSET},         {"NOOP", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT},
    {"VRFY", SMTP_CMD_VRFY},         {"EXPN", SMTP_CMD_EXPN}, {"HELP", SMTP_CMD_HELP},
    {"STARTTLS", SMTP_CMD_STARTTLS}, {"AUTH", SMTP_CMD_AUTH},
};

static int is_sp(char c)
{
    return c == ' ' || c == '\t';
}

int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
                       struct smtp_reply *err)
{
    size_t v = 0;
    memset(cmd, 0, sizeof *cmd);
    while (v < len && ((line[v] >= 'a' && line[v] <= 'z') || (line[v] >= 'A' && line[v] <= 'Z')))
        v++;
    if (v == 0 || (v < len && !is_sp(line[v]))) {
        smtp_reply_set(err, 500, "5.5.2", "Error: command not recognized");
        return -1;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strlen(verbs[i].name) == v && strncasecmp(line, verbs[i].name, v) == 0) {
            cmd->verb = verbs[i].verb;
            cmd->name = verbs[i].name;
            break;
        }
    }
    if (cmd->verb == SMTP_CMD_UNKNOWN) {
        smtp_reply_set(err, 500, "5.5.2", "Error: command not recognized");
        return -1;
    }
    size_t a = v;
    while (a < len && is_sp(line[a]))
        a++;
    size_t e = len;
    while (e > a && is_sp(line[e - 1]))
        e--;
    cmd->args = line + a;
    cmd->args_len = e - a;
    return 0;
}

int smtp_xtext_decode(const char *s, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            /* hexchar = "+" 2(%x30-39 / %x41-46): upper-case hex only (RFC 3461 4) */
            if (i + 2 >= len)
                return -1;
            unsigned v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = s[i + k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= (unsigned)(h - '0');
                else if (h >= 'A' && h <= 'F')
                    v |= (unsigned)(h - 'A' + 10);
                else
                    return -1;
            }
            c = (unsigned char)v;
            i += 2;
        } else if (c < 33 || c > 126 || c == '=') {
            return -1;
        }
        if (o + 1 >= out_size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Case-insensitive match of a keyword of length n. */
static int kw_is(const char *k, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(k, want, n) == 0;
}

struct param {
    const char *key;
    size_t key_len;
    const char *val; /* NULL when there is no '=' */
    size_t val_len;
};

/*
 * Next esmtp-param (RFC 5321 4.1.2): keyword = alnum *(alnum / "-"),
 * esmtp-value = 1*(%d33-60 / %d62-126). Returns 1 with p filled, 0 at the
 * end, -1 on a syntax error.
 */
static int next_param(const char **s, const char *end, struct param *p)
{
    const char *c = *s;
    while (c < end && is_sp(*c))
        c++;
    if (c == end)
        return 0;
    p->key = c;
    while (c < end && ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                       (*c >= '0' && *c <= '9') || (*c == '-' && c > p->key)))
        c++;
    p->key_len = (size_t)(c - p->key);
    if (p->key_len == 0)
        return -1;
    p->val = NULL;
    p->val_len = 0;
    if (c < end && *c == '=') {
        c++;
        p->val = c;
        while (c < end && !is_sp(*c)) {
            unsigned char ch = (unsigned char)*c;
            /* RFC 6531 3.3 lets esmtp-value carry UTF-8; '=' and controls never. */
            if (ch < 33 || ch == '=' || ch == 127)
                return -1;
            c++;
        }
        p->val_len = (size_t)(c - p->val);
        if (p->val_len == 0)
            return -1;
    }
    if (c < end && !is_sp(*c))
        return -1;
    *s = c;
    return 1;
}

static int digits(const char *s, size_t n, unsigned long long *out)
{
    unsigned long long v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "FROM:" / "TO:" then optional white space (Postfix leniency), then the path. */
static int path_prefix(const char *args, size_t len, const char *word, size_t *off)
{
    size_t wl = strlen(word);
    if (len < wl || strncasecmp(args, word, wl) != 0)
        return -1;
    size_t i = wl;
    while (i < len && is_sp(args[i]))
        i++;
    *off = i;
    return 0;
}

static int unsupported(struct smtp_reply *err)
{
    smtp_reply_set(err, 555, "5.5.4", "Unsupported option");
    return -1;
}

static int bad_param(struct smtp_reply *err)
{
    smtp_reply_set(err, 501, "5.5.4", "Bad parameter syntax");
    return -1;
}

int smtp_mail_parse(const char *args, size_t len, unsigned ext, unsigned long long max_size,
                    struct smtp_mail *out, struct smtp_reply *err)
{
    size_t off, used;
    memset(out, 0, sizeof *out);
    if (path_prefix(args, len, "FROM:", &off) < 0) {
        smtp_reply_set(err, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return -1;
    }
    unsigned opts = SMTP_ADDR_ALLOW_NULL | ((ext & SMTP_EXT_SMTPUTF8) ? SMTP_ADDR_ALLOW_UTF8 : 0) |
                    ((ext & SMTP_EXT_UNQUALIFIED_SENDER) ? SMTP_ADDR_ALLOW_UNQUALIFIED : 0);
    if (smtp_path_parse(args + off, len - off, opts, &out->from, &used, err) < 0) {
        if (err && err->code == 501 && strcmp(err->status, "5.1.3") == 0)
            err->status = "5.1.7"; /* RFC 3463: bad sender's mailbox syntax */
        return -1;
    }
    const char *p = args + off + used, *end = args + len;
    if (p < end && !is_sp(*p))
        return bad_param(err);
    unsigned seen = 0;
    struct param pr;
    int r;
    while ((r = next_param(&p, end, &pr)) > 0) {
        unsigned bit;
        if (kw_is(pr.key, pr.key_len, "SIZE") && (ext & SMTP_EXT_SIZE)) {
            bit = 1;
            if (!pr.val || digits(pr.val, pr.val_len, &out->size) < 0)
                return bad_param(err);
        } else if (kw_is(pr.key, pr.key_len, "BODY")) {
            bit = 2;
            if (!pr.val)
                return bad_param(err);
            if (kw_is(pr.val, pr.val_len, "7BIT")) {
                out->body = SMTP_BODY_7BIT;
            } else if (kw_is(pr.val, pr.val_len, "8BITMIME") && (ext & SMTP_EXT_8BITMIME)) {
                out->body = SMTP_BODY_8BITMIME;
            } else if (kw_is(pr.val, pr.val_len, "BINARYMIME")) {
                /* RFC 3030 3: not advertised, so refused */
                smtp_reply_set(err, 555, "5.5.4", "BINARYMIME is not supported");
                return -1;
            } else {
                smtp_reply_set(err, 501, "5.5.4", "Unknown BODY type");
                return -1;
            }
        } else if (kw_is(pr.key, pr.key_len, "SMTPUTF8") && (ext & SMTP_EXT_SMTPUTF8)) {
            bit = 4;
            if (pr.val)
                return bad_param(err);
            out->smtputf8 = 1;
        } else if (kw_is(pr.key, pr.key_len, "RET") && (ext & SMTP_EXT_DSN)) {
            bit = 8;
            if (pr.val && kw_is(pr.val, pr.val_len, "FULL"))
                out->ret = 1;
            else if (pr.val && kw_is(pr.val, pr.val_len, "HDRS"))
                out->ret = 2;
            else
                return bad_param(err);
        } else if (kw_is(pr.key, pr.key_len, "ENVID") && (ext & SMTP_EXT_DSN)) {
            bit = 16;
            if (!pr.val || smtp_xtext_decode(pr.val, pr.val_len, out->envid, sizeof out->envid) < 0)
                return bad_param(err);
        } else if (kw_is(pr.key, pr.key_len, "AUTH") && (ext & SMTP_EXT_AUTH)) {
            bit = 32;
            /* RFC 4954 5: "<>" or an xtext mailbox; kept for the AUTH work to judge. */
            if (!pr.val)
                return bad_param(err);
            if (!kw_is(pr.val, pr.val_len, "<>") &&
                smtp_xtext_decode(pr.val, pr.val_len, out->auth, sizeof out->auth) < 0)
                return bad_param(err);
        } else {
            return unsupported(err);
        }
        if (seen & bit) {
            smtp_reply_set(err, 501, "5.5.4", "Duplicate parameter");
            return -1;
        }
        seen |= bit;
    }
    if (r < 0)
        return bad_param(err);
    if ((out->from.flags & SMTP_ADDR_UTF8) && !out->smtputf8) {
        smtp_reply_set(err, 553, "5.6.7", "UTF-8 address requires SMTPUTF8");
        return -1;
    }
    if (max_size && out->size > max_size) {
        smtp_reply_set(err, 552, "5.3.4", "Message size exceeds fixed limit");
        return -1;
    }
    return 0;
}

int smtp_rcpt_parse(const char *args, size_t len, unsigned ext, int smtputf8, struct smtp_rcpt *out,
                    struct smtp_reply *err)
{
    size_t off, used;
    memset(out, 0, sizeof *out);
    if (path_prefix(args, len, "TO:", &off) < 0) {
        smtp_reply_set(err, 501, "5.5.4", "Syntax: RCPT TO:<address>");
        return -1;
    }
    unsigned opts = SMTP_ADDR_ALLOW_POSTMASTER | (smtputf8 ? SMTP_ADDR_ALLOW_UTF8 : 0);
    if (smtp_path_parse(args + off, len - off, opts, &out->to, &used, err) < 0)
        return -1;
    const char *p = args + off + used, *end = args + len;
    if (p < end && !is_sp(*p))
        return bad_param(err);
    unsigned seen = 0;
    struct param pr;
    int r;
    while ((r = next_param(&p, end, &pr)) > 0) {
        unsigned bit;
        if (kw_is(pr.key, pr.key_len, "NOTIFY") && (ext & SMTP_EXT_DSN)) {
            bit = 1;
            if (!pr.val)
                return bad_param(err);
            /* "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) (RFC 3461 4.1) */
            const char *v = pr.val, *vend = pr.val + pr.val_len;
            while (v < vend) {
                const char *comma = memchr(v, ',', (size_t)(vend - v));
                size_t n = comma ? (size_t)(comma - v) : (size_t)(vend - v);
                if (kw_is(v, n, "NEVER"))
                    out->notify |= SMTP_NOTIFY_NEVER;
                else if (kw_is(v, n, "SUCCESS"))
                    out->notify |= SMTP_NOTIFY_SUCCESS;
                else if (kw_is(v, n, "FAILURE"))
                    out->notify |= SMTP_NOTIFY_FAILURE;
                else if (kw_is(v, n, "DELAY"))
                    out->notify |= SMTP_NOTIFY_DELAY;
                else
                    return bad_param(err);
                v += n + (comma ? 1 : 0);
                if (comma && v == vend)
                    return bad_param(err);
            }
            if ((out->notify & SMTP_NOTIFY_NEVER) && out->notify != SMTP_NOTIFY_NEVER)
                return bad_param(err);
        } else if (kw_is(pr.key, pr.key_len, "ORCPT") && (ext & SMTP_EXT_DSN)) {
            bit = 2;
            /* addr-type ";" xtext (RFC 3461 4.2); addr-type is an atom: rfc822, utf-8 */
            const char *semi = pr.val ? memchr(pr.val, ';', pr.val_len) : NULL;
            if (!semi || semi == pr.val)
                return bad_param(err);
            size_t tl = (size_t)(semi - pr.val);
            for (size_t i = 0; i < tl; i++) {
                char ch = pr.val[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-'))
                    return bad_param(err);
            }
            if (tl + 1 >= sizeof out->orcpt)
                return bad_param(err);
            memcpy(out->orcpt, pr.val, tl + 1);
            for (size_t i = 0; i < tl; i++)
                if (out->orcpt[i] >= 'A' && out->orcpt[i] <= 'Z')
                    out->orcpt[i] = (char)(out->orcpt[i] - 'A' + 'a');
            size_t rest = pr.val_len - tl - 1;
            if (rest == 0 || smtp_xtext_decode(semi + 1, rest, out->orcpt + tl + 1,
                                               sizeof out->orcpt - tl - 1) < 0)
                return bad_param(err);
        } else {
            return unsupported(err);
        }
        if (seen & bit) {
            smtp_reply_set(err, 501, "5.5.4", "Duplicate parameter");
            return -1;
        }
        seen |= bit;
    }
    if (r < 0)
        return bad_param(err);
    return 0;
}

int smtp_helo_check(const char *args, size_t len, struct smtp_reply *err)
{
    /*
     * RFC 5321 4.1.4: a server must not refuse a session because the name
     * does not match; we only insist on one printable token of sane length.
     */
    if (len == 0 || len > SMTP_DOMAIN_MAX) {
        smtp_reply_set(err, 501, "5.5.4", "Syntax: EHLO hostname");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)args[i];
        if (c <= 32 || c == 127) {
            smtp_reply_set(err, 501, "5.5.4", "Syntax: EHLO hostname");
            return -1;
        }
    }
    return 0;
}

int smtp_bdat_parse(const char *args, size_t len, unsigned long long *size, int *last,
                    struct smtp_reply *err)
{
    size_t n = 0;
    while (n < len && !is_sp(args[n]))
        n++;
    *last = 0;
    if (digits(args, n, size) < 0)
        goto bad;
    size_t i = n;
    while (i < len && is_sp(args[i]))
        i++;
    if (i < len) {
        if (!kw_is(args + i, len - i, "LAST"))
            goto bad;
        *last = 1;
    }
    return 0;
bad:
    smtp_reply_set(err, 501, "5.5.4", "Syntax: BDAT size [LAST]");
    return -1;
}
