/*
 * The daily report run: once a day, a few minutes after midnight UTC (when
 * the reporting day is over, RFC 8460 4.1), the worker starts
 * `hongyan report send` as a child process, so the reports' DNS lookups,
 * compression and queueing never run on the event loop. The child is
 * reaped by a short timer; a run still going when the next is due is left
 * alone.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "lib/log.h"
#include "lib/xalloc.h"

extern char **environ;

/* Minutes after midnight UTC: late enough that the day is complete everywhere we write. */
#define REPORTS_MINUTE 7

struct daemon_reports {
    struct server *srv;
    char *config_path;
    struct event *daily, *reap;
    pid_t child;
};

static void reports_arm(struct daemon_reports *r)
{
    time_t now = time(NULL);
    time_t next = now - now % 86400 + REPORTS_MINUTE * 60;
    if (next <= now)
        next += 86400;
    struct timeval tv = {next - now, 0};
    event_add(r->daily, &tv);
}

static void reports_reap(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_reports *r = arg;
    int status;
    pid_t p = waitpid(r->child, &status, WNOHANG);
    if (p == 0)
        return;
    if (p == r->child && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        log_warning("report send exited with status %d; the pending reports wait for the next run",
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    r->child = 0;
    event_del(r->reap);
}

static void reports_run(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_reports *r = arg;
    reports_arm(r);
    const struct config *cfg = r->srv->gen->cfg;
    if (!config_get_bool(cfg, "smtp_tls_reporting") &&
        !config_get_bool(cfg, "smtpd_dmarc_reporting"))
        return;
    if (r->child) {
        log_warning("report send from the last run still going: not starting another");
        return;
    }
    char *argv[6];
    int n = 0;
    argv[n++] = "hongyan";
    if (r->config_path) {
        argv[n++] = "-c";
        argv[n++] = r->config_path;
    }
    argv[n++] = "report";
    argv[n++] = "send";
    argv[n] = NULL;
    /* Our own binary, whatever PATH says. */
    int rc = posix_spawn(&r->child, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc != 0) {
        log_warning("cannot start report send: %s", strerror(rc));
        r->child = 0;
        return;
    }
    log_info("daily reports: report send started, pid %ld", (long)r->child);
    struct timeval tv = {1, 0};
    event_add(r->reap, &tv);
}

struct daemon_reports *daemon_reports_start(struct server *srv, const char *config_path)
{
    struct daemon_reports *r = xcalloc(1, sizeof *r);
    r->srv = srv;
    r->config_path = config_path ? xstrdup(config_path) : NULL;
    r->daily = evtimer_new(srv->base, reports_run, r);
    r->reap = event_new(srv->base, -1, EV_PERSIST, reports_reap, r);
    reports_arm(r);
    return r;
}

void daemon_reports_free(struct daemon_reports *r)
{
    if (!r)
        return;
    event_free(r->daily);
    event_free(r->reap);
    free(r->config_path);
    free(r);
}
