/* Fuzz target: the postmap(1) text parser and the inline:{...} parser, with no files. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    if (map_parse_text((const char *)data, size, "fuzz", MAP_SYNTAX_POSTMAP, &e, &err) == 0) {
        for (size_t i = 0; i < e.count; i++) {
            /* Every entry has a non-empty key within the cap and a value. */
            size_t kn = strlen(e.items[i].key);
            if (kn == 0 || kn > MAP_KEY_MAX || e.items[i].value[0] == '\0')
                abort();
            size_t n;
            char **l = map_split_addresses(e.items[i].value, &n);
            for (size_t k = 0; k < n; k++)
                if (l[k][0] == '\0')
                    abort();
            strlist_free(l);
        }
    } else if (err.len == 0) {
        abort(); /* a failure always says why */
    }
    map_entries_free(&e);
    buf_reset(&err);
    /* The same bytes as an inline: body (a C string: up to the first NUL). */
    char *s = xstrndup((const char *)data, size);
    if (map_parse_inline(s, &e, &err) < 0 && err.len == 0)
        abort();
    map_entries_free(&e);
    free(s);
    buf_free(&err);
    return 0;
}
