/* hongyan serve: runs the server in the foreground (postfix start-fg). */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"
#include "daemon/daemon.h"

int cli_serve_main(int argc, char **argv)
{
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "c:")) != -1) {
        if (c == 'c')
            cli_config_path = optarg;
        else
            return cli_usage("serve [-c FILE]");
    }
    if (optind != argc)
        return cli_usage("serve [-c FILE]");
    struct config *cfg = cli_config();
    return daemon_supervise(config_locate(cli_config_path), cfg);
}
