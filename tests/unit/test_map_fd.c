/*
 * Unit tests for the tables root opened for us (src/maps/map_fd.c and its
 * use in maps.c, map_pgsql.c): a registered path is read from its
 * descriptor, whatever the name now points to; a registered error fails
 * the table as an open of our own would, without opening the name; a path
 * not registered is opened by name; map_list_files names the files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_fd.h"
#include "maps/maps.h"
#include "testutil.h"

static char *tmpdir;

static void write_text(const char *path, const char *text)
{
    unlink(path); /* a new inode, as postmap's rename makes */
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

static int setup(void **state)
{
    (void)state;
    tmpdir = test_tmpdir("test_map_fd");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    map_fd_replace(NULL, 0);
    test_rm_rf(tmpdir);
    free(tmpdir);
    return 0;
}

/* Registers one path with its descriptor (fd >= 0) or an error. */
static void register_one(const char *path, int fd, int error)
{
    struct map_fd_file *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->fd = fd;
    f->error = error;
    map_fd_replace(f, 1);
}

static void expect(struct map *m, const char *key, enum map_result want, const char *value)
{
    struct buf v = BUF_INIT, err = BUF_INIT;
    enum map_result r = map_lookup(m, key, &v, &err);
    if (r != want)
        fail_msg("%s: got %d (%s), want %d", key, r, buf_cstr(&err), want);
    if (value)
        assert_string_equal(buf_cstr(&v), value);
    buf_free(&v);
    buf_free(&err);
}

static void test_texthash_from_descriptor(void **state)
{
    (void)state;
    char *path = xasprintf("%s/sasl_passwd", tmpdir);
    char *spec = xasprintf("texthash:%s", path);
    write_text(path, "[relay.test]:587 u:first\n");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    write_text(path, "[relay.test]:587 u:second\n");
    register_one(path, fd, 0);
    struct buf err = BUF_INIT;
    struct map *m = map_open(spec, &err);
    assert_non_null(m);
    expect(m, "[relay.test]:587", MAP_FOUND, "u:first");
    /* A reload's new set: tables already open keep what they read. */
    map_fd_replace(NULL, 0);
    expect(m, "[relay.test]:587", MAP_FOUND, "u:first");
    map_free(m);
    /* Not registered: by name, as everywhere else. */
    m = map_open(spec, &err);
    assert_non_null(m);
    expect(m, "[relay.test]:587", MAP_FOUND, "u:second");
    map_free(m);
    buf_free(&err);
    free(spec);
    free(path);
}

static void test_registered_error_is_not_opened_by_name(void **state)
{
    (void)state;
    char *path = xasprintf("%s/linked", tmpdir);
    char *spec = xasprintf("texthash:%s", path);
    write_text(path, "k v\n");
    register_one(path, -1, ELOOP);
    struct buf err = BUF_INIT;
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(buf_cstr(&err), strerror(ELOOP)));
    struct buf text = BUF_INIT;
    assert_int_equal(map_fd_read_file(path, &text, 1024), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(text.len, 0);
    buf_free(&text);
    buf_free(&err);
    free(spec);
    free(path);
}

static void test_lmdb_from_descriptor(void **state)
{
    (void)state;
    char *path = xasprintf("%s/relay", tmpdir);
    char *db = xasprintf("%s.lmdb", path);
    char *spec = xasprintf("hash:%s", path);
    struct buf err = BUF_INIT;
    write_text(path, "[relay.test]:587 u:first\n");
    assert_int_equal(map_build(spec, &err), 0);
    int fd = open(db, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    /* A rebuild renames a new file into place; the descriptor keeps the old one. */
    write_text(path, "[relay.test]:587 u:second\n");
    assert_int_equal(map_build(spec, &err), 0);
    register_one(db, fd, 0);
    struct map *m = map_open(spec, &err);
    assert_non_null(m);
    expect(m, "[relay.test]:587", MAP_FOUND, "u:first");
    expect(m, "[other.test]", MAP_NOTFOUND, NULL);
    map_fd_replace(NULL, 0);
    expect(m, "[relay.test]:587", MAP_FOUND, "u:first");
    /* The supervisor sends a descriptor of the file now in place: the next refresh takes it. */
    int fresh = open(db, O_RDONLY | O_CLOEXEC);
    assert_true(fresh >= 0);
    register_one(db, fresh, 0);
    usleep(1100 * 1000); /* tables look at their file at most once a second */
    expect(m, "[relay.test]:587", MAP_FOUND, "u:second");
    map_free(m);
    /* The supervisor found no compiled file: the usual advice, never a "not found". */
    register_one(db, -1, ENOENT);
    m = map_open(spec, &err);
    assert_non_null(m);
    struct buf v = BUF_INIT;
    buf_reset(&err);
    assert_int_equal(map_lookup(m, "[relay.test]:587", &v, &err), MAP_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "run `hongyan map build"));
    map_free(m);
    buf_free(&v);
    buf_free(&err);
    free(spec);
    free(db);
    free(path);
}

static void test_list_files(void **state)
{
    (void)state;
    size_t n = 0;
    char **files = map_list_files("hash:/etc/a, texthash:/etc/b inline:{x=y} lmdb:/etc/c "
                                  "pgsql:/etc/d.cf bogus:/x nocolon",
                                  &n);
    assert_int_equal(n, 4);
    assert_string_equal(files[0], "/etc/a.lmdb");
    assert_string_equal(files[1], "/etc/b");
    assert_string_equal(files[2], "/etc/c.lmdb");
    assert_string_equal(files[3], "/etc/d.cf");
    assert_null(files[4]);
    strlist_free(files);
    files = map_list_files("", &n);
    assert_int_equal(n, 0);
    strlist_free(files);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_texthash_from_descriptor),
        cmocka_unit_test(test_registered_error_is_not_opened_by_name),
        cmocka_unit_test(test_lmdb_from_descriptor),
        cmocka_unit_test(test_list_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
