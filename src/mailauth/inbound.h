/*
 * The inbound mail-authentication stage: for a message received from an
 * unauthenticated client outside mynetworks, runs SPF on the MAIL FROM (or
 * HELO) identity, verifies every DKIM signature, then evaluates DMARC, all
 * asynchronously on the worker's loop; produces the Authentication-Results
 * field to prepend (forged ones with our authserv_id removed) and the
 * decision the smtpd_*_policy keys ask for.
 *
 * When it runs: smtpd calls it once per message, at the end of DATA or of
 * the last BDAT chunk, before the spool commit, when inbound_applies() says
 * so. Mail from mynetworks or from an authenticated client (submission) is
 * ours to sign, not to judge, and is left alone.
 *
 * Ownership: the request's strings are copied before inbound_start()
 * returns; its message must stay valid until the callback has run or the
 * check is cancelled, since the result's body points into it (a message
 * is never copied whole: it may be large, and many may be waiting). A
 * struct inbound_result handed to the callback is valid during the call
 * only.
 */
#ifndef HONGYAN_MAILAUTH_INBOUND_H
#define HONGYAN_MAILAUTH_INBOUND_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "config/config.h"
#include "mailauth/dmarc.h"

struct dns;

/* The policy keys, read once per configuration. */
struct inbound_settings {
    int spf_reject;   /* smtpd_spf_policy = reject */
    int dkim_verify;  /* smtpd_dkim_verify = yes */
    int dmarc_reject; /* smtpd_dmarc_policy = reject */
    /* Sized to what configuration loading accepts (config.h): copies are never cut. */
    char authserv_id[CONFIG_HOSTNAME_MAX + 1]; /* authserv_id */
    char receiver[CONFIG_HOSTNAME_MAX + 1];    /* myhostname, for SPF's %{r} */
    int dmarc_reporting; /* smtpd_dmarc_reporting: record evaluations for aggregate reports */
    char data_dir[CONFIG_DATA_DIR_MAX + 1]; /* data_directory, where they are recorded */
};
void inbound_settings_load(const struct config *cfg, struct inbound_settings *set);

/*
 * Whether a message from this client gets the inbound checks: not
 * authenticated, and not in mynetworks (whatever the listener). The caller
 * says whether the client is in mynetworks (smtpd_policy_mynetworks): that
 * test belongs to smtpd/, a layer above this one.
 */
int inbound_applies(int in_mynetworks, int authenticated);

struct inbound_request {
    const char *client_ip; /* text */
    const char *helo;
    const char *mailfrom; /* without <>; "" for the null sender */
    const char *queue_id; /* for the log, or NULL */
    const char *msg;      /* the message as received (CRLF), without our own Received: */
    size_t len;
    time_t now;
    /* The pct= draw (see dmarc.h); NULL: random. */
    unsigned (*random)(void *arg);
    void *random_arg;
};

enum inbound_verdict {
    INBOUND_ACCEPT,   /* queue it, with the header prepended */
    INBOUND_REJECT,   /* 5xx: code, status and text say it */
    INBOUND_TEMPFAIL, /* 4xx: a reject policy could not be decided */
};

struct inbound_result {
    enum inbound_verdict verdict;
    int code;           /* 550, 451 when not ACCEPT */
    const char *status; /* "5.7.23", "5.7.1", "4.7.24", "4.7.1" */
    const char *text;   /* why, for the reply */
    const char *header; /* "Authentication-Results: ...\r\n" to prepend */
    size_t header_len;
    /* The message to queue is msg then body: the header block without forged
     * Authentication-Results fields (with its blank line), then the body as received. */
    const char *msg;
    size_t msg_len;
    const char *body; /* points into the request's message */
    size_t body_len;
    size_t forged_removed;
    const char *summary; /* "spf=pass dkim=pass dmarc=pass", for the log */
};

typedef void (*inbound_cb)(void *arg, const struct inbound_result *res);
struct inbound_check;

/*
 * Starts the checks. cb runs exactly once unless the check is cancelled;
 * it may run before inbound_start() returns (when nothing needs DNS), and
 * then NULL is returned; otherwise the handle is valid until cb starts.
 * dns and set must outlive the check.
 */
struct inbound_check *inbound_start(struct dns *dns, const struct inbound_settings *set,
                                    const struct inbound_request *req, inbound_cb cb, void *arg);
/* Cancels a pending check; cb does not run. NULL does nothing. */
void inbound_cancel(struct inbound_check *chk);

#endif
