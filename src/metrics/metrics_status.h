/*
 * The status page (GET / on metrics_listen): one HTML page for a person,
 * with an inline stylesheet and inline SVG sparklines, no script and no
 * external asset, built from the counters of metrics.h and the queue
 * figures gathered for the scrape.
 */
#ifndef HONGYAN_METRICS_METRICS_STATUS_H
#define HONGYAN_METRICS_METRICS_STATUS_H

#include <time.h>

struct buf;
struct metrics_gauges;
struct metrics_oldest;

void metrics_status_render(struct buf *out, const char *hostname, const struct metrics_gauges *g,
                           const struct metrics_oldest *oldest);

#endif
