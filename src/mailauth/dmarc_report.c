/*
 * DMARC aggregate report recording and the rua= parser; see
 * dmarc_report.h. A line is one write(2) with O_APPEND, so lines never
 * interleave; the file of a day is not written again once the day is over.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc_report.h"
#include "smtp/address.h"

void dmarc_report_record(const char *data_dir, const struct dmarc_report_event *ev, time_t now)
{
    const struct dmarc_outcome *o = ev->outcome;
    char day[16], pct[8];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    snprintf(pct, sizeof pct, "%d", o->pct);
    struct buf line = BUF_INIT, dk = BUF_INIT, sp = BUF_INIT;
    for (size_t i = 0; i < ev->ndkim; i++)
        buf_printf(&dk, "%s%s:%s", i ? "," : "", ev->dkim_domains[i] ? ev->dkim_domains[i] : "",
                   ev->dkim_results[i]);
    if (ev->spf_domain && *ev->spf_domain)
        buf_printf(&sp, "%s:%s", ev->spf_domain, ev->spf_result);
    buf_puts(&line, "D1");
    buf_put_field(&line, o->record_domain);
    buf_put_field(&line, ev->source_ip);
    buf_put_field(&line, ev->disposition);
    buf_put_field(&line, o->dkim_aligned ? "pass" : "fail");
    buf_put_field(&line, o->spf_aligned ? "pass" : "fail");
    buf_put_field(&line, o->from_domain);
    buf_put_field(&line, buf_cstr(&dk));
    buf_put_field(&line, buf_cstr(&sp));
    buf_put_field(&line, o->adkim == DMARC_ALIGN_STRICT ? "s" : "r");
    buf_put_field(&line, o->aspf == DMARC_ALIGN_STRICT ? "s" : "r");
    buf_put_field(&line, dmarc_policy_str(o->p));
    buf_put_field(&line, dmarc_policy_str(o->sp));
    buf_put_field(&line, pct);
    buf_put_field(&line, o->rua);
    buf_putc(&line, '\n');
    char *dir = xasprintf("%s/dmarc", data_dir);
    char *path = xasprintf("%s/%s", dir, day);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT && (mkdir(dir, 0700) == 0 || errno == EEXIST))
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write_all(fd, line.data, line.len) < 0)
        log_warning("DMARC report: cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(path);
    free(dir);
    buf_free(&line);
    buf_free(&dk);
    buf_free(&sp);
}

int dmarc_report_line_parse(char *line, struct dmarc_report_line *out)
{
    char *f[15];
    size_t n = str_split_tabs(line, f, 15);
    if (n != 15 || strcmp(f[0], "D1") != 0 || strchr(f[14], '\t'))
        return -1;
    char **dst[] = {&out->domain,      &out->ip,        &out->disposition, &out->dkim,  &out->spf,
                    &out->header_from, &out->dkim_auth, &out->spf_auth,    &out->adkim, &out->aspf,
                    &out->p,           &out->sp,        &out->pct,         &out->rua};
    for (size_t i = 0; i < 14; i++)
        *dst[i] = f[i + 1];
    return 0;
}

void dmarc_rua_free(struct dmarc_rua *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].addr);
    free(r);
}

size_t dmarc_rua_parse(const char *rua, struct dmarc_rua **out)
{
    *out = NULL;
    size_t n = 0;
    char *copy = xstrdup(rua ? rua : "");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *u = str_trim(tok);
        if (!str_prefix_ci(u, "mailto:"))
            continue;
        u += 7;
        /* RFC 7489 6.2: "!" then a size, with an optional k/m/g/t multiplier. */
        unsigned long long limit = 0;
        char *bang = strrchr(u, '!');
        if (bang) {
            *bang = '\0';
            char *q = bang + 1;
            int digits = 0;
            while (isdigit((unsigned char)*q) && limit < (1ULL << 40)) {
                limit = limit * 10 + (unsigned)(*q++ - '0');
                digits++;
            }
            static const char units[] = "kmgt";
            const char *unit = *q ? strchr(units, tolower((unsigned char)*q)) : NULL;
            if (!digits || (*q && (!unit || q[1])))
                continue;
            for (const char *k = units; unit && k <= unit; k++)
                limit *= 1024;
        }
        struct smtp_path path;
        struct smtp_reply err;
        if (smtp_mailbox_parse(u, strcspn(u, "?"), 0, &path, &err) < 0)
            continue;
        *out = xrealloc(*out, (n + 1) * sizeof **out);
        (*out)[n].addr = xstrdup(path.addr);
        (*out)[n].limit = limit;
        n++;
    }
    free(copy);
    return n;
}
