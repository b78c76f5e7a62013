/*
 * Weak fallbacks for subcommands whose module has not landed yet, so that
 * every commit builds while modules arrive in parallel. A module's strong
 * definition replaces its fallback (the executable links the core whole).
 * This file is deleted once every command in main.c has its module.
 */
#include <stdio.h>

#include "cli/cli.h"

static int unbuilt(const char *name)
{
    fprintf(stderr, "hongyan: '%s' is not part of this build yet\n", name);
    return EX_UNAVAILABLE;
}

#define UNBUILT(fn, name)                                                                          \
    __attribute__((weak)) int fn(int argc, char **argv)                                            \
    {                                                                                              \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        return unbuilt(name);                                                                      \
    }

UNBUILT(cli_config_main, "config")
UNBUILT(cli_serve_main, "serve")
UNBUILT(cli_sendmail_main, "sendmail")
UNBUILT(cli_queue_main, "queue")
UNBUILT(cli_map_main, "map")
UNBUILT(cli_aliases_main, "aliases")
UNBUILT(cli_dkim_main, "dkim")
UNBUILT(cli_spf_main, "spf")
UNBUILT(cli_user_main, "user")
UNBUILT(cli_doctor_main, "doctor")
UNBUILT(cli_mailq_main, "mailq")
UNBUILT(cli_postmap_main, "postmap")
UNBUILT(cli_postconf_main, "postconf")
UNBUILT(cli_newaliases_main, "newaliases")
