/*
 * DMARC aggregate reports (RFC 7489 7.2, appendix C) for `hongyan report
 * send`: each day file of $data_directory/dmarc (src/mailauth/
 * dmarc_report.h) is taken away with a rename, summed per policy domain
 * (counts per source address and result), and each domain gets one gzip'd
 * XML report at its rua= mailto: addresses, external ones only when they
 * agree to receive it (7.1) and within their "!" size limits.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/doctor.h"
#include "cli/report.h"
#include "config/config.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"

struct dmarc_row {
    char *key; /* the line's fields from the source address on, for grouping */
    struct dmarc_report_line l;
    char *text; /* the line the fields point into */
    long count;
};

struct dmarc_group {
    char *day, *domain;
    char *published; /* the last line seen, whose policy fields are reported */
    struct dmarc_report_line pub;
    struct dmarc_row *rows;
    size_t nrows;
};

static void report_dmarc_add(struct dmarc_group **groups, size_t *n, const char *day,
                             const char *raw)
{
    char *text = xstrdup(raw);
    struct dmarc_report_line l;
    if (dmarc_report_line_parse(text, &l) < 0) {
        free(text);
        return;
    }
    struct dmarc_group *g = NULL;
    for (size_t i = 0; i < *n && !g; i++)
        if (strcmp((*groups)[i].day, day) == 0 && strcmp((*groups)[i].domain, l.domain) == 0)
            g = &(*groups)[i];
    if (!g) {
        *groups = xrealloc(*groups, (*n + 1) * sizeof **groups);
        g = &(*groups)[(*n)++];
        memset(g, 0, sizeof *g);
        g->day = xstrdup(day);
        g->domain = xstrdup(l.domain);
    }
    /* The policy as last published that day. */
    free(g->published);
    g->published = xstrdup(raw);
    dmarc_report_line_parse(g->published, &g->pub);
    char *key = xasprintf("%s|%s|%s|%s|%s|%s|%s", l.ip, l.disposition, l.dkim, l.spf, l.header_from,
                          l.dkim_auth, l.spf_auth);
    for (size_t i = 0; i < g->nrows; i++) {
        if (strcmp(g->rows[i].key, key) == 0) {
            g->rows[i].count++;
            free(key);
            free(text);
            return;
        }
    }
    g->rows = xrealloc(g->rows, (g->nrows + 1) * sizeof *g->rows);
    struct dmarc_row *r = &g->rows[g->nrows++];
    r->key = key;
    r->l = l;
    r->text = text;
    r->count = 1;
}

static void report_dmarc_groups_free(struct dmarc_group *groups, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < groups[i].nrows; k++) {
            free(groups[i].rows[k].key);
            free(groups[i].rows[k].text);
        }
        free(groups[i].rows);
        free(groups[i].day);
        free(groups[i].domain);
        free(groups[i].published);
    }
    free(groups);
}

/* XML character data (the five predefined entities). */
static void report_xml(struct buf *out, const char *tag, const char *s)
{
    buf_printf(out, "<%s>", tag);
    buf_put_markup(out, s);
    buf_printf(out, "</%s>", tag);
}

/* "d1:pass,d2:fail" as one <dkim> (or <spf>) element per entry. */
static void report_dmarc_auth(struct buf *out, const char *kind, const char *list)
{
    if (strcmp(list, "-") == 0)
        return;
    char *copy = xstrdup(list);
    char *save = NULL;
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(e, ':');
        if (!colon)
            continue;
        *colon = '\0';
        buf_printf(out, "<%s>", kind);
        report_xml(out, "domain", e);
        report_xml(out, "result", colon + 1);
        buf_printf(out, "</%s>", kind);
    }
    free(copy);
}

static void report_dmarc_xml(const struct dmarc_group *g, const char *org, const char *email,
                             const char *report_id, long long begin, long long end, struct buf *out)
{
    buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
    buf_puts(out, "<version>1.0</version>\n<report_metadata>");
    report_xml(out, "org_name", org);
    report_xml(out, "email", email);
    report_xml(out, "report_id", report_id);
    buf_printf(out, "<date_range><begin>%lld</begin><end>%lld</end></date_range>", begin, end);
    buf_puts(out, "</report_metadata>\n<policy_published>");
    report_xml(out, "domain", g->domain);
    report_xml(out, "adkim", g->pub.adkim);
    report_xml(out, "aspf", g->pub.aspf);
    report_xml(out, "p", g->pub.p);
    report_xml(out, "sp", g->pub.sp);
    report_xml(out, "pct", g->pub.pct);
    buf_puts(out, "</policy_published>\n");
    for (size_t i = 0; i < g->nrows; i++) {
        const struct dmarc_report_line *l = &g->rows[i].l;
        buf_puts(out, "<record><row>");
        report_xml(out, "source_ip", l->ip);
        buf_printf(out, "<count>%ld</count><policy_evaluated>", g->rows[i].count);
        report_xml(out, "disposition", l->disposition);
        report_xml(out, "dkim", l->dkim);
        report_xml(out, "spf", l->spf);
        buf_puts(out, "</policy_evaluated></row><identifiers>");
        report_xml(out, "header_from", l->header_from);
        buf_puts(out, "</identifiers><auth_results>");
        report_dmarc_auth(out, "dkim", l->dkim_auth);
        report_dmarc_auth(out, "spf", l->spf_auth);
        buf_puts(out, "</auth_results></record>\n");
    }
    buf_puts(out, "</feedback>\n");
}

/*
 * RFC 7489 7.1: an address outside the policy domain's organisational
 * domain takes reports only when DOMAIN._report._dmarc.ITSDOMAIN says
 * v=DMARC1. 1 allowed, 0 not, -1 a temporary DNS failure.
 */
static int report_dmarc_allowed(struct dns *dns, const char *domain, const char *addr)
{
    const char *at = strrchr(addr, '@');
    if (!at)
        return 0;
    char *org_a = dmarc_org_domain(domain), *org_b = dmarc_org_domain(at + 1);
    int same = org_a && org_b && strcmp(org_a, org_b) == 0;
    free(org_a);
    free(org_b);
    if (same)
        return 1;
    char *name = xasprintf("%s._report._dmarc.%s", domain, at + 1);
    struct dns_answer *a = dns_query_sync(dns, name, DNS_T_TXT);
    int ok = a->status == DNS_TEMPFAIL ? -1 : 0;
    for (size_t i = 0; a->status == DNS_OK && i < a->count; i++)
        if (strncmp(a->txt[i], "v=DMARC1", 8) == 0)
            ok = 1;
    if (ok == 0)
        log_info("DMARC report: %s does not take reports for %s (no v=DMARC1 at %s): skipped", addr,
                 domain, name);
    dns_answer_free(a);
    free(name);
    return ok;
}

/* 1 queued, 0 nobody to send to, -1 failed (kept for the next run). */
static int report_dmarc_send_one(const struct config *cfg, struct dns *dns,
                                 const struct dmarc_group *g)
{
    struct tm tm = {0};
    char *rest = strptime(g->day, "%Y-%m-%d", &tm);
    if (!rest || *rest)
        return 0;
    long long begin = (long long)timegm(&tm), end = begin + 86400 - 1;
    const char *org = config_get(cfg, "mydomain");
    const char *sender = config_get(cfg, "dmarc_report_sender");
    unsigned char rnd[4];
    random_bytes(rnd, sizeof rnd);
    char *report_id = xasprintf("%s.%s.%02x%02x%02x%02x@%s", g->day, g->domain, rnd[0], rnd[1],
                                rnd[2], rnd[3], config_get(cfg, "myhostname"));
    struct buf xml = BUF_INIT, gz = BUF_INIT, msg = BUF_INIT;
    report_dmarc_xml(g, org, sender, report_id, begin, end, &xml);
    int rc = 0;
    if (report_gzip(xml.data, xml.len, &gz) < 0) {
        rc = -1;
        goto out;
    }
    struct dmarc_rua *rua;
    size_t nrua = dmarc_rua_parse(g->pub.rua, &rua);
    char **to = xcalloc(nrua + 1, sizeof *to);
    size_t nto = 0;
    for (size_t i = 0; i < nrua; i++) {
        int ok = report_dmarc_allowed(dns, g->domain, rua[i].addr);
        if (ok < 0) {
            rc = -1;
            break;
        }
        /* RFC 7489 6.2: a report larger than the "!" limit is not sent there. */
        if (ok && rua[i].limit && gz.len > rua[i].limit) {
            log_info("DMARC report: %zu bytes for %s is over the %llu-byte limit of %s: skipped",
                     gz.len, g->domain, rua[i].limit, rua[i].addr);
            ok = 0;
        }
        if (ok)
            to[nto++] = xstrdup(rua[i].addr);
    }
    dmarc_rua_free(rua, nrua);
    if (rc == 0 && nto > 0) {
        char *file = xasprintf("%s!%s!%lld!%lld.xml.gz", org, g->domain, begin, end);
        char boundary[40];
        snprintf(boundary, sizeof boundary, "=_dmarc_%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                 rnd[3]);
        buf_printf(&msg, "From: %s\r\nTo: ", sender);
        for (size_t i = 0; i < nto; i++)
            buf_printf(&msg, "%s<%s>", i ? ", " : "", to[i]);
        /* RFC 7489 7.2.1.1: exactly this Subject. */
        buf_printf(&msg, "\r\nSubject: Report Domain: %s Submitter: %s Report-ID: %s\r\n",
                   g->domain, org, report_id);
        buf_printf(&msg,
                   "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                   "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                   "This is a DMARC aggregate report from %s for %s, %s.\r\n\r\n"
                   "--%s\r\nContent-Type: application/gzip\r\n"
                   "Content-Transfer-Encoding: base64\r\n"
                   "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
                   boundary, boundary, org, g->domain, g->day, boundary, file);
        report_base64_lines(gz.data, gz.len, &msg);
        buf_printf(&msg, "\r\n--%s--\r\n", boundary);
        free(file);
        struct buf err = BUF_INIT;
        if (report_queue(cfg, sender, to, &msg, &err) < 0) {
            log_warning("DMARC report: cannot queue the report for %s: %s", g->domain,
                        buf_cstr(&err));
            rc = -1;
        } else {
            log_info("DMARC report: report %s for %s (%s) queued to %zu address(es)", report_id,
                     g->domain, g->day, nto);
            rc = 1;
        }
        buf_free(&err);
    }
    strlist_free(to);
out:
    free(report_id);
    buf_free(&xml);
    buf_free(&gz);
    buf_free(&msg);
    return rc;
}

int report_dmarc_send(const struct config *cfg, struct dns *dns, int *sent)
{
    *sent = 0;
    char *dir = xasprintf("%s/dmarc", config_get(cfg, "data_directory"));
    /* Take each day file away (new lines start a new file), and what a failed run left. */
    char **files = NULL, **days = NULL;
    size_t nfiles = 0, ndays = 0;
    /* Names first: renaming while reading the directory could show a file twice. */
    char **names = NULL;
    size_t nnames = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));)
        if (de->d_name[0] != '.')
            doctor_push(&names, &nnames, xstrdup(de->d_name));
    if (d)
        closedir(d);
    for (size_t k = 0; k < nnames; k++) {
        const char *n = names[k];
        if (strlen(n) == 10 && n[4] == '-' && n[7] == '-') {
            char *from = xasprintf("%s/%s", dir, n);
            char *to = xasprintf("%s/sending.%s.%ld", dir, n, (long)getpid());
            if (rename(from, to) == 0) {
                doctor_push(&files, &nfiles, to);
                doctor_push(&days, &ndays, xstrdup(n));
            } else {
                free(to);
            }
            free(from);
        } else if (strncmp(n, "sending.", 8) == 0 && strlen(n) > 18) {
            doctor_push(&files, &nfiles, xasprintf("%s/%s", dir, n));
            doctor_push(&days, &ndays, xstrndup(n + 8, 10));
        }
    }
    for (size_t k = 0; k < nnames; k++)
        free(names[k]);
    free(names);
    struct dmarc_group *groups = NULL;
    size_t ngroups = 0;
    for (size_t i = 0; i < nfiles; i++) {
        struct buf text = BUF_INIT;
        if (read_file(files[i], &text, 256u << 20) < 0) {
            log_warning("DMARC report: cannot read %s: %s", files[i], strerror(errno));
            buf_free(&text);
            continue;
        }
        char *s = text.data ? text.data : "";
        for (char *nl; (nl = memchr(s, '\n', text.len - (size_t)(s - text.data))); s = nl + 1) {
            *nl = '\0';
            report_dmarc_add(&groups, &ngroups, days[i], s);
        }
        buf_free(&text);
    }
    int failed = 0;
    for (size_t i = 0; i < ngroups; i++) {
        int r = report_dmarc_send_one(cfg, dns, &groups[i]);
        if (r < 0)
            failed = 1;
        else
            *sent += r;
    }
    for (size_t i = 0; i < nfiles; i++) {
        if (!failed && unlink(files[i]) < 0)
            log_warning("DMARC report: cannot remove %s: %s", files[i], strerror(errno));
        free(files[i]);
        free(days[i]);
    }
    free(files);
    free(days);
    report_dmarc_groups_free(groups, ngroups);
    free(dir);
    return failed ? -1 : 0;
}
