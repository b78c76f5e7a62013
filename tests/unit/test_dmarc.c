/*
 * Unit tests for DMARC (src/mailauth/dmarc.c): the record parser and the
 * evaluation against golden cases in tests/data/dmarc/, with DNS answered
 * by a fake resolver at the TXT-lookup seam (at once, or later).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc.h"

/* ---- a fake resolver from zone.txt ---- */

struct zrec {
    char *name;
    char *txt;  /* NULL: SERVFAIL (or an EXISTS line) */
    int exists; /* "NAME EXISTS": the name has A/AAAA/MX records (RFC 9091) */
};

struct pending {
    char *name;
    txt_done_fn done;
    void *done_arg;
    int live;
};

struct fake {
    struct zrec recs[64];
    size_t n;
    int async;
    struct pending pend[8];
    size_t npend;
    unsigned lookups;
};

static void fake_load(struct fake *f, const char *path)
{
    struct buf text = BUF_INIT;
    assert_int_equal(read_file(path, &text, 1 << 20), 0);
    char *save = NULL;
    for (char *line = strtok_r(text.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        char *rest = sp + 1;
        assert_true(f->n < 64);
        f->recs[f->n].name = xstrdup(line);
        if (strncmp(rest, "TXT ", 4) == 0)
            f->recs[f->n].txt = xstrdup(rest + 4);
        else if (strcmp(rest, "EXISTS") == 0)
            f->recs[f->n].exists = 1;
        else
            assert_string_equal(rest, "SERVFAIL");
        f->n++;
    }
    buf_free(&text);
}

static void fake_free(struct fake *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->recs[i].name);
        free(f->recs[i].txt);
    }
    for (size_t i = 0; i < f->npend; i++)
        free(f->pend[i].name);
}

/* The existence question of RFC 9091, answered at once from the EXISTS lines. */
static void *fake_exists(void *arg, const char *name, void (*done)(void *done_arg, int exists),
                         void *done_arg)
{
    struct fake *f = arg;
    int exists = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->recs[i].exists && strcmp(f->recs[i].name, name) == 0)
            exists = 1;
    done(done_arg, exists);
    return NULL;
}

static void fake_answer(struct fake *f, const char *name, txt_done_fn done, void *done_arg)
{
    const char *txt[16];
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (strcasecmp(f->recs[i].name, name) != 0 || f->recs[i].exists)
            continue;
        if (!f->recs[i].txt) {
            done(done_arg, TXT_TEMPFAIL, NULL, 0);
            return;
        }
        txt[n++] = f->recs[i].txt;
    }
    if (n == 0)
        done(done_arg, TXT_NOTFOUND, NULL, 0);
    else
        done(done_arg, TXT_FOUND, txt, n);
}

static void *fake_lookup(void *arg, const char *name, txt_done_fn done, void *done_arg)
{
    struct fake *f = arg;
    f->lookups++;
    if (!f->async) {
        fake_answer(f, name, done, done_arg);
        return NULL;
    }
    assert_true(f->npend < 8);
    struct pending *p = &f->pend[f->npend++];
    p->name = xstrdup(name);
    p->done = done;
    p->done_arg = done_arg;
    p->live = 1;
    return p;
}

static void fake_cancel(void *arg, void *handle)
{
    struct pending *p = handle;
    p->live = 0;
}

/* Answers what is pending (and what those answers ask next) until nothing is. */
static void fake_run(struct fake *f)
{
    for (size_t i = 0; i < f->npend; i++) {
        if (!f->pend[i].live)
            continue;
        f->pend[i].live = 0;
        fake_answer(f, f->pend[i].name, f->pend[i].done, f->pend[i].done_arg);
    }
}

/* ---- the record parser ---- */

static void check_record_line(char *line, int lineno)
{
    char *bar = strstr(line, " |");
    assert_non_null(bar);
    *bar = '\0';
    const char *rec_text = bar[2] == ' ' ? bar + 3 : bar + 2;
    char *save = NULL;
    char *status = strtok_r(line, " ", &save);
    struct dmarc_record rec;
    struct buf err = BUF_INIT;
    enum dmarc_parse_status st = dmarc_record_parse(rec_text, strlen(rec_text), &rec, &err);
    const char *got = st == DMARC_PARSE_OK        ? "ok"
                      : st == DMARC_PARSE_INVALID ? "invalid"
                                                  : "not-dmarc";
    if (strcmp(got, status) != 0)
        fail_msg("records.txt:%d: \"%s\": got %s, want %s (%s)", lineno, rec_text, got, status,
                 buf_cstr(&err));
    for (char *kv = strtok_r(NULL, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        char have[128];
        if (strcmp(k, "p") == 0)
            snprintf(have, sizeof have, "%s", dmarc_policy_str(rec.p));
        else if (strcmp(k, "sp") == 0)
            snprintf(have, sizeof have, "%s", dmarc_policy_str(rec.sp));
        else if (strcmp(k, "np") == 0)
            snprintf(have, sizeof have, "%s", dmarc_policy_str(rec.np));
        else if (strcmp(k, "pct") == 0)
            snprintf(have, sizeof have, "%d", rec.pct);
        else if (strcmp(k, "adkim") == 0)
            snprintf(have, sizeof have, "%s", rec.adkim == DMARC_ALIGN_STRICT ? "s" : "r");
        else if (strcmp(k, "aspf") == 0)
            snprintf(have, sizeof have, "%s", rec.aspf == DMARC_ALIGN_STRICT ? "s" : "r");
        else if (strcmp(k, "fallback") == 0)
            snprintf(have, sizeof have, "%d", rec.p_fallback);
        else if (strcmp(k, "ri") == 0)
            snprintf(have, sizeof have, "%lu", rec.ri);
        else if (strcmp(k, "fo") == 0)
            snprintf(have, sizeof have, "%s", rec.fo);
        else if (strcmp(k, "rf") == 0)
            snprintf(have, sizeof have, "%s", rec.rf);
        else if (strcmp(k, "rua") == 0)
            snprintf(have, sizeof have, "%s", rec.rua ? rec.rua : "-");
        else
            fail_msg("records.txt:%d: unknown key %s", lineno, k);
        if (strcmp(have, v) != 0)
            fail_msg("records.txt:%d: \"%s\": %s=%s, want %s", lineno, rec_text, k, have, v);
    }
    dmarc_record_clear(&rec);
    buf_free(&err);
}

static void test_records(void **state)
{
    struct buf text = BUF_INIT;
    assert_int_equal(read_file(TEST_DATA_DIR "/dmarc/records.txt", &text, 1 << 20), 0);
    int lineno = 0, cases = 0;
    char *p = text.data;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        if (p[0] != '#' && p[0] != '\0') {
            check_record_line(p, lineno);
            cases++;
        }
        p = nl ? nl + 1 : NULL;
    }
    assert_true(cases >= 30);
    buf_free(&text);
}

static void test_record_notes(void **state)
{
    struct dmarc_record rec;
    struct buf err = BUF_INIT;
    const char *r = "v=DMARC1; p=reject; pct=200";
    assert_int_equal(dmarc_record_parse(r, strlen(r), &rec, &err), DMARC_PARSE_OK);
    assert_non_null(strstr(buf_cstr(&err), "pct="));
    dmarc_record_clear(&rec);
    dmarc_record_clear(NULL);
    /* NUL bytes inside a record are just bad characters. */
    const char bin[] = "v=DMARC1; p=re\0ject";
    buf_reset(&err);
    assert_int_equal(dmarc_record_parse(bin, sizeof bin - 1, &rec, &err), DMARC_PARSE_INVALID);
    dmarc_record_clear(&rec);
    buf_free(&err);
}

/* ---- domains ---- */

static void test_org_domain(void **state)
{
    static const char *cases[][2] = {
        {"example.com", "example.com"},
        {"a.b.example.com", "example.com"},
        {"MAIL.Example.COM.", "example.com"},
        {"news.example.co.uk", "example.co.uk"},
        {"co.uk", "co.uk"}, /* a public suffix is its own */
        {"com", "com"},
        {"foo.nothing.test", "nothing.test"},   /* unknown TLD: the "*" rule */
        {"x.y.blogspot.com", "y.blogspot.com"}, /* private section entries count too */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o = dmarc_org_domain(cases[i][0]);
        if (strcmp(o, cases[i][1]) != 0)
            fail_msg("org(%s) = %s, want %s", cases[i][0], o, cases[i][1]);
        free(o);
    }
}

static void test_aligned(void **state)
{
    assert_true(dmarc_aligned("example.com", "example.com", DMARC_ALIGN_STRICT));
    assert_true(dmarc_aligned("Example.com", "example.COM.", DMARC_ALIGN_STRICT));
    assert_false(dmarc_aligned("example.com", "mail.example.com", DMARC_ALIGN_STRICT));
    assert_true(dmarc_aligned("example.com", "mail.example.com", DMARC_ALIGN_RELAXED));
    assert_true(dmarc_aligned("a.example.com", "b.example.com", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned("example.com", "example.net", DMARC_ALIGN_RELAXED));
    /* two registrable domains under the same public suffix are not aligned */
    assert_false(dmarc_aligned("a.co.uk", "b.co.uk", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned("example.com", "", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned("example.com", NULL, DMARC_ALIGN_RELAXED));
}

/* ---- evaluation, golden ---- */

struct got {
    int calls;
    struct dmarc_outcome o;
};

static void on_outcome(void *arg, const struct dmarc_outcome *o)
{
    struct got *g = arg;
    g->calls++;
    g->o = *o;
    g->o.from_domain = xstrdup(o->from_domain ? o->from_domain : "");
    g->o.org_domain = xstrdup(o->org_domain ? o->org_domain : "");
    g->o.record_domain = o->record_domain ? xstrdup(o->record_domain) : NULL;
    g->o.rua = o->rua ? xstrdup(o->rua) : NULL;
    g->o.reason = xstrdup(o->reason);
}

static unsigned draw_value;
static unsigned draws;
static unsigned fixed_draw(void *arg)
{
    draws++;
    return draw_value;
}

static enum dmarc_auth auth_word(const char *w)
{
    if (strcmp(w, "pass") == 0)
        return DMARC_AUTH_PASS;
    if (strcmp(w, "fail") == 0)
        return DMARC_AUTH_FAIL;
    if (strcmp(w, "temperror") == 0)
        return DMARC_AUTH_TEMPERROR;
    assert_string_equal(w, "none");
    return DMARC_AUTH_NONE;
}

static void run_case(struct fake *f, char *line, int lineno)
{
    char *arrow = strstr(line, " -> ");
    assert_non_null(arrow);
    *arrow = '\0';
    char *expect = arrow + 4;
    char *save = NULL;
    char *name = strtok_r(line, " ", &save);
    struct dmarc_request req = {0};
    struct dmarc_identifier dk[8];
    size_t ndk = 0;
    draw_value = 0;
    for (char *kv = strtok_r(NULL, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        char *v = eq + 1;
        if (strcmp(kv, "from") == 0) {
            req.from_domain = v;
        } else if (strcmp(kv, "spf") == 0) {
            char *c = strchr(v, ':');
            *c = '\0';
            req.spf.result = auth_word(v);
            req.spf.domain = c + 1;
        } else if (strcmp(kv, "dkim") == 0) {
            char *s2 = NULL;
            for (char *one = strtok_r(v, ",", &s2); one; one = strtok_r(NULL, ",", &s2)) {
                char *c = strchr(one, ':');
                *c = '\0';
                dk[ndk].result = auth_word(one);
                dk[ndk++].domain = c + 1;
            }
        } else if (strcmp(kv, "draw") == 0) {
            draw_value = (unsigned)atoi(v);
        } else {
            fail_msg("cases.txt:%d: unknown input %s", lineno, kv);
        }
    }
    req.dkim = dk;
    req.ndkim = ndk;
    req.random = fixed_draw;

    struct got g = {0};
    f->npend = 0;
    struct dmarc_check *chk = dmarc_check_start(
        &(struct txt_lookup){fake_lookup, fake_cancel, f, fake_exists}, &req, on_outcome, &g);
    if (f->async && chk) {
        assert_int_equal(g.calls, 0);
        fake_run(f);
    } else if (f->async) {
        /* only a check that needs no DNS at all may finish at once */
        assert_int_equal(f->npend, 0);
    } else {
        assert_null(chk);
    }
    if (g.calls != 1)
        fail_msg("cases.txt:%d %s: callback ran %d times", lineno, name, g.calls);
    for (size_t i = 0; i < f->npend; i++)
        free(f->pend[i].name);
    f->npend = 0;

    char *s3 = NULL;
    for (char *kv = strtok_r(expect, " ", &s3); kv; kv = strtok_r(NULL, " ", &s3)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        char have[256];
        if (strcmp(k, "result") == 0)
            snprintf(have, sizeof have, "%s", dmarc_result_str(g.o.result));
        else if (strcmp(k, "policy") == 0)
            snprintf(have, sizeof have, "%s", dmarc_policy_str(g.o.policy));
        else if (strcmp(k, "disposition") == 0)
            snprintf(have, sizeof have, "%s", dmarc_policy_str(g.o.disposition));
        else if (strcmp(k, "record") == 0)
            snprintf(have, sizeof have, "%s", g.o.record_domain ? g.o.record_domain : "-");
        else if (strcmp(k, "spf_aligned") == 0)
            snprintf(have, sizeof have, "%d", g.o.spf_aligned);
        else if (strcmp(k, "dkim_aligned") == 0)
            snprintf(have, sizeof have, "%d", g.o.dkim_aligned);
        else if (strcmp(k, "sampled") == 0)
            snprintf(have, sizeof have, "%d", g.o.sampled_out);
        else
            fail_msg("cases.txt:%d: unknown expectation %s", lineno, k);
        if (strcmp(have, v) != 0)
            fail_msg("cases.txt:%d %s%s: %s=%s, want %s (reason: %s)", lineno, name,
                     f->async ? " (async)" : "", k, have, v, g.o.reason);
    }
    assert_true(strlen(g.o.reason) > 0);
    dmarc_outcome_clear(&g.o);
}

static void run_golden(int async)
{
    struct fake f = {0};
    f.async = async;
    fake_load(&f, TEST_DATA_DIR "/dmarc/zone.txt");
    struct buf text = BUF_INIT;
    assert_int_equal(read_file(TEST_DATA_DIR "/dmarc/cases.txt", &text, 1 << 20), 0);
    int lineno = 0, cases = 0;
    char *p = text.data;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        if (p[0] != '#' && p[0] != '\0') {
            run_case(&f, p, lineno);
            cases++;
        }
        p = nl ? nl + 1 : NULL;
    }
    assert_true(cases >= 30);
    buf_free(&text);
    fake_free(&f);
}

static void test_golden_sync(void **state)
{
    run_golden(0);
}

static void test_golden_async(void **state)
{
    run_golden(1);
}

/* pct=100 never draws; pct below 100 draws once for a failing message. */
static void test_pct_draws(void **state)
{
    struct fake f = {0};
    fake_load(&f, TEST_DATA_DIR "/dmarc/zone.txt");
    struct txt_lookup lk = {fake_lookup, fake_cancel, &f, fake_exists};
    struct dmarc_request req = {.from_domain = "example.com", .random = fixed_draw};
    struct got g = {0};
    draws = 0;
    dmarc_check_start(&lk, &req, on_outcome, &g);
    assert_int_equal(draws, 0);
    dmarc_outcome_clear(&g.o);
    req.from_domain = "half.test";
    dmarc_check_start(&lk, &req, on_outcome, &g);
    assert_int_equal(draws, 1);
    dmarc_outcome_clear(&g.o);
    /* the default source stays in range: over many runs both outcomes occur */
    req.random = NULL;
    int spared = 0, hit = 0;
    for (int i = 0; i < 400; i++) {
        struct got g2 = {0};
        dmarc_check_start(&lk, &req, on_outcome, &g2);
        if (g2.o.sampled_out)
            spared++;
        else
            hit++;
        dmarc_outcome_clear(&g2.o);
    }
    assert_true(spared > 0 && hit > 0);
    fake_free(&f);
}

/* A pending check can be cancelled: no callback, and the lookup is cancelled too. */
static void test_cancel(void **state)
{
    struct fake f = {0};
    f.async = 1;
    fake_load(&f, TEST_DATA_DIR "/dmarc/zone.txt");
    struct txt_lookup lk = {fake_lookup, fake_cancel, &f, fake_exists};
    struct dmarc_request req = {.from_domain = "a.example.com"};
    struct got g = {0};
    struct dmarc_check *chk = dmarc_check_start(&lk, &req, on_outcome, &g);
    assert_non_null(chk);
    assert_int_equal(f.npend, 1);
    dmarc_check_cancel(chk);
    assert_int_equal(f.pend[0].live, 0);
    fake_run(&f);
    assert_int_equal(g.calls, 0);
    dmarc_check_cancel(NULL);
    fake_free(&f);
}

/* The org-domain lookup is asked only when the From domain has no record. */
static void test_lookup_names(void **state)
{
    struct fake f = {0};
    f.async = 1;
    fake_load(&f, TEST_DATA_DIR "/dmarc/zone.txt");
    struct txt_lookup lk = {fake_lookup, fake_cancel, &f, fake_exists};
    struct dmarc_request req = {.from_domain = "Deep.Mail.Example.com."};
    struct got g = {0};
    dmarc_check_start(&lk, &req, on_outcome, &g);
    assert_string_equal(f.pend[0].name, "_dmarc.deep.mail.example.com");
    fake_run(&f);
    assert_int_equal(f.npend, 2);
    assert_string_equal(f.pend[1].name, "_dmarc.example.com");
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.o.org_domain, "example.com");
    dmarc_outcome_clear(&g.o);
    fake_free(&f);
}

/*
 * The synchronous wrapper on the real DNS layer: a resolver that does not
 * answer (nothing listens on port 1) is a temporary error, never "none".
 */
static void test_sync_unreachable(void **state)
{
    struct dmarc_request req = {.from_domain = "example.com"};
    struct dmarc_outcome out;
    struct buf err = BUF_INIT;
    assert_int_equal(dmarc_check_sync("127.0.0.1:1", &req, &out, &err), 0);
    assert_int_equal(out.result, DMARC_RESULT_TEMPERROR);
    assert_string_equal(out.from_domain, "example.com");
    assert_non_null(strstr(out.reason, "_dmarc.example.com"));
    dmarc_outcome_clear(&out);
    /* a resolver that cannot be set up is the caller's error, said in err */
    assert_int_equal(dmarc_check_sync("not an address:x", &req, &out, &err), -1);
    assert_true(err.len > 0);
    buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),      cmocka_unit_test(test_record_notes),
        cmocka_unit_test(test_org_domain),   cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_golden_sync),  cmocka_unit_test(test_golden_async),
        cmocka_unit_test(test_pct_draws),    cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_lookup_names), cmocka_unit_test(test_sync_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
