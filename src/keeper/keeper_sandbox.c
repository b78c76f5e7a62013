/*
 * The keeper's sandbox: PR_SET_NO_NEW_PRIVS and a seccomp allowlist for
 * every thread. It reads files (keys, main.cf, the users file) and writes
 * the self-signed pair, talks over the socketpairs it was given, and runs
 * its threads; it has no socket() at all, no connect, accept, bind or
 * listen, no exec, no ptrace. Anything else kills it, and the supervisor
 * starts a new one. docs/security.md lists both profiles.
 */
#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <termios.h>

#include "keeper/keeper.h"
#include "lib/log.h"
#include "lib/syscall_filter.h"
#include "version.h"

#ifndef SYSCALL_FILTER_SANITIZED
// clang-format off
static const char *const keeper_allowed[] = {
    /* key files, main.cf, the users file; the self-signed pair written by rename */
    "read", "write", "readv", "writev", "pread64", "lseek", "close", "openat", "open", "stat",
    "fstat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", "getdents64",
    "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "fsync",
    "fdatasync", "fchmod", "fcntl", "umask", "readlink", "getcwd",
    /* the socketpairs it was handed, nothing else */
    "poll", "ppoll", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "getsockopt",
    /* memory and its own threads */
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "futex", "set_robust_list",
    "rseq", "set_tid_address", "sched_yield", "sched_getaffinity",
    /* signals, time, identity */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill", "getpid",
    "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getrandom",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "uname", "getrlimit", "prlimit64", "restart_syscall", "exit", "exit_group",
};
// clang-format on
#define KEEPER_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int keeper_sandbox_rules(scmp_filter_ctx ctx, struct buf *err)
{
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < KEEPER_COUNT(keeper_allowed); i++) {
        int nr = seccomp_syscall_resolve_name(keeper_allowed[i]);
        if (nr != __NR_SCMP_ERROR)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    /* isatty() from stdio; thread names (threads themselves: lib/syscall_filter.c). */
    if (rc >= 0)
        rc =
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS));
    if (rc >= 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    if (rc < 0) {
        buf_printf(err, "seccomp: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

#else
#define keeper_sandbox_rules NULL
#endif /* SYSCALL_FILTER_SANITIZED */

int keeper_sandbox_enter(struct buf *err)
{
    return syscall_filter_enter("keeper", keeper_sandbox_rules, err);
}
