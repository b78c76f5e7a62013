/* Unit tests for the SASL PLAIN/LOGIN state machine and strict base64 (src/smtpd/sasl.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base64.h"
#include "smtpd/sasl.h"

/* base64 of arbitrary bytes (NULs included), into a static buffer. */
static const char *b64(const char *data, size_t len)
{
    static struct buf out = BUF_INIT;
    buf_reset(&out);
    base64_encode(data, len, &out);
    return buf_cstr(&out);
}

static void test_plain_initial_response(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    assert_int_equal(sasl_start(s, "PLAIN", b64("\0alice\0s3cret", 13)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "alice");
    assert_string_equal(sasl_password(s), "s3cret");
    assert_string_equal(sasl_mechanism(s), "PLAIN");
    /* Mechanism names are case-insensitive (RFC 4422 section 3.1). */
    assert_int_equal(sasl_start(s, "plain", b64("\0bob\0pw", 7)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "bob");
    sasl_free(s);
}

static void test_plain_authzid(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    /* authzid equal to authcid is allowed. */
    assert_int_equal(sasl_start(s, "PLAIN", b64("alice\0alice\0pw", 14)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "alice");
    /* Acting for someone else is refused. */
    assert_int_equal(sasl_start(s, "PLAIN", b64("root\0alice\0pw", 13)), SASL_ERR_AUTHZ);
    assert_string_equal(sasl_user(s), "");
    assert_string_equal(sasl_password(s), "");
    assert_int_equal(sasl_start(s, "PLAIN", b64("alicex\0alice\0pw", 15)), SASL_ERR_AUTHZ);
    assert_int_equal(strncmp(sasl_status_reply(SASL_ERR_AUTHZ), "535 5.7.8", 9), 0);
    sasl_free(s);
}

static void test_plain_malformed(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    /* Empty fields. */
    assert_int_equal(sasl_start(s, "PLAIN", b64("\0\0pw", 4)), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "PLAIN", b64("\0alice\0", 7)), SASL_ERR_SYNTAX);
    /* Missing separators, or one too many. */
    assert_int_equal(sasl_start(s, "PLAIN", b64("alicepw", 7)), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "PLAIN", b64("\0alicepw", 8)), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "PLAIN", b64("\0alice\0pw\0x", 11)), SASL_ERR_SYNTAX);
    /* Bad base64. */
    assert_int_equal(sasl_start(s, "PLAIN", "AGFsaWNlAHB3!"), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "PLAIN", "AGFsaWNlAHB3"), SASL_CHECK); /* control: valid */
    assert_int_equal(sasl_start(s, "PLAIN", "AGFsaWNlAHB"), SASL_ERR_SYNTAX);
    /* A field over 255 octets. */
    char big[300];
    big[0] = '\0';
    memcpy(big + 1, "alice", 5);
    big[6] = '\0';
    memset(big + 7, 'x', 256);
    assert_int_equal(sasl_start(s, "PLAIN", b64(big, 7 + 256)), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "PLAIN", b64(big, 7 + 255)), SASL_CHECK);
    assert_int_equal(strlen(sasl_password(s)), 255);
    /* "=" is the empty initial response: for PLAIN that is malformed. */
    assert_int_equal(sasl_start(s, "PLAIN", "="), SASL_ERR_SYNTAX);
    assert_string_equal(sasl_status_reply(SASL_ERR_SYNTAX),
                        "501 5.5.2 Syntax error in authentication data");
    sasl_free(s);
}

static void test_plain_challenge(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    assert_int_equal(sasl_start(s, "PLAIN", NULL), SASL_CHALLENGE);
    assert_string_equal(sasl_challenge(s), "");
    const char *resp = b64("\0alice\0pw", 9);
    assert_int_equal(sasl_step(s, resp, strlen(resp)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "alice");
    assert_string_equal(sasl_password(s), "pw");
    /* After the answer, more lines are a protocol error. */
    assert_int_equal(sasl_step(s, resp, strlen(resp)), SASL_ERR_SYNTAX);
    /* Cancel in the middle. */
    assert_int_equal(sasl_start(s, "PLAIN", NULL), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "*", 1), SASL_ABORTED);
    assert_string_equal(sasl_status_reply(SASL_ABORTED), "501 5.0.0 Authentication aborted");
    /* Garbage as the response. */
    assert_int_equal(sasl_start(s, "PLAIN", NULL), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "not base64", 10), SASL_ERR_SYNTAX);
    sasl_free(s);
}

static void test_login(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    assert_int_equal(sasl_start(s, "LOGIN", NULL), SASL_CHALLENGE);
    assert_string_equal(sasl_challenge(s), "VXNlcm5hbWU6"); /* Username: */
    const char *u = b64("alice", 5);
    assert_int_equal(sasl_step(s, u, strlen(u)), SASL_CHALLENGE);
    assert_string_equal(sasl_challenge(s), "UGFzc3dvcmQ6"); /* Password: */
    const char *p = b64("pa ss", 5);
    assert_int_equal(sasl_step(s, p, strlen(p)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "alice");
    assert_string_equal(sasl_password(s), "pa ss");
    assert_string_equal(sasl_mechanism(s), "LOGIN");

    /* The user name as initial response. */
    assert_int_equal(sasl_start(s, "login", b64("bob", 3)), SASL_CHALLENGE);
    assert_string_equal(sasl_challenge(s), "UGFzc3dvcmQ6");
    p = b64("x", 1);
    assert_int_equal(sasl_step(s, p, strlen(p)), SASL_CHECK);
    assert_string_equal(sasl_user(s), "bob");

    /* Empty user (by "=" or an empty line) is malformed; an empty password is checked (and fails).
     */
    assert_int_equal(sasl_start(s, "LOGIN", "="), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "LOGIN", NULL), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "", 0), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "LOGIN", b64("bob", 3)), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "", 0), SASL_CHECK);
    assert_string_equal(sasl_password(s), "");

    /* NUL inside a field, bad base64, cancel at each step. */
    assert_int_equal(sasl_start(s, "LOGIN", b64("a\0b", 3)), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "LOGIN", "YWxpY2U"), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, "LOGIN", "*"), SASL_ABORTED);
    assert_int_equal(sasl_start(s, "LOGIN", NULL), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "*", 1), SASL_ABORTED);
    assert_int_equal(sasl_start(s, "LOGIN", b64("bob", 3)), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, "*", 1), SASL_ABORTED);
    assert_string_equal(sasl_user(s), ""); /* wiped */
    sasl_free(s);
}

static void test_mechanisms(void **state)
{
    (void)state;
    struct sasl *s = sasl_new();
    assert_int_equal(sasl_start(s, "CRAM-MD5", NULL), SASL_ERR_MECH);
    assert_int_equal(sasl_start(s, "PLAINX", NULL), SASL_ERR_MECH);
    assert_int_equal(sasl_start(s, "", NULL), SASL_ERR_SYNTAX);
    assert_int_equal(sasl_start(s, NULL, NULL), SASL_ERR_SYNTAX);
    assert_int_equal(strncmp(sasl_status_reply(SASL_ERR_MECH), "504 5.5.4", 9), 0);
    /* A step before any start. */
    sasl_reset(s);
    assert_int_equal(sasl_step(s, "Zm9v", 4), SASL_ERR_SYNTAX);
    /* An overlong line is refused before decoding. */
    static char huge[SASL_LINE_MAX + 8];
    memset(huge, 'A', sizeof huge - 4);
    huge[sizeof huge - 4] = '\0';
    assert_int_equal(sasl_start(s, "PLAIN", NULL), SASL_CHALLENGE);
    assert_int_equal(sasl_step(s, huge, strlen(huge)), SASL_ERR_SYNTAX);
    sasl_free(s);
    sasl_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_initial_response),
        cmocka_unit_test(test_plain_authzid),   cmocka_unit_test(test_plain_malformed),
        cmocka_unit_test(test_plain_challenge), cmocka_unit_test(test_login),
        cmocka_unit_test(test_mechanisms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
