/*
 * The metrics_listen HTTP server: GET /metrics (Prometheus) and GET / (the
 * status page), served from smtpd's event loop. HTTP/1.1 subset: one
 * GET per connection (answered with Connection: close), the request head
 * capped in size and time, the queue figures gathered on the work queue so
 * that a scrape never stalls mail.
 */
#ifndef HONGYAN_METRICS_METRICS_HTTP_H
#define HONGYAN_METRICS_METRICS_HTTP_H

#include <stddef.h>

struct server;

/* Takes an accepted socket of the metrics listener; the connection owns fd. */
void metrics_http_accept(struct server *srv, int fd);

/*
 * Parses a request head (what came before the empty line). Returns the
 * HTTP status to answer with: 200 with *path set to "/metrics" or "/", or
 * 400, 404, 405, 505. Exposed for the fuzz target and unit tests.
 */
int metrics_http_parse(const char *head, size_t len, const char **path);

#endif
