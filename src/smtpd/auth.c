/*
 * SMTP AUTH password checks against smtpd_sasl_users with libxcrypt, off
 * the event loop, with per-address failure throttling; see auth.h.
 */
#include "smtpd/auth.h"

#include <crypt.h>
#include <errno.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "config/config.h"
#include "ipc/keeper_client.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"

#define AUTH_FILE_MAX (16u * 1024 * 1024)
#define AUTH_USER_MAX 255
#define AUTH_PASS_MAX 1023
#define AUTH_ADDR_MAX 64
/* Addresses remembered by the throttle; the oldest is forgotten first. */
#define AUTH_THROTTLE_SLOTS 4096
/* The delay doubles per failure up to 32 times the base. */
#define AUTH_DELAY_SHIFT_MAX 5

struct auth_user {
    char *name;
    char *hash;
};

struct auth_throttle_entry {
    char key[AUTH_ADDR_MAX];
    unsigned failures;
    uint64_t last_failure;
};

struct auth_throttle {
    unsigned limit;
    uint64_t window_ms;
    uint64_t delay_ms;
    struct auth_throttle_entry *slots;
    size_t used;
    int v6_prefix; /* IPv6 clients are keyed by this prefix (client_addr_key) */
    /*
     * Failures from everybody: two consecutive windows, the current one
     * started at global_start; the count over the last window is estimated
     * from both (a sliding window in constant space, whatever the flood).
     */
    unsigned global_limit;
    uint64_t global_start;
    unsigned global_cur, global_prev;
    int global_over; /* the limit is reached: logged once until it is not */
};

struct auth {
    int refs;
    struct event_base *base;
    struct workq *workq;
    struct keeper_client *keeper; /* the worker: the keeper reads the file and checks */
    int trusted;                  /* the keeper: the file must be root's or trusted_uid's */
    uid_t trusted_uid;
    char *path;
    int available;
    struct auth_user *users; /* sorted by name */
    size_t nusers;
    char dummy[CRYPT_OUTPUT_SIZE]; /* setting used for unknown users */
    struct auth_throttle *throttle;
    /* The users file as last read, so that auth_refresh() notices an edit. */
    int file_exists;
    struct stat file_st;
    uint64_t checked_ms;
};

enum auth_pending_state {
    AUTH_P_WAITING, /* on a timer: throttle delay, or an answer known already */
    AUTH_P_WORKING, /* on the work queue */
};

struct auth_pending {
    struct auth *a;
    enum auth_pending_state state;
    int cancelled;
    int known;   /* the user exists and its hash is in hash */
    int decided; /* result is final without hashing (AUTH_REFUSED) */
    enum auth_result result;
    struct event *timer;
    char addr[AUTH_ADDR_MAX];
    char hash[CRYPT_OUTPUT_SIZE];
    char user[AUTH_USER_MAX + 1]; /* for the keeper's check */
    char pass[AUTH_PASS_MAX + 1];
    void (*done)(void *arg, enum auth_result result);
    void *arg;
};

/* ---------- throttle ---------- */

/* IPv6 clients usually own a /64: key on their prefix so that rotating addresses does not help. */
static void auth_throttle_key(const struct auth_throttle *t, const char *addr, char *key)
{
    client_addr_key(addr, t->v6_prefix, key, AUTH_ADDR_MAX);
}

struct auth_throttle *auth_throttle_new(unsigned limit, uint64_t window_ms, uint64_t delay_ms)
{
    struct auth_throttle *t = xcalloc(1, sizeof *t);
    t->slots = xcalloc(AUTH_THROTTLE_SLOTS, sizeof *t->slots);
    t->v6_prefix = 64;
    auth_throttle_set(t, limit, window_ms, delay_ms);
    return t;
}

void auth_throttle_set_global(struct auth_throttle *t, unsigned global_limit, int v6_prefix)
{
    t->global_limit = global_limit;
    t->v6_prefix = v6_prefix;
}

/* Moves the two global windows on to now. */
static void auth_throttle_global_advance(struct auth_throttle *t, uint64_t now)
{
    uint64_t w = t->window_ms ? t->window_ms : 1;
    if (now < t->global_start || now - t->global_start < w)
        return;
    uint64_t windows = (now - t->global_start) / w;
    t->global_prev = windows == 1 ? t->global_cur : 0;
    t->global_cur = 0;
    t->global_start += windows * w;
}

unsigned auth_throttle_global_failures(struct auth_throttle *t, uint64_t now)
{
    auth_throttle_global_advance(t, now);
    uint64_t w = t->window_ms ? t->window_ms : 1;
    uint64_t into = now >= t->global_start ? now - t->global_start : 0;
    return t->global_cur + (unsigned)((uint64_t)t->global_prev * (w - into) / w);
}

void auth_throttle_set(struct auth_throttle *t, unsigned limit, uint64_t window_ms,
                       uint64_t delay_ms)
{
    t->limit = limit;
    t->window_ms = window_ms;
    t->delay_ms = delay_ms;
}

void auth_throttle_free(struct auth_throttle *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t);
}

static int auth_throttle_expired(const struct auth_throttle *t, const struct auth_throttle_entry *e,
                                 uint64_t now)
{
    return now >= e->last_failure && now - e->last_failure >= t->window_ms;
}

/* The entry for addr, or NULL; expired entries are dropped on the way. */
static struct auth_throttle_entry *auth_throttle_find(struct auth_throttle *t, const char *key,
                                                      uint64_t now)
{
    for (size_t i = 0; i < t->used;) {
        struct auth_throttle_entry *e = &t->slots[i];
        if (auth_throttle_expired(t, e, now)) {
            t->slots[i] = t->slots[--t->used];
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return e;
        i++;
    }
    return NULL;
}

unsigned auth_throttle_failures(struct auth_throttle *t, const char *addr, uint64_t now)
{
    char key[AUTH_ADDR_MAX];
    auth_throttle_key(t, addr, key);
    struct auth_throttle_entry *e = auth_throttle_find(t, key, now);
    return e ? e->failures : 0;
}

long long auth_throttle_wait(struct auth_throttle *t, const char *addr, uint64_t now)
{
    char key[AUTH_ADDR_MAX];
    auth_throttle_key(t, addr, key);
    struct auth_throttle_entry *e = auth_throttle_find(t, key, now);
    if (e != NULL && t->limit > 0 && e->failures >= t->limit)
        return -1;
    if (t->global_limit > 0 && auth_throttle_global_failures(t, now) >= t->global_limit)
        return -2;
    if (e == NULL || e->failures == 0)
        return 0;
    unsigned shift = e->failures - 1;
    if (shift > AUTH_DELAY_SHIFT_MAX)
        shift = AUTH_DELAY_SHIFT_MAX;
    uint64_t next = e->last_failure + (t->delay_ms << shift);
    return next > now ? (long long)(next - now) : 0;
}

void auth_throttle_failed(struct auth_throttle *t, const char *addr, uint64_t now)
{
    char key[AUTH_ADDR_MAX];
    auth_throttle_key(t, addr, key);
    struct auth_throttle_entry *e = auth_throttle_find(t, key, now);
    if (e == NULL) {
        if (t->used == AUTH_THROTTLE_SLOTS) {
            /* Full: forget the address whose last failure is the oldest. */
            size_t oldest = 0;
            for (size_t i = 1; i < t->used; i++)
                if (t->slots[i].last_failure < t->slots[oldest].last_failure)
                    oldest = i;
            t->slots[oldest] = t->slots[--t->used];
        }
        e = &t->slots[t->used++];
        memset(e, 0, sizeof *e);
        str_copy(e->key, sizeof e->key, key);
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last_failure = now;
    auth_throttle_global_advance(t, now);
    if (t->global_cur < UINT32_MAX)
        t->global_cur++;
}

/* ---------- users file ---------- */

int auth_user_name_ok(const char *user)
{
    size_t n = strlen(user);
    if (n == 0 || n > AUTH_USER_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == ':')
            return 0;
    return 1;
}

static int auth_user_cmp(const void *x, const void *y)
{
    const struct auth_user *a = x, *b = y;
    return strcmp(a->name, b->name);
}

static void auth_users_free(struct auth_user *users, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(users[i].name);
        if (users[i].hash) {
            explicit_bzero(users[i].hash, strlen(users[i].hash));
            free(users[i].hash);
        }
    }
    free(users);
}

/*
 * Parses the users file. Lines: "user:hash" (further ":fields" are ignored,
 * as in passwd-style files), "#" comments, blank lines. A bad line is
 * logged with FILE:LINE and skipped; an unreadable file is an error.
 */
static int auth_users_load(const char *path, int trusted, uid_t trusted_uid, struct auth_user **out,
                           size_t *count, int *available, struct buf *err)
{
    struct buf text = BUF_INIT;
    *out = NULL;
    *count = 0;
    *available = 0;
    int rc = trusted ? read_file_trusted(path, trusted_uid, &text, AUTH_FILE_MAX)
                     : read_file(path, &text, AUTH_FILE_MAX);
    if (rc < 0) {
        if (errno == ENOENT) {
            buf_free(&text);
            return 0;
        }
        buf_printf(err, "smtpd_sasl_users: cannot read %s: %s", path,
                   errno == EFBIG   ? "file too large"
                   : errno == EPERM ? "owned by another user than root or the keeper (planted?)"
                                    : strerror(errno));
        buf_free(&text);
        return -1;
    }
    *available = 1;
    struct auth_user *users = NULL;
    size_t n = 0, cap = 0;
    char *p = text.data ? text.data : (char *)"";
    char *end = p + text.len;
    unsigned lineno = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        lineno++;
        int has_nul = memchr(p, '\0', (size_t)(eol - p)) != NULL;
        *eol = '\0';
        char *line = str_trim(p);
        p = eol + 1;
        if (has_nul) {
            log_warning("%s:%u: NUL byte in line, ignored", path, lineno);
            continue;
        }
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL) {
            log_warning("%s:%u: expected user:hash, line ignored", path, lineno);
            continue;
        }
        *colon = '\0';
        char *hash = colon + 1;
        char *more = strchr(hash, ':');
        if (more)
            *more = '\0';
        if (!auth_user_name_ok(line)) {
            log_warning("%s:%u: invalid user name, line ignored", path, lineno);
            continue;
        }
        int cs = crypt_checksalt(hash);
        if (hash[0] != '$' || strlen(hash) >= CRYPT_OUTPUT_SIZE ||
            (cs != CRYPT_SALT_OK && cs != CRYPT_SALT_METHOD_LEGACY && cs != CRYPT_SALT_TOO_CHEAP)) {
            log_warning("%s:%u: user %s: not a supported crypt(3) hash, line ignored", path, lineno,
                        line);
            continue;
        }
        if (cs != CRYPT_SALT_OK)
            log_warning("%s:%u: user %s: weak password hash; set a new password with "
                        "'hongyan user passwd %s'",
                        path, lineno, line, line);
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            users = xrealloc(users, cap * sizeof *users);
        }
        users[n].name = xstrdup(line);
        users[n].hash = xstrdup(hash);
        n++;
    }
    explicit_bzero(text.data ? text.data : (char *)"", text.len);
    buf_free(&text);
    if (n > 1) {
        qsort(users, n, sizeof *users, auth_user_cmp);
        /* Duplicates: one line is kept (which one is unspecified: qsort is not stable). */
        size_t w = 1;
        for (size_t r = 1; r < n; r++) {
            if (strcmp(users[r].name, users[w - 1].name) == 0) {
                log_warning("%s: user %s appears more than once; only one line is used", path,
                            users[r].name);
                free(users[r].name);
                explicit_bzero(users[r].hash, strlen(users[r].hash));
                free(users[r].hash);
                continue;
            }
            users[w++] = users[r];
        }
        n = w;
    }
    *out = users;
    *count = n;
    return 0;
}

static const struct auth_user *auth_find(const struct auth *a, const char *name)
{
    if (a->nusers == 0)
        return NULL;
    struct auth_user key = {(char *)name, NULL};
    return bsearch(&key, a->users, a->nusers, sizeof key, auth_user_cmp);
}

static void auth_settings(struct auth *a, const struct config *cfg)
{
    long long limit = config_get_int(cfg, "smtpd_sasl_failure_limit");
    long long window = config_get_time(cfg, "smtpd_sasl_failure_window");
    long long delay = config_get_time(cfg, "smtpd_sasl_failure_delay");
    if (limit > 1000000)
        limit = 1000000;
    auth_throttle_set(a->throttle, (unsigned)limit, (uint64_t)window * 1000u,
                      (uint64_t)delay * 1000u);
    long long global = config_get_int(cfg, "smtpd_sasl_global_failure_limit");
    if (global > 100000000)
        global = 100000000;
    auth_throttle_set_global(a->throttle, (unsigned)global,
                             (int)config_get_int(cfg, "smtpd_client_ipv6_prefix_length"));
}

/*
 * The setting hashed for unknown users: a real user's hash, so the cost
 * (method and rounds) is what a known user's check costs, else the default.
 */
static void auth_pick_dummy(struct auth *a)
{
    if (a->nusers > 0) {
        str_copy(a->dummy, sizeof a->dummy, a->users[0].hash);
        return;
    }
    if (crypt_gensalt_rn(NULL, 0, NULL, 0, a->dummy, (int)sizeof a->dummy) == NULL)
        str_copy(a->dummy, sizeof a->dummy, "$6$hongyandummysalt$");
}

static int auth_load_users(struct auth *a, const char *path, struct buf *err)
{
    struct auth_user *users;
    size_t n;
    int available;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (a->keeper) {
        /* Not ours to read: AUTH is offered when the file is there, the keeper checks. */
        users = NULL;
        n = 0;
        available = exists;
    } else if (auth_users_load(path, a->trusted, a->trusted_uid, &users, &n, &available, err) < 0)
        return -1;
    auth_users_free(a->users, a->nusers);
    if (a->path != path) {
        free(a->path);
        a->path = xstrdup(path);
    }
    a->users = users;
    a->nusers = n;
    a->available = available;
    a->file_exists = exists;
    if (exists)
        a->file_st = st;
    a->checked_ms = now_ms();
    auth_pick_dummy(a);
    return 0;
}

static int auth_load(struct auth *a, const struct config *cfg, struct buf *err)
{
    if (auth_load_users(a, config_get(cfg, "smtpd_sasl_users"), err) < 0)
        return -1;
    auth_settings(a, cfg);
    return 0;
}

void auth_refresh(struct auth *a)
{
    if (a == NULL || a->path == NULL)
        return;
    uint64_t now = now_ms();
    if (now - a->checked_ms < 1000)
        return;
    a->checked_ms = now;
    struct stat st;
    int exists = stat(a->path, &st) == 0;
    if (exists == a->file_exists &&
        (!exists || (st.st_ino == a->file_st.st_ino && st.st_size == a->file_st.st_size &&
                     st.st_mtim.tv_sec == a->file_st.st_mtim.tv_sec &&
                     st.st_mtim.tv_nsec == a->file_st.st_mtim.tv_nsec)))
        return;
    struct buf err = BUF_INIT;
    if (auth_load_users(a, a->path, &err) < 0)
        log_warning("%s changed but cannot be read, keeping the users loaded before: %s", a->path,
                    buf_cstr(&err));
    else
        log_info("%s changed: %zu user(s) loaded", a->path, a->nusers);
    buf_free(&err);
}

static struct auth *auth_create(struct event_base *base, struct workq *q, const struct config *cfg,
                                int trusted, uid_t trusted_uid, struct buf *err)
{
    struct auth *a = xcalloc(1, sizeof *a);
    a->refs = 1;
    a->base = base;
    a->workq = q;
    a->trusted = trusted;
    a->trusted_uid = trusted_uid;
    a->keeper = trusted ? NULL : keeper_client_default();
    a->throttle = auth_throttle_new(10, 600000, 1000);
    if (auth_load(a, cfg, err) < 0) {
        auth_free(a);
        return NULL;
    }
    return a;
}

struct auth *auth_new(struct event_base *base, struct workq *q, const struct config *cfg,
                      struct buf *err)
{
    return auth_create(base, q, cfg, 0, 0, err);
}

struct auth *auth_new_owned(const struct config *cfg, uid_t owner, struct buf *err)
{
    return auth_create(NULL, NULL, cfg, 1, owner, err);
}

int auth_reload(struct auth *a, const struct config *cfg, struct buf *err)
{
    return auth_load(a, cfg, err);
}

static void auth_unref(struct auth *a)
{
    if (--a->refs > 0)
        return;
    auth_users_free(a->users, a->nusers);
    auth_throttle_free(a->throttle);
    free(a->path);
    free(a);
}

void auth_free(struct auth *a)
{
    if (a == NULL)
        return;
    auth_unref(a);
}

int auth_available(const struct auth *a)
{
    return a != NULL && a->available;
}

size_t auth_user_count(const struct auth *a)
{
    return a ? a->nusers : 0;
}

/* ---------- checks ---------- */

/* Compares two strings in time that depends only on the length of want. */
static int auth_ct_equal(const char *got, const char *want)
{
    size_t wl = strlen(want), gl = strlen(got);
    unsigned char diff = (unsigned char)(wl != gl);
    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < gl ? (unsigned char)got[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)want[i]);
    }
    return diff == 0;
}

int auth_lookup_hash(const struct auth *a, const char *user, size_t pass_len, char *hash,
                     size_t size)
{
    const struct auth_user *u = auth_find(a, user);
    if (u && pass_len <= AUTH_PASS_MAX) {
        str_copy(hash, size, u->hash);
        return 1;
    }
    /* Same work for an unknown user (or an overlong password): hash against the dummy. */
    str_copy(hash, size, a->dummy);
    return 0;
}

int auth_hash_verify(const char *hash, const char *pass)
{
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    char *out = crypt_rn(pass, hash, cd, (int)sizeof *cd);
    int ok = out != NULL && out[0] != '*' && auth_ct_equal(out, hash);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok;
}

static void auth_pending_free(struct auth_pending *p)
{
    struct auth *a = p->a;
    if (p->timer)
        event_free(p->timer);
    explicit_bzero(p, sizeof *p);
    free(p);
    auth_unref(a);
}

/* Pool thread: the expensive part. Touches only p. */
static void auth_work(void *arg)
{
    struct auth_pending *p = arg;
    if (p->a->keeper) {
        enum keeper_status st = keeper_client_password(p->a->keeper, p->user, p->pass);
        p->result = st == KEEPER_ST_OK ? AUTH_OK : st == KEEPER_ST_NO ? AUTH_FAIL : AUTH_TEMPFAIL;
        explicit_bzero(p->pass, sizeof p->pass);
        return;
    }
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    errno = 0;
    char *out = crypt_rn(p->pass, p->hash, cd, (int)sizeof *cd);
    if (out == NULL || out[0] == '*')
        p->result = p->known && errno == ENOMEM ? AUTH_TEMPFAIL : AUTH_FAIL;
    else
        p->result = auth_ct_equal(out, p->hash) && p->known ? AUTH_OK : AUTH_FAIL;
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    explicit_bzero(p->pass, sizeof p->pass);
}

/* Loop thread: record the outcome and answer. */
static void auth_work_done(void *arg)
{
    struct auth_pending *p = arg;
    if (!p->cancelled) {
        if (p->result == AUTH_FAIL)
            auth_throttle_failed(p->a->throttle, p->addr, now_ms());
        p->done(p->arg, p->result);
    }
    auth_pending_free(p);
}

static void auth_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct auth_pending *p = arg;
    if (p->decided) {
        void (*done)(void *, enum auth_result) = p->done;
        void *darg = p->arg;
        enum auth_result r = p->result;
        auth_pending_free(p);
        done(darg, r);
        return;
    }
    p->state = AUTH_P_WORKING;
    workq_submit(p->a->workq, auth_work, auth_work_done, p);
}

struct auth_pending *auth_check(struct auth *a, const char *user, const char *pass,
                                const char *client_addr,
                                void (*done)(void *arg, enum auth_result result), void *arg)
{
    struct auth_pending *p = xcalloc(1, sizeof *p);
    a->refs++;
    p->a = a;
    p->done = done;
    p->arg = arg;
    str_copy(p->addr, sizeof p->addr, client_addr ? client_addr : "unknown");

    const struct auth_user *u = auth_find(a, user);
    size_t plen = strlen(pass);
    if (u && plen <= AUTH_PASS_MAX) {
        p->known = 1;
        str_copy(p->hash, sizeof p->hash, u->hash);
    } else {
        /* Same work for an unknown user (or an overlong password): hash against the dummy. */
        str_copy(p->hash, sizeof p->hash, a->dummy);
    }
    str_copy(p->pass, sizeof p->pass, pass);
    str_copy(p->user, sizeof p->user, user);

    long long wait = auth_throttle_wait(a->throttle, p->addr, now_ms());
    if (wait == -2 && !a->throttle->global_over)
        log_warning("AUTH failures from all clients reached smtpd_sasl_global_failure_limit (%u "
                    "within smtpd_sasl_failure_window); AUTH answers 454 until they fall below",
                    a->throttle->global_limit);
    a->throttle->global_over = wait == -2;
    if (wait < 0) {
        /* Per address: refused and closed. For everyone: a temporary failure, retried later. */
        p->decided = 1;
        p->result = wait == -1 ? AUTH_REFUSED : AUTH_TEMPFAIL;
        explicit_bzero(p->pass, sizeof p->pass);
        wait = 0;
    }
    p->state = AUTH_P_WAITING;
    p->timer = evtimer_new(a->base, auth_timer_cb, p);
    if (p->timer == NULL)
        xalloc_die("evtimer_new");
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(p->timer, &tv);
    return p;
}

void auth_cancel(struct auth_pending *p)
{
    if (p == NULL)
        return;
    if (p->state == AUTH_P_WORKING) {
        /* The pool owns it now; auth_work_done frees it without answering. */
        p->cancelled = 1;
        return;
    }
    auth_pending_free(p);
}

const char *auth_result_reply(enum auth_result r)
{
    switch (r) {
    case AUTH_OK:
        return "235 2.7.0 Authentication successful";
    case AUTH_FAIL:
        return "535 5.7.8 Authentication credentials invalid";
    case AUTH_REFUSED:
        return "421 4.7.0 Too many failed authentication attempts from your address; try again "
               "later";
    case AUTH_TEMPFAIL:
        return "454 4.7.0 Temporary authentication failure";
    }
    return "454 4.7.0 Temporary authentication failure";
}

/* Remote input in the log: printable ASCII only, at most 64 characters. */
static void auth_printable(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < size && o < 64; p++)
        out[o++] = (*p > ' ' && *p < 0x7f) ? (char)*p : '?';
    out[o] = '\0';
}

void auth_log_failure(const char *client, const char *mech, const char *user, enum auth_result r)
{
    char safe[80];
    auth_printable(user ? user : "", safe, sizeof safe);
    const char *why = r == AUTH_REFUSED    ? "too many failures from this address"
                      : r == AUTH_TEMPFAIL ? "temporary failure"
                                           : "authentication failure";
    log_warning("%s: SASL %s authentication failed: %s, sasl_username=%s", client, mech, why, safe);
}
