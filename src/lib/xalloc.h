/*
 * Allocation that never returns NULL. Running out of memory is not remote
 * input: the process logs and exits, and the supervisor restarts the worker;
 * the spool guarantees nothing acknowledged is lost.
 */
#ifndef HONGYAN_LIB_XALLOC_H
#define HONGYAN_LIB_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void xalloc_die(const char *what);

#endif
