/*
 * The relay password maps opened by root, as Postfix opens
 * smtp_sasl_password_maps before its smtp process drops privileges: the
 * files (sasl_passwd's FILE.lmdb, a texthash: file, a pgsql: parameter file
 * with the database password) stay root:root 0600. Before it execs a child
 * whose kind says relay_maps (daemon.h), the supervisor opens each of them
 * read-only without following a symbolic link and puts the descriptors on
 * a socketpair of that child's (SCM_RIGHTS, ipc/ipc_proto.h); on SIGHUP
 * it opens them again (a rebuild renames a new file into place) and sends
 * them before it signals the child. The child puts what it receives in the
 * maps' registry (maps/map_fd.h), from which its next table generation is
 * built. docs/security.md says what is refused and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_fd.h"
#include "maps/maps.h"

/* The one key whose tables are opened by root for the child (docs/security.md). */
static const char mapfd_key[] = "smtp_sasl_password_maps";

/* The child's end, kept from its command line (--maps-fd) for the reloads. */
static int mapfd_child_sock = -1;

/*
 * Opens path for reading as root: its directories walked by descriptor with
 * lib/safedir's rules (each owned by root or by us; a symbolic link
 * followed only where it sits in a directory nobody but root can write),
 * the file itself never through a symbolic link, and only a regular file.
 * The descriptor, or -1 with errno and why.
 */
static int mapfd_open(const char *path, struct buf *why)
{
    const char *base;
    char *dir = path_split(path, &base);
    int fd = -1;
    int dirfd = safedir_open(dir, 0, 0, NULL, why);
    if (dirfd < 0) {
        int e = errno;
        if (why->len == 0)
            buf_printf(why, "%s: %s", dir, strerror(e));
        free(dir);
        errno = e;
        return -1;
    }
    fd = openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    int e = errno;
    struct stat st;
    if (fd < 0 && e == ELOOP) {
        buf_printf(why,
                   "%s is a symbolic link: root opens relay password files only without "
                   "following one (put the file itself there)",
                   path);
    } else if (fd < 0) {
        buf_printf(why, "%s: %s", path, strerror(e));
    } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        buf_printf(why, "%s: not a regular file", path);
        close(fd);
        fd = -1;
        e = EINVAL;
    }
    close(dirfd);
    free(dir);
    errno = e;
    return fd;
}

/* 1 when a process of uid with the gids could read a file of st (the permission bits as the kernel
 * reads them). */
static int mapfd_readable_by(const struct stat *st, uid_t uid, const gid_t *gids, size_t ngids)
{
    if (st->st_uid == uid)
        return (st->st_mode & S_IRUSR) != 0;
    for (size_t i = 0; i < ngids; i++)
        if (st->st_gid == gids[i])
            return (st->st_mode & S_IRGRP) != 0;
    return (st->st_mode & S_IROTH) != 0;
}

/* A warning line for each file of the key that mail_owner or its groups can read. */
static void mapfd_exposed(const struct config *cfg, char *const *files, size_t n, struct buf *warn)
{
    const struct passwd *pw = getpwnam(config_get(cfg, "mail_owner"));
    if (pw == NULL || pw->pw_uid == 0)
        return; /* the supervisor refuses to start; nothing to compare with */
    uid_t uid = pw->pw_uid;
    gid_t gids[2] = {pw->pw_gid, pw->pw_gid};
    const struct group *gr = getgrnam(config_get(cfg, "setgid_group"));
    if (gr != NULL)
        gids[1] = gr->gr_gid;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (lstat(files[i], &st) < 0 || !S_ISREG(st.st_mode) ||
            !mapfd_readable_by(&st, uid, gids, 2))
            continue;
        buf_printf(warn,
                   "%s: %s (owner %ld, mode %04o) is readable by mail_owner %s: the relay "
                   "passwords belong to root alone; chown root:root and chmod 0600 it (and "
                   "its source), then hongyan reload\n",
                   mapfd_key, files[i], (long)st.st_uid, (unsigned)(st.st_mode & 07777),
                   pw->pw_name);
    }
}

void daemon_mapfd_check_exposed(const struct config *cfg, struct buf *warn)
{
    size_t n = 0;
    char **files = map_list_files(config_get(cfg, mapfd_key), &n);
    mapfd_exposed(cfg, files, n, warn);
    strlist_free(files);
}

/* What the supervisor keeps per child (daemon.h's struct daemon_child, maps). */
struct daemon_mapfd {
    int sock;     /* the supervisor's end of the pair; -1: none */
    char **files; /* what was sent last (strlist), watched for a rebuild */
    size_t nfiles;
    struct mapfd_seen *seen; /* each file's identity when it was opened */
    time_t watched;          /* the last look at them */
};

/* Which file a path named: a rebuild renames another one into place. */
struct mapfd_seen {
    int exists;
    dev_t dev;
    ino_t ino;
};

static struct mapfd_seen mapfd_look(const char *path)
{
    struct stat st;
    struct mapfd_seen s = {0};
    if (lstat(path, &st) == 0) {
        s.exists = 1;
        s.dev = st.st_dev;
        s.ino = st.st_ino;
    }
    return s;
}

/*
 * Opens files (taken over: they become the watched set) and sends them on
 * the child's socket, one datagram. A file that cannot be opened goes with
 * its errno, so that the child fails on it as it does today, without
 * opening the path itself.
 */
static void mapfd_send(struct daemon_mapfd *mf, char **files, size_t n)
{
    if (files != mf->files) {
        strlist_free(mf->files);
        mf->files = files;
        mf->nfiles = n;
        free(mf->seen);
        mf->seen = xcalloc(n ? n : 1, sizeof *mf->seen);
    }
    if (n > MAPFD_FILES_MAX) {
        log_warning("%s: %zu files; the first %d are opened as root, the others are read by "
                    "the delivering process itself",
                    mapfd_key, n, MAPFD_FILES_MAX);
        n = MAPFD_FILES_MAX;
    }
    struct buf msg = BUF_INIT, body = BUF_INIT;
    int fds[MAPFD_FILES_MAX];
    size_t nfds = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (strlen(files[i]) > MAPFD_PATH_MAX) {
            log_warning("%s: %.64s...: path longer than %d bytes, not opened as root", mapfd_key,
                        files[i], MAPFD_PATH_MAX);
            continue;
        }
        /* Looked at before the open: a rename in between is seen at the next watch. */
        mf->seen[i] = mapfd_look(files[i]);
        struct buf why = BUF_INIT;
        int fd = mapfd_open(files[i], &why);
        if (fd < 0) {
            int e = errno > 0 && errno <= MAPFD_ERRNO_MAX ? errno : EIO;
            log_warning("%s: cannot open %s; deliveries that need it are deferred", mapfd_key,
                        buf_cstr(&why));
            mapfd_put_file(&body, files[i], (uint32_t)e);
        } else {
            fds[nfds++] = fd;
            mapfd_put_file(&body, files[i], 0);
        }
        count++;
        buf_free(&why);
    }
    mapfd_put_files(&msg, (uint32_t)count);
    buf_append(&msg, body.data, body.len);
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int) * MAPFD_FILES_MAX)];
    } ctl;
    struct iovec iov = {.iov_base = msg.data, .iov_len = msg.len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    /* A child that died meanwhile is restarted with a fresh pair and fresh files. */
    if (sendmsg(mf->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_warning("%s: cannot hand the files over: %s", mapfd_key, strerror(errno));
    /* The datagram holds its own references. */
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    buf_free(&msg);
    buf_free(&body);
    mf->watched = time(NULL);
}

/* Sends the files cfg names, after warning about those mail_owner could read. */
static void mapfd_send_config(struct daemon_mapfd *mf, const struct config *cfg)
{
    size_t n = 0;
    char **files = map_list_files(config_get(cfg, mapfd_key), &n);
    struct buf warn = BUF_INIT;
    mapfd_exposed(cfg, files, n, &warn);
    for (char *line = warn.data, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        log_warning("%s", line);
    }
    buf_free(&warn);
    mapfd_send(mf, files, n);
}

void daemon_mapfd_close(struct daemon_child *c)
{
    struct daemon_mapfd *mf = c->maps;
    if (mf == NULL)
        return;
    if (mf->sock >= 0)
        close(mf->sock);
    strlist_free(mf->files);
    free(mf->seen);
    free(mf);
    c->maps = NULL;
}

int daemon_mapfd_start(struct daemon_child *c, const char *config_path, int snapshot_fd)
{
    daemon_mapfd_close(c);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("%s: socketpair: %s", mapfd_key, strerror(errno));
        return -1;
    }
    struct daemon_mapfd *mf = c->maps = xcalloc(1, sizeof *mf);
    mf->sock = sv[0];
    /*
     * The configuration the child will run on: the file, or the last one
     * that loaded (the child falls back the same way, and logs it too).
     */
    struct config *cfg = config_load_or_snapshot(config_path, snapshot_fd);
    if (cfg != NULL)
        mapfd_send_config(mf, cfg);
    config_free(cfg); /* none: the child stops on the same configuration error */
    return sv[1];
}

void daemon_mapfd_renew(struct daemon_child *c, const char *config_path)
{
    if (c->maps == NULL || c->pid <= 0)
        return;
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(config_path, &err);
    /* A broken file: the child keeps its configuration, and its tables with it. */
    if (cfg != NULL)
        mapfd_send_config(c->maps, cfg);
    config_free(cfg);
    buf_free(&err);
}

void daemon_mapfd_watch(struct daemon_child *c)
{
    struct daemon_mapfd *mf = c->maps;
    time_t now = time(NULL);
    if (mf == NULL || c->pid <= 0 || now - mf->watched < 1)
        return;
    mf->watched = now;
    size_t n = mf->nfiles < MAPFD_FILES_MAX ? mf->nfiles : MAPFD_FILES_MAX;
    for (size_t i = 0; i < n; i++) {
        struct mapfd_seen s = mapfd_look(mf->files[i]);
        if (s.exists != mf->seen[i].exists || s.dev != mf->seen[i].dev ||
            s.ino != mf->seen[i].ino) {
            log_info("%s: %s changed; handing the files over again", mapfd_key, mf->files[i]);
            mapfd_send(mf, mf->files, mf->nfiles);
            return;
        }
    }
}

/* Closes every descriptor of a datagram that is not used. */
static void mapfd_close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/*
 * Reads one datagram from sock: 1 with the files it handed over in *out,
 * 0 when none waits, -1 when it did not decode (logged; its descriptors
 * closed).
 */
static int mapfd_recv_one(int sock, struct map_fd_file **out, size_t *nout)
{
    static uint8_t data[MAPFD_MSG_MAX];
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int) * MAPFD_FILES_MAX)];
    } ctl;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0; /* nothing waiting, or the supervisor's end is gone */
    int fds[MAPFD_FILES_MAX];
    size_t nfds = 0;
    int bad = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int got[MAPFD_FILES_MAX];
        if (k > MAPFD_FILES_MAX) /* cannot be: ctl has room for that many */
            k = MAPFD_FILES_MAX, bad = 1;
        memcpy(got, CMSG_DATA(cm), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (nfds < MAPFD_FILES_MAX)
                fds[nfds++] = got[i];
            else
                close(got[i]), bad = 1;
        }
    }
    struct mapfd_msg msg;
    if (bad || mapfd_msg_decode(data, (size_t)n, nfds, &msg) < 0) {
        log_error("%s: the supervisor's hand-over of the table files did not decode; keeping "
                  "the files this process has",
                  mapfd_key);
        mapfd_close_all(fds, nfds);
        return -1;
    }
    struct map_fd_file *files = xcalloc(msg.count ? msg.count : 1, sizeof *files);
    size_t next_fd = 0;
    for (uint32_t i = 0; i < msg.count; i++) {
        files[i].path = xstrndup((const char *)msg.files[i].path.data, msg.files[i].path.len);
        files[i].error = (int)msg.files[i].error;
        files[i].fd = files[i].error == 0 ? fds[next_fd++] : -1;
    }
    *out = files;
    *nout = msg.count;
    return 1;
}

/* Takes the newest hand-over waiting on the child's socket into the maps' registry. */
static void mapfd_take(void)
{
    struct map_fd_file *files = NULL, *got;
    size_t n = 0, ngot;
    int any = 0, rc = 0;
    /* Bounded: the supervisor sends one per start, per SIGHUP and per rebuilt table. */
    for (int i = 0; i < 64 && (rc = mapfd_recv_one(mapfd_child_sock, &got, &ngot)) != 0; i++) {
        if (rc < 0)
            continue;
        if (any)
            map_fd_files_free(files, n); /* superseded by a later one */
        files = got;
        n = ngot;
        any = 1;
    }
    if (any)
        map_fd_replace(files, n);
}

void daemon_mapfd_adopt(int sock)
{
    mapfd_child_sock = sock;
    mapfd_take();
}

void daemon_mapfd_reload(void)
{
    if (mapfd_child_sock >= 0)
        mapfd_take();
}

/* The supervisor sent files on its own (a rebuilt table): take them; its end gone: stop. */
static void mapfd_readable(evutil_socket_t fd, short what, void *arg)
{
    struct event *self = arg;
    char peek;
    if (recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        event_del(self); /* the supervisor is gone; we stop with it (PR_SET_PDEATHSIG) */
        return;
    }
    mapfd_take();
}

struct event *daemon_mapfd_listen(struct event_base *base)
{
    if (mapfd_child_sock < 0)
        return NULL;
    struct event *ev =
        event_new(base, mapfd_child_sock, EV_READ | EV_PERSIST, mapfd_readable, event_self_cbarg());
    if (ev != NULL)
        event_add(ev, NULL);
    return ev;
}
