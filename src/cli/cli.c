/* Shared subcommand plumbing; see cli.h. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"

const char *cli_config_path;
static struct config *cli_loaded;

struct config *cli_config(void)
{
    if (cli_loaded)
        return cli_loaded;
    struct buf err = BUF_INIT;
    cli_loaded = config_load(config_locate(cli_config_path), &err);
    if (cli_loaded == NULL) {
        fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
        buf_free(&err);
        exit(EX_CONFIG);
    }
    buf_free(&err);
    log_set_syslog_name(config_get(cli_loaded, "syslog_name"));
    return cli_loaded;
}

int cli_usage(const char *usage)
{
    fprintf(stderr, "usage: hongyan %s\n", usage);
    return EX_USAGE;
}
