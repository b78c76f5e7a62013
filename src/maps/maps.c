/*
 * Lookup tables (see maps.h): texthash and inline tables held sorted in
 * memory, hash/lmdb tables read from an LMDB file built by map_build. A
 * compiled file is replaced by rename, never written in place, so readers
 * open it MDB_RDONLY|MDB_NOLOCK and keep the old inode until they notice the
 * new one (a stat at most once per second).
 */
#include "maps/maps.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_fd.h"
#include "maps/map_pgsql.h"
#include "maps/map_text.h"

/* Where the compiled file records which syntax built it; no text key starts with NUL. */
static const char map_format_key[] = "\0hongyan-syntax";
#define MAP_FORMAT_KEYLEN (sizeof map_format_key - 1)
#define MAP_RECHECK_MS 1000
/* The largest compiled table copied into memory from a supervisor's descriptor. */
#define MAP_LMDB_COPY_MAX (256u * 1024 * 1024)

enum map_type {
    MAP_TYPE_TEXTHASH,
    MAP_TYPE_INLINE,
    MAP_TYPE_LMDB, /* hash: and lmdb: */
    MAP_TYPE_PGSQL,
};

struct map {
    enum map_type type;
    char *spec;
    char *source;            /* text source (texthash, hash, lmdb) */
    char *dbpath;            /* FILE.lmdb */
    struct map_entries ents; /* texthash/inline: sorted by key, first of duplicates kept */

    /* LMDB state, guarded by mu so that lookups are thread-safe. */
    pthread_mutex_t mu;
    MDB_env *env;
    MDB_dbi dbi;
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    uint64_t checked_ms; /* 0: never checked */
    int usable;
    struct buf why;       /* when !usable */
    int syntax;           /* MAP_SYNTAX_*, from the compiled file */
    struct map_pgsql *pg; /* pgsql: (map_pgsql.h) */

    /* hash:/lmdb: whose FILE.lmdb the supervisor opened (map_fd.h). */
    int from_supervisor;
    int fd;       /* our descriptor of it, or -1 */
    int fd_error; /* when fd is -1: why the supervisor could not open it */
    int newer_noted;
};

struct map_list {
    struct map **maps;
    size_t count;
};

static int map_entry_cmp(const void *a, const void *b)
{
    const struct map_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Sorts by key and drops later duplicates (Postfix keeps the first entry). */
static void map_entries_index(struct map_entries *e, const char *name)
{
    if (e->count == 0)
        return;
    /* Inline entries all have line 0: number them so the first still wins. */
    for (size_t i = 0; i < e->count; i++)
        if (e->items[i].line == 0)
            e->items[i].line = -(int)(e->count - i);
    qsort(e->items, e->count, sizeof *e->items, map_entry_cmp);
    size_t w = 1;
    for (size_t i = 1; i < e->count; i++) {
        if (strcmp(e->items[i].key, e->items[w - 1].key) == 0) {
            if (e->items[i].line > 0)
                log_warning("%s:%d: duplicate entry \"%s\" ignored", name, e->items[i].line,
                            e->items[i].key);
            free(e->items[i].key);
            free(e->items[i].value);
            continue;
        }
        e->items[w++] = e->items[i];
    }
    e->count = w;
}

static const char *map_entries_find(const struct map_entries *e, const char *key)
{
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, e->items[mid].key);
        if (c == 0)
            return e->items[mid].value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int map_read_source(const char *path, struct buf *text, struct buf *err)
{
    if (map_fd_read_file(path, text, MAP_TEXT_MAX) < 0) {
        buf_printf(err, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Splits "type:name"; 0 or -1 with err. */
static int map_split_spec(const char *spec, enum map_type *type, const char **name, struct buf *err)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL) {
        buf_printf(err, "%s: table must be written TYPE:NAME (hash, lmdb, texthash, inline, pgsql)",
                   spec);
        return -1;
    }
    size_t tn = (size_t)(colon - spec);
    if (tn == 8 && strncmp(spec, "texthash", tn) == 0)
        *type = MAP_TYPE_TEXTHASH;
    else if (tn == 6 && strncmp(spec, "inline", tn) == 0)
        *type = MAP_TYPE_INLINE;
    else if (tn == 5 && strncmp(spec, "pgsql", tn) == 0)
        *type = MAP_TYPE_PGSQL;
    else if ((tn == 4 && strncmp(spec, "hash", tn) == 0) ||
             (tn == 4 && strncmp(spec, "lmdb", tn) == 0))
        *type = MAP_TYPE_LMDB;
    else {
        buf_printf(err, "%s: unsupported table type '%.*s' (hash, lmdb, texthash, inline, pgsql)",
                   spec, (int)tn, spec);
        return -1;
    }
    *name = colon + 1;
    if (**name == '\0') {
        buf_printf(err, "%s: table name missing after '%.*s:'", spec, (int)tn, spec);
        return -1;
    }
    return 0;
}

struct map *map_open(const char *spec, struct buf *err)
{
    enum map_type type;
    const char *name;
    if (map_split_spec(spec, &type, &name, err) < 0)
        return NULL;
    struct map *m = xcalloc(1, sizeof *m);
    m->type = type;
    m->spec = xstrdup(spec);
    m->fd = -1;
    pthread_mutex_init(&m->mu, NULL);
    buf_init(&m->why);
    if (type == MAP_TYPE_INLINE) {
        struct buf e = BUF_INIT;
        if (map_parse_inline(name, &m->ents, &e) < 0) {
            buf_printf(err, "%s: %s", spec, buf_cstr(&e));
            buf_free(&e);
            map_free(m);
            return NULL;
        }
        buf_free(&e);
        map_entries_index(&m->ents, spec);
        return m;
    }
    m->source = xstrdup(name);
    if (type == MAP_TYPE_PGSQL) {
        m->pg = map_pgsql_open(name, err);
        if (m->pg == NULL) {
            map_free(m);
            return NULL;
        }
        return m;
    }
    if (type == MAP_TYPE_TEXTHASH) {
        /* Read once, at open: lookups never touch the file (reload reopens). */
        struct buf text = BUF_INIT;
        if (map_read_source(name, &text, err) < 0 ||
            map_parse_text(text.data ? text.data : "", text.len, name, MAP_SYNTAX_POSTMAP, &m->ents,
                           err) < 0) {
            buf_free(&text);
            map_free(m);
            return NULL;
        }
        buf_free(&text);
        map_entries_index(&m->ents, name);
        return m;
    }
    m->dbpath = xasprintf("%s.lmdb", name);
    if (map_fd_get(m->dbpath, &m->fd)) {
        m->from_supervisor = 1;
        m->fd_error = m->fd < 0 ? errno : 0;
    }
    return m;
}

static void map_lmdb_close(struct map *m)
{
    if (m->env)
        mdb_env_close(m->env);
    m->env = NULL;
}

static void map_lmdb_fail(struct map *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void map_lmdb_fail(struct map *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_reset(&m->why);
    buf_vprintf(&m->why, fmt, ap);
    va_end(ap);
    m->usable = 0;
    map_lmdb_close(m);
}

static int map_ts_newer(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* The command that rebuilds this table, for messages: "hongyan aliases" or "hongyan map build
 * SPEC". */
static char *map_rebuild_hint(const struct map *m)
{
    if (m->syntax == MAP_SYNTAX_ALIASES)
        return xstrdup("hongyan aliases");
    return xasprintf("hongyan map build %s", m->spec);
}

/* Opens the LMDB file at path read-only and reads which syntax built it; 0 or an MDB error. */
static int map_lmdb_open_env(struct map *m, const char *path)
{
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&m->env);
    if (rc == 0)
        rc = mdb_env_open(m->env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644);
    if (rc == 0)
        rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &m->dbi);
    if (rc == 0) {
        MDB_val k = {MAP_FORMAT_KEYLEN, (void *)map_format_key}, v;
        m->syntax = MAP_SYNTAX_POSTMAP;
        if (mdb_get(txn, m->dbi, &k, &v) == 0 && v.mv_size == 7 &&
            memcmp(v.mv_data, "aliases", 7) == 0)
            m->syntax = MAP_SYNTAX_ALIASES;
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/*
 * A compiled table older than its source is reported, never silently used:
 * 1 when it was. built is when the compiled file was written.
 */
static int map_lmdb_stale(struct map *m, const struct timespec *built)
{
    struct stat src;
    if (stat(m->source, &src) == 0 && map_ts_newer(&src.st_mtim, built)) {
        char *hint = map_rebuild_hint(m);
        map_lmdb_fail(m, "%s: %s is older than %s; run `%s`", m->spec, m->dbpath, m->source, hint);
        free(hint);
        return 1;
    }
    return 0;
}

/*
 * When the registry holds a descriptor of the file now at dbpath (the
 * supervisor sent it after a rebuild), takes it in place of ours: 1, with
 * the old table closed so that the next refresh opens the new one.
 */
static int map_lmdb_adopt_newer(struct map *m, const struct stat *on_disk)
{
    int fd;
    struct stat st;
    if (!map_fd_get(m->dbpath, &fd) || fd < 0)
        return 0;
    if (fstat(fd, &st) < 0 || st.st_dev != on_disk->st_dev || st.st_ino != on_disk->st_ino) {
        close(fd);
        return 0;
    }
    close(m->fd);
    m->fd = fd;
    m->newer_noted = 0;
    map_lmdb_close(m);
    log_info("%s: %s: the rebuilt table is in use", m->spec, m->dbpath);
    return 1;
}

/*
 * The same for a table the supervisor opened (map_fd.h): the descriptor is
 * the file, copied once into memory of our own for LMDB, which opens by
 * name. A rebuild renames a new file into place: the supervisor notices
 * (daemon/mapfd.c) and sends a descriptor of it, which the next refresh
 * takes (map_lmdb_adopt_newer), as Postfix's daemons notice a changed table
 * and restart; meanwhile the table answers from the file it has.
 */
static void map_lmdb_refresh_fd(struct map *m)
{
    if (m->fd < 0) {
        if (m->fd_error == ENOENT)
            map_lmdb_fail(m, "%s: %s: %s; run `hongyan map build %s` and reload", m->spec,
                          m->dbpath, strerror(ENOENT), m->spec);
        else
            map_lmdb_fail(m, "%s: %s: %s (opened by the master as root, which logged why)", m->spec,
                          m->dbpath, strerror(m->fd_error));
        return;
    }
    if (m->env == NULL) {
        struct stat db;
        int copy = fstat(m->fd, &db) < 0 ? -1 : map_fd_private_copy(m->fd, MAP_LMDB_COPY_MAX);
        if (copy < 0) {
            map_lmdb_fail(m, "%s: cannot read %s: %s", m->spec, m->dbpath, strerror(errno));
            return;
        }
        char proc_path[64];
        snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", copy);
        int rc = map_lmdb_open_env(m, proc_path);
        close(copy); /* LMDB holds its own descriptor of the copy */
        if (rc != 0) {
            map_lmdb_fail(m, "%s: cannot open %s: %s", m->spec, m->dbpath, mdb_strerror(rc));
            return;
        }
        m->dev = db.st_dev;
        m->ino = db.st_ino;
        m->mtim = db.st_mtim;
    }
    /*
     * Stale is judged against the compiled file now in place: a source
     * rebuilt since the master opened ours is not a stale table, it is a
     * newer one waiting for the reload.
     */
    struct stat now;
    struct timespec built = m->mtim;
    int on_disk = stat(m->dbpath, &now) == 0;
    if (on_disk)
        built = now.st_mtim;
    if (on_disk && (now.st_dev != m->dev || now.st_ino != m->ino)) {
        /* A rebuild: the newer descriptor, when the supervisor has sent it. */
        if (map_lmdb_adopt_newer(m, &now)) {
            map_lmdb_refresh_fd(m);
            return;
        }
        if (!m->newer_noted)
            log_info("%s: %s was rebuilt; the old table answers until the master has opened the "
                     "new one",
                     m->spec, m->dbpath);
        m->newer_noted = 1;
    }
    if (!map_lmdb_stale(m, &built))
        m->usable = 1;
}

/*
 * Brings the LMDB handle up to date: opens the compiled file, reopens it
 * when a rebuild renamed a new one into place, and refuses it when the text
 * source is newer. Called under mu; does real work at most once a second.
 */
static void map_lmdb_refresh(struct map *m)
{
    uint64_t now = now_ms();
    if (m->checked_ms && now - m->checked_ms < MAP_RECHECK_MS)
        return;
    m->checked_ms = now ? now : 1;
    if (m->from_supervisor) {
        map_lmdb_refresh_fd(m);
        return;
    }
    struct stat db;
    if (stat(m->dbpath, &db) < 0) {
        map_lmdb_fail(m,
                      "%s: %s: %s; run `hongyan map build %s` (or `hongyan aliases` for an "
                      "alias table)",
                      m->spec, m->dbpath, strerror(errno), m->spec);
        return;
    }
    if (m->env == NULL || db.st_dev != m->dev || db.st_ino != m->ino ||
        map_ts_newer(&db.st_mtim, &m->mtim) || map_ts_newer(&m->mtim, &db.st_mtim)) {
        map_lmdb_close(m);
        int rc = map_lmdb_open_env(m, m->dbpath);
        int fd;
        struct stat st;
        if (rc == 0 && mdb_env_get_fd(m->env, &fd) == 0 && fstat(fd, &st) == 0)
            db = st; /* what we actually opened, in case of a rename in between */
        if (rc != 0) {
            map_lmdb_fail(m, "%s: cannot open %s: %s", m->spec, m->dbpath, mdb_strerror(rc));
            return;
        }
        m->dev = db.st_dev;
        m->ino = db.st_ino;
        m->mtim = db.st_mtim;
    }
    if (!map_lmdb_stale(m, &m->mtim))
        m->usable = 1;
}

static enum map_result map_lmdb_lookup(struct map *m, const char *key, struct buf *value,
                                       struct buf *err)
{
    enum map_result res;
    pthread_mutex_lock(&m->mu);
    map_lmdb_refresh(m);
    if (!m->usable) {
        buf_set(err, buf_cstr(&m->why));
        pthread_mutex_unlock(&m->mu);
        return MAP_TEMPFAIL;
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        buf_printf(err, "%s: %s: %s", m->spec, m->dbpath, mdb_strerror(rc));
        m->checked_ms = 0; /* try a fresh open next time */
        pthread_mutex_unlock(&m->mu);
        return MAP_TEMPFAIL;
    }
    MDB_val k = {strlen(key), (void *)key}, v;
    rc = mdb_get(txn, m->dbi, &k, &v);
    if (rc == 0) {
        buf_reset(value);
        buf_append(value, v.mv_data, v.mv_size);
        res = MAP_FOUND;
    } else if (rc == MDB_NOTFOUND) {
        res = MAP_NOTFOUND;
    } else {
        buf_printf(err, "%s: %s: %s", m->spec, m->dbpath, mdb_strerror(rc));
        res = MAP_TEMPFAIL;
    }
    mdb_txn_abort(txn);
    pthread_mutex_unlock(&m->mu);
    return res;
}

enum map_result map_lookup(struct map *m, const char *key, struct buf *value, struct buf *err)
{
    size_t n = strlen(key);
    if (n == 0 || n > MAP_KEY_MAX)
        return MAP_NOTFOUND; /* no table can hold such a key */
    char *folded = xstrdup(key);
    str_lower(folded);
    enum map_result res;
    if (m->type == MAP_TYPE_LMDB) {
        res = map_lmdb_lookup(m, folded, value, err);
    } else if (m->type == MAP_TYPE_PGSQL) {
        res = map_pgsql_lookup(m->pg, folded, value, err);
    } else {
        const char *v = map_entries_find(&m->ents, folded);
        res = v ? MAP_FOUND : MAP_NOTFOUND;
        if (v)
            buf_set(value, v);
    }
    free(folded);
    return res;
}

void map_free(struct map *m)
{
    if (m == NULL)
        return;
    map_lmdb_close(m);
    if (m->fd >= 0)
        close(m->fd);
    map_pgsql_free(m->pg);
    map_entries_free(&m->ents);
    pthread_mutex_destroy(&m->mu);
    buf_free(&m->why);
    free(m->spec);
    free(m->source);
    free(m->dbpath);
    free(m);
}

struct map_list *map_list_open(const char *specs, struct buf *err)
{
    size_t n = 0;
    char **items = strlist_split(specs, &n);
    struct map_list *l = xcalloc(1, sizeof *l);
    l->maps = xcalloc(n ? n : 1, sizeof *l->maps);
    for (size_t i = 0; i < n; i++) {
        l->maps[i] = map_open(items[i], err);
        if (l->maps[i] == NULL) {
            strlist_free(items);
            map_list_free(l);
            return NULL;
        }
        l->count++;
    }
    strlist_free(items);
    return l;
}

int map_list_check(const char *specs, struct buf *err)
{
    size_t n = 0;
    char **items = strlist_split(specs, &n);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        enum map_type type;
        const char *name;
        rc = map_split_spec(items[i], &type, &name, err);
    }
    strlist_free(items);
    return rc;
}

char **map_list_files(const char *specs, size_t *count)
{
    size_t n = 0, k = 0;
    char **items = strlist_split(specs, &n);
    char **files = xcalloc(n + 1, sizeof *files);
    for (size_t i = 0; i < n; i++) {
        enum map_type type;
        const char *name;
        struct buf err = BUF_INIT;
        int ok = map_split_spec(items[i], &type, &name, &err) == 0;
        buf_free(&err);
        if (!ok || type == MAP_TYPE_INLINE)
            continue;
        files[k++] = type == MAP_TYPE_LMDB ? xasprintf("%s.lmdb", name) : xstrdup(name);
    }
    strlist_free(items);
    if (count)
        *count = k;
    return files;
}

/* Postfix semantics: the first table with the key wins; a table that cannot answer stops the
 * search. */
enum map_result map_list_lookup(struct map_list *l, const char *key, struct buf *value,
                                struct buf *err)
{
    for (size_t i = 0; l && i < l->count; i++) {
        enum map_result r = map_lookup(l->maps[i], key, value, err);
        if (r != MAP_NOTFOUND)
            return r;
    }
    return MAP_NOTFOUND;
}

int map_may_block(const struct map *m)
{
    return m != NULL && m->type == MAP_TYPE_PGSQL;
}

int map_list_may_block(const struct map_list *l)
{
    for (size_t i = 0; l && i < l->count; i++)
        if (map_may_block(l->maps[i]))
            return 1;
    return 0;
}

int map_list_empty(const struct map_list *l)
{
    return l == NULL || l->count == 0;
}

void map_list_free(struct map_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        map_free(l->maps[i]);
    free(l->maps);
    free(l);
}

/* Writes entries into a fresh LMDB file at tmp; 0, or an MDB error code. */
static int map_lmdb_write(const char *tmp, const struct map_entries *e, enum map_syntax syn,
                          size_t mapsize, const char *source)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(env, mapsize);
    /* Private temp file: no lock needed; one explicit sync before the rename. */
    if (rc == 0)
        rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (rc == 0) {
        const char *fmt = syn == MAP_SYNTAX_ALIASES ? "aliases" : "postmap";
        MDB_val k = {MAP_FORMAT_KEYLEN, (void *)map_format_key}, v = {7, (void *)fmt};
        rc = mdb_put(txn, dbi, &k, &v, 0);
    }
    for (size_t i = 0; rc == 0 && i < e->count; i++) {
        MDB_val k = {strlen(e->items[i].key), e->items[i].key};
        MDB_val v = {strlen(e->items[i].value), e->items[i].value};
        rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            log_warning("%s:%d: duplicate entry \"%s\" ignored", source, e->items[i].line,
                        e->items[i].key);
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    if (env)
        mdb_env_close(env);
    return rc;
}

int map_build_syntax(const char *spec, enum map_syntax syn, struct buf *err)
{
    enum map_type type;
    const char *name;
    if (map_split_spec(spec, &type, &name, err) < 0)
        return EX_USAGE;
    if (type != MAP_TYPE_LMDB) {
        buf_printf(err, "%s: only hash: and lmdb: tables are compiled; this one is read as is",
                   spec);
        return EX_USAGE;
    }
    struct buf text = BUF_INIT;
    struct map_entries ents = {0};
    if (map_read_source(name, &text, err) < 0) {
        buf_free(&text);
        return EX_NOINPUT;
    }
    if (map_parse_text(text.data ? text.data : "", text.len, name, syn, &ents, err) < 0) {
        buf_free(&text);
        return EX_DATAERR;
    }
    size_t total = 0;
    for (size_t i = 0; i < ents.count; i++)
        total += strlen(ents.items[i].key) + strlen(ents.items[i].value) + 64;
    buf_free(&text);

    /*
     * The compiled table holds what the source holds (sasl_passwd has the
     * relay's passwords), so it gets the source's owner, group and mode, as
     * postmap does. The temp file is made O_EXCL|O_NOFOLLOW with those ids
     * before LMDB writes a byte, and LMDB opens that very inode through
     * /proc/self/fd, so nothing planted under the temp name is ever used.
     */
    struct stat src_st;
    if (stat(name, &src_st) < 0) {
        buf_printf(err, "%s: %s: %s", spec, name, strerror(errno));
        map_entries_free(&ents);
        return EX_NOINPUT;
    }
    char *dbpath = xasprintf("%s.lmdb", name);
    const char *dbname;
    char *dir = path_split(dbpath, &dbname);
    char tmp[4096] = "";
    int ret = 0;
    int tmp_fd = -1;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        buf_printf(err, "%s: cannot open directory %s: %s", spec, dir, strerror(errno));
        ret = EX_CANTCREAT;
        goto out;
    }
    /* Grow the map until the table fits: entries carry page overhead LMDB does not predict. */
    size_t mapsize = (total * 3 + 4 * 1024 * 1024 + 4095) & ~(size_t)4095;
    int rc = MDB_MAP_FULL;
    for (int tries = 0; tries < 8 && rc == MDB_MAP_FULL; tries++, mapsize *= 2) {
        if (tmp_fd >= 0) {
            close(tmp_fd);
            unlinkat(dirfd, tmp, 0);
        }
        tmp_fd = safedir_create_temp(dirfd, dbname, src_st.st_mode & 0666, tmp, sizeof tmp);
        if (tmp_fd < 0)
            tmp[0] = '\0'; /* not ours: never unlink it */
        if (tmp_fd < 0 || (geteuid() == 0 && fchown(tmp_fd, src_st.st_uid, src_st.st_gid) < 0) ||
            fchmod(tmp_fd, src_st.st_mode & 0666) < 0) {
            buf_printf(err, "%s: cannot create a temp file in %s: %s", spec, dir, strerror(errno));
            ret = EX_CANTCREAT;
            goto out;
        }
        char proc_path[64];
        snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", tmp_fd);
        rc = map_lmdb_write(proc_path, &ents, syn, mapsize, name);
    }
    if (rc != 0) {
        buf_printf(err, "%s: cannot write %s/%s: %s", spec, dir, tmp, mdb_strerror(rc));
        ret = EX_CANTCREAT;
        goto out;
    }
    if (renameat(dirfd, tmp, dirfd, dbname) < 0) {
        buf_printf(err, "%s: cannot rename %s/%s to %s: %s", spec, dir, tmp, dbpath,
                   strerror(errno));
        ret = EX_IOERR;
        goto out;
    }
    tmp[0] = '\0';
    if (fsync(dirfd) < 0) {
        buf_printf(err, "%s: cannot sync directory %s: %s", spec, dir, strerror(errno));
        ret = EX_IOERR;
    }
out:
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (tmp[0] != '\0' && dirfd >= 0)
        unlinkat(dirfd, tmp, 0);
    if (dirfd >= 0)
        close(dirfd);
    free(dir);
    free(dbpath);
    map_entries_free(&ents);
    return ret;
}

int map_build(const char *spec, struct buf *err)
{
    return map_build_syntax(spec, MAP_SYNTAX_POSTMAP, err) == 0 ? 0 : -1;
}
