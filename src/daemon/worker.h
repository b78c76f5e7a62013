/*
 * The loop state of the two mail_owner processes, smtpd and delivery
 * (daemon.h, enum daemon_role), private to the files that make up their
 * loop: worker.c is what both run (configuration, spool, DNS, signals,
 * drain, teardown), smtpd_main.c what only smtpd runs (the listeners and
 * the admission of a connection), delivery_main.c what only delivery runs
 * (the queue manager and smtpd's wake-ups). Split so that a reviewer sees
 * each process's own code in a file named for it (docs/architecture.md,
 * "Processes").
 */
#ifndef HONGYAN_DAEMON_WORKER_H
#define HONGYAN_DAEMON_WORKER_H

#include <stdint.h>

#include "daemon/daemon.h"
#include "server/server.h"

struct evconnlistener;
struct event;
struct split_sender;
struct split_receiver;

struct worker {
    struct server srv;
    enum daemon_role role;
    int split_fd;                    /* smtpd: sends hints; delivery: reads them; -1: none */
    struct split_sender *split_out;  /* smtpd */
    struct split_receiver *split_in; /* delivery */
    const char *config_path;
    struct listen_sock *socks;
    int nsocks;
    struct evconnlistener **listeners;
    struct event *sig_hup, *sig_term, *sig_int, *drain_tick, *test_trigger;
    struct event *maps_fresh; /* files the supervisor sends after a rebuild (daemon/mapfd.c) */
    int qmgr_stopped;
    uint64_t drain_deadline;
};

/* smtpd_main.c: the listeners on the inherited sockets and the wake-up sender; 0 or -1 (logged). */
int worker_smtpd_start(struct worker *w);
/* SIGTERM: accept nothing more; open sessions finish in the shared drain. */
void worker_smtpd_drain(struct worker *w);
/* After the loop: listeners (their sockets are the supervisor's), PROXY reads, the sender. */
void worker_smtpd_stop(struct worker *w);

/* delivery_main.c: the queue manager and the receiver of smtpd's wake-ups. */
void worker_delivery_start(struct worker *w);
/* SIGTERM: the queue manager starts nothing new; qmgr_stopped once its deliveries are done. */
void worker_delivery_drain(struct worker *w);
/* After the loop, before the work queues go: the wake-up receiver. */
void worker_delivery_stop(struct worker *w);

#endif
