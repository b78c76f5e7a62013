/*
 * Key records from a file instead of DNS, for golden tests and for
 * `hongyan dkim verify --key-file`: lines "NAME TXT VALUE", "NAME TIMEOUT",
 * "NAME SERVFAIL" (the conformance dns.txt format). Answers synchronously.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"

#define DKIM_KEYFILE_MAX (4 * 1024 * 1024)

struct keyrec {
    char *name;
    char *txt; /* NULL for TEMPFAIL entries */
};

struct dkim_keyfile {
    struct keyrec *recs;
    size_t n, cap;
};

struct dkim_keyfile *dkim_keyfile_new(void)
{
    return xcalloc(1, sizeof(struct dkim_keyfile));
}

static void add(struct dkim_keyfile *kf, const char *name, size_t nl, const char *txt)
{
    if (kf->n == kf->cap) {
        kf->cap = kf->cap ? kf->cap * 2 : 16;
        kf->recs = xrealloc(kf->recs, kf->cap * sizeof(*kf->recs));
    }
    char *nm = xstrndup(name, nl);
    str_lower(nm);
    size_t l = strlen(nm);
    while (l > 0 && nm[l - 1] == '.')
        nm[--l] = '\0';
    kf->recs[kf->n].name = nm;
    kf->recs[kf->n].txt = txt ? xstrdup(txt) : NULL;
    kf->n++;
}

void dkim_keyfile_add(struct dkim_keyfile *kf, const char *name, const char *txt)
{
    add(kf, name, strlen(name), txt);
}

struct dkim_keyfile *dkim_keyfile_load(const char *path, struct buf *err)
{
    struct buf b = BUF_INIT;
    if (read_file(path, &b, DKIM_KEYFILE_MAX) < 0) {
        buf_printf(err, "%s: %s", path, strerror(errno));
        buf_free(&b);
        return NULL;
    }
    struct dkim_keyfile *kf = dkim_keyfile_new();
    char *save = NULL;
    int lineno = 0;
    for (char *line = strtok_r(b.data ? b.data : (char[]){0}, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[--ll] = '\0';
        char *p = str_trim(line);
        if (*p == '\0' || *p == '#')
            continue;
        char *name = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t nl = (size_t)(p - name);
        while (*p == ' ' || *p == '\t')
            p++;
        char *type = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t tl = (size_t)(p - type);
        while (*p == ' ' || *p == '\t')
            p++;
        if (tl == 3 && strncasecmp(type, "TXT", 3) == 0) {
            add(kf, name, nl, strcmp(p, "\"\"") == 0 ? "" : p);
        } else if ((tl == 7 && strncasecmp(type, "TIMEOUT", 7) == 0) ||
                   (tl == 8 && strncasecmp(type, "SERVFAIL", 8) == 0)) {
            add(kf, name, nl, NULL);
        } else {
            buf_printf(err, "%s:%d: expected NAME TXT VALUE", path, lineno);
            buf_free(&b);
            dkim_keyfile_free(kf);
            return NULL;
        }
    }
    buf_free(&b);
    return kf;
}

void dkim_keyfile_free(struct dkim_keyfile *kf)
{
    if (kf == NULL)
        return;
    for (size_t i = 0; i < kf->n; i++) {
        free(kf->recs[i].name);
        free(kf->recs[i].txt);
    }
    free(kf->recs);
    free(kf);
}

static void *keyfile_lookup(void *arg, const char *name, txt_done_fn done, void *done_arg)
{
    struct dkim_keyfile *kf = arg;
    const char *txt[16];
    size_t n = 0;
    for (size_t i = 0; i < kf->n; i++) {
        if (strcasecmp(kf->recs[i].name, name) != 0)
            continue;
        if (kf->recs[i].txt == NULL) {
            done(done_arg, TXT_TEMPFAIL, NULL, 0);
            return NULL;
        }
        if (n < 16) {
            txt[n++] = kf->recs[i].txt;
        }
    }
    done(done_arg, n ? TXT_FOUND : TXT_NOTFOUND, txt, n);
    return NULL;
}

struct txt_lookup dkim_keyfile_lookup(struct dkim_keyfile *kf)
{
    struct txt_lookup lk = {keyfile_lookup, NULL, kf, NULL};
    return lk;
}
