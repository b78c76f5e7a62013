/*
 * What every subcommand shares: the -c option, loading the configuration
 * once with an error that names the file and line, and sysexits.h codes.
 * Each subcommand is one file in src/cli/ exporting a cli_NAME_main().
 */
#ifndef HONGYAN_CLI_CLI_H
#define HONGYAN_CLI_CLI_H

#include <sysexits.h>

struct config;

/* Set by -c, before the subcommand or inside it. */
extern const char *cli_config_path;

/* The configuration, loaded on first use; on error prints it and exits EX_CONFIG. */
struct config *cli_config(void);
/*
 * Before a command run as root opens the queue (cli/queue.c): what is
 * missing of it is made with the owners the server gives it (its
 * directories mail_owner's, maildrop/ and public/ setgid_group's too), so
 * that root never leaves there a directory the worker cannot use, whether
 * the server is running or starts later. Not root, or no such mail_owner:
 * nothing. 0 or -1 with err.
 */
struct buf;
int cli_queue_prepare(const struct config *cfg, struct buf *err);
/* Prints "usage: hongyan USAGE" to stderr; returns EX_USAGE. */
int cli_usage(const char *usage);

int cli_version_main(int argc, char **argv);
int cli_config_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);
int cli_sendmail_main(int argc, char **argv);
int cli_queue_main(int argc, char **argv);
int cli_map_main(int argc, char **argv);
int cli_aliases_main(int argc, char **argv);
int cli_dkim_main(int argc, char **argv);
int cli_spf_main(int argc, char **argv);
int cli_user_main(int argc, char **argv);
int cli_doctor_main(int argc, char **argv);
int cli_report_main(int argc, char **argv);

/* Postfix-named entry points with their own option syntax. */
int cli_mailq_main(int argc, char **argv);
int cli_postmap_main(int argc, char **argv);
int cli_postconf_main(int argc, char **argv);
int cli_newaliases_main(int argc, char **argv);

#endif
