/*
 * hongyan map build [TYPE:]FILE... | map query TYPE:FILE KEY, and the same
 * under the name postmap (postmap [TYPE:]FILE..., postmap -q KEY TYPE:FILE).
 * A query prints the value; a missing key prints nothing and exits 1, as
 * postmap -q does; a table that cannot answer exits 75 (EX_TEMPFAIL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/map_cli.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_text.h"
#include "maps/maps.h"

#define CLI_MAP_USAGE "map build [TYPE:]FILE... | map query TYPE:FILE KEY"
#define CLI_POSTMAP_USAGE                                                                          \
    "usage: postmap [-c CONFIG] [TYPE:]FILE... | postmap -q KEY [TYPE:]FILE...\n"
#define CLI_MAP_KEYLINE_MAX 4096

void cli_map_set_config(const char *arg)
{
    static char *owned;
    struct stat st;
    free(owned);
    owned = NULL;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        owned = xasprintf("%s/main.cf", arg);
        cli_config_path = owned;
    } else {
        cli_config_path = arg;
    }
}

/* "FILE" means "hash:FILE", as postmap's default_database_type. Caller frees. */
static char *cli_map_spec(const char *arg)
{
    const char *colon = strchr(arg, ':');
    const char *slash = strchr(arg, '/');
    if (colon && (slash == NULL || colon < slash))
        return xstrdup(arg);
    return xasprintf("hash:%s", arg);
}

static int cli_map_build(char **files, int n)
{
    int ret = 0;
    for (int i = 0; i < n; i++) {
        struct buf err = BUF_INIT;
        char *spec = cli_map_spec(files[i]);
        int rc = map_build_syntax(spec, MAP_SYNTAX_POSTMAP, &err);
        if (rc) {
            fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
            if (ret == 0)
                ret = rc;
        }
        buf_free(&err);
        free(spec);
    }
    return ret;
}

/* Opens the tables; NULL with a message printed and *rc set. */
static struct map **cli_map_open_all(char **specs, int n, int *rc)
{
    struct map **maps = xcalloc((size_t)n, sizeof *maps);
    for (int i = 0; i < n; i++) {
        struct buf err = BUF_INIT;
        char *spec = cli_map_spec(specs[i]);
        maps[i] = map_open(spec, &err);
        if (maps[i] == NULL) {
            fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
            /* A texthash file that cannot be read is missing input, else bad data or usage. */
            *rc = EX_USAGE;
            if (strncmp(spec, "texthash:", 9) == 0)
                *rc = access(spec + 9, R_OK) == 0 ? EX_DATAERR : EX_NOINPUT;
            for (int k = 0; k < i; k++)
                map_free(maps[k]);
            free(maps);
            free(spec);
            buf_free(&err);
            return NULL;
        }
        free(spec);
        buf_free(&err);
    }
    return maps;
}

/* The first table that has the key answers; 0 found, 1 not found, EX_TEMPFAIL. */
static int cli_map_query1(struct map **maps, int n, const char *key, struct buf *value)
{
    for (int i = 0; i < n; i++) {
        struct buf err = BUF_INIT;
        enum map_result r = map_lookup(maps[i], key, value, &err);
        if (r == MAP_TEMPFAIL)
            fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
        buf_free(&err);
        if (r == MAP_TEMPFAIL)
            return EX_TEMPFAIL;
        if (r == MAP_FOUND)
            return 0;
    }
    return 1;
}

static int cli_map_query(const char *key, char **specs, int n)
{
    int rc = 0;
    struct map **maps = cli_map_open_all(specs, n, &rc);
    if (maps == NULL)
        return rc;
    struct buf value = BUF_INIT;
    if (strcmp(key, "-") != 0) {
        rc = cli_map_query1(maps, n, key, &value);
        if (rc == 0)
            printf("%s\n", buf_cstr(&value));
    } else {
        /* postmap -q -: keys from stdin, "key value" for each one found. */
        char line[CLI_MAP_KEYLINE_MAX];
        rc = 1;
        while (fgets(line, sizeof line, stdin)) {
            char *k = str_trim(line);
            if (*k == '\0')
                continue;
            int r = cli_map_query1(maps, n, k, &value);
            if (r == EX_TEMPFAIL) {
                rc = r;
                break;
            }
            if (r == 0) {
                printf("%s\t%s\n", k, buf_cstr(&value));
                rc = 0;
            }
        }
    }
    buf_free(&value);
    for (int i = 0; i < n; i++)
        map_free(maps[i]);
    free(maps);
    return rc;
}

int cli_map_main(int argc, char **argv)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_map_set_config(argv[++i]);
        else if (strcmp(argv[i], "--") == 0) {
            while (++i < argc)
                pos[npos++] = argv[i];
        } else
            pos[npos++] = argv[i];
    }
    if (npos >= 2 && strcmp(pos[0], "build") == 0)
        rc = cli_map_build(pos + 1, npos - 1);
    else if (npos == 3 && strcmp(pos[0], "query") == 0)
        rc = cli_map_query(pos[2], pos + 1, 1);
    else
        rc = cli_usage(CLI_MAP_USAGE);
    free(pos);
    return rc;
}

int cli_postmap_main(int argc, char **argv)
{
    const char *query = NULL;
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            pos[npos++] = argv[i];
        } else if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            cli_map_set_config(argv[++i]);
        } else if (strcmp(a, "-q") == 0 && i + 1 < argc) {
            query = argv[++i];
        } else if (strcmp(a, "-v") == 0) {
            /* verbose: nothing more to say */
        } else {
            fprintf(stderr, "postmap: unsupported option %s\n" CLI_POSTMAP_USAGE, a);
            free(pos);
            return EX_USAGE;
        }
    }
    if (npos == 0) {
        fputs(CLI_POSTMAP_USAGE, stderr);
        rc = EX_USAGE;
    } else if (query) {
        rc = cli_map_query(query, pos, npos);
    } else {
        rc = cli_map_build(pos, npos);
    }
    free(pos);
    return rc;
}
