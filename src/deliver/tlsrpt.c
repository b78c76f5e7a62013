/*
 * TLS-RPT recording (RFC 8460): one journal line per TLS session of a
 * delivery by MX; see tlsrpt.h for the format. An append with O_APPEND is
 * one write(2) of a short line, so lines from one writer never interleave
 * and `report send` can take the journal away with a rename at any time.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/mta_sts.h"
#include "deliver/tlsrpt.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "smtp/address.h"
#include "deliver/client.h"
#include "smtp/response.h"

char *tlsrpt_journal_path(const struct config *cfg)
{
    return xasprintf("%s/tlsrpt/journal", config_get(cfg, "data_directory"));
}

static const char *tlsrpt_type_name(enum tlsrpt_policy_type t)
{
    return t == TLSRPT_POLICY_STS ? "sts" : t == TLSRPT_POLICY_TLSA ? "tlsa" : "no-policy-found";
}

void tlsrpt_record(const struct config *cfg, const struct tlsrpt_event *ev, time_t now)
{
    if (!config_get_bool(cfg, "smtp_tls_reporting"))
        return;
    char day[16];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    struct buf line = BUF_INIT;
    buf_puts(&line, "T1");
    buf_put_field(&line, day);
    buf_put_field(&line, ev->domain);
    buf_put_field(&line, tlsrpt_type_name(ev->type));
    buf_put_field(&line, ev->result ? ev->result : "success");
    buf_put_field(&line, ev->mx_host);
    buf_put_field(&line, ev->ip);
    if (ev->type == TLSRPT_POLICY_STS && ev->sts) {
        char age[24];
        snprintf(age, sizeof age, "%ld", ev->sts->max_age);
        buf_put_field(&line, mta_sts_mode_name(ev->sts->mode));
        buf_put_field(&line, age);
        struct buf mx = BUF_INIT;
        for (size_t i = 0; i < ev->sts->nmx; i++)
            buf_printf(&mx, "%s%s", i ? " " : "", ev->sts->mx[i]);
        buf_put_field(&line, buf_cstr(&mx));
        buf_free(&mx);
    } else {
        buf_put_field(&line, NULL);
        buf_put_field(&line, NULL);
        buf_put_field(&line, NULL);
    }
    buf_putc(&line, '\n');
    char *path = tlsrpt_journal_path(cfg);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT) {
        char *dir = xasprintf("%s/tlsrpt", config_get(cfg, "data_directory"));
        if (mkdir(dir, 0700) == 0 || errno == EEXIST)
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        free(dir);
    }
    if (fd < 0 || write_all(fd, line.data, line.len) < 0)
        log_warning("TLS-RPT: cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(path);
    buf_free(&line);
}

const char *tlsrpt_result_type(struct smtp_client *c, int dane)
{
    if (!smtp_client_is_tls(c)) {
        /* Offered and failed is a handshake failure; not offered is what the RFC names. */
        const struct smtp_ehlo *e = smtp_client_ehlo(c);
        return e && (e->ext & SMTP_EHLO_STARTTLS) ? "validation-failure" : "starttls-not-supported";
    }
    if (smtp_client_tls_trust(c, NULL) >= TLS_TRUST_TRUSTED)
        return NULL;
    if (dane)
        return "tlsa-invalid";
    switch (smtp_client_verify_error(c)) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return "certificate-host-mismatch";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate-expired";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return "certificate-not-trusted";
    default:
        return "validation-failure";
    }
}

int tlsrpt_line_parse(char *line, struct tlsrpt_line *out)
{
    char *f[10];
    size_t n = str_split_tabs(line, f, 10);
    if (n != 10 || strcmp(f[0], "T1") != 0 || strlen(f[1]) != 10 || !mta_sts_domain_ok(f[2]) ||
        strchr(f[9], '\t'))
        return -1;
    out->day = f[1];
    out->domain = f[2];
    out->type = f[3];
    out->result = f[4];
    out->mx_host = f[5];
    out->ip = f[6];
    out->mode = f[7];
    out->max_age = f[8];
    out->mx = f[9];
    return 0;
}

int tlsrpt_rua_parse(const char *txt, char ***mailto, size_t *https, struct buf *why)
{
    *mailto = xcalloc(1, sizeof **mailto);
    *https = 0;
    if (strncmp(txt, "v=TLSRPTv1", 10) != 0 || (txt[10] && txt[10] != ';' && txt[10] != ' ')) {
        buf_puts(why, "does not start with v=TLSRPTv1");
        return -1;
    }
    const char *rua = NULL;
    for (const char *p = txt + 10; *p; p++) {
        if (*p != ';')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "rua=", 4) == 0) {
            rua = p + 4;
            break;
        }
        p--;
    }
    if (!rua) {
        buf_puts(why, "has no rua=");
        return -1;
    }
    char *list = xstrndup(rua, strcspn(rua, ";"));
    size_t n = 0, bad = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        char *u = str_trim(tok);
        struct smtp_path path;
        struct smtp_reply perr;
        if (str_prefix_ci(u, "mailto:")) {
            /* The address goes into the envelope and To:: it must be a plain mailbox. */
            if (smtp_mailbox_parse(u + 7, strcspn(u + 7, "?"), 0, &path, &perr) < 0) {
                bad++;
                continue;
            }
            *mailto = xrealloc(*mailto, (n + 2) * sizeof **mailto);
            (*mailto)[n++] = xstrdup(path.addr);
            (*mailto)[n] = NULL;
        } else if (str_prefix_ci(u, "https:")) {
            (*https)++;
        } else {
            bad++;
        }
    }
    free(list);
    if (bad || (n == 0 && *https == 0)) {
        buf_puts(why, "rua= must list mailto: or https: URIs");
        return -1;
    }
    return 0;
}
