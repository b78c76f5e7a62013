/*
 * The status page (metrics_status.h): queue by state, the oldest deferred
 * message and why, rates of the last half hour as inline SVG sparklines,
 * TLS share, recent deliveries and per-domain outcomes. Everything that
 * came from the network (addresses, replies) is HTML-escaped.
 */
#include "metrics/metrics_status.h"

#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "metrics/metrics.h"

#define METRICS_STATUS_DOMAINS 10

static void metrics_status_escape(struct buf *out, const char *s)
{
    buf_put_markup(out, s); /* network text (replies, addresses) never becomes markup */
}

static void metrics_status_time(struct buf *out, time_t t)
{
    struct tm tm;
    char text[32];
    /* A time from the shared region may be anything: out of gmtime's range it is shown as such. */
    if (gmtime_r(&t, &tm) == NULL || strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        str_copy(text, sizeof text, "(time out of range)");
    buf_puts(out, text);
}

/* One polyline over the last METRICS_MINUTES minutes, scaled to its own peak. */
static void metrics_status_sparkline(struct buf *out, const char *label, int which,
                                     const char *colour)
{
    unsigned counts[METRICS_MINUTES];
    metrics_rate(which, counts);
    unsigned peak = 0;
    unsigned long long total = 0;
    for (int k = 0; k < METRICS_MINUTES; k++) {
        total += counts[k];
        if (counts[k] > peak)
            peak = counts[k];
    }
    const int width = 240, height = 36;
    buf_printf(out,
               "<div class=spark><span class=lbl>%s</span>"
               "<svg width=%d height=%d viewBox='0 0 %d %d' role=img aria-label='%s per minute'>"
               "<polyline fill=none stroke='%s' stroke-width=2 points='",
               label, width, height + 4, width, height + 4, label, colour);
    for (int k = 0; k < METRICS_MINUTES; k++) {
        int x = k * (width - 2) / (METRICS_MINUTES - 1) + 1;
        int y = 2 + height - (peak ? (int)((unsigned long long)counts[k] * height / peak) : 0);
        buf_printf(out, "%d,%d ", x, y);
    }
    buf_printf(out,
               "'/></svg><span class=num>%llu in %d min, peak %u/min, last %u/min</span></div>\n",
               total, METRICS_MINUTES, peak, counts[METRICS_MINUTES - 1]);
}

static const char *metrics_status_outcome(enum metrics_outcome o)
{
    return o == METRICS_SENT ? "sent" : o == METRICS_DEFERRED ? "deferred" : "bounced";
}

static void metrics_status_percent(struct buf *out, unsigned long long part,
                                   unsigned long long whole)
{
    if (whole == 0)
        buf_puts(out, "–");
    else
        buf_printf(out, "%.0f%%", 100.0 * (double)part / (double)whole);
}

void metrics_status_render(struct buf *out, const char *hostname, const struct metrics_gauges *g,
                           const struct metrics_oldest *oldest)
{
    time_t now = time(NULL);
    buf_puts(out, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                  "<meta name=viewport content='width=device-width'>"
                  "<meta http-equiv=refresh content=30><title>hongyan on ");
    metrics_status_escape(out, hostname);
    buf_puts(out,
             "</title>\n<style>\n"
             "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:60em;"
             "color:#222;background:#fafafa;padding:0 1em}\n"
             "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em;"
             "border-bottom:1px solid #ccc}\n"
             ".cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#fff;border:1px solid "
             "#ddd;border-radius:6px;padding:.6em 1em;min-width:8em}\n"
             ".card b{display:block;font-size:1.8em}.muted{color:#777}\n"
             "table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid "
             "#ddd;padding:.25em .5em;text-align:left;vertical-align:top}\n"
             "td.reply{font-family:monospace;font-size:12px;word-break:break-all}\n"
             ".sent{color:#176c2e}.deferred{color:#9a6700}.bounced{color:#b42318}\n"
             ".spark{display:flex;align-items:center;gap:.8em;margin:.2em 0}"
             ".spark .lbl{width:6em}.spark svg{background:#fff;border:1px solid #ddd}\n"
             "</style></head><body>\n<h1>hongyan on ");
    metrics_status_escape(out, hostname);
    buf_puts(out, "</h1><div class=muted>");
    metrics_status_time(out, now);
    buf_puts(out, " · refreshes every 30 s · <a href='/metrics'>/metrics</a></div>\n");

    static const char *const states[3] = {"active", "deferred", "hold"};
    buf_puts(out, "<h2>Queue</h2><div class=cards>");
    for (int s = 0; s < 3; s++)
        buf_printf(out, "<div class=card>%s<b id=queue-%s>%llu</b>%llu bytes</div>", states[s],
                   states[s], g->queue_messages[s], g->queue_bytes[s]);
    buf_printf(out,
               "<div class=card>sessions open<b>%d</b></div><div class=card>delivering now"
               "<b>%d</b></div></div>\n",
               g->sessions_open, g->deliveries_in_flight);
    buf_puts(out, "<p>Oldest deferred message: ");
    if (oldest->id[0]) {
        buf_puts(out, "<b>");
        metrics_status_escape(out, oldest->id); /* from the shared region: any bytes */
        buf_puts(out, "</b>, queued ");
        metrics_status_time(out, oldest->arrival);
        buf_printf(out, " (%lld min ago), to &lt;", (long long)(now - oldest->arrival) / 60);
        metrics_status_escape(out, oldest->recipient);
        buf_puts(out, "&gt;: <code>");
        metrics_status_escape(out, oldest->reason);
        buf_puts(out, "</code>");
    } else {
        buf_puts(out, "none");
    }
    buf_puts(out, "</p>\n<h2>Last 30 minutes</h2>\n");
    metrics_status_sparkline(out, "received", 0, "#1f6feb");
    metrics_status_sparkline(out, "sent", 1, "#176c2e");
    metrics_status_sparkline(out, "deferred", 2, "#9a6700");
    metrics_status_sparkline(out, "bounced", 3, "#b42318");

    struct metrics_totals t;
    metrics_totals(&t);
    buf_printf(out,
               "<h2>Since start</h2><p>%llu connections, %llu messages received, %llu sent, "
               "%llu deferred attempts, %llu bounced. TLS share: inbound ",
               t.connections, t.received, t.outcome[METRICS_SENT], t.outcome[METRICS_DEFERRED],
               t.outcome[METRICS_BOUNCED]);
    metrics_status_percent(out, t.tls_in, t.connections);
    buf_puts(out, " of connections, outbound ");
    metrics_status_percent(out, t.tls_out, t.remote_sent);
    buf_puts(out, " of remote deliveries (handshakes per message sent).</p>\n");

    /* Static: the loop thread alone renders, and the copy is some 12 kB. */
    static struct metrics_deliveries view;
    int readable = metrics_deliveries_read(&view) == 0;
    size_t nrecent = view.nrecent;
    const struct metrics_recent *recent = view.recent;
    buf_puts(out, "<h2>Recent deliveries</h2>\n");
    if (!readable)
        buf_puts(out, "<p class=muted>not readable now (an update was cut short): reload</p>\n");
    else if (nrecent == 0)
        buf_puts(out, "<p class=muted>none yet</p>\n");
    else
        buf_puts(out, "<table><tr><th>time</th><th>recipient</th><th>outcome</th><th>relay</th>"
                      "<th>reply</th></tr>\n");
    for (size_t k = 0; k < nrecent; k++) {
        buf_puts(out, "<tr><td>");
        metrics_status_time(out, recent[k].when);
        buf_puts(out, "</td><td>");
        metrics_status_escape(out, recent[k].rcpt);
        buf_printf(out, "</td><td class=%s>%s</td><td>", metrics_status_outcome(recent[k].outcome),
                   metrics_status_outcome(recent[k].outcome));
        metrics_status_escape(out, recent[k].relay);
        buf_puts(out, "</td><td class=reply>");
        metrics_status_escape(out, recent[k].reply);
        buf_puts(out, "</td></tr>\n");
    }
    if (nrecent)
        buf_puts(out, "</table>\n");

    size_t ndomains =
        view.ndomains < METRICS_STATUS_DOMAINS ? view.ndomains : METRICS_STATUS_DOMAINS;
    const struct metrics_domain *domains = view.domains;
    buf_puts(out, "<h2>By destination domain</h2>\n");
    if (!readable)
        buf_puts(out, "<p class=muted>not readable now: reload</p>\n");
    else if (ndomains == 0)
        buf_puts(out, "<p class=muted>none yet</p>\n");
    else
        buf_puts(out, "<table><tr><th>domain</th><th>sent</th><th>deferred</th><th>bounced</th>"
                      "</tr>\n");
    for (size_t k = 0; k < ndomains; k++) {
        buf_puts(out, "<tr><td>");
        metrics_status_escape(out, domains[k].domain);
        buf_printf(out, "</td><td>%llu</td><td>%llu</td><td>%llu</td></tr>\n",
                   domains[k].outcome[METRICS_SENT], domains[k].outcome[METRICS_DEFERRED],
                   domains[k].outcome[METRICS_BOUNCED]);
    }
    if (ndomains)
        buf_puts(out, "</table>\n");
    buf_puts(out, "</body></html>\n");
}
