/*
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) in
 * front of the SMTP listeners, as Postfix's smtpd_upstream_proxy_protocol
 * = haproxy: the load balancer's first bytes name the real client, and
 * that address is the client for everything after (logs, Received:,
 * mynetworks, limits, SPF). A v2 LOCAL header (health checks) or a v1
 * "UNKNOWN" keeps the real peer; no valid header within
 * smtpd_upstream_proxy_timeout closes the connection without a greeting.
 */
#ifndef HONGYAN_DAEMON_PROXY_H
#define HONGYAN_DAEMON_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#include "server/server.h"

/* The longest header read: v1 is at most 107 bytes; v2 carries TLVs after the addresses. */
#define PROXY_HEADER_MAX 4096

enum proxy_parse_result {
    PROXY_PARSE_MORE,  /* a valid beginning: read more */
    PROXY_PARSE_OK,    /* a whole header of *used bytes */
    PROXY_PARSE_LOCAL, /* a whole header that names no client: keep the real peer */
    PROXY_PARSE_BAD,   /* not a PROXY header; *why says what is wrong */
};

/*
 * Parses the start of a connection. On PROXY_PARSE_OK, *src holds the
 * client's address and port; on OK and LOCAL, *used is the header's length.
 */
enum proxy_parse_result proxy_parse(const unsigned char *data, size_t len, size_t *used,
                                    struct sockaddr_storage *src, socklen_t *src_len,
                                    const char **why);

/* Called with the client's address once the header is read; owns fd. */
typedef void (*proxy_done_fn)(void *arg, int fd, const struct sockaddr *peer, socklen_t peer_len,
                              enum listener_kind kind);

/*
 * Reads the header from fd (without consuming a byte past it) on the loop,
 * then calls done. On a timeout or a bad header the connection is logged,
 * counted and closed, and done is not called.
 */
void proxy_accept(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peer_len,
                  enum listener_kind kind, proxy_done_fn done, void *arg);

/* Connections waiting for their header now (for limits and shutdown). */
int proxy_pending(void);
/* Closes every connection still waiting for its header (worker exit). */
void proxy_drop_all(void);

#endif
