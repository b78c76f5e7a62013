/*
 * The file sandbox of smtpd and delivery: a Landlock ruleset per role (raw
 * syscalls, as glibc has no wrappers). delivery writes the spool,
 * data_directory and the mailboxes; smtpd the spool and
 * $data_directory/dmarc only, and reads $data_directory/tls, never the
 * mailboxes nor the relay password maps. Both read the system's
 * directories, the configuration's and those of every absolute path the
 * configuration names (tables, certificates), less smtpd's exceptions. An
 * open anywhere else fails with EACCES, whatever the file's mode says, so a
 * compromised process cannot read what mail_owner happens to be able to
 * read elsewhere on the host. It is
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
 * not_dir (may be NULL): a directory never allowed this way (smtpd's
 * data_directory, which holds the mailboxes by default and the users file).
 */
static int landlock_same_dir(const char *a, const char *b)
{
    if (b == NULL)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

static void landlock_allow_value(struct landlock_set *ls, const char *value, const char *not_dir)
{
    char *copy = xstrdup(value);
    for (char *save = NULL, *tok = strtok_r(copy, " \t,", &save); tok;
         tok = strtok_r(NULL, " \t,", &save)) {
        char *slash = strchr(tok, '/');
        if (slash == NULL || (slash != tok && slash[-1] != ':'))
            continue;
        char *last = strrchr(slash, '/');
        struct stat st;
        if ((stat(slash, &st) < 0 || !S_ISDIR(st.st_mode)) && last != slash)
            *last = '\0'; /* a file: its directory */
        if (!landlock_same_dir(slash, not_dir))
            landlock_allow(ls, slash, LANDLOCK_READ);
    }
    free(copy);
}

/*
 * Keys whose paths smtpd is never given, even to read: the mailboxes, the
 * relay passwords (delivery's), and the keeper's files, which their modes
 * keep from mail_owner already. data_directory itself is not readable for
 * smtpd (mailboxes and the users file sit there by default): it gets the
 * two subdirectories it uses, below.
 */
static const char *const landlock_not_smtpd[] = {
    "virtual_mailbox_base", "data_directory",     "smtp_sasl_password_maps",
    "smtpd_sasl_users",     "dkim_key_directory", "smtpd_tls_key_file",
};

static int landlock_key_allowed(enum daemon_role role, const char *key)
{
    if (role != DAEMON_ROLE_SMTPD)
        return 1;
    for (size_t i = 0; i < sizeof landlock_not_smtpd / sizeof *landlock_not_smtpd; i++)
        if (strcmp(key, landlock_not_smtpd[i]) == 0)
            return 0;
    return 1;
}

int daemon_landlock_enter(enum daemon_role role, const char *config_path, const struct config *cfg,
                          struct buf *err)
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
    uint64_t write_all =
        attr.handled_access_fs & ~(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                                   LANDLOCK_ACCESS_FS_MAKE_BLOCK);
    const char *data = config_get(cfg, "data_directory");
    landlock_allow(&ls, config_get(cfg, "queue_directory"), write_all);
    if (role == DAEMON_ROLE_SMTPD) {
        /*
         * smtpd writes the DMARC report data of what it received and reads
         * the TLS certificate: those two, not data_directory (delivery's
         * MTA-STS cache, TLS reports, by default the mailboxes).
         */
        char *dmarc = xasprintf("%s/dmarc", data), *tls = xasprintf("%s/tls", data);
        /*
         * Made here when reporting is on: a rule needs the directory to
         * exist. Turned on by a SIGHUP later, it takes an smtpd restart,
         * as any directory the ruleset did not name.
         */
        if (config_get_bool(cfg, "smtpd_dmarc_reporting") && mkdir(dmarc, 0700) < 0 &&
            errno != EEXIST)
            log_warning("landlock: cannot make %s: %s", dmarc, strerror(errno));
        landlock_allow(&ls, dmarc, write_all);
        landlock_allow(&ls, tls, LANDLOCK_READ);
        free(dmarc);
        free(tls);
    } else {
        /* Delivery: data_directory (MTA-STS, TLS reports) and the mailboxes. */
        landlock_allow(&ls, data, write_all);
        landlock_allow(&ls, config_get(cfg, "virtual_mailbox_base"), write_all);
    }
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
    const char *not_dir = role == DAEMON_ROLE_SMTPD ? data : NULL;
    for (size_t i = 0; i < config_key_count; i++)
        if (landlock_key_allowed(role, config_keys[i].name))
            landlock_allow_value(&ls, config_get(cfg, config_keys[i].name), not_dir);
    size_t nclasses = 0;
    char **classes = config_get_list(cfg, "smtpd_restriction_classes", &nclasses);
    for (size_t i = 0; i < nclasses; i++) {
        const char *v = config_get_class(cfg, classes[i]);
        if (v)
            landlock_allow_value(&ls, v, not_dir);
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
