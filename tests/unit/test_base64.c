/* Unit tests for the shared base64 codec (src/lib/base64.c): SASL's strict form, DKIM's folded
 * form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base64.h"

static void test_strict(void **state)
{
    (void)state;
    unsigned char out[64];
    const unsigned C = BASE64_CANONICAL;
    assert_int_equal(base64_decode("", 0, C, out, sizeof out), 0);
    assert_int_equal(base64_decode("Zm9v", 4, C, out, sizeof out), 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(base64_decode("Zm8=", 4, C, out, sizeof out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(base64_decode("Zg==", 4, C, out, sizeof out), 1);
    assert_int_equal(out[0], 'f');
    /* Not a multiple of 4, bad characters, white space, misplaced padding. */
    assert_int_equal(base64_decode("Zm9", 3, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Zm9!", 4, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Zm 9", 4, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Z===", 4, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Zg==Zg==", 8, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("=Zg=", 4, C, out, sizeof out), -1);
    /* Non-canonical: unused bits set ("Zh==" decodes to 'f' with leftover bits). */
    assert_int_equal(base64_decode("Zh==", 4, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Zm9=", 4, C, out, sizeof out), -1);
    assert_int_equal(base64_decode("Zh==", 4, 0, out, sizeof out), 1);
    /* The cap. */
    assert_int_equal(base64_decode("Zm9vYmFy", 8, C, out, 5), -1);
    assert_int_equal(base64_decode("Zm9vYmFy", 8, C, out, 6), 6);
    assert_int_equal(base64_decode("Zm9vYg==", 8, C, out, 3), -1);
}

static void test_folded(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(base64_decode_buf("aGVs\r\n bG8=", 11, BASE64_FWS, &b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    buf_reset(&b);
    assert_int_equal(base64_decode_buf("aGVs\r\n bG8=", 11, 0, &b), -1);
    assert_int_equal(base64_decode_buf("aGVsbG8", 7, BASE64_FWS, &b), -1);
    assert_int_equal(base64_decode_buf("aG=Vs", 5, BASE64_FWS, &b), -1);
    assert_int_equal(base64_decode_buf("a!==", 4, BASE64_FWS, &b), -1);
    buf_free(&b);
}

static void test_round_trip(void **state)
{
    (void)state;
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 0; len <= sizeof all; len += len < 8 ? 1 : 37) {
        struct buf enc = BUF_INIT, dec = BUF_INIT;
        base64_encode(all, len, &enc);
        assert_int_equal(enc.len, (len + 2) / 3 * 4);
        assert_int_equal(
            base64_decode_buf(enc.data ? enc.data : "", enc.len, BASE64_CANONICAL, &dec), 0);
        assert_int_equal(dec.len, len);
        if (len)
            assert_memory_equal(dec.data, all, len);
        buf_free(&enc);
        buf_free(&dec);
    }
    struct buf enc = BUF_INIT;
    base64_encode("foobar", 6, &enc);
    assert_string_equal(buf_cstr(&enc), "Zm9vYmFy"); /* RFC 4648 section 10 */
    buf_free(&enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_folded),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
