/*
 * pgsql: lookup tables (Postfix's pgsql_table(5)) through libpq. The
 * table is a file of "key = value" lines: hosts, user, password, dbname,
 * query, result_format, domain, expansion_limit (Postfix's), and
 * hongyan's timeout. Lookups are thread-safe (a pool of up to four
 * connections per table, each reused and re-made after a failure) and
 * bounded in time: a database that is down or slow answers MAP_TEMPFAIL,
 * never "not found".
 */
#ifndef HONGYAN_MAPS_MAP_PGSQL_H
#define HONGYAN_MAPS_MAP_PGSQL_H

#include "lib/buf.h"
#include "maps/maps.h"

struct map_pgsql;

/* Reads the .cf file; NULL with err naming the file and line. Does not connect. */
struct map_pgsql *map_pgsql_open(const char *path, struct buf *err);
/* The same from the file's text (the fuzz target's entry). */
struct map_pgsql *map_pgsql_parse(const char *path, const char *text, struct buf *err);
/* key is already folded to lower case by map_lookup. */
enum map_result map_pgsql_lookup(struct map_pgsql *t, const char *key, struct buf *value,
                                 struct buf *err);
void map_pgsql_free(struct map_pgsql *t);

/*
 * Expands a Postfix query or result_format template: %% %s %u %d %[1-9]
 * of value, and %S %U %D of key (result_format only). quote escapes each
 * inserted string (NULL: inserted as is). Returns 0, or 1 when the template
 * uses a part the input lacks (%d of an address without '@'): Postfix then
 * skips the query or the result. Exposed for the fuzz target.
 */
typedef void (*map_pgsql_quote_fn)(void *ctx, const char *in, struct buf *out);
int map_pgsql_expand(const char *tmpl, const char *value, const char *key, map_pgsql_quote_fn quote,
                     void *ctx, struct buf *out);

#endif
