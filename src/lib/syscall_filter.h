/*
 * What every sandboxed process's seccomp filter shares (the worker's in
 * daemon/sandbox.c, the keeper's in keeper/keeper_sandbox.c): no_new_privs,
 * the filter on every thread at once (TSYNC), a call outside the list
 * killing the whole process, threads only (clone with CLONE_THREAD; clone3
 * says ENOSYS so that glibc falls back to clone, whose flags a filter can
 * read). Each process adds its own allowlist through a callback.
 */
#ifndef HONGYAN_LIB_SYSCALL_FILTER_H
#define HONGYAN_LIB_SYSCALL_FILTER_H

#include <seccomp.h>

#include "lib/buf.h"

/*
 * AddressSanitizer builds (the ASan test run, the fuzzers) install no
 * filter: callers leave their rules out of such a build and pass NULL.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SYSCALL_FILTER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYSCALL_FILTER_SANITIZED 1
#endif
#endif

/* Adds a process's own rules; 0, or -1 with err set. */
typedef int (*syscall_filter_rules_fn)(scmp_filter_ctx ctx, struct buf *err);

/*
 * Sets PR_SET_NO_NEW_PRIVS, then loads the filter: 0, or -1 with err set.
 * A sanitizer build sets no_new_privs only and logs that the filter is not
 * installed (ASan's leak check needs ptrace and clone at exit). A test build
 * (HONGYAN_TEST_HOOKS) with HONGYAN_TEST_SECCOMP_LOG set logs calls outside
 * the list (dmesg) instead of killing: how the lists were found.
 */
int syscall_filter_enter(const char *who, syscall_filter_rules_fn rules, struct buf *err);

#endif
