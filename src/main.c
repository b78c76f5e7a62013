/*
 * hongyan: one executable. The subcommand is the first argument, or the
 * name we were invoked under (sendmail, mailq, postmap, postconf,
 * newaliases) so that scripts written for Postfix keep working.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", cli_serve_main, "run the server in the foreground"},
    {"sendmail", cli_sendmail_main, "queue a message read from stdin"},
    {"queue", cli_queue_main, "list, show, flush, delete, hold, release queued mail"},
    {"config", cli_config_main, "print or edit settings (postconf)"},
    {"map", cli_map_main, "build or query a lookup table (postmap)"},
    {"aliases", cli_aliases_main, "rebuild the alias databases (newaliases)"},
    {"dkim", cli_dkim_main, "keygen, sign, verify"},
    {"spf", cli_spf_main, "evaluate SPF for IP HELO MAILFROM"},
    {"user", cli_user_main, "manage SMTP AUTH users"},
    {"doctor", cli_doctor_main, "check the domain's DNS and network set-up"},
    {"report", cli_report_main, "send the pending TLS and DMARC aggregate reports now"},
    {"version", cli_version_main, "print the version"},
};

/* Names under which we behave like the Postfix command of that name. */
static const struct command postfix_names[] = {
    {"sendmail", cli_sendmail_main, NULL},     {"mailq", cli_mailq_main, NULL},
    {"postmap", cli_postmap_main, NULL},       {"postconf", cli_postconf_main, NULL},
    {"newaliases", cli_newaliases_main, NULL},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int main_usage(void)
{
    fprintf(stderr, "usage: hongyan [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < COUNT(commands); i++)
        fprintf(stderr, "  %-10s %s\n", commands[i].name, commands[i].summary);
    return EX_USAGE;
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    for (size_t i = 0; i < COUNT(postfix_names); i++)
        if (strcmp(self, postfix_names[i].name) == 0)
            return postfix_names[i].run(argc, argv);

    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            cli_config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2]) {
            cli_config_path = argv[i] + 2;
            i++;
        } else if (strcmp(argv[i], "--version") == 0) {
            return cli_version_main(1, argv);
        } else {
            return main_usage();
        }
    }
    if (i >= argc)
        return main_usage();
    for (size_t k = 0; k < COUNT(commands); k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            return commands[k].run(argc - i, argv + i);
    fprintf(stderr, "hongyan: unknown command '%s'\n", argv[i]);
    return main_usage();
}
