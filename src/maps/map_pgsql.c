/*
 * pgsql: tables (map_pgsql.h). Every wait on the database is bounded by
 * the table's timeout: libpq's non-blocking connect (PQconnectStartParams
 * and PQconnectPoll) and PQsendQueryParams with poll(2) on its socket.
 * Key material reaches SQL only through PQescapeStringConn, so an address
 * like x'or'1'='1@example.com is just a key that is not in the table.
 */
#include "maps/map_pgsql.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_fd.h"

#define MAP_PGSQL_FILE_MAX (64 * 1024)
#define MAP_PGSQL_TIMEOUT_DEFAULT 5
/* Connections per table: one per work-queue thread, so one slow query does not hold up the rest. */
#define MAP_PGSQL_POOL 4

struct map_pgsql {
    char *path;
    char **hosts; /* as written: host, host:port, unix:/path, inet:host:port */
    size_t nhosts, next_host;
    char *user, *password, *dbname, *query, *result_format;
    char **domains;
    size_t ndomains;
    long expansion_limit;
    int timeout; /* seconds, for connecting and for each query */
    /* The pool: a lookup takes a free connection under mu, and runs without holding mu. */
    pthread_mutex_t mu;
    pthread_cond_t freed;
    PGconn *conns[MAP_PGSQL_POOL]; /* NULL: connect when taken */
    int busy[MAP_PGSQL_POOL];
};

static uint64_t map_pgsql_deadline(const struct map_pgsql *t)
{
    return now_ms() + (uint64_t)t->timeout * 1000u;
}

/* Waits for fd to be readable or writable until deadline; 1 ready, 0 timed out, -1 error. */
static int map_pgsql_wait(int fd, int for_write, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = for_write ? POLLOUT : POLLIN};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static void map_pgsql_drop(PGconn **conn)
{
    if (*conn)
        PQfinish(*conn);
    *conn = NULL;
}

/*
 * libpq's host and port (or socket directory) from one hosts entry; 0, or
 * -1 when a part does not fit its buffer (a cut name would be another host).
 */
static int map_pgsql_host_params(const char *entry, char *host, size_t hostlen, char *port,
                                 size_t portlen)
{
    port[0] = '\0';
    if (strncmp(entry, "unix:", 5) == 0) {
        /* Postfix names the socket file; libpq wants its directory and the port in its name. */
        const char *path = entry + 5;
        const char *slash = strrchr(path, '/');
        const char *dot = strstr(path, ".s.PGSQL.");
        if (str_copy(host, hostlen, path) >= hostlen)
            return -1;
        if (slash && dot && dot == slash + 1) {
            size_t n = (size_t)(slash - path);
            host[n ? n : 1] = '\0'; /* n < strlen(path) < hostlen */
            if (str_copy(port, portlen, dot + 9) >= portlen)
                return -1;
        }
        return 0;
    }
    if (strncmp(entry, "inet:", 5) == 0)
        entry += 5;
    if (str_copy(host, hostlen, entry) >= hostlen)
        return -1;
    char *colon = strrchr(host, ':');
    if (colon && strchr(host, ':') == colon) {
        *colon = '\0';
        if (str_copy(port, portlen, colon + 1) >= portlen)
            return -1;
    }
    return 0;
}

static PGconn *map_pgsql_connect_one(struct map_pgsql *t, const char *entry, struct buf *why)
{
    char host[512], port[32], timeout[16];
    if (map_pgsql_host_params(entry, host, sizeof host, port, sizeof port) < 0) {
        buf_printf(why, "%s: host name or port too long", entry);
        return NULL;
    }
    snprintf(timeout, sizeof timeout, "%d", t->timeout);
    const char *keys[8], *vals[8];
    int n = 0;
    keys[n] = "host", vals[n++] = host;
    if (port[0])
        keys[n] = "port", vals[n++] = port;
    if (t->user)
        keys[n] = "user", vals[n++] = t->user;
    if (t->password)
        keys[n] = "password", vals[n++] = t->password;
    if (t->dbname)
        keys[n] = "dbname", vals[n++] = t->dbname;
    keys[n] = "connect_timeout", vals[n++] = timeout;
    keys[n] = NULL, vals[n] = NULL;
    PGconn *c = PQconnectStartParams(keys, vals, 0);
    if (c == NULL || PQstatus(c) == CONNECTION_BAD) {
        buf_printf(why, "%s: %s", entry, c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    uint64_t deadline = map_pgsql_deadline(t);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            buf_printf(why, "%s: %s", entry, PQerrorMessage(c));
            PQfinish(c);
            return NULL;
        }
        int w = map_pgsql_wait(PQsocket(c), st == PGRES_POLLING_WRITING, deadline);
        if (w <= 0) {
            buf_printf(why, "%s: %s", entry, w == 0 ? "connection timed out" : strerror(errno));
            PQfinish(c);
            return NULL;
        }
        st = PQconnectPoll(c);
    }
    if (PQsetnonblocking(c, 1) != 0) {
        buf_printf(why, "%s: cannot make the connection non-blocking", entry);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Tries the hosts in turn, starting after the last that failed. */
static int map_pgsql_connect(struct map_pgsql *t, PGconn **conn, struct buf *err)
{
    struct buf why = BUF_INIT;
    for (size_t k = 0; k < t->nhosts; k++) {
        size_t i = (__atomic_load_n(&t->next_host, __ATOMIC_RELAXED) + k) % t->nhosts;
        if (why.len)
            buf_puts(&why, "; ");
        *conn = map_pgsql_connect_one(t, t->hosts[i], &why);
        if (*conn) {
            __atomic_store_n(&t->next_host, i, __ATOMIC_RELAXED);
            buf_free(&why);
            return 0;
        }
        /* Trailing newline of libpq messages out of the log line. */
        while (why.len && (why.data[why.len - 1] == '\n' || why.data[why.len - 1] == ' '))
            buf_truncate(&why, why.len - 1);
    }
    buf_printf(err, "%s: cannot connect to the database: %s", t->path, buf_cstr(&why));
    buf_free(&why);
    return -1;
}

static void map_pgsql_quote(void *ctx, const char *in, struct buf *out)
{
    PGconn *c = ctx;
    size_t n = strlen(in);
    char *esc = xmalloc(2 * n + 1);
    int error = 0;
    size_t m = PQescapeStringConn(c, esc, in, n, &error);
    /* An invalid multibyte sequence comes back as an empty string: never the raw input. */
    buf_append(out, esc, error ? 0 : m);
    free(esc);
}

/* Appends the part of s that %c names: s, u (local part), d (domain), 1-9 (domain labels). */
static int map_pgsql_part(char c, const char *s, struct buf *part)
{
    const char *at = strrchr(s, '@');
    switch (c) {
    case 's':
        buf_puts(part, s);
        return 0;
    case 'u':
        if (at)
            buf_append(part, s, (size_t)(at - s));
        else
            buf_puts(part, s);
        return 0;
    case 'd':
        if (at == NULL || at[1] == '\0')
            return 1;
        buf_puts(part, at + 1);
        return 0;
    default: {
        /* %1 is the top-level label, %2 the next one down, as Postfix. */
        if (at == NULL)
            return 1;
        const char *domain = at + 1;
        int want = c - '0';
        const char *end = domain + strlen(domain);
        for (int k = 1;; k++) {
            const char *dot = end;
            while (dot > domain && dot[-1] != '.')
                dot--;
            if (k == want) {
                if (dot == end)
                    return 1;
                buf_append(part, dot, (size_t)(end - dot));
                return 0;
            }
            if (dot == domain)
                return 1;
            end = dot - 1;
        }
    }
    }
}

int map_pgsql_expand(const char *tmpl, const char *value, const char *key, map_pgsql_quote_fn quote,
                     void *ctx, struct buf *out)
{
    struct buf part = BUF_INIT;
    int skip = 0;
    for (const char *p = tmpl; *p && !skip; p++) {
        if (*p != '%') {
            buf_putc(out, *p);
            continue;
        }
        char c = *++p;
        if (c == '\0')
            break;
        if (c == '%') {
            buf_putc(out, '%');
            continue;
        }
        const char *src = value;
        if (key && (c == 'S' || c == 'U' || c == 'D')) {
            src = key;
            c = (char)(c - 'A' + 'a');
        }
        if (c != 's' && c != 'u' && c != 'd' && !(c >= '1' && c <= '9')) {
            buf_putc(out, '%'); /* an unknown escape stays as written */
            buf_putc(out, c);
            continue;
        }
        buf_reset(&part);
        skip = map_pgsql_part(c, src, &part);
        if (skip)
            break;
        if (quote)
            quote(ctx, buf_cstr(&part), out);
        else
            buf_append(out, part.data, part.len);
    }
    buf_free(&part);
    return skip;
}

static int map_pgsql_domain_ok(const struct map_pgsql *t, const char *key)
{
    if (t->ndomains == 0)
        return 1;
    /* Postfix: only whole addresses with a non-empty local part in a listed domain. */
    const char *at = strrchr(key, '@');
    if (at == NULL || at == key)
        return 0;
    for (size_t i = 0; i < t->ndomains; i++)
        if (str_eq_ci(t->domains[i], at + 1))
            return 1;
    return 0;
}

/* Runs one query on c; NULL with err when it failed, else the last result. */
static PGresult *map_pgsql_run(struct map_pgsql *t, PGconn *c, const char *sql, struct buf *err)
{
    uint64_t deadline = map_pgsql_deadline(t);
    if (!PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        buf_printf(err, "%s: %s", t->path, PQerrorMessage(c));
        return NULL;
    }
    for (;;) {
        int flushed = PQflush(c);
        if (flushed < 0) {
            buf_printf(err, "%s: %s", t->path, PQerrorMessage(c));
            return NULL;
        }
        if (flushed == 0)
            break;
        if (map_pgsql_wait(PQsocket(c), 1, deadline) <= 0) {
            buf_printf(err, "%s: query timed out after %ds", t->path, t->timeout);
            return NULL;
        }
    }
    PGresult *res = NULL, *last = NULL;
    for (;;) {
        while (PQisBusy(c)) {
            int w = map_pgsql_wait(PQsocket(c), 0, deadline);
            if (w <= 0 || !PQconsumeInput(c)) {
                if (w == 0) {
                    /* Ask the server to stop, so a slow query does not hold it busy. */
                    PGcancel *cancel = PQgetCancel(c);
                    char e[256];
                    if (cancel) {
                        PQcancel(cancel, e, sizeof e);
                        PQfreeCancel(cancel);
                    }
                    buf_printf(err, "%s: query timed out after %ds", t->path, t->timeout);
                } else {
                    buf_printf(err, "%s: %s", t->path, PQerrorMessage(c));
                }
                PQclear(last);
                return NULL;
            }
        }
        res = PQgetResult(c);
        if (res == NULL)
            break;
        PQclear(last);
        last = res;
    }
    if (last == NULL)
        buf_printf(err, "%s: no result from the database", t->path);
    return last;
}

enum map_result map_pgsql_lookup(struct map_pgsql *t, const char *key, struct buf *value,
                                 struct buf *err)
{
    if (!map_pgsql_domain_ok(t, key))
        return MAP_NOTFOUND;
    /* Take a connection; all busy: wait for one, no longer than a query may take. */
    pthread_mutex_lock(&t->mu);
    int slot = -1;
    uint64_t deadline = map_pgsql_deadline(t);
    while (slot < 0) {
        for (int i = 0; i < MAP_PGSQL_POOL && slot < 0; i++)
            if (!t->busy[i] && t->conns[i])
                slot = i; /* an open connection first */
        for (int i = 0; i < MAP_PGSQL_POOL && slot < 0; i++)
            if (!t->busy[i])
                slot = i;
        if (slot >= 0)
            break;
        uint64_t now = now_ms();
        if (now >= deadline) {
            pthread_mutex_unlock(&t->mu);
            buf_printf(err, "%s: every connection busy for %ds", t->path, t->timeout);
            return MAP_TEMPFAIL;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t wait_ms = deadline - now;
        until.tv_sec += (time_t)(wait_ms / 1000);
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->freed, &t->mu, &until);
    }
    t->busy[slot] = 1;
    PGconn **conn = &t->conns[slot];
    pthread_mutex_unlock(&t->mu);
    enum map_result result = MAP_TEMPFAIL;
    struct buf sql = BUF_INIT, out = BUF_INIT;
    PGresult *res = NULL;
    /* A reused connection may have died with the server: one fresh try before giving up. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = *conn == NULL;
        if (fresh && map_pgsql_connect(t, conn, err) < 0)
            goto done;
        buf_reset(&sql);
        if (map_pgsql_expand(t->query, key, NULL, map_pgsql_quote, *conn, &sql)) {
            result = MAP_NOTFOUND; /* the query needs a part this key lacks */
            goto done;
        }
        struct buf why = BUF_INIT;
        res = map_pgsql_run(t, *conn, buf_cstr(&sql), &why);
        if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
            buf_printf(&why, "%s: query failed: %s", t->path, PQresultErrorMessage(res));
            PQclear(res);
            res = NULL;
        }
        if (res) {
            buf_free(&why);
            break;
        }
        int conn_lost = PQstatus(*conn) == CONNECTION_BAD;
        map_pgsql_drop(conn);
        if (fresh || !conn_lost || attempt == 1) {
            buf_puts(err, buf_cstr(&why));
            buf_free(&why);
            goto done;
        }
        buf_free(&why);
    }
    if (res == NULL)
        goto done;
    /* Every column of every row, through result_format, joined by commas (Postfix). */
    long count = 0;
    int rows = PQntuples(res), cols = PQnfields(res);
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            if (PQgetisnull(res, i, j))
                continue;
            const char *v = PQgetvalue(res, i, j);
            if (*v == '\0')
                continue;
            if (t->expansion_limit > 0 && ++count > t->expansion_limit) {
                buf_printf(err, "%s: more than expansion_limit = %ld results for %s", t->path,
                           t->expansion_limit, key);
                log_warning("%s", buf_cstr(err));
                goto done;
            }
            size_t mark = out.len;
            if (out.len)
                buf_putc(&out, ',');
            if (map_pgsql_expand(t->result_format, v, key, NULL, NULL, &out))
                buf_truncate(&out, mark);
        }
    }
    if (out.len) {
        buf_set(value, buf_cstr(&out));
        result = MAP_FOUND;
    } else {
        result = MAP_NOTFOUND;
    }
done:
    PQclear(res);
    /* A connection left mid-query cannot be reused. */
    if (result == MAP_TEMPFAIL && *conn && PQtransactionStatus(*conn) != PQTRANS_IDLE)
        map_pgsql_drop(conn);
    pthread_mutex_lock(&t->mu);
    t->busy[slot] = 0;
    pthread_cond_signal(&t->freed);
    pthread_mutex_unlock(&t->mu);
    buf_free(&sql);
    buf_free(&out);
    return result;
}

static int map_pgsql_set(struct map_pgsql *t, const char *key, const char *val, const char *path,
                         int line, struct buf *err)
{
    char **str = NULL;
    if (strcmp(key, "user") == 0)
        str = &t->user;
    else if (strcmp(key, "password") == 0)
        str = &t->password;
    else if (strcmp(key, "dbname") == 0)
        str = &t->dbname;
    else if (strcmp(key, "query") == 0)
        str = &t->query;
    else if (strcmp(key, "result_format") == 0)
        str = &t->result_format;
    if (str) {
        free(*str);
        *str = xstrdup(val);
        return 0;
    }
    if (strcmp(key, "hosts") == 0) {
        strlist_free(t->hosts);
        t->hosts = strlist_split(val, &t->nhosts);
        return 0;
    }
    if (strcmp(key, "domain") == 0) {
        strlist_free(t->domains);
        t->domains = strlist_split(val, &t->ndomains);
        return 0;
    }
    if (strcmp(key, "expansion_limit") == 0 || strcmp(key, "timeout") == 0) {
        char *end;
        long v = strtol(val, &end, 10);
        if (*val == '\0' || *end != '\0' || v < 0 || v > 100000 ||
            (strcmp(key, "timeout") == 0 && v == 0)) {
            buf_printf(err, "%s:%d: %s: '%s' is not a valid number", path, line, key, val);
            return -1;
        }
        if (key[0] == 'e')
            t->expansion_limit = v;
        else
            t->timeout = (int)v;
        return 0;
    }
    /* The pre-2.2 select_field/table/where_field form is not supported: say so. */
    buf_printf(err, "%s:%d: unknown pgsql_table(5) parameter '%s'", path, line, key);
    return -1;
}

struct map_pgsql *map_pgsql_open(const char *path, struct buf *err)
{
    struct buf text = BUF_INIT;
    /* The supervisor's descriptor when it opened the file for us (it holds the password). */
    if (map_fd_read_file(path, &text, MAP_PGSQL_FILE_MAX) < 0) {
        buf_printf(err, "%s: cannot read: %s", path, strerror(errno));
        buf_free(&text);
        return NULL;
    }
    struct map_pgsql *t = map_pgsql_parse(path, buf_cstr(&text), err);
    explicit_bzero(text.data, text.len); /* it holds the password */
    buf_free(&text);
    return t;
}

struct map_pgsql *map_pgsql_parse(const char *path, const char *text, struct buf *err)
{
    struct map_pgsql *t = xcalloc(1, sizeof *t);
    t->path = xstrdup(path);
    t->timeout = MAP_PGSQL_TIMEOUT_DEFAULT;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->freed, NULL);
    /* main.cf syntax: key = value, indented lines continue, # comments. */
    char *s = xstrdup(text);
    char *pending = NULL, *next = s;
    int line = 0, pending_line = 0, rc = 0;
    for (;;) {
        char *ln = next;
        if (ln) {
            char *nl = strchr(ln, '\n');
            if (nl)
                *nl = '\0';
            next = nl ? nl + 1 : NULL;
            line++;
        }
        char *trimmed = ln ? str_trim(ln) : NULL;
        int blank = trimmed && (*trimmed == '\0' || *trimmed == '#');
        if (blank)
            continue;
        int cont = ln && (*ln == ' ' || *ln == '\t');
        if (cont && pending) {
            char *joined = xasprintf("%s %s", pending, trimmed);
            free(pending);
            pending = joined;
            continue;
        }
        if (pending) {
            char *eq = strchr(pending, '=');
            if (eq == NULL) {
                buf_printf(err, "%s:%d: expected 'name = value'", path, pending_line);
                rc = -1;
            } else {
                *eq = '\0';
                rc = map_pgsql_set(t, str_trim(pending), str_trim(eq + 1), path, pending_line, err);
            }
            free(pending);
            pending = NULL;
            if (rc < 0)
                break;
        }
        if (ln == NULL)
            break;
        if (cont) {
            buf_printf(err, "%s:%d: continuation line without a parameter", path, line);
            rc = -1;
            break;
        }
        pending = xstrdup(trimmed);
        pending_line = line;
    }
    free(pending);
    explicit_bzero(s, strlen(text));
    free(s);
    if (rc == 0 && (t->nhosts == 0 || t->query == NULL)) {
        buf_printf(err, "%s: pgsql table needs hosts and query", path);
        rc = -1;
    }
    if (rc < 0) {
        map_pgsql_free(t);
        return NULL;
    }
    if (t->result_format == NULL)
        t->result_format = xstrdup("%s");
    return t;
}

void map_pgsql_free(struct map_pgsql *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < MAP_PGSQL_POOL; i++)
        map_pgsql_drop(&t->conns[i]);
    pthread_cond_destroy(&t->freed);
    pthread_mutex_destroy(&t->mu);
    strlist_free(t->hosts);
    strlist_free(t->domains);
    free(t->path);
    free(t->user);
    if (t->password)
        explicit_bzero(t->password, strlen(t->password));
    free(t->password);
    free(t->dbname);
    free(t->query);
    free(t->result_format);
    free(t);
}
