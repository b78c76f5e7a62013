/*
 * The one parser of "host:port" as main.cf writes addresses: "host",
 * "host:port", "[host]", "[host]:port", "[ipv6:ADDR]:port" (Postfix's form),
 * and optionally a bare IPv6 address. Listeners, the DNS forwarder, next
 * hops and doctor's probes all read their addresses through it.
 */
#ifndef HONGYAN_LIB_HOSTPORT_H
#define HONGYAN_LIB_HOSTPORT_H

/* RFC 1035 2.3.4: a name has at most 253 octets; an IPv6 literal fewer. */
#define HOSTPORT_HOST_MAX 254

enum hostport_flags {
    HOSTPORT_BARE_IPV6 = 1 << 0, /* "2001:db8::1" alone is a host without a port */
};

struct hostport {
    char host[HOSTPORT_HOST_MAX]; /* brackets and an "ipv6:" prefix removed */
    char port[16];                /* as written ("587", "submission"); "" when none */
    int bracketed;                /* "[host]": Postfix's "no MX lookup" */
};

/*
 * Splits spec into out. -1 for an empty host, a missing ']', text after
 * ']' other than ":port", an unbracketed name with more than one ':' (an
 * IPv6 address must be bracketed unless HOSTPORT_BARE_IPV6), an empty port
 * after ':', or a part too long for out.
 */
int hostport_split(const char *spec, unsigned flags, struct hostport *out);

/*
 * A TCP port: 1 to 65535 in decimal, or a mail service name (smtp 25,
 * submission 587, smtps and submissions 465, lmtp 24). -1 for anything else.
 */
int hostport_port(const char *s);

#endif
