/* Unit tests for pgsql: tables without a database: the file parser and the expansions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/buf.h"
#include "maps/map_pgsql.h"

static void quote_double(void *ctx, const char *in, struct buf *out)
{
    (void)ctx;
    for (; *in; in++) {
        if (*in == '\'')
            buf_putc(out, '\'');
        buf_putc(out, *in);
    }
}

static const char *expand(const char *tmpl, const char *value, const char *key, int quote,
                          struct buf *out)
{
    buf_reset(out);
    if (map_pgsql_expand(tmpl, value, key, quote ? quote_double : NULL, NULL, out))
        return NULL;
    return buf_cstr(out);
}

static void test_expand(void **state)
{
    (void)state;
    struct buf o = BUF_INIT;
    assert_string_equal(expand("a='%s'", "x'or'1'='1@example.com", NULL, 1, &o),
                        "a='x''or''1''=''1@example.com'");
    assert_string_equal(expand("%u|%d|%1|%2|%3|%%", "bob@mail.example.com", NULL, 0, &o),
                        "bob|mail.example.com|com|example|mail|%");
    /* A part the value lacks skips the query (Postfix). */
    assert_null(expand("%d", "bob", NULL, 0, &o));
    assert_null(expand("%4", "bob@mail.example.com", NULL, 0, &o));
    assert_null(expand("%1", "bob@", NULL, 0, &o));
    assert_string_equal(expand("%u", "bob", NULL, 0, &o), "bob");
    /* result_format: lower case of the value, upper case of the key. */
    assert_string_equal(expand("%s via %U at %D", "v", "k@d.test", 0, &o), "v via k at d.test");
    assert_string_equal(expand("50%x", "v", NULL, 0, &o), "50%x");
    buf_free(&o);
}

static void test_parse(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct map_pgsql *t =
        map_pgsql_parse("ok.cf",
                        "# comment\nhosts = h1 h2:5433\nuser = u\npassword = p\n\ndbname = d\n"
                        "query = SELECT a\n  FROM b WHERE c='%s'\nresult_format = %s/\n"
                        "domain = example.com\nexpansion_limit = 2\ntimeout = 1\n",
                        &err);
    assert_non_null(t);
    map_pgsql_free(t);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"hosts = h\n", "needs hosts and query"},
        {"hosts = h\nquery = q\nselect_field = x\n", "bad.cf:3: unknown pgsql_table(5)"},
        {"hosts = h\nquery = q\nexpansion_limit = many\n", "bad.cf:3: expansion_limit"},
        {"hosts = h\nquery = q\ntimeout = 0\n", "bad.cf:3: timeout"},
        {"  hosts = h\n", "bad.cf:1: continuation"},
        {"hosts h\n", "bad.cf:1: expected 'name = value'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&err);
        assert_null(map_pgsql_parse("bad.cf", bad[i].text, &err));
        if (strstr(buf_cstr(&err), bad[i].want) == NULL)
            fail_msg("%s: got '%s'", bad[i].text, buf_cstr(&err));
    }
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
