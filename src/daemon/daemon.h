/*
 * hongyan serve: the supervisor (root: directories, sockets, privilege drop,
 * restarting a dead worker, passing signals on) and the worker (mail_owner:
 * one libevent loop for sessions, delivery, DNS and timers).
 */
#ifndef HONGYAN_DAEMON_DAEMON_H
#define HONGYAN_DAEMON_DAEMON_H

#include "server/server.h"

struct config;

/* A bound listening socket handed from the supervisor to the worker. */
struct listen_sock {
    int fd;
    enum listener_kind kind;
    char *addr; /* as configured, for logs */
};

/*
 * Parses the *_listen keys and binds every address (SO_REUSEADDR,
 * non-blocking). Returns the count, or -1 with err naming the key and
 * address. The caller frees with daemon_listeners_free.
 */
int daemon_listeners_bind(const struct config *cfg, struct listen_sock **out, struct buf *err);
void daemon_listeners_free(struct listen_sock *socks, int count);

/* Runs the supervisor until SIGTERM/SIGINT; returns the exit code. */
int daemon_supervise(const char *config_path, struct config *cfg);

/* Runs the worker loop on the inherited sockets; returns the exit code. */
int daemon_worker_run(const char *config_path, struct config *cfg, struct listen_sock *socks,
                      int nsocks);

/*
 * The daily report run (src/daemon/reports.c): a timer on srv's loop that
 * starts `hongyan report send` shortly after midnight UTC when
 * smtp_tls_reporting or smtpd_dmarc_reporting is on. Freed with
 * daemon_reports_free().
 */
struct daemon_reports;
struct daemon_reports *daemon_reports_start(struct server *srv, const char *config_path);
void daemon_reports_free(struct daemon_reports *r);

#endif
