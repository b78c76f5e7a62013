/*
 * hongyan report send: sends the pending aggregate reports now. TLS reports
 * (RFC 8460): the journal the delivery agent appends to
 * ($data_directory/tlsrpt/journal, src/deliver/tlsrpt.h) is taken away with
 * a rename, summed per policy domain and day, and each domain that
 * publishes _smtp._tls with a mailto: rua gets one gzip'd JSON report as
 * mail through maildrop/, so it is queued, DKIM-signed and routed like any
 * mail we originate; DMARC aggregate reports follow (report_dmarc.c). The
 * server runs this once a day (smtp_tls_reporting, smtpd_dmarc_reporting);
 * it is safe while `serve` runs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/cli.h"
#include "cli/sendmail.h"
#include "cli/doctor.h"
#include "cli/report.h"
#include "config/config.h"
#include "deliver/tlsrpt.h"
#include "dns/dns.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "queue/envelope.h"
#include "queue/pickup.h"
#include "queue/spool.h"

#define REPORT_USAGE "report [-c FILE] send"
#define REPORT_DNS_TIMEOUT_MS 5000

struct tlsrpt_detail {
    char *result, *mx_host, *ip;
    long count;
};

struct tlsrpt_policy {
    char *type, *mode, *max_age, *mx;
    long ok, failed;
    struct tlsrpt_detail *details;
    size_t ndetails;
};

/* The sessions to one policy domain on one day. */
struct tlsrpt_group {
    char *day, *domain;
    struct tlsrpt_policy *policies;
    size_t npolicies;
};

static int report_same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void report_tlsrpt_add(struct tlsrpt_group **groups, size_t *ngroups,
                              const struct tlsrpt_line *l)
{
    struct tlsrpt_group *g = NULL;
    for (size_t i = 0; i < *ngroups && !g; i++)
        if (report_same((*groups)[i].day, l->day) && report_same((*groups)[i].domain, l->domain))
            g = &(*groups)[i];
    if (!g) {
        *groups = xrealloc(*groups, (*ngroups + 1) * sizeof **groups);
        g = &(*groups)[(*ngroups)++];
        memset(g, 0, sizeof *g);
        g->day = xstrdup(l->day);
        g->domain = xstrdup(l->domain);
    }
    struct tlsrpt_policy *p = NULL;
    for (size_t i = 0; i < g->npolicies && !p; i++) {
        struct tlsrpt_policy *q = &g->policies[i];
        if (report_same(q->type, l->type) && report_same(q->mode, l->mode) &&
            report_same(q->max_age, l->max_age) && report_same(q->mx, l->mx))
            p = q;
    }
    if (!p) {
        g->policies = xrealloc(g->policies, (g->npolicies + 1) * sizeof *g->policies);
        p = &g->policies[g->npolicies++];
        memset(p, 0, sizeof *p);
        p->type = xstrdup(l->type);
        p->mode = xstrdup(l->mode);
        p->max_age = xstrdup(l->max_age);
        p->mx = xstrdup(l->mx);
    }
    if (report_same(l->result, "success")) {
        p->ok++;
        return;
    }
    p->failed++;
    for (size_t i = 0; i < p->ndetails; i++) {
        struct tlsrpt_detail *d = &p->details[i];
        if (report_same(d->result, l->result) && report_same(d->mx_host, l->mx_host) &&
            report_same(d->ip, l->ip)) {
            d->count++;
            return;
        }
    }
    p->details = xrealloc(p->details, (p->ndetails + 1) * sizeof *p->details);
    struct tlsrpt_detail *d = &p->details[p->ndetails++];
    d->result = xstrdup(l->result);
    d->mx_host = xstrdup(l->mx_host);
    d->ip = xstrdup(l->ip);
    d->count = 1;
}

static void report_tlsrpt_groups_free(struct tlsrpt_group *groups, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < groups[i].npolicies; k++) {
            struct tlsrpt_policy *p = &groups[i].policies[k];
            for (size_t m = 0; m < p->ndetails; m++) {
                free(p->details[m].result);
                free(p->details[m].mx_host);
                free(p->details[m].ip);
            }
            free(p->details);
            free(p->type);
            free(p->mode);
            free(p->max_age);
            free(p->mx);
        }
        free(groups[i].policies);
        free(groups[i].day);
        free(groups[i].domain);
    }
    free(groups);
}

/* "2026-12-06" -> the RFC 3339 instants of its start and of the next day's. */
static int report_day_range(const char *day, char start[32], char end[32], time_t *t0)
{
    struct tm tm = {0};
    char *rest = strptime(day, "%Y-%m-%d", &tm);
    if (!rest || *rest)
        return -1;
    *t0 = timegm(&tm);
    time_t t1 = *t0 + 86400;
    struct tm a, b;
    gmtime_r(t0, &a);
    gmtime_r(&t1, &b);
    strftime(start, 32, "%Y-%m-%dT%H:%M:%SZ", &a);
    strftime(end, 32, "%Y-%m-%dT%H:%M:%SZ", &b);
    return 0;
}

/* A list of words ("a b c") as a JSON array of strings, each with prefix. */
static void report_json_words(const char *words, const char *prefix, struct buf *out)
{
    buf_putc(out, '[');
    char *copy = xstrdup(report_same(words, "-") ? "" : words);
    int first = 1;
    for (char *w = strtok(copy, " "); w; w = strtok(NULL, " ")) {
        char *s = xasprintf("%s%s", prefix, w);
        buf_puts(out, first ? "" : ", ");
        doctor_json_string(s, out);
        free(s);
        first = 0;
    }
    free(copy);
    buf_putc(out, ']');
}

/* The report (RFC 8460 4.4) for one group, as JSON. */
static void report_tlsrpt_json(const struct tlsrpt_group *g, const char *org, const char *contact,
                               const char *report_id, const char *start, const char *end,
                               struct buf *out)
{
    buf_puts(out, "{\"organization-name\": ");
    doctor_json_string(org, out);
    buf_printf(out, ", \"date-range\": {\"start-datetime\": \"%s\", \"end-datetime\": \"%s\"}",
               start, end);
    buf_puts(out, ", \"contact-info\": ");
    doctor_json_string(contact, out);
    buf_puts(out, ", \"report-id\": ");
    doctor_json_string(report_id, out);
    buf_puts(out, ", \"policies\": [");
    for (size_t i = 0; i < g->npolicies; i++) {
        const struct tlsrpt_policy *p = &g->policies[i];
        buf_puts(out, i ? ", " : "");
        buf_puts(out, "{\"policy\": {\"policy-type\": ");
        doctor_json_string(p->type, out);
        if (report_same(p->type, "sts")) {
            /* The policy's own lines (RFC 8460 4.4 policy-string) and its MX patterns. */
            buf_printf(out, ", \"policy-string\": [\"version: STSv1\", \"mode: %s\", ", p->mode);
            char *mxs = xstrdup(p->mx);
            for (char *w = strtok(mxs, " "); w; w = strtok(NULL, " ")) {
                char *line = xasprintf("mx: %s", w);
                doctor_json_string(line, out);
                buf_puts(out, ", ");
                free(line);
            }
            free(mxs);
            buf_printf(out, "\"max_age: %s\"]", p->max_age);
        }
        buf_puts(out, ", \"policy-domain\": ");
        doctor_json_string(g->domain, out);
        if (report_same(p->type, "sts")) {
            buf_puts(out, ", \"mx-host\": ");
            report_json_words(p->mx, "", out);
        }
        buf_printf(out,
                   "}, \"summary\": {\"total-successful-session-count\": %ld, "
                   "\"total-failure-session-count\": %ld}",
                   p->ok, p->failed);
        if (p->ndetails) {
            buf_puts(out, ", \"failure-details\": [");
            for (size_t k = 0; k < p->ndetails; k++) {
                const struct tlsrpt_detail *d = &p->details[k];
                buf_puts(out, k ? ", {\"result-type\": " : "{\"result-type\": ");
                doctor_json_string(d->result, out);
                if (!report_same(d->ip, "-")) {
                    buf_puts(out, ", \"receiving-ip\": ");
                    doctor_json_string(d->ip, out);
                }
                if (!report_same(d->mx_host, "-")) {
                    buf_puts(out, ", \"receiving-mx-hostname\": ");
                    doctor_json_string(d->mx_host, out);
                }
                buf_printf(out, ", \"failed-session-count\": %ld}", d->count);
            }
            buf_putc(out, ']');
        }
        buf_putc(out, '}');
    }
    buf_puts(out, "]}\n");
}

int report_gzip(const void *data, size_t len, struct buf *out)
{
    z_stream zs = {0};
    /* 15 + 16: a gzip wrapper (RFC 1952), as the reports' .gz files are. */
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    uLong bound = deflateBound(&zs, (uLong)len);
    buf_reserve(out, bound);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    int r = deflate(&zs, Z_FINISH);
    if (r == Z_STREAM_END)
        out->len += zs.total_out;
    deflateEnd(&zs);
    return r == Z_STREAM_END ? 0 : -1;
}

void report_base64_lines(const void *data, size_t len, struct buf *out)
{
    struct buf b = BUF_INIT;
    base64_encode(data, len, &b);
    for (size_t i = 0; i < b.len; i += 76) {
        buf_append(out, b.data + i, b.len - i < 76 ? b.len - i : 76);
        buf_puts(out, "\r\n");
    }
    buf_free(&b);
}

int report_queue(const struct config *cfg, const char *sender, char *const *rcpts,
                 const struct buf *msg, struct buf *err)
{
    struct envelope *e = envelope_new();
    e->arrival = time(NULL);
    free(e->sender);
    e->sender = xstrdup(sender);
    for (size_t i = 0; rcpts[i]; i++)
        envelope_add_rcpt(e, rcpts[i]);
    /* Through the local submission boundary, as any sendmail mail (docs/submission.md). */
    int rc = sendmail_queue(cfg, e, msg, NULL);
    if (rc != 0)
        buf_printf(err, "the local submission helper refused the report (status %d)", rc);
    envelope_free(e);
    return rc == 0 ? 0 : -1;
}

/* Builds and queues the report of g to its rua; 1 queued, 0 nobody to send to, -1 failed. */
static int report_tlsrpt_send_one(const struct config *cfg, struct dns *dns,
                                  const struct tlsrpt_group *g)
{
    char *name = xasprintf("_smtp._tls.%s", g->domain);
    struct dns_answer *a = dns_query_sync(dns, name, DNS_T_TXT);
    const char *txt = NULL;
    size_t n = 0;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        if (strncmp(a->txt[i], "v=TLSRPTv1", 10) == 0 && n++ == 0)
            txt = a->txt[i];
    char **rua = NULL;
    size_t https = 0;
    struct buf why = BUF_INIT;
    int rc = 0;
    if (a->status == DNS_TEMPFAIL) {
        log_warning("TLS-RPT: %s: DNS temporary failure; the report waits for the next run", name);
        rc = -1;
    } else if (n != 1 || tlsrpt_rua_parse(txt, &rua, &https, &why) < 0) {
        if (n > 1)
            log_info("TLS-RPT: %s has %zu TLSRPTv1 records: no report for %s", name, n, g->day);
        else if (n == 1)
            log_info("TLS-RPT: %s: \"%s\" %s: no report for %s", name, txt, buf_cstr(&why), g->day);
    } else if (!rua[0]) {
        log_info("TLS-RPT: %s asks for https: reports only, which hongyan does not send", name);
    }
    dns_answer_free(a);
    buf_free(&why);
    free(name);
    if (rc < 0 || !rua || !rua[0]) {
        strlist_free(rua);
        return rc;
    }
    if (https)
        log_info("TLS-RPT: %s: https: rua skipped (hongyan sends by mail only)", g->domain);
    char start[32], end[32];
    time_t t0;
    if (report_day_range(g->day, start, end, &t0) < 0) {
        strlist_free(rua);
        return 0;
    }
    const char *org = config_get(cfg, "mydomain");
    const char *sender = config_get(cfg, "smtp_tls_report_sender");
    unsigned char rnd[6];
    random_bytes(rnd, sizeof rnd);
    char *report_id =
        xasprintf("%s.%s.%02x%02x%02x%02x%02x%02x@%s", g->day, g->domain, rnd[0], rnd[1], rnd[2],
                  rnd[3], rnd[4], rnd[5], config_get(cfg, "myhostname"));
    struct buf json = BUF_INIT, gz = BUF_INIT, msg = BUF_INIT;
    report_tlsrpt_json(g, org, sender, report_id, start, end, &json);
    if (report_gzip(json.data, json.len, &gz) < 0) {
        log_warning("TLS-RPT: cannot compress the report for %s", g->domain);
        rc = -1;
        goto out;
    }
    /* RFC 8460 5.3: sender!policy-domain!begin!end!id.json.gz, times as Unix seconds. */
    char *file = xasprintf("%s!%s!%lld!%lld!%02x%02x%02x.json.gz", org, g->domain, (long long)t0,
                           (long long)t0 + 86400 - 1, rnd[0], rnd[1], rnd[2]);
    char boundary[40];
    snprintf(boundary, sizeof boundary, "=_tlsrpt_%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5]);
    buf_printf(&msg, "From: %s\r\n", sender);
    buf_puts(&msg, "To: ");
    for (size_t i = 0; rua[i]; i++)
        buf_printf(&msg, "%s<%s>", i ? ", " : "", rua[i]);
    buf_puts(&msg, "\r\n");
    buf_printf(&msg, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", g->domain, org,
               report_id);
    buf_printf(&msg, "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n", g->domain, org);
    buf_printf(&msg,
               "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; "
               "boundary=\"%s\"\r\n\r\n",
               boundary);
    buf_printf(&msg,
               "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
               "This is an aggregate TLS report (RFC 8460) from %s for %s, %s.\r\n\r\n",
               boundary, org, g->domain, g->day);
    buf_printf(&msg,
               "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
               "Content-Transfer-Encoding: base64\r\n"
               "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
               boundary, file);
    report_base64_lines(gz.data, gz.len, &msg);
    buf_printf(&msg, "\r\n--%s--\r\n", boundary);
    free(file);
    struct buf err = BUF_INIT;
    if (report_queue(cfg, sender, rua, &msg, &err) < 0) {
        log_warning("TLS-RPT: cannot queue the report for %s: %s", g->domain, buf_cstr(&err));
        rc = -1;
    } else {
        size_t nrua = 0;
        while (rua[nrua])
            nrua++;
        log_info("TLS-RPT: report %s for %s (%s) queued to %zu address(es)", report_id, g->domain,
                 g->day, nrua);
        rc = 1;
    }
    buf_free(&err);
out:
    free(report_id);
    buf_free(&json);
    buf_free(&gz);
    buf_free(&msg);
    strlist_free(rua);
    return rc;
}

int report_tlsrpt_send(const struct config *cfg, struct dns *dns, int *sent)
{
    char *journal = tlsrpt_journal_path(cfg);
    char *dir = xasprintf("%s/tlsrpt", config_get(cfg, "data_directory"));
    /* Take the journal away; the server starts a new one with its next line. */
    char *taken = xasprintf("%s/sending.%lld.%ld", dir, (long long)time(NULL), (long)getpid());
    if (rename(journal, taken) < 0 && errno != ENOENT)
        log_warning("TLS-RPT: cannot take %s: %s", journal, strerror(errno));
    free(taken);
    free(journal);
    /* This run's file and any a failed run left behind. */
    char **files = NULL;
    size_t nfiles = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));)
        if (strncmp(de->d_name, "sending.", 8) == 0)
            doctor_push(&files, &nfiles, xasprintf("%s/%s", dir, de->d_name));
    if (d)
        closedir(d);
    struct tlsrpt_group *groups = NULL;
    size_t ngroups = 0;
    for (size_t i = 0; i < nfiles; i++) {
        struct buf text = BUF_INIT;
        if (read_file(files[i], &text, 64u << 20) < 0) {
            log_warning("TLS-RPT: cannot read %s: %s", files[i], strerror(errno));
            buf_free(&text);
            continue;
        }
        char *s = text.data ? text.data : "";
        for (char *nl; (nl = memchr(s, '\n', text.len - (size_t)(s - text.data))); s = nl + 1) {
            *nl = '\0';
            struct tlsrpt_line l;
            if (tlsrpt_line_parse(s, &l) == 0)
                report_tlsrpt_add(&groups, &ngroups, &l);
        }
        buf_free(&text);
    }
    int failed = 0;
    *sent = 0;
    for (size_t i = 0; i < ngroups; i++) {
        int r = report_tlsrpt_send_one(cfg, dns, &groups[i]);
        if (r < 0)
            failed = 1;
        else
            *sent += r;
    }
    /* Everything queued (or nobody to send to): the sessions are reported. */
    for (size_t i = 0; i < nfiles; i++) {
        if (!failed && unlink(files[i]) < 0)
            log_warning("TLS-RPT: cannot remove %s: %s", files[i], strerror(errno));
        free(files[i]);
    }
    free(files);
    report_tlsrpt_groups_free(groups, ngroups);
    free(dir);
    return failed ? -1 : 0;
}

int cli_report_main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            cli_config_path = argv[++i];
        else
            return cli_usage(REPORT_USAGE);
    }
    if (i + 1 != argc || strcmp(argv[i], "send") != 0)
        return cli_usage(REPORT_USAGE);
    struct config *cfg = cli_config();
    log_set_service("report");
    struct buf err = BUF_INIT;
    struct dns *dns = dns_new(NULL, config_get(cfg, "dns_resolver"), &err);
    if (!dns) {
        fprintf(stderr, "hongyan: dns_resolver: %s\n", buf_cstr(&err));
        buf_free(&err);
        return EX_CONFIG;
    }
    buf_free(&err);
    dns_set_timeout(dns, REPORT_DNS_TIMEOUT_MS);
    int tls_sent = 0, dmarc_sent = 0;
    int rc = report_tlsrpt_send(cfg, dns, &tls_sent);
    if (report_dmarc_send(cfg, dns, &dmarc_sent) < 0)
        rc = -1;
    printf("report: %d TLS report(s) queued\nreport: %d DMARC report(s) queued\n", tls_sent,
           dmarc_sent);
    dns_free(dns);
    return rc < 0 ? EX_TEMPFAIL : 0;
}
