/* The message as milters edit it; see milter_msg.h. */
#include "milter/milter_msg.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"

/* Length of the field name at the start of a header line, or 0 if it is not one. */
static size_t hdr_name_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] != ':' && (unsigned char)p[i] > ' ' && (unsigned char)p[i] < 127)
        i++;
    return i > 0 && i < n && p[i] == ':' ? i : 0;
}

void milter_msg_parse(struct milter_msg *m, const char *msg, size_t len)
{
    memset(m, 0, sizeof *m);
    size_t pos = 0;
    while (pos < len) {
        const char *line = msg + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) + 1 : len - pos;
        if (ll <= 2 && (line[0] == '\r' || line[0] == '\n')) {
            pos += ll; /* the empty line: the body follows */
            break;
        }
        if ((line[0] == ' ' || line[0] == '\t') && m->nhdrs) {
            /* A continuation line belongs to the field above. */
            struct milter_hdr *h = &m->hdrs[m->nhdrs - 1];
            size_t old = strlen(h->raw);
            h->raw = xrealloc(h->raw, old + ll + 1);
            memcpy(h->raw + old, line, ll);
            h->raw[old + ll] = '\0';
            pos += ll;
            continue;
        }
        if (!hdr_name_len(line, ll))
            break; /* not a header line: the body starts here (RFC 5322 2.1) */
        m->hdrs = xrealloc(m->hdrs, (m->nhdrs + 1) * sizeof *m->hdrs);
        m->hdrs[m->nhdrs++].raw = xstrndup(line, ll);
        pos += ll;
    }
    buf_init(&m->body);
    buf_append(&m->body, msg + pos, len - pos);
}

void milter_msg_free(struct milter_msg *m)
{
    for (size_t i = 0; i < m->nhdrs; i++)
        free(m->hdrs[i].raw);
    free(m->hdrs);
    for (size_t i = 0; i < m->nedits; i++) {
        free(m->edits[i].addr);
        free(m->edits[i].args);
    }
    free(m->edits);
    buf_free(&m->body);
    memset(m, 0, sizeof *m);
}

void milter_msg_serialize(const struct milter_msg *m, struct buf *out)
{
    for (size_t i = 0; i < m->nhdrs; i++) {
        size_t n = strlen(m->hdrs[i].raw);
        buf_append(out, m->hdrs[i].raw, n);
        if (n < 2 || m->hdrs[i].raw[n - 1] != '\n')
            buf_puts(out, "\r\n"); /* a last field without its line end */
    }
    buf_puts(out, "\r\n");
    if (m->body.len)
        buf_append(out, m->body.data, m->body.len);
}

void milter_hdr_split(const struct milter_hdr *h, int leadspc, struct buf *name, struct buf *value)
{
    const char *raw = h->raw;
    size_t nl = hdr_name_len(raw, strlen(raw));
    buf_reset(name);
    buf_reset(value);
    buf_append(name, raw, nl);
    const char *v = raw + nl + 1;
    if (!leadspc && *v == ' ')
        v++; /* Sendmail eats one space (not a tab) after the colon */
    /* Folded lines are joined by "\n"; the field's own line end goes. */
    for (const char *p = v; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n')
            continue;
        buf_putc(value, *p);
    }
    if (value->len && value->data[value->len - 1] == '\n')
        buf_truncate(value, value->len - 1);
}

/* A field name (RFC 5322 2.2): printable ASCII but the colon, not empty. */
static int name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++)
        if ((unsigned char)name[n] <= ' ' || (unsigned char)name[n] >= 127 || name[n] == ':')
            return 0;
    return n > 0 && n < 1000;
}

/* "Name:" space value, with "\n" (or "\r\n") between lines turned into CRLF. */
static char *hdr_make(const char *name, const char *space, const char *value)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s:%s", name, space);
    for (const char *p = value; *p; p++) {
        if (*p == '\r' && p[1] == '\n')
            continue;
        if (*p == '\n')
            buf_puts(&b, "\r\n");
        else
            buf_putc(&b, *p);
    }
    buf_puts(&b, "\r\n");
    return buf_steal(&b);
}

static void hdr_insert_at(struct milter_msg *m, size_t at, char *raw)
{
    if (at > m->nhdrs)
        at = m->nhdrs;
    m->hdrs = xrealloc(m->hdrs, (m->nhdrs + 1) * sizeof *m->hdrs);
    memmove(m->hdrs + at + 1, m->hdrs + at, (m->nhdrs - at) * sizeof *m->hdrs);
    m->hdrs[at].raw = raw;
    m->nhdrs++;
}

int milter_msg_add_header(struct milter_msg *m, const char *name, const char *space,
                          const char *value)
{
    if (!name_valid(name))
        return -1;
    hdr_insert_at(m, m->nhdrs, hdr_make(name, space, value));
    return 0;
}

int milter_msg_insert_header(struct milter_msg *m, size_t index, const char *name,
                             const char *space, const char *value)
{
    if (!name_valid(name))
        return -1;
    hdr_insert_at(m, index, hdr_make(name, space, value));
    return 0;
}

int milter_msg_change_header(struct milter_msg *m, size_t index, const char *name,
                             const char *space, const char *value)
{
    if (!name_valid(name))
        return -1;
    if (index == 0)
        index = 1; /* Sendmail compatibility */
    size_t nlen = strlen(name);
    for (size_t i = 0; i < m->nhdrs; i++) {
        const char *raw = m->hdrs[i].raw;
        if (hdr_name_len(raw, strlen(raw)) != nlen || strncasecmp(raw, name, nlen) != 0)
            continue;
        if (--index)
            continue;
        free(m->hdrs[i].raw);
        if (!value[0]) {
            memmove(m->hdrs + i, m->hdrs + i + 1, (m->nhdrs - i - 1) * sizeof *m->hdrs);
            m->nhdrs--;
        } else {
            m->hdrs[i].raw = hdr_make(name, space, value);
        }
        return 0;
    }
    /* Not there: a change appends (as Postfix does), a delete does nothing. */
    if (value[0])
        hdr_insert_at(m, m->nhdrs, hdr_make(name, space, value));
    return 0;
}

void milter_msg_body_begin(struct milter_msg *m)
{
    buf_reset(&m->body);
    m->body_changed = 1;
}

void milter_msg_body_chunk(struct milter_msg *m, const char *data, size_t len)
{
    buf_append(&m->body, data, len);
}

void milter_msg_body_end(struct milter_msg *m)
{
    /* Lines end in CRLF in the queue: a bare LF becomes CRLF, a last line gets one. */
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < m->body.len; i++) {
        char c = m->body.data[i];
        if (c == '\n' && (i == 0 || m->body.data[i - 1] != '\r'))
            buf_putc(&b, '\r');
        buf_putc(&b, c);
    }
    if (b.len && b.data[b.len - 1] != '\n')
        buf_puts(&b, "\r\n");
    buf_free(&m->body);
    m->body = b;
}

void milter_msg_env_edit(struct milter_msg *m, enum milter_env_op op, const char *addr,
                         const char *args)
{
    m->edits = xrealloc(m->edits, (m->nedits + 1) * sizeof *m->edits);
    struct milter_env_edit *e = &m->edits[m->nedits++];
    e->op = op;
    e->addr = milter_addr_strip(addr);
    e->args = xstrdup(args ? args : "");
}

char *milter_addr_strip(const char *addr)
{
    while (*addr == ' ' || *addr == '\t')
        addr++;
    size_t n = strlen(addr);
    while (n && (addr[n - 1] == ' ' || addr[n - 1] == '\t'))
        n--;
    if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>')
        return xstrndup(addr + 1, n - 2);
    return xstrndup(addr, n);
}
