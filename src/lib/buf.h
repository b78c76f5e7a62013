/*
 * buf: a growable byte string that carries its length, for all protocol
 * data. The bytes are always followed by a NUL so that buf_cstr() is free,
 * but embedded NULs are allowed and len is the truth.
 *
 * Ownership: a struct buf owns data; buf_free() releases it and leaves an
 * empty, reusable buffer. buf_steal() hands data to the caller (free()).
 */
#ifndef HONGYAN_LIB_BUF_H
#define HONGYAN_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps memory */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_set(struct buf *b, const char *s); /* reset + puts */
void buf_truncate(struct buf *b, size_t len);
void buf_consume(struct buf *b, size_t n); /* drop n bytes from the front */
/*
 * Appends s as XML/HTML character data or attribute text: & < > " ' as
 * entities, and control characters (which XML 1.0 forbids even as
 * references) as spaces. For DMARC reports and the status page.
 */
void buf_put_markup(struct buf *b, const char *s);
/*
 * Appends a tab and s as one field of a tab-separated journal line: tabs
 * and line ends in s become spaces, so a field never splits the line, and
 * an empty or NULL s is "-". For the DMARC and TLSRPT journals.
 */
void buf_put_field(struct buf *b, const char *s);
const char *buf_cstr(const struct buf *b); /* never NULL */
char *buf_steal(struct buf *b);            /* caller frees; b is left empty */

#endif
