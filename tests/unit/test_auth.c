/*
 * Unit tests for SMTP AUTH checks (src/smtpd/auth.c): each hash kind right
 * and wrong, unknown users, the users file, and the failure throttle with
 * an explicit clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>
#include <crypt.h>
#include <event2/event.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"
#include "smtpd/sasl.h"

static char *make_hash(const char *prefix, unsigned long count, const char *pass)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof salt));
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    char *out = crypt_rn(pass, salt, &cd, sizeof cd);
    assert_non_null(out);
    assert_true(out[0] == '$');
    return xstrdup(out);
}

struct fixture {
    char dir[64];
    char *cf;
    char *users;
    struct config *cfg;
    struct event_base *base;
    struct workq *q;
    struct auth *auth;
};

static void write_text(const char *path, const char *text)
{
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

static void fixture_config(struct fixture *f, const char *extra)
{
    struct buf text = BUF_INIT;
    buf_printf(&text, "data_directory = %s\nmyhostname = mx.example.com\nsmtpd_sasl_users = %s\n%s",
               f->dir, f->users, extra ? extra : "");
    write_text(f->cf, buf_cstr(&text));
    buf_free(&text);
    config_free(f->cfg);
    struct buf err = BUF_INIT;
    f->cfg = config_load(f->cf, &err);
    if (f->cfg == NULL)
        fail_msg("config: %s", buf_cstr(&err));
    buf_free(&err);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    str_copy(f->dir, sizeof f->dir, "/tmp/hongyan-test-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cf = xasprintf("%s/main.cf", f->dir);
    f->users = xasprintf("%s/users", f->dir);
    f->base = event_base_new();
    f->q = workq_new(f->base, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_free(f->auth);
    workq_free(f->q);
    event_base_free(f->base);
    config_free(f->cfg);
    unlink(f->cf);
    unlink(f->users);
    rmdir(f->dir);
    free(f->cf);
    free(f->users);
    free(f);
    return 0;
}

static void fixture_auth(struct fixture *f, const char *extra)
{
    fixture_config(f, extra);
    struct buf err = BUF_INIT;
    auth_free(f->auth);
    f->auth = auth_new(f->base, f->q, f->cfg, &err);
    if (f->auth == NULL)
        fail_msg("auth_new: %s", buf_cstr(&err));
    buf_free(&err);
}

struct answer {
    int called;
    enum auth_result result;
    struct event_base *base;
};

static void on_done(void *arg, enum auth_result r)
{
    struct answer *a = arg;
    a->called++;
    a->result = r;
    event_base_loopbreak(a->base);
}

/* Runs one check to completion on the loop (bounded by a 20 s guard). */
static enum auth_result check(struct fixture *f, const char *user, const char *pass,
                              const char *addr)
{
    struct answer a = {0, AUTH_TEMPFAIL, f->base};
    struct auth_pending *p = auth_check(f->auth, user, pass, addr, on_done, &a);
    assert_non_null(p);
    /* done never runs inside auth_check. */
    assert_int_equal(a.called, 0);
    struct timeval guard = {20, 0};
    event_base_loopexit(f->base, &guard);
    event_base_dispatch(f->base);
    assert_int_equal(a.called, 1);
    return a.result;
}

static void test_hash_kinds(void **state)
{
    struct fixture *f = *state;
    char *y = make_hash("$y$", 0, "yes-pw");
    char *s6 = make_hash("$6$", 0, "sha-pw");
    char *b = make_hash("$2b$", 5, "bcrypt-pw");
    struct buf text = BUF_INIT;
    buf_printf(&text, "# users\n\nyuki:%s\nsam:%s\n  bea:%s  \n", y, s6, b);
    write_text(f->users, buf_cstr(&text));
    buf_free(&text);
    fixture_auth(f, "smtpd_sasl_failure_delay = 0\n");
    assert_true(auth_available(f->auth));
    assert_int_equal(auth_user_count(f->auth), 3);

    assert_int_equal(check(f, "yuki", "yes-pw", "192.0.2.1"), AUTH_OK);
    assert_int_equal(check(f, "sam", "sha-pw", "192.0.2.1"), AUTH_OK);
    assert_int_equal(check(f, "bea", "bcrypt-pw", "192.0.2.1"), AUTH_OK);
    assert_int_equal(check(f, "yuki", "yes-pW", "192.0.2.2"), AUTH_FAIL);
    assert_int_equal(check(f, "sam", "sha-pw ", "192.0.2.3"), AUTH_FAIL);
    assert_int_equal(check(f, "bea", "", "192.0.2.4"), AUTH_FAIL);
    /* Another user's password, and names are exact. */
    assert_int_equal(check(f, "yuki", "sha-pw", "192.0.2.5"), AUTH_FAIL);
    assert_int_equal(check(f, "Yuki", "yes-pw", "192.0.2.6"), AUTH_FAIL);
    /* Unknown user: fails, also with a password that is some user's. */
    assert_int_equal(check(f, "nobody", "yes-pw", "192.0.2.7"), AUTH_FAIL);

    assert_true(auth_hash_verify(y, "yes-pw"));
    assert_false(auth_hash_verify(y, "yes-pw2"));
    assert_false(auth_hash_verify("$6$", "x"));
    free(y);
    free(s6);
    free(b);
}

static void test_users_file(void **state)
{
    struct fixture *f = *state;
    /* Missing file: nothing offered, every check fails. */
    fixture_auth(f, NULL);
    assert_false(auth_available(f->auth));
    assert_int_equal(check(f, "a", "b", "198.51.100.1"), AUTH_FAIL);

    /* Bad lines are skipped, good ones kept; later fields ignored. */
    char *h = make_hash("$6$", 0, "pw");
    struct buf text = BUF_INIT;
    buf_printf(&text, "nocolon\nbad user:%s\nweird:notahash\nok:%s:extra\n", h, h);
    write_text(f->users, buf_cstr(&text));
    buf_free(&text);
    struct buf err = BUF_INIT;
    assert_int_equal(auth_reload(f->auth, f->cfg, &err), 0);
    assert_true(auth_available(f->auth));
    assert_int_equal(auth_user_count(f->auth), 1);
    assert_int_equal(check(f, "ok", "pw", "198.51.100.2"), AUTH_OK);

    /* Reload picks up a change. */
    buf_printf(&text, "other:%s\n", h);
    write_text(f->users, buf_cstr(&text));
    buf_free(&text);
    assert_int_equal(auth_reload(f->auth, f->cfg, &err), 0);
    assert_int_equal(check(f, "ok", "pw", "198.51.100.3"), AUTH_FAIL);
    assert_int_equal(check(f, "other", "pw", "198.51.100.3"), AUTH_OK);
    buf_free(&err);
    free(h);

    assert_true(auth_user_name_ok("alice@example.com"));
    assert_false(auth_user_name_ok(""));
    assert_false(auth_user_name_ok("a:b"));
    assert_false(auth_user_name_ok("a b"));
    assert_false(auth_user_name_ok("a\tb"));
    assert_false(auth_user_name_ok("a\x7f"));
}

static void test_throttle_arithmetic(void **state)
{
    (void)state;
    struct auth_throttle *t = auth_throttle_new(3, 10000, 1000);
    const char *a = "203.0.113.9";
    assert_int_equal(auth_throttle_wait(t, a, 5), 0);
    auth_throttle_failed(t, a, 0);
    assert_int_equal(auth_throttle_failures(t, a, 0), 1);
    assert_int_equal(auth_throttle_wait(t, a, 0), 1000);
    assert_int_equal(auth_throttle_wait(t, a, 400), 600);
    assert_int_equal(auth_throttle_wait(t, a, 1000), 0);
    /* Another address is not affected. */
    assert_int_equal(auth_throttle_wait(t, "203.0.113.10", 0), 0);
    /* The delay doubles. */
    auth_throttle_failed(t, a, 1000);
    assert_int_equal(auth_throttle_wait(t, a, 1000), 2000);
    assert_int_equal(auth_throttle_wait(t, a, 2500), 500);
    /* The limit: refused until the window has passed since the last failure. */
    auth_throttle_failed(t, a, 3000);
    assert_int_equal(auth_throttle_wait(t, a, 3000), -1);
    assert_int_equal(auth_throttle_wait(t, a, 12999), -1);
    assert_int_equal(auth_throttle_wait(t, a, 13000), 0);
    assert_int_equal(auth_throttle_failures(t, a, 13000), 0);

    /* The delay stops growing at 32 times the base. */
    auth_throttle_set(t, 100, 1000000, 10);
    for (int i = 0; i < 9; i++)
        auth_throttle_failed(t, "192.0.2.50", 100);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.50", 100), 320);
    /* limit 0: never refused. */
    auth_throttle_set(t, 0, 1000000, 10);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.50", 100), 320);

    /* IPv6: one /64 is one client. */
    auth_throttle_set(t, 2, 10000, 1000);
    auth_throttle_failed(t, "2001:db8:1:2::1", 0);
    auth_throttle_failed(t, "2001:db8:1:2:ffff::7", 0);
    assert_int_equal(auth_throttle_wait(t, "2001:db8:1:2::99", 0), -1);
    assert_int_equal(auth_throttle_wait(t, "2001:db8:1:3::1", 0), 0);

    /* Many addresses: the table stays bounded and keeps working. */
    char addr[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        auth_throttle_failed(t, addr, 5);
    }
    assert_int_equal(auth_throttle_failures(t, addr, 5), 1);
    auth_throttle_free(t);
    auth_throttle_free(NULL);
}

static void test_throttle_global_limit(void **state)
{
    (void)state;
    /* Per address: 100 failures; all together: 5 within a 10 s window. */
    struct auth_throttle *t = auth_throttle_new(100, 10000, 0);
    auth_throttle_set_global(t, 5, 64);
    char addr[64];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(auth_throttle_wait(t, "198.51.100.1", 1000), 0);
        snprintf(addr, sizeof addr, "198.51.100.%d", 10 + i); /* each from its own address */
        auth_throttle_failed(t, addr, 1000);
    }
    assert_int_equal(auth_throttle_global_failures(t, 1000), 5);
    /* Everyone waits now, even an address that never failed. */
    assert_int_equal(auth_throttle_wait(t, "192.0.2.77", 1000), -2);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.77", 9999), -2);
    /* The next window weighs the last one less and less, then forgets it. */
    assert_true(auth_throttle_global_failures(t, 15000) < 5);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.77", 15000), 0);
    assert_int_equal(auth_throttle_global_failures(t, 40000), 0);
    /* 0: no global limit. */
    auth_throttle_set_global(t, 0, 64);
    for (int i = 0; i < 50; i++)
        auth_throttle_failed(t, "198.51.100.200", 50000);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.77", 50000), 0);
    /* A wider IPv6 prefix: a /48 is one client. */
    auth_throttle_set(t, 2, 10000, 0);
    auth_throttle_set_global(t, 0, 48);
    auth_throttle_failed(t, "2001:db8:1:2::1", 60000);
    auth_throttle_failed(t, "2001:db8:1:3::1", 60000);
    assert_int_equal(auth_throttle_wait(t, "2001:db8:1:ffff::1", 60000), -1);
    assert_int_equal(auth_throttle_wait(t, "2001:db8:2::1", 60000), 0);
    auth_throttle_free(t);
}

static void test_client_addr_key(void **state)
{
    (void)state;
    char key[64];
    client_addr_key("192.0.2.1", 64, key, sizeof key);
    assert_string_equal(key, "192.0.2.1");
    client_addr_key("2001:db8:1:2:3:4:5:6", 64, key, sizeof key);
    assert_string_equal(key, "2001:db8:1:2::/64");
    client_addr_key("2001:db8:1:2:3:4:5:6", 56, key, sizeof key);
    assert_string_equal(key, "2001:db8:1::/56");
    client_addr_key("2001:db8:1:2:3:4:5:6", 60, key, sizeof key);
    assert_string_equal(key, "2001:db8:1::/60");
    client_addr_key("2001:db8:1:2:3:4:5:6", 128, key, sizeof key);
    assert_string_equal(key, "2001:db8:1:2:3:4:5:6");
    client_addr_key("::ffff:198.51.100.7", 64, key, sizeof key);
    assert_string_equal(key, "198.51.100.7");
    client_addr_key("unknown", 64, key, sizeof key);
    assert_string_equal(key, "unknown");
}

/* Through auth_check: after the limit, refused without a check; another address still works. */
static void test_throttle_refusal(void **state)
{
    struct fixture *f = *state;
    char *h = make_hash("$6$", 0, "right");
    struct buf text = BUF_INIT;
    buf_printf(&text, "u:%s\n", h);
    write_text(f->users, buf_cstr(&text));
    buf_free(&text);
    free(h);
    fixture_auth(f, "smtpd_sasl_failure_limit = 3\nsmtpd_sasl_failure_delay = 0\n");
    const char *bad = "192.0.2.66";
    assert_int_equal(check(f, "u", "wrong", bad), AUTH_FAIL);
    assert_int_equal(check(f, "nobody", "wrong", bad), AUTH_FAIL);
    assert_int_equal(check(f, "u", "right", bad), AUTH_OK);
    assert_int_equal(check(f, "u", "wrong", bad), AUTH_FAIL);
    /* Third failure reached: even the right password is refused now. */
    assert_int_equal(check(f, "u", "right", bad), AUTH_REFUSED);
    assert_int_equal(strncmp(auth_result_reply(AUTH_REFUSED), "421 4.7.0", 9), 0);
    assert_int_equal(check(f, "u", "right", "192.0.2.67"), AUTH_OK);
}

/* A failure makes the next check from the address wait: observable as a delay on the loop. */
static void test_throttle_delay(void **state)
{
    struct fixture *f = *state;
    char *h = make_hash("$6$", 0, "right");
    struct buf text = BUF_INIT;
    buf_printf(&text, "u:%s\n", h);
    write_text(f->users, buf_cstr(&text));
    buf_free(&text);
    free(h);
    fixture_auth(f, "smtpd_sasl_failure_delay = 1\n");
    assert_int_equal(check(f, "u", "wrong", "192.0.2.80"), AUTH_FAIL);
    uint64_t t0 = now_ms();
    assert_int_equal(check(f, "u", "right", "192.0.2.80"), AUTH_OK);
    /* At least the configured second (a lower bound only: never flaky). */
    assert_true(now_ms() - t0 >= 900);
}

static void never(void *arg, enum auth_result r)
{
    (void)arg;
    (void)r;
    fail_msg("done called after auth_cancel");
}

static void test_cancel(void **state)
{
    struct fixture *f = *state;
    fixture_auth(f, "smtpd_sasl_failure_delay = 0\n");
    /* Cancelled while waiting on its timer. */
    auth_cancel(auth_check(f->auth, "x", "y", "192.0.2.90", never, NULL));
    /* Cancelled while on the work queue: the timer has fired after one loop pass. */
    struct auth_pending *p = auth_check(f->auth, "x", "y", "192.0.2.91", never, NULL);
    event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    auth_cancel(p);
    for (int i = 0; i < 2000 && workq_pending(f->q) > 0; i++)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(workq_pending(f->q), 0);
    /* auth_free with nothing pending, then the fixture frees NULL. */
    auth_free(f->auth);
    f->auth = NULL;
    auth_cancel(NULL);
}

/* Reads the whole mail log written by the test (NUL-terminated; caller frees). */
static char *read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = xcalloc(1, 4096);
    size_t n = fread(text, 1, 4095, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/*
 * What the session logs for a failed AUTH: the user name as the SASL layer
 * decoded it, made printable, on one line, and never the password that came
 * in the same PLAIN response.
 */
static void test_log_redaction(void **state)
{
    (void)state;
    char dir[] = "/tmp/hongyan-authlog-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/maillog", dir);
    struct buf err = BUF_INIT;
    assert_int_equal(log_open_file(path, &err), 0);
    log_set_stderr(0);

    /* AUTH PLAIN "\0alice\0hunter2-secret" as a client sends it. */
    struct sasl *s = sasl_new();
    assert_int_equal(sasl_start(s, "PLAIN", "AGFsaWNlAGh1bnRlcjItc2VjcmV0"), SASL_CHECK);
    assert_string_equal(sasl_password(s), "hunter2-secret");
    auth_log_failure("unknown[127.0.0.1]", "PLAIN", sasl_user(s), AUTH_FAIL);
    sasl_free(s);
    /* A hostile name cannot forge a second log line or hide control bytes. */
    auth_log_failure("unknown[127.0.0.1]", "LOGIN", "evil\r\nname\x01", AUTH_FAIL);
    auth_log_failure("unknown[127.0.0.1]", "PLAIN", NULL, AUTH_REFUSED);

    assert_int_equal(log_open_file(NULL, &err), 0);
    char *text = read_log(path);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "SASL PLAIN authentication failed: authentication failure, "
                                 "sasl_username=alice\n"));
    assert_non_null(strstr(text, "sasl_username=evil??name?\n"));
    assert_null(strchr(text, '\r'));
    assert_non_null(strstr(text, "too many failures from this address, sasl_username=\n"));
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);

    free(text);
    unlink(path);
    rmdir(dir);
    free(path);
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_file, setup, teardown),
        cmocka_unit_test(test_throttle_arithmetic),
        cmocka_unit_test(test_throttle_global_limit),
        cmocka_unit_test(test_client_addr_key),
        cmocka_unit_test_setup_teardown(test_throttle_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test(test_log_redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
