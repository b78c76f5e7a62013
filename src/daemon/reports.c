/*
 * The daily report run: once a day, a few minutes after midnight UTC (when
 * the reporting day is over, RFC 8460 4.1), the supervisor starts
 * `hongyan report send` as mail_owner, a fork and exec of its own binary.
 * Not smtpd or delivery: their seccomp filters allow no exec, and the
 * reports' DNS lookups, compression and queueing (through the setgid
 * hongyan-postdrop, like any local mail) stay off their event loops.
 */
#include <stdlib.h>
#include <time.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "lib/buf.h"
#include "lib/log.h"

/* Minutes after midnight UTC: late enough that the day is complete everywhere we write. */
#define REPORTS_MINUTE 7

unsigned daemon_reports_delay(time_t now)
{
    time_t next = now - now % 86400 + REPORTS_MINUTE * 60;
    if (next <= now)
        next += 86400;
    return (unsigned)(next - now);
}

int daemon_reports_wanted(const char *config_path)
{
    /* The file as it is now: a SIGHUP may have turned reporting on or off since the start. */
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(config_path, &err);
    if (cfg == NULL) {
        log_warning("daily reports: %s; the pending reports wait for the next run", buf_cstr(&err));
        buf_free(&err);
        return 0;
    }
    int wanted =
        config_get_bool(cfg, "smtp_tls_reporting") || config_get_bool(cfg, "smtpd_dmarc_reporting");
    config_free(cfg);
    buf_free(&err);
    return wanted;
}
