/*
 * Envelope records as line-oriented text (see envelope.h). The first line
 * carries the format version; every later line is "KEY field...", fields
 * separated by one space and escaped so any address round-trips. Results
 * are appended as further lines; the decoder replays them in order. After
 * the commit record, a last line without its newline or anything that does
 * not parse (a power cut mid-append) ends the envelope: a torn tail.
 *
 * Fields: "-" is NULL, "=" is the empty string, otherwise %XX escapes for
 * bytes <= 0x20, 0x7f, '%', and a lone '-' or '=' (RFC 3461 xtext in
 * spirit, but byte-exact: UTF-8 passes through unescaped).
 */
#include "queue/envelope.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"

/*
 * Version 2 added the "C size" commit record; version 1 files (without it)
 * are still read. A binary that knows only version 1 rejects version 2 files
 * as "bad or missing version line" rather than misreading them.
 */
#define ENVELOPE_MAGIC "HONGYAN-ENVELOPE 2"
#define ENVELOPE_MAGIC_V1 "HONGYAN-ENVELOPE 1"
#define ENVELOPE_MAX_FIELDS 8
#define ENVELOPE_MAX_RCPTS 100000

struct envelope *envelope_new(void)
{
    struct envelope *e = xcalloc(1, sizeof *e);
    e->sender = xstrdup("");
    e->data_size = -1;
    return e;
}

static void envelope_rcpt_clear(struct envelope_rcpt *r)
{
    free(r->address);
    free(r->orcpt);
    free(r->last_error);
    free(r->dsn_status);
}

void envelope_free(struct envelope *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->nrcpts; i++)
        envelope_rcpt_clear(&e->rcpts[i]);
    free(e->rcpts);
    free(e->sender);
    free(e->envid);
    free(e);
}

struct envelope_rcpt *envelope_add_rcpt(struct envelope *e, const char *address)
{
    e->rcpts = xrealloc(e->rcpts, (e->nrcpts + 1) * sizeof *e->rcpts);
    struct envelope_rcpt *r = &e->rcpts[e->nrcpts++];
    memset(r, 0, sizeof *r);
    r->address = xstrdup(address ? address : "");
    return r;
}

static void envelope_put_field(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_putc(out, ' ');
    if (s == NULL) {
        buf_putc(out, '-');
        return;
    }
    if (*s == '\0') {
        buf_putc(out, '=');
        return;
    }
    if ((s[0] == '-' || s[0] == '=') && s[1] == '\0') {
        buf_printf(out, "%%%02X", (unsigned char)s[0]);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '%') {
            buf_putc(out, '%');
            buf_putc(out, hex[*p >> 4]);
            buf_putc(out, hex[*p & 15]);
        } else {
            buf_putc(out, (char)*p);
        }
    }
}

static char envelope_state_char(enum rcpt_state s)
{
    switch (s) {
    case RCPT_DELIVERED:
        return 'D';
    case RCPT_BOUNCED:
        return 'B';
    case RCPT_DELETED:
        return 'X';
    case RCPT_PENDING:
        break;
    }
    return 'P';
}

void envelope_encode_result(const struct envelope *e, size_t i, struct buf *out)
{
    const struct envelope_rcpt *r = &e->rcpts[i];
    buf_printf(out, "X %zu %c %d", i, envelope_state_char(r->state), r->attempts);
    envelope_put_field(out, r->dsn_status);
    envelope_put_field(out, r->last_error);
    buf_putc(out, '\n');
}

void envelope_encode_schedule(const struct envelope *e, struct buf *out)
{
    buf_printf(out, "N %lld %d\n", (long long)e->next_try, e->attempts);
}

void envelope_encode_delay_warned(const struct envelope *e, struct buf *out)
{
    buf_printf(out, "W %lld\n", (long long)e->delay_warned);
}

void envelope_encode_commit(long long data_size, struct buf *out)
{
    buf_printf(out, "C %lld\n", data_size);
}

void envelope_encode(const struct envelope *e, struct buf *out)
{
    buf_puts(out, ENVELOPE_MAGIC "\n");
    buf_puts(out, "I");
    envelope_put_field(out, e->queue_id);
    buf_printf(out, "\nT %lld\nS", (long long)e->arrival);
    envelope_put_field(out, e->sender);
    buf_puts(out, "\nE");
    envelope_put_field(out, e->envid);
    buf_printf(out, "\nF %d %d %d %d %d\n", (int)e->ret, e->smtputf8, e->body_8bit, e->hold,
               e->is_bounce);
    envelope_encode_schedule(e, out);
    if (e->delay_warned)
        envelope_encode_delay_warned(e, out);
    for (size_t i = 0; i < e->nrcpts; i++) {
        const struct envelope_rcpt *r = &e->rcpts[i];
        buf_puts(out, "R");
        envelope_put_field(out, r->address);
        envelope_put_field(out, r->orcpt);
        buf_printf(out, " %u\n", r->notify);
        if (r->state != RCPT_PENDING || r->attempts || r->last_error || r->dsn_status)
            envelope_encode_result(e, i, out);
    }
}

/* Decodes one escaped field; *out is NULL for "-". -1 when malformed. */
static int envelope_get_field(const char *f, char **out)
{
    *out = NULL;
    if (*f == '\0') /* the encoder writes "=" for the empty string */
        return -1;
    if (strcmp(f, "-") == 0)
        return 0;
    if (strcmp(f, "=") == 0) {
        *out = xstrdup("");
        return 0;
    }
    struct buf b = BUF_INIT;
    for (const char *p = f; *p; p++) {
        if (*p != '%') {
            buf_putc(&b, *p);
            continue;
        }
        int v = 0;
        for (int k = 1; k <= 2; k++) {
            char c = p[k];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : -1;
            if (d < 0) {
                buf_free(&b);
                return -1;
            }
            v = v * 16 + d;
        }
        if (v == 0) { /* a NUL would silently truncate the address */
            buf_free(&b);
            return -1;
        }
        buf_putc(&b, (char)v);
        p += 2;
    }
    *out = buf_steal(&b);
    if (*out == NULL)
        *out = xstrdup("");
    return 0;
}

static int envelope_get_ll(const char *f, long long min, long long max, long long *out)
{
    if (*f == '\0')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(f, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Splits line (modified in place) at single spaces; returns the field count or -1. */
static int envelope_split(char *line, char **fields)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == ENVELOPE_MAX_FIELDS)
            return -1;
        fields[n++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    return n;
}

static int envelope_parse_line(struct envelope *e, char *line, int *seen, struct buf *err)
{
    char *f[ENVELOPE_MAX_FIELDS];
    int n = envelope_split(line, f);
    long long v[5];
    if (n < 1 || strlen(f[0]) != 1)
        goto bad;
    switch (f[0][0]) {
    case 'I': {
        char *id;
        if (n != 2 || envelope_get_field(f[1], &id) < 0)
            goto bad;
        str_copy(e->queue_id, sizeof e->queue_id, id ? id : "");
        free(id);
        return 0;
    }
    case 'T':
        if (n != 2 || envelope_get_ll(f[1], 0, LLONG_MAX, &v[0]) < 0)
            goto bad;
        e->arrival = (time_t)v[0];
        return 0;
    case 'S': {
        char *s;
        if (n != 2 || envelope_get_field(f[1], &s) < 0 || s == NULL)
            goto bad;
        free(e->sender);
        e->sender = s;
        *seen |= 1;
        return 0;
    }
    case 'E':
        if (n != 2)
            goto bad;
        free(e->envid);
        e->envid = NULL;
        if (envelope_get_field(f[1], &e->envid) < 0)
            goto bad;
        return 0;
    case 'F':
        if (n != 6)
            goto bad;
        for (int k = 0; k < 5; k++)
            if (envelope_get_ll(f[k + 1], 0, k == 0 ? DSN_RET_HDRS : 1, &v[k]) < 0)
                goto bad;
        e->ret = (enum dsn_ret)v[0];
        e->smtputf8 = (int)v[1];
        e->body_8bit = (int)v[2];
        e->hold = (int)v[3];
        e->is_bounce = (int)v[4];
        return 0;
    case 'C':
        if (n != 2 || envelope_get_ll(f[1], 0, LLONG_MAX, &v[0]) < 0)
            goto bad;
        e->data_size = v[0];
        return 0;
    case 'W':
        if (n != 2 || envelope_get_ll(f[1], 0, LLONG_MAX, &v[0]) < 0)
            goto bad;
        e->delay_warned = (time_t)v[0];
        return 0;
    case 'N':
        if (n != 3 || envelope_get_ll(f[1], 0, LLONG_MAX, &v[0]) < 0 ||
            envelope_get_ll(f[2], 0, INT_MAX, &v[1]) < 0)
            goto bad;
        e->next_try = (time_t)v[0];
        e->attempts = (int)v[1];
        return 0;
    case 'R': {
        char *addr, *orcpt;
        if (n != 4 || e->nrcpts >= ENVELOPE_MAX_RCPTS || envelope_get_ll(f[3], 0, 15, &v[0]) < 0)
            goto bad;
        if (envelope_get_field(f[1], &addr) < 0 || addr == NULL) {
            free(addr);
            goto bad;
        }
        if (envelope_get_field(f[2], &orcpt) < 0) {
            free(addr);
            goto bad;
        }
        struct envelope_rcpt *r = envelope_add_rcpt(e, addr);
        free(addr);
        r->orcpt = orcpt;
        r->notify = (unsigned)v[0];
        return 0;
    }
    case 'X': {
        if (n != 6 || envelope_get_ll(f[1], 0, LLONG_MAX, &v[0]) < 0 ||
            (unsigned long long)v[0] >= e->nrcpts || strlen(f[2]) != 1 ||
            envelope_get_ll(f[3], 0, INT_MAX, &v[1]) < 0)
            goto bad;
        enum rcpt_state st;
        switch (f[2][0]) {
        case 'P':
            st = RCPT_PENDING;
            break;
        case 'D':
            st = RCPT_DELIVERED;
            break;
        case 'B':
            st = RCPT_BOUNCED;
            break;
        case 'X':
            st = RCPT_DELETED;
            break;
        default:
            goto bad;
        }
        char *dsn, *reply;
        if (envelope_get_field(f[4], &dsn) < 0)
            goto bad;
        if (envelope_get_field(f[5], &reply) < 0) {
            free(dsn);
            goto bad;
        }
        struct envelope_rcpt *r = &e->rcpts[v[0]];
        r->state = st;
        r->attempts = (int)v[1];
        free(r->dsn_status);
        r->dsn_status = dsn;
        free(r->last_error);
        r->last_error = reply;
        return 0;
    }
    default:
        break;
    }
bad:
    buf_printf(err, "malformed envelope record '%c'", n >= 1 && f[0][0] ? f[0][0] : '?');
    return -1;
}

struct envelope *envelope_decode_prefix(const char *text, size_t len, size_t *intact,
                                        struct buf *err)
{
    if (intact)
        *intact = 0;
    const char *nl = memchr(text, '\n', len);
    size_t mlen = strlen(ENVELOPE_MAGIC);
    if (nl == NULL || (size_t)(nl - text) != mlen ||
        (memcmp(text, ENVELOPE_MAGIC, mlen) != 0 && memcmp(text, ENVELOPE_MAGIC_V1, mlen) != 0)) {
        buf_puts(err, "not an envelope (bad or missing version line)");
        return NULL;
    }
    struct envelope *e = envelope_new();
    int seen = 0;
    size_t lineno = 1;
    const char *p = nl + 1, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break; /* truncated last line: an append cut short by a crash */
        lineno++;
        int rc;
        struct buf why = BUF_INIT;
        if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
            buf_puts(&why, "NUL byte in envelope");
            rc = -1;
        } else {
            char *line = xstrndup(p, (size_t)(eol - p));
            rc = envelope_parse_line(e, line, &seen, &why);
            free(line);
        }
        int torn = rc < 0 && e->data_size >= 0;
        if (rc < 0 && !torn)
            buf_printf(err, "%s at line %zu", buf_cstr(&why), lineno);
        buf_free(&why);
        if (torn) {
            /*
             * Past the commit record, which was synced before the 250, come
             * results appended without waiting for a sync. A power cut can
             * leave their place as NULs (ext4 commits a file's new size
             * every 5 s, its data pages up to 30 s later) or as a partial
             * line: everything from here on is a torn tail. What came
             * before is whole, and losing a result only means an earlier
             * retry (docs/queue.md, Durability).
             */
            break;
        }
        if (rc < 0) {
            envelope_free(e);
            return NULL;
        }
        p = eol + 1;
    }
    if (!(seen & 1)) {
        buf_puts(err, "envelope has no sender record");
        envelope_free(e);
        return NULL;
    }
    if (intact)
        *intact = (size_t)(p - text);
    return e;
}

struct envelope *envelope_decode(const char *text, size_t len, struct buf *err)
{
    return envelope_decode_prefix(text, len, NULL, err);
}
