/*
 * `hongyan sendmail` / `sendmail`: the Postfix-compatible local submission
 * command. Reads a message on stdin, completes its headers (RFC 6409 8),
 * and hands it with its envelope to hongyan-postdrop, the setgid helper
 * that writes it durably into maildrop/ (whether or not the server runs)
 * and wakes a running server. It runs with the invoking user's rights
 * only; the server checks again everything it writes. Exit 75
 * (EX_TEMPFAIL) only when the message could not be queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sendmail.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/envelope.h"
#include "smtp/msghdr.h"
#include "queue/localuser.h"
#include "queue/pickup.h"
#include "queue/spool.h"
#include "smtp/address.h"
#include "smtp/command.h"

#define SENDMAIL_LINE_MAX 65536

/* addr with "@myorigin" when it has no domain; caller frees. */
char *sendmail_qualify(const char *addr, const char *origin)
{
    if (addr[0] == '\0' || strchr(addr, '@'))
        return xstrdup(addr);
    return xasprintf("%s@%s", addr, origin);
}

/*
 * Extracts the addresses of an address-list header value (RFC 5322 3.4):
 * the part in <> when there is one, else the bare token; comments and
 * display names dropped, group syntax "name: a, b;" understood.
 */
void sendmail_addresses(const char *v, char ***list, size_t *n)
{
    struct buf cur = BUF_INIT, angle = BUF_INIT;
    int in_q = 0, in_angle = 0, comment = 0, had_angle = 0;
    for (const char *p = v;; p++) {
        char c = *p;
        if (c == '\0' || (!in_q && !in_angle && !comment && (c == ',' || c == ';'))) {
            const char *a =
                had_angle ? buf_cstr(&angle) : str_trim(cur.data ? cur.data : (char[]){0});
            if (a[0]) {
                *list = xrealloc(*list, (*n + 2) * sizeof **list);
                (*list)[(*n)++] = xstrdup(a);
                (*list)[*n] = NULL;
            }
            buf_reset(&cur);
            buf_reset(&angle);
            had_angle = 0;
            if (c == '\0')
                break;
            continue;
        }
        if (comment) {
            if (c == '(')
                comment++;
            else if (c == ')')
                comment--;
            continue;
        }
        if (in_q) {
            if (c == '\\' && p[1]) {
                buf_putc(in_angle ? &angle : &cur, c);
                c = *++p;
            } else if (c == '"') {
                in_q = 0;
            }
            buf_putc(in_angle ? &angle : &cur, c);
            continue;
        }
        if (c == '"') {
            in_q = 1;
            buf_putc(in_angle ? &angle : &cur, c);
        } else if (c == '(' && !in_angle) {
            comment = 1;
        } else if (c == '<') {
            in_angle = 1;
            had_angle = 1;
            buf_reset(&angle);
        } else if (c == '>' && in_angle) {
            in_angle = 0;
        } else if (c == ':' && !in_angle) {
            buf_reset(&cur); /* group name */
        } else if (in_angle) {
            buf_putc(&angle, c);
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            buf_putc(&cur, c);
        }
    }
    buf_free(&cur);
    buf_free(&angle);
}

/*
 * -t: collects To/Cc/Bcc addresses from the header block and rewrites the
 * block without Bcc (RFC 5322 3.6.3: blind copies are not shown).
 */
static void sendmail_extract(struct buf *msg, char ***rcpts, size_t *n)
{
    size_t hl = msghdr_block_len(msg->data, msg->len);
    struct buf out = BUF_INIT, field = BUF_INIT;
    size_t i = 0;
    while (i < hl) {
        size_t start = i;
        /* One field: its first line plus continuation lines. */
        do {
            const char *eol = memchr(msg->data + i, '\n', hl - i);
            i = eol ? (size_t)(eol - msg->data) + 1 : hl;
        } while (i < hl && (msg->data[i] == ' ' || msg->data[i] == '\t'));
        buf_reset(&field);
        buf_append(&field, msg->data + start, i - start);
        const char *f = buf_cstr(&field);
        int is_bcc = str_prefix_ci(f, "bcc:");
        if (str_prefix_ci(f, "to:") || str_prefix_ci(f, "cc:") || is_bcc)
            sendmail_addresses(strchr(f, ':') + 1, rcpts, n);
        if (!is_bcc)
            buf_append(&out, field.data, field.len);
    }
    buf_append(&out, msg->data + hl, msg->len - hl);
    buf_free(msg);
    *msg = out;
    buf_free(&field);
}

/*
 * From: with a display name (-F). A name with RFC 5322 specials becomes a
 * quoted-string (3.2.4); control characters are dropped.
 */
static void sendmail_from_named(struct buf *out, const char *name, const char *addr)
{
    int special = strpbrk(name, "()<>[]:;@\\,.\"") != NULL;
    buf_puts(out, "From: ");
    if (special)
        buf_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            continue;
        if (special && (*p == '"' || *p == '\\'))
            buf_putc(out, '\\');
        buf_putc(out, (char)*p);
    }
    if (special)
        buf_putc(out, '"');
    buf_printf(out, " <%s>\r\n", addr);
}

/* Whether the first line is a header field ("Name:" with printable name characters) or blank. */
static int sendmail_starts_with_header(const char *m, size_t len)
{
    if (len >= 2 && m[0] == '\r' && m[1] == '\n')
        return 1;
    size_t i = 0;
    while (i < len && m[i] > 32 && m[i] < 127 && m[i] != ':')
        i++;
    return i > 0 && i < len && m[i] == ':';
}

/* Reads stdin into out with CRLF line ends; -1 when over limit. */
static int sendmail_read(struct buf *out, int dot_ends, long long limit)
{
    char *line = xmalloc(SENDMAIL_LINE_MAX + 2);
    int rc = 0;
    while (fgets(line, SENDMAIL_LINE_MAX, stdin)) {
        size_t l = strlen(line);
        int had_nl = l > 0 && line[l - 1] == '\n';
        if (had_nl)
            l--;
        if (had_nl && l > 0 && line[l - 1] == '\r')
            l--;
        if (dot_ends && had_nl && l == 1 && line[0] == '.')
            break;
        buf_append(out, line, l);
        if (had_nl)
            buf_puts(out, "\r\n");
        if (limit > 0 && (long long)out->len > limit) {
            rc = -1;
            break;
        }
    }
    if (out->len > 0 && out->data[out->len - 1] != '\n')
        buf_puts(out, "\r\n");
    free(line);
    return rc;
}

/* hongyan-postdrop, beside this program (installed together: scripts/install.sh); caller frees. */
static char *sendmail_helper_path(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return xstrdup("hongyan-postdrop");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    return xasprintf("%s/hongyan-postdrop", self);
}

/*
 * Runs the setgid helper with args; data (may be NULL) goes to its stdin.
 * Returns its exit status, or EX_OSERR when it could not run. Its stderr
 * is ours: its messages reach the user as they are.
 */
static int sendmail_run_helper(const char *flag, const char *queue_dir, const struct buf *data)
{
    char *helper = sendmail_helper_path();
    int pfd[2] = {-1, -1};
    if (data && pipe2(pfd, O_CLOEXEC) < 0) {
        fprintf(stderr, "sendmail: pipe: %s\n", strerror(errno));
        free(helper);
        return EX_OSERR;
    }
    fflush(NULL);
    /* A caller that ignores SIGCHLD (swaks --pipe does) would leave us nothing to wait for. */
    signal(SIGCHLD, SIG_DFL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "sendmail: fork: %s\n", strerror(errno));
        free(helper);
        return EX_OSERR;
    }
    if (pid == 0) {
        if (data && dup2(pfd[0], STDIN_FILENO) < 0)
            _exit(EX_OSERR);
        char *argv[4] = {helper, NULL, NULL, NULL};
        if (flag) {
            argv[1] = (char *)flag;
            argv[2] = (char *)queue_dir;
        } else {
            argv[1] = (char *)queue_dir;
        }
        execv(helper, argv);
        fprintf(stderr, "sendmail: cannot run %s: %s\n", helper, strerror(errno));
        _exit(EX_OSERR);
    }
    free(helper);
    int wrc = 0;
    if (data) {
        close(pfd[0]);
        /* A helper that stopped reading (an error it reports itself) must not kill us. */
        signal(SIGPIPE, SIG_IGN);
        wrc = write_all(pfd[1], data->data, data->len);
        close(pfd[1]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return EX_OSERR;
    if (!WIFEXITED(status))
        return EX_OSERR;
    if (WEXITSTATUS(status) == 0 && wrc < 0)
        return EX_IOERR;
    return WEXITSTATUS(status);
}

/*
 * An address from the command line, checked as the SMTP server checks MAIL
 * FROM and RCPT TO (src/smtp/address.c): a CR or LF in it would otherwise
 * become a command to the next server. Unqualified names get @myorigin.
 * NULL with a message on stderr; caller frees.
 */
char *sendmail_checked(const char *addr, const char *origin, int allow_null, const char *what)
{
    if (addr[0] == '\0' && allow_null)
        return xstrdup("");
    char *q = sendmail_qualify(addr, origin);
    struct smtp_path path;
    struct smtp_reply rep;
    if (smtp_mailbox_parse(q, strlen(q), SMTP_ADDR_ALLOW_UTF8, &path, &rep) < 0) {
        fprintf(stderr, "sendmail: bad %s address: ", what);
        for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
            fprintf(stderr, *p < 0x20 || *p == 0x7f ? "\\x%02x" : "%c", *p);
        fprintf(stderr, "\n");
        free(q);
        return NULL;
    }
    free(q);
    return xstrdup(path.addr);
}

/*
 * authorized_submit_users / authorized_flush_users for the invoking user; 1
 * allowed. The message is Postfix's. The server checks again: this is for
 * a clear error, not the boundary.
 */
int sendmail_authorized(const struct config *cfg, const char *key, const char *what)
{
    char user[64];
    struct buf err = BUF_INIT;
    uid_t uid = getuid();
    localuser_name(uid, user, sizeof user);
    int ok =
        localuser_authorized(config_get(cfg, key), config_get(cfg, "mail_owner"), uid, user, &err);
    if (ok < 0)
        fprintf(stderr, "sendmail: %s: %s\n", key, buf_cstr(&err));
    else if (ok == 0)
        fprintf(stderr, "sendmail: User %s(%ld) is not allowed to %s (%s)\n", user, (long)uid, what,
                key);
    buf_free(&err);
    return ok > 0;
}

int sendmail_queue(const struct config *cfg, const struct envelope *e, const struct buf *msg,
                   const char *full_name)
{
    const char *m = msg->data ? msg->data : "";
    /* RFC 6409 8.1-8.3: complete From, Date and Message-ID when missing. */
    struct buf full = BUF_INIT, add = BUF_INIT;
    if (!msghdr_has(m, msg->len, "From")) {
        if (full_name)
            sendmail_from_named(&add, full_name, e->sender);
        else
            buf_printf(&add, "From: %s\r\n", e->sender[0] ? e->sender : "MAILER-DAEMON");
    }
    if (!msghdr_has(m, msg->len, "Date"))
        msghdr_add_date(&add, e->arrival);
    if (!msghdr_has(m, msg->len, "Message-ID")) {
        char id[QUEUE_ID_MAX];
        spool_new_id(id);
        msghdr_add_message_id(&add, id, config_get(cfg, "myhostname"));
    }
    /* A message that starts with its body gets a blank line after the added headers. */
    if (msg->len > 0 && !sendmail_starts_with_header(m, msg->len))
        buf_puts(&add, "\r\n");
    buf_append(&add, m, msg->len);
    pickup_encode(e, add.data, add.len, &full);

    const char *qdir = config_get(cfg, "queue_directory");
    /*
     * Root may be first, before the server ever ran: it lays out the queue
     * itself, with the server's owners (the helper below writes maildrop/).
     */
    struct buf err = BUF_INIT;
    if (cli_queue_prepare(cfg, &err) < 0)
        fprintf(stderr, "sendmail: %s\n", buf_cstr(&err));
    buf_free(&err);
    int rc = sendmail_run_helper(NULL, qdir, &full);
    if (rc != 0)
        fprintf(stderr, "sendmail: cannot queue the message (status %d)\n", rc);
    buf_free(&full);
    buf_free(&add);
    return rc == 0 ? 0 : rc == EX_DATAERR ? EX_DATAERR : EX_TEMPFAIL;
}

/* -N: "never", or a comma list of success, failure, delay (RFC 3461 4.1); 0 when malformed. */
static unsigned sendmail_notify(const char *v)
{
    if (strcasecmp(v, "never") == 0)
        return DSN_NOTIFY_NEVER;
    unsigned bits = 0;
    char **words = strlist_split(v, NULL);
    for (char **w = words; *w; w++) {
        unsigned b = strcasecmp(*w, "success") == 0   ? DSN_NOTIFY_SUCCESS
                     : strcasecmp(*w, "failure") == 0 ? DSN_NOTIFY_FAILURE
                     : strcasecmp(*w, "delay") == 0   ? DSN_NOTIFY_DELAY
                                                      : 0;
        if (b == 0) {
            bits = 0;
            break;
        }
        bits |= b;
    }
    strlist_free(words);
    return bits;
}

/* -V: an ENVID as RFC 3461 4.4 allows, 1 to 100 printable characters. */
static int sendmail_envid_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > SMTP_ENVID_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return 0;
    return 1;
}

int cli_sendmail_main(int argc, char **argv)
{
    int extract = 0, dot_ends = 1, mode_bs = 0, mode_bv = 0;
    const char *sender_opt = NULL, *full_name = NULL, *envid = NULL;
    unsigned notify = 0;
    int ret = DSN_RET_DEFAULT, body_8bit = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-bp") == 0)
            return cli_mailq_main(argc, argv); /* sendmail -bp is mailq */
        if (strcmp(a, "-q") == 0) {
            /* sendmail -q: deliver the queue now (postqueue -f). */
            struct config *qcfg = cli_config();
            if (!sendmail_authorized(qcfg, "authorized_flush_users", "flush the mail queue"))
                return EX_NOPERM;
            int rc = sendmail_run_helper("-f", config_get(qcfg, "queue_directory"), NULL);
            if (rc == EX_UNAVAILABLE)
                fprintf(stderr, "sendmail: the server is not running\n");
            return rc;
        }
        if (strcmp(a, "-t") == 0) {
            extract = 1;
        } else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0) {
            dot_ends = 0;
        } else if (strcmp(a, "-bs") == 0) {
            mode_bs = 1;
        } else if (strcmp(a, "-bv") == 0) {
            mode_bv = 1;
        } else if (a[1] == 'f' || a[1] == 'r' || a[1] == 'F' || a[1] == 'B' || a[1] == 'N' ||
                   a[1] == 'R' || a[1] == 'V' || a[1] == 'X' || a[1] == 'C') {
            const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (v == NULL)
                return cli_usage(SENDMAIL_USAGE);
            if (a[1] == 'f' || a[1] == 'r') {
                sender_opt = v;
            } else if (a[1] == 'F') {
                full_name = v;
            } else if (a[1] == 'C') {
                cli_config_path = v;
            } else if (a[1] == 'N') {
                if ((notify = sendmail_notify(v)) == 0) {
                    fprintf(stderr, "sendmail: -N: expected never, or success,failure,delay: %s\n",
                            v);
                    return EX_USAGE;
                }
            } else if (a[1] == 'R') {
                ret = strcasecmp(v, "full") == 0   ? DSN_RET_FULL
                      : strcasecmp(v, "hdrs") == 0 ? DSN_RET_HDRS
                                                   : -1;
                if (ret < 0) {
                    fprintf(stderr, "sendmail: -R: expected full or hdrs: %s\n", v);
                    return EX_USAGE;
                }
            } else if (a[1] == 'V') {
                if (!sendmail_envid_ok(v)) {
                    fprintf(stderr, "sendmail: -V: an envelope id is 1 to 100 printable "
                                    "characters\n");
                    return EX_USAGE;
                }
                envid = v;
            } else if (a[1] == 'B') {
                body_8bit = strcasecmp(v, "8BITMIME") == 0;
            } else {
                /* -X LOGFILE: Sendmail's transaction log. */
                fprintf(stderr, "sendmail: -X %s ignored: hongyan keeps no transaction log\n", v);
            }
        } else if (a[1] == 'o' || strcmp(a, "-v") == 0 || strcmp(a, "-bm") == 0 ||
                   strcmp(a, "-U") == 0 || strcmp(a, "-em") == 0 || strcmp(a, "-ep") == 0 ||
                   strcmp(a, "-eq") == 0 || a[1] == 'L' || a[1] == 'h') {
            /* Harmless sendmail options: ignored, as Postfix does. */
        } else {
            fprintf(stderr, "sendmail: unsupported option %s (usage: %s)\n", a, SENDMAIL_USAGE);
            return EX_USAGE;
        }
    }
    struct config *cfg = cli_config();
    log_set_service("sendmail");
    const char *origin = config_get(cfg, "myorigin");

    if (!sendmail_authorized(cfg, "authorized_submit_users", "submit mail"))
        return EX_NOPERM;
    struct envelope *e = envelope_new();
    e->arrival = time(NULL);
    free(e->sender);
    if (sender_opt) {
        /* -f '<alice@example.com>' and -f '<>' are common in scripts. */
        size_t sl = strlen(sender_opt);
        char *s = sl >= 2 && sender_opt[0] == '<' && sender_opt[sl - 1] == '>'
                      ? xstrndup(sender_opt + 1, sl - 2)
                      : xstrdup(sender_opt);
        e->sender = sendmail_checked(s, origin, 1, "sender");
        free(s);
        if (e->sender == NULL) {
            envelope_free(e);
            return EX_USAGE;
        }
    } else {
        struct passwd *pw = getpwuid(getuid());
        e->sender = xasprintf("%s@%s", pw ? pw->pw_name : "nobody", origin);
    }
    if (mode_bv) {
        int rc = sendmail_verify(cfg, e->sender, argv + i, argc - i);
        envelope_free(e);
        return rc;
    }
    e->envid = envid ? xstrdup(envid) : NULL;
    e->ret = (enum dsn_ret)ret;
    e->body_8bit = body_8bit;
    if (mode_bs) {
        int rc = sendmail_session(cfg, e, notify);
        envelope_free(e);
        return rc;
    }

    struct buf msg = BUF_INIT;
    if (sendmail_read(&msg, dot_ends, config_get_int(cfg, "message_size_limit")) < 0) {
        fprintf(stderr, "sendmail: message is larger than message_size_limit\n");
        buf_free(&msg);
        envelope_free(e);
        return EX_DATAERR;
    }
    char **rcpts = xcalloc(1, sizeof *rcpts);
    size_t nr = 0;
    for (; i < argc; i++)
        sendmail_addresses(argv[i], &rcpts, &nr);
    if (extract)
        sendmail_extract(&msg, &rcpts, &nr);
    long long max_rcpts = config_get_int(cfg, "smtpd_recipient_limit");
    if (max_rcpts > 0 && (long long)nr > max_rcpts) {
        fprintf(stderr, "sendmail: too many recipients (%zu; smtpd_recipient_limit is %lld)\n", nr,
                max_rcpts);
        strlist_free(rcpts);
        buf_free(&msg);
        envelope_free(e);
        return EX_USAGE;
    }
    for (size_t k = 0; k < nr; k++) {
        char *q = sendmail_checked(rcpts[k], origin, 0, "recipient");
        if (q == NULL) {
            strlist_free(rcpts);
            buf_free(&msg);
            envelope_free(e);
            return EX_USAGE;
        }
        envelope_add_rcpt(e, q)->notify = notify;
        free(q);
    }
    strlist_free(rcpts);
    if (e->nrcpts == 0) {
        fprintf(stderr, "sendmail: no recipients specified\n");
        buf_free(&msg);
        envelope_free(e);
        return EX_USAGE;
    }

    int rc = sendmail_queue(cfg, e, &msg, full_name);
    buf_free(&msg);
    envelope_free(e);
    return rc;
}
