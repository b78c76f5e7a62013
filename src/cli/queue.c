/*
 * `hongyan queue` and `mailq`: list, show, flush, delete, hold and release
 * queued mail. Changes are renames and unlinks in the spool that the queue
 * manager tolerates (it re-reads each envelope before every delivery and
 * forgets a message that left active/); flush and release write to the
 * flush FIFO so a running server acts at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/queue_json.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/envelope.h"
#include "queue/maildrop.h"
#include "queue/pickup.h"
#include "queue/spool.h"

#define QUEUE_SHOW_MAX (256 * 1024 * 1024)

int cli_queue_prepare(const struct config *cfg, struct buf *err)
{
    const struct passwd *pw = geteuid() == 0 ? getpwnam(config_get(cfg, "mail_owner")) : NULL;
    if (pw == NULL || pw->pw_uid == 0)
        return 0; /* the server refuses to start with that mail_owner anyway */
    uid_t owner = pw->pw_uid;
    gid_t owner_gid = pw->pw_gid;
    const char *qdir = config_get(cfg, "queue_directory");
    int qfd = safedir_open(qdir, owner, 0755, NULL, err);
    if (qfd < 0)
        return -1;
    /* The version first: nothing is made in a queue this release does not understand. */
    int rc = spool_version_check(qdir, err);
    if (rc == 0 && fchown(qfd, owner, owner_gid) < 0) {
        buf_printf(err, "cannot give %s to mail_owner: %s", qdir, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        rc = spool_dirs_hand_over(qfd, qdir, owner, owner_gid, 0700, err);
    /* Without its group the boundary cannot be set up; the server says so at start. */
    const struct group *gr = getgrnam(config_get(cfg, "setgid_group"));
    if (rc == 0 && gr != NULL && gr->gr_gid != 0 && gr->gr_gid != owner_gid)
        rc = maildrop_prepare(qdir, owner, gr->gr_gid, err);
    close(qfd);
    return rc;
}

static struct spool *queue_open(void)
{
    struct buf err = BUF_INIT;
    struct spool *s = NULL;
    if (cli_queue_prepare(cli_config(), &err) == 0)
        /* The committed queue's operator, as delivery: it receives nothing. */
        s = spool_open(config_get(cli_config(), "queue_directory"), SPOOL_INCOMING_DELIVERY, &err);
    if (s == NULL)
        fprintf(stderr, "hongyan queue: %s\n", buf_cstr(&err));
    buf_free(&err);
    return s;
}

/* 0 when a server read it, -1 when none is running (ENXIO) or the FIFO is missing. */
static int queue_poke(struct spool *s, const char *what)
{
    int fd = open(spool_fifo_path(s), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, what, strlen(what));
    close(fd);
    return rc;
}

static void queue_time(time_t t, char *out, size_t n)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%a %b %e %H:%M:%S", &tm);
}

void queue_walk(struct spool *s, void (*fn)(void *arg, const struct queue_entry *q), void *arg)
{
    for (int w = 0; w < 2; w++) {
        size_t n;
        char **ids = spool_list(s, w ? SPOOL_HOLD : SPOOL_ACTIVE, &n);
        for (size_t i = 0; i < n; i++) {
            struct buf err = BUF_INIT;
            struct queue_entry q = {.id = ids[i]};
            struct envelope *e = spool_read_envelope(s, ids[i], &q.where, &err);
            buf_free(&err);
            if (e == NULL)
                continue;
            unsigned long long size;
            q.size = spool_data_size(s, ids[i], q.where, &size) == 0 ? (long long)size : 0;
            q.e = e;
            fn(arg, &q);
            envelope_free(e);
        }
        strlist_free(ids);
    }
    /* Mail from sendmail that the server has not picked up yet (it is not running). */
    char **names = pickup_names(s);
    for (char **n = names; *n; n++) {
        struct buf text = BUF_INIT, err = BUF_INIT;
        struct envelope *e = NULL;
        size_t off;
        long uid;
        char *path = xasprintf("%s/%s", spool_maildrop_dir(s), *n);
        if (read_file(path, &text, QUEUE_SHOW_MAX) == 0 &&
            pickup_parse(text.data ? text.data : "", text.len, &uid, &e, &off, &err) == 0) {
            struct queue_entry q = {
                .e = e, .id = *n, .maildrop = 1, .size = (long long)(text.len - off)};
            fn(arg, &q);
        }
        envelope_free(e);
        free(path);
        buf_free(&text);
        buf_free(&err);
    }
    strlist_free(names);
}

struct queue_listing {
    size_t total, count;
    int header;
    time_t now;
};

/* One message in mailq's layout. */
static void queue_list_one(void *arg, const struct queue_entry *q)
{
    struct queue_listing *l = arg;
    const struct envelope *e = q->e;
    if (!l->header) {
        printf("-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
        l->header = 1;
    }
    char when[64];
    queue_time(e->arrival, when, sizeof when);
    char idm[QUEUE_ID_MAX + 2];
    int held = !q->maildrop && q->where == SPOOL_HOLD;
    snprintf(idm, sizeof idm, "%s%s", q->id, held ? "!" : "");
    printf("%-16s %8lld %-20s  %s\n", idm, q->size, when,
           e->sender[0] ? e->sender : "MAILER-DAEMON");
    if (q->maildrop) {
        printf("%48s(waiting for pickup from maildrop)\n", "");
    } else if (!held && e->next_try > l->now) {
        char nt[64];
        queue_time(e->next_try, nt, sizeof nt);
        printf("%48s(next try: %s)\n", "", nt);
    }
    for (size_t k = 0; k < e->nrcpts; k++) {
        const struct envelope_rcpt *r = &e->rcpts[k];
        if (!q->maildrop && r->state != RCPT_PENDING)
            continue;
        if (!q->maildrop && r->last_error)
            printf("%48s(%s)\n", "", r->last_error);
        printf("%48s%s\n", "", r->address);
    }
    printf("\n");
    l->total += (size_t)q->size;
    l->count++;
}

static int queue_list(struct spool *s)
{
    struct queue_listing l = {.now = time(NULL)};
    queue_walk(s, queue_list_one, &l);
    if (l.count == 0)
        printf("Mail queue is empty\n");
    else
        printf("-- %zu Kbytes in %zu Request%s.\n", (l.total + 1023) / 1024, l.count,
               l.count == 1 ? "" : "s");
    return 0;
}

static const char *queue_state(enum rcpt_state st)
{
    switch (st) {
    case RCPT_DELIVERED:
        return "delivered";
    case RCPT_BOUNCED:
        return "bounced";
    case RCPT_DELETED:
        return "deleted";
    case RCPT_PENDING:
        break;
    }
    return "pending";
}

static int queue_show(struct spool *s, const char *id)
{
    struct buf err = BUF_INIT, why = BUF_INIT, data = BUF_INIT;
    enum spool_where where;
    struct envelope *e = spool_read_envelope(s, id, &where, &err);
    if (e == NULL) {
        fprintf(stderr, "hongyan queue: %s: %s\n", id,
                errno == ENOENT ? "no such message" : buf_cstr(&err));
        buf_free(&err);
        return 1;
    }
    char when[64];
    queue_time(e->arrival, when, sizeof when);
    printf("*** ENVELOPE RECORDS %s ***\n", id);
    printf("queue: %s\narrival: %s\nsender: %s\n", where == SPOOL_HOLD ? "hold" : "active", when,
           e->sender);
    if (e->envid)
        printf("envid: %s\n", e->envid);
    for (size_t k = 0; k < e->nrcpts; k++) {
        const struct envelope_rcpt *r = &e->rcpts[k];
        printf("recipient: %s (%s", r->address, queue_state(r->state));
        if (r->dsn_status)
            printf(", dsn=%s", r->dsn_status);
        if (r->last_error)
            printf(", %s", r->last_error);
        printf(")\n");
        if (r->orcpt)
            printf("original_recipient: %s\n", r->orcpt);
    }
    printf("*** MESSAGE CONTENTS %s ***\n", id);
    struct spool_data msg;
    int rc = 0;
    if (spool_data_open(s, id, where, &msg, &why) < 0 ||
        spool_data_read(&msg, &data, QUEUE_SHOW_MAX) < 0) {
        if (msg.fd >= 0)
            buf_printf(&why, "%s: %s", id, strerror(errno));
        fprintf(stderr, "hongyan queue: %s\n", buf_cstr(&why));
        rc = 1;
    } else {
        /* Shown with the terminal's line ends, as postcat does. */
        for (size_t i = 0; i < data.len; i++)
            if (!(data.data[i] == '\r' && i + 1 < data.len && data.data[i + 1] == '\n'))
                putchar(data.data[i]);
    }
    printf("*** END OF MESSAGE %s ***\n", id);
    envelope_free(e);
    buf_free(&err);
    spool_data_close(&msg);
    buf_free(&why);
    buf_free(&data);
    return rc;
}

/*
 * Why hold and delete leave a journaled message alone: delivery may be
 * reading it from the journal right now, and it moves to active/ (as
 * files, where they work) at its first deferral.
 */
#define QUEUE_JOURNALED                                                                            \
    "in the journal (a small message delivery is taking from journal/); hold and delete work "     \
    "once it is in active/, which it is after its first deferral: run this again then"

static int queue_delete(struct spool *s, const char *id)
{
    int n = 0, missing = 0;
    if (strcmp(id, "ALL") == 0) {
        for (int w = 0; w < 2; w++) {
            size_t c;
            char **ids = spool_list(s, w ? SPOOL_HOLD : SPOOL_ACTIVE, &c);
            for (size_t i = 0; i < c; i++) {
                if (spool_delete(s, ids[i]) == 0) {
                    printf("%s: removed\n", ids[i]);
                    n++;
                } else if (errno == EBUSY) {
                    fprintf(stderr, "hongyan queue: %s: %s\n", ids[i], QUEUE_JOURNALED);
                }
            }
            strlist_free(ids);
        }
    } else if (spool_delete(s, id) == 0) {
        printf("%s: removed\n", id);
        n = 1;
    } else if (errno == EBUSY) {
        fprintf(stderr, "hongyan queue: %s: %s\n", id, QUEUE_JOURNALED);
        missing = 1;
    } else {
        fprintf(stderr, "hongyan queue: %s: no such message\n", id);
        missing = 1;
    }
    printf("Deleted: %d message%s\n", n, n == 1 ? "" : "s");
    queue_poke(s, "W\n");
    return missing;
}

static int queue_move(struct spool *s, const char *id, int hold)
{
    if ((hold ? spool_hold(s, id) : spool_release(s, id)) < 0) {
        fprintf(stderr, "hongyan queue: %s: %s\n", id,
                errno == ENOENT
                    ? (hold ? "no such message in the active queue" : "no such message on hold")
                : errno == EBUSY ? QUEUE_JOURNALED
                                 : strerror(errno));
        return 1;
    }
    printf("%s: %s\n", id, hold ? "placed on hold" : "released from hold");
    /* Either way the queue manager rescans: a release to deliver, a hold to stop counting it. */
    queue_poke(s, "W\n");
    return 0;
}

static const char *queue_usage =
    "queue [list] [--json] | --json | flush | show ID | delete ID|ALL | hold ID | release ID";

int cli_queue_main(int argc, char **argv)
{
    int i = 1;
    while (i < argc && strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
        cli_config_path = argv[i + 1];
        i += 2;
    }
    const char *cmd = i < argc ? argv[i] : "list";
    const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
    /* `queue --json` and `queue list --json`: postqueue -j for scripts. */
    int json = strcmp(cmd, "--json") == 0 ||
               (strcmp(cmd, "list") == 0 && arg && strcmp(arg, "--json") == 0);
    if (json) {
        if (i + (strcmp(cmd, "--json") == 0 ? 1 : 2) < argc)
            return cli_usage(queue_usage);
        cmd = "list";
        arg = NULL;
    }
    int needs_arg = strcmp(cmd, "show") == 0 || strcmp(cmd, "delete") == 0 ||
                    strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0;
    if ((needs_arg && arg == NULL) || (!needs_arg && arg != NULL))
        return cli_usage(queue_usage);
    struct spool *s = queue_open();
    if (s == NULL)
        return EX_TEMPFAIL;
    int rc;
    if (strcmp(cmd, "list") == 0) {
        rc = json ? queue_list_json(s) : queue_list(s);
    } else if (strcmp(cmd, "flush") == 0) {
        if (queue_poke(s, "F\n") < 0) {
            fprintf(stderr, "hongyan queue: the server is not running; "
                            "queued mail will be delivered when it starts\n");
            rc = EX_UNAVAILABLE;
        } else {
            printf("flush requested\n");
            rc = 0;
        }
    } else if (strcmp(cmd, "show") == 0) {
        rc = queue_show(s, arg);
    } else if (strcmp(cmd, "delete") == 0) {
        rc = queue_delete(s, arg);
    } else if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0) {
        rc = queue_move(s, arg, strcmp(cmd, "hold") == 0);
    } else {
        rc = cli_usage(queue_usage);
    }
    spool_free(s);
    return rc;
}

int cli_mailq_main(int argc, char **argv)
{
    struct spool *s = queue_open();
    if (s == NULL)
        return EX_TEMPFAIL;
    int rc = queue_list(s);
    spool_free(s);
    return rc;
}
