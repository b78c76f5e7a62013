/*
 * `hongyan smtpd` and `hongyan delivery`: the images the supervisor execs,
 * as mail_owner, for each start of either (daemon.h, enum daemon_role). It
 * takes over the descriptors named on its command line (listening sockets,
 * the log file, the spool lock, the configuration snapshot, the keeper's
 * and the split socket), reads the configuration again, and runs the
 * role's loop. Not listed in --help: only the supervisor starts them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "ipc/keeper_client.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "metrics/metrics.h"
#include "version.h"

/* An inherited descriptor: valid, and closed again on any exec of ours (report send). */
static int worker_exec_take_fd(const char *s, long *fd)
{
    if (str_to_long(s, 3, INT_MAX, fd) < 0 || fcntl((int)*fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/* "FD,KIND,ADDR": one listening socket from the supervisor. */
static int worker_exec_listener(const char *spec, struct listen_sock *out)
{
    const char *c1 = strchr(spec, ',');
    const char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (c2 == NULL)
        return -1;
    char num[32];
    long fd, kind;
    if ((size_t)(c1 - spec) >= sizeof num)
        return -1;
    memcpy(num, spec, (size_t)(c1 - spec));
    num[c1 - spec] = '\0';
    if (worker_exec_take_fd(num, &fd) < 0)
        return -1;
    if ((size_t)(c2 - c1 - 1) >= sizeof num)
        return -1;
    memcpy(num, c1 + 1, (size_t)(c2 - c1 - 1));
    num[c2 - c1 - 1] = '\0';
    if (str_to_long(num, LISTEN_SMTPD, LISTEN_METRICS, &kind) < 0)
        return -1;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
        return -1;
    out->fd = (int)fd;
    out->kind = (enum listener_kind)kind;
    out->addr = xstrdup(c2 + 1);
    return 0;
}

/*
 * The keeper shut our connection: we sent it something malformed, so this
 * worker is broken or taken over. Stop as on SIGTERM (acknowledged mail is
 * on disk); the supervisor starts a fresh worker with a fresh socketpair.
 */
static void worker_exec_keeper_closed(void)
{
    raise(SIGTERM);
}

int daemon_worker_main(int argc, char **argv)
{
    enum daemon_role role =
        strcmp(argv[0], "smtpd") == 0 ? DAEMON_ROLE_SMTPD : DAEMON_ROLE_DELIVERY;
    const char *name = daemon_role_name(role);
    log_set_service(name);
    long parent = -1, lock_fd = -1, log_fd = -1, snapshot_fd = -1, keeper_fd = -1, metrics_fd = -1,
         split_fd = -1, maps_fd = -1;
    const char *config_path = NULL;
    struct listen_sock *socks = xcalloc((size_t)argc, sizeof *socks);
    int nsocks = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (val == NULL) /* every option takes a value */
            bad = 1;
        else if (strcmp(opt, "--parent") == 0)
            bad = str_to_long(val, 1, INT_MAX, &parent) < 0;
        else if (strcmp(opt, "--lock-fd") == 0)
            bad = worker_exec_take_fd(val, &lock_fd) < 0;
        else if (strcmp(opt, "--log-fd") == 0)
            bad = worker_exec_take_fd(val, &log_fd) < 0;
        else if (strcmp(opt, "--config-fd") == 0)
            bad = worker_exec_take_fd(val, &snapshot_fd) < 0;
        else if (strcmp(opt, "--config") == 0)
            config_path = val;
        else if (strcmp(opt, "--keeper-fd") == 0)
            bad = worker_exec_take_fd(val, &keeper_fd) < 0;
        else if (strcmp(opt, "--metrics-fd") == 0)
            bad = worker_exec_take_fd(val, &metrics_fd) < 0;
        else if (strcmp(opt, "--split-fd") == 0)
            bad = worker_exec_take_fd(val, &split_fd) < 0;
        else if (strcmp(opt, "--maps-fd") == 0)
            bad = worker_exec_take_fd(val, &maps_fd) < 0;
        else if (strcmp(opt, "--listen") == 0 && role == DAEMON_ROLE_SMTPD) {
            bad = worker_exec_listener(val, &socks[nsocks]) < 0;
            nsocks += !bad; /* only whole entries: daemon_listeners_free closes them */
        } else
            bad = 1;
        if (bad) {
            fprintf(stderr, "hongyan %s: started by the supervisor only (bad argument %s%s%s)\n",
                    name, opt, val ? " " : "", val ? val : "");
            daemon_listeners_free(socks, nsocks);
            return EX_USAGE;
        }
    }
    /*
     * The death signal the supervisor set before exec is kept for a binary
     * that is not setuid; if it is gone, or the supervisor already is, do not
     * run unsupervised (supervisor.c).
     */
    int deathsig = 0;
    if (parent < 0 || lock_fd < 0 || (role == DAEMON_ROLE_SMTPD && nsocks == 0) ||
        prctl(PR_GET_PDEATHSIG, &deathsig) < 0 || deathsig != SIGTERM || getppid() != parent) {
        fprintf(stderr, "hongyan %s: started by the supervisor only\n", name);
        daemon_listeners_free(socks, nsocks);
        return EX_USAGE;
    }
    /* Exec'd through /proc/self/exe, we would show as "exe" in ps and top. */
    prctl(PR_SET_NAME, "hongyan");
    if (log_fd >= 0)
        log_adopt_fd((int)log_fd);
    struct config *cfg = config_load_or_snapshot(config_path, (int)snapshot_fd);
    if (snapshot_fd >= 0)
        close((int)snapshot_fd); /* read once: a restart gets a fresh one */
    if (cfg == NULL) {
        daemon_listeners_free(socks, nsocks);
        return EX_CONFIG;
    }
    log_set_hostname(config_get(cfg, "myhostname"));
    log_set_syslog_name(config_get(cfg, "syslog_name"));
    log_set_delay_resolution((int)config_get_int(cfg, "delay_logging_resolution_limit"));
    /* The supervisor's counters: they were there before this worker and outlive it. */
    if (metrics_fd >= 0) {
        if (metrics_shared_attach((int)metrics_fd) < 0)
            log_warning("metrics: cannot map the shared counters (%s): this %s counts alone",
                        strerror(errno), name);
        close((int)metrics_fd); /* the mapping stays */
    }
    /* The relay password maps root opened for us (daemon/mapfd.c): read from there, not by name. */
    if (maps_fd >= 0)
        daemon_mapfd_adopt((int)maps_fd);
    /* The keys and the users file are the keeper's: TLS, DKIM and AUTH ask it (ipc/). */
    if (keeper_fd >= 0) {
#if HONGYAN_TEST_HOOKS
        /*
         * The test build can play a broken smtpd once: garbage to the keeper
         * when the file HONGYAN_TEST_KEEPER_GARBAGE names exists (it is removed).
         */
        const char *flag = getenv("HONGYAN_TEST_KEEPER_GARBAGE");
        if (role == DAEMON_ROLE_SMTPD && flag && *flag && unlink(flag) == 0 &&
            send((int)keeper_fd, "\x01garbage", 8, MSG_NOSIGNAL) < 0)
            log_warning("test hook: send: %s", strerror(errno));
#endif
        struct keeper_client *kc = keeper_client_new((int)keeper_fd);
        keeper_client_on_closed(kc, worker_exec_keeper_closed);
        keeper_client_set_default(kc);
    }
    /* The lock fd stays open, unused: it keeps the spool locked while we drain an orphaned run. */
    int rc = daemon_worker_run(role, config_path, cfg, socks, nsocks, (int)split_fd);
    daemon_listeners_free(socks, nsocks);
    return rc;
}
