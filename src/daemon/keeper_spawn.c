/*
 * The supervisor's side of the keeper (daemon.h, struct keeper_proc):
 * checks keeper_user, makes the socketpairs, execs `hongyan keeper` as
 * keeper_user with its own group and no supplementary group, and restarts
 * it when it dies. The supervisor keeps both ends of each socketpair, so a
 * keeper killed mid-request leaves its client's socket open: the next
 * keeper answers what is still queued, and the request the dead one had
 * taken times out in the client (a temporary failure, ipc/keeper_client.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "ipc/keeper_proto.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* How long the worker's start waits for the keeper's keys. */
#define KEEPER_READY_MS 10000

int daemon_keeper_init(struct keeper_proc *kp, const struct config *cfg, const char *config_path,
                       const struct passwd *mail_owner)
{
    memset(kp, 0, sizeof *kp);
    kp->keeper_end = kp->client_end = kp->snapshot_fd = -1;
    kp->config_path = config_path;
    if (mail_owner == NULL)
        return 0; /* not root: the keeper runs as we do */
    const char *name = config_get(cfg, "keeper_user");
    /* getpwnam_r: the caller's mail_owner entry is getpwnam's static one, which must stay. */
    struct passwd entry, *pw = NULL;
    char strings[4096];
    if (getpwnam_r(name, &entry, strings, sizeof strings, &pw) != 0 || pw == NULL) {
        log_error("keeper_user: user '%s' does not exist; create it with: useradd --system "
                  "--user-group --no-create-home --shell /usr/sbin/nologin %s",
                  name, name);
        return -1;
    }
    struct group gentry, *drop = NULL;
    char gstrings[4096];
    if (getgrnam_r(config_get(cfg, "setgid_group"), &gentry, gstrings, sizeof gstrings, &drop) != 0)
        drop = NULL;
    /* The worker must share neither its uid nor any of its groups with the keys' owner. */
    if (pw->pw_uid == 0 || pw->pw_uid == mail_owner->pw_uid || pw->pw_gid == 0 ||
        pw->pw_gid == mail_owner->pw_gid || (drop && drop->gr_gid == pw->pw_gid)) {
        log_error("keeper_user: '%s' must have a uid and a group of its own (not root's, "
                  "mail_owner's or setgid_group)",
                  name);
        return -1;
    }
    kp->uid = pw->pw_uid;
    kp->gid = pw->pw_gid;
    kp->drop = 1;
    return 0;
}

static void keeper_spawn_child(struct keeper_proc *kp, int ready_w, pid_t supervisor)
{
    static const int defaults[] = {SIGHUP, SIGTERM, SIGINT, SIGALRM, SIGCHLD};
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        sigaction(defaults[i], &sa, NULL);
    if (kp->drop &&
        (setgroups(0, NULL) < 0 || setgid(kp->gid) < 0 || setuid(kp->uid) < 0 || setuid(0) == 0))
        _exit(EX_NOPERM);
    /* As the worker's (supervisor.c): not without the supervisor, which holds the sockets. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != supervisor)
        _exit(EX_OSERR);
    char *argv[16];
    char parent[32], client[48], ready[32], logfd[32], snap[32];
    int n = 0;
    argv[n++] = "hongyan";
    argv[n++] = "keeper";
    snprintf(parent, sizeof parent, "%ld", (long)supervisor);
    argv[n++] = "--parent";
    argv[n++] = parent;
    if (kp->config_path) {
        argv[n++] = "--config";
        argv[n++] = (char *)kp->config_path;
    }
    if (kp->snapshot_fd >= 0) {
        snprintf(snap, sizeof snap, "%d", kp->snapshot_fd);
        argv[n++] = "--config-fd";
        argv[n++] = snap;
        fcntl(kp->snapshot_fd, F_SETFD, 0);
    }
    /* The worker may ask everything; split processes will each get their own mask here. */
    snprintf(client, sizeof client, "%d,%u", kp->keeper_end, (unsigned)KEEPER_CAPS_ALL);
    argv[n++] = "--client";
    argv[n++] = client;
    if (ready_w >= 0) {
        snprintf(ready, sizeof ready, "%d", ready_w);
        argv[n++] = "--ready-fd";
        argv[n++] = ready;
    }
    if (log_file_fd() >= 0) {
        snprintf(logfd, sizeof logfd, "%d", log_file_fd());
        argv[n++] = "--log-fd";
        argv[n++] = logfd;
        fcntl(log_file_fd(), F_SETFD, 0);
    }
    argv[n] = NULL;
    if (fcntl(kp->keeper_end, F_SETFD, 0) < 0 || (ready_w >= 0 && fcntl(ready_w, F_SETFD, 0) < 0))
        _exit(EX_OSERR);
    execv("/proc/self/exe", argv);
    _exit(EX_OSERR);
}

/* Starts the keeper on the current socketpair; wait: block until its keys are loaded. */
static void keeper_spawn_start(struct keeper_proc *kp, int wait)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        log_error("keeper: pipe: %s", strerror(errno));
        return;
    }
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid == 0)
        keeper_spawn_child(kp, wait ? ready[1] : -1, supervisor);
    close(ready[1]);
    if (pid < 0) {
        log_error("keeper: fork: %s", strerror(errno));
        close(ready[0]);
        return;
    }
    kp->pid = pid;
    kp->started = time(NULL);
    log_info("keeper started, pid %ld", (long)pid);
    if (wait) {
        struct pollfd p = {ready[0], POLLIN, 0};
        char c;
        int rc;
        do
            rc = poll(&p, 1, KEEPER_READY_MS);
        while (rc < 0 && errno == EINTR);
        if (rc <= 0 || read(ready[0], &c, 1) != 1)
            log_error("keeper pid %ld not ready after %d ms: TLS, DKIM signing and AUTH "
                      "may fail until it is",
                      (long)pid, KEEPER_READY_MS);
    }
    close(ready[0]);
}

void daemon_keeper_stop(struct keeper_proc *kp)
{
    if (kp->pid <= 0)
        return;
    kill(kp->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        int status;
        pid_t r = waitpid(kp->pid, &status, WNOHANG);
        if (r == kp->pid || (r < 0 && errno != EINTR))
            break;
        if (i == 99) {
            kill(kp->pid, SIGKILL);
            waitpid(kp->pid, &status, 0);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kp->pid = 0;
}

void daemon_keeper_renew(struct keeper_proc *kp)
{
    daemon_keeper_stop(kp);
    if (kp->keeper_end >= 0)
        close(kp->keeper_end);
    if (kp->client_end >= 0)
        close(kp->client_end);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("keeper: socketpair: %s", strerror(errno));
        kp->keeper_end = kp->client_end = -1;
        return;
    }
    kp->keeper_end = sv[0];
    kp->client_end = sv[1];
    keeper_spawn_start(kp, 1);
}

void daemon_keeper_check(struct keeper_proc *kp)
{
    if (kp->keeper_end < 0)
        return;
    if (kp->pid > 0) {
        int status;
        if (waitpid(kp->pid, &status, WNOHANG) != kp->pid)
            return;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
            log_error("keeper pid %ld killed by signal %d (SIGSYS): seccomp violation; restarting",
                      (long)kp->pid, WTERMSIG(status));
        else if (WIFSIGNALED(status))
            log_warning("keeper pid %ld killed by signal %d; restarting", (long)kp->pid,
                        WTERMSIG(status));
        else
            log_warning("keeper pid %ld exited with status %d; restarting", (long)kp->pid,
                        WEXITSTATUS(status));
        kp->quick_deaths = time(NULL) - kp->started < 5 ? kp->quick_deaths + 1 : 0;
        kp->pid = 0;
    }
    /* One that cannot start (no main.cf that loads) must not spin: 1 s, 2 s, ... up to 10 s. */
    int delay = kp->quick_deaths < 1 ? 1 : kp->quick_deaths > 10 ? 10 : kp->quick_deaths;
    if (time(NULL) - kp->started < delay)
        return;
    keeper_spawn_start(kp, 0);
}

void daemon_keeper_signal(struct keeper_proc *kp, int sig)
{
    if (kp->pid > 0)
        kill(kp->pid, sig);
}
