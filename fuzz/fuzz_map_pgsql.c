/*
 * Fuzz target for pgsql: tables: the pgsql_table(5) file parser, and the
 * %-expansion of query and result_format templates (first line the
 * template, second the key). The quoting function doubles quotes so that
 * a quote in the output can be checked to come from the template only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "maps/map_pgsql.h"

static void fuzz_quote(void *ctx, const char *in, struct buf *out)
{
    for (; *in; in++) {
        if (*in == '\'')
            buf_putc(out, '\'');
        buf_putc(out, *in);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct buf err = BUF_INIT, out = BUF_INIT;
    map_pgsql_free(map_pgsql_parse("fuzz.cf", text, &err));
    char *nl = strchr(text, '\n');
    if (nl) {
        *nl = '\0';
        map_pgsql_expand(text, nl + 1, "key@example.com", fuzz_quote, NULL, &out);
        buf_reset(&out);
        map_pgsql_expand(text, nl + 1, "key@example.com", NULL, NULL, &out);
    }
    buf_free(&err);
    buf_free(&out);
    free(text);
    return 0;
}
