/*
 * The supervisor's side of the keeper (daemon.h, struct keeper_proc):
 * checks keeper_user, makes the socketpairs, execs `hongyan keeper` as
 * keeper_user with its own group and no supplementary group, and restarts
 * it when it dies. The supervisor keeps both ends of each socketpair, so a
 * keeper killed mid-request leaves its client's socket open: the next
 * keeper answers what is still queued, and the request the dead one had
 * taken times out in the client (a temporary failure, ipc/keeper_client.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/xalloc.h"

/* How long the supervisor waits for the keeper's keys before it starts smtpd and delivery. */
#define KEEPER_READY_MS 10000

static pid_t keeper_spawn_start(struct daemon_child *c);

static const struct daemon_child_kind keeper_spawn_kind = {
    .name = "keeper",
    .restart = 1,
    .start = keeper_spawn_start,
};

int daemon_keeper_init(struct keeper_proc *kp, const struct config *cfg, const char *config_path,
                       const struct passwd *mail_owner)
{
    memset(kp, 0, sizeof *kp);
    kp->snapshot_fd = -1;
    kp->config_path = config_path;
    kp->child.kind = &keeper_spawn_kind;
    kp->child.ctx = kp;
    if (mail_owner == NULL)
        return 0; /* not root: the keeper runs as we do */
    const char *name = config_get(cfg, "keeper_user");
    /* getpwnam_r: the caller's mail_owner entry is getpwnam's static one, which must stay. */
    struct passwd entry, *pw = NULL;
    char strings[4096];
    if (getpwnam_r(name, &entry, strings, sizeof strings, &pw) != 0 || pw == NULL) {
        log_error("keeper_user: user '%s' does not exist; create it with: useradd --system "
                  "--user-group --no-create-home --shell /usr/sbin/nologin %s",
                  name, name);
        return -1;
    }
    struct group gentry, *drop = NULL;
    char gstrings[4096];
    if (getgrnam_r(config_get(cfg, "setgid_group"), &gentry, gstrings, sizeof gstrings, &drop) != 0)
        drop = NULL;
    /* smtpd and delivery share neither their uid nor any of their groups with the keys' owner. */
    if (pw->pw_uid == 0 || pw->pw_uid == mail_owner->pw_uid || pw->pw_gid == 0 ||
        pw->pw_gid == mail_owner->pw_gid || (drop && drop->gr_gid == pw->pw_gid)) {
        log_error("keeper_user: '%s' must have a uid and a group of its own (not root's, "
                  "mail_owner's or setgid_group)",
                  name);
        return -1;
    }
    kp->uid = pw->pw_uid;
    kp->gid = pw->pw_gid;
    kp->drop = 1;
    kp->child.user = name;
    return 0;
}

/* The forked child: the keeper's command line, then daemon_child_exec. */
static _Noreturn void keeper_spawn_child(struct keeper_proc *kp, int ready_w, pid_t supervisor)
{
    char *argv[16 + 2 * KEEPER_PROC_CLIENTS];
    int inherit[3 + KEEPER_PROC_CLIENTS];
    size_t ninherit = 0;
    char parent[32], client[KEEPER_PROC_CLIENTS][48], ready[32], logfd[32], snap[32];
    int n = 0;
    argv[n++] = "hongyan";
    argv[n++] = "keeper";
    snprintf(parent, sizeof parent, "%ld", (long)supervisor);
    argv[n++] = "--parent";
    argv[n++] = parent;
    if (kp->config_path) {
        argv[n++] = "--config";
        argv[n++] = (char *)kp->config_path;
    }
    if (kp->snapshot_fd >= 0) {
        snprintf(snap, sizeof snap, "%d", kp->snapshot_fd);
        argv[n++] = "--config-fd";
        argv[n++] = snap;
        inherit[ninherit++] = kp->snapshot_fd;
    }
    /* Each client with the requests it may make: a client cannot widen its own mask. */
    for (int i = 0; i < kp->npairs; i++) {
        snprintf(client[i], sizeof client[i], "%d,%u", kp->pairs[i].keeper_end, kp->pairs[i].caps);
        argv[n++] = "--client";
        argv[n++] = client[i];
        inherit[ninherit++] = kp->pairs[i].keeper_end;
    }
    if (ready_w >= 0) {
        snprintf(ready, sizeof ready, "%d", ready_w);
        argv[n++] = "--ready-fd";
        argv[n++] = ready;
        inherit[ninherit++] = ready_w;
    }
    if (log_file_fd() >= 0) {
        snprintf(logfd, sizeof logfd, "%d", log_file_fd());
        argv[n++] = "--log-fd";
        argv[n++] = logfd;
        inherit[ninherit++] = log_file_fd();
    }
    argv[n] = NULL;
    /* Its own uid and group, no supplementary group: it shares none with smtpd or delivery. */
    struct daemon_exec ex = {
        .creds = {.drop = kp->drop, .uid = kp->uid, .gid = kp->gid},
        .supervisor = supervisor,
        .argv = argv,
        .inherit = inherit,
        .ninherit = ninherit,
    };
    daemon_child_exec(&ex);
}

/*
 * The keeper's kind in the supervisor's table: starts one on the current
 * socketpair; with kp->wait_ready, blocks until its keys are loaded.
 */
static pid_t keeper_spawn_start(struct daemon_child *c)
{
    struct keeper_proc *kp = c->ctx;
    int wait = kp->wait_ready;
    kp->wait_ready = 0;
    for (int i = 0; i < kp->npairs; i++)
        if (kp->pairs[i].keeper_end < 0)
            return -1; /* no socketpair: daemon_keeper_renew logged why */
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        log_error("keeper: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid == 0)
        keeper_spawn_child(kp, wait ? ready[1] : -1, supervisor);
    close(ready[1]);
    if (pid < 0) {
        log_error("keeper: fork: %s", strerror(errno));
        close(ready[0]);
        return -1;
    }
    if (wait) {
        struct pollfd p = {ready[0], POLLIN, 0};
        char byte;
        int rc;
        do
            rc = poll(&p, 1, KEEPER_READY_MS);
        while (rc < 0 && errno == EINTR);
        if (rc <= 0 || read(ready[0], &byte, 1) != 1)
            log_error("keeper pid %ld not ready after %d ms: TLS, DKIM signing and AUTH "
                      "may fail until it is",
                      (long)pid, KEEPER_READY_MS);
    }
    close(ready[0]);
    return pid;
}

void daemon_keeper_stop(struct keeper_proc *kp)
{
    daemon_child_stop(&kp->child, 5);
}

int daemon_keeper_add_client(struct keeper_proc *kp, unsigned caps)
{
    if (kp->npairs == KEEPER_PROC_CLIENTS)
        return -1;
    struct keeper_pair *p = &kp->pairs[kp->npairs];
    p->keeper_end = p->client_end = -1;
    p->caps = caps;
    return kp->npairs++;
}

int daemon_keeper_client_fd(const struct keeper_proc *kp, int client)
{
    return client >= 0 && client < kp->npairs ? kp->pairs[client].client_end : -1;
}

void daemon_keeper_renew(struct keeper_proc *kp, int client)
{
    daemon_keeper_stop(kp);
    for (int i = 0; i < kp->npairs; i++) {
        struct keeper_pair *p = &kp->pairs[i];
        if (client >= 0 && i != client)
            continue; /* the other clients keep theirs: the new keeper answers on them */
        if (p->keeper_end >= 0)
            close(p->keeper_end);
        if (p->client_end >= 0)
            close(p->client_end);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            log_error("keeper: socketpair: %s", strerror(errno));
            p->keeper_end = p->client_end = -1;
            continue; /* the start below refuses: no keeper with a client missing */
        }
        p->keeper_end = sv[0];
        p->client_end = sv[1];
    }
    kp->wait_ready = 1;
    daemon_child_start(&kp->child);
}
