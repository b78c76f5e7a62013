/* Header-block helpers for locally submitted mail; see msghdr.h. */
#include "smtp/msghdr.h"

#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "lib/util.h"

size_t msghdr_block_len(const char *msg, size_t len)
{
    if (len >= 2 && memcmp(msg, "\r\n", 2) == 0)
        return 2;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(msg + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return len;
}

int msghdr_has(const char *msg, size_t len, const char *name)
{
    size_t hl = msghdr_block_len(msg, len), nl = strlen(name);
    size_t i = 0;
    while (i < hl) {
        /* i is at the start of a line; continuation lines start with white space. */
        if (hl - i > nl && strncasecmp(msg + i, name, nl) == 0) {
            size_t j = i + nl;
            while (j < hl && (msg[j] == ' ' || msg[j] == '\t'))
                j++;
            if (j < hl && msg[j] == ':')
                return 1;
        }
        const char *eol = memchr(msg + i, '\n', hl - i);
        if (eol == NULL)
            break;
        i = (size_t)(eol - msg) + 1;
    }
    return 0;
}

void msghdr_date(time_t t, char out[MSGHDR_DATE_MAX])
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, MSGHDR_DATE_MAX, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

void msghdr_add_date(struct buf *out, time_t t)
{
    char s[MSGHDR_DATE_MAX];
    msghdr_date(t, s);
    buf_printf(out, "Date: %s\r\n", s);
}

void msghdr_add_message_id(struct buf *out, const char *id, const char *host)
{
    unsigned char r[6];
    random_bytes(r, sizeof r);
    buf_printf(out, "Message-ID: <%s.%02x%02x%02x%02x%02x%02x@%s>\r\n", id, r[0], r[1], r[2], r[3],
               r[4], r[5], host);
}
