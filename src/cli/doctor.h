/*
 * doctor: the parts of `hongyan doctor` (src/cli/doctor*.c) that other files
 * and the unit tests reach: which interface address is the public one, the
 * zone-file lines to publish, JSON strings, host:port parsing, and the
 * blocking port-25 probe of the network check (src/cli/doctor_net.c).
 *
 * Ownership: everything appends to a caller's struct buf; nothing is kept.
 */
#ifndef HONGYAN_CLI_DOCTOR_H
#define HONGYAN_CLI_DOCTOR_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/buf.h"

enum doctor_status { DOCTOR_OK, DOCTOR_WARN, DOCTOR_FAIL };
/* "ok", "warn", "FAIL": the words of the report. */
const char *doctor_status_str(enum doctor_status s);

struct config;
struct dns;

/* One line of the report; the caller frees the buffers and lists. */
struct doctor_check {
    const char *name;
    enum doctor_status status;
    struct buf found, expected;
    char **records; /* zone-file lines, heap */
    size_t nrecords;
    char **advice; /* sentences, heap */
    size_t nadvice;
};

/* Appends s (heap, taken) to the list *list of *n strings. */
void doctor_push(char ***list, size_t *n, char *s);
/* Raises c's status to st and adds what was found; expected is kept from the first call. */
void doctor_set(struct doctor_check *c, enum doctor_status st, const char *found,
                const char *expected);
/* Adds a zone-file line to publish; takes line (heap). */
void doctor_record(struct doctor_check *c, char *line);
/* Adds a sentence of advice; takes sentence (heap). */
void doctor_advise(struct doctor_check *c, char *sentence);

/*
 * The mta-sts check (src/cli/doctor_sts.c, RFC 8461): DOMAIN's _mta-sts TXT
 * record, its policy file fetched over HTTPS as senders do, and whether the
 * domain's MX hosts match it. Blocking, bounded.
 */
void doctor_check_mta_sts(struct doctor_check *c, struct dns *dns, const struct config *cfg,
                          const char *domain);
/* The tlsrpt check (RFC 8460): one v=TLSRPTv1 record at _smtp._tls.DOMAIN with a rua. */
void doctor_check_tlsrpt(struct doctor_check *c, struct dns *dns, const char *domain);

/*
 * 1 when addr (text) is a global unicast address the world can reach: not
 * unspecified, loopback, private (RFC 1918, ULA fc00::/7), link-local,
 * shared/CGNAT (RFC 6598), documentation (RFC 5737, RFC 3849, RFC 9637),
 * benchmarking, multicast or reserved; 0 otherwise and for non-addresses.
 */
int doctor_addr_is_public(const char *addr);
/* The first public address in addrs, IPv4 before IPv6 (list order otherwise), or NULL. */
const char *doctor_pick_public(char *const *addrs, size_t n);

/*
 * The zone-file line publishing a TXT record: NAME. IN TXT "..." with the
 * text cut into character-strings of at most 255 octets (RFC 1035 3.3),
 * '"' and '\' escaped. Appended to out, no newline.
 */
void doctor_txt_line(const char *name, const char *txt, struct buf *out);
/* s as a JSON string, quotes included, control characters escaped (RFC 8259 7). */
void doctor_json_string(const char *s, struct buf *out);

/*
 * "host", "host:port", "[host]", "[host]:port", "[2001:db8::1]:587" (and
 * a bare IPv6 address). host gets the name without brackets; *port the
 * port or default_port; *bracketed whether the name was in brackets (no MX
 * lookup, as Postfix's relayhost). 0, or -1 when malformed.
 */
int doctor_parse_hostport(const char *s, int default_port, struct buf *host, int *port,
                          int *bracketed);

/* ---- network (doctor_net.c): blocking, each step bounded by timeout_ms ---- */

/*
 * Connects to ip:port and reads the greeting; sends QUIT. 0 when a 2xx
 * greeting came (detail: the greeting line); -1 otherwise, detail saying
 * what happened ("connection refused", "timed out", the reply).
 */
int doctor_smtp_probe(const char *ip, int port, int timeout_ms, struct buf *detail);

#endif
