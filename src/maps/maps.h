/*
 * Lookup tables, as Postfix's dict layer: a table is named "type:name" and
 * a lookup answers found (with a value), not found, or try later. "Try
 * later" (a table that cannot be read right now) must become a 4xx or a
 * deferral, never a 5xx or a bounce.
 *
 * Types: texthash:FILE (read as text), hash:FILE and lmdb:FILE (FILE.lmdb,
 * compiled by map_build), inline:{key=value, ...}. Keys are compared
 * case-insensitively (folded to lower case), as Postfix does.
 *
 * Ownership: map_open/map_list_open return objects freed with
 * map_free/map_list_free. Values are copied into the caller's buf.
 */
#ifndef HONGYAN_MAPS_MAPS_H
#define HONGYAN_MAPS_MAPS_H

#include "lib/buf.h"

enum map_result {
    MAP_FOUND,
    MAP_NOTFOUND,
    MAP_TEMPFAIL,
};

struct map;
struct map_list;

/* NULL with a message in err when the spec is malformed or the type unknown. */
struct map *map_open(const char *spec, struct buf *err);
/* On MAP_TEMPFAIL, err says why. value is replaced on MAP_FOUND only. */
enum map_result map_lookup(struct map *m, const char *key, struct buf *value, struct buf *err);
void map_free(struct map *m);

/* A list of tables as a config key holds them; the first table that has the key wins. */
struct map_list *map_list_open(const char *specs, struct buf *err);
enum map_result map_list_lookup(struct map_list *l, const char *key, struct buf *value,
                                struct buf *err);
int map_list_empty(const struct map_list *l);
/* Checks the syntax and types of a list of tables without opening them: 0, or -1 with err. */
int map_list_check(const char *specs, struct buf *err);
/*
 * The files the tables of specs read when opened: FILE for texthash: and
 * pgsql: (its parameter file), FILE.lmdb for hash: and lmdb:; inline:
 * tables and malformed specs name none. NULL-terminated, for strlist_free.
 */
char **map_list_files(const char *specs, size_t *count);
/*
 * 1 when a lookup may wait on the network (pgsql:), so that a caller on
 * the event loop runs it on the work queue instead; 0 for local tables.
 */
int map_may_block(const struct map *m);
int map_list_may_block(const struct map_list *l);
void map_list_free(struct map_list *l);

/*
 * Compiles the text source of a hash:/lmdb: table into FILE.lmdb, replaced
 * atomically so a running server never sees half a table. 0 or -1 with err
 * naming FILE:LINE for a bad line.
 */
int map_build(const char *spec, struct buf *err);

#endif
