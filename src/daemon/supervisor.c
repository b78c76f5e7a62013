/*
 * The supervisor: started as root it prepares directories, binds the
 * listening sockets, and runs smtpd and delivery as mail_owner (and the
 * keeper as keeper_user); it restarts each that dies, alone, and passes
 * SIGHUP/SIGTERM on. It parses no network input, so the
 * part of hongyan that keeps root privileges stays small.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "version.h"
#include "queue/maildrop.h"
#include "queue/spool.h"
#include "milter/milter.h"

/* Seconds to wait for smtpd and delivery to finish after passing SIGTERM on. */
#define SUPERVISOR_STOP_SECONDS 40
/* Listening sockets one smtpd command line carries. */
#define SUPERVISOR_MAX_LISTENERS 64
/* The configuration file's cap, as config_load's. */
#define SUPERVISOR_CONFIG_MAX (4u << 20)

static volatile sig_atomic_t supervisor_got_term;
static volatile sig_atomic_t supervisor_got_hup;
static volatile sig_atomic_t supervisor_got_alarm;

static void supervisor_on_signal(int sig)
{
    if (sig == SIGHUP)
        supervisor_got_hup = 1;
    else if (sig == SIGALRM)
        supervisor_got_alarm = 1;
    else if (sig != SIGCHLD)
        supervisor_got_term = 1;
    /* SIGCHLD only cuts the loop's pause short, so that a dead child is reaped at once. */
}

/* Hands one open directory to mail_owner (its mode is set by safedir_open when it makes it). */
static int supervisor_hand_over(int fd, const char *key, const char *path, const struct passwd *pw)
{
    if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
        log_error("%s: cannot chown %s: %s", key, path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Creates a directory smtpd or delivery needs and hands it to mail_owner. As root
 * every step is descriptor-based (lib/safedir.h): a path that should be a
 * directory but is a symlink, or is owned by anyone but root or mail_owner,
 * stops the start with a message naming it, since following it would let
 * whoever planted it have a directory of their choice chowned.
 */
static int supervisor_prepare_dir(const char *key, const char *path, mode_t mode,
                                  const struct passwd *pw, int is_queue)
{
    if (path[0] == '\0')
        return 0;
    if (pw == NULL) {
        if (mkdir_p(path, mode) < 0) {
            log_error("%s: cannot create %s: %s", key, path, strerror(errno));
            return -1;
        }
        return 0;
    }
    struct buf err = BUF_INIT;
    int fd = safedir_open(path, pw->pw_uid, mode, NULL, &err);
    if (fd < 0) {
        log_error("%s: %s", key, buf_cstr(&err));
        buf_free(&err);
        return -1;
    }
    int rc = supervisor_hand_over(fd, key, path, pw);
    /*
     * The queue's own directories (`hongyan queue` run as root before the
     * first start may have made them). maildrop/ and public/, the local
     * submission boundary, belong to mail_owner and setgid_group and are
     * set up by maildrop_prepare() (queue/maildrop.h), the same
     * descriptor-based way.
     */
    if (rc == 0 && is_queue &&
        spool_dirs_hand_over(fd, path, pw->pw_uid, pw->pw_gid, 0, &err) < 0) {
        log_error("%s: %s", key, buf_cstr(&err));
        rc = -1;
    }
    close(fd);
    buf_free(&err);
    return rc;
}

/*
 * A directory of the keeper's (the TLS pair, the DKIM keys) inside one of
 * mail_owner's: the parent is opened as mail_owner's, the directory itself
 * must be root's or the keeper's, and goes to the keeper. One mail_owner
 * replaced with its own is refused, not handed over.
 */
static int supervisor_prepare_keeper_dir(const char *key, const char *path, mode_t mode,
                                         const struct passwd *pw, const struct keeper_proc *kp)
{
    if (path[0] == '\0')
        return 0;
    if (pw == NULL || !kp->drop)
        return supervisor_prepare_dir(key, path, mode, pw, 0);
    struct buf err = BUF_INIT;
    int rc = -1;
    int fd = safedir_open_owned(path, pw->pw_uid, kp->uid, mode, &err);
    if (fd < 0)
        log_error("%s: %s", key, buf_cstr(&err));
    else if (fchown(fd, kp->uid, kp->gid) < 0 || fchmod(fd, mode) < 0)
        log_error("%s: cannot hand %s to keeper_user: %s", key, path, strerror(errno));
    else
        rc = 0;
    if (fd >= 0)
        close(fd);
    buf_free(&err);
    return rc;
}

/* The setgid_group: delivery keeps it as its one supplementary group, to read maildrop files. */
static gid_t supervisor_drop_gid;

/*
 * The local submission boundary (queue/maildrop.h): maildrop/ and public/
 * belong to mail_owner and setgid_group, which hongyan-postdrop is setgid to.
 */
static int supervisor_prepare_maildrop(const struct config *cfg, const struct passwd *pw)
{
    const char *name = config_get(cfg, "setgid_group");
    const struct group *gr = getgrnam(name);
    if (gr == NULL) {
        log_error("setgid_group: group '%s' does not exist; create it with: groupadd --system %s",
                  name, name);
        return -1;
    }
    if (gr->gr_gid == 0 || gr->gr_gid == pw->pw_gid) {
        log_error("setgid_group: '%s' must be a group of its own, not root's or mail_owner's",
                  name);
        return -1;
    }
    supervisor_drop_gid = gr->gr_gid;
    struct buf err = BUF_INIT;
    int rc = maildrop_prepare(config_get(cfg, "queue_directory"), pw->pw_uid, gr->gr_gid, &err);
    if (rc < 0)
        log_error("queue_directory: %s", buf_cstr(&err));
    buf_free(&err);
    return rc;
}

/*
 * mail_owner with primary group gid; with supplementary, setgid_group as the
 * one supplementary group (delivery reads maildrop files with it); without,
 * none at all (smtpd: the network-facing process shares no group beyond
 * mail_owner's).
 */
static struct daemon_creds supervisor_mail_owner(const struct passwd *pw, gid_t gid,
                                                 int supplementary)
{
    struct daemon_creds cr = {0};
    if (pw != NULL) {
        cr.drop = 1;
        cr.uid = pw->pw_uid;
        cr.gid = gid;
        cr.ngroups = supplementary ? 1 : 0;
        cr.group = supervisor_drop_gid;
    }
    return cr;
}

/*
 * Takes an exclusive lock on the queue directory for the life of this server,
 * so that two servers never run on one spool (each would recover, deliver and
 * remove the other's messages). The lock is on the directory itself: nothing
 * is created in a folder that mail_owner can write. Children inherit the
 * descriptor, so the lock holds until the last of them has exited.
 */
static int supervisor_lock_spool(const char *queue_dir)
{
    int fd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        log_error("queue_directory %s: %s", queue_dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            log_error("queue_directory %s is in use by another hongyan server; "
                      "stop it first (two servers must never share a spool)",
                      queue_dir);
        else
            log_error("queue_directory %s: lock: %s", queue_dir, strerror(errno));
        close(fd);
        return -1;
    }
    return fd; /* kept open until exit */
}

/*
 * The last configuration that loaded, kept in a sealed memory file for the
 * children: one exec'd after the file on disk was broken starts on it, as
 * a SIGHUP with a broken file keeps the running configuration. -1 for the
 * embedded default (nothing on disk to break).
 */
static int supervisor_config_snapshot(const char *config_path)
{
    if (config_path == NULL)
        return -1;
    struct buf text = BUF_INIT, err = BUF_INIT;
    int fd = -1;
    if (read_file(config_path, &text, SUPERVISOR_CONFIG_MAX) < 0) {
        log_warning("%s: cannot read: %s", config_path, strerror(errno));
        goto out;
    }
    struct config *cfg = config_load_text(config_path, buf_cstr(&text), text.len, &err);
    if (cfg == NULL)
        goto out; /* the children's reload logs why */
    config_free(cfg);
    fd = memfd_create("hongyan-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || write_all(fd, text.data, text.len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        log_warning("configuration snapshot: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
out:
    buf_free(&text);
    buf_free(&err);
    return fd;
}

/*
 * The counters' region (metrics.h): made once per server, so that a child
 * restarted after a crash carries on from the numbers its predecessor left,
 * as Prometheus expects of a counter, and the smtpd and delivery processes
 * add to one set. Sealed at its size: a child can write the numbers, not
 * resize the file under the other. -1 when it cannot be made: each then
 * counts alone.
 */
static int supervisor_metrics_region(void)
{
    int fd = memfd_create("hongyan-metrics", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)metrics_shared_size()) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        log_warning("metrics: cannot make the shared counters: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Everything smtpd or delivery is told on its command line; built before fork. */
struct supervisor_worker_args {
    char *argv[16 + 2 * SUPERVISOR_MAX_LISTENERS];
    char *owned[16 + 2 * SUPERVISOR_MAX_LISTENERS];
    int nowned;
    int inherit[8 + SUPERVISOR_MAX_LISTENERS]; /* descriptors exec keeps */
    int ninherit;
};

static void supervisor_args_add(struct supervisor_worker_args *a, int *n, char *arg, int owned)
{
    a->argv[(*n)++] = arg;
    if (owned)
        a->owned[a->nowned++] = arg;
}

static void supervisor_args_build(struct supervisor_worker_args *a, const char *command,
                                  const char *config_path, int snapshot_fd, int lock_fd,
                                  struct listen_sock *socks, int nsocks, int keeper_fd,
                                  int metrics_fd, int split_fd, int maps_fd)
{
    memset(a, 0, sizeof *a);
    int n = 0;
    supervisor_args_add(a, &n, "hongyan", 0);
    supervisor_args_add(a, &n, (char *)command, 0);
    supervisor_args_add(a, &n, "--parent", 0);
    supervisor_args_add(a, &n, xasprintf("%ld", (long)getpid()), 1);
    supervisor_args_add(a, &n, "--lock-fd", 0);
    supervisor_args_add(a, &n, xasprintf("%d", lock_fd), 1);
    a->inherit[a->ninherit++] = lock_fd;
    if (log_file_fd() >= 0) {
        supervisor_args_add(a, &n, "--log-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", log_file_fd()), 1);
        a->inherit[a->ninherit++] = log_file_fd();
    }
    if (config_path) {
        supervisor_args_add(a, &n, "--config", 0);
        supervisor_args_add(a, &n, (char *)config_path, 0);
    }
    if (snapshot_fd >= 0) {
        supervisor_args_add(a, &n, "--config-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", snapshot_fd), 1);
        a->inherit[a->ninherit++] = snapshot_fd;
    }
    if (keeper_fd >= 0) {
        supervisor_args_add(a, &n, "--keeper-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", keeper_fd), 1);
        a->inherit[a->ninherit++] = keeper_fd;
    }
    if (metrics_fd >= 0) {
        supervisor_args_add(a, &n, "--metrics-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", metrics_fd), 1);
        a->inherit[a->ninherit++] = metrics_fd;
    }
    if (split_fd >= 0) {
        supervisor_args_add(a, &n, "--split-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", split_fd), 1);
        a->inherit[a->ninherit++] = split_fd;
    }
    if (maps_fd >= 0) {
        supervisor_args_add(a, &n, "--maps-fd", 0);
        supervisor_args_add(a, &n, xasprintf("%d", maps_fd), 1);
        a->inherit[a->ninherit++] = maps_fd;
    }
    for (int i = 0; i < nsocks; i++) {
        supervisor_args_add(a, &n, "--listen", 0);
        supervisor_args_add(
            a, &n, xasprintf("%d,%d,%s", socks[i].fd, (int)socks[i].kind, socks[i].addr), 1);
        a->inherit[a->ninherit++] = socks[i].fd;
    }
    a->argv[n] = NULL;
}

static void supervisor_args_free(struct supervisor_worker_args *a)
{
    for (int i = 0; i < a->nowned; i++)
        free(a->owned[i]);
}

/*
 * What the smtpd and delivery kinds need to start one (daemon.h, enum
 * daemon_role): the same descriptors for both but the listening sockets
 * (smtpd's alone) and each its end of the split socketpair and its own
 * keeper socketpair, renewed at each start.
 */
struct supervisor_worker {
    enum daemon_role role;
    const char *config_path;
    const int *snapshot_fd; /* refreshed at each SIGHUP */
    int lock_fd;
    int metrics_fd; /* the counters' shared region; -1: none */
    struct listen_sock *socks;
    int nsocks;
    int split_fd;      /* its end of the smtpd -> delivery socketpair; -1: none */
    int supplementary; /* 1: setgid_group as its one supplementary group (delivery, for maildrop) */
    const struct passwd *pw;
    struct keeper_proc *keeper;
    int keeper_client; /* its socketpair's index in keeper */
    int keeper_fresh;  /* its keeper socketpair is new and unused: no renewal at this start */
};

/*
 * smtpd's and delivery's kind: a fresh keeper socketpair for this one
 * (nothing of its dead predecessor lingers; the other keeps its own),
 * then fork, drop to mail_owner and exec.
 */
static pid_t supervisor_worker_start(struct daemon_child *c)
{
    struct supervisor_worker *w = c->ctx;
    w->keeper->snapshot_fd = *w->snapshot_fd;
    if (!w->keeper_fresh)
        daemon_keeper_renew(w->keeper, w->keeper_client);
    w->keeper_fresh = 0;
    /* The relay password maps, opened here as root, when this kind delivers. */
    int maps_fd = c->kind->relay_maps ? daemon_mapfd_start(c, w->config_path, *w->snapshot_fd) : -1;
    struct supervisor_worker_args args;
    supervisor_args_build(&args, c->kind->name, w->config_path, *w->snapshot_fd, w->lock_fd,
                          w->role == DAEMON_ROLE_SMTPD ? w->socks : NULL,
                          w->role == DAEMON_ROLE_SMTPD ? w->nsocks : 0,
                          daemon_keeper_client_fd(w->keeper, w->keeper_client), w->metrics_fd,
                          w->split_fd, maps_fd);
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        struct daemon_exec ex = {
            .creds = supervisor_mail_owner(w->pw, w->pw ? w->pw->pw_gid : 0, w->supplementary),
            .supervisor = supervisor,
            .block_signals = 1,
            .argv = args.argv,
            .inherit = args.inherit,
            .ninherit = (size_t)args.ninherit,
        };
        daemon_child_exec(&ex);
    }
    supervisor_args_free(&args);
    if (maps_fd >= 0)
        close(maps_fd); /* the child's */
    if (pid < 0)
        log_error("fork: %s", strerror(errno));
    return pid;
}

static const struct daemon_child_kind supervisor_smtpd_kind = {
    .name = "smtpd",
    .restart = 1,
    .start = supervisor_worker_start,
};

static const struct daemon_child_kind supervisor_delivery_kind = {
    .name = "delivery",
    .restart = 1,
    .relay_maps = 1, /* the relay's SASL passwords: delivery's alone, smtpd never gets them */
    .start = supervisor_worker_start,
};

/*
 * The smtpd -> delivery socketpair (ipc/ipc_proto.h), held by the
 * supervisor for the life of the server, so that either child restarted
 * alone finds the same connection. One way only, by the kernel: smtpd's
 * end cannot receive, so a compromised delivery process cannot send to
 * it (delivery has nothing to tell it). -1 when it cannot be made: each
 * side then relies on the queue scans.
 */
static int supervisor_split_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
        shutdown(sv[0], SHUT_RD) < 0) {
        log_warning("split socket: %s: delivery finds new mail by its queue scans only",
                    strerror(errno));
        sv[0] = sv[1] = -1;
        return -1;
    }
    return 0;
}

/*
 * The daily `hongyan report send` (daemon/reports.c), as mail_owner: it
 * queues through the setgid hongyan-postdrop like any local mail. Returns its pid, or 0 when none
 * was started.
 */
static pid_t supervisor_spawn_reports(const char *config_path, const struct passwd *pw)
{
    if (!daemon_reports_wanted(config_path))
        return 0;
    char *argv[] = {"hongyan", "-c", (char *)config_path, "report", "send", NULL};
    if (config_path == NULL) {
        argv[1] = "report";
        argv[2] = "send";
        argv[3] = NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_warning("cannot start report send: %s", strerror(errno));
        return 0;
    }
    if (pid > 0) {
        log_info("daily reports: report send started, pid %ld", (long)pid);
        return pid;
    }
    /*
     * setgid_group as the primary gid, what exec of the setgid helper would
     * give: under systemd's NoNewPrivileges= that exec gives nothing, and the
     * helper checks its effective gid (postdrop.c). It may outlive us: it
     * holds no socket and queues through postdrop.
     */
    struct daemon_exec ex = {
        .creds = supervisor_mail_owner(pw, supervisor_drop_gid, 1),
        .argv = argv,
    };
    daemon_child_exec(&ex);
}

/* The report run pid ended with status. */
static void supervisor_reap_reports(pid_t *child, int status)
{
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        log_warning("report send exited with status %d; the pending reports wait for the next run",
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    *child = 0;
}

/* Starts the report run when its time has come, unless the last one is still going. */
static void supervisor_daily(const char *config_path, const struct passwd *pw, pid_t *child)
{
    if (!supervisor_got_alarm)
        return;
    supervisor_got_alarm = 0;
    alarm(daemon_reports_delay(time(NULL)));
    if (*child > 0)
        log_warning("report send from the last run still going: not starting another");
    else
        *child = supervisor_spawn_reports(config_path, pw);
}

/* Reaps every child that has ended: the table's are logged and left to restart. */
static void supervisor_reap(struct daemon_child *const *table, size_t n, pid_t *reports_child)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        if (pid == *reports_child)
            supervisor_reap_reports(reports_child, status);
        else
            daemon_child_reaped(table, n, pid, status);
    }
}

int daemon_supervise(const char *config_path, struct config *cfg)
{
    log_set_service("master");
    log_set_hostname(config_get(cfg, "myhostname"));
    struct buf err = BUF_INIT;
    if (log_open_file(config_get(cfg, "maillog_file"), &err) < 0) {
        fprintf(stderr, "hongyan: maillog_file: %s\n", buf_cstr(&err));
        buf_free(&err);
        return EX_CANTCREAT;
    }
    /* Keys set twice, and each Postfix key that has no effect here, once per start. */
    config_log_notes(cfg, 1);

    const struct passwd *pw = NULL;
    if (geteuid() == 0) {
        const char *owner = config_get(cfg, "mail_owner");
        pw = getpwnam(owner);
        if (pw == NULL) {
            log_error("mail_owner: user '%s' does not exist; create it with: "
                      "useradd --system --home-dir /var/lib/hongyan --shell /usr/sbin/nologin %s",
                      owner, owner);
            return EX_NOUSER;
        }
        if (pw->pw_uid == 0) {
            log_error("mail_owner: '%s' must not be root", owner);
            return EX_CONFIG;
        }
    }
    /* A milter list that does not parse stops the start, as it stops Postfix's smtpd. */
    static const char *const milter_keys[] = {"smtpd_milters", "non_smtpd_milters"};
    for (size_t i = 0; i < 2; i++) {
        struct milter_conf *mc = milter_conf_load(cfg, milter_keys[i], &err);
        if (mc == NULL) {
            log_error("%s: %s", milter_keys[i], buf_cstr(&err));
            buf_free(&err);
            return EX_CONFIG;
        }
        milter_conf_free(mc);
    }
    const char *data = config_get(cfg, "data_directory");
    char *tls_dir = xasprintf("%s/tls", data);
    int rc = supervisor_prepare_dir("data_directory", data, 0755, pw, 0);
    if (rc == 0)
        rc = supervisor_prepare_dir("queue_directory", config_get(cfg, "queue_directory"), 0755, pw,
                                    1);
    if (rc == 0)
        rc = supervisor_prepare_dir("virtual_mailbox_base", config_get(cfg, "virtual_mailbox_base"),
                                    0700, pw, 0);
    struct keeper_proc keeper;
    if (rc == 0 && daemon_keeper_init(&keeper, cfg, config_path, pw) < 0)
        return EX_NOUSER;
    /* The keeper's: the certificate is read by smtpd, the key and DKIM keys are not. */
    if (rc == 0)
        rc = supervisor_prepare_keeper_dir("data_directory", tls_dir, 0755, pw, &keeper);
    if (rc == 0)
        rc = supervisor_prepare_keeper_dir(
            "dkim_key_directory", config_get(cfg, "dkim_key_directory"), 0700, pw, &keeper);
    free(tls_dir);
    if (rc < 0)
        return EX_CANTCREAT;
    int lock_fd = supervisor_lock_spool(config_get(cfg, "queue_directory"));
    if (lock_fd < 0)
        return EX_TEMPFAIL;
    /* A queue this release cannot read stops the start here, not in a restarting worker. */
    if (spool_version_check(config_get(cfg, "queue_directory"), &err) < 0) {
        log_error("queue_directory: %s", buf_cstr(&err));
        buf_free(&err);
        return EX_CONFIG;
    }
    /* Here, once per start: smtpd's and delivery's Landlock rulesets do not let them read /sys. */
    spool_check_filesystem(config_get(cfg, "queue_directory"), lock_fd);
    if (pw != NULL && supervisor_prepare_maildrop(cfg, pw) < 0)
        return EX_CANTCREAT;

    struct listen_sock *socks = NULL;
    int nsocks = daemon_listeners_bind(cfg, &socks, &err);
    if (nsocks < 0) {
        log_error("%s", buf_cstr(&err));
        buf_free(&err);
        return EX_UNAVAILABLE;
    }
    if (nsocks == 0) {
        log_error("no listening address: set smtpd_listen or submission_listen");
        return EX_CONFIG;
    }
    if (nsocks > SUPERVISOR_MAX_LISTENERS) {
        log_error("%d listening addresses: at most %d", nsocks, SUPERVISOR_MAX_LISTENERS);
        return EX_CONFIG;
    }
    for (int i = 0; i < nsocks; i++)
        log_info("listening on %s", socks[i].addr);

    struct sigaction sa = {.sa_handler = supervisor_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pid_t reports_child = 0;
    unsigned first_report = daemon_reports_delay(time(NULL));
#if HONGYAN_TEST_HOOKS
    /* The test build can have the daily run come at once instead of after midnight. */
    const char *soon = getenv("HONGYAN_TEST_REPORTS_AFTER");
    if (soon && atoi(soon) > 0)
        first_report = (unsigned)atoi(soon);
#endif
    alarm(first_report);

    int snapshot_fd = supervisor_config_snapshot(config_path);
    int split[2];
    supervisor_split_pair(split);
    struct supervisor_worker smtpd_ctx = {
        .role = DAEMON_ROLE_SMTPD,
        .config_path = config_path,
        .snapshot_fd = &snapshot_fd,
        .lock_fd = lock_fd,
        .metrics_fd = supervisor_metrics_region(),
        .socks = socks,
        .nsocks = nsocks,
        .split_fd = split[0],
        .pw = pw,
        .keeper = &keeper,
        /* The network-facing side: TLS handshakes, AUTH, DKIM signing at spool entry. */
        .keeper_client = daemon_keeper_add_client(&keeper, KEEPER_CAPS_ALL),
        .keeper_fresh = 1,
    };
    struct supervisor_worker delivery_ctx = smtpd_ctx;
    delivery_ctx.role = DAEMON_ROLE_DELIVERY;
    delivery_ctx.split_fd = split[1];
    delivery_ctx.supplementary = 1;
    /* It signs the sendmail mail it picks up; it checks no password and makes no TLS server. */
    delivery_ctx.keeper_client = daemon_keeper_add_client(
        &keeper, KEEPER_CAP(KEEPER_DKIM_KEYS) | KEEPER_CAP(KEEPER_DKIM_SIGN));
    struct daemon_child smtpd = {
        .kind = &supervisor_smtpd_kind,
        .ctx = &smtpd_ctx,
        .user = pw ? pw->pw_name : NULL,
    };
    struct daemon_child delivery = {
        .kind = &supervisor_delivery_kind,
        .ctx = &delivery_ctx,
        .user = pw ? pw->pw_name : NULL,
    };
    /* The keeper first, with both clients' socketpairs: each child's start waits for its keys. */
    struct daemon_child *const children[] = {&keeper.child, &delivery, &smtpd};
    const size_t nchildren = sizeof children / sizeof children[0];
    keeper.snapshot_fd = snapshot_fd;
    daemon_keeper_renew(&keeper, -1);
    daemon_child_start(&delivery);
    daemon_child_start(&smtpd);
    while (!supervisor_got_term) {
        /* Polled, not blocking: SIGCHLD, SIGHUP and SIGTERM cut the pause short. */
        supervisor_reap(children, nchildren, &reports_child);
        supervisor_daily(config_path, pw, &reports_child);
        daemon_child_restart_due(children, nchildren);
        /* A rebuilt relay password table goes to the child without a reload. */
        for (size_t i = 0; i < nchildren; i++)
            daemon_mapfd_watch(children[i]);
        if (supervisor_got_hup) {
            supervisor_got_hup = 0;
            for (size_t i = 0; i < nchildren; i++)
                daemon_child_reload(children[i], config_path);
            /* What the children now run on is what a restarted one falls back to. */
            int fresh = supervisor_config_snapshot(config_path);
            if (fresh >= 0) {
                if (snapshot_fd >= 0)
                    close(snapshot_fd);
                snapshot_fd = fresh;
                keeper.snapshot_fd = fresh;
            }
        }
        if (!supervisor_got_term) {
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /*
     * smtpd first (its open sessions), then delivery (its in-flight
     * deliveries), while the keeper still signs. Both drain at once: each
     * got the SIGTERM here, and each stop waits for one.
     */
    daemon_child_signal(&smtpd, SIGTERM);
    daemon_child_signal(&delivery, SIGTERM);
    daemon_child_stop(&smtpd, SUPERVISOR_STOP_SECONDS);
    daemon_child_stop(&delivery, SUPERVISOR_STOP_SECONDS);
    daemon_keeper_stop(&keeper);
    daemon_listeners_free(socks, nsocks);
    if (snapshot_fd >= 0)
        close(snapshot_fd);
    if (smtpd_ctx.metrics_fd >= 0)
        close(smtpd_ctx.metrics_fd);
    for (int i = 0; i < 2; i++)
        if (split[i] >= 0)
            close(split[i]);
    log_info("stopped");
    buf_free(&err);
    return 0;
}
