/*
 * The sandbox of smtpd and delivery: PR_SET_NO_NEW_PRIVS and a seccomp
 * allowlist per role, installed once the process has opened what it needs
 * and before it serves, for every thread at once (TSYNC). What either does
 * after that is parse network input, read and write the spool (and for
 * delivery the mailboxes), and talk to peers: no exec, no ptrace, no
 * listen, no mount, no module or key-ring calls, no credential changes, no
 * hard links. smtpd alone may accept connections; delivery talks to the
 * network as a client only. Anything outside the list kills the whole
 * process (the supervisor logs it and restarts it); a process that goes on
 * half-working after a violation would hide it. docs/security.md lists the
 * profiles and how they were found.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/log.h"
#include "lib/syscall_filter.h"
#include "version.h"

#ifndef SYSCALL_FILTER_SANITIZED
/*
 * Calls allowed whatever their arguments. Names, not numbers: a name this
 * architecture does not have (open on arm64) is skipped.
 */
// clang-format off
static const char *const sandbox_allowed[] = {
    /* descriptors and files: the spool, mailboxes, tables re-read on SIGHUP */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "pwritev2", "lseek",
    "close", "openat", "open", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs",
    "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64",
    "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
    "fsync", "fdatasync", "syncfs", "copy_file_range", "ftruncate", "fallocate",
    "fchmod", "fcntl", "flock", "dup", "dup2", "dup3", "pipe", "pipe2", "eventfd2", "getcwd",
    "umask", "utimensat",
    /* the event loop and its timers */
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
    "select", "pselect6", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* sockets as a client (and accepted ones: smtpd_allowed); bind for source addresses and DNS */
    "socketpair", "connect", "bind", "getsockname", "getpeername",
    "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg", "shutdown",
    /* memory and threads */
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "futex", "set_robust_list",
    "rseq", "set_tid_address", "sched_yield", "sched_getaffinity", "membarrier",
    /* signals, time, identity */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigtimedwait",
    "tgkill", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getgroups", "getrandom", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "nanosleep", "clock_nanosleep", "uname", "getrlimit", "prlimit64", "getrusage", "sysinfo",
    "restart_syscall", "exit", "exit_group",
};
// clang-format on

/* smtpd's own: the connections its listening sockets (opened by the supervisor) bring. */
static const char *const sandbox_smtpd_allowed[] = {"accept", "accept4"};
/*
 * delivery's own: a private copy of a compiled relay password table the
 * supervisor opened (maps/map_fd.h); smtpd never gets those tables.
 */
static const char *const sandbox_delivery_allowed[] = {"memfd_create"};

/* The socket families a worker opens: TCP and UDP peers, Unix-socket milters and policy. */
static const int sandbox_families[] = {AF_UNIX, AF_INET, AF_INET6};
/* ioctl: how many bytes wait (libevent), non-blocking mode, isatty (stdio). */
static const unsigned long sandbox_ioctls[] = {FIONREAD, FIONBIO, TCGETS};
/* prctl: thread names only. */
static const int sandbox_prctls[] = {PR_SET_NAME, PR_GET_NAME};

#define SANDBOX_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int sandbox_allow_names(scmp_filter_ctx ctx, const char *const *names, size_t n,
                               struct buf *err)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0) {
            buf_printf(err, "seccomp: %s: %s", names[i], strerror(-rc));
            return -1;
        }
    }
    return 0;
}

static int sandbox_rules(scmp_filter_ctx ctx, struct buf *err)
{
    int rc;
    if (sandbox_allow_names(ctx, sandbox_allowed, SANDBOX_COUNT(sandbox_allowed), err) < 0)
        return -1;
    for (size_t i = 0; i < SANDBOX_COUNT(sandbox_families); i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                   SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sandbox_families[i]))) < 0)
            goto fail;
    /* Route and address queries of getaddrinfo(AI_ADDRCONFIG) and getifaddrs (reloads). */
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                               SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
                               SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE))) < 0)
        goto fail;
    for (size_t i = 0; i < SANDBOX_COUNT(sandbox_ioctls); i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                   SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)sandbox_ioctls[i]))) < 0)
            goto fail;
    for (size_t i = 0; i < SANDBOX_COUNT(sandbox_prctls); i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                   SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sandbox_prctls[i]))) < 0)
            goto fail;
    /* New threads (work queues, libunbound's resolver thread): lib/syscall_filter.c. */
    return 0;
fail:
    buf_printf(err, "seccomp: %s", strerror(-rc));
    return -1;
}

static int sandbox_smtpd_rules(scmp_filter_ctx ctx, struct buf *err)
{
    if (sandbox_rules(ctx, err) < 0)
        return -1;
    return sandbox_allow_names(ctx, sandbox_smtpd_allowed, SANDBOX_COUNT(sandbox_smtpd_allowed),
                               err);
}

static int sandbox_delivery_rules(scmp_filter_ctx ctx, struct buf *err)
{
    if (sandbox_rules(ctx, err) < 0)
        return -1;
    return sandbox_allow_names(ctx, sandbox_delivery_allowed,
                               SANDBOX_COUNT(sandbox_delivery_allowed), err);
}

#else
#define sandbox_smtpd_rules NULL
#define sandbox_delivery_rules NULL
#endif /* SYSCALL_FILTER_SANITIZED */

int daemon_sandbox_enter(enum daemon_role role, struct buf *err)
{
    if (role == DAEMON_ROLE_SMTPD)
        return syscall_filter_enter("smtpd", sandbox_smtpd_rules, err);
    return syscall_filter_enter("delivery", sandbox_delivery_rules, err);
}

#if HONGYAN_TEST_HOOKS
/*
 * The test build's forbidden call: an exec, which the filter must answer by
 * killing us; with HONGYAN_TEST_SECCOMP_TRIGGER=accept, an accept4 on no
 * socket, which kills delivery (whose list has no accept) and which smtpd's
 * filter lets through to fail with EBADF.
 */
static void sandbox_trigger(evutil_socket_t sig, short what, void *arg)
{
    if (strcmp(arg, "accept") == 0) {
        log_warning("test trigger: calling accept4");
        long rc = syscall(SYS_accept4, -1, NULL, NULL, 0);
        log_warning("test trigger: accept4 was let through: %s", rc < 0 ? strerror(errno) : "ok");
        return;
    }
    log_warning("test trigger: calling execve, which the seccomp filter forbids");
    char *argv[] = {"hongyan", "version", NULL};
    char *envp[] = {NULL};
    syscall(SYS_execve, "/proc/self/exe", argv, envp);
    log_error("test trigger: execve was not refused: %s", strerror(errno));
}
#endif

#if HONGYAN_TEST_HOOKS
/* The test build's Landlock probe: opens each path named and logs what the kernel said. */
static void sandbox_probe(evutil_socket_t sig, short what, void *arg)
{
    char *paths = strdup(arg);
    for (char *save = NULL, *p = paths ? strtok_r(paths, ":", &save) : NULL; p;
         p = strtok_r(NULL, ":", &save)) {
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        log_warning("test probe: open %s: %s", p, fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    free(paths);
}
#endif

struct event *daemon_sandbox_test_trigger(struct event_base *base)
{
#if HONGYAN_TEST_HOOKS
    const char *on = getenv("HONGYAN_TEST_SECCOMP_TRIGGER");
    if (on && *on) {
        struct event *ev = evsignal_new(base, SIGUSR2, sandbox_trigger, (void *)on);
        event_add(ev, NULL);
        return ev;
    }
    const char *probe = getenv("HONGYAN_TEST_LANDLOCK_PROBE");
    if (probe && *probe) {
        struct event *ev = evsignal_new(base, SIGUSR2, sandbox_probe, (void *)probe);
        event_add(ev, NULL);
        return ev;
    }
#endif
    (void)base;
    return NULL;
}
