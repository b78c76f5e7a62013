/*
 * The loop of the two processes the supervisor runs as mail_owner
 * (daemon.h, enum daemon_role): smtpd (every session, the group commit and
 * the metrics HTTP server, on sockets the supervisor bound) and delivery
 * (the queue manager and its agents). This file is what both run; what
 * only one of them runs is in smtpd_main.c and delivery_main.c (worker.h).
 * SIGHUP swaps in a new server
 * generation (config, tables, TLS) without touching open sessions or
 * deliveries; SIGTERM stops accepting, lets open transactions and in-flight
 * deliveries finish up to a deadline, then exits.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "daemon/worker.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "qmgr/qmgr.h"
#include "queue/spool.h"
#include "smtpd/auth.h"

/* How long SIGTERM waits for open transactions and deliveries. */
#define WORKER_DRAIN_SECONDS 30
/* Threads for fsync batches, Maildir writes, signing. */
#define WORKER_THREADS 4
/*
 * Threads for password hashes, apart: yescrypt is slow on purpose, and an
 * AUTH flood queued on the main pool would hold back the spool commits.
 */
#define WORKER_AUTH_THREADS 2
/*
 * Threads for table lookups that may wait on the network (pgsql:), apart
 * for the same reason: a stalled database holds these, not the commits'.
 * Four, as the connections each pgsql: table keeps.
 */
#define WORKER_MAP_THREADS 4

static void worker_reload(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    struct buf err = BUF_INIT;
    /* The supervisor sent the relay password maps' files, opened again, before the signal. */
    daemon_mapfd_reload();
    struct server_gen *gen =
        server_gen_new(w->config_path, NULL, w->role == DAEMON_ROLE_SMTPD, &err);
    if (gen == NULL) {
        log_error("reload failed, keeping the running configuration: %s", buf_cstr(&err));
        buf_free(&err);
        return;
    }
    /* The users file is re-read; the failure throttle lives on across reloads. */
    if (w->srv.auth && auth_reload(w->srv.auth, gen->cfg, &err) < 0) {
        log_error("reload: %s; keeping the previous users", buf_cstr(&err));
        buf_reset(&err);
    }
    buf_free(&err);
    struct server_gen *old = w->srv.gen;
    w->srv.gen = gen;
    /* Messages held now keep their memory; the new limit applies to what comes next. */
    w->srv.hold_budget.limit = (size_t)config_get_int(gen->cfg, "smtpd_inbound_memory_limit");
    server_gen_unref(old);
    log_info("reload: configuration %s", w->config_path ? w->config_path : "(embedded default)");
    log_set_syslog_name(config_get(gen->cfg, "syslog_name"));
    log_set_delay_resolution((int)config_get_int(gen->cfg, "delay_logging_resolution_limit"));
    config_log_notes(gen->cfg, 0);
}

const char *daemon_role_name(enum daemon_role role)
{
    return role == DAEMON_ROLE_SMTPD ? "smtpd" : "delivery";
}

static void worker_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    int done = w->srv.sessions == 0 && (w->srv.qmgr == NULL || w->qmgr_stopped);
    if (done || now_ms() >= w->drain_deadline) {
        if (!done)
            log_warning("shutdown: %d session(s) still open after %ds; closing them "
                        "(nothing they had not been told was queued is lost)",
                        w->srv.sessions, WORKER_DRAIN_SECONDS);
        event_base_loopexit(w->srv.base, NULL);
    }
}

static void worker_terminate(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->srv.draining)
        return;
    log_info("terminating on signal %d", (int)sig);
    w->srv.draining = 1;
    if (w->role == DAEMON_ROLE_SMTPD)
        worker_smtpd_drain(w);
    else
        worker_delivery_drain(w);
    w->drain_deadline = now_ms() + WORKER_DRAIN_SECONDS * 1000u;
    w->drain_tick = event_new(w->srv.base, -1, EV_PERSIST, worker_drain_check, w);
    struct timeval tv = {0, 50000};
    event_add(w->drain_tick, &tv);
}

int daemon_worker_run(enum daemon_role role, const char *config_path, struct config *cfg,
                      struct listen_sock *socks, int nsocks, int split_fd)
{
    struct worker w;
    memset(&w, 0, sizeof w);
    w.role = role;
    w.split_fd = split_fd;
    w.config_path = config_path;
    w.socks = socks;
    w.nsocks = role == DAEMON_ROLE_SMTPD ? nsocks : 0;
    log_set_service(daemon_role_name(role));
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    struct buf err = BUF_INIT;
    w.srv.gen = server_gen_new(config_path, cfg, role == DAEMON_ROLE_SMTPD, &err);
    if (w.srv.gen == NULL) {
        log_error("%s", buf_cstr(&err));
        buf_free(&err);
        return EXIT_FAILURE;
    }
    cfg = w.srv.gen->cfg;
    /* Before the first thread (the work queues below), so that every thread is bound. */
    if (daemon_landlock_enter(role, config_path, cfg, &err) < 0) {
        log_error("sandbox: %s", buf_cstr(&err));
        buf_free(&err);
        return EXIT_FAILURE;
    }
    w.srv.base = event_base_new();
    if (w.srv.base == NULL) {
        log_error("cannot create the event loop");
        return EXIT_FAILURE;
    }
    w.srv.workq = workq_new(w.srv.base, WORKER_THREADS);
    /* Sessions are smtpd's: delivery has no clients to count and no passwords to check. */
    if (role == DAEMON_ROLE_SMTPD) {
        w.srv.clients = client_table_new();
        w.srv.auth_workq = workq_new(w.srv.base, WORKER_AUTH_THREADS);
    }
    w.srv.map_workq = workq_new(w.srv.base, WORKER_MAP_THREADS);
    w.srv.client_v6_prefix = (int)config_get_int(cfg, "smtpd_client_ipv6_prefix_length");
    w.srv.hold_budget.limit = (size_t)config_get_int(cfg, "smtpd_inbound_memory_limit");
    /* Each writer its own incoming directory: a restart of one never touches the other's files. */
    w.srv.spool = spool_open(
        config_get(cfg, "queue_directory"),
        role == DAEMON_ROLE_SMTPD ? SPOOL_INCOMING_SMTPD : SPOOL_INCOMING_DELIVERY, &err);
    if (w.srv.spool == NULL) {
        log_error("spool: %s", buf_cstr(&err));
        buf_free(&err);
        return EXIT_FAILURE;
    }
    spool_attach(w.srv.spool, w.srv.base, w.srv.workq);
    w.srv.dns = dns_new(w.srv.base, config_get(cfg, "dns_resolver"), &err);
    if (w.srv.dns == NULL) {
        log_error("dns_resolver: %s", buf_cstr(&err));
        buf_free(&err);
        return EXIT_FAILURE;
    }
    if (role == DAEMON_ROLE_SMTPD) {
        /* smtpd's own unfinished receipts; the committed queue is delivery's to repair. */
        spool_recover_incoming(w.srv.spool);
        /* Small messages go to the journal: a new segment for this smtpd (docs/queue.md). */
        if (spool_journal_enable(w.srv.spool, &err) < 0) {
            log_error("spool: %s", buf_cstr(&err));
            buf_free(&err);
            return EXIT_FAILURE;
        }
        w.srv.auth = auth_new(w.srv.base, w.srv.auth_workq, cfg, &err);
        if (w.srv.auth == NULL) {
            log_error("%s", buf_cstr(&err));
            buf_free(&err);
            return EXIT_FAILURE;
        }
        if (worker_smtpd_start(&w) < 0)
            return EXIT_FAILURE;
    } else {
        worker_delivery_start(&w);
    }
    w.sig_hup = evsignal_new(w.srv.base, SIGHUP, worker_reload, &w);
    w.sig_term = evsignal_new(w.srv.base, SIGTERM, worker_terminate, &w);
    w.sig_int = evsignal_new(w.srv.base, SIGINT, worker_terminate, &w);
    event_add(w.sig_hup, NULL);
    w.maps_fresh = daemon_mapfd_listen(w.srv.base);
    event_add(w.sig_term, NULL);
    event_add(w.sig_int, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (w.srv.qmgr)
        qmgr_start(w.srv.qmgr);
    /* Everything opened: from here on, only what the allowlist allows (sandbox.c). */
    if (daemon_sandbox_enter(role, &err) < 0) {
        log_error("sandbox: %s", buf_cstr(&err));
        buf_free(&err);
        return EXIT_FAILURE;
    }
    w.test_trigger = daemon_sandbox_test_trigger(w.srv.base);
    if (role == DAEMON_ROLE_SMTPD)
        log_info("ready: %d listener(s), queue %s", nsocks, config_get(cfg, "queue_directory"));
    else
        log_info("ready: queue manager, queue %s", config_get(cfg, "queue_directory"));
    /* One iteration at a time, to write the iteration's log lines at once (lib/log.h). */
    log_batch_thread();
    while (event_base_loop(w.srv.base, EVLOOP_ONCE) == 0 && !event_base_got_exit(w.srv.base) &&
           !event_base_got_break(w.srv.base))
        log_flush();
    log_flush();

    /* Orderly teardown so sanitizer runs report real leaks only. */
    if (role == DAEMON_ROLE_SMTPD)
        worker_smtpd_stop(&w);
    else
        worker_delivery_stop(&w);
    /* The work queue first: its last completions still call into the qmgr. */
    workq_free(w.srv.workq);
    workq_free(w.srv.auth_workq);
    workq_free(w.srv.map_workq);
    qmgr_free(w.srv.qmgr);
    auth_free(w.srv.auth);
    spool_free(w.srv.spool);
    dns_free(w.srv.dns);
    event_free(w.sig_hup);
    if (w.maps_fresh)
        event_free(w.maps_fresh);
    event_free(w.sig_term);
    event_free(w.sig_int);
    if (w.drain_tick)
        event_free(w.drain_tick);
    if (w.test_trigger)
        event_free(w.test_trigger);
    client_table_free(w.srv.clients);
    server_gen_unref(w.srv.gen);
    event_base_free(w.srv.base);
    buf_free(&err);
    log_info("stopped");
    return EXIT_SUCCESS;
}
