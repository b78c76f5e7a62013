/* Fuzz target: the aliases(5) parser (postalias syntax), with no files. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "maps/map_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    if (map_parse_text((const char *)data, size, "aliases", MAP_SYNTAX_ALIASES, &e, &err) == 0) {
        for (size_t i = 0; i < e.count; i++) {
            size_t kn = strlen(e.items[i].key);
            if (kn == 0 || kn > MAP_KEY_MAX || e.items[i].value[0] == '\0' || e.items[i].line < 1)
                abort();
        }
    } else if (err.len == 0 || e.count != 0) {
        abort();
    }
    map_entries_free(&e);
    buf_free(&err);
    return 0;
}
