/*
 * DKIM against third-party corpora (tests/data/conformance/dkim): the
 * mail-auth messages at their recorded clock, Mail::DKIM's corpus against
 * our RFC 6376 + RFC 8301 verdicts (tests/data/dkim/mail-dkim-expected.tsv,
 * differences from Mail::DKIM explained in tests/data/dkim/README.md), and
 * every key record of that corpus's DNS file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

#define CONF TEST_DATA_DIR "/conformance/dkim"
#define MAIL_AUTH_CLOCK 1667843664

static char *slurp(const char *path, size_t *len)
{
    struct buf b = BUF_INIT, n = BUF_INIT;
    if (read_file(path, &b, 1 << 22) < 0)
        fail_msg("cannot read %s", path);
    dkim_crlf_normalize(b.data ? b.data : "", b.len, &n);
    buf_free(&b);
    *len = n.len;
    return buf_steal(&n);
}

static void collect(void *arg, const struct dkim_verify_result *res)
{
    *(struct dkim_verify_result **)arg = dkim_verify_result_dup(res);
}

static struct dkim_verify_result *verify_file(const char *path, const char *dns, time_t now)
{
    struct buf err = BUF_INIT;
    struct dkim_keyfile *kf = dkim_keyfile_load(dns, &err);
    if (kf == NULL)
        fail_msg("%s", buf_cstr(&err));
    size_t len;
    char *msg = slurp(path, &len);
    struct dkim_verify_result *r = NULL;
    struct txt_lookup lk = dkim_keyfile_lookup(kf);
    assert_null(dkim_verify_start(msg, len, now, &lk, collect, &r));
    assert_non_null(r);
    free(msg);
    dkim_keyfile_free(kf);
    buf_free(&err);
    return r;
}

static void test_mail_auth(void **state)
{
    (void)state;
    for (int i = 1; i <= 6; i++) {
        char eml[512], dns[512];
        snprintf(eml, sizeof(eml), CONF "/mail-auth/%03d.eml", i);
        snprintf(dns, sizeof(dns), CONF "/mail-auth/%03d.dns.txt", i);
        struct dkim_verify_result *r = verify_file(eml, dns, MAIL_AUTH_CLOCK);
        assert_true(r->count > 0);
        const struct dkim_sig_result *last = &r->sigs[r->count - 1];
        if (last->result != DKIM_PASS)
            fail_msg("%s: %s (%s)", eml, dkim_result_name(last->result), last->reason);
        dkim_verify_result_free(r);
        /* Today 005 has expired (x=). */
        if (i == 5) {
            r = verify_file(eml, dns, 1800000000);
            last = &r->sigs[r->count - 1];
            assert_int_equal(last->result, DKIM_PERMERROR);
            assert_non_null(strstr(last->reason, "expired"));
            dkim_verify_result_free(r);
        }
    }
}

static void test_mail_dkim_corpus(void **state)
{
    (void)state;
    struct buf tsv = BUF_INIT;
    assert_int_equal(read_file(TEST_DATA_DIR "/dkim/mail-dkim-expected.tsv", &tsv, 1 << 20), 0);
    int checked = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *want = tab + 1;
        char path[512];
        snprintf(path, sizeof(path), CONF "/mail-dkim/corpus/%s", line);
        struct dkim_verify_result *r =
            verify_file(path, CONF "/mail-dkim/dns.txt", MAIL_AUTH_CLOCK);
        struct buf got = BUF_INIT;
        if (r->count == 0)
            buf_puts(&got, "none");
        for (size_t i = 0; i < r->count; i++)
            buf_printf(&got, "%s%s", i ? "," : "", dkim_result_name(r->sigs[i].result));
        if (strcmp(buf_cstr(&got), want) != 0) {
            print_error("%s: got %s, want %s (%s)\n", line, buf_cstr(&got), want,
                        r->count ? r->sigs[0].reason : "");
            bad++;
        }
        checked++;
        buf_free(&got);
        dkim_verify_result_free(r);
    }
    buf_free(&tsv);
    assert_int_equal(checked, 79);
    assert_int_equal(bad, 0);
}

/* Each key record of the corpus DNS file, judged on its own. */
static void test_mail_dkim_keys(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum dkim_keyerr want;
        const char *why; /* substring of the reason, or NULL */
    } cases[] = {
        {"expirationtest._domainkey.example.org", DKIM_KEY_OK, NULL},
        {"selector1._domainkey.messiah.edu", DKIM_KEY_OK, NULL},
        {"test1._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "too short"}, /* 512 bits */
        {"test2._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "sha256"},    /* h=md5:sha1 */
        {"test3._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "too short"},
        {"test6._domainkey.messiah.edu", DKIM_KEY_OK, NULL},
        {"testbad1._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "version"},
        {"testbad2._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "no '='"},
        {"testbad3._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "key type"},
        {"testbad4._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "service"},
        {"testbad7._domainkey.messiah.edu", DKIM_KEY_SYNTAX, "sha256"},
        {"testrevoked._domainkey.messiah.edu", DKIM_KEY_REVOKED, "revoked"},
        {"s1024._domainkey.yahoo.com", DKIM_KEY_OK, NULL},
        {"beta._domainkey.gmail.com", DKIM_KEY_OK, NULL},
        {"jakla2._domainkey.ijs.si", DKIM_KEY_OK, NULL},
        {"shan._domainkey.vmt2.cis.att.net", DKIM_KEY_SYNTAX, "too short"}, /* 768 bits */
        {"2023-05-ed25519._domainkey.wander.science", DKIM_KEY_OK, NULL},
        {"2023-05-ed25519-empty._domainkey.wander.science", DKIM_KEY_SYNTAX, "no p="},
        {"invalid._domainkey.wander.science", DKIM_KEY_SYNTAX, "not 32"},
    };
    struct buf file = BUF_INIT;
    assert_int_equal(read_file(CONF "/mail-dkim/dns.txt", &file, 1 << 20), 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t nl = strlen(cases[c].name);
        const char *p = file.data, *rec = NULL;
        while (p && *p) {
            if (strncmp(p, cases[c].name, nl) == 0 && strncmp(p + nl, " TXT ", 5) == 0) {
                rec = p + nl + 5;
                break;
            }
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
        assert_non_null(rec);
        const char *end = strchr(rec, '\n');
        char *txt = xstrndup(rec, end ? (size_t)(end - rec) : strlen(rec));
        if (strcmp(txt, "\"\"") == 0)
            txt[0] = '\0';
        struct dkim_pubkey k;
        struct buf why = BUF_INIT;
        enum dkim_keyerr got = dkim_pubkey_parse(txt, strlen(txt), &k, &why);
        if (got != cases[c].want || (cases[c].why && !strstr(buf_cstr(&why), cases[c].why)))
            fail_msg("%s: got %d (%s), want %d", cases[c].name, got, buf_cstr(&why), cases[c].want);
        dkim_pubkey_clear(&k);
        buf_free(&why);
        free(txt);
    }
    buf_free(&file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_auth),
        cmocka_unit_test(test_mail_dkim_corpus),
        cmocka_unit_test(test_mail_dkim_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
