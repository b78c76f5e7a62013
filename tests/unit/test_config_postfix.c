/*
 * Unit tests for Postfix compatibility of the main.cf reader: the class of
 * every Postfix parameter, refusals and typos, keys set twice, checked
 * values, and the Debian keys that map onto ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_keys.h"
#include "lib/util.h"

static struct config *load(const char *text, struct buf *err)
{
    buf_reset(err);
    return config_load_text("main.cf", text, strlen(text), err);
}

/* The table and config_keys agree: implemented means a key we read, and nothing else does. */
static void test_table_consistent(void **state)
{
    (void)state;
    assert_true(config_postfix_param_count > 1000);
    for (size_t i = 0; i < config_postfix_param_count; i++) {
        const struct config_postfix_param *pf = &config_postfix_params[i];
        int ours = config_key_index(pf->name) >= 0;
        if (ours != (pf->class == CONFIG_PF_IMPLEMENTED))
            fail_msg("%s: class and config_keys.c disagree", pf->name);
        if (pf->class != CONFIG_PF_IMPLEMENTED && (pf->reason == NULL || !*pf->reason))
            fail_msg("%s: no reason", pf->name);
    }
}

static void test_ignored_unsupported_unknown(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct config *cfg =
        load("biff = no\ncompatibility_level = 3.6\nreadme_directory = no\n", &err);
    assert_non_null(cfg);
    assert_int_equal(config_ignored_count(cfg), 3);
    const char *value, *reason;
    int line;
    assert_string_equal(config_ignored(cfg, 1, &value, &reason, &line), "compatibility_level");
    assert_string_equal(value, "3.6");
    assert_int_equal(line, 2);
    assert_non_null(reason);
    assert_string_equal(config_ignored_value(cfg, "biff"), "no");
    config_free(cfg);

    cfg = load("myhostname = a.example\nalways_bcc = audit@example.com\n", &err);
    assert_null(cfg);
    assert_non_null(strstr(buf_cstr(&err), "main.cf:2: always_bcc"));
    assert_non_null(strstr(buf_cstr(&err), "not implemented"));
    assert_null(strstr(buf_cstr(&err), "unknown"));

    cfg = load("relay_host = [smtp.example.com]:587\n", &err);
    assert_null(cfg);
    assert_non_null(strstr(buf_cstr(&err), "unknown key 'relay_host'"));
    assert_non_null(strstr(buf_cstr(&err), "'relayhost'"));
    cfg = load("mydomian = example.com\n", &err);
    assert_null(cfg);
    assert_non_null(strstr(buf_cstr(&err), "'mydomain'"));
    /* Nothing near: no suggestion. */
    cfg = load("zzzzzzzzzzzzzzzzzzzz = 1\n", &err);
    assert_null(cfg);
    assert_null(strstr(buf_cstr(&err), "did you mean"));
    buf_free(&err);
}

static void test_set_twice_warns(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct config *cfg = load("relayhost = [a.example]:587\nbiff = no\n"
                              "relayhost = [b.example]:587\nbiff = yes\nmyhostname = m.example\n"
                              "myhostname = m.example\n",
                              &err);
    assert_non_null(cfg);
    assert_string_equal(config_get(cfg, "relayhost"), "[b.example]:587");
    const char *w = config_warnings(cfg);
    assert_non_null(
        strstr(w, "main.cf, line 3: overriding earlier entry: relayhost=[a.example]:587"));
    assert_non_null(strstr(w, "line 4: overriding earlier entry: biff=no"));
    /* The same value twice is no news. */
    assert_null(strstr(w, "myhostname"));
    config_free(cfg);
    buf_free(&err);
}

static void test_values_checked(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    static const char *bad[] = {
        "relayhost = 127.0.0.1:31587x\n",
        "relayhost = [mail.example.com]:0\n",
        "relayhost = [mail.example.com\n",
        "relayhost = 2001:db8::1:25\n",
        "smtpd_listen = 127.0.0.1\n",
        "smtpd_listen = 127.0.0.1:nosuchservice\n",
        "dns_resolver = 127.0.0.1:99999\n",
        "alias_maps = dbm:/etc/aliases\n",
        "transport_maps = /etc/postfix/transport\n",
        "smtp_tls_session_cache_database = /var/lib/x\n",
        "smtpd_timeout = 5 minutes\n",
        "message_size_limit = 10M\n",
        "message_size_limit = 60000000\n",
        "append_dot_mydomain = yes\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config *cfg = load(bad[i], &err);
        if (cfg != NULL)
            fail_msg("accepted: %s", bad[i]);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(bad[i], " "), bad[i]);
        if (strstr(buf_cstr(&err), key) == NULL)
            fail_msg("%s: error does not name the key: %s", bad[i], buf_cstr(&err));
    }
    static const char *good[] = {
        "relayhost = in-v3.mailjet.com:587\n",
        "relayhost = [smtp.example.com]:submission\n",
        "relayhost = [2001:db8::1]:25, [b.example]\n",
        "smtpd_listen = [::1]:2525 *:2526 :2527 127.0.0.1:smtp\n",
        "alias_maps = hash:/etc/aliases, texthash:/x, inline:{a=b, c=d}\n",
        "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "reject_unauth_destination\n",
        "smtpd_relay_restrictions = permit_sasl_authenticated reject_unauth_destination\n",
        "mailbox_size_limit = 0\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct config *cfg = load(good[i], &err);
        if (cfg == NULL)
            fail_msg("refused: %s: %s", good[i], buf_cstr(&err));
        config_free(cfg);
    }
    buf_free(&err);
}

static void test_myorigin_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_mailname_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, "mail.example.org\nignored\n", 25), 0);
    close(fd);
    struct buf err = BUF_INIT, text = BUF_INIT;
    buf_printf(&text, "myorigin = %s\n", path);
    struct config *cfg = load(buf_cstr(&text), &err);
    assert_non_null(cfg);
    assert_string_equal(config_get(cfg, "myorigin"), "mail.example.org");
    assert_string_equal(config_get_raw(cfg, "myorigin"), path);
    config_free(cfg);
    unlink(path);
    cfg = load(buf_cstr(&text), &err);
    assert_null(cfg);
    assert_non_null(strstr(buf_cstr(&err), "myorigin: cannot read"));
    buf_free(&text);
    buf_free(&err);
}

static void test_inet_interfaces(void **state)
{
    (void)state;
    static const char *cases[][2] = {
        {"inet_interfaces = all\ninet_protocols = all\n", "*:25"},
        {"inet_interfaces = all\ninet_protocols = ipv4\n", "0.0.0.0:25"},
        {"inet_interfaces = loopback-only\n", "127.0.0.1:25 [::1]:25"},
        {"inet_interfaces = 192.0.2.1, [2001:db8::1]\n", "192.0.2.1:25 [2001:db8::1]:25"},
        {"inet_protocols = ipv6\n", "[::]:25"},
        /* smtpd_listen wins, as our own key. */
        {"inet_interfaces = all\nsmtpd_listen = 127.0.0.1:2525\n", "127.0.0.1:2525"},
    };
    struct buf err = BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config *cfg = load(cases[i][0], &err);
        if (cfg == NULL)
            fail_msg("%s: %s", cases[i][0], buf_cstr(&err));
        assert_string_equal(config_get(cfg, "smtpd_listen"), cases[i][1]);
        config_free(cfg);
    }
    assert_null(load("inet_interfaces = ::1\ninet_protocols = ipv4\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "inet_interfaces"));
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_consistent), cmocka_unit_test(test_ignored_unsupported_unknown),
        cmocka_unit_test(test_set_twice_warns),  cmocka_unit_test(test_values_checked),
        cmocka_unit_test(test_myorigin_file),    cmocka_unit_test(test_inet_interfaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
