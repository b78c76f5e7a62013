/*
 * doctor: pure helpers (no DNS, no network): public address selection,
 * zone-file and JSON formatting, host:port parsing. Unit-tested
 * in tests/unit/test_doctor.c.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/doctor.h"
#include "lib/hostport.h"
#include "lib/util.h"
#include "lib/xalloc.h"

const char *doctor_status_str(enum doctor_status s)
{
    switch (s) {
    case DOCTOR_OK:
        return "ok";
    case DOCTOR_WARN:
        return "warn";
    case DOCTOR_FAIL:
        return "FAIL";
    }
    return "?";
}

void doctor_push(char ***list, size_t *n, char *s)
{
    *list = xrealloc(*list, (*n + 1) * sizeof(char *));
    (*list)[(*n)++] = s;
}

void doctor_set(struct doctor_check *c, enum doctor_status st, const char *found,
                const char *expected)
{
    if (st > c->status)
        c->status = st;
    if (found != NULL) {
        if (c->found.len)
            buf_puts(&c->found, "; ");
        buf_puts(&c->found, found);
    }
    if (expected != NULL && c->expected.len == 0)
        buf_puts(&c->expected, expected);
}

void doctor_record(struct doctor_check *c, char *line)
{
    doctor_push(&c->records, &c->nrecords, line);
}

void doctor_advise(struct doctor_check *c, char *sentence)
{
    /* One check may reach the same advice once per key; say it once. */
    for (size_t i = 0; i < c->nadvice; i++) {
        if (strcmp(c->advice[i], sentence) == 0) {
            free(sentence);
            return;
        }
    }
    doctor_push(&c->advice, &c->nadvice, sentence);
}

struct doctor_net4 {
    uint32_t net;
    int len;
};

/* IPv4 ranges that are not reachable from the internet (RFC 6890 and friends). */
static const struct doctor_net4 doctor_v4_special[] = {
    {0x00000000, 8},  /* "this network" */
    {0x0a000000, 8},  /* RFC 1918 */
    {0x64400000, 10}, /* RFC 6598 shared address space (CGNAT) */
    {0x7f000000, 8},  /* loopback */
    {0xa9fe0000, 16}, /* link-local */
    {0xac100000, 12}, /* RFC 1918 */
    {0xc0000000, 24}, /* IETF protocol assignments */
    {0xc0000200, 24}, /* TEST-NET-1 (RFC 5737) */
    {0xc0a80000, 16}, /* RFC 1918 */
    {0xc6120000, 15}, /* benchmarking (RFC 2544) */
    {0xc6336400, 24}, /* TEST-NET-2 */
    {0xcb007100, 24}, /* TEST-NET-3 */
    {0xe0000000, 4},  /* multicast */
    {0xf0000000, 4},  /* reserved and broadcast */
};

static int doctor_v4_public(const unsigned char *b)
{
    uint32_t a = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    for (size_t i = 0; i < sizeof(doctor_v4_special) / sizeof(doctor_v4_special[0]); i++) {
        uint32_t mask = 0xffffffffu << (32 - doctor_v4_special[i].len);
        if ((a & mask) == doctor_v4_special[i].net)
            return 0;
    }
    return 1;
}

static int doctor_v6_public(const unsigned char *b)
{
    /* Global unicast is 2000::/3 (RFC 4291 2.4); ULA, link-local, mapped are outside it. */
    if ((b[0] & 0xe0) != 0x20)
        return 0;
    /* Documentation: 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637). */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 0;
    if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0)
        return 0;
    /* Benchmarking 2001:2::/48 (RFC 5180). */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0x02 && b[4] == 0 && b[5] == 0)
        return 0;
    return 1;
}

int doctor_addr_is_public(const char *addr)
{
    unsigned char b[16];
    if (addr == NULL)
        return 0;
    if (inet_pton(AF_INET, addr, b) == 1)
        return doctor_v4_public(b);
    if (inet_pton(AF_INET6, addr, b) == 1)
        return doctor_v6_public(b);
    return 0;
}

const char *doctor_pick_public(char *const *addrs, size_t n)
{
    unsigned char b[16];
    for (size_t i = 0; i < n; i++)
        if (inet_pton(AF_INET, addrs[i], b) == 1 && doctor_v4_public(b))
            return addrs[i];
    for (size_t i = 0; i < n; i++)
        if (inet_pton(AF_INET6, addrs[i], b) == 1 && doctor_v6_public(b))
            return addrs[i];
    return NULL;
}

static void doctor_quoted(const char *s, size_t n, struct buf *out)
{
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, s[i]);
    }
    buf_putc(out, '"');
}

void doctor_txt_line(const char *name, const char *txt, struct buf *out)
{
    size_t n = strlen(txt);
    buf_printf(out, "%s. IN TXT", name);
    if (n == 0) {
        buf_puts(out, " \"\"");
        return;
    }
    int paren = n > 255;
    if (paren)
        buf_puts(out, " (");
    for (size_t off = 0; off < n; off += 255) {
        buf_putc(out, ' ');
        doctor_quoted(txt + off, n - off < 255 ? n - off : 255, out);
    }
    if (paren)
        buf_puts(out, " )");
}

void doctor_json_string(const char *s, struct buf *out)
{
    buf_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf_putc(out, '\\');
            buf_putc(out, (char)*p);
        } else if (*p == '\n') {
            buf_puts(out, "\\n");
        } else if (*p == '\t') {
            buf_puts(out, "\\t");
        } else if (*p < 0x20 || *p == 0x7f) {
            buf_printf(out, "\\u%04x", *p);
        } else {
            buf_putc(out, (char)*p);
        }
    }
    buf_putc(out, '"');
}

int doctor_parse_hostport(const char *s, int default_port, struct buf *host, int *port,
                          int *bracketed)
{
    struct hostport hp;
    buf_reset(host);
    *port = default_port;
    *bracketed = 0;
    if (s == NULL || hostport_split(s, HOSTPORT_BARE_IPV6, &hp) < 0)
        return -1;
    if (hp.port[0] && (*port = hostport_port(hp.port)) < 0)
        return -1;
    buf_puts(host, hp.host);
    *bracketed = hp.bracketed;
    return 0;
}
