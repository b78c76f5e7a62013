/*
 * hongyan user add|passwd|del|list: manages the SMTP AUTH users file
 * (smtpd_sasl_users, "user:crypt-hash" lines). Passwords are read without
 * echo from a terminal, or as one line from stdin for scripts; the file is
 * rewritten durably, other lines and comments kept as they were.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"

#define USER_USAGE "user [-c FILE] add|passwd [--sha512|--bcrypt] USER | del USER | list"
#define USER_PASS_MAX 1023
#define USER_FILE_MAX (16u * 1024 * 1024)

/* Reads one line without the newline into out; 0, or -1 on EOF/too long. */
static int user_read_line(FILE *in, char *out, size_t size)
{
    if (fgets(out, (int)size, in) == NULL)
        return -1;
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    else if (!feof(in))
        return -1; /* longer than the buffer */
    if (n > 0 && out[n - 1] == '\r')
        out[--n] = '\0';
    return 0;
}

/* Prompts on stderr with echo off. */
static int user_read_tty(const char *prompt, char *out, size_t size)
{
    struct termios old, quiet;
    if (tcgetattr(STDIN_FILENO, &old) < 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    /* Echo off (dropping typeahead) before the prompt, so nothing typed after it shows. */
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
        return -1;
    fputs(prompt, stderr);
    fflush(stderr);
    int rc = user_read_line(stdin, out, size);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    fputc('\n', stderr);
    return rc;
}

/* The new password: twice from a terminal, once from a pipe. */
static int user_get_password(char *out, size_t size)
{
    if (isatty(STDIN_FILENO)) {
        char again[USER_PASS_MAX + 2];
        if (user_read_tty("New password: ", out, size) < 0 ||
            user_read_tty("Retype new password: ", again, sizeof again) < 0) {
            fprintf(stderr, "hongyan: no password read\n");
            return -1;
        }
        int same = strcmp(out, again) == 0;
        explicit_bzero(again, sizeof again);
        if (!same) {
            fprintf(stderr, "hongyan: the passwords differ; nothing changed\n");
            return -1;
        }
    } else if (user_read_line(stdin, out, size) < 0) {
        fprintf(stderr, "hongyan: expected the password as one line on stdin (at most %d bytes)\n",
                USER_PASS_MAX);
        return -1;
    }
    if (out[0] == '\0') {
        fprintf(stderr, "hongyan: empty password refused\n");
        return -1;
    }
    return 0;
}

/* crypt(3) hash of pass with a fresh salt; prefix NULL = libxcrypt's default (yescrypt). */
static char *user_hash(const char *prefix, const char *pass)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    /* libxcrypt's bcrypt default cost (5) is too cheap today; 10 is the common choice. */
    unsigned long count = prefix && strcmp(prefix, "$2b$") == 0 ? 10 : 0;
    if (crypt_gensalt_rn(prefix, count, NULL, 0, salt, (int)sizeof salt) == NULL)
        return NULL;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    char *out = crypt_rn(pass, salt, cd, (int)sizeof *cd);
    char *hash = (out && out[0] != '*') ? xstrdup(out) : NULL;
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return hash;
}

/* The user named on a file line, into name; 0 when the line names none (comment, blank). */
static int user_line_name(const char *line, size_t len, char *name, size_t size)
{
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    if (len == 0 || *line == '#')
        return 0;
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return 0;
    size_t n = (size_t)(colon - line);
    if (n + 1 > size)
        return 0;
    memcpy(name, line, n);
    name[n] = '\0';
    return 1;
}

/*
 * As root the file is root:<keeper_user's group> 0640, so the keeper can
 * read it and not change it, and the worker (another uid, none of its
 * groups) cannot read it; otherwise it keeps our ids.
 */
static gid_t user_file_group(void)
{
    if (geteuid() != 0)
        return (gid_t)SAFEDIR_KEEP_ID;
    const char *keeper = config_get(cli_config(), "keeper_user");
    struct passwd *pw = getpwnam(keeper);
    if (pw == NULL) {
        fprintf(stderr,
                "hongyan: warning: keeper_user %s does not exist; the users file stays "
                "readable by root only\n",
                keeper);
        return 0;
    }
    return pw->pw_gid;
}

/*
 * Replaces the users file with out. Its directory is usually
 * data_directory, which mail_owner owns: it is opened by descriptor without
 * following symlinks, and the new file is made with O_EXCL|O_NOFOLLOW and
 * its final owner and mode before the hashes go in (lib/safedir.h).
 */
static int user_write(const char *path, const struct buf *out)
{
    const char *base;
    char *dir = path_split(path, &base);
    struct buf err = BUF_INIT;
    int rc = -1;
    uid_t trusted = geteuid();
    struct passwd *pw = geteuid() == 0 ? getpwnam(config_get(cli_config(), "mail_owner")) : NULL;
    if (pw)
        trusted = pw->pw_uid;
    int dirfd = safedir_open(dir, trusted, 0755, NULL, &err);
    if (dirfd < 0) {
        fprintf(stderr, "hongyan: cannot write %s: %s\n", path, buf_cstr(&err));
    } else if (safedir_write_file_at(dirfd, base, out->data ? out->data : "", out->len, 0640,
                                     geteuid() == 0 ? 0 : (uid_t)SAFEDIR_KEEP_ID,
                                     user_file_group()) < 0) {
        fprintf(stderr, "hongyan: cannot write %s: %s\n", path, strerror(errno));
    } else {
        rc = 0;
    }
    if (dirfd >= 0)
        close(dirfd);
    buf_free(&err);
    free(dir);
    return rc;
}

/*
 * Writes path with the line for user replaced by newline (NULL: removed),
 * appending it when absent. *found says whether the user was there.
 */
static int user_rewrite(const char *path, const char *user, const char *newline, int *found,
                        struct buf *out_list)
{
    struct buf old = BUF_INIT, out = BUF_INIT;
    *found = 0;
    /* O_NOFOLLOW: a link planted in mail_owner's directory must not make root copy its target. */
    if (read_file_flags(path, O_NOFOLLOW, &old, USER_FILE_MAX) < 0 && errno != ENOENT) {
        fprintf(stderr, "hongyan: cannot read %s: %s\n", path, strerror(errno));
        buf_free(&old);
        return -1;
    }
    const char *p = old.data ? old.data : "";
    const char *end = p + old.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char name[512];
        int named = user_line_name(p, len, name, sizeof name);
        if (named && out_list)
            buf_printf(out_list, "%s\n", name);
        if (named && user && strcmp(name, user) == 0) {
            if (newline && !*found)
                buf_printf(&out, "%s\n", newline);
            *found = 1;
        } else {
            buf_append(&out, p, len);
            buf_putc(&out, '\n');
        }
        p += len + (nl ? 1 : 0);
    }
    int rc = 0;
    if (user && newline && !*found)
        buf_printf(&out, "%s\n", newline);
    explicit_bzero(old.data ? old.data : (char *)"", old.len);
    buf_free(&old);
    if (user == NULL) { /* list only */
        buf_free(&out);
        return 0;
    }
    if (newline == NULL && !*found) {
        buf_free(&out);
        return 0;
    }
    if (user_write(path, &out) < 0)
        rc = -1;
    explicit_bzero(out.data ? out.data : (char *)"", out.len);
    buf_free(&out);
    return rc;
}

int cli_user_main(int argc, char **argv)
{
    const char *prefix = NULL;
    int i = 1;
    const char *verb = NULL, *user = NULL;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else if (strcmp(a, "--sha512") == 0)
            prefix = "$6$";
        else if (strcmp(a, "--bcrypt") == 0)
            prefix = "$2b$";
        else if (strcmp(a, "--yescrypt") == 0)
            prefix = "$y$";
        else if (a[0] == '-' && a[1] != '\0')
            return cli_usage(USER_USAGE);
        else if (verb == NULL)
            verb = a;
        else if (user == NULL)
            user = a;
        else
            return cli_usage(USER_USAGE);
    }
    if (verb == NULL)
        return cli_usage(USER_USAGE);
    int is_list = strcmp(verb, "list") == 0;
    int is_add = strcmp(verb, "add") == 0;
    int is_passwd = strcmp(verb, "passwd") == 0;
    int is_del = strcmp(verb, "del") == 0;
    if (!(is_list || is_add || is_passwd || is_del))
        return cli_usage(USER_USAGE);
    if (is_list ? user != NULL : user == NULL)
        return cli_usage(USER_USAGE);
    if (user && !auth_user_name_ok(user)) {
        fprintf(stderr,
                "hongyan: invalid user name: 1 to 255 bytes without ':', white space or control "
                "characters\n");
        return EX_USAGE;
    }

    struct config *cfg = cli_config();
    const char *path = config_get(cfg, "smtpd_sasl_users");
    int found = 0;

    if (is_list) {
        struct buf names = BUF_INIT;
        int rc = user_rewrite(path, NULL, NULL, &found, &names);
        fputs(buf_cstr(&names), stdout);
        buf_free(&names);
        return rc < 0 ? EX_IOERR : 0;
    }

    if (is_del) {
        if (user_rewrite(path, user, NULL, &found, NULL) < 0)
            return EX_IOERR;
        if (!found) {
            fprintf(stderr, "hongyan: no user %s in %s\n", user, path);
            return 1;
        }
        return 0;
    }

    /* add / passwd: check existence first so no password is asked for in vain. */
    struct buf names = BUF_INIT;
    if (user_rewrite(path, NULL, NULL, &found, &names) < 0) {
        buf_free(&names);
        return EX_IOERR;
    }
    int exists = 0;
    for (const char *p = buf_cstr(&names); *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n == strlen(user) && memcmp(p, user, n) == 0)
            exists = 1;
        p += n + (nl ? 1 : 0);
    }
    buf_free(&names);
    if (is_add && exists) {
        fprintf(stderr, "hongyan: user %s already exists in %s; use 'hongyan user passwd %s'\n",
                user, path, user);
        return 1;
    }
    if (is_passwd && !exists) {
        fprintf(stderr, "hongyan: no user %s in %s; use 'hongyan user add %s'\n", user, path, user);
        return 1;
    }

    char pass[USER_PASS_MAX + 2];
    if (user_get_password(pass, sizeof pass) < 0) {
        explicit_bzero(pass, sizeof pass);
        return EX_DATAERR;
    }
    char *hash = user_hash(prefix, pass);
    explicit_bzero(pass, sizeof pass);
    if (hash == NULL) {
        fprintf(stderr, "hongyan: crypt(3) could not hash the password\n");
        return EX_SOFTWARE;
    }
    char *line = xasprintf("%s:%s", user, hash);
    free(hash);
    int rc = user_rewrite(path, user, line, &found, NULL);
    explicit_bzero(line, strlen(line));
    free(line);
    if (rc < 0)
        return EX_CANTCREAT;
    return 0;
}
