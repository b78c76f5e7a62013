/*
 * hongyan serve: the supervisor (root: directories, sockets, privilege drop,
 * restarting a dead child, passing signals on), the keeper, and smtpd and
 * delivery (mail_owner: one libevent loop each, smtpd's for the sessions,
 * delivery's for the queue manager and its agents; docs/architecture.md).
 */
#ifndef HONGYAN_DAEMON_DAEMON_H
#define HONGYAN_DAEMON_DAEMON_H

#include <sys/types.h>
#include <time.h>

#include "server/server.h"

struct config;
struct event;
struct event_base;
struct passwd;

/* A bound listening socket handed from the supervisor to the worker. */
struct listen_sock {
    int fd;
    enum listener_kind kind;
    char *addr; /* as configured, for logs */
};

/*
 * Parses the *_listen keys and binds every address (SO_REUSEADDR,
 * non-blocking). Returns the count, or -1 with err naming the key and
 * address. The caller frees with daemon_listeners_free.
 */
int daemon_listeners_bind(const struct config *cfg, struct listen_sock **out, struct buf *err);
void daemon_listeners_free(struct listen_sock *socks, int count);

/* Runs the supervisor until SIGTERM/SIGINT; returns the exit code. */
int daemon_supervise(const char *config_path, struct config *cfg);

/*
 * The two processes the supervisor runs as mail_owner (docs/architecture.md,
 * "Process split"), one loop each (daemon_worker_run):
 * - smtpd: the listeners (SMTP and metrics_listen), the sessions, inbound
 *   checks, DATA into incoming/ and the group commit; it tells delivery of
 *   each commit over the split socket (ipc/ipc_proto.h), a hint only.
 * - delivery: the queue manager, the agents, bounces, maildrop pickup and
 *   the flush FIFO; reads the split socket.
 */
enum daemon_role {
    DAEMON_ROLE_SMTPD,
    DAEMON_ROLE_DELIVERY,
};
/* "smtpd" or "delivery": its hidden command, its name in the log. */
const char *daemon_role_name(enum daemon_role role);

/*
 * `hongyan smtpd ARGS` and `hongyan delivery ARGS` (src/daemon/worker_exec.c):
 * what the supervisor execs as mail_owner; takes over the descriptors named
 * in ARGS, re-reads the configuration and runs daemon_worker_run in the
 * role argv[0] names. Returns the exit code.
 */
int daemon_worker_main(int argc, char **argv);

/*
 * The supervisor's children (src/daemon/child.c), one table of kinds: a
 * kind names the hidden command (`hongyan NAME`, also its name in the log),
 * says whether a dead one is restarted, and starts one. Every child is a
 * fork and an exec of our own binary (a fresh image and address layout each
 * time) with exactly the descriptors it is told about.
 */
struct daemon_child;
struct daemon_child_kind {
    const char *name;
    int restart; /* 1: restarted when it dies, paced by its quick deaths */
    /*
     * 1: the process that delivers: it gets the relay password maps opened
     * by root (daemon_mapfd_start in its start, daemon_mapfd_renew before
     * each SIGHUP), and no other kind does.
     */
    int relay_maps;
    /* Forks and execs one (daemon_child_exec in the child); its pid, or -1 after logging why. */
    pid_t (*start)(struct daemon_child *c);
};
struct daemon_child {
    const struct daemon_child_kind *kind;
    void *ctx;        /* the kind's own state */
    const char *user; /* for the "started" line; NULL when not dropping privileges */
    pid_t pid;        /* 0: not running */
    time_t started, died;
    int quick_deaths; /* deaths within 5 s of the start, in a row: the restart waits longer */
    struct daemon_mapfd *maps; /* relay_maps: the supervisor's side (daemon/mapfd.c); NULL: none */
};
/* Who a child becomes: drop 0 keeps the supervisor's (not started as root). */
struct daemon_creds {
    int drop;
    uid_t uid;
    gid_t gid;
    int ngroups; /* 0 or 1: the supplementary groups, exactly */
    gid_t group;
};
/* What the forked child does before it execs. */
struct daemon_exec {
    struct daemon_creds creds;
    pid_t supervisor;   /* > 0: die with it (PR_SET_PDEATHSIG, checked against getppid) */
    int block_signals;  /* SIGHUP/SIGTERM/SIGINT stay blocked across exec, until the loop has
                           handlers */
    char **argv;        /* argv[0] "hongyan", argv[1] the command */
    const int *inherit; /* descriptors that lose close-on-exec */
    size_t ninherit;
};
/* In the forked child: resets signals, drops privileges, execs; never returns. */
_Noreturn void daemon_child_exec(const struct daemon_exec *ex);
/* Starts c through its kind and logs "NAME started, pid N[, user U]". */
void daemon_child_start(struct daemon_child *c);
/* pid (reaped with status) is one of table's: logs its death, 1. Not one of them: 0. */
int daemon_child_reaped(struct daemon_child *const *table, size_t n, pid_t pid, int status);
/* Restarts every dead child whose kind restarts and whose pause is over. */
void daemon_child_restart_due(struct daemon_child *const *table, size_t n);
void daemon_child_signal(const struct daemon_child *c, int sig);
/*
 * Passes a SIGHUP on to c; a kind with relay_maps first gets its tables'
 * files opened again and sent (daemon_mapfd_renew), so that its reload
 * builds on them.
 */
void daemon_child_reload(struct daemon_child *c, const char *config_path);
/* SIGTERM, then SIGKILL (logged) after seconds; reaps it. -1 when it had to be killed. */
int daemon_child_stop(struct daemon_child *c, int seconds);

/*
 * The keeper process as the supervisor runs it (src/daemon/keeper_spawn.c):
 * one SOCK_SEQPACKET socketpair per client process, both ends held by the
 * supervisor, so that a keeper or a worker restarted on its own finds the
 * same connection; the keeper is exec'd as keeper_user (its own uid and
 * group) and restarted when it dies. A new worker gets a fresh socketpair,
 * and the keeper is restarted with it.
 */
/* Client processes one keeper serves (smtpd and delivery). */
#define KEEPER_PROC_CLIENTS 4
struct keeper_pair {
    int keeper_end, client_end; /* -1 when none */
    unsigned caps;              /* the requests this client may make (KEEPER_CAP) */
};
struct keeper_proc {
    struct daemon_child child; /* its entry in the supervisor's table */
    struct keeper_pair pairs[KEEPER_PROC_CLIENTS];
    int npairs;
    int snapshot_fd; /* the supervisor's configuration snapshot (-1: none), as the worker's */
    int wait_ready;  /* the next start blocks until its keys are loaded */
    uid_t uid;
    gid_t gid;
    int drop; /* started as root: become uid/gid */
    const char *config_path;
};
/* Checks keeper_user (when root) and fills kp; -1 after logging why. */
int daemon_keeper_init(struct keeper_proc *kp, const struct config *cfg, const char *config_path,
                       const struct passwd *mail_owner);
/*
 * Registers a client process that may make the requests in caps (a mask of
 * KEEPER_CAP, ipc/ipc_proto.h), before the first daemon_keeper_renew.
 * Returns its index for daemon_keeper_client_fd, or -1 when full.
 */
int daemon_keeper_add_client(struct keeper_proc *kp, unsigned caps);
/* The client's end of its socketpair, for its command line; -1 when none. */
int daemon_keeper_client_fd(const struct keeper_proc *kp, int client);
/*
 * A fresh socketpair for client (every client when -1; the old ones
 * closed), the keeper restarted on them and the others' unchanged; waits
 * until it is ready. A restarted smtpd or delivery gets its own renewed,
 * and the other child keeps its connection.
 */
void daemon_keeper_renew(struct keeper_proc *kp, int client);
/* SIGTERM, then SIGKILL after 5 s. */
void daemon_keeper_stop(struct keeper_proc *kp);

/*
 * The relay password maps opened by root (src/daemon/mapfd.c,
 * docs/security.md): the files of smtp_sasl_password_maps stay root:root
 * 0600, the supervisor opens them (no symbolic link followed, directories
 * by lib/safedir's rules) and hands the descriptors to the child over a
 * socketpair (SCM_RIGHTS, ipc/ipc_proto.h); the child reads them through
 * the maps' registry (maps/map_fd.h).
 */
/*
 * Supervisor, before forking c: a fresh socketpair (the previous one
 * closed) with the files, opened now for the configuration the child will
 * load, waiting on it. Returns the child's end (close-on-exec: put it in
 * the exec's inherit list and on the command line as --maps-fd, close it
 * after the fork), or -1 (logged).
 */
int daemon_mapfd_start(struct daemon_child *c, const char *config_path, int snapshot_fd);
/* Supervisor, before passing SIGHUP to a running c: the files opened again and sent. */
void daemon_mapfd_renew(struct daemon_child *c, const char *config_path);
/*
 * Supervisor, in its loop: at most once a second, looks whether a file sent
 * to c was replaced (a rebuild renames a new one into place) and then sends
 * them all again, so that the child takes the new table without a reload,
 * as Postfix's daemons pick up a rebuilt table.
 */
void daemon_mapfd_watch(struct daemon_child *c);
/* Supervisor: closes its end and forgets the files (at stop). */
void daemon_mapfd_close(struct daemon_child *c);
/* Child: keeps sock (from --maps-fd) and takes the files waiting on it into the registry. */
void daemon_mapfd_adopt(int sock);
/* Child, on SIGHUP before building the new generation: takes the newest files waiting. */
void daemon_mapfd_reload(void);
/*
 * Child: an event on base that takes files the supervisor sends between
 * reloads (after a rebuild); NULL when it has no maps socket. The caller
 * frees it with event_free.
 */
struct event *daemon_mapfd_listen(struct event_base *base);
/*
 * A warning line in warn for each file of smtp_sasl_password_maps that
 * mail_owner (with its group or setgid_group) could read: those passwords
 * would be in reach of the network-facing process. `hongyan config` and
 * the supervisor say it.
 */
void daemon_mapfd_check_exposed(const struct config *cfg, struct buf *warn);

/*
 * Runs one role's loop: smtpd on the inherited listening sockets, delivery
 * on none. split_fd: smtpd's sending end or delivery's receiving end of the
 * supervisor's split socketpair (-1: none). Returns the exit code.
 */
int daemon_worker_run(enum daemon_role role, const char *config_path, struct config *cfg,
                      struct listen_sock *socks, int nsocks, int split_fd);

/*
 * The daily report run (src/daemon/reports.c): the supervisor starts
 * `hongyan report send` as mail_owner shortly after midnight UTC when
 * smtp_tls_reporting or smtpd_dmarc_reporting is on. daemon_reports_delay
 * gives the seconds until the next run; daemon_reports_wanted reads the
 * configuration file again and says whether either is on.
 */
unsigned daemon_reports_delay(time_t now);
int daemon_reports_wanted(const char *config_path);

/*
 * The role's sandbox (src/daemon/sandbox.c): PR_SET_NO_NEW_PRIVS and the
 * role's seccomp allowlist, for all threads; a call outside it kills the
 * process. 0, or -1 with err set. Sanitizer builds set no_new_privs only.
 */
int daemon_sandbox_enter(enum daemon_role role, struct buf *err);
/*
 * The role's Landlock ruleset (src/daemon/landlock.c), for the calling
 * thread and every thread it starts later: call it before the first thread.
 * Writable: queue_directory, and for delivery data_directory and
 * virtual_mailbox_base, for smtpd $data_directory/dmarc (made if missing
 * when smtpd_dmarc_reporting is on);
 * readable: /etc, /usr, /lib, /lib64, /proc, /dev, the configuration file's
 * directory and that of every absolute path a configuration value names
 * (for smtpd: not data_directory itself, the mailboxes, the relay password
 * maps nor the keeper's files; $data_directory/tls). 0 when in force, 1
 * when the kernel has no Landlock (logged), -1 with err.
 */
int daemon_landlock_enter(enum daemon_role role, const char *config_path, const struct config *cfg,
                          struct buf *err);
/*
 * In a build configured with -Dtest_hooks=true: with HONGYAN_TEST_SECCOMP_TRIGGER
 * set, a SIGUSR2 event that makes the process call execve (accept4 when it
 * is "accept"); with
 * HONGYAN_TEST_LANDLOCK_PROBE=PATH:PATH..., one that opens each path and
 * logs "test probe: open PATH: ok" or the error. NULL otherwise; the caller
 * frees it with event_free.
 */
struct event *daemon_sandbox_test_trigger(struct event_base *base);

#endif
