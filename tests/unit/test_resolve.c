/* Unit tests for recipient resolution: classes, aliases, virtual aliases, mailboxes, failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/map_text.h"
#include "queue/resolve.h"
#include "testutil.h"

static char tmpdir[256];

static void write_in(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", tmpdir, name);
    assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
    free(p);
}

static void build_aliases(const char *name)
{
    char *spec = xasprintf("hash:%s/%s", tmpdir, name);
    struct buf err = BUF_INIT;
    if (map_build_syntax(spec, MAP_SYNTAX_ALIASES, &err) != 0)
        fail_msg("%s", buf_cstr(&err));
    buf_free(&err);
    free(spec);
}

/* A resolver over main.cf made of the common lines plus extra. */
static struct resolver *make_resolver(const char *extra)
{
    struct buf cf = BUF_INIT;
    buf_printf(&cf,
               "myhostname = mx.example.com\n"
               "mydomain = example.com\n"
               "myorigin = example.com\n"
               "mydestination = example.com, localhost, .sub.example.com\n"
               "virtual_mailbox_domains = Virt.test, texthash:%s/vdomains\n"
               "relay_domains = relay.test texthash:%s/rdomains\n"
               "data_directory = %s/data\n"
               "virtual_mailbox_base = %s/mail/\n"
               "recipient_delimiter = +\n"
               "%s",
               tmpdir, tmpdir, tmpdir, tmpdir, extra);
    char *path = xasprintf("%s/main.cf", tmpdir);
    assert_int_equal(write_file_atomic(path, cf.data, cf.len, 0644), 0);
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(path, &err);
    if (cfg == NULL)
        fail_msg("config: %s", buf_cstr(&err));
    struct resolver *r = resolver_new(cfg, &err);
    if (r == NULL)
        fail_msg("resolver: %s", buf_cstr(&err));
    config_free(cfg);
    buf_free(&err);
    buf_free(&cf);
    free(path);
    return r;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_resolve.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    write_in("vdomains", "vt2.test ok\n");
    write_in("rdomains", "relay2.test ok\n");
    write_in("aliases", "postmaster: root\n"
                        "root: bob, carol@example.com\n"
                        "keep: keep, copy@remote.test\n"
                        "loopa: loopb\n"
                        "loopb: loopa\n"
                        "bob: robert\n"
                        "pipe: \"|/bin/cat\"\n"
                        "chain0: chain1\n"
                        "fan: x1, x2\n"
                        "x1: fan\n");
    struct buf chain = BUF_INIT;
    buf_puts(&chain, "postmaster: root\n");
    for (int i = 0; i < 30; i++)
        buf_printf(&chain, "c%d: c%d\n", i, i + 1);
    write_in("deep", buf_cstr(&chain));
    buf_free(&chain);
    build_aliases("aliases");
    build_aliases("deep");
    write_in("virtual", "info@virt.test  bob@example.com\n"
                        "sales@virt.test  sales@virt.test, boss@remote.test\n"
                        "fwd@virt.test  someone@relay.test\n"
                        "@catch.test  @example.com\n"
                        "@catch2.test  admin\n"
                        "dave  david@example.com\n"
                        "va@virt.test vb@virt.test\n"
                        "vb@virt.test va@virt.test\n");
    write_in("vmbox", "alice@virt.test  virt.test/alice/\n"
                      "bob@example.com  example.com/bobby\n"
                      "evil@virt.test  ../../etc/\n"
                      "@vt2.test  vt2.test/catchall/\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_rm_rf(tmpdir);
    return 0;
}

static struct resolver *std_resolver(void)
{
    char *extra = xasprintf("alias_maps = hash:%s/aliases\n"
                            "virtual_alias_maps = texthash:%s/virtual\n",
                            tmpdir, tmpdir);
    struct resolver *r = make_resolver(extra);
    free(extra);
    return r;
}

/* Expands and checks: want is "addr=mailbox-suffix|addr2=R|addr3=X" (R relay, X remote). */
static void expect(struct resolver *r, const char *address, const char *want)
{
    struct resolved_list out;
    struct buf err = BUF_INIT, got = BUF_INIT;
    enum map_result res = resolver_expand(r, address, &out, &err);
    if (res != MAP_FOUND)
        fail_msg("%s: result %d: %s", address, res, buf_cstr(&err));
    size_t blen = strlen(tmpdir) + strlen("/mail/");
    for (size_t i = 0; i < out.count; i++) {
        const struct resolved_rcpt *it = &out.items[i];
        if (i)
            buf_putc(&got, '|');
        buf_printf(&got, "%s=", it->address);
        if (it->cls == RESOLVE_LOCAL) {
            assert_non_null(it->mailbox);
            assert_int_equal(strncmp(it->mailbox, tmpdir, strlen(tmpdir)), 0);
            buf_puts(&got, it->mailbox + blen);
        } else {
            assert_null(it->mailbox);
            buf_puts(&got, it->cls == RESOLVE_RELAY ? "R" : "X");
        }
    }
    if (strcmp(buf_cstr(&got), want) != 0)
        fail_msg("%s: got '%s' want '%s'", address, buf_cstr(&got), want);
    resolved_list_free(&out);
    buf_free(&err);
    buf_free(&got);
}

static void expect_fail(struct resolver *r, const char *address, enum map_result want,
                        const char *msg)
{
    struct resolved_list out;
    struct buf err = BUF_INIT;
    enum map_result res = resolver_expand(r, address, &out, &err);
    if (res != want)
        fail_msg("%s: result %d want %d (%s)", address, res, want, buf_cstr(&err));
    assert_int_equal(out.count, 0);
    assert_null(out.items);
    /*
     * msg "5.1.1" or "5.1.1 <text>": the enhanced status is wanted apart
     * (out.status), the text without it (starting at the address).
     */
    if (msg[0] >= '2' && msg[0] <= '5' && msg[1] == '.') {
        size_t n = strcspn(msg, " ");
        if (strlen(out.status) != n || strncmp(out.status, msg, n) != 0)
            fail_msg("%s: status '%s' want '%.*s' (%s)", address, out.status, (int)n, msg,
                     buf_cstr(&err));
        if (buf_cstr(&err)[0] != '<' || strstr(buf_cstr(&err), msg[n] ? msg + n + 1 : "") == NULL)
            fail_msg("%s: text '%s' want '<address>...%s'", address, buf_cstr(&err), msg + n);
    } else if (strstr(buf_cstr(&err), msg) == NULL) {
        fail_msg("%s: error '%s' lacks '%s'", address, buf_cstr(&err), msg);
    }
    buf_free(&err);
}

static void test_classify(void **state)
{
    (void)state;
    struct resolver *r = std_resolver();
    assert_int_equal(resolver_classify(r, "a@EXAMPLE.com"), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "a@localhost"), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "a@deep.sub.example.com"), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "a@sub.example.com"), RESOLVE_REMOTE);
    assert_int_equal(resolver_classify(r, "a@virt.test"), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "a@vt2.test"), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "a@relay.test"), RESOLVE_RELAY);
    assert_int_equal(resolver_classify(r, "a@relay2.test"), RESOLVE_RELAY);
    assert_int_equal(resolver_classify(r, "a@elsewhere.test"), RESOLVE_REMOTE);
    assert_int_equal(resolver_classify(r, ""), RESOLVE_LOCAL);
    assert_int_equal(resolver_classify(r, "user"), RESOLVE_LOCAL);
    resolver_free(r);
    resolver_free(NULL);
}

static void test_plain_local(void **state)
{
    (void)state;
    struct resolver *r = std_resolver();
    expect(r, "Jane@Example.COM", "Jane@example.com=example.com/jane/");
    expect(r, "jane+news@example.com", "jane+news@example.com=example.com/jane/");
    expect(r, "jane", "jane@example.com=example.com/jane/");
    expect(r, "someone@vt2.test", "someone@vt2.test=vt2.test/someone/");
    expect(r, "\"Odd Name\"@example.com", "\"Odd Name\"@example.com=example.com/odd name/");
    expect(r, "x@relay.test", "x@relay.test=R");
    expect(r, "x@remote.test", "x@remote.test=X");
    resolver_free(r);
}

static void test_aliases(void **state)
{
    (void)state;
    struct resolver *r = std_resolver();
    /* postmaster -> root -> bob (-> robert), carol */
    expect(r, "postmaster@example.com",
           "robert@example.com=example.com/robert/|carol@example.com=example.com/carol/");
    expect(r, "ROOT@localhost",
           "robert@localhost=localhost/robert/|carol@example.com=example.com/carol/");
    /* An alias that names itself keeps itself as a final recipient. */
    expect(r, "keep@example.com", "keep@example.com=example.com/keep/|copy@remote.test=X");
    /* recipient_delimiter: bob+tag tries bob+tag then bob, and keeps the extension. */
    expect(r, "bob+tag@example.com", "robert+tag@example.com=example.com/robert/");
    /* Aliases apply to mydestination only, not virtual_mailbox_domains. */
    expect(r, "root@vt2.test", "root@vt2.test=vt2.test/root/");
    /* A loop back to an ancestor is dropped; the rest of the fan-out survives. */
    expect(r, "fan@example.com", "x2@example.com=example.com/x2/");
    expect_fail(r, "loopa@example.com", MAP_NOTFOUND, "5.4.6");
    expect_fail(r, "pipe@example.com", MAP_TEMPFAIL, "not supported");
    resolver_free(r);

    char *extra = xasprintf("alias_maps = hash:%s/deep\n", tmpdir);
    r = make_resolver(extra);
    free(extra);
    expect(r, "c15@example.com", "c30@example.com=example.com/c30/");
    expect_fail(r, "c0@example.com", MAP_TEMPFAIL, "4.3.0");
    resolver_free(r);
}

static void test_virtual(void **state)
{
    (void)state;
    struct resolver *r = std_resolver();
    expect(r, "info@virt.test", "robert@example.com=example.com/robert/");
    expect(r, "info+x@virt.test", "robert+x@example.com=example.com/robert/");
    expect(r, "sales@virt.test", "sales@virt.test=virt.test/sales/|boss@remote.test=X");
    expect(r, "fwd@virt.test", "someone@relay.test=R");
    /* Catch-all: "@catch.test @example.com" keeps the local part. */
    expect(r, "Who+e@catch.test", "Who+e@example.com=example.com/who/");
    expect(r, "anyone@catch2.test", "admin@example.com=example.com/admin/");
    /* A bare "user" key applies to local domains only. */
    expect(r, "dave@example.com", "david@example.com=example.com/david/");
    expect(r, "dave@remote.test", "dave@remote.test=X");
    expect_fail(r, "va@virt.test", MAP_NOTFOUND, "5.4.6");
    resolver_free(r);
}

static void test_mailbox_map(void **state)
{
    (void)state;
    char *extra = xasprintf("alias_maps = hash:%s/aliases\n"
                            "virtual_alias_maps = texthash:%s/virtual\n"
                            "virtual_mailbox_maps = texthash:%s/vmbox\n",
                            tmpdir, tmpdir, tmpdir);
    struct resolver *r = make_resolver(extra);
    free(extra);
    expect(r, "Alice@virt.test", "Alice@virt.test=virt.test/alice/");
    expect(r, "alice+x@virt.test", "alice+x@virt.test=virt.test/alice/");
    expect(r, "anything@vt2.test", "anything@vt2.test=vt2.test/catchall/");
    /* info -> bob@example.com -> alias robert, not in the map: unknown. */
    expect_fail(r, "info@virt.test", MAP_NOTFOUND,
                "5.1.1 <info@virt.test>: Recipient address rejected");
    expect_fail(r, "nobody@virt.test", MAP_NOTFOUND, "User unknown");
    expect_fail(r, "evil@virt.test", MAP_TEMPFAIL, "unsafe mailbox path");
    /* RFC 5321 4.5.1: postmaster always exists; unaliased it gets its own mailbox. */
    expect(r, "Postmaster@virt.test", "Postmaster@virt.test=virt.test/postmaster/");
    expect(r, "x@remote.test", "x@remote.test=X");
    resolver_free(r);
}

static void test_path_safety(void **state)
{
    (void)state;
    struct resolver *r = std_resolver();
    expect_fail(r, ".hidden@example.com", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "a..b@example.com", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "\"a/b\"@example.com", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "a\x01@example.com", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "\"..\"@example.com", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "", MAP_NOTFOUND, "5.1.3");
    expect_fail(r, "user@", MAP_NOTFOUND, "5.1.3");
    /* UTF-8 local parts (RFC 6531) are fine. */
    expect(r, "j\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com=example.com/j\xc3\xb6rg/");
    resolver_free(r);
}

static void test_tempfail(void **state)
{
    (void)state;
    char *extra = xasprintf("alias_maps = hash:%s/unbuilt\n", tmpdir);
    struct resolver *r = make_resolver(extra);
    free(extra);
    expect_fail(r, "bob@example.com", MAP_TEMPFAIL, "4.3.0");
    /* Remote and virtual-domain addresses never consult alias_maps. */
    expect(r, "bob@remote.test", "bob@remote.test=X");
    expect(r, "bob@virt.test", "bob@virt.test=virt.test/bob/");
    resolver_free(r);

    extra = xasprintf("relay_domains = hash:%s/unbuilt\n", tmpdir);
    r = make_resolver(extra);
    free(extra);
    expect_fail(r, "bob@remote.test", MAP_TEMPFAIL, "4.3.0");
    assert_int_equal(resolver_classify(r, "bob@remote.test"), RESOLVE_REMOTE);
    expect(r, "bob@example.com", "bob@example.com=example.com/bob/");
    /* resolver_class says "try later" where resolver_classify guesses remote. */
    struct buf why = BUF_INIT;
    assert_int_equal(resolver_class(r, "bob@remote.test", &why), -1);
    assert_non_null(strstr(buf_cstr(&why), "unbuilt"));
    buf_reset(&why);
    assert_int_equal(resolver_class(r, "bob@example.com", &why), RESOLVE_LOCAL);
    /* What RCPT needs in one call: the class, then the expansion of a local address. */
    enum resolve_class cls = RESOLVE_REMOTE;
    struct resolved_list rl = {0};
    assert_int_equal(resolver_lookup_rcpt(r, "bob@remote.test", &cls, &rl, &why), MAP_TEMPFAIL);
    assert_int_equal(resolver_lookup_rcpt(r, "Bob@Example.com", &cls, &rl, &why), MAP_FOUND);
    assert_int_equal(cls, RESOLVE_LOCAL);
    assert_int_equal(rl.count, 1);
    resolved_list_free(&rl);
    assert_int_equal(resolver_lookup_rcpt(r, "bob@relay.test", &cls, &rl, &why), MAP_TEMPFAIL);
    /* Local tables only: nothing here may wait on the network. */
    assert_int_equal(resolver_class_may_block(r), 0);
    buf_free(&why);
    resolver_free(r);

    /* A table that cannot be opened at all fails resolver_new, naming the key. */
    char *path = xasprintf("%s/main.cf", tmpdir);
    char *text =
        xasprintf("myhostname = mx.example.com\nvirtual_alias_maps = texthash:%s/none\n", tmpdir);
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(path, &err);
    assert_non_null(cfg);
    assert_null(resolver_new(cfg, &err));
    assert_non_null(strstr(buf_cstr(&err), "virtual_alias_maps"));
    config_free(cfg);
    buf_free(&err);
    free(text);
    free(path);
}

static void test_inline_and_domain_lists(void **state)
{
    (void)state;
    /* A later line replaces the common relay_domains, as in main.cf. */
    struct resolver *r = make_resolver("relay_domains = !bad.relay.test, .relay.test\n"
                                       "alias_maps = inline:{ info = bob, {team = ann, "
                                       "joe@remote.test} }\n");
    assert_int_equal(resolver_classify(r, "x@a.relay.test"), RESOLVE_RELAY);
    assert_int_equal(resolver_classify(r, "x@bad.relay.test"), RESOLVE_REMOTE);
    assert_int_equal(resolver_classify(r, "x@relay.test"), RESOLVE_REMOTE);
    expect(r, "info@example.com", "bob@example.com=example.com/bob/");
    expect(r, "Team@example.com", "ann@example.com=example.com/ann/|joe@remote.test=X");
    resolver_free(r);
}

/* Which list made a domain local: it picks mailbox_transport or virtual_transport. */
static void test_local_kind(void **state)
{
    (void)state;
    struct resolver *r = make_resolver("virtual_mailbox_domains = virt.test, example.com\n");
    const char *addrs[] = {"bob@example.com", "bob@virt.test", "bob@localhost"};
    const int want[] = {0, 1, 0}; /* example.com is in both: mydestination wins */
    for (size_t i = 0; i < 3; i++) {
        struct resolved_list l;
        struct buf err = BUF_INIT;
        assert_int_equal(resolver_expand(r, addrs[i], &l, &err), MAP_FOUND);
        assert_int_equal(l.count, 1);
        assert_int_equal(l.items[0].cls, RESOLVE_LOCAL);
        assert_int_equal(l.items[0].virtual_domain, want[i]);
        resolved_list_free(&l);
        buf_free(&err);
    }
    resolver_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),    cmocka_unit_test(test_plain_local),
        cmocka_unit_test(test_aliases),     cmocka_unit_test(test_virtual),
        cmocka_unit_test(test_mailbox_map), cmocka_unit_test(test_path_safety),
        cmocka_unit_test(test_tempfail),    cmocka_unit_test(test_inline_and_domain_lists),
        cmocka_unit_test(test_local_kind),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
