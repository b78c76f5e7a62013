/*
 * Unit tests for the TLS/AUTH session rules (src/smtpd/submission.c): where
 * STARTTLS and AUTH are offered, refusals before TLS, the sender login map,
 * and the RFC 3848 Received words.
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

#include "config/config.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"
#include "smtpd/submission.h"

static char dir[64];

static struct config *load(const char *extra)
{
    char *cf = xasprintf("%s/main.cf", dir);
    char *text = xasprintf("data_directory = %s\nmyhostname = mx.example.com\n%s", dir, extra);
    assert_int_equal(write_file_atomic(cf, text, strlen(text), 0600), 0);
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(cf, &err);
    if (cfg == NULL)
        fail_msg("config: %s", buf_cstr(&err));
    buf_free(&err);
    free(text);
    free(cf);
    return cfg;
}

static struct auth *auth_with_users(struct config *cfg, int with_file)
{
    char *users = xasprintf("%s/users", dir);
    if (with_file)
        assert_int_equal(write_file_atomic(users, "u:$6$abc$def\n", 13, 0600), 0);
    else
        unlink(users);
    free(users);
    struct buf err = BUF_INIT;
    struct auth *a = auth_new(NULL, NULL, cfg, &err);
    assert_non_null(a);
    buf_free(&err);
    return a;
}

static void test_offers(void **state)
{
    (void)state;
    struct config *cfg = load("");
    struct auth *a = auth_with_users(cfg, 1);
    /* STARTTLS: offered where a context exists and TLS is not on yet; never on smtps. */
    assert_true(submission_starttls_offered(cfg, LISTEN_SMTPD, 1, 0));
    assert_true(submission_starttls_offered(cfg, LISTEN_SUBMISSION, 1, 0));
    assert_false(submission_starttls_offered(cfg, LISTEN_SUBMISSION, 1, 1));
    assert_false(submission_starttls_offered(cfg, LISTEN_SUBMISSION, 0, 0));
    assert_false(submission_starttls_offered(cfg, LISTEN_SMTPS, 1, 0));
    assert_true(submission_tls_required(cfg, LISTEN_SUBMISSION));
    assert_false(submission_tls_required(cfg, LISTEN_SMTPD));
    assert_false(submission_tls_required(cfg, LISTEN_SMTPS));

    /* AUTH: after TLS on submission/smtps; not on port 25 by default. */
    assert_false(submission_auth_offered(cfg, LISTEN_SUBMISSION, a, 0));
    assert_true(submission_auth_offered(cfg, LISTEN_SUBMISSION, a, 1));
    assert_true(submission_auth_offered(cfg, LISTEN_SMTPS, a, 1));
    assert_false(submission_auth_offered(cfg, LISTEN_SMTPD, a, 1));
    assert_int_equal(
        strncmp(submission_auth_refusal(cfg, LISTEN_SUBMISSION, a, 0, 0), "538 5.7.11", 10), 0);
    assert_null(submission_auth_refusal(cfg, LISTEN_SUBMISSION, a, 1, 0));
    assert_int_equal(strncmp(submission_auth_refusal(cfg, LISTEN_SUBMISSION, a, 1, 1), "503", 3),
                     0);
    assert_int_equal(strncmp(submission_auth_refusal(cfg, LISTEN_SMTPD, a, 1, 0), "503", 3), 0);
    assert_true(submission_auth_required(LISTEN_SUBMISSION));
    assert_true(submission_auth_required(LISTEN_SMTPS));
    assert_false(submission_auth_required(LISTEN_SMTPD));
    auth_free(a);

    /* No users file: no AUTH anywhere. */
    a = auth_with_users(cfg, 0);
    assert_false(submission_auth_offered(cfg, LISTEN_SUBMISSION, a, 1));
    assert_non_null(submission_auth_refusal(cfg, LISTEN_SUBMISSION, a, 1, 0));
    auth_free(a);
    assert_false(submission_auth_offered(cfg, LISTEN_SUBMISSION, NULL, 1));
    config_free(cfg);

    /* Port 25 with AUTH enabled, TLS level none, auth_only off. */
    cfg = load("smtpd_sasl_auth_enable = yes\nsmtpd_tls_security_level = none\n"
               "smtpd_tls_auth_only = no\n");
    a = auth_with_users(cfg, 1);
    assert_false(submission_starttls_offered(cfg, LISTEN_SMTPD, 1, 0));
    assert_true(submission_starttls_offered(cfg, LISTEN_SUBMISSION, 1, 0));
    assert_true(submission_auth_offered(cfg, LISTEN_SMTPD, a, 0));
    assert_null(submission_auth_refusal(cfg, LISTEN_SMTPD, a, 0, 0));
    auth_free(a);
    config_free(cfg);

    cfg = load("smtpd_tls_security_level = encrypt\n");
    assert_true(submission_tls_required(cfg, LISTEN_SMTPD));
    config_free(cfg);
}

static void test_sender_login_map(void **state)
{
    (void)state;
    char *map = xasprintf("%s/senders", dir);
    const char *text = "alice@example.com   alice\n"
                       "shared@example.com  alice, bob\n"
                       "@example.org        carol\n";
    assert_int_equal(write_file_atomic(map, text, strlen(text), 0600), 0);
    char *extra = xasprintf("smtpd_sender_login_maps = texthash:%s\n", map);
    struct config *cfg = load(extra);
    struct buf reply = BUF_INIT;
    assert_int_equal(submission_sender_login_check(cfg, "alice@example.com", "alice", &reply), 0);
    assert_int_equal(submission_sender_login_check(cfg, "Alice@Example.com", "alice", &reply), 0);
    assert_int_equal(submission_sender_login_check(cfg, "shared@example.com", "bob", &reply), 0);
    assert_int_equal(submission_sender_login_check(cfg, "any@example.org", "carol", &reply), 0);
    assert_int_equal(submission_sender_login_check(cfg, "", "bob", &reply), 0);
    assert_int_equal(reply.len, 0);
    assert_int_equal(submission_sender_login_check(cfg, "alice@example.com", "bob", &reply), -1);
    assert_int_equal(strncmp(buf_cstr(&reply), "553 5.7.1 <alice@example.com>", 29), 0);
    buf_reset(&reply);
    /* Not in the map at all: not anyone's to use. */
    assert_int_equal(submission_sender_login_check(cfg, "x@elsewhere.test", "alice", &reply), -1);
    buf_reset(&reply);
    assert_int_equal(submission_sender_login_check(cfg, "any@example.org", "alice", &reply), -1);
    buf_reset(&reply);
    config_free(cfg);

    /* No map: every sender allowed. */
    cfg = load("");
    assert_int_equal(submission_sender_login_check(cfg, "x@elsewhere.test", "alice", &reply), 0);
    config_free(cfg);
    buf_free(&reply);
    unlink(map);
    free(map);
    free(extra);
}

static void test_received(void **state)
{
    (void)state;
    assert_string_equal(submission_received_with(1, 1, 1), "ESMTPSA");
    assert_string_equal(submission_received_with(1, 1, 0), "ESMTPS");
    assert_string_equal(submission_received_with(1, 0, 1), "ESMTPA");
    assert_string_equal(submission_received_with(1, 0, 0), "ESMTP");
    assert_string_equal(submission_received_with(0, 0, 0), "SMTP");

    struct config *cfg = load("");
    struct buf out = BUF_INIT;
    submission_received_comment(cfg, NULL, "alice", &out);
    assert_int_equal(out.len, 0); /* user named only when configured */
    config_free(cfg);
    cfg = load("smtpd_sasl_authenticated_header = yes\n");
    submission_received_comment(cfg, NULL, "al(i)ce", &out);
    assert_string_equal(buf_cstr(&out), "(Authenticated sender: al\\(i\\)ce)");
    buf_reset(&out);
    submission_received_comment(cfg, NULL,
                                "b\xff"
                                "b\xc3\xa9",
                                &out); /* from the client: text only */
    assert_string_equal(buf_cstr(&out), "(Authenticated sender: b?b\xc3\xa9)");
    config_free(cfg);
    buf_free(&out);
}

static int setup(void **state)
{
    (void)state;
    str_copy(dir, sizeof dir, "/tmp/hongyan-test-submission-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"main.cf", "users", "senders"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_sender_login_map),
        cmocka_unit_test(test_received),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
