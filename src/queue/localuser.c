/* Local users and their access lists; see localuser.h. */
#include "queue/localuser.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"

#define LOCALUSER_FILE_MAX (1024 * 1024)

void localuser_name(uid_t uid, char *out, size_t size)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
        str_copy(out, size, res->pw_name);
    else
        str_copy(out, size, "unknown");
}

/* One pattern: 1 match, 0 not, -1 lookup failure. depth bounds /file inclusion. */
static int localuser_match(const char *pat, const char *user, int depth, struct buf *err)
{
    if (pat[0] == '/') {
        struct buf text = BUF_INIT;
        if (depth > 0 || read_file(pat, &text, LOCALUSER_FILE_MAX) < 0) {
            buf_printf(err, "%s: %s", pat, depth > 0 ? "nested file" : strerror(errno));
            buf_free(&text);
            return -1;
        }
        char **items = strlist_split(buf_cstr(&text), NULL);
        int rc = 0;
        for (char **p = items; *p && rc == 0; p++)
            rc = localuser_match(*p, user, depth + 1, err);
        strlist_free(items);
        buf_free(&text);
        return rc;
    }
    if (strncmp(pat, "static:", 7) == 0)
        return 1; /* a static table answers every key */
    if (strchr(pat, ':') != NULL) {
        struct map *m = map_open(pat, err);
        if (m == NULL)
            return -1;
        struct buf value = BUF_INIT;
        enum map_result r = map_lookup(m, user, &value, err);
        buf_free(&value);
        map_free(m);
        return r == MAP_FOUND ? 1 : r == MAP_NOTFOUND ? 0 : -1;
    }
    return strcmp(pat, user) == 0;
}

int localuser_listed(const char *spec, const char *user, struct buf *err)
{
    char **items = strlist_split(spec ? spec : "", NULL);
    int rc = 0;
    for (char **p = items; *p; p++) {
        int negate = (*p)[0] == '!';
        int m = localuser_match(*p + negate, user, 0, err);
        if (m != 0) {
            rc = m < 0 ? -1 : !negate;
            break;
        }
    }
    strlist_free(items);
    return rc;
}

int localuser_authorized(const char *spec, const char *mail_owner, uid_t uid, const char *user,
                         struct buf *err)
{
    if (uid == 0 || (mail_owner && strcmp(user, mail_owner) == 0))
        return 1;
    return localuser_listed(spec, user, err);
}
