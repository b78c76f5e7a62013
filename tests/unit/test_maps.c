/* Unit tests for lookup tables: parsers, texthash, hash/lmdb, inline, lists, staleness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_text.h"
#include "maps/maps.h"
#include "testutil.h"

static char tmpdir[256];

static char *path_in(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_maps.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_rm_rf(tmpdir);
    return 0;
}

static const char *find(const struct map_entries *e, const char *key)
{
    for (size_t i = 0; i < e->count; i++)
        if (strcmp(e->items[i].key, key) == 0)
            return e->items[i].value;
    return NULL;
}

static void test_parse_postmap(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "Key1   value one  \r\n"
                       "\n"
                       "key2 first\n"
                       "  # a comment inside does not end the line\n"
                       "\tsecond\n"
                       "KEY3\tv3";
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(map_parse_text(text, strlen(text), "f", MAP_SYNTAX_POSTMAP, &e, &err), 0);
    assert_int_equal(e.count, 3);
    assert_string_equal(find(&e, "key1"), "value one");
    assert_string_equal(find(&e, "key2"), "first\tsecond");
    assert_string_equal(find(&e, "key3"), "v3");
    assert_int_equal(e.items[1].line, 4);
    map_entries_free(&e);
    buf_free(&err);
}

static void expect_parse_error(const char *text, size_t len, enum map_syntax syn, const char *msg)
{
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(map_parse_text(text, len, "src", syn, &e, &err), -1);
    assert_int_equal(e.count, 0);
    if (strstr(buf_cstr(&err), msg) == NULL)
        fail_msg("error '%s' lacks '%s'", buf_cstr(&err), msg);
    buf_free(&err);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("a b\nkeyonly\n", 12, MAP_SYNTAX_POSTMAP, "src:2:");
    expect_parse_error("  leading\n", 10, MAP_SYNTAX_POSTMAP, "src:1: continuation");
    expect_parse_error("a b\nc \0d\n", 9, MAP_SYNTAX_POSTMAP, "src:2: NUL");
    expect_parse_error("novalue:\n", 9, MAP_SYNTAX_ALIASES, "src:1:");
    expect_parse_error("x: y\nnocolon\n", 13, MAP_SYNTAX_ALIASES, "src:2:");
    expect_parse_error("\"open: x\n", 9, MAP_SYNTAX_ALIASES, "unterminated");
    expect_parse_error("two words: x\n", 13, MAP_SYNTAX_ALIASES, "white space");
    char *big = xmalloc(600);
    memset(big, 'k', 599);
    big[599] = '\0';
    char *line = xasprintf("%s v\n", big);
    expect_parse_error(line, strlen(line), MAP_SYNTAX_POSTMAP, "longer than");
    free(line);
    free(big);
}

static void test_parse_aliases(void **state)
{
    (void)state;
    const char *text = "# aliases(5)\n"
                       "Postmaster: root\n"
                       "\"John Doe\" : john\n"
                       "root: bob,\n"
                       "  carol, \"|/bin/true x\"\n"
                       "\"q\\\"x\": y\n";
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(map_parse_text(text, strlen(text), "aliases", MAP_SYNTAX_ALIASES, &e, &err),
                     0);
    assert_int_equal(e.count, 4);
    assert_string_equal(find(&e, "postmaster"), "root");
    assert_string_equal(find(&e, "john doe"), "john");
    assert_string_equal(find(&e, "root"), "bob,  carol, \"|/bin/true x\"");
    assert_string_equal(find(&e, "q\"x"), "y");
    map_entries_free(&e);
    buf_free(&err);
}

static void test_parse_inline(void **state)
{
    (void)state;
    struct map_entries e = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(
        map_parse_inline("{ A=b, c = d,e =f g= h, {K = x, y}, m={p, q}, n = {r s}, z=}", &e, &err),
        0);
    assert_string_equal(find(&e, "a"), "b");
    assert_string_equal(find(&e, "c"), "d");
    assert_string_equal(find(&e, "e"), "f");
    assert_string_equal(find(&e, "g"), "h");
    assert_string_equal(find(&e, "k"), "x, y");
    assert_string_equal(find(&e, "m"), "p, q");
    assert_string_equal(find(&e, "n"), "r s");
    assert_string_equal(find(&e, "z"), "");
    map_entries_free(&e);
    assert_int_equal(map_parse_inline("{}", &e, &err), 0);
    assert_int_equal(e.count, 0);
    const char *bad[] = {"a=b", "{a=b", "{a=b}}", "{a}", "{=b}", "{a={b}", "{{a=b}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        buf_reset(&err);
        if (map_parse_inline(bad[i], &e, &err) != -1)
            fail_msg("inline '%s' should fail", bad[i]);
        assert_int_equal(e.count, 0);
        assert_true(err.len > 0);
    }
    buf_free(&err);
}

static void test_split_addresses(void **state)
{
    (void)state;
    size_t n;
    char **l = map_split_addresses(" a@b,c  <d@e>, \"x, y\"@z,,\"|cmd arg\" <> ", &n);
    assert_int_equal(n, 5);
    assert_string_equal(l[0], "a@b");
    assert_string_equal(l[1], "c");
    assert_string_equal(l[2], "d@e");
    assert_string_equal(l[3], "\"x, y\"@z");
    assert_string_equal(l[4], "\"|cmd arg\"");
    assert_null(l[5]);
    strlist_free(l);
}

static void expect_lookup(struct map *m, const char *key, enum map_result want, const char *value)
{
    struct buf v = BUF_INIT, err = BUF_INIT;
    enum map_result r = map_lookup(m, key, &v, &err);
    if (r != want)
        fail_msg("lookup %s: got %d want %d (%s)", key, r, want, buf_cstr(&err));
    if (value)
        assert_string_equal(buf_cstr(&v), value);
    buf_free(&v);
    buf_free(&err);
}

static void test_texthash(void **state)
{
    (void)state;
    char *p = path_in("th");
    write_text(p, "User@Example.COM  one\nuser@example.com two\nother x\n");
    char *spec = xasprintf("texthash:%s", p);
    struct buf err = BUF_INIT;
    struct map *m = map_open(spec, &err);
    assert_non_null(m);
    expect_lookup(m, "USER@example.com", MAP_FOUND, "one"); /* first wins, keys folded */
    expect_lookup(m, "other", MAP_FOUND, "x");
    expect_lookup(m, "missing", MAP_NOTFOUND, NULL);
    expect_lookup(m, "", MAP_NOTFOUND, NULL);
    map_free(m);
    map_free(NULL);
    free(spec);
    /* A missing or bad texthash file fails at open, naming the file and line. */
    spec = xasprintf("texthash:%s/nope", tmpdir);
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(buf_cstr(&err), "nope"));
    free(spec);
    write_text(p, "ok v\nbad\n");
    spec = xasprintf("texthash:%s", p);
    buf_reset(&err);
    assert_null(map_open(spec, &err));
    assert_non_null(strstr(buf_cstr(&err), ":2:"));
    free(spec);
    free(p);
    buf_free(&err);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    const char *bad[] = {"nocolon", "btree:/x", "hash:", "inline:a=b", "inline:{a}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        buf_reset(&err);
        if (map_open(bad[i], &err) != NULL)
            fail_msg("map_open '%s' should fail", bad[i]);
        assert_true(err.len > 0);
    }
    buf_reset(&err);
    assert_int_equal(map_build("texthash:/x", &err), -1);
    buf_reset(&err);
    assert_int_equal(map_build("inline:{a=b}", &err), -1);
    buf_free(&err);
}

static void set_mtime(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_hash_build_lookup(void **state)
{
    (void)state;
    char *p = path_in("tbl");
    write_text(p, "# table\nKey value one\nlong continued\n  line\nkey dup\n");
    char *spec = xasprintf("hash:%s", p);
    struct buf err = BUF_INIT;
    struct map *m = map_open(spec, &err);
    assert_non_null(m);
    /* Not built yet: TEMPFAIL that says what to run. */
    buf_reset(&err);
    struct buf v = BUF_INIT;
    assert_int_equal(map_lookup(m, "key", &v, &err), MAP_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "hongyan map build"));
    map_free(m);

    assert_int_equal(map_build(spec, &err), 0);
    m = map_open(spec, &err);
    expect_lookup(m, "KEY", MAP_FOUND, "value one");
    expect_lookup(m, "long", MAP_FOUND, "continued  line");
    expect_lookup(m, "nothere", MAP_NOTFOUND, NULL);
    map_free(m);

    /* lmdb: reads the same file. */
    char *lspec = xasprintf("lmdb:%s", p);
    m = map_open(lspec, &err);
    expect_lookup(m, "key", MAP_FOUND, "value one");
    map_free(m);

    /* A source newer than the compiled file is reported, not used. */
    char *db = xasprintf("%s.lmdb", p);
    set_mtime(db, 1000000);
    set_mtime(p, 2000000);
    m = map_open(spec, &err);
    buf_reset(&err);
    assert_int_equal(map_lookup(m, "key", &v, &err), MAP_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "older than"));
    assert_non_null(strstr(buf_cstr(&err), "hongyan map build hash:"));
    map_free(m);

    /* Rebuild: new contents, and an open map sees them after its recheck. */
    write_text(p, "key changed\n");
    assert_int_equal(map_build(spec, &err), 0);
    m = map_open(spec, &err);
    expect_lookup(m, "key", MAP_FOUND, "changed");
    write_text(p, "key again\n");
    assert_int_equal(map_build(spec, &err), 0);
    usleep(1100 * 1000);
    expect_lookup(m, "key", MAP_FOUND, "again");
    map_free(m);

    /* Only the compiled file (no source): used as is. */
    unlink(p);
    m = map_open(spec, &err);
    expect_lookup(m, "key", MAP_FOUND, "again");
    map_free(m);

    /* Build errors name FILE:LINE and leave the old table in place. */
    write_text(p, "good v\nbad\n");
    buf_reset(&err);
    assert_int_equal(map_build_syntax(spec, MAP_SYNTAX_POSTMAP, &err), EX_DATAERR);
    assert_non_null(strstr(buf_cstr(&err), ":2:"));
    buf_reset(&err);
    char *missing = xasprintf("hash:%s/absent", tmpdir);
    assert_int_equal(map_build_syntax(missing, MAP_SYNTAX_POSTMAP, &err), EX_NOINPUT);
    free(missing);

    free(db);
    free(lspec);
    free(spec);
    free(p);
    buf_free(&v);
    buf_free(&err);
}

static void test_alias_build(void **state)
{
    (void)state;
    char *p = path_in("aliases");
    write_text(p, "Postmaster: root\nroot: bob,\n  carol\n");
    char *spec = xasprintf("hash:%s", p);
    struct buf err = BUF_INIT;
    assert_int_equal(map_build_syntax(spec, MAP_SYNTAX_ALIASES, &err), 0);
    struct map *m = map_open(spec, &err);
    expect_lookup(m, "postmaster", MAP_FOUND, "root");
    expect_lookup(m, "root", MAP_FOUND, "bob,  carol");
    map_free(m);
    /* An alias table that went stale says to run `hongyan aliases`. */
    char *db = xasprintf("%s.lmdb", p);
    set_mtime(db, 1000000);
    set_mtime(p, 2000000);
    m = map_open(spec, &err);
    struct buf v = BUF_INIT;
    buf_reset(&err);
    assert_int_equal(map_lookup(m, "root", &v, &err), MAP_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "hongyan aliases"));
    map_free(m);
    free(db);
    free(spec);
    free(p);
    buf_free(&v);
    buf_free(&err);
}

static void test_inline_and_list(void **state)
{
    (void)state;
    struct buf err = BUF_INIT, v = BUF_INIT;
    struct map *m = map_open("inline:{ a = 1, A = 2, {b = x, y} }", &err);
    assert_non_null(m);
    expect_lookup(m, "A", MAP_FOUND, "1");
    expect_lookup(m, "b", MAP_FOUND, "x, y");
    map_free(m);

    char *missing = xasprintf("hash:%s/never", tmpdir);
    char *specs = xasprintf("inline:{k=first}, inline:{k=second, j=2} %s, inline:{z=3}", missing);
    struct map_list *l = map_list_open(specs, &err);
    assert_non_null(l);
    assert_false(map_list_empty(l));
    assert_int_equal(map_list_lookup(l, "k", &v, &err), MAP_FOUND);
    assert_string_equal(buf_cstr(&v), "first");
    assert_int_equal(map_list_lookup(l, "j", &v, &err), MAP_FOUND);
    assert_string_equal(buf_cstr(&v), "2");
    /* The unreadable table stops the search before the later one that has the key. */
    buf_reset(&err);
    assert_int_equal(map_list_lookup(l, "z", &v, &err), MAP_TEMPFAIL);
    assert_true(err.len > 0);
    map_list_free(l);
    free(specs);
    free(missing);

    l = map_list_open("", &err);
    assert_true(map_list_empty(l));
    assert_int_equal(map_list_lookup(l, "x", &v, &err), MAP_NOTFOUND);
    map_list_free(l);
    assert_null(map_list_open("inline:{a=b} bogus:x", &err));
    map_list_free(NULL);
    buf_free(&v);
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_postmap),   cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_aliases),   cmocka_unit_test(test_parse_inline),
        cmocka_unit_test(test_split_addresses), cmocka_unit_test(test_texthash),
        cmocka_unit_test(test_open_errors),     cmocka_unit_test(test_hash_build_lookup),
        cmocka_unit_test(test_alias_build),     cmocka_unit_test(test_inline_and_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
