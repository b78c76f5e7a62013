/*
 * Loading the configuration in a process the supervisor exec'd (smtpd,
 * delivery, the keeper): the file on disk, as a SIGHUP would read it, else the
 * supervisor's sealed snapshot of the last one that loaded (config.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

/* Largest configuration snapshot read back, as config_load's cap. */
#define CONFIG_SNAPSHOT_MAX (4u << 20)

struct config *config_load_or_snapshot(const char *path, int snapshot_fd)
{
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(path, &err);
    if (cfg == NULL && snapshot_fd >= 0) {
        log_error("%s; starting on the last configuration that loaded", buf_cstr(&err));
        buf_reset(&err);
        struct buf text = BUF_INIT;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", snapshot_fd);
        if (read_file(proc, &text, CONFIG_SNAPSHOT_MAX) == 0)
            cfg = config_load_text(path, buf_cstr(&text), text.len, &err);
        else
            buf_printf(&err, "configuration snapshot: %s", strerror(errno));
        buf_free(&text);
    }
    if (cfg == NULL)
        log_error("%s", buf_cstr(&err));
    buf_free(&err);
    return cfg;
}
