/*
 * doctor_int: what the parts of `hongyan doctor` share: the run's state,
 * the checks each part implements and the small helpers of doctor.c.
 * doctor.c runs the checks and prints; doctor_dns.c has A/AAAA, MX and PTR;
 * doctor_auth.c SPF, DKIM and DMARC; doctor_tls.c TLSA, MTA-STS and
 * TLSRPT; doctor_net.c the port-25 and relay checks.
 */
#ifndef HONGYAN_CLI_DOCTOR_INT_H
#define HONGYAN_CLI_DOCTOR_INT_H

#include <stddef.h>

#include "cli/doctor.h"
#include "lib/buf.h"

struct dns_answer;
struct route;

/* Short: a probe that hangs is a blocked port, and the operator is waiting. */
#define DOCTOR_NET_TIMEOUT_MS 5000
#define DOCTOR_DNS_TIMEOUT_MS 4000
#define DOCTOR_TEMPFAIL "could not check: DNS temporary failure"

enum {
    CHK_A,
    CHK_MX,
    CHK_PTR,
    CHK_SPF,
    CHK_DKIM,
    CHK_DMARC,
    CHK_TLSA,
    CHK_STS,
    CHK_TLSRPT,
    CHK_NET,
    CHK_COUNT
};

struct doctor {
    struct config *cfg;
    char *domain;
    const char *myhostname;
    const char *resolver;
    struct dns *dns;
    char *public_addr; /* NULL: unknown */
    const char *public_source;
    const char *probe;
    const char *relayhost; /* "" when unset */
    struct doctor_check chk[CHK_COUNT];
};

/* Says the public address is unknown and how to give it. */
extern const char *const doctor_no_public;

/* A blocking query through the run's resolver; the caller frees the answer. */
struct dns_answer *doctor_query(struct doctor *d, const char *name, int type);
/* 1 when a and b are the same IPv4 or IPv6 address (texts may differ). */
int doctor_same_addr(const char *a, const char *b);
/* 1 when s is an IPv4 or IPv6 address literal. */
int doctor_is_ip(const char *s);
/* 1 when address text a is IPv6. */
int doctor_is_v6(const char *a);
/*
 * The A/AAAA addresses of name (name itself when it is an address),
 * *tempfail when either lookup failed for now. Free with doctor_free_list().
 */
char **doctor_addrs(struct doctor *d, const char *name, int *tempfail, size_t *n);
void doctor_free_list(char **list, size_t n);
/* Appends the list to out, comma-separated. */
void doctor_join(char *const *list, size_t n, struct buf *out);
/* The zone-file A or AAAA line for name (a placeholder when addr is NULL); caller frees. */
char *doctor_addr_line(const char *name, const char *addr);

/* Each check fills c: status, what was found and expected, lines, advice. */
void doctor_check_a(struct doctor *d, struct doctor_check *c);                           /* dns */
void doctor_check_mx(struct doctor *d, struct doctor_check *c, const char *relay_host);  /* dns */
void doctor_check_ptr(struct doctor *d, struct doctor_check *c);                         /* dns */
void doctor_check_spf(struct doctor *d, struct doctor_check *c, const char *relay_host); /* auth */
void doctor_check_dkim(struct doctor *d, struct doctor_check *c);                        /* auth */
void doctor_check_dmarc(struct doctor *d, struct doctor_check *c);                       /* auth */
void doctor_check_tlsa(struct doctor *d, struct doctor_check *c);                        /* tls */
void doctor_check_port25(struct doctor *d, struct doctor_check *c);                      /* net */
void doctor_check_relay(struct doctor *d, struct doctor_check *c, const struct route *rt); /* net */

#endif
