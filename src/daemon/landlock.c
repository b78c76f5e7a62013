/*
 * The worker's file sandbox: a Landlock ruleset (raw syscalls, as glibc has
 * no wrappers) that leaves it the spool, data_directory and the mailboxes
 * to write, and to read only the system's directories, the configuration's
 * and those of every absolute path the configuration names (tables,
 * certificates, the users file). An open anywhere else fails with EACCES,
 * whatever the file's mode says, so a compromised worker cannot read what
 * mail_owner happens to be able to read elsewhere on the host. It is
 * entered before any thread starts: a ruleset binds the calling thread and
 * the threads it creates later (ABI 7 has no flag to bind existing ones).
 * A kernel without Landlock gets a log line and the seccomp sandbox alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "daemon/daemon.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"

/* Rights newer than Debian 12's header: TRUNCATE (ABI 3), IOCTL_DEV (ABI 5). */
#define LANDLOCK_FS_TRUNCATE (1ULL << 14)
#define LANDLOCK_FS_IOCTL_DEV (1ULL << 15)
/* ABI 6: no signals to, no abstract unix sockets of, processes outside the domain. */
#define LANDLOCK_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNALS (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes the size it is given. */
struct landlock_ruleset_v6 {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define LANDLOCK_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* What applies to a file (not a directory) in a rule. */
#define LANDLOCK_FILE_RIGHTS                                                                       \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_FS_TRUNCATE | LANDLOCK_FS_IOCTL_DEV)

/* Read-only trees every worker needs: libraries, resolv.conf, CA certificates, /proc/self. */
static const char *const landlock_system_dirs[] = {"/etc", "/usr", "/lib", "/lib64", "/proc"};

struct landlock_set {
    int fd;
    uint64_t handled;
    int added;
};

static void landlock_allow(struct landlock_set *ls, const char *path, uint64_t access)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return; /* not there: nothing to allow (a directory made later stays closed) */
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            access &= LANDLOCK_FILE_RIGHTS;
        struct landlock_path_beneath_attr rule = {.allowed_access = access & ls->handled,
                                                  .parent_fd = fd};
        if (rule.allowed_access &&
            syscall(SYS_landlock_add_rule, ls->fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) == 0)
            ls->added++;
        else if (rule.allowed_access)
            log_warning("landlock: cannot allow %s: %s", path, strerror(errno));
    }
    close(fd);
}

/*
 * Every absolute path in a value ("hash:/etc/hongyan/access",
 * "/var/lib/hongyan/users", "check_client_access texthash:/x/y, reject"):
 * its directory is readable, so a table rebuilt by rename (postmap, map
 * build) is read again on SIGHUP. A file directly under / is allowed alone.
 */
static void landlock_allow_value(struct landlock_set *ls, const char *value)
{
    char *copy = xstrdup(value);
    for (char *save = NULL, *tok = strtok_r(copy, " \t,", &save); tok;
         tok = strtok_r(NULL, " \t,", &save)) {
        char *slash = strchr(tok, '/');
        if (slash == NULL || (slash != tok && slash[-1] != ':'))
            continue;
        char *last = strrchr(slash, '/');
        struct stat st;
        if (stat(slash, &st) == 0 && S_ISDIR(st.st_mode)) {
            landlock_allow(ls, slash, LANDLOCK_READ);
        } else if (last == slash) {
            landlock_allow(ls, slash, LANDLOCK_READ);
        } else {
            *last = '\0';
            landlock_allow(ls, slash, LANDLOCK_READ);
        }
    }
    free(copy);
}

int daemon_landlock_enter(const char *config_path, const struct config *cfg, struct buf *err)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        log_warning("landlock: not available in this kernel (%s); files are confined by "
                    "ownership and the seccomp allowlist only",
                    strerror(errno));
        return 1;
    }
    struct landlock_ruleset_v6 attr = {0};
    attr.handled_access_fs = (LANDLOCK_ACCESS_FS_REFER << 1) - 1; /* ABI 2: bits 0..13 */
    if (abi < 2)
        attr.handled_access_fs &= ~LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        attr.handled_access_fs |= LANDLOCK_FS_TRUNCATE;
    if (abi >= 5)
        attr.handled_access_fs |= LANDLOCK_FS_IOCTL_DEV;
    if (abi >= 6)
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX | LANDLOCK_SCOPE_SIGNALS;
    struct landlock_set ls = {.handled = attr.handled_access_fs};
    ls.fd = (int)syscall(SYS_landlock_create_ruleset, &attr,
                         abi >= 6 ? sizeof attr : sizeof attr.handled_access_fs, 0);
    if (ls.fd < 0) {
        buf_printf(err, "landlock_create_ruleset: %s", strerror(errno));
        return -1;
    }
    /* Where mail is written: the spool, data_directory (TLS, DKIM, reports), the mailboxes. */
    uint64_t write_all =
        attr.handled_access_fs & ~(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                                   LANDLOCK_ACCESS_FS_MAKE_BLOCK);
    static const char *const writable[] = {"queue_directory", "data_directory",
                                           "virtual_mailbox_base"};
    for (size_t i = 0; i < sizeof writable / sizeof *writable; i++)
        landlock_allow(&ls, config_get(cfg, writable[i]), write_all);
    for (size_t i = 0; i < sizeof landlock_system_dirs / sizeof *landlock_system_dirs; i++)
        landlock_allow(&ls, landlock_system_dirs[i], LANDLOCK_READ);
    /* /dev/null and /dev/urandom are opened for writing and reading; no device ioctls. */
    landlock_allow(&ls, "/dev", LANDLOCK_READ | LANDLOCK_ACCESS_FS_WRITE_FILE);
    if (config_path) {
        char *dir = xstrdup(config_path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        landlock_allow(&ls, slash ? dir : ".", LANDLOCK_READ);
        free(dir);
    }
    for (size_t i = 0; i < config_key_count; i++)
        landlock_allow_value(&ls, config_get(cfg, config_keys[i].name));
    size_t nclasses = 0;
    char **classes = config_get_list(cfg, "smtpd_restriction_classes", &nclasses);
    for (size_t i = 0; i < nclasses; i++) {
        const char *v = config_get_class(cfg, classes[i]);
        if (v)
            landlock_allow_value(&ls, v);
    }
    strlist_free(classes);
    int rc = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_landlock_restrict_self, ls.fd, 0) < 0) {
        buf_printf(err, "landlock_restrict_self: %s", strerror(errno));
        rc = -1;
    } else {
        log_info("landlock: ABI %ld, %d path rule(s)", abi, ls.added);
    }
    close(ls.fd);
    return rc;
}
