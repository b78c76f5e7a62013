/*
 * Tests for src/mailauth/spf: the record parser (RFC 7208 4.6, 5, 6, 12)
 * and macro expansion with the examples of RFC 7208 7.4. The evaluation
 * itself runs against a DNS server in tests/integration/test_spf*.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mailauth/spf.h"

/* ---- parser ------------------------------------------------------------ */

static struct spf_record *parse_ok(const char *text)
{
    struct buf err = BUF_INIT;
    struct spf_record *rec = spf_record_parse(text, &err);
    if (rec == NULL)
        fail_msg("'%s' did not parse: %s", text, buf_cstr(&err));
    buf_free(&err);
    return rec;
}

static void test_parse_mechanisms(void **state)
{
    (void)state;
    struct spf_record *rec =
        parse_ok("v=spf1 +all -include:_spf.example.com ~a ?a:mail.example.com/24//64 mx/28 "
                 "MX:%{d}//48 ptr ptr:example.org ip4:192.0.2.0/24 ip6:2001:db8::/32 "
                 "exists:%{ir}.bl.example.net IP4:198.51.100.7");
    assert_int_equal(rec->count, 12);
    const struct spf_mech *m = rec->mechs;

    assert_int_equal(m[0].type, SPF_MECH_ALL);
    assert_int_equal(m[0].qualifier, SPF_PASS);

    assert_int_equal(m[1].type, SPF_MECH_INCLUDE);
    assert_int_equal(m[1].qualifier, SPF_FAIL);
    assert_string_equal(m[1].domain_spec, "_spf.example.com");

    assert_int_equal(m[2].type, SPF_MECH_A);
    assert_int_equal(m[2].qualifier, SPF_SOFTFAIL);
    assert_null(m[2].domain_spec);
    assert_int_equal(m[2].cidr4, 32);
    assert_int_equal(m[2].cidr6, 128);

    assert_int_equal(m[3].qualifier, SPF_NEUTRAL);
    assert_string_equal(m[3].domain_spec, "mail.example.com");
    assert_int_equal(m[3].cidr4, 24);
    assert_int_equal(m[3].cidr6, 64);

    assert_int_equal(m[4].type, SPF_MECH_MX);
    assert_null(m[4].domain_spec);
    assert_int_equal(m[4].cidr4, 28);
    assert_int_equal(m[4].cidr6, 128);

    assert_int_equal(m[5].type, SPF_MECH_MX);
    assert_string_equal(m[5].domain_spec, "%{d}");
    assert_int_equal(m[5].cidr4, 32);
    assert_int_equal(m[5].cidr6, 48);

    assert_int_equal(m[6].type, SPF_MECH_PTR);
    assert_null(m[6].domain_spec);
    assert_string_equal(m[7].domain_spec, "example.org");

    assert_int_equal(m[8].type, SPF_MECH_IP4);
    assert_int_equal(m[8].cidr4, 24);
    assert_memory_equal(m[8].ip, "\xc0\x00\x02\x00", 4);

    assert_int_equal(m[9].type, SPF_MECH_IP6);
    assert_int_equal(m[9].cidr6, 32);
    assert_memory_equal(m[9].ip, "\x20\x01\x0d\xb8", 4);

    assert_int_equal(m[10].type, SPF_MECH_EXISTS);
    assert_string_equal(m[10].domain_spec, "%{ir}.bl.example.net");

    assert_int_equal(m[11].type, SPF_MECH_IP4);
    assert_int_equal(m[11].cidr4, 32);
    spf_record_free(rec);
}

static void test_parse_modifiers(void **state)
{
    (void)state;
    struct spf_record *rec = parse_ok("v=spf1 Redirect=_spf.example.com exp=explain.%{d}  "
                                      "moo.cow-far_out=man:dog/cat default=+ ");
    assert_int_equal(rec->count, 0);
    assert_string_equal(rec->redirect, "_spf.example.com");
    assert_string_equal(rec->exp, "explain.%{d}");
    spf_record_free(rec);

    rec = parse_ok("v=spf1");
    assert_int_equal(rec->count, 0);
    assert_null(rec->redirect);
    spf_record_free(rec);

    rec = parse_ok("V=SPF1 ip6:::1 ip6:::ffff:192.0.2.1/128 a:example.com. a:x.%{h}");
    assert_int_equal(rec->count, 4);
    spf_record_free(rec);
    spf_record_free(NULL);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *bad[] = {
        "v=spf1 -all.",                      /* all takes nothing */
        "v=spf1 -all:foobar",                /*  */
        "v=spf1 -all/8",                     /*  */
        "v=spf1 ptr/0",                      /* ptr has no cidr */
        "v=spf1 ptr:",                       /* empty domain-spec */
        "v=spf1 include:",                   /*  */
        "v=spf1 exists:",                    /*  */
        "v=spf1 include",                    /* include needs a domain */
        "v=spf1 exists:mail.example.com/24", /* no cidr on exists */
        "v=spf1 a:foo-bar",                  /* domain-end needs "." toplabel */
        "v=spf1 a:1.2.3.4",                  /* toplabel is not all digits */
        "v=spf1 a:example.com/33",           /* ip4-cidr-length */
        "v=spf1 a//129",                     /* ip6-cidr-length */
        "v=spf1 a/024",                      /* no leading zeros */
        "v=spf1 a:",                         /*  */
        "v=spf1 ip4:192.0.2.1/33",           /*  */
        "v=spf1 ip4:192.0.2.1//64",          /* ip4 has a single length */
        "v=spf1 ip4:1.2.3",                  /* not an address */
        "v=spf1 ip4",                        /*  */
        "v=spf1 ip6:2001:db8::/129",         /*  */
        "v=spf1 ip6:192.0.2.1",              /*  */
        "v=spf1 ip6",                        /*  */
        "v=spf1 moo",                        /* unknown mechanism */
        "v=spf1 ip4:1.2.3.4 -all moo",       /* errors anywhere count */
        "v=spf1 1up=foo",                    /* modifier names start with a letter */
        "v=spf1 =all",                       /*  */
        "v=spf1 moo.cow/far_out=man:dog",    /* '=' must follow the name */
        "v=spf1 redirect:example.com",       /* redirect is a modifier */
        "v=spf1 exp=",                       /* empty domain-spec */
        "v=spf1 redirect=",                  /*  */
        "v=spf1 exp=-all",                   /* not a domain-spec */
        "v=spf1 redirect=a.example.com redirect=b.example.com", /* twice */
        "v=spf1 exp=a.example.com exp=b.example.com",           /*  */
        "v=spf1 foo=%abc",                      /* unknown modifiers are still macro-strings */
        "v=spf1 -exists:%(ir).sbl.example.com", /* '%' then '(' */
        "v=spf1 exists:foo%.sbl.example.com",   /*  */
        "v=spf1 a:%{a}.example.com",            /* unknown macro letter */
        "v=spf1 exp=%{r}.example.com",          /* r only in explanations */
        "v=spf1 a:%{d0}.example.com",           /* zero parts */
        "v=spf1 a:ctrl.example.com\rptr",       /* only SP separates terms */
        "v=spf1 \x80"
        "a:example.net", /* 7-bit only */
        "v=spf10 -all",  /* not version 1 */
        "spf1 -all",     /*  */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf err = BUF_INIT;
        struct spf_record *rec = spf_record_parse(bad[i], &err);
        if (rec != NULL)
            fail_msg("'%s' parsed but should not", bad[i]);
        assert_true(err.len > 0);
        buf_free(&err);
    }
}

static void test_is_record(void **state)
{
    (void)state;
    assert_true(spf_is_record("v=spf1"));
    assert_true(spf_is_record("v=spf1 -all"));
    assert_true(spf_is_record("V=SPF1 -all"));
    assert_false(spf_is_record("v=spf10 -all"));
    assert_false(spf_is_record("v=spf1-all"));
    assert_false(spf_is_record(" v=spf1 -all"));
    assert_false(spf_is_record("spf2.0/pra -all"));
}

/* ---- macros: RFC 7208 7.4 ------------------------------------------------ */

static const struct spf_macro_ctx ctx4 = {
    .sender = "strong-bad@email.example.com",
    .local = "strong-bad",
    .sender_domain = "email.example.com",
    .domain = "email.example.com",
    .ip = "192.0.2.3",
    .helo = "mx.example.org",
    .receiver = "mx.example.net",
    .now = 1700000000,
    .validated = "mx.example.org",
};

static void expect(const struct spf_macro_ctx *ctx, enum spf_macro_mode mode, const char *in,
                   const char *want)
{
    struct buf out = BUF_INIT;
    int rc = spf_macro_expand(in, ctx, mode, &out);
    if (rc != SPF_MACRO_OK)
        fail_msg("'%s' did not expand (%d)", in, rc);
    if (strcmp(buf_cstr(&out), want) != 0)
        fail_msg("'%s' gave '%s', want '%s'", in, buf_cstr(&out), want);
    buf_free(&out);
}

static void test_macro_rfc_examples(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } t[] = {
        {"%{s}", "strong-bad@email.example.com"},
        {"%{o}", "email.example.com"},
        {"%{d}", "email.example.com"},
        {"%{d4}", "email.example.com"},
        {"%{d3}", "email.example.com"},
        {"%{d2}", "example.com"},
        {"%{d1}", "com"},
        {"%{dr}", "com.example.email"},
        {"%{d2r}", "example.email"},
        {"%{l}", "strong-bad"},
        {"%{l-}", "strong.bad"},
        {"%{lr}", "strong-bad"},
        {"%{lr-}", "bad.strong"},
        {"%{l1r-}", "strong"},
        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        expect(&ctx4, SPF_MACRO_DOMAIN, t[i].in, t[i].want);

    struct spf_macro_ctx ctx6 = ctx4;
    ctx6.ip = "2001:db8::cb01";
    expect(&ctx6, SPF_MACRO_DOMAIN, "%{ir}.%{v}._spf.%{d2}",
           "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
    expect(&ctx6, SPF_MACRO_EXPLAIN, "%{c}", "2001:db8::cb01");
}

static void test_macro_rules(void **state)
{
    (void)state;
    /* RFC 7208 7.1: escapes. */
    expect(&ctx4, SPF_MACRO_DOMAIN, "macro%%percent%_%_space%-url-space.example.com",
           "macro%percent  space%20url-space.example.com");
    /* Uppercase letters are URL-escaped after expansion (7.3). */
    struct spf_macro_ctx c = ctx4;
    c.local = "~jack&jill=up-a_b3.c";
    expect(&c, SPF_MACRO_EXPLAIN, "http://example.com/why.html?l=%{L}",
           "http://example.com/why.html?l=~jack%26jill%3Dup-a_b3.c");
    /* Several delimiters; digits past the part count take everything. */
    c.local = "foo-bar+zip+quux";
    expect(&c, SPF_MACRO_DOMAIN, "%{l2r+-}.user.%{d2}", "bar.foo.user.example.com");
    expect(&c, SPF_MACRO_DOMAIN, "%{l99+-}", "foo.bar.zip.quux");
    expect(&c, SPF_MACRO_DOMAIN, "%{l99}", "foo-bar+zip+quux");
    c.local = "philip-gladstone-test";
    expect(&c, SPF_MACRO_DOMAIN, "%{i}.%{l2r-}.user.%{d2}",
           "192.0.2.3.gladstone.philip.user.example.com");
    /* Letters and 'r' in either case; h, p, and the explanation-only c, r, t. */
    expect(&ctx4, SPF_MACRO_DOMAIN, "%{DR}", "com.example.email");
    expect(&ctx4, SPF_MACRO_DOMAIN, "%{dR}", "com.example.email");
    expect(&ctx4, SPF_MACRO_DOMAIN, "%{h}.%{p}", "mx.example.org.mx.example.org");
    expect(&ctx4, SPF_MACRO_EXPLAIN, "%{c} %{r} %{t}", "192.0.2.3 mx.example.net 1700000000");
    c = ctx4;
    c.receiver = NULL;
    expect(&c, SPF_MACRO_EXPLAIN, "%{r}", "unknown");
    /* Spaces are allowed in explanations only. */
    expect(&ctx4, SPF_MACRO_EXPLAIN, "This is a test.", "This is a test.");
    /* An IPv4-mapped IPv6 client is an IPv4 client. */
    c = ctx4;
    c.ip = "::ffff:192.0.2.3";
    expect(&c, SPF_MACRO_DOMAIN, "%{i}.%{v}", "192.0.2.3.in-addr");
}

static void test_macro_errors(void **state)
{
    (void)state;
    static const struct {
        enum spf_macro_mode mode;
        const char *in;
    } bad[] = {
        {SPF_MACRO_DOMAIN, "%(ir).sbl.example.com"},
        {SPF_MACRO_DOMAIN, "foo%.sbl.example.com"},
        {SPF_MACRO_DOMAIN, "trailing%"},
        {SPF_MACRO_DOMAIN, "%{x}"},
        {SPF_MACRO_DOMAIN, "%{d0}"},
        {SPF_MACRO_DOMAIN, "%{d"},
        {SPF_MACRO_DOMAIN, "%{d2r.x}"},
        {SPF_MACRO_DOMAIN, "%{c}"},
        {SPF_MACRO_DOMAIN, "%{r}"},
        {SPF_MACRO_DOMAIN, "%{t}"},
        {SPF_MACRO_DOMAIN, "with space"},
        {SPF_MACRO_EXPLAIN, "The %{x}-files."},
        {SPF_MACRO_EXPLAIN, "tab\there"},
        {SPF_MACRO_EXPLAIN, "\xef\xbb\xbf"
                            "Explanation"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf out = BUF_INIT;
        int rc = spf_macro_expand(bad[i].in, &ctx4, bad[i].mode, &out);
        if (rc != SPF_MACRO_SYNTAX)
            fail_msg("'%s' expanded (%d) but should not", bad[i].in, rc);
        buf_free(&out);
    }
    /* Expansion is capped: 2000 copies of the sender is too much. */
    struct buf big = BUF_INIT;
    for (int i = 0; i < 2000; i++)
        buf_puts(&big, "%{s}");
    struct buf res = BUF_INIT;
    assert_int_equal(spf_macro_expand(buf_cstr(&big), &ctx4, SPF_MACRO_EXPLAIN, &res),
                     SPF_MACRO_SYNTAX);
    buf_free(&big);
    buf_free(&res);

    /* %{p} without a validated name asks for DNS first. */
    struct spf_macro_ctx c = ctx4;
    c.validated = NULL;
    struct buf out = BUF_INIT;
    assert_int_equal(spf_macro_expand("connect from %{p}", &c, SPF_MACRO_EXPLAIN, &out),
                     SPF_MACRO_NEED_P);
    buf_free(&out);
    assert_true(spf_macro_uses_p("x.%{p}.y"));
    assert_true(spf_macro_uses_p("%{P2r}"));
    assert_false(spf_macro_uses_p("%%{p}"));
    assert_false(spf_macro_uses_p("%{d}.p"));
}

static void test_result_words(void **state)
{
    (void)state;
    assert_string_equal(spf_result_str(SPF_NONE), "none");
    assert_string_equal(spf_result_str(SPF_NEUTRAL), "neutral");
    assert_string_equal(spf_result_str(SPF_PASS), "pass");
    assert_string_equal(spf_result_str(SPF_FAIL), "fail");
    assert_string_equal(spf_result_str(SPF_SOFTFAIL), "softfail");
    assert_string_equal(spf_result_str(SPF_TEMPERROR), "temperror");
    assert_string_equal(spf_result_str(SPF_PERMERROR), "permerror");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_mechanisms),   cmocka_unit_test(test_parse_modifiers),
        cmocka_unit_test(test_parse_errors),       cmocka_unit_test(test_is_record),
        cmocka_unit_test(test_macro_rfc_examples), cmocka_unit_test(test_macro_rules),
        cmocka_unit_test(test_macro_errors),       cmocka_unit_test(test_result_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
