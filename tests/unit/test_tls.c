/*
 * Unit tests for server TLS (src/tls/tls.c): the self-signed certificate is
 * made once and reused, the context refuses TLS 1.1 and speaks 1.2/1.3, and
 * STARTTLS discards plaintext pipelined behind the command. Peers are real
 * OpenSSL client contexts over a socketpair, in process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "tls/tls.h"

struct fixture {
    char dir[64];
    char *cf;
    struct config *cfg;
    struct tls_server *ts;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    str_copy(f->dir, sizeof f->dir, "/tmp/hongyan-test-tls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cf = xasprintf("%s/main.cf", f->dir);
    char *text = xasprintf("data_directory = %s\nmyhostname = mx.example.com\n", f->dir);
    assert_int_equal(write_file_atomic(f->cf, text, strlen(text), 0600), 0);
    free(text);
    struct buf err = BUF_INIT;
    f->cfg = config_load(f->cf, &err);
    if (f->cfg == NULL)
        fail_msg("config: %s", buf_cstr(&err));
    f->ts = tls_server_new(f->cfg, &err);
    if (f->ts == NULL)
        fail_msg("tls_server_new: %s", buf_cstr(&err));
    buf_free(&err);
    *state = f;
    return 0;
}

static void rm_dir_files(const char *dir)
{
    const char *names[] = {"main.cf",       "tls/cert.pem", "tls/key.pem", "other/cert.pem",
                           "other/key.pem", "tls",          "other"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        if (unlink(p) < 0)
            rmdir(p);
        free(p);
    }
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tls_server_free(f->ts);
    config_free(f->cfg);
    rm_dir_files(f->dir);
    free(f->cf);
    free(f);
    return 0;
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static void test_selfsigned(void **state)
{
    struct fixture *f = *state;
    char *cert = xasprintf("%s/tls/cert.pem", f->dir);
    char *key = xasprintf("%s/tls/key.pem", f->dir);
    assert_string_equal(tls_server_cert_file(f->ts), cert);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    X509 *x = read_cert(cert);
    assert_int_equal(X509_check_host(x, "mx.example.com", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "other.example.com", 0, 0, NULL), 1);
    /* About ten years: valid in 9 years, not in 11. */
    time_t in9 = time(NULL) + (time_t)9 * 365 * 86400;
    time_t in11 = time(NULL) + (time_t)11 * 365 * 86400;
    assert_true(X509_cmp_time(X509_get0_notAfter(x), &in9) > 0);
    assert_true(X509_cmp_time(X509_get0_notAfter(x), &in11) < 0);
    /* The CN is the host name too. */
    char cn[256];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) >
                0);
    assert_string_equal(cn, "mx.example.com");

    /* A second context (a reload) reuses the same certificate. */
    struct buf err = BUF_INIT;
    struct tls_server *again = tls_server_new(f->cfg, &err);
    assert_non_null(again);
    X509 *y = read_cert(cert);
    assert_int_equal(X509_cmp(x, y), 0);
    X509_free(y);
    tls_server_free(again);

    /* Another host name gets a new certificate. */
    char *dir = xasprintf("%s/tls", f->dir);
    assert_int_equal(tls_selfsigned_ensure(dir, "mail.example.org", &err), 0);
    y = read_cert(cert);
    assert_int_not_equal(X509_cmp(x, y), 0);
    assert_int_equal(X509_check_host(y, "mail.example.org", 0, 0, NULL), 1);
    X509_free(y);
    /* A name that cannot go into a certificate is refused with a reason. */
    assert_int_equal(tls_selfsigned_ensure(dir, "bad,name", &err), -1);
    assert_non_null(strstr(buf_cstr(&err), "bad,name"));
    buf_free(&err);
    free(dir);
    X509_free(x);
    free(cert);
    free(key);
}

static void test_configured_cert_errors(void **state)
{
    struct fixture *f = *state;
    char *cf = xasprintf("%s/main.cf", f->dir);
    char *text = xasprintf("data_directory = %s\nmyhostname = mx.example.com\n"
                           "smtpd_tls_cert_file = %s/missing.pem\n",
                           f->dir, f->dir);
    assert_int_equal(write_file_atomic(cf, text, strlen(text), 0600), 0);
    free(text);
    struct buf err = BUF_INIT;
    struct config *cfg = config_load(cf, &err);
    assert_non_null(cfg);
    assert_null(tls_server_new(cfg, &err));
    assert_non_null(strstr(buf_cstr(&err), "missing.pem"));
    config_free(cfg);

    /* A cert and key that do not belong together. */
    char *other = xasprintf("%s/other", f->dir);
    assert_int_equal(tls_selfsigned_ensure(other, "mx.example.com", &err), 0);
    text = xasprintf("data_directory = %s\nmyhostname = mx.example.com\n"
                     "smtpd_tls_cert_file = %s/tls/cert.pem\nsmtpd_tls_key_file = %s/key.pem\n",
                     f->dir, f->dir, other);
    assert_int_equal(write_file_atomic(cf, text, strlen(text), 0600), 0);
    free(text);
    buf_reset(&err);
    cfg = config_load(cf, &err);
    assert_non_null(cfg);
    assert_null(tls_server_new(cfg, &err));
    assert_non_null(strstr(buf_cstr(&err), "does not match"));
    config_free(cfg);
    /* The configured pair in order is accepted. */
    text = xasprintf("data_directory = %s\nmyhostname = mx.example.com\n"
                     "smtpd_tls_cert_file = %s/cert.pem\nsmtpd_tls_key_file = %s/key.pem\n",
                     f->dir, other, other);
    assert_int_equal(write_file_atomic(cf, text, strlen(text), 0600), 0);
    free(text);
    cfg = config_load(cf, &err);
    assert_non_null(cfg);
    struct tls_server *ts = tls_server_new(cfg, &err);
    assert_non_null(ts);
    tls_server_free(ts);
    tls_server_free(NULL);
    config_free(cfg);
    buf_free(&err);
    free(other);
    free(cf);
}

/* Drives both ends of a handshake over a non-blocking socketpair; 1 when both finished. */
static int handshake(SSL *server, SSL *client)
{
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 1000 && !(sdone && cdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(client);
            if (r == 1)
                cdone = 1;
            else {
                int e = SSL_get_error(client, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return 0;
            }
        }
        if (!sdone) {
            int r = SSL_do_handshake(server);
            if (r == 1)
                sdone = 1;
            else {
                int e = SSL_get_error(server, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return 0;
            }
        }
    }
    return sdone && cdone;
}

struct pair {
    int fd[2];
    SSL *server, *client;
    SSL_CTX *cctx;
};

static void pair_open(struct pair *p, struct tls_server *ts, int client_max, const char *sni)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    for (int i = 0; i < 2; i++)
        fcntl(p->fd[i], F_SETFL, O_NONBLOCK);
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->cctx);
    /* Let the client really offer old versions, so that the refusal is the server's. */
    SSL_CTX_set_security_level(p->cctx, 0);
    assert_int_equal(SSL_CTX_set_cipher_list(p->cctx, "ALL:@SECLEVEL=0"), 1);
    SSL_CTX_set_min_proto_version(p->cctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(p->cctx, client_max);
    p->client = SSL_new(p->cctx);
    p->server = SSL_new(tls_server_ctx(ts));
    SSL_set_fd(p->client, p->fd[0]);
    SSL_set_fd(p->server, p->fd[1]);
    SSL_set_connect_state(p->client);
    SSL_set_accept_state(p->server);
    if (sni)
        SSL_set_tlsext_host_name(p->client, sni);
}

static void pair_close(struct pair *p)
{
    SSL_free(p->client);
    SSL_free(p->server);
    SSL_CTX_free(p->cctx);
    close(p->fd[0]);
    close(p->fd[1]);
    ERR_clear_error();
}

static void test_versions(void **state)
{
    struct fixture *f = *state;
    struct pair p;

    /* TLS 1.1 is refused by the server. */
    pair_open(&p, f->ts, TLS1_1_VERSION, NULL);
    assert_int_equal(handshake(p.server, p.client), 0);
    unsigned long e = ERR_peek_error();
    assert_int_equal(ERR_GET_REASON(e), SSL_R_UNSUPPORTED_PROTOCOL);
    pair_close(&p);

    /* TLS 1.2 works, with a forward-secret AEAD suite. */
    pair_open(&p, f->ts, TLS1_2_VERSION, NULL);
    assert_int_equal(handshake(p.server, p.client), 1);
    struct buf d = BUF_INIT;
    tls_describe(p.server, &d);
    assert_int_equal(strncmp(buf_cstr(&d), "TLSv1.2 with cipher ECDHE-", 26), 0);
    assert_non_null(strstr(buf_cstr(&d), "GCM"));
    assert_int_equal(SSL_get_current_compression(p.server), NULL);
    pair_close(&p);

    /* TLS 1.3 with SNI: the name is recorded. */
    pair_open(&p, f->ts, TLS1_3_VERSION, "smtp.example.net");
    assert_int_equal(handshake(p.server, p.client), 1);
    buf_reset(&d);
    tls_describe(p.server, &d);
    assert_int_equal(strncmp(buf_cstr(&d), "TLSv1.3 with cipher TLS_", 24), 0);
    assert_non_null(strstr(buf_cstr(&d), " bits)"));
    assert_string_equal(tls_sni_name(p.server), "smtp.example.net");
    buf_reset(&d);
    tls_describe(NULL, &d);
    assert_int_equal(d.len, 0);
    assert_null(tls_sni_name(NULL));
    buf_free(&d);
    pair_close(&p);
}

/* ---------- STARTTLS through libevent ---------- */

struct client_thread {
    int fd;
    SSL_CTX *ctx;
    int ok;
};

/* The client: pipelines a command after STARTTLS, then does TLS and sends one line. */
static void *client_main(void *arg)
{
    struct client_thread *c = arg;
    SSL *ssl = SSL_new(c->ctx);
    SSL_set_fd(ssl, c->fd);
    char line[64];
    size_t n = 0;
    /* Wait for "220 go\r\n" in the clear. */
    while (n < sizeof line - 1) {
        ssize_t r = read(c->fd, line + n, 1);
        if (r <= 0)
            goto out;
        n++;
        if (line[n - 1] == '\n')
            break;
    }
    line[n] = '\0';
    if (strcmp(line, "220 go\r\n") != 0)
        goto out;
    if (SSL_connect(ssl) != 1)
        goto out;
    if (SSL_write(ssl, "SECURE\r\n", 8) != 8)
        goto out;
    c->ok = 1;
    /* Wait for the server to close. */
    while (SSL_read(ssl, line, sizeof line) > 0)
        ;
out:
    SSL_free(ssl);
    return NULL;
}

struct server_side {
    struct bufferevent *bev;
    struct buf got;
};

static void server_read(struct bufferevent *bev, void *arg)
{
    struct server_side *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
    if (line) {
        buf_puts(&s->got, line);
        free(line);
        event_base_loopbreak(bufferevent_get_base(bev));
    }
}

static void server_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        event_base_loopbreak(bufferevent_get_base(bev));
}

static void test_starttls_discards_pipelined(void **state)
{
    struct fixture *f = *state;
    int fd[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    struct event_base *base = event_base_new();
    struct server_side s = {NULL, BUF_INIT};
    evutil_make_socket_nonblocking(fd[1]);
    s.bev = bufferevent_socket_new(base, fd[1], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_enable(s.bev, EV_READ | EV_WRITE);

    /* The client sends the command and a pipelined one in one write, in the clear. */
    const char *burst = "STARTTLS\r\nRSET\r\n";
    assert_int_equal(write(fd[0], burst, strlen(burst)), (ssize_t)strlen(burst));
    struct timeval guard = {10, 0};
    /* Let the plain bufferevent read both lines into its input buffer. */
    for (int i = 0; i < 100 && evbuffer_get_length(bufferevent_get_input(s.bev)) < strlen(burst);
         i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    struct evbuffer *in = bufferevent_get_input(s.bev);
    assert_int_equal(evbuffer_get_length(in), strlen(burst));
    size_t len;
    char *cmd = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
    assert_string_equal(cmd, "STARTTLS");
    free(cmd);

    /* The reply in the clear; TLS only once it has been written out. */
    bufferevent_disable(s.bev, EV_READ);
    bufferevent_write(s.bev, "220 go\r\n", 8);
    assert_int_equal(tls_server_starttls(f->ts, &s.bev), -1); /* not written yet */
    for (int i = 0; i < 100 && evbuffer_get_length(bufferevent_get_output(s.bev)) > 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(evbuffer_get_length(bufferevent_get_output(s.bev)), 0);
    assert_int_equal(tls_server_starttls(f->ts, &s.bev), 0);
    assert_non_null(tls_bev_ssl(s.bev));
    bufferevent_setcb(s.bev, server_read, NULL, server_event, &s);
    bufferevent_enable(s.bev, EV_READ | EV_WRITE);

    struct client_thread c = {fd[0], SSL_CTX_new(TLS_client_method()), 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
    event_base_loopexit(base, &guard);
    event_base_dispatch(base);
    /* The first line read over TLS is the one sent over TLS, never the pipelined RSET. */
    assert_string_equal(buf_cstr(&s.got), "SECURE");
    struct buf d = BUF_INIT;
    tls_describe(tls_bev_ssl(s.bev), &d);
    assert_int_equal(strncmp(buf_cstr(&d), "TLSv1.3 with cipher", 19), 0);
    buf_free(&d);
    bufferevent_free(s.bev);                /* frees the plain one under it and closes fd[1] */
    event_base_loop(base, EVLOOP_NONBLOCK); /* libevent finalizes bufferevents in the loop */
    shutdown(fd[0], SHUT_RDWR);             /* ends the client's wait in any case */
    pthread_join(th, NULL);
    assert_int_equal(c.ok, 1);
    close(fd[0]);
    SSL_CTX_free(c.ctx);
    event_base_free(base);
    buf_free(&s.got);
}

/* Implicit TLS: a TLS bufferevent straight on the socket. */
static void test_implicit_tls(void **state)
{
    struct fixture *f = *state;
    int fd[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    struct event_base *base = event_base_new();
    evutil_make_socket_nonblocking(fd[1]);
    struct server_side s = {NULL, BUF_INIT};
    s.bev = tls_server_accept(f->ts, base, fd[1]);
    assert_non_null(s.bev);
    bufferevent_setcb(s.bev, server_read, NULL, server_event, &s);
    bufferevent_enable(s.bev, EV_READ | EV_WRITE);
    /* The client thread expects a plain greeting first; give it one out of band. */
    assert_int_equal(write(fd[1], "220 go\r\n", 8), 8);
    struct client_thread c = {fd[0], SSL_CTX_new(TLS_client_method()), 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
    struct timeval guard = {10, 0};
    event_base_loopexit(base, &guard);
    event_base_dispatch(base);
    assert_string_equal(buf_cstr(&s.got), "SECURE");
    bufferevent_free(s.bev);
    event_base_loop(base, EVLOOP_NONBLOCK);
    shutdown(fd[0], SHUT_RDWR);
    pthread_join(th, NULL);
    assert_int_equal(c.ok, 1);
    close(fd[0]);
    SSL_CTX_free(c.ctx);
    event_base_free(base);
    buf_free(&s.got);
}

int main(void)
{
    /* As the server does: a peer gone away is an error return, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_selfsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configured_cert_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls_discards_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_implicit_tls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
