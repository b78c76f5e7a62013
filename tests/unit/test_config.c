/* Unit tests for the main.cf reader: syntax, expansion, checks, errors with line numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "lib/util.h"

static struct config *load(const char *text, struct buf *err)
{
    buf_reset(err);
    return config_load_text("main.cf", text, strlen(text), err);
}

static void test_continuation_and_comments(void **state)
{
    struct buf err = BUF_INIT;
    struct config *cfg = load("# comment\n"
                              "myhostname = mx.example.com\n"
                              "\n"
                              "mydestination = a.example,\n"
                              "   b.example\n"
                              "    # an indented comment does not continue\n"
                              "\tc.example\n",
                              &err);
    assert_non_null(cfg);
    assert_string_equal(config_get(cfg, "mydestination"), "a.example, b.example c.example");
    size_t n;
    char **list = config_get_list(cfg, "mydestination", &n);
    assert_int_equal(n, 3);
    assert_string_equal(list[2], "c.example");
    strlist_free(list);
    assert_true(config_is_set(cfg, "myhostname"));
    assert_false(config_is_set(cfg, "relayhost"));
    config_free(cfg);
    buf_free(&err);
}

static void test_expansion(void **state)
{
    struct buf err = BUF_INIT;
    struct config *cfg = load("myhostname = mx.example.com\n"
                              "data_directory = /srv/hy\n"
                              "relayhost = ${mydomain}\n"
                              "smtpd_banner = $myhostname says ${relayhost?{relay is $relayhost}}"
                              "${relayhost:none}\n",
                              &err);
    assert_non_null(cfg);
    assert_string_equal(config_get(cfg, "mydomain"), "example.com");
    assert_string_equal(config_get(cfg, "queue_directory"), "/srv/hy/queue");
    assert_string_equal(config_get(cfg, "smtpd_banner"),
                        "mx.example.com says relay is example.com");
    assert_string_equal(config_get_raw(cfg, "relayhost"), "${mydomain}");
    config_free(cfg);
    buf_free(&err);
}

static void test_loop_is_an_error(void **state)
{
    struct buf err = BUF_INIT;
    assert_null(load("myorigin = $mydomain\nmydomain = $myorigin\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "loops"));
    buf_free(&err);
}

static void test_errors_name_the_line(void **state)
{
    struct buf err = BUF_INIT;
    assert_null(load("myhostname = a.example\n\nno_such_key = 1\n", &err));
    assert_string_equal(buf_cstr(&err), "main.cf:3: unknown key 'no_such_key'");
    assert_null(load("myhostname a.example\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:1: missing '='"));
    assert_null(load("  relayhost = x\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:1: continuation"));
    assert_null(load("smtpd_tls_auth_only = perhaps\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:1: smtpd_tls_auth_only"));
    assert_null(load("\n\nsmtp_tls_security_level = sometimes\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:3:"));
    assert_null(load("maximal_queue_lifetime = 5y\n", &err));
    assert_null(load("relayhost = $nothing_like_this\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "unknown key '$nothing_like_this'"));
    assert_null(load("mail_version = 9\n", &err));
    buf_free(&err);
}

/* Values other code keeps in fixed buffers are refused when too long, never cut there. */
static void test_lengths_kept_in_buffers(void **state)
{
    struct buf err = BUF_INIT, text = BUF_INIT;
    char label[64];
    memset(label, 'a', 63);
    label[63] = '\0';
    /* Four labels of 63 and dots: 255 octets, the most accepted. */
    buf_printf(&text, "myhostname = %s.%s.%s.%s\n", label, label, label, label);
    struct config *cfg = load(buf_cstr(&text), &err);
    assert_non_null(cfg);
    assert_int_equal(strlen(config_get(cfg, "myhostname")), CONFIG_HOSTNAME_MAX);
    config_free(cfg);
    buf_reset(&text);
    buf_printf(&text, "myhostname = %s.%s.%s.%s.x\n", label, label, label, label);
    assert_null(load(buf_cstr(&text), &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:1: myhostname is longer than 255"));
    /* authserv_id defaults to $myhostname: the expanded value counts. */
    buf_reset(&text);
    buf_printf(&text, "myhostname = a.example\nauthserv_id = %s.%s.%s.%s.$myhostname\n", label,
               label, label, label);
    assert_null(load(buf_cstr(&text), &err));
    assert_non_null(strstr(buf_cstr(&err), "main.cf:2: authserv_id is longer"));
    buf_reset(&text);
    buf_puts(&text, "data_directory = /");
    for (int i = 0; i < CONFIG_DATA_DIR_MAX; i++)
        buf_putc(&text, 'd');
    buf_puts(&text, "\n");
    assert_null(load(buf_cstr(&text), &err));
    assert_non_null(strstr(buf_cstr(&err), "data_directory is longer than 1023"));
    buf_free(&text);
    buf_free(&err);
}

static void test_types(void **state)
{
    struct buf err = BUF_INIT;
    struct config *cfg = load("maximal_queue_lifetime = 2\n"
                              "minimal_backoff_time = 1m\n"
                              "smtp_sasl_auth_enable = YES\n"
                              "message_size_limit = 4096\n"
                              "smtp_sasl_security_options = noanonymous\n"
                              "dkim_algorithm = rsa, ed25519\n",
                              &err);
    assert_non_null(cfg);
    assert_int_equal(config_get_time(cfg, "maximal_queue_lifetime"), 2 * 86400);
    assert_int_equal(config_get_time(cfg, "minimal_backoff_time"), 60);
    assert_true(config_get_bool(cfg, "smtp_sasl_auth_enable"));
    assert_int_equal(config_get_int(cfg, "message_size_limit"), 4096);
    config_free(cfg);
    buf_free(&err);
}

static void test_postfix_relay_lines(void **state)
{
    /* SPEC.md: these lines from a Postfix set-up must work unchanged. */
    struct buf err = BUF_INIT;
    struct config *cfg = load("relayhost = in-v3.mailjet.com:587\n"
                              "smtp_sasl_auth_enable = yes\n"
                              "smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"
                              "smtp_sasl_security_options = noanonymous\n"
                              "smtp_tls_security_level = may\n"
                              "header_size_limit = 4096000\n",
                              &err);
    assert_non_null(cfg);
    assert_string_equal(config_get(cfg, "relayhost"), "in-v3.mailjet.com:587");
    assert_int_equal(config_get_int(cfg, "header_size_limit"), 4096000);
    config_free(cfg);
    buf_free(&err);
}

static void test_embedded_default(void **state)
{
    struct config *cfg = config_defaults(1);
    assert_non_null(strstr(config_get(cfg, "data_directory"), "hongyan-data"));
    assert_string_equal(config_get(cfg, "smtpd_listen"), "127.0.0.1:2525");
    assert_string_equal(config_get(cfg, "smtpd_tls_auth_only"), "yes");
    config_free(cfg);
    cfg = config_defaults(0);
    assert_string_equal(config_get(cfg, "data_directory"), "/var/lib/hongyan");
    config_free(cfg);
}

static void test_list_split_keeps_braces(void **state)
{
    size_t n;
    char **l = strlist_split("inline:{a=b, c=d}, hash:/x  texthash:/y", &n);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "inline:{a=b, c=d}");
    assert_string_equal(l[2], "texthash:/y");
    strlist_free(l);
}

/* The binary search finds every key of the table, and nothing else. */
static void test_key_index(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_key_count; i++)
        assert_int_equal(config_key_index(config_keys[i].name), (int)i);
    assert_int_equal(config_key_index(""), -1);
    assert_int_equal(config_key_index("aaaa"), -1);
    assert_int_equal(config_key_index("zzzz"), -1);
    assert_int_equal(config_key_index("myhostnam"), -1);
    assert_int_equal(config_key_index("myhostnamee"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_index),
        cmocka_unit_test(test_continuation_and_comments),
        cmocka_unit_test(test_expansion),
        cmocka_unit_test(test_loop_is_an_error),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_lengths_kept_in_buffers),
        cmocka_unit_test(test_postfix_relay_lines),
        cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_list_split_keeps_braces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
