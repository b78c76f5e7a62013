/* Unit tests for routing decisions (remote, LMTP next hops, local domains'
 * transports) and the SASL password-map key order (src/deliver/route.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "deliver/route.h"
#include "lib/util.h"
#include "maps/maps.h"

/* A fixed in-memory table: "table key" -> value; "TEMPFAIL" as a value answers try later. */
struct fake {
    const char *(*rows)[3];
    size_t n;
    char log[4096]; /* keys asked, in order, for the lookup-order tests */
};

static int fake_lookup(void *ctx, const char *table, const char *key, struct buf *value,
                       struct buf *err)
{
    struct fake *f = ctx;
    size_t l = strlen(f->log);
    snprintf(f->log + l, sizeof f->log - l, "%s%s", l ? "|" : "", key);
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->rows[i][0], table) == 0 && str_eq_ci(f->rows[i][1], key)) {
            if (strcmp(f->rows[i][2], "TEMPFAIL") == 0) {
                buf_puts(err, "table unavailable");
                return MAP_TEMPFAIL;
            }
            buf_set(value, f->rows[i][2]);
            return MAP_FOUND;
        }
    }
    return MAP_NOTFOUND;
}

static struct config *load_cfg(const char *text)
{
    char path[] = "/tmp/test_route_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, text, strlen(text)), 0);
    close(fd);
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(path, &err);
    if (!cfg)
        fail_msg("%s", buf_cstr(&err));
    unlink(path);
    buf_free(&err);
    return cfg;
}

static void test_parse_nexthop(void **state)
{
    struct route r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(route_parse_nexthop("in-v3.mailjet.com:587", 25, &r, &err), 0);
    assert_string_equal(r.host, "in-v3.mailjet.com");
    assert_int_equal(r.port, 587);
    assert_int_equal(r.mx, 1);
    assert_int_equal(route_parse_nexthop("[Smtp.Example.COM]", 2525, &r, &err), 0);
    assert_string_equal(r.host, "smtp.example.com");
    assert_int_equal(r.port, 2525);
    assert_int_equal(r.mx, 0);
    assert_int_equal(route_parse_nexthop("[2001:db8::1]:submission", 25, &r, &err), 0);
    assert_string_equal(r.host, "2001:db8::1");
    assert_int_equal(r.port, 587);
    assert_int_equal(r.literal, 1);
    assert_int_equal(route_parse_nexthop("[ipv6:::1]", 25, &r, &err), 0);
    assert_string_equal(r.host, "::1");
    /* A bare address is not looked up as a domain. */
    assert_int_equal(route_parse_nexthop("127.0.0.1:2525", 25, &r, &err), 0);
    assert_int_equal(r.mx, 0);
    assert_int_equal(r.literal, 1);
    const char *bad[] = {"",           "[host",    "[host]x",     "host:0",
                         "host:99999", "host:abc", "2001:db8::1", ":25"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&err);
        assert_int_equal(route_parse_nexthop(bad[i], 25, &r, &err), -1);
        assert_true(err.len > 0);
    }
    route_clear(&r);
    buf_free(&err);
}

static void test_default_mx(void **state)
{
    struct config *cfg = load_cfg("smtp_tcp_port = 2526\n");
    struct route r;
    struct buf err = BUF_INIT;
    assert_int_equal(route_decide(cfg, NULL, "a@b.test", "Bob@Example.COM", &r, &err), ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.host, "example.com");
    assert_int_equal(r.port, 2526);
    assert_int_equal(r.mx, 1);
    assert_string_equal(r.source, "mx");
    route_clear(&r);
    /* An address literal goes to that address. */
    assert_int_equal(route_decide(cfg, NULL, "", "x@[127.0.0.1]", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.mx, 0);
    route_clear(&r);
    config_free(cfg);
    buf_free(&err);
}

static void test_relayhost(void **state)
{
    struct config *cfg = load_cfg("relayhost = in-v3.mailjet.com:587\n");
    struct route r;
    struct buf err = BUF_INIT;
    assert_int_equal(route_decide(cfg, NULL, "a@b.test", "someone@example.com", &r, &err),
                     ROUTE_FOUND);
    assert_string_equal(r.source, "relayhost");
    assert_string_equal(r.nexthop, "in-v3.mailjet.com:587");
    assert_int_equal(r.port, 587);
    assert_int_equal(r.mx, 1);
    route_clear(&r);
    config_free(cfg);
    cfg = load_cfg("relayhost = [smtp.relay.test]\n");
    assert_int_equal(route_decide(cfg, NULL, "a@b.test", "someone@example.com", &r, &err),
                     ROUTE_FOUND);
    assert_int_equal(r.mx, 0);
    assert_int_equal(r.port, 25);
    route_clear(&r);
    config_free(cfg);
    /* A malformed relayhost no longer loads: a reload with it keeps the running configuration. */
    buf_reset(&err);
    cfg = config_load_text("main.cf", "relayhost = [smtp.relay.test\n", 29, &err);
    assert_null(cfg);
    assert_non_null(strstr(buf_cstr(&err), "relayhost: '[smtp.relay.test'"));
    buf_free(&err);
}

static const char *rows[][3] = {
    {"transport_maps", "special@example.com", "smtp:[10.0.0.5]:2525"},
    {"transport_maps", "example.com", "relay:mx.other.test:26"},
    {"transport_maps", ".sub.test", "smtp:"},
    {"transport_maps", "gone.test", "error:5.1.2 this domain is gone"},
    {"transport_maps", "void.test", "discard:"},
    {"transport_maps", "lmtp.test", "lmtp:unix:/run/dovecot/lmtp"},
    {"transport_maps", "keep.test", ":"},
    {"transport_maps", "broken.test", "TEMPFAIL"},
    {"transport_maps", "nh.test", ":[nh.relay.test]"},
    {"sender_dependent_relayhost_maps", "app@corp.test", "[app-relay.test]:587"},
    {"sender_dependent_relayhost_maps", "@corp.test", "corp-relay.test"},
    {"sender_dependent_relayhost_maps", "<>", "[bounce-relay.test]"},
    {"sender_dependent_relayhost_maps", "@dunno.test", "DUNNO"},
};

static void test_transport_maps(void **state)
{
    struct config *cfg = load_cfg("relayhost = [default.relay.test]:587\n");
    struct fake f = {rows, sizeof rows / sizeof rows[0], ""};
    struct route_tables t = {fake_lookup, &f};
    struct route r;
    struct buf err = BUF_INIT;
    /* Full address first. */
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "special@example.com", &r, &err),
                     ROUTE_FOUND);
    assert_string_equal(r.host, "10.0.0.5");
    assert_int_equal(r.port, 2525);
    assert_string_equal(r.source, "transport_maps");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "other@example.com", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "mx.other.test");
    assert_int_equal(r.port, 26);
    assert_int_equal(r.mx, 1);
    route_clear(&r);
    /* ".sub.test" matches subdomains only; "smtp:" resets the next hop to the recipient domain. */
    f.log[0] = '\0';
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@a.b.sub.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "a.b.sub.test");
    assert_int_equal(r.port, 25);
    assert_int_equal(r.mx, 1);
    assert_string_equal(f.log, "u@a.b.sub.test|a.b.sub.test|.b.sub.test|.sub.test");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@sub.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "default.relay.test"); /* not matched by ".sub.test" */
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@gone.test", &r, &err), ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_ERROR);
    assert_string_equal(r.text, "5.1.2 this domain is gone");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@void.test", &r, &err), ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_DISCARD);
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@lmtp.test", &r, &err), ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_string_equal(r.path, "/run/dovecot/lmtp");
    assert_string_equal(r.nexthop, "unix:/run/dovecot/lmtp");
    assert_string_equal(r.source, "transport_maps");
    route_clear(&r);
    /* ":" changes nothing: relayhost applies. */
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@keep.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.source, "relayhost");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@nh.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "nh.relay.test");
    assert_int_equal(r.mx, 0);
    route_clear(&r);
    /* A table that cannot be read defers. */
    buf_reset(&err);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@broken.test", &r, &err), ROUTE_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "transport_maps"));
    config_free(cfg);
    buf_free(&err);
}

static void test_sender_dependent(void **state)
{
    struct config *cfg = load_cfg("relayhost = [default.relay.test]:587\n");
    struct fake f = {rows, sizeof rows / sizeof rows[0], ""};
    struct route_tables t = {fake_lookup, &f};
    struct route r;
    struct buf err = BUF_INIT;
    assert_int_equal(route_decide(cfg, &t, "app@corp.test", "x@y.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.nexthop, "[app-relay.test]:587");
    assert_string_equal(r.source, "sender_dependent_relayhost_maps");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "other@corp.test", "x@y.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "corp-relay.test");
    assert_int_equal(r.mx, 1);
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "", "x@y.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.host, "bounce-relay.test");
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@dunno.test", "x@y.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.source, "relayhost");
    route_clear(&r);
    /* transport_maps wins over the sender-dependent relayhost. */
    assert_int_equal(route_decide(cfg, &t, "app@corp.test", "x@example.com", &r, &err),
                     ROUTE_FOUND);
    assert_string_equal(r.host, "mx.other.test");
    route_clear(&r);
    config_free(cfg);
    buf_free(&err);
}

static void test_parse_lmtp(void **state)
{
    struct route r = {0};
    struct buf err = BUF_INIT;
    /* unix:PATH, absolute. */
    assert_int_equal(route_parse_lmtp("unix:/run/dovecot/lmtp", "/var/q", 24, &r, &err), 0);
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_string_equal(r.path, "/run/dovecot/lmtp");
    assert_string_equal(r.host, "/run/dovecot/lmtp");
    assert_string_equal(r.nexthop, "unix:/run/dovecot/lmtp");
    assert_int_equal(r.mx, 0);
    /* A relative path is under queue_directory (lmtp(8)); the log shows it as written. */
    assert_int_equal(route_parse_lmtp("UNIX:private/dovecot-lmtp", "/var/q", 24, &r, &err), 0);
    assert_string_equal(r.path, "/var/q/private/dovecot-lmtp");
    assert_string_equal(r.host, "private/dovecot-lmtp");
    /* inet:host:port, inet:[addr]:port, and no prefix (inet assumed); never an MX lookup. */
    assert_int_equal(route_parse_lmtp("inet:127.0.0.1:2424", "/var/q", 24, &r, &err), 0);
    assert_null(r.path);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 2424);
    assert_int_equal(r.literal, 1);
    assert_int_equal(r.mx, 0);
    assert_string_equal(r.nexthop, "inet:127.0.0.1:2424");
    assert_int_equal(route_parse_lmtp("inet:Mail.Example.COM", "/var/q", 24, &r, &err), 0);
    assert_string_equal(r.host, "mail.example.com");
    assert_int_equal(r.port, 24);
    assert_int_equal(r.mx, 0);
    assert_int_equal(r.literal, 0);
    assert_int_equal(route_parse_lmtp("[::1]:2400", "/var/q", 24, &r, &err), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 2400);
    assert_int_equal(r.literal, 1);
    assert_int_equal(route_parse_lmtp("store.example.com:lmtp", "/var/q", 2424, &r, &err), 0);
    assert_string_equal(r.host, "store.example.com");
    assert_int_equal(r.port, 24);
    assert_int_equal(r.mx, 0);
    assert_int_equal(route_parse_lmtp("[store.example.com]", "/var/q", 2424, &r, &err), 0);
    assert_int_equal(r.port, 2424);
    assert_int_equal(r.mx, 0);
    /* Malformed: no path, no host, bad port, a path too long for sun_path. */
    char longpath[200];
    memset(longpath, 'x', sizeof longpath);
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof longpath - 1] = '\0';
    const char *bad[] = {"unix:", "inet:", "", "inet:host:0", "host:smtpx", "[host", longpath};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&err);
        assert_int_equal(route_parse_lmtp(bad[i], "/var/q", 24, &r, &err), -1);
        assert_true(err.len > 0);
    }
    route_clear(&r);
    buf_free(&err);
}

static const char *local_rows[][3] = {
    {"transport_maps", "special@mydest.test", "lmtp:inet:[127.0.0.1]:2424"},
    {"transport_maps", "relayed.test", "smtp:[10.0.0.9]:25"},
    {"transport_maps", "maildir.test", "virtual:"},
    {"transport_maps", "keep.test", ":"},
    {"transport_maps", "broken.test", "TEMPFAIL"},
};

static void test_local_class(void **state)
{
    struct config *cfg = load_cfg("queue_directory = /var/q\n"
                                  "relayhost = [default.relay.test]:587\n");
    struct fake f = {local_rows, sizeof local_rows / sizeof local_rows[0], ""};
    struct route_tables t = {fake_lookup, &f};
    struct route r;
    struct buf err = BUF_INIT;
    /* No transport configured: the built-in Maildir, never relayhost. */
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@mydest.test", ROUTE_CLASS_MYDEST, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_clear(&r);
    /* transport_maps applies to local domains too, whatever the transport. */
    assert_int_equal(route_decide_class(cfg, &t, "a@b.test", "special@mydest.test",
                                        ROUTE_CLASS_MYDEST, &r, &err),
                     ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 2424);
    route_clear(&r);
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@relayed.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_string_equal(r.host, "10.0.0.9");
    route_clear(&r);
    /* "local:" / "virtual:" are the Maildir delivery for local domains, unavailable elsewhere. */
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@maildir.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_clear(&r);
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@maildir.test", &r, &err), ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_RETRY);
    route_clear(&r);
    /* A table that cannot be read defers, local or not. */
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@broken.test", ROUTE_CLASS_MYDEST, &r, &err),
        ROUTE_TEMPFAIL);
    config_free(cfg);

    cfg = load_cfg("queue_directory = /var/q\n"
                   "relayhost = [default.relay.test]:587\n"
                   "mailbox_transport = lmtp:inet:store.example.com\n"
                   "virtual_transport = lmtp:unix:private/dovecot-lmtp\n");
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@mydest.test", ROUTE_CLASS_MYDEST, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_string_equal(r.source, "mailbox_transport");
    assert_string_equal(r.host, "store.example.com");
    assert_int_equal(r.port, 24);
    assert_int_equal(r.mx, 0);
    route_clear(&r);
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@virt.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LMTP);
    assert_string_equal(r.source, "virtual_transport");
    assert_string_equal(r.path, "/var/q/private/dovecot-lmtp");
    route_clear(&r);
    /* ":" in transport_maps changes nothing: virtual_transport still applies. */
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@keep.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_string_equal(r.source, "virtual_transport");
    route_clear(&r);
    /* transport_maps wins over virtual_transport. */
    assert_int_equal(
        route_decide_class(cfg, &t, "a@b.test", "u@maildir.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_clear(&r);
    /* Remote recipients are not touched by either key. */
    assert_int_equal(route_decide(cfg, &t, "a@b.test", "u@far.test", &r, &err), ROUTE_FOUND);
    assert_string_equal(r.source, "relayhost");
    route_clear(&r);
    config_free(cfg);

    /* A transport we do not have defers with its name; a broken next hop defers too. */
    cfg = load_cfg("virtual_transport = dovecot\nmailbox_transport = lmtp:unix:\n");
    assert_int_equal(
        route_decide_class(cfg, NULL, "", "u@virt.test", ROUTE_CLASS_VIRTUAL, &r, &err),
        ROUTE_FOUND);
    assert_int_equal(r.kind, ROUTE_RETRY);
    assert_non_null(strstr(r.text, "dovecot"));
    route_clear(&r);
    buf_reset(&err);
    assert_int_equal(route_decide_class(cfg, NULL, "", "u@my.test", ROUTE_CLASS_MYDEST, &r, &err),
                     ROUTE_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "no socket path"));
    config_free(cfg);
    buf_free(&err);
}

static void test_sasl_key_order(void **state)
{
    struct route r = {0};
    struct buf err = BUF_INIT;
    assert_int_equal(route_parse_nexthop("in-v3.mailjet.com:587", 25, &r, &err), 0);
    char **keys = route_sasl_keys(&r, "mx1.mailjet.com");
    const char *want[] = {"in-v3.mailjet.com:587",
                          "[in-v3.mailjet.com]:587",
                          "[in-v3.mailjet.com]",
                          "in-v3.mailjet.com",
                          "mx1.mailjet.com:587",
                          "mx1.mailjet.com",
                          NULL};
    for (size_t i = 0; want[i] || keys[i]; i++) {
        assert_non_null(keys[i]);
        assert_non_null(want[i]);
        assert_string_equal(keys[i], want[i]);
    }
    strlist_free(keys);
    /* Written as [host]:port: that string first; port 25 adds no ":25" to the server name. */
    assert_int_equal(route_parse_nexthop("[Relay.Test]", 25, &r, &err), 0);
    keys = route_sasl_keys(&r, "relay.test");
    const char *want2[] = {"[Relay.Test]", "[relay.test]:25", "relay.test:25", "relay.test", NULL};
    for (size_t i = 0; want2[i] || keys[i]; i++) {
        assert_non_null(keys[i]);
        assert_non_null(want2[i]);
        assert_string_equal(keys[i], want2[i]);
    }
    strlist_free(keys);
    route_clear(&r);
    buf_free(&err);
}

static void test_sasl_lookup(void **state)
{
    static const char *pw[][3] = {
        {"smtp_sasl_password_maps", "in-v3.mailjet.com", "wrong:one"},
        {"smtp_sasl_password_maps", "in-v3.mailjet.com:587", "api-key:secret:with:colons"},
        {"smtp_sasl_password_maps", "[t.test]:25", "TEMPFAIL"},
    };
    struct fake f = {pw, 3, ""};
    struct route_tables t = {fake_lookup, &f};
    struct route r = {0};
    struct buf err = BUF_INIT, user = BUF_INIT, pass = BUF_INIT, key = BUF_INIT;
    assert_int_equal(route_parse_nexthop("in-v3.mailjet.com:587", 25, &r, &err), 0);
    assert_int_equal(route_sasl_lookup(&t, &r, "in-v3.mailjet.com", &user, &pass, &key, &err),
                     MAP_FOUND);
    assert_string_equal(buf_cstr(&user), "api-key");
    assert_string_equal(buf_cstr(&pass), "secret:with:colons");
    assert_string_equal(buf_cstr(&key), "in-v3.mailjet.com:587");
    assert_int_equal(route_parse_nexthop("nothing.test", 25, &r, &err), 0);
    assert_int_equal(route_sasl_lookup(&t, &r, "mx.nothing.test", &user, &pass, &key, &err),
                     MAP_NOTFOUND);
    assert_int_equal(route_parse_nexthop("[t.test]", 25, &r, &err), 0);
    assert_int_equal(route_sasl_lookup(&t, &r, "t.test", &user, &pass, &key, &err), MAP_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "smtp_sasl_password_maps"));
    route_clear(&r);
    buf_free(&err);
    buf_free(&user);
    buf_free(&pass);
    buf_free(&key);
}

static void assert_keys(char **keys, const char *const *want)
{
    for (size_t i = 0; want[i] || keys[i]; i++) {
        assert_non_null(keys[i]);
        assert_non_null(want[i]);
        assert_string_equal(keys[i], want[i]);
    }
    strlist_free(keys);
}

static void test_tls_policy_keys(void **state)
{
    struct route r = {0};
    struct buf err = BUF_INIT;
    /* An explicit next hop matches only itself, as written. */
    assert_int_equal(route_parse_nexthop("[smtp.example.com]:587", 25, &r, &err), 0);
    assert_keys(route_tls_policy_keys(&r), (const char *[]){"[smtp.example.com]:587", NULL});
    assert_int_equal(route_parse_nexthop("[smtp.example.com]", 25, &r, &err), 0);
    assert_keys(route_tls_policy_keys(&r), (const char *[]){"[smtp.example.com]", NULL});
    assert_int_equal(route_parse_nexthop("example.com:587", 25, &r, &err), 0);
    assert_keys(route_tls_policy_keys(&r), (const char *[]){"example.com:587", NULL});
    /* A domain (MX delivery): itself, then each parent with a leading dot. */
    assert_int_equal(route_parse_nexthop("a.b.example.com", 25, &r, &err), 0);
    assert_keys(route_tls_policy_keys(&r), (const char *[]){"a.b.example.com", ".b.example.com",
                                                            ".example.com", ".com", NULL});
    route_clear(&r);
    /* The MX route of a recipient domain uses the domain as its next hop. */
    struct config *cfg = load_cfg("myhostname = mx.test\n");
    assert_int_equal(route_decide(cfg, NULL, "", "u@Sub.Example.com", &r, &err), ROUTE_FOUND);
    assert_keys(route_tls_policy_keys(&r),
                (const char *[]){"sub.example.com", ".example.com", ".com", NULL});
    route_clear(&r);
    config_free(cfg);
    buf_free(&err);
}

static void test_tls_policy_parse(void **state)
{
    struct route_tls_policy p;
    struct buf err = BUF_INIT;
    assert_int_equal(route_tls_policy_parse("encrypt", &p, &err), 0);
    assert_int_equal(p.level, TLS_LEVEL_ENCRYPT);
    assert_null(p.match);
    assert_null(p.ignored);
    route_tls_policy_clear(&p);
    assert_int_equal(route_tls_policy_parse("  NONE ", &p, &err), 0);
    assert_int_equal(p.level, TLS_LEVEL_NONE);
    route_tls_policy_clear(&p);
    assert_int_equal(
        route_tls_policy_parse("secure match=nexthop:dot-nexthop:.example.net", &p, &err), 0);
    assert_int_equal(p.level, TLS_LEVEL_SECURE);
    assert_keys(p.match, (const char *[]){"nexthop", "dot-nexthop", ".example.net", NULL});
    p.match = NULL;
    route_tls_policy_clear(&p);
    assert_int_equal(
        route_tls_policy_parse("verify, match=hostname protocols=!SSLv2 ciphers=high", &p, &err),
        0);
    assert_int_equal(p.level, TLS_LEVEL_VERIFY);
    assert_keys(p.match, (const char *[]){"hostname", NULL});
    p.match = NULL;
    assert_string_equal(p.ignored, "protocols=!SSLv2 ciphers=high");
    route_tls_policy_clear(&p);
    assert_int_equal(route_tls_policy_parse("dane", &p, &err), 0);
    assert_int_equal(p.level, TLS_LEVEL_DANE);
    route_tls_policy_clear(&p);
    /* Malformed: never a default level. */
    static const struct {
        const char *value, *why;
    } bad[] = {
        {"", "empty policy"},
        {"maybe", "unknown security level \"maybe\""},
        {"dane-only", "\"dane-only\" is not supported"},
        {"fingerprint match=AB:CD", "\"fingerprint\" is not supported"},
        {"encrypt match=nexthop", "only valid at levels verify and secure"},
        {"secure match=", "empty name"},
        {"secure match=a::b", "empty name"},
        {"secure match=a match=b", "duplicate attribute"},
        {"verify tafile=/x", "unknown attribute \"tafile\""},
        {"verify hostname", "malformed attribute \"hostname\""},
        {"verify =x", "malformed attribute"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&err);
        p.level = TLS_LEVEL_MAY;
        assert_int_equal(route_tls_policy_parse(bad[i].value, &p, &err), -1);
        if (!strstr(buf_cstr(&err), bad[i].why))
            fail_msg("\"%s\": got \"%s\"", bad[i].value, buf_cstr(&err));
        assert_null(p.match);
        assert_null(p.ignored);
    }
    buf_free(&err);
}

static void test_tls_policy_lookup(void **state)
{
    static const char *pol_rows[][3] = {
        {"smtp_tls_policy_maps", ".example.com", "secure match=.example.com"},
        {"smtp_tls_policy_maps", "example.com", "verify"},
        {"smtp_tls_policy_maps", "[relay.test]:587", "encrypt"},
        {"smtp_tls_policy_maps", "bad.test", "encrypted"},
        {"smtp_tls_policy_maps", "down.test", "TEMPFAIL"},
        {"transport_maps", "other.test", "encrypt"},
    };
    struct fake f = {pol_rows, 6, ""};
    struct route_tables t = {fake_lookup, &f};
    struct route r = {0};
    struct route_tls_policy p = {0};
    struct buf err = BUF_INIT, key = BUF_INIT;
    /* A subdomain matches ".example.com", after asking for itself. */
    assert_int_equal(route_parse_nexthop("mail.example.com", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_FOUND);
    assert_string_equal(f.log, "mail.example.com|.example.com");
    assert_string_equal(buf_cstr(&key), ".example.com");
    assert_int_equal(p.level, TLS_LEVEL_SECURE);
    route_tls_policy_clear(&p);
    /* The domain itself matches its own entry, not ".example.com". */
    f.log[0] = 0;
    assert_int_equal(route_parse_nexthop("example.com", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_FOUND);
    assert_int_equal(p.level, TLS_LEVEL_VERIFY);
    route_tls_policy_clear(&p);
    /* An explicit next hop: one key, and "[relay.test]" alone is not it. */
    f.log[0] = 0;
    assert_int_equal(route_parse_nexthop("[relay.test]:587", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_FOUND);
    assert_int_equal(p.level, TLS_LEVEL_ENCRYPT);
    route_tls_policy_clear(&p);
    f.log[0] = 0;
    assert_int_equal(route_parse_nexthop("[relay.test]", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_DEFAULT);
    assert_string_equal(f.log, "[relay.test]");
    /* Another table's entry is not a policy. */
    assert_int_equal(route_parse_nexthop("other.test", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_DEFAULT);
    /* Malformed entry and unreadable table. */
    assert_int_equal(route_parse_nexthop("bad.test", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_INVALID);
    assert_non_null(strstr(buf_cstr(&err), "smtp_tls_policy_maps entry bad.test"));
    assert_non_null(strstr(buf_cstr(&err), "unknown security level \"encrypted\""));
    buf_reset(&err);
    assert_int_equal(route_parse_nexthop("down.test", 25, &r, &err), 0);
    assert_int_equal(route_tls_policy_lookup(&t, &r, &p, &key, &err), ROUTE_TLS_TEMPFAIL);
    assert_non_null(strstr(buf_cstr(&err), "smtp_tls_policy_maps lookup of down.test failed"));
    route_clear(&r);
    buf_free(&err);
    buf_free(&key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_nexthop),    cmocka_unit_test(test_default_mx),
        cmocka_unit_test(test_relayhost),        cmocka_unit_test(test_transport_maps),
        cmocka_unit_test(test_sender_dependent), cmocka_unit_test(test_sasl_key_order),
        cmocka_unit_test(test_sasl_lookup),      cmocka_unit_test(test_parse_lmtp),
        cmocka_unit_test(test_local_class),      cmocka_unit_test(test_tls_policy_keys),
        cmocka_unit_test(test_tls_policy_parse), cmocka_unit_test(test_tls_policy_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
