/*
 * The one TXT-lookup seam that DKIM key lookups and DMARC policy lookups
 * share: the DNS layer on the event loop in the server (txt_dns_lookup), a
 * file of records for conformance corpora (dkim_keyfile_lookup), a fake in
 * unit tests. Each caller maps the four answers to its own RFC's words.
 */
#ifndef HONGYAN_DNS_TXT_H
#define HONGYAN_DNS_TXT_H

#include <stddef.h>

enum txt_status {
    TXT_FOUND,     /* txt[0..ntxt) are the records, each one's strings joined */
    TXT_NOTFOUND,  /* NXDOMAIN, or the name has no TXT record */
    TXT_TEMPFAIL,  /* SERVFAIL, timeout: try later */
    TXT_MALFORMED, /* an answer that does not parse: DKIM says no key, DMARC try later */
};

/* Called once per lookup, possibly before lookup() returns; txt is valid during the call only. */
typedef void (*txt_done_fn)(void *done_arg, enum txt_status st, const char *const *txt,
                            size_t ntxt);

struct txt_lookup {
    /* Asks for the TXT records at name. A handle for cancel(), or NULL when done() has run. */
    void *(*lookup)(void *arg, const char *name, txt_done_fn done, void *done_arg);
    /* Stops a pending lookup (either kind): done() will not run. NULL if lookups always
     * answer at once. */
    void (*cancel)(void *arg, void *handle);
    void *arg;
    /*
     * Optional (NULL: never asked; DMARC then never applies np=): whether
     * name exists, i.e. is not NXDOMAIN or NODATA for MX, A and AAAA alike
     * (RFC 9091 2.1); a temporary failure counts as existing. done() runs
     * once; a handle for cancel(), or NULL when done() has run.
     */
    void *(*exists)(void *arg, const char *name, void (*done)(void *done_arg, int exists),
                    void *done_arg);
};

/* Lookups through the DNS layer (dns.h), asynchronous on its loop; dns outlives every lookup. */
struct dns;
struct txt_lookup txt_dns_lookup(struct dns *dns);

#endif
