/*
 * hongyan dkim: keygen (a signing key where the server looks for it, and
 * the TXT record to publish), sign (stdin to stdout with the signatures
 * prepended) and verify (one result line per signature, keys from DNS).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cli/cli.h"
#include "config/config.h"
#include "dns/dns.h"
#include "lib/safedir.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"

#define DKIM_USAGE                                                                                 \
    "dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits N] [--force]\n"           \
    "       hongyan dkim show [DOMAIN]\n"                                                          \
    "       hongyan dkim sign [--canonicalization H/B] < MESSAGE\n"                                \
    "       hongyan dkim verify < MESSAGE"

static int dkim_cli_usage(void)
{
    return cli_usage(DKIM_USAGE);
}

/* The zone-file line publishing record at name (the DKIM module formats it). */
static void dkim_cli_print_record(const char *name, const char *record)
{
    struct buf line = BUF_INIT;
    dkim_key_record_zone(name, record, &line);
    printf("%s\n", buf_cstr(&line));
    buf_free(&line);
}

struct dkim_cli_key {
    const char *alg; /* "rsa" or "ed25519" */
    char *selector;
    char *path;
};

static int dkim_cli_keygen(int argc, char **argv)
{
    const char *domain = NULL, *selector = NULL, *alg = NULL;
    long bits = 2048;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
            selector = argv[++i];
        else if (strcmp(argv[i], "--algorithm") == 0 && i + 1 < argc)
            alg = argv[++i];
        else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) {
            char *end;
            bits = strtol(argv[++i], &end, 10);
            if (*end || bits < 1024 || bits > 8192) {
                fprintf(stderr, "hongyan: --bits: a number from 1024 to 8192 (RFC 8301)\n");
                return EX_USAGE;
            }
        } else if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else if (argv[i][0] != '-' && domain == NULL)
            domain = argv[i];
        else
            return dkim_cli_usage();
    }
    if (domain == NULL)
        return dkim_cli_usage();
    if (alg && strcmp(alg, "rsa") != 0 && strcmp(alg, "ed25519") != 0) {
        fprintf(stderr, "hongyan: --algorithm: rsa or ed25519\n");
        return EX_USAGE;
    }
    char *dom = xstrdup(domain);
    str_lower(dom);
    size_t dl = strlen(dom);
    while (dl > 0 && dom[dl - 1] == '.')
        dom[--dl] = '\0';
    int dom_ok = dkim_name_ok(dom, dl);
    if (!dom_ok || (selector && !dkim_name_ok(selector, strlen(selector)))) {
        fprintf(stderr, "hongyan: '%s' is not a valid %s\n", dom_ok ? selector : domain,
                dom_ok ? "selector" : "domain");
        free(dom);
        return EX_USAGE;
    }
    struct config *cfg = cli_config();
    const char *base = selector ? selector : config_get(cfg, "dkim_selector");
    const char *dir = config_get(cfg, "dkim_key_directory");

    /* Which keys: the one asked for, or one per dkim_algorithm (SPEC.md). */
    struct dkim_cli_key keys[2];
    size_t nkeys = 0;
    if (alg) {
        keys[nkeys].alg = alg;
        keys[nkeys++].selector = xstrdup(base);
    } else {
        size_t n = 0;
        char **algs = config_get_list(cfg, "dkim_algorithm", &n);
        for (size_t i = 0; i < n && nkeys < 2; i++) {
            const char *a = strcmp(algs[i], "ed25519") == 0 ? "ed25519" : "rsa";
            if (nkeys == 1 && strcmp(keys[0].alg, a) == 0)
                continue;
            keys[nkeys].alg = a;
            keys[nkeys].selector = nkeys == 0 ? xstrdup(base) : xasprintf("%s-%s", base, a);
            nkeys++;
        }
        strlist_free(algs);
        if (nkeys == 0) {
            keys[0].alg = "rsa";
            keys[nkeys++].selector = xstrdup(base);
        }
    }
    int rc = EX_OK;
    int dom_fd = -1;
    for (size_t i = 0; i < nkeys; i++)
        keys[i].path = xasprintf("%s/%s/%s.pem", dir, dom, keys[i].selector);

    /* Check everything that can fail before making any key. */
    /* As root: keys belong to keeper_user, the directory above them may be mail_owner's. */
    struct passwd *pw = NULL;
    uid_t parent_uid = geteuid();
    if (geteuid() == 0) {
        const char *owner = config_get(cfg, "mail_owner");
        struct passwd *mo = getpwnam(owner);
        if (mo)
            parent_uid = mo->pw_uid;
        const char *keeper = config_get(cfg, "keeper_user");
        pw = getpwnam(keeper);
        if (pw == NULL) {
            fprintf(stderr,
                    "hongyan: keeper_user '%s' does not exist; create it (useradd --system "
                    "--user-group --no-create-home --shell /usr/sbin/nologin %s) or set "
                    "keeper_user\n",
                    keeper, keeper);
            rc = EX_NOUSER;
            goto out;
        }
    }
    for (size_t i = 0; i < nkeys; i++) {
        struct stat st;
        if (!force && stat(keys[i].path, &st) == 0) {
            fprintf(stderr, "hongyan: %s exists; use --force to replace it\n", keys[i].path);
            rc = EX_CANTCREAT;
            goto out;
        }
    }
    /*
     * As root the key directory belongs to keeper_user (the worker may not
     * read it) inside mail_owner's data_directory, so its entries are not
     * ours to trust: open each level by descriptor without following a
     * symlink, and give the files their owner before they hold a key.
     */
    uid_t owner_uid = pw ? pw->pw_uid : (uid_t)SAFEDIR_KEEP_ID;
    gid_t owner_gid = pw ? pw->pw_gid : (gid_t)SAFEDIR_KEEP_ID;
    struct buf derr = BUF_INIT;
    char *ddir = xasprintf("%s/%s", dir, dom);
    int top_fd = safedir_open_owned(dir, parent_uid, pw ? pw->pw_uid : geteuid(), 0750, &derr);
    if (top_fd >= 0)
        dom_fd = safedir_open_at(top_fd, dom, ddir, pw ? pw->pw_uid : geteuid(), 0750, NULL, &derr);
    if (dom_fd >= 0 && pw &&
        (fchown(top_fd, owner_uid, owner_gid) < 0 || fchown(dom_fd, owner_uid, owner_gid) < 0))
        buf_printf(&derr, "%s: chown: %s", ddir, strerror(errno));
    if (top_fd >= 0)
        close(top_fd);
    free(ddir);
    if (dom_fd < 0 || derr.len > 0) {
        fprintf(stderr, "hongyan: %s\n", buf_cstr(&derr));
        buf_free(&derr);
        rc = EX_CANTCREAT;
        goto out;
    }
    buf_free(&derr);
    for (size_t i = 0; i < nkeys && rc == EX_OK; i++) {
        int ed = strcmp(keys[i].alg, "ed25519") == 0;
        EVP_PKEY *k = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                         : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
        BIO *bio = BIO_new(BIO_s_mem());
        char *pem = NULL;
        long pemlen = 0;
        struct buf rec = BUF_INIT;
        if (k == NULL || bio == NULL ||
            PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1 ||
            (pemlen = BIO_get_mem_data(bio, &pem)) <= 0 || dkim_key_record(k, &rec) < 0) {
            fprintf(stderr, "hongyan: making the %s key failed (OpenSSL)\n", keys[i].alg);
            rc = EX_SOFTWARE;
        } else if (safedir_write_file_at(dom_fd, strrchr(keys[i].path, '/') + 1, pem,
                                         (size_t)pemlen, 0600, owner_uid, owner_gid) < 0) {
            fprintf(stderr, "hongyan: %s: %s\n", keys[i].path, strerror(errno));
            rc = EX_CANTCREAT;
        } else {
            fprintf(stderr, "hongyan: wrote %s (%s); publish:\n", keys[i].path,
                    ed ? "ed25519" : "rsa");
            char *name = xasprintf("%s._domainkey.%s", keys[i].selector, dom);
            dkim_cli_print_record(name, buf_cstr(&rec));
            free(name);
        }
        buf_free(&rec);
        BIO_free(bio);
        EVP_PKEY_free(k);
    }
out:
    if (dom_fd >= 0)
        close(dom_fd);
    for (size_t i = 0; i < nkeys; i++) {
        free(keys[i].selector);
        free(keys[i].path);
    }
    free(dom);
    return rc;
}

/* Reads stdin (at most max bytes) as a CRLF message; *had_crlf says whether it came so. */
static int dkim_cli_read_message(struct buf *msg, size_t max, int *had_crlf)
{
    struct buf raw = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (raw.len + n > max) {
            fprintf(stderr, "hongyan: message larger than message_size_limit (%zu)\n", max);
            buf_free(&raw);
            return -1;
        }
        buf_append(&raw, chunk, n);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "hongyan: reading stdin: %s\n", strerror(errno));
        buf_free(&raw);
        return -1;
    }
    *had_crlf = raw.len > 0 && memmem(raw.data, raw.len, "\r\n", 2) != NULL;
    dkim_crlf_normalize(raw.data ? raw.data : "", raw.len, msg);
    buf_free(&raw);
    return 0;
}

static int dkim_cli_time(const char *s, time_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "hongyan: --now: seconds since the epoch\n");
        return -1;
    }
    *out = (time_t)v;
    return 0;
}

/* Writes s with CRLF turned back into LF when the input had LF line ends. */
static void dkim_cli_write(const char *s, size_t len, int crlf)
{
    if (crlf) {
        fwrite(s, 1, len, stdout);
        return;
    }
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n'))
            putchar(s[i]);
}

static int dkim_cli_sign(int argc, char **argv)
{
    enum dkim_canon hc = DKIM_CANON_RELAXED, bc = DKIM_CANON_RELAXED;
    time_t now = time(NULL);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--canonicalization") == 0 && i + 1 < argc) {
            const char *c = argv[++i];
            /* c= syntax (RFC 6376 3.5): "relaxed" alone means relaxed/simple. */
            enum dkim_canon h, b;
            if (dkim_canon_parse(c, &h, &b) < 0) {
                fprintf(stderr, "hongyan: --canonicalization: simple|relaxed[/simple|relaxed]\n");
                return EX_USAGE;
            }
            hc = h;
            bc = b;
        } else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            if (dkim_cli_time(argv[++i], &now) < 0)
                return EX_USAGE;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else
            return dkim_cli_usage();
    }
    struct config *cfg = cli_config();
    struct buf err = BUF_INIT, msg = BUF_INIT, out = BUF_INIT;
    int crlf = 0, rc;
    struct dkim_signer *s = dkim_signer_from_config(cfg, &err);
    /* Only the domains whose keys are broken fail to sign (dkim_sign says so). */
    if (err.len)
        fprintf(stderr, "hongyan: warning: %s\n", buf_cstr(&err));
    buf_reset(&err);
    dkim_signer_set_canon(s, hc, bc);
    if (dkim_cli_read_message(&msg, (size_t)config_get_int(cfg, "message_size_limit"), &crlf) < 0) {
        rc = EX_DATAERR;
        goto out;
    }
    enum dkim_sign_status st = dkim_sign(s, msg.data ? msg.data : "", msg.len, now, &out, &err);
    if (st != DKIM_SIGN_OK) {
        fprintf(stderr, "hongyan: not signed: %s\n", buf_cstr(&err));
        rc = 1;
        goto out;
    }
    dkim_cli_write(out.data, out.len, crlf);
    dkim_cli_write(msg.data ? msg.data : "", msg.len, crlf);
    rc = fflush(stdout) == 0 ? EX_OK : EX_IOERR;
out:
    dkim_signer_free(s);
    buf_free(&err);
    buf_free(&msg);
    buf_free(&out);
    return rc;
}

struct dkim_cli_verify {
    struct event_base *base;
    int done;
    int passed;
};

static void dkim_cli_verified(void *arg, const struct dkim_verify_result *res)
{
    struct dkim_cli_verify *cv = arg;
    cv->done = 1;
    if (res->count == 0)
        printf("none\n");
    for (size_t i = 0; i < res->count; i++) {
        const struct dkim_sig_result *r = &res->sigs[i];
        printf("%s d=%s s=%s a=%s", dkim_result_name(r->result), r->domain, r->selector,
               r->algorithm);
        if (r->reason[0])
            printf(" (%s)", r->reason);
        printf("\n");
        cv->passed |= r->result == DKIM_PASS;
    }
    if (cv->base)
        event_base_loopbreak(cv->base);
}

static int dkim_cli_verify(int argc, char **argv)
{
    time_t now = time(NULL);
    const char *keyfile = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            if (dkim_cli_time(argv[++i], &now) < 0)
                return EX_USAGE;
        } else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
            keyfile = argv[++i];
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else
            return dkim_cli_usage();
    }
    struct config *cfg = cli_config();
    struct buf msg = BUF_INIT, err = BUF_INIT;
    int crlf, rc = EX_OK;
    if (dkim_cli_read_message(&msg, (size_t)config_get_int(cfg, "message_size_limit"), &crlf) < 0) {
        buf_free(&msg);
        return EX_DATAERR;
    }
    struct dkim_cli_verify cv = {NULL, 0, 0};
    struct dkim_keyfile *kf = NULL;
    struct dns *dns = NULL;
    struct txt_lookup lk;
    if (keyfile) {
        /* Keys from a file in the conformance dns.txt format, for tests. */
        kf = dkim_keyfile_load(keyfile, &err);
        if (kf == NULL) {
            fprintf(stderr, "hongyan: %s\n", buf_cstr(&err));
            rc = EX_NOINPUT;
            goto out;
        }
        lk = dkim_keyfile_lookup(kf);
    } else {
        cv.base = event_base_new();
        if (cv.base)
            dns = dns_new(cv.base, config_get(cfg, "dns_resolver"), &err);
        if (dns == NULL) {
            fprintf(stderr, "hongyan: DNS: %s\n", buf_cstr(&err));
            rc = EX_TEMPFAIL;
            goto out;
        }
        lk = txt_dns_lookup(dns);
    }
    struct dkim_verify *v =
        dkim_verify_start(msg.data ? msg.data : "", msg.len, now, &lk, dkim_cli_verified, &cv);
    if (v && cv.base)
        event_base_dispatch(cv.base);
    if (!cv.done) {
        /* The loop ran dry without an answer: cannot happen with a working resolver. */
        dkim_verify_cancel(v);
        fprintf(stderr, "hongyan: DNS lookups did not finish\n");
        rc = EX_TEMPFAIL;
        goto out;
    }
    rc = cv.passed ? EX_OK : 1;
out:
    dkim_keyfile_free(kf);
    dns_free(dns);
    if (cv.base)
        event_base_free(cv.base);
    buf_free(&msg);
    buf_free(&err);
    fflush(stdout);
    return rc;
}

/*
 * dkim show [DOMAIN]: the records of the keys that exist, in keygen's
 * form, so that a lost keygen output never means a new key.
 */
static int dkim_cli_show(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else if (argv[i][0] != '-' && only == NULL)
            only = argv[i];
        else
            return dkim_cli_usage();
    }
    struct config *cfg = cli_config();
    const char *dir = config_get(cfg, "dkim_key_directory");
    char *dom = only ? xstrdup(only) : NULL;
    if (dom) {
        str_lower(dom);
        size_t dl = strlen(dom);
        while (dl > 0 && dom[dl - 1] == '.')
            dom[--dl] = '\0';
        if (!dkim_name_ok(dom, dl)) {
            fprintf(stderr, "hongyan: '%s' is not a valid domain\n", only);
            free(dom);
            return EX_USAGE;
        }
    }
    size_t ndom = 0;
    char **domains = dom ? NULL : dir_names(dir, "", 4096, &ndom);
    int rc = EX_OK, shown = 0;
    for (size_t d = 0; d < (dom ? 1 : ndom); d++) {
        const char *name = dom ? dom : domains[d];
        char *ddir = xasprintf("%s/%s", dir, name);
        size_t nsel = 0;
        char **sels = dir_names(ddir, ".pem", 64, &nsel);
        for (size_t i = 0; i < nsel; i++) {
            char *path = xasprintf("%s/%s.pem", ddir, sels[i]);
            struct buf err = BUF_INIT, rec = BUF_INIT;
            EVP_PKEY *key = dkim_load_private_key(path, &err);
            if (key == NULL || dkim_key_record(key, &rec) < 0) {
                fprintf(stderr, "hongyan: %s: %s\n", path,
                        err.len ? buf_cstr(&err) : "unusable key");
                rc = EX_DATAERR;
            } else {
                char *rname = xasprintf("%s._domainkey.%s", sels[i], name);
                dkim_cli_print_record(rname, buf_cstr(&rec));
                free(rname);
                shown++;
            }
            EVP_PKEY_free(key);
            buf_free(&err);
            buf_free(&rec);
            free(path);
        }
        strlist_free(sels);
        free(ddir);
    }
    if (shown == 0 && rc == EX_OK) {
        fprintf(stderr,
                "hongyan: no DKIM key%s%s under %s; make one with: hongyan dkim keygen %s\n",
                dom ? " for " : "", dom ? dom : "", dir, dom ? dom : "DOMAIN");
        rc = 1;
    }
    if (domains)
        strlist_free(domains);
    free(dom);
    return rc;
}

int cli_dkim_main(int argc, char **argv)
{
    if (argc < 2)
        return dkim_cli_usage();
    if (strcmp(argv[1], "keygen") == 0)
        return dkim_cli_keygen(argc - 2, argv + 2);
    if (strcmp(argv[1], "show") == 0)
        return dkim_cli_show(argc - 2, argv + 2);
    if (strcmp(argv[1], "sign") == 0)
        return dkim_cli_sign(argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0)
        return dkim_cli_verify(argc - 2, argv + 2);
    return dkim_cli_usage();
}
