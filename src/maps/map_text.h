/*
 * The text side of lookup tables: pure parsers (text in, entries out, no
 * files) for the postmap(1) format, the aliases(5) format and inline:{...}
 * specs, so that they can be fuzzed and tested without a file system; and
 * the build entry point that chooses a syntax (postmap or aliases).
 *
 * Ownership: entries filled by the parsers are freed with map_entries_free.
 */
#ifndef HONGYAN_MAPS_MAP_TEXT_H
#define HONGYAN_MAPS_MAP_TEXT_H

#include <stddef.h>

#include "lib/buf.h"

/* Caps on what a table source may hold (every read has a cap). */
#define MAP_TEXT_MAX (64u * 1024 * 1024) /* whole source file */
#define MAP_LINE_MAX (1024u * 1024)      /* one logical line */
#define MAP_KEY_MAX 511                  /* LMDB's default key limit */

enum map_syntax {
    MAP_SYNTAX_POSTMAP, /* "key value" (postmap) */
    MAP_SYNTAX_ALIASES, /* "name: value, value" (postalias, aliases(5)) */
};

struct map_entry {
    char *key; /* folded to lower case */
    char *value;
    int line; /* first physical line of the logical line; 0 for inline */
};

struct map_entries {
    struct map_entry *items;
    size_t count;
    size_t cap;
};

/*
 * Parses a table source. Blank lines and lines whose first non-blank is '#'
 * are ignored; a line starting with white space continues the previous
 * logical line. name is used in messages ("NAME:LINE: ..."). Duplicate keys
 * are all returned in file order (the first one wins when used). 0, or -1
 * with err naming NAME:LINE; out then holds nothing.
 */
int map_parse_text(const char *text, size_t len, const char *name, enum map_syntax syn,
                   struct map_entries *out, struct buf *err);

/*
 * Parses the body of an inline: spec, "{k=v, k2 = v2, {k3 = a, b}, k4={c, d}}"
 * (Postfix 3 syntax; braces protect commas and white space). 0 or -1 with err.
 */
int map_parse_inline(const char *body, struct map_entries *out, struct buf *err);

void map_entries_free(struct map_entries *e);

/*
 * Splits a table value into addresses the way aliases(5) and virtual(5)
 * values are read: separated by commas and/or white space, except inside
 * double quotes or angle brackets; "<a@b>" loses its brackets. NULL-terminated
 * array, freed with strlist_free().
 */
char **map_split_addresses(const char *value, size_t *count);

/*
 * map_build with a chosen syntax: `hongyan aliases` builds with
 * MAP_SYNTAX_ALIASES, `hongyan map build` with MAP_SYNTAX_POSTMAP. The
 * syntax is recorded in the compiled file (see docs/maps.md). Returns 0 or a
 * sysexits.h code (EX_USAGE bad spec, EX_NOINPUT source unreadable,
 * EX_DATAERR bad line, EX_CANTCREAT/EX_IOERR writing) with err set.
 */
int map_build_syntax(const char *spec, enum map_syntax syn, struct buf *err);

#endif
