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
#include "version.h"

#if defined(__SANITIZE_ADDRESS__)
#define KEEPER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEPER_SANITIZED 1
#endif
#endif

#ifndef KEEPER_SANITIZED
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
#endif

int keeper_sandbox_enter(struct buf *err)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        buf_printf(err, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
#ifdef KEEPER_SANITIZED
    /* As the worker's (daemon/sandbox.c): the leak check needs ptrace and clone. */
    return 0;
#else
    uint32_t deny = SCMP_ACT_KILL_PROCESS;
#if HONGYAN_TEST_HOOKS
    /* As the worker's: finding the profile, every call outside it logged (dmesg), none refused. */
    const char *log_mode = getenv("HONGYAN_TEST_SECCOMP_LOG");
    if (log_mode && *log_mode)
        deny = SCMP_ACT_LOG;
#endif
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (ctx == NULL) {
        buf_puts(err, "seccomp_init failed");
        return -1;
    }
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    for (size_t i = 0; rc >= 0 && i < KEEPER_COUNT(keeper_allowed); i++) {
        int nr = seccomp_syscall_resolve_name(keeper_allowed[i]);
        if (nr != __NR_SCMP_ERROR)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    /* isatty() from stdio; thread names; threads only, never a process (as the worker's). */
    if (rc >= 0)
        rc =
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS));
    if (rc >= 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    if (rc >= 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    if (rc >= 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc >= 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        buf_printf(err, "seccomp: %s", strerror(-rc));
        return -1;
    }
    return 0;
#endif
}
