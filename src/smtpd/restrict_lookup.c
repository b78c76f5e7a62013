/*
 * Table lookups of the restriction walk that may wait on the network (a
 * pgsql: access table, smtpd_sender_login_maps, a domain list): run on the
 * work queue, never on the event loop, with the same pending/resume
 * protocol as DNS lists (restrict.h). The answer is remembered for the
 * command, so the walk that runs again finds it and completes; local
 * tables are asked in place, as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/resolve.h"
#include "smtpd/restrict_int.h"
#include "smtpd/submission.h"

/*
 * One lookup; on the work queue the pool thread fills result, value and
 * why, and the loop thread reads them in restrict_lookup_done. The map,
 * resolver and config belong to the session's generation, which the
 * session keeps until this is done (restrict_session_busy).
 */
struct restrict_lookup_job {
    struct restrict_session *rs; /* NULL once the session is gone */
    int wanted;                  /* 0: the check gave up waiting; drop the answer */
    enum restrict_lookup_kind kind;
    struct map *map;
    struct map_list *list; /* RESTRICT_LOOKUP_LIST */
    struct resolver *resolver;
    struct map **maps; /* RESTRICT_LOOKUP_LOGIN: smtpd_sender_login_maps, opened on the loop */
    size_t nmaps;
    int maps_bad; /* one of them could not be opened */
    char *key;
    char *user;
    char *memo_key;
    int result;
    struct buf value, why;
};

/* smtpd_sender_login_maps as one list: the first table that has the key answers. */
static enum map_result restrict_login_lookup(void *ctx, const char *key, struct buf *value,
                                             struct buf *err)
{
    const struct restrict_lookup_job *j = ctx;
    for (size_t i = 0; i < j->nmaps; i++) {
        enum map_result r = map_lookup(j->maps[i], key, value, err);
        if (r != MAP_NOTFOUND)
            return r;
    }
    return MAP_NOTFOUND;
}

static void restrict_lookup_compute(struct restrict_lookup_job *j)
{
    switch (j->kind) {
    case RESTRICT_LOOKUP_TABLE:
        j->result = map_lookup(j->map, j->key, &j->value, &j->why);
        break;
    case RESTRICT_LOOKUP_LIST:
        j->result = map_list_lookup(j->list, j->key, &j->value, &j->why);
        break;
    case RESTRICT_LOOKUP_CLASS:
        j->result = resolver_class(j->resolver, j->key, &j->why);
        break;
    case RESTRICT_LOOKUP_UNLISTED: {
        enum resolve_class cls;
        struct resolved_list list = {0};
        j->result = resolver_lookup_rcpt(j->resolver, j->key, &cls, &list, &j->why);
        resolved_list_free(&list);
        break;
    }
    case RESTRICT_LOOKUP_LOGIN:
        if (j->maps_bad) {
            /* A broken setting must not open senders to everyone (restrict_login_maps logged why).
             */
            buf_printf(&j->value, "451 4.3.0 <%s>: Temporary lookup failure", j->key);
            j->result = -2;
        } else {
            j->result = j->nmaps ? submission_sender_login_decide(restrict_login_lookup, j, j->key,
                                                                  j->user, &j->value)
                                 : 0;
        }
        break;
    }
}

/*
 * On the loop: the login maps from the generation's tables (opened once
 * and kept, so a pgsql: connection is reused), which the pool thread may
 * then ask.
 */
static void restrict_login_maps(struct restrict_session *rs, struct restrict_lookup_job *j)
{
    size_t n = 0;
    char **specs = config_get_list(rs->rc->cfg, "smtpd_sender_login_maps", &n);
    j->maps = xcalloc(n ? n : 1, sizeof *j->maps);
    for (size_t i = 0; i < n; i++) {
        struct restrict_table *t = restrict_table(rs->rc, specs[i]);
        if (!t->map) {
            log_warning("smtpd_sender_login_maps %s: %s", specs[i], t->why);
            j->maps_bad = 1;
        }
        j->maps[j->nmaps++] = t->map;
    }
    strlist_free(specs);
}

/* 1 when answering would wait on the network (a pgsql: table is involved). */
static int restrict_lookup_may_block(const struct restrict_lookup_job *j)
{
    switch (j->kind) {
    case RESTRICT_LOOKUP_TABLE:
        return map_may_block(j->map);
    case RESTRICT_LOOKUP_LIST:
        return map_list_may_block(j->list);
    case RESTRICT_LOOKUP_CLASS: {
        /* A domain the static items or local tables decide needs no thread. */
        struct buf why = BUF_INIT;
        int c = resolver_class_nowait(j->resolver, j->key, &why);
        buf_free(&why);
        return c == RESOLVER_WOULD_WAIT;
    }
    case RESTRICT_LOOKUP_UNLISTED:
        return resolver_lookup_rcpt_may_block(j->resolver, j->key);
    case RESTRICT_LOOKUP_LOGIN:
        for (size_t i = 0; i < j->nmaps; i++)
            if (map_may_block(j->maps[i]))
                return 1;
        return 0;
    }
    return 0;
}

static void restrict_lookup_job_free(struct restrict_lookup_job *j)
{
    free(j->key);
    free(j->user);
    free(j->memo_key);
    free(j->maps);
    buf_free(&j->value);
    buf_free(&j->why);
    free(j);
}

static void restrict_lookup_work(void *arg)
{
    restrict_lookup_compute(arg);
}

static void restrict_lookup_done(void *arg)
{
    struct restrict_lookup_job *j = arg;
    struct restrict_session *rs = j->rs;
    if (rs) {
        rs->lookup_q = NULL;
        if (j->wanted) {
            struct restrict_memo *m = restrict_memo_add(rs, j->memo_key);
            m->answer = xcalloc(1, sizeof *m->answer);
            m->answer->result = j->result;
            m->answer->value = xstrdup(buf_cstr(&j->value));
            m->answer->why = xstrdup(buf_cstr(&j->why));
        }
        /*
         * Also when the answer is no longer wanted: a session that ended
         * meanwhile waited for this job (restrict_session_busy) and is
         * closed from its resume callback.
         */
        rs->hooks.resume(rs->hooks.arg);
    }
    restrict_lookup_job_free(j);
}

static struct restrict_lookup_job *restrict_lookup_job_new(struct restrict_session *rs,
                                                           enum restrict_lookup_kind kind,
                                                           const char *key, const char *user)
{
    struct restrict_lookup_job *j = xcalloc(1, sizeof *j);
    j->kind = kind;
    j->resolver = rs->rc->resolver;
    j->key = xstrdup(key);
    j->user = xstrdup(user ? user : "");
    buf_init(&j->value);
    buf_init(&j->why);
    return j;
}

/* Answers j in place, from the memo, or starts it on the work queue; table names it in the memo. */
static int restrict_lookup_run(struct restrict_session *rs, struct restrict_lookup_job *j,
                               const void *table, struct buf *value, struct buf *why)
{
    if (!restrict_lookup_may_block(j) || !rs->wq) {
        restrict_lookup_compute(j);
        int result = j->result;
        buf_reset(value);
        buf_puts(value, buf_cstr(&j->value));
        buf_puts(why, buf_cstr(&j->why));
        restrict_lookup_job_free(j);
        return result;
    }
    j->memo_key = xasprintf("lookup\t%d\t%p\t%s\t%s", (int)j->kind, table, j->key, j->user);
    const struct restrict_memo *m = restrict_memo_find(rs, j->memo_key);
    if (m && m->answer) {
        int result = m->answer->result;
        buf_reset(value);
        buf_puts(value, m->answer->value);
        buf_puts(why, m->answer->why);
        restrict_lookup_job_free(j);
        return result;
    }
    /* One lookup at a time per session, as for DNS: the walk stops at the first one. */
    if (rs->lookup_q) {
        restrict_lookup_job_free(j);
        return RESTRICT_LOOKUP_PENDING;
    }
    j->rs = rs;
    j->wanted = 1;
    rs->lookup_q = j;
    workq_submit(rs->wq, restrict_lookup_work, restrict_lookup_done, j);
    return RESTRICT_LOOKUP_PENDING;
}

int restrict_lookup(struct restrict_session *rs, enum restrict_lookup_kind kind, struct map *map,
                    const char *key, const char *user, struct buf *value, struct buf *why)
{
    struct restrict_lookup_job *j = restrict_lookup_job_new(rs, kind, key, user);
    j->map = map;
    if (kind == RESTRICT_LOOKUP_LOGIN)
        restrict_login_maps(rs, j);
    return restrict_lookup_run(rs, j, map, value, why);
}

int restrict_lookup_list(struct restrict_session *rs, struct map_list *list, const char *key,
                         struct buf *value, struct buf *why)
{
    struct restrict_lookup_job *j = restrict_lookup_job_new(rs, RESTRICT_LOOKUP_LIST, key, NULL);
    j->list = list;
    return restrict_lookup_run(rs, j, list, value, why);
}

void restrict_lookup_abandon(struct restrict_session *rs, int session_gone)
{
    if (!rs->lookup_q)
        return;
    rs->lookup_q->wanted = 0;
    if (session_gone)
        rs->lookup_q->rs = NULL;
}

int restrict_session_busy(const struct restrict_session *rs)
{
    return rs != NULL && rs->lookup_q != NULL;
}

int restrict_rcpt_remote(struct restrict_walk *w, const char *rcpt, enum restrict_rc *rc)
{
    struct restrict_session *rs = w->rs;
    if (!rs->rc->resolver)
        return 0;
    struct buf value = BUF_INIT, why = BUF_INIT;
    int cls = restrict_lookup(rs, RESTRICT_LOOKUP_CLASS, NULL, rcpt, NULL, &value, &why);
    if (cls == RESTRICT_LOOKUP_PENDING) {
        *rc = RC_PENDING;
    } else if (cls < 0) {
        /* Postfix: a resolver failure is reject_dict_retry(), never a relay refusal. */
        log_warning("recipient domain lookup for <%s> failed: %s", rcpt, buf_cstr(&why));
        *rc = restrict_refuse_hard(w, 451, "4.3.0", "<%s>: Temporary lookup failure", rcpt);
    }
    buf_free(&value);
    buf_free(&why);
    return cls < 0 ? -1 : cls == RESOLVE_REMOTE;
}

enum restrict_status restrict_sender_login(struct restrict_session *rs, const char *sender,
                                           const char *user, struct restrict_reply *reply)
{
    struct buf text = BUF_INIT, why = BUF_INIT;
    int st = restrict_lookup(rs, RESTRICT_LOOKUP_LOGIN, NULL, sender, user, &text, &why);
    enum restrict_status out = RESTRICT_PASS;
    memset(reply, 0, sizeof *reply);
    if (st == RESTRICT_LOOKUP_PENDING) {
        out = RESTRICT_PENDING;
    } else if (st < 0) {
        /* "CODE X.Y.Z text", as submission_sender_login_decide() writes it. */
        const char *t = buf_cstr(&text);
        reply->code = atoi(t);
        const char *sp = strchr(t, ' ');
        const char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        if (sp && sp2 && (size_t)(sp2 - sp - 1) < sizeof reply->dsn) {
            snprintf(reply->dsn, sizeof reply->dsn, "%.*s", (int)(sp2 - sp - 1), sp + 1);
            snprintf(reply->text, sizeof reply->text, "%s", sp2 + 1);
        } else {
            snprintf(reply->text, sizeof reply->text, "%s", t);
        }
        out = RESTRICT_REFUSE;
    }
    buf_free(&text);
    buf_free(&why);
    return out;
}
