/*
 * The supervisor's children as one table of kinds (daemon.h, struct
 * daemon_child): how each is exec'd (credentials, death signal, the
 * descriptors it inherits), how its death is logged and how soon it is
 * restarted. Its kinds: smtpd, delivery (supervisor.c) and the keeper
 * (keeper_spawn.c); each restarted alone (docs/architecture.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/log.h"

/* A child dead within this many seconds of its start counts as a quick death. */
#define DAEMON_CHILD_QUICK_SECONDS 5
/* Quick deaths in a row after which every restart waits the longest pause. */
#define DAEMON_CHILD_QUICK_RUN 5
/* The longest pause before a restart, in seconds. */
#define DAEMON_CHILD_MAX_PAUSE 10

static int daemon_child_drop(const struct daemon_creds *cr)
{
    if (!cr->drop)
        return 0;
    if (setgroups(cr->ngroups, cr->ngroups ? &cr->group : NULL) < 0 || setgid(cr->gid) < 0 ||
        setuid(cr->uid) < 0) {
        log_error("cannot become uid %ld: %s", (long)cr->uid, strerror(errno));
        return -1;
    }
    /* Make sure root cannot be regained, whatever the kernel's setuid semantics. */
    if (setuid(0) == 0) {
        log_error("privilege drop to uid %ld did not stick", (long)cr->uid);
        return -1;
    }
    return 0;
}

void daemon_child_exec(const struct daemon_exec *ex)
{
    static const int defaults[] = {SIGHUP, SIGTERM, SIGINT, SIGALRM, SIGCHLD};
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        sigaction(defaults[i], &sa, NULL);
    if (ex->block_signals) {
        /* Blocked across exec until the child's loop has its handlers (worker.c). */
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGHUP);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_SETMASK, &block, NULL);
    }
    if (daemon_child_drop(&ex->creds) < 0)
        _exit(EX_NOPERM);
    /*
     * A child that holds the listening sockets or the spool must not outlive
     * its supervisor: unsupervised, it would keep them, so a new server could
     * not start. The kernel clears the death signal when credentials change,
     * so it is set after the drop; the getppid() check closes the window in
     * which the supervisor may already have died. It survives the exec of a
     * binary that is not setuid; the child checks both again. SIGTERM lets it
     * drain as on a normal stop (acknowledged mail is on disk).
     */
    if (ex->supervisor > 0 && (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != ex->supervisor))
        _exit(EX_OSERR);
    for (size_t i = 0; i < ex->ninherit; i++)
        if (fcntl(ex->inherit[i], F_SETFD, 0) < 0)
            _exit(EX_OSERR);
    /* Our own binary, whatever PATH says and even if it was replaced on disk since. */
    execv("/proc/self/exe", ex->argv);
    log_error("cannot exec %s: %s", ex->argv[1], strerror(errno));
    _exit(EX_OSERR);
}

void daemon_child_start(struct daemon_child *c)
{
    c->started = time(NULL);
    pid_t pid = c->kind->start(c);
    if (pid < 0) {
        /* Counted as a quick death, so that a fork that keeps failing is retried slowly. */
        c->pid = 0;
        c->died = c->started;
        c->quick_deaths++;
        return;
    }
    c->pid = pid;
    log_info("%s started, pid %ld%s%s", c->kind->name, (long)pid, c->user ? ", user " : "",
             c->user ? c->user : "");
}

static void daemon_child_log_death(const struct daemon_child *c, pid_t pid, int status)
{
    const char *name = c->kind->name;
    const char *then = c->kind->restart ? "; restarting" : "";
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
        log_error("%s pid %ld killed by signal %d (SIGSYS): seccomp violation, a system "
                  "call outside its allowlist (docs/security.md)%s",
                  name, (long)pid, WTERMSIG(status), then);
    else if (WIFSIGNALED(status))
        log_warning("%s pid %ld killed by signal %d%s", name, (long)pid, WTERMSIG(status), then);
    else
        log_warning("%s pid %ld exited with status %d%s", name, (long)pid, WEXITSTATUS(status),
                    then);
}

int daemon_child_reaped(struct daemon_child *const *table, size_t n, pid_t pid, int status)
{
    for (size_t i = 0; i < n; i++) {
        struct daemon_child *c = table[i];
        if (c->pid <= 0 || c->pid != pid)
            continue;
        daemon_child_log_death(c, pid, status);
        c->pid = 0;
        c->died = time(NULL);
        /* One that cannot start (bad tables, no disk) must not spin. */
        c->quick_deaths =
            c->died - c->started < DAEMON_CHILD_QUICK_SECONDS ? c->quick_deaths + 1 : 0;
        return 1;
    }
    return 0;
}

void daemon_child_restart_due(struct daemon_child *const *table, size_t n)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        struct daemon_child *c = table[i];
        if (c->pid > 0 || !c->kind->restart || c->started == 0)
            continue;
        int pause =
            c->quick_deaths > DAEMON_CHILD_QUICK_RUN ? DAEMON_CHILD_MAX_PAUSE : c->quick_deaths;
        if (now - c->died >= pause)
            daemon_child_start(c);
    }
}

void daemon_child_signal(const struct daemon_child *c, int sig)
{
    if (c->pid > 0)
        kill(c->pid, sig);
}

void daemon_child_reload(struct daemon_child *c, const char *config_path)
{
    if (c->pid <= 0)
        return;
    /* Sent before the signal, so the files wait on the socket when the child reloads. */
    if (c->kind->relay_maps)
        daemon_mapfd_renew(c, config_path);
    kill(c->pid, SIGHUP);
}

int daemon_child_stop(struct daemon_child *c, int seconds)
{
    if (c->pid <= 0)
        return 0;
    kill(c->pid, SIGTERM);
    int status, rc = 0;
    for (int i = 0;; i++) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid || (r < 0 && errno != EINTR))
            break;
        if (i >= seconds * 20) {
            log_warning("%s did not stop in %ds; killing it", c->kind->name, seconds);
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            rc = -1;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    c->pid = 0;
    daemon_mapfd_close(c);
    return rc;
}
