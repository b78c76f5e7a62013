/*
 * Shared unit-test helpers (see testutil.h). Removal walks the tree with
 * nftw(FTW_PHYS | FTW_DEPTH) instead of system("rm -rf"): no shell, no
 * quoting, and a symbolic link is removed, never followed.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "queue/spool.h"

char *test_tmpdir(const char *name)
{
    char tmpl[256];
    int n = snprintf(tmpl, sizeof tmpl, "/tmp/%s.XXXXXX", name);
    assert_true(n > 0 && (size_t)n < sizeof tmpl);
    assert_non_null(mkdtemp(tmpl));
    char *dir = strdup(tmpl);
    assert_non_null(dir);
    return dir;
}

static int testutil_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

void test_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    assert_int_equal(nftw(path, testutil_remove_entry, 16, FTW_PHYS | FTW_DEPTH), 0);
}

int test_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

struct config *test_config(const char *text)
{
    struct buf err = BUF_INIT;
    struct config *cfg = config_load_text("test.cf", text, strlen(text), &err);
    if (cfg == NULL)
        fail_msg("config: %s", buf_cstr(&err));
    buf_free(&err);
    return cfg;
}

struct sockaddr_storage test_sockaddr(const char *ip)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (sockaddr_from_ip(ip, 0, &ss, &len) != 0)
        fail_msg("not an IP address: %s", ip);
    return ss;
}

void test_data_range(const char *path, off_t offset, off_t length, struct spool_data *d)
{
    d->fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(d->fd >= 0);
    struct stat st;
    assert_int_equal(fstat(d->fd, &st), 0);
    d->offset = offset;
    d->length = length >= 0 ? length : st.st_size - offset;
}

struct spool_msg *test_spool_msg(struct spool *s, const char *rcpt)
{
    struct buf err = BUF_INIT;
    struct spool_msg *m = spool_msg_new(s, &err);
    assert_non_null(m);
    buf_free(&err);
    struct envelope *e = spool_msg_envelope(m);
    free(e->sender);
    e->sender = strdup("sender@example.com");
    envelope_add_rcpt(e, rcpt);
    return m;
}
