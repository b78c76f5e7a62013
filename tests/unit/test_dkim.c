/*
 * DKIM unit tests: canonicalization (RFC 6376 3.4.6), the tag-list parser,
 * key records, RFC 8463 appendix A reproduced exactly, and sign/verify
 * round trips through a signer built from a key directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/pem.h>

#include "lib/base64.h"
#include "lib/workq.h"

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"
#include "testutil.h"

#define RFC8463 TEST_DATA_DIR "/conformance/dkim"

static char *slurp(const char *path)
{
    struct buf b = BUF_INIT, n = BUF_INIT;
    assert_int_equal(read_file(path, &b, 1 << 20), 0);
    dkim_crlf_normalize(b.data, b.len, &n);
    buf_free(&b);
    return buf_steal(&n);
}

/* RFC 6376 3.4.6 example. */
static const char canon_msg[] = "A: X\r\n"
                                "B : Y\t\r\n"
                                "\tZ  \r\n"
                                "\r\n"
                                " C \r\n"
                                "D \t E\r\n"
                                "\r\n"
                                "\r\n";

static void test_canon_rfc_example(void **state)
{
    (void)state;
    struct dkim_msg m;
    assert_int_equal(dkim_msg_parse(&m, canon_msg, strlen(canon_msg)), 0);
    assert_int_equal(m.nfields, 2);
    struct buf out = BUF_INIT;
    for (size_t i = 0; i < m.nfields; i++)
        dkim_canon_header(DKIM_CANON_RELAXED, m.fields[i].start, m.fields[i].len, &out);
    assert_string_equal(buf_cstr(&out), "a:X\r\nb:Y Z\r\n");
    buf_reset(&out);
    dkim_canon_body(DKIM_CANON_RELAXED, m.body, m.body_len, &out);
    assert_string_equal(buf_cstr(&out), " C\r\nD E\r\n");
    buf_reset(&out);
    for (size_t i = 0; i < m.nfields; i++)
        dkim_canon_header(DKIM_CANON_SIMPLE, m.fields[i].start, m.fields[i].len, &out);
    assert_string_equal(buf_cstr(&out), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
    buf_reset(&out);
    dkim_canon_body(DKIM_CANON_SIMPLE, m.body, m.body_len, &out);
    assert_string_equal(buf_cstr(&out), " C \r\nD \t E\r\n");
    buf_free(&out);
    dkim_msg_free(&m);
}

static void test_canon_body_edges(void **state)
{
    (void)state;
    struct buf out = BUF_INIT;
    /* Empty body: CRLF under simple, nothing under relaxed (3.4.3, 3.4.4). */
    dkim_canon_body(DKIM_CANON_SIMPLE, "", 0, &out);
    assert_string_equal(buf_cstr(&out), "\r\n");
    buf_reset(&out);
    dkim_canon_body(DKIM_CANON_RELAXED, "\r\n\r\n", 4, &out);
    assert_int_equal(out.len, 0);
    buf_reset(&out);
    /* A missing final CRLF is added. */
    dkim_canon_body(DKIM_CANON_SIMPLE, "abc", 3, &out);
    assert_string_equal(buf_cstr(&out), "abc\r\n");
    buf_reset(&out);
    /* Empty lines in the middle stay; trailing ones go; WSP-only lines are empty under relaxed. */
    const char *mixed = "a\r\n\r\n \t\r\nb \r\n  \r\n\r\n";
    dkim_canon_body(DKIM_CANON_RELAXED, mixed, strlen(mixed), &out);
    assert_string_equal(buf_cstr(&out), "a\r\n\r\n\r\nb\r\n");
    buf_reset(&out);
    dkim_canon_body(DKIM_CANON_SIMPLE, "a\r\n  \r\n\r\n", 9, &out);
    assert_string_equal(buf_cstr(&out), "a\r\n  \r\n");
    buf_free(&out);
    /* l= longer than the body is refused. */
    unsigned char h[32];
    assert_int_equal(dkim_body_hash(DKIM_CANON_SIMPLE, "a\r\n", 3, 3, h, NULL), 0);
    assert_int_equal(dkim_body_hash(DKIM_CANON_SIMPLE, "a\r\n", 3, 4, h, NULL), -1);
}

static void test_canon_parse(void **state)
{
    (void)state;
    enum dkim_canon h, b;
    assert_int_equal(dkim_canon_parse("relaxed", &h, &b), 0);
    assert_int_equal(h, DKIM_CANON_RELAXED);
    assert_int_equal(b, DKIM_CANON_SIMPLE);
    assert_int_equal(dkim_canon_parse("simple/relaxed", &h, &b), 0);
    assert_int_equal(h, DKIM_CANON_SIMPLE);
    assert_int_equal(b, DKIM_CANON_RELAXED);
    assert_int_equal(dkim_canon_parse("relaxed/", &h, &b), -1);
    assert_int_equal(dkim_canon_parse("future", &h, &b), -1);
    assert_int_equal(dkim_canon_parse("simple/relaxed/simple", &h, &b), -1);
}

static int tags_ok(const char *s)
{
    struct dkim_tags t;
    struct buf e = BUF_INIT;
    int rc = dkim_tags_parse(&t, s, strlen(s), &e);
    dkim_tags_free(&t);
    buf_free(&e);
    return rc;
}

static void test_tags(void **state)
{
    (void)state;
    struct dkim_tags t;
    struct buf e = BUF_INIT;
    const char *s = " v = 1 ;a=rsa-sha256;\r\n h=from :\r\n\tto; b= ab c\r\n d== ;";
    assert_int_equal(dkim_tags_parse(&t, s, strlen(s), &e), 0);
    assert_int_equal(t.count, 4);
    assert_string_equal(dkim_tags_get(&t, "v"), "1");
    assert_string_equal(dkim_tags_get(&t, "a"), "rsa-sha256");
    assert_string_equal(dkim_tags_get(&t, "h"), "from :\r\n\tto");
    assert_string_equal(dkim_tags_get(&t, "b"), "ab c\r\n d==");
    assert_null(dkim_tags_get(&t, "x"));
    dkim_tags_free(&t);
    /* Edge cases. */
    assert_int_equal(tags_ok(""), 0);
    assert_int_equal(tags_ok("a="), 0);        /* empty value */
    assert_int_equal(tags_ok("a=1;"), 0);      /* trailing ';' */
    assert_int_equal(tags_ok("a=1; "), 0);     /* and white space after it */
    assert_int_equal(tags_ok("a=1;;b=2"), -1); /* empty tag-spec */
    assert_int_equal(tags_ok("a=1; a=2"), -1); /* duplicate */
    assert_int_equal(tags_ok("a"), -1);        /* no '=' */
    assert_int_equal(tags_ok("1a=x"), -1);     /* name starts with a digit */
    assert_int_equal(tags_ok("a-b=x"), -1);    /* '-' is not ALNUMPUNC */
    assert_int_equal(tags_ok("a_b=x"), 0);
    assert_int_equal(tags_ok("a=x\x01y"), -1);      /* control character */
    assert_int_equal(tags_ok("a=caf\xc3\xa9"), -1); /* 8-bit */
    assert_int_equal(tags_ok("a=x\ny"), -1);        /* bare LF is not FWS */
    assert_int_equal(tags_ok("a=x\r\ny"), -1);      /* CRLF without WSP after */
    assert_int_equal(tags_ok("a=x\r\n y"), 0);
    assert_int_equal(tags_ok("a = b = c"), 0); /* '=' is a VALCHAR */
    char many[64 * 8 + 64];
    many[0] = '\0';
    for (int i = 0; i <= DKIM_MAX_TAGS; i++) {
        char one[16];
        snprintf(one, sizeof(one), "t%d=1;", i);
        strncat(many, one, sizeof(many) - strlen(many) - 1);
    }
    assert_int_equal(tags_ok(many), -1);
    buf_free(&e);
}

static void test_b64(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(base64_decode_buf("aGVs\r\n bG8=", 11, BASE64_FWS, &b), 0);
    assert_string_equal(buf_cstr(&b), "hello");
    buf_reset(&b);
    assert_int_equal(base64_decode_buf("aGVsbG8", 7, BASE64_FWS, &b), -1);
    buf_reset(&b);
    assert_int_equal(base64_decode_buf("aG=Vs", 5, BASE64_FWS, &b), -1);
    buf_reset(&b);
    assert_int_equal(base64_decode_buf("a!==", 4, BASE64_FWS, &b), -1);
    buf_free(&b);
}

static enum dkim_keyerr key_parse(const char *txt, struct dkim_pubkey *k)
{
    struct buf why = BUF_INIT;
    enum dkim_keyerr e = dkim_pubkey_parse(txt, strlen(txt), k, &why);
    buf_free(&why);
    return e;
}

static void test_key_records(void **state)
{
    (void)state;
    const char *ed = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const char *rsa512 = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALgSoqXVSEmfcIsOzw7oRuCCOwsmtX/"
                         "SJnTWxYyj2leFxfS/AVJ+dYfY+hXqMsT7l+MZvvh/R1WzN4MO/kI/7XsCAwEAAQ==";
    struct dkim_pubkey k;
    char rec[512];
    snprintf(rec, sizeof(rec), "v=DKIM1; k=ed25519; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_OK);
    assert_int_equal(k.type, DKIM_KEY_ED25519);
    dkim_pubkey_clear(&k);
    snprintf(rec, sizeof(rec), "k=ed25519; t=y:s; s=email; h=sha256; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_OK);
    assert_true(k.testing);
    assert_true(k.strict);
    dkim_pubkey_clear(&k);
    snprintf(rec, sizeof(rec), "k=ed25519; v=DKIM1; p=%s", ed); /* v= not first */
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
    snprintf(rec, sizeof(rec), "v=DKIM2; k=ed25519; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
    snprintf(rec, sizeof(rec), "k=ed25519; h=sha1; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
    snprintf(rec, sizeof(rec), "k=ed25519; s=chat; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
    snprintf(rec, sizeof(rec), "k=dsa; p=%s", ed);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
    assert_int_equal(key_parse("v=DKIM1; k=rsa; p=", &k), DKIM_KEY_REVOKED);
    assert_int_equal(key_parse("v=DKIM1; k=ed25519", &k), DKIM_KEY_SYNTAX);
    assert_int_equal(key_parse("", &k), DKIM_KEY_SYNTAX);
    assert_int_equal(key_parse("k=ed25519; p=AAAA", &k), DKIM_KEY_SYNTAX); /* 3 bytes */
    /* RFC 8301: 512-bit RSA refused. */
    snprintf(rec, sizeof(rec), "v=DKIM1; p=%s", rsa512);
    assert_int_equal(key_parse(rec, &k), DKIM_KEY_SYNTAX);
}

/* ---- RFC 8463 appendix A ---- */

static EVP_PKEY *rfc_ed25519(void)
{
    char *seed64 = slurp(RFC8463 "/ed25519.seed.b64");
    struct buf seed = BUF_INIT;
    assert_int_equal(base64_decode_buf(seed64, strlen(seed64), BASE64_FWS, &seed), 0);
    assert_int_equal(seed.len, 32);
    EVP_PKEY *k =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, (unsigned char *)seed.data, 32);
    assert_non_null(k);
    free(seed64);
    buf_free(&seed);
    return k;
}

static EVP_PKEY *rfc_rsa(void)
{
    FILE *f = fopen(RFC8463 "/rsa1024.private.pem", "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

/* The value of the field's tag b=, white space removed. */
static char *b_value(const char *field, size_t len)
{
    struct buf v = BUF_INIT;
    const char *p = field;
    const char *end = field + len;
    for (; p + 1 < end; p++)
        if ((p[0] == 'b' && p[1] == '=') && (p[-1] == ' ' || p[-1] == ';' || p[-1] == '\t'))
            break;
    for (p += 2; p < end && *p != ';'; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            buf_putc(&v, *p);
    return buf_steal(&v);
}

static void test_rfc8463_sign(void **state)
{
    (void)state;
    char *unsigned_msg = slurp(RFC8463 "/unsigned.eml");
    char *signed_msg = slurp(RFC8463 "/signed.eml");
    struct dkim_msg um, sm;
    assert_int_equal(dkim_msg_parse(&um, unsigned_msg, strlen(unsigned_msg)), 0);
    assert_int_equal(dkim_msg_parse(&sm, signed_msg, strlen(signed_msg)), 0);
    /* The body hash. */
    unsigned char bh[32];
    assert_int_equal(dkim_body_hash(DKIM_CANON_RELAXED, um.body, um.body_len, -1, bh, NULL), 0);
    struct buf bh64 = BUF_INIT;
    base64_encode(bh, 32, &bh64);
    assert_string_equal(buf_cstr(&bh64), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    EVP_PKEY *keys[2] = {rfc_ed25519(), rfc_rsa()};
    /* Each signature in signed.eml: its tags up to b= as the template. */
    for (int i = 0; i < 2; i++) {
        const struct dkim_field *f = &sm.fields[i];
        const char *colon = memchr(f->start, ':', f->len);
        char *bpos = NULL;
        char *field = xstrndup(f->start, f->len);
        for (char *p = field; (p = strstr(p, "b=")) != NULL; p++)
            if (p[-1] == ' ')
                bpos = p;
        assert_non_null(bpos);
        char *tmpl = xstrndup(field + (colon + 1 - f->start) + 1,
                              (size_t)(bpos + 2 - field) - (size_t)(colon + 2 - f->start));
        assert_non_null(strstr(tmpl, buf_cstr(&bh64)));
        struct buf out = BUF_INIT, err = BUF_INIT;
        assert_int_equal(dkim_sign_template(keys[i], &um, tmpl, &out, &err), 0);
        char *want = b_value(field, strlen(field));
        char *got = b_value(out.data, out.len);
        assert_string_equal(got, want);
        free(want);
        free(got);
        free(tmpl);
        free(field);
        buf_free(&out);
        buf_free(&err);
    }
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
    buf_free(&bh64);
    dkim_msg_free(&um);
    dkim_msg_free(&sm);
    free(unsigned_msg);
    free(signed_msg);
}

struct collected {
    int called;
    struct dkim_verify_result *res;
};

static void collect(void *arg, const struct dkim_verify_result *res)
{
    struct collected *c = arg;
    c->called++;
    c->res = dkim_verify_result_dup(res);
}

static struct dkim_verify_result *verify_with(const char *msg, size_t len, time_t now,
                                              struct dkim_keyfile *kf)
{
    struct collected c = {0, NULL};
    struct txt_lookup lk = dkim_keyfile_lookup(kf);
    assert_null(dkim_verify_start(msg, len, now, &lk, collect, &c));
    assert_int_equal(c.called, 1);
    return c.res;
}

static void test_rfc8463_verify(void **state)
{
    (void)state;
    struct buf err = BUF_INIT;
    struct dkim_keyfile *kf = dkim_keyfile_load(RFC8463 "/dns.txt", &err);
    assert_non_null(kf);
    char *msg = slurp(RFC8463 "/signed.eml");
    struct dkim_verify_result *r = verify_with(msg, strlen(msg), 1528637909, kf);
    assert_int_equal(r->count, 2);
    assert_string_equal(r->sigs[0].algorithm, "ed25519-sha256");
    assert_string_equal(r->sigs[0].selector, "brisbane");
    assert_string_equal(r->sigs[1].algorithm, "rsa-sha256");
    for (int i = 0; i < 2; i++) {
        assert_string_equal(dkim_result_name(r->sigs[i].result), "pass");
        assert_string_equal(r->sigs[i].domain, "football.example.com");
        assert_string_equal(r->sigs[i].identity, "@football.example.com");
    }
    dkim_verify_result_free(r);
    /* A changed Subject breaks both; a changed body fails the body hash. */
    char *s = strstr(msg, "dinner");
    s[0] = 'D';
    r = verify_with(msg, strlen(msg), 1528637909, kf);
    assert_int_equal(r->sigs[0].result, DKIM_FAIL);
    assert_int_equal(r->sigs[1].result, DKIM_FAIL);
    assert_string_equal(r->sigs[0].reason, "signature did not verify");
    dkim_verify_result_free(r);
    s[0] = 'd';
    s = strstr(msg, "hungry");
    s[0] = 'H';
    r = verify_with(msg, strlen(msg), 1528637909, kf);
    assert_int_equal(r->sigs[0].result, DKIM_FAIL);
    assert_string_equal(r->sigs[0].reason, "body hash did not verify");
    dkim_verify_result_free(r);
    free(msg);
    dkim_keyfile_free(kf);
    buf_free(&err);
}

/* ---- Signing through a key directory, verified by our verifier ---- */

static char keydir[256];

static EVP_PKEY *gen(int ed)
{
    EVP_PKEY *k = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    return k;
}

static void write_key(const char *domain, const char *sel, EVP_PKEY *k, struct dkim_keyfile *kf)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", keydir, domain);
    assert_int_equal(mkdir_p(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/%s/%s.pem", keydir, domain, sel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    struct buf rec = BUF_INIT;
    assert_int_equal(dkim_key_record(k, &rec), 0);
    char name[300];
    snprintf(name, sizeof(name), "%s._domainkey.%s", sel, domain);
    dkim_keyfile_add(kf, name, buf_cstr(&rec));
    buf_free(&rec);
}

static const char sample[] = "From: Alice <alice@mail.example.com>\r\n"
                             "To: bob@example.net\r\n"
                             "Subject: hello\r\n"
                             "Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
                             "Message-ID: <1@mail.example.com>\r\n"
                             "X-Other: not signed\r\n"
                             "\r\n"
                             "Hi  Bob,\r\n"
                             "\r\n"
                             "bye\r\n\r\n";

static int setup_keys(void **state)
{
    snprintf(keydir, sizeof(keydir), "/tmp/test_dkim.%d", (int)getpid());
    struct dkim_keyfile *kf = dkim_keyfile_new();
    EVP_PKEY *r = gen(0), *e = gen(1);
    write_key("example.com", "mail", r, kf);
    write_key("example.com", "mail-ed25519", e, kf);
    EVP_PKEY_free(r);
    EVP_PKEY_free(e);
    *state = kf;
    return 0;
}

static int teardown_keys(void **state)
{
    dkim_keyfile_free(*state);
    test_rm_rf(keydir);
    return 0;
}

static void test_name_ok(void **state)
{
    (void)state;
    const char *good[] = {"mail", "example.com", "s1._x-y.example.com", "2026-11", "a_b"};
    const char *bad[] = {"",   ".",  "..",   "../etc", "a..b", ".a",
                         "a.", "-a", "a.-b", "a/b",    "a b",  "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(dkim_name_ok(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(dkim_name_ok(bad[i], strlen(bad[i])));
    char label[70];
    memset(label, 'a', sizeof(label));
    assert_true(dkim_name_ok(label, 63));
    assert_false(dkim_name_ok(label, 64));
}

/* A broken key takes only its own domain out of signing. */
static void test_sign_broken_domain_is_isolated(void **state)
{
    (void)state;
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/broken.test", keydir);
    assert_int_equal(mkdir_p(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/mail.pem", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);
    char *doms[] = {"broken.test", "example.com"};
    struct buf err = BUF_INIT, out = BUF_INIT;
    struct dkim_signer *s = dkim_signer_new(keydir, doms, 2, &err);
    assert_non_null(s);
    assert_non_null(strstr(buf_cstr(&err), "broken.test/mail.pem: not a PEM private key"));
    assert_int_equal(dkim_signer_key_count(s), 2);
    assert_null(dkim_signer_domain_error(s, "example.com"));
    assert_non_null(dkim_signer_domain_error(s, "broken.test"));
    assert_non_null(dkim_signer_domain_error(s, NULL));
    buf_reset(&err);
    assert_int_equal(dkim_sign(s, sample, strlen(sample), 5, &out, &err), DKIM_SIGN_OK);
    static const char from_broken[] = "From: <a@broken.test>\r\nSubject: x\r\n\r\nbody\r\n";
    buf_reset(&out);
    buf_reset(&err);
    assert_int_equal(dkim_sign(s, from_broken, strlen(from_broken), 5, &out, &err),
                     DKIM_SIGN_ERROR);
    assert_non_null(strstr(buf_cstr(&err), "signing keys for broken.test not loaded"));
    assert_int_equal(out.len, 0);
    dkim_signer_free(s);
    buf_free(&err);
    buf_free(&out);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_sign_roundtrip(void **state)
{
    struct dkim_keyfile *kf = *state;
    char *doms[] = {"example.com", "other.test"};
    struct buf err = BUF_INIT;
    struct dkim_signer *s = dkim_signer_new(keydir, doms, 2, &err);
    assert_non_null(s);
    assert_int_equal(dkim_signer_key_count(s), 2);
    for (int canon = 0; canon < 2; canon++) {
        dkim_signer_set_canon(s, canon, canon);
        struct buf out = BUF_INIT;
        assert_int_equal(dkim_sign(s, sample, strlen(sample), 1790000000, &out, &err),
                         DKIM_SIGN_OK);
        /* Two fields, lines of at most 78 characters, d= the configured domain. */
        const char *p = out.data;
        int fields = 0;
        while (*p) {
            const char *nl = strstr(p, "\r\n");
            assert_non_null(nl);
            assert_true(nl - p <= 78);
            fields += strncmp(p, "DKIM-Signature:", 15) == 0;
            p = nl + 2;
        }
        assert_int_equal(fields, 2);
        assert_non_null(strstr(out.data, "d=example.com;"));
        assert_non_null(strstr(out.data, "t=1790000000;"));
        assert_null(strstr(out.data, "l="));
        assert_non_null(strstr(out.data, "h=From:From:Subject:Subject:Date:Date:To:To:"));
        assert_null(strstr(out.data, "X-Other"));
        buf_append(&out, sample, strlen(sample));
        struct dkim_verify_result *r = verify_with(out.data, out.len, 1790000100, kf);
        assert_int_equal(r->count, 2);
        for (size_t i = 0; i < 2; i++)
            assert_int_equal(r->sigs[i].result, DKIM_PASS);
        dkim_verify_result_free(r);
        /* Adding a second Subject breaks the over-signed signature. */
        struct buf added = BUF_INIT;
        buf_puts(&added, "Subject: evil\r\n");
        buf_append(&added, out.data, out.len);
        r = verify_with(added.data, added.len, 1790000100, kf);
        for (size_t i = 0; i < 2; i++)
            assert_int_equal(r->sigs[i].result, DKIM_FAIL);
        dkim_verify_result_free(r);
        buf_free(&added);
        buf_free(&out);
    }
    /* A domain that is not configured; one configured without keys. */
    struct buf out = BUF_INIT;
    const char *other = "From: x@elsewhere.test\r\n\r\nbody\r\n";
    assert_int_equal(dkim_sign(s, other, strlen(other), 1, &out, &err), DKIM_SIGN_NODOMAIN);
    const char *nokey = "From: x@other.test\r\n\r\nbody\r\n";
    assert_int_equal(dkim_sign(s, nokey, strlen(nokey), 1, &out, &err), DKIM_SIGN_NODOMAIN);
    const char *nofrom = "To: x@other.test\r\n\r\nbody\r\n";
    assert_int_equal(dkim_sign(s, nofrom, strlen(nofrom), 1, &out, &err), DKIM_SIGN_ERROR);
    const char *quoted = "From: \"a@elsewhere.test\" (c@x.test) <b@example.com>\r\n\r\nbody\r\n";
    assert_int_equal(dkim_sign(s, quoted, strlen(quoted), 1, &out, &err), DKIM_SIGN_OK);
    assert_int_equal(out.len > 0, 1);
    buf_free(&out);
    buf_free(&err);
    dkim_signer_free(s);
}

struct sign_wait {
    int done;
    enum dkim_sign_status st;
    struct buf fields;
    struct event_base *base;
};

static void signed_cb(void *arg, enum dkim_sign_status st, const struct buf *fields,
                      const char *err)
{
    struct sign_wait *w = arg;
    (void)err;
    w->done++;
    w->st = st;
    buf_append(&w->fields, fields->data ? fields->data : "", fields->len);
    event_base_loopbreak(w->base);
}

/* Signing on the work queue gives the same bytes as signing inline. */
static void test_sign_on_workq(void **state)
{
    struct dkim_keyfile *kf = *state;
    char *doms[] = {"example.com"};
    struct buf err = BUF_INIT, inline_out = BUF_INIT;
    struct dkim_signer *s = dkim_signer_new(keydir, doms, 1, &err);
    assert_non_null(s);
    assert_int_equal(dkim_sign(s, sample, strlen(sample), 5, &inline_out, &err), DKIM_SIGN_OK);
    struct sign_wait w = {0, DKIM_SIGN_ERROR, BUF_INIT, event_base_new()};
    struct workq *q = workq_new(w.base, 2);
    dkim_sign_submit(q, s, sample, strlen(sample), 5, signed_cb, &w);
    for (int i = 0; i < 100 && !w.done; i++)
        event_base_loop(w.base, EVLOOP_ONCE);
    assert_int_equal(w.done, 1);
    assert_int_equal(w.st, DKIM_SIGN_OK);
    /* Ed25519 and RSA PKCS#1 v1.5 signatures are deterministic: the same bytes. */
    assert_string_equal(buf_cstr(&w.fields), buf_cstr(&inline_out));
    buf_append(&w.fields, sample, strlen(sample));
    struct dkim_verify_result *r = verify_with(w.fields.data, w.fields.len, 6, kf);
    assert_int_equal(r->count, 2);
    assert_int_equal(r->sigs[0].result, DKIM_PASS);
    assert_int_equal(r->sigs[1].result, DKIM_PASS);
    dkim_verify_result_free(r);
    workq_free(q);
    event_base_free(w.base);
    buf_free(&w.fields);
    buf_free(&inline_out);
    buf_free(&err);
    dkim_signer_free(s);
}

static void test_record_matches(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/example.com/mail-ed25519.pem", keydir);
    struct buf err = BUF_INIT, rec = BUF_INIT, why = BUF_INIT;
    EVP_PKEY *ed = dkim_load_private_key(path, &err);
    snprintf(path, sizeof(path), "%s/example.com/mail.pem", keydir);
    EVP_PKEY *rsa = dkim_load_private_key(path, &err);
    assert_non_null(ed);
    assert_non_null(rsa);
    assert_int_equal(dkim_key_record(ed, &rec), 0);
    assert_int_equal(dkim_key_record_matches(ed, rec.data, rec.len, &why), 1);
    assert_int_equal(dkim_key_record_matches(rsa, rec.data, rec.len, &why), 0);
    buf_reset(&rec);
    assert_int_equal(dkim_key_record(rsa, &rec), 0);
    assert_int_equal(dkim_key_record_matches(rsa, rec.data, rec.len, &why), 1);
    assert_int_equal(dkim_key_record_matches(rsa, "v=DKIM1; p=", 11, &why), 0);
    assert_null(dkim_load_private_key("/nonexistent.pem", &err));
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
    buf_free(&err);
    buf_free(&rec);
    buf_free(&why);
}

/* Verifier checks on a hand-made signature field (tag errors settle before any key lookup). */
static enum dkim_result verify_field(struct dkim_keyfile *kf, const char *sig, time_t now,
                                     char *reason, size_t rsz)
{
    struct buf m = BUF_INIT;
    buf_printf(&m, "DKIM-Signature: %s\r\n%s", sig, sample);
    struct dkim_verify_result *r = verify_with(m.data, m.len, now, kf);
    enum dkim_result res = r->sigs[0].result;
    if (reason)
        str_copy(reason, rsz, r->sigs[0].reason);
    dkim_verify_result_free(r);
    buf_free(&m);
    return res;
}

static void test_verify_tag_checks(void **state)
{
    struct dkim_keyfile *kf = *state;
    char why[256];
    const char *base = "a=rsa-sha256; d=example.com; s=mail; h=from; bh=AAAA; b=AAAA";
    char sig[512];
    snprintf(sig, sizeof(sig), "v=1; %s", base);
    assert_int_equal(verify_field(kf, sig, 0, why, sizeof(why)), DKIM_FAIL);
    snprintf(sig, sizeof(sig), "%s", base);
    assert_int_equal(verify_field(kf, sig, 0, why, sizeof(why)), DKIM_PERMERROR);
    snprintf(sig, sizeof(sig), "v=1; v=1; %s", base);
    assert_int_equal(verify_field(kf, sig, 0, why, sizeof(why)), DKIM_PERMERROR);
    assert_non_null(strstr(why, "duplicate"));
    assert_int_equal(verify_field(kf,
                                  "v=1; a=rsa-sha1; d=example.com; s=mail; h=from; bh=AAAA; b=AAAA",
                                  0, why, sizeof(why)),
                     DKIM_PERMERROR);
    assert_non_null(strstr(why, "8301"));
    assert_int_equal(verify_field(kf,
                                  "v=1; a=rsa-sha256; d=example.com; s=mail; h=to; bh=AAAA; b=AAAA",
                                  0, why, sizeof(why)),
                     DKIM_PERMERROR);
    assert_int_equal(
        verify_field(
            kf,
            "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; i=x@example.org; bh=AAAA; b=AAAA", 0,
            why, sizeof(why)),
        DKIM_PERMERROR);
    assert_int_equal(verify_field(kf,
                                  "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; "
                                  "i=x=40sub.example.com; bh=AAAA; b=AAAA",
                                  0, why, sizeof(why)),
                     DKIM_FAIL); /* QP '@' */
    assert_int_equal(
        verify_field(
            kf,
            "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; i=x.example.com; bh=AAAA; b=AAAA", 0,
            why, sizeof(why)),
        DKIM_PERMERROR); /* no '@' */
    assert_int_equal(verify_field(kf,
                                  "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; "
                                  "i=x@sub.EXAMPLE.com; bh=AAAA; b=AAAA",
                                  0, why, sizeof(why)),
                     DKIM_FAIL);
    assert_int_equal(
        verify_field(kf, "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; x=100; bh=AAAA; b=AAAA",
                     101, why, sizeof(why)),
        DKIM_PERMERROR);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(
        verify_field(kf, "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; x=100; bh=AAAA; b=AAAA",
                     100, why, sizeof(why)),
        DKIM_FAIL);
    assert_int_equal(
        verify_field(
            kf, "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; t=200; x=100; bh=AAAA; b=AAAA",
            0, why, sizeof(why)),
        DKIM_PERMERROR);
    assert_int_equal(
        verify_field(kf,
                     "v=1; a=rsa-sha256; c=future; d=example.com; s=mail; h=from; bh=AAAA; b=AAAA",
                     0, why, sizeof(why)),
        DKIM_PERMERROR);
    assert_int_equal(
        verify_field(kf,
                     "v=1; a=rsa-sha256; q=http; d=example.com; s=mail; h=from; bh=AAAA; b=AAAA", 0,
                     why, sizeof(why)),
        DKIM_PERMERROR);
    assert_int_equal(
        verify_field(kf,
                     "v=1; a=rsa-sha256; d=example.com; s=mail; h=from; l=999999; bh=AAAA; b=AAAA",
                     0, why, sizeof(why)),
        DKIM_PERMERROR);
    assert_int_equal(
        verify_field(kf, "v=1; a=rsa-sha256; d=example.com; s=nokey; h=from; bh=AAAA; b=AAAA", 0,
                     why, sizeof(why)),
        DKIM_PERMERROR);
    assert_non_null(strstr(why, "no key"));
    assert_int_equal(
        verify_field(kf, "v=1; a=ed25519-sha256; d=example.com; s=mail; h=from; bh=AAAA; b=AAAA", 0,
                     why, sizeof(why)),
        DKIM_PERMERROR);
    assert_non_null(strstr(why, "key type"));
    /* DNS failures are temporary. */
    dkim_keyfile_add(kf, "down._domainkey.example.com", NULL);
    assert_int_equal(
        verify_field(kf, "v=1; a=rsa-sha256; d=example.com; s=down; h=from; bh=AAAA; b=AAAA", 0,
                     why, sizeof(why)),
        DKIM_TEMPERROR);
}

static void test_verify_limits(void **state)
{
    struct dkim_keyfile *kf = *state;
    struct buf m = BUF_INIT;
    for (int i = 0; i < DKIM_MAX_SIGNATURES + 2; i++)
        buf_puts(&m, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=mail; h=from; bh=AAAA; "
                     "b=AAAA\r\n");
    buf_puts(&m, sample);
    struct dkim_verify_result *r = verify_with(m.data, m.len, 0, kf);
    assert_int_equal(r->count, DKIM_MAX_SIGNATURES + 2);
    assert_int_equal(r->sigs[DKIM_MAX_SIGNATURES - 1].result, DKIM_FAIL);
    assert_int_equal(r->sigs[DKIM_MAX_SIGNATURES].result, DKIM_POLICY);
    assert_string_equal(r->sigs[DKIM_MAX_SIGNATURES].domain, "example.com");
    dkim_verify_result_free(r);
    buf_free(&m);
    r = verify_with(sample, strlen(sample), 0, kf);
    assert_int_equal(r->count, 0);
    dkim_verify_result_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon_rfc_example),
        cmocka_unit_test(test_canon_body_edges),
        cmocka_unit_test(test_canon_parse),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_key_records),
        cmocka_unit_test(test_rfc8463_sign),
        cmocka_unit_test(test_rfc8463_verify),
        cmocka_unit_test_setup_teardown(test_sign_roundtrip, setup_keys, teardown_keys),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test_setup_teardown(test_sign_broken_domain_is_isolated, setup_keys,
                                        teardown_keys),
        cmocka_unit_test_setup_teardown(test_verify_tag_checks, setup_keys, teardown_keys),
        cmocka_unit_test_setup_teardown(test_verify_limits, setup_keys, teardown_keys),
        cmocka_unit_test_setup_teardown(test_sign_on_workq, setup_keys, teardown_keys),
        cmocka_unit_test_setup_teardown(test_record_matches, setup_keys, teardown_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
