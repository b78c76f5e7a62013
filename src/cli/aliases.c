/*
 * hongyan aliases, and newaliases: rebuilds every hash:/lmdb: table named in
 * alias_database with the aliases(5) parser (postalias), not the postmap
 * one. texthash: and inline: tables are read as they are and need nothing.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/map_cli.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "maps/map_text.h"

int cli_aliases_rebuild(void)
{
    struct config *cfg = cli_config();
    size_t n = 0;
    char **list = config_get_list(cfg, "alias_database", &n);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(list[i], "hash:", 5) != 0 && strncmp(list[i], "lmdb:", 5) != 0)
            continue;
        struct buf err = BUF_INIT;
        int rc = map_build_syntax(list[i], MAP_SYNTAX_ALIASES, &err);
        if (rc) {
            fprintf(stderr, "hongyan: alias_database: %s\n", buf_cstr(&err));
            if (ret == 0)
                ret = rc;
        }
        buf_free(&err);
    }
    strlist_free(list);
    return ret;
}

int cli_aliases_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_map_set_config(argv[++i]);
        else
            return cli_usage("aliases [-c FILE]");
    }
    return cli_aliases_rebuild();
}

/* newaliases (sendmail -bI): -C/-c CONFIG; -v and -oA... are accepted and ignored. */
int cli_newaliases_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-C") == 0) && i + 1 < argc)
            cli_map_set_config(argv[++i]);
        else if (strcmp(argv[i], "-v") == 0 || strncmp(argv[i], "-o", 2) == 0)
            continue;
        else {
            fprintf(stderr, "usage: newaliases [-C CONFIG]\n");
            return EX_USAGE;
        }
    }
    return cli_aliases_rebuild();
}
