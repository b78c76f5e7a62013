/* hongyan version: prints the version, as `postconf mail_version` does. */
#include <stdio.h>

#include "cli/cli.h"
#include "version.h"

int cli_version_main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage("version");
    printf("hongyan %s\n", HONGYAN_VERSION);
    return 0;
}
