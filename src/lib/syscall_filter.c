/* The seccomp set-up the sandboxed processes share: lib/syscall_filter.h. */
#include "lib/syscall_filter.h"

#include <errno.h>
#include <linux/sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "lib/log.h"
#include "version.h"

int syscall_filter_enter(const char *who, syscall_filter_rules_fn rules, struct buf *err)
{
    /* Nothing exec'd from here on could gain privileges, filter or not. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        buf_printf(err, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
#ifdef SYSCALL_FILTER_SANITIZED
    /*
     * AddressSanitizer's leak check stops the world with ptrace from a
     * clone()d task and its reports may exec a symbolizer: a filter would
     * kill the process at exit. Sanitized builds run without it.
     */
    (void)rules;
    log_info("%s: seccomp filter not installed: sanitizer build", who);
    return 0;
#else
    (void)who;
    uint32_t deny = SCMP_ACT_KILL_PROCESS;
#if HONGYAN_TEST_HOOKS
    const char *log_mode = getenv("HONGYAN_TEST_SECCOMP_LOG");
    if (log_mode && *log_mode)
        deny = SCMP_ACT_LOG;
#endif
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (ctx == NULL) {
        buf_puts(err, "seccomp_init failed");
        return -1;
    }
    int failed = 0;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc < 0) {
        buf_printf(err, "seccomp: thread sync: %s", strerror(-rc));
        failed = 1;
    } else if (rules(ctx, err) < 0) {
        failed = 1;
    } else if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) <
                   0 ||
               (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0) {
        buf_printf(err, "seccomp: %s", strerror(-rc));
        failed = 1;
    } else if ((rc = seccomp_load(ctx)) < 0) {
        buf_printf(err, "seccomp_load: %s", strerror(-rc));
        failed = 1;
    }
    seccomp_release(ctx);
    return failed ? -1 : 0;
#endif
}
