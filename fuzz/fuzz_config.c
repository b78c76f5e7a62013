/* Fuzz target: the main.cf parser, expansion and checks on arbitrary text. */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf err = BUF_INIT;
    struct config *cfg = config_load_text("fuzz.cf", (const char *)data, size, &err);
    config_free(cfg);
    buf_free(&err);
    return 0;
}
