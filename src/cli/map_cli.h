/*
 * Helpers shared by the table commands (src/cli/map.c, src/cli/aliases.c):
 * the -c option as both hongyan (a file) and Postfix (a directory holding
 * main.cf) write it.
 */
#ifndef HONGYAN_CLI_MAP_CLI_H
#define HONGYAN_CLI_MAP_CLI_H

/* Sets cli_config_path from a -c/-C argument: a directory means DIR/main.cf. */
void cli_map_set_config(const char *arg);

/* Rebuilds every hash:/lmdb: table in alias_database; 0 or a sysexits code. */
int cli_aliases_rebuild(void);

#endif
