/*
 * hongyan config (postconf): print settings, defaults, or the keys set in
 * the file; -e edits main.cf in place, keeping comments and order, and
 * refuses an edit that would leave the file broken.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "smtpd/restrict.h"
#include "config/config_keys.h"
#include "lib/util.h"
#include "lib/xalloc.h"

#define CONFIG_CLI_MAX_FILE (4 * 1024 * 1024)
#define CONFIG_DEFAULT_FILE "/etc/hongyan/main.cf"

/* Does this physical line start the logical line of key? */
static int config_cli_line_is_key(const char *line, size_t len, const char *key)
{
    size_t klen = strlen(key);
    if (len < klen || strncmp(line, key, klen) != 0)
        return 0;
    size_t i = klen;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == '=';
}

/*
 * Replaces the logical line of key (with its continuation lines) by
 * "key = value", or appends it; comments and other lines are kept as they are.
 */
static void config_cli_edit_text(struct buf *text, const char *key, const char *value)
{
    struct buf out = BUF_INIT;
    const char *p = text->data ? text->data : "", *end = p + text->len;
    int replaced = 0, skipping = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        int continuation = n > 0 && (p[0] == ' ' || p[0] == '\t');
        const char *q = p;
        while (q < p + n && isspace((unsigned char)*q))
            q++;
        int blank_or_comment = q == p + n || *q == '#';
        if (skipping && continuation && !blank_or_comment) {
            p += n;
            continue;
        }
        skipping = 0;
        if (!continuation && config_cli_line_is_key(p, n, key)) {
            if (!replaced)
                buf_printf(&out, "%s = %s\n", key, value);
            replaced = 1;
            skipping = 1;
        } else {
            buf_append(&out, p, n);
            if (nl == NULL)
                buf_putc(&out, '\n');
        }
        p += n;
    }
    if (!replaced)
        buf_printf(&out, "%s = %s\n", key, value);
    buf_free(text);
    *text = out;
}

static int config_cli_edit(const char *path, char **edits, int nedits)
{
    if (path == NULL)
        path = CONFIG_DEFAULT_FILE;
    struct buf text = BUF_INIT;
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0)
        mode = st.st_mode & 07777;
    if (read_file(path, &text, CONFIG_CLI_MAX_FILE) < 0 && errno != ENOENT) {
        fprintf(stderr, "hongyan: %s: %s\n", path, strerror(errno));
        buf_free(&text);
        return EX_IOERR;
    }
    for (int i = 0; i < nedits; i++) {
        char *edit = xstrdup(edits[i]);
        char *eq = strchr(edit, '=');
        if (eq == NULL) {
            fprintf(stderr, "hongyan: -e '%s': expected 'key = value'\n", edits[i]);
            free(edit);
            buf_free(&text);
            return EX_USAGE;
        }
        *eq = '\0';
        char *key = str_trim(edit);
        char *value = str_trim(eq + 1);
        /* A Postfix key we do not implement is left to the load check below, which says why. */
        if (config_key_index(key) < 0 && config_postfix_param(key) == NULL) {
            fprintf(stderr, "hongyan: -e: unknown key '%s'\n", key);
            free(edit);
            buf_free(&text);
            return EX_USAGE;
        }
        config_cli_edit_text(&text, key, value);
        free(edit);
    }
    /* Check the whole result before it replaces a working file. */
    struct buf err = BUF_INIT;
    struct config *check = config_load_text(path, buf_cstr(&text), text.len, &err);
    if (check == NULL) {
        fprintf(stderr, "hongyan: not written, the result would not load: %s\n", buf_cstr(&err));
        buf_free(&err);
        buf_free(&text);
        return EX_CONFIG;
    }
    config_free(check);
    buf_free(&err);
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir_p(dir, 0755);
    }
    free(dir);
    int rc = 0;
    if (write_file_atomic(path, text.data ? text.data : "", text.len, mode) < 0) {
        fprintf(stderr, "hongyan: %s: %s\n", path, strerror(errno));
        rc = EX_CANTCREAT;
    }
    buf_free(&text);
    return rc;
}

/* One KEY argument: implemented, ignored, refused with the reason, or a typo. 0 or 1. */
static int config_cli_print_key(struct config *cfg, const char *key, int expand, int value_only)
{
    if (config_key_index(key) >= 0) {
        const char *v = expand ? config_get(cfg, key) : config_get_raw(cfg, key);
        if (value_only)
            printf("%s\n", v);
        else
            printf("%s = %s\n", key, v);
        return 0;
    }
    const struct config_postfix_param *pf = config_postfix_param(key);
    if (pf && pf->class == CONFIG_PF_IGNORED) {
        const char *v = config_ignored_value(cfg, key);
        if (value_only)
            printf("%s\n", v ? v : "");
        else if (v)
            printf("# %s = %s (ignored: %s)\n", key, v, pf->reason);
        else
            printf("# %s (ignored: %s)\n", key, pf->reason);
        return 0;
    }
    if (pf) {
        fprintf(stderr, "hongyan: %s: Postfix's key is not supported by hongyan: %s\n", key,
                pf->reason ? pf->reason : "not implemented");
        return 1;
    }
    const char *near = config_key_suggest(key);
    if (near)
        fprintf(stderr, "hongyan: unknown key '%s' (did you mean '%s'?)\n", key, near);
    else
        fprintf(stderr, "hongyan: unknown key '%s'\n", key);
    return 1;
}

static int config_cli_run(int argc, char **argv, int postconf, const char *usage)
{
    int only_set = 0, defaults = 0, edit = 0, expand = 0, value_only = 0, c;
    optind = 1;
    /* postconf -h prints values alone, as Debian's maintainer scripts expect. */
    while ((c = getopt(argc, argv, postconf ? "ndexh" : "c:ndex")) != -1) {
        switch (c) {
        case 'h':
            value_only = 1;
            break;
        case 'c':
            cli_config_path = optarg;
            break;
        case 'n':
            only_set = 1;
            break;
        case 'd':
            defaults = 1;
            break;
        case 'e':
            edit = 1;
            break;
        case 'x':
            expand = 1;
            break;
        default:
            return cli_usage(usage);
        }
    }
    if (edit) {
        if (optind == argc || only_set || defaults)
            return cli_usage(usage);
        return config_cli_edit(config_locate(cli_config_path), argv + optind, argc - optind);
    }
    struct config *cfg = defaults ? config_defaults(0) : cli_config();
    /* Postfix warns about a key set twice on every postconf run; so do we. */
    const char *warnings = config_warnings(cfg);
    while (*warnings) {
        size_t n = strcspn(warnings, "\n");
        fprintf(stderr, "hongyan: warning: %.*s\n", (int)n, warnings);
        warnings += n + (warnings[n] == '\n');
    }
    int rc = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++)
            rc |= config_cli_print_key(cfg, argv[i], expand, value_only);
    } else {
        for (size_t i = 0; i < config_key_count; i++) {
            const char *key = config_keys[i].name;
            if (only_set && !config_is_set(cfg, key))
                continue;
            config_cli_print_key(cfg, key, expand, value_only);
        }
        /* Ignored keys as comments: a round trip through main.cf keeps them harmless. */
        for (size_t i = 0; i < config_ignored_count(cfg); i++) {
            const char *value, *reason;
            const char *key = config_ignored(cfg, i, &value, &reason, NULL);
            if (!value_only)
                printf("# %s = %s (ignored: %s)\n", key, value, reason);
        }
        /* The restriction classes main.cf defines for itself. */
        size_t n = 0;
        char **classes = config_get_list(cfg, "smtpd_restriction_classes", &n);
        for (size_t i = 0; i < n; i++)
            if (config_get_class(cfg, classes[i]))
                printf("%s = %s\n", classes[i], config_get_class(cfg, classes[i]));
        strlist_free(classes);
    }
    if (!defaults) {
        /* A typo in a restriction list is said now, before a client meets its 451. */
        struct buf warn = BUF_INIT;
        restrict_conf_check(cfg, &warn);
        /* Relay passwords the network-facing process could read (docs/security.md). */
        daemon_mapfd_check_exposed(cfg, &warn);
        for (char *line = warn.data, *nl; line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            *nl = '\0';
            fprintf(stderr, "hongyan: warning: %s\n", line);
        }
        buf_free(&warn);
    }
    if (defaults)
        config_free(cfg);
    return rc;
}

int cli_config_main(int argc, char **argv)
{
    return config_cli_run(argc, argv, 0,
                          "config [-c FILE] [-n | -d] [-x] [KEY...] | config -e 'KEY = VALUE'...");
}

int cli_postconf_main(int argc, char **argv)
{
    return config_cli_run(argc, argv, 1,
                          "postconf [-n | -d] [-h] [-x] [KEY...] | postconf -e 'KEY = VALUE'...");
}
