/*
 * hongyan spf IP HELO MAILFROM: evaluates SPF (RFC 7208) as the SMTP server
 * would, like spfquery. Prints the result word, then "explanation: TEXT"
 * when the failing record has one; exit 0 for pass, 1 for any other result.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "lib/buf.h"
#include "mailauth/spf.h"

#define SPF_CLI_USAGE "spf [-c FILE] [--helo-identity] IP HELO MAILFROM"

int cli_spf_main(int argc, char **argv)
{
    struct spf_request req = {0};
    const char *args[3];
    int nargs = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            cli_config_path = argv[++i];
        } else if (strcmp(argv[i], "--helo-identity") == 0) {
            req.helo_identity = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc && nargs < 3; i++)
                args[nargs++] = argv[i];
            if (i < argc)
                return cli_usage(SPF_CLI_USAGE);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "hongyan: spf: unknown option '%s'\n", argv[i]);
            return cli_usage(SPF_CLI_USAGE);
        } else if (nargs < 3) {
            args[nargs++] = argv[i];
        } else {
            return cli_usage(SPF_CLI_USAGE);
        }
    }
    if (nargs != 3)
        return cli_usage(SPF_CLI_USAGE);
    unsigned char tmp[16];
    if (inet_pton(AF_INET, args[0], tmp) != 1 && inet_pton(AF_INET6, args[0], tmp) != 1) {
        fprintf(stderr, "hongyan: spf: '%s' is not an IP address\n", args[0]);
        return EX_USAGE;
    }
    req.ip = args[0];
    req.helo = args[1];
    /* Accept "<a@b>" as MAIL FROM shows it; "<>" and "" are the null sender. */
    char from[1024];
    size_t n = strlen(args[2]);
    if (n >= 2 && args[2][0] == '<' && args[2][n - 1] == '>') {
        snprintf(from, sizeof(from), "%.*s", (int)(n - 2), args[2] + 1);
        req.mailfrom = from;
    } else {
        req.mailfrom = args[2];
    }

    struct config *cfg = cli_config();
    req.receiver = config_get(cfg, "myhostname");

    struct spf_outcome out;
    struct buf err = BUF_INIT;
    if (spf_check_sync(config_get(cfg, "dns_resolver"), &req, &out, &err) != 0) {
        fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
        buf_free(&err);
        return EX_CONFIG;
    }
    buf_free(&err);
    printf("%s\n", spf_result_str(out.result));
    if (out.explanation != NULL)
        printf("explanation: %s\n", out.explanation);
    if (out.problem != NULL)
        fprintf(stderr, "hongyan: spf: %s\n", out.problem);
    int rc = out.result == SPF_PASS ? 0 : 1;
    spf_outcome_clear(&out);
    return rc;
}
