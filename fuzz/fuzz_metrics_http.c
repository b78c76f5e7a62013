/*
 * Fuzz target for the metrics_listen request-head parser: whatever a
 * client on the metrics port sends before the empty line.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon/metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = NULL;
    int status = metrics_http_parse((const char *)data, size, &path);
    if (status == 200 && strcmp(path, "/") != 0 && strcmp(path, "/metrics") != 0)
        __builtin_trap();
    return 0;
}
