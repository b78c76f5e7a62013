/*
 * hongyan: one executable. The subcommand is the first argument, or the
 * name we were invoked under (sendmail, mailq, postmap, postconf,
 * newaliases) so that scripts written for Postfix keep working.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "keeper/keeper.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage; /* for -h/--help; every form of the command, one per line */
};

static const struct command commands[] = {
    {"serve", cli_serve_main, "run the server in the foreground", "serve [-c FILE]"},
    {"sendmail", cli_sendmail_main, "queue a message read from stdin",
     "sendmail [-t] [-i] [-oi] [-f SENDER] [-F NAME] [RCPT...] < MESSAGE"},
    {"queue", cli_queue_main, "list, show, flush, delete, hold, release queued mail",
     "queue [list]\n"
     "       hongyan queue flush | show ID | delete ID|ALL | hold ID | release ID"},
    {"config", cli_config_main, "print or edit settings (postconf)",
     "config [-c FILE] [-n | -d] [-x] [KEY...]\n"
     "       hongyan config -e 'KEY = VALUE'..."},
    {"map", cli_map_main, "build or query a lookup table (postmap)",
     "map build [TYPE:]FILE...\n"
     "       hongyan map query TYPE:FILE KEY"},
    {"aliases", cli_aliases_main, "rebuild the alias databases (newaliases)", "aliases [-c FILE]"},
    {"dkim", cli_dkim_main, "keygen, show, sign, verify",
     "dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits N] [--force]\n"
     "       hongyan dkim show [DOMAIN]\n"
     "       hongyan dkim sign [--canonicalization H/B] < MESSAGE\n"
     "       hongyan dkim verify < MESSAGE"},
    {"spf", cli_spf_main, "evaluate SPF for IP HELO MAILFROM",
     "spf [-c FILE] [--helo-identity] IP HELO MAILFROM"},
    {"user", cli_user_main, "manage SMTP AUTH users",
     "user [-c FILE] add|passwd [--sha512|--bcrypt] USER\n"
     "       hongyan user del USER\n"
     "       hongyan user list"},
    {"doctor", cli_doctor_main, "check the domain's DNS and network set-up",
     "doctor [-c FILE] [DOMAIN] [--json] [--public-address IP] [--probe HOST[:PORT]]"},
    {"report", cli_report_main, "send the pending TLS and DMARC aggregate reports now",
     "report send [-c FILE]"},
    {"version", cli_version_main, "print the version", "version"},
};

/* Names under which we behave like the Postfix command of that name. */
static const struct command postfix_names[] = {
    {"sendmail", cli_sendmail_main, NULL,
     "sendmail [-t] [-i] [-oi] [-f SENDER] [-F NAME] [RCPT...]"},
    {"mailq", cli_mailq_main, NULL, "mailq"},
    {"postmap", cli_postmap_main, NULL, "postmap [TYPE:]FILE... | postmap -q KEY [TYPE:]FILE..."},
    {"postconf", cli_postconf_main, NULL,
     "postconf [-n | -d] [-h] [-x] [KEY...] | postconf -e 'KEY = VALUE'..."},
    {"newaliases", cli_newaliases_main, NULL, "newaliases"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The list of commands: on stdout with exit 0 when asked for, else on stderr with EX_USAGE. */
static int main_usage(int asked)
{
    FILE *out = asked ? stdout : stderr;
    fprintf(out, "usage: hongyan [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < COUNT(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'hongyan COMMAND --help' shows a command's usage.\n");
    return asked ? 0 : EX_USAGE;
}

static int main_is_help(const char *arg, int dash_h)
{
    return strcmp(arg, "--help") == 0 || (dash_h && strcmp(arg, "-h") == 0);
}

/*
 * -h/--help right after the command or its subcommand ("dkim keygen
 * --help"). sendmail's -h is a hop count and postconf's -h means values only,
 * so under those names only --help counts.
 */
static int main_help(const struct command *cmd, int argc, char **argv, int dash_h, int prefix)
{
    for (int k = 1; k < argc && k <= 2; k++) {
        if (main_is_help(argv[k], dash_h)) {
            printf("usage: %s%s\n", prefix ? "hongyan " : "", cmd->usage);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    for (size_t i = 0; i < COUNT(postfix_names); i++) {
        if (strcmp(self, postfix_names[i].name) == 0) {
            if (main_help(&postfix_names[i], argc, argv, 0, 0))
                return 0;
            return postfix_names[i].run(argc, argv);
        }
    }

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
            return main_usage(main_is_help(argv[i], 1));
        }
    }
    if (i >= argc)
        return main_usage(0);
    for (size_t k = 0; k < COUNT(commands); k++) {
        if (strcmp(argv[i], commands[k].name) == 0) {
            int dash_h = strcmp(commands[k].name, "sendmail") != 0;
            if (main_help(&commands[k], argc - i, argv + i, dash_h, 1))
                return 0;
            return commands[k].run(argc - i, argv + i);
        }
    }
    /* Hidden: the supervisor's exec target (daemon.h), never run by hand. */
    if (strcmp(argv[i], "smtpd") == 0 || strcmp(argv[i], "delivery") == 0)
        return daemon_worker_main(argc - i, argv + i);
    if (strcmp(argv[i], "keeper") == 0)
        return keeper_main(argc - i, argv + i);
    if (strcmp(argv[i], "help") == 0)
        return main_usage(1);
    fprintf(stderr, "hongyan: unknown command '%s'\n", argv[i]);
    return main_usage(0);
}
