/*
 * What sendmail's modes share: sendmail.c (the command line, -t, -q),
 * sendmail_modes.c (-bs: SMTP on stdin and stdout; -bv: verify addresses).
 * Everything here runs with the invoking user's rights; the server checks
 * again whatever reaches the maildrop.
 */
#ifndef HONGYAN_CLI_SENDMAIL_H
#define HONGYAN_CLI_SENDMAIL_H

#include <stddef.h>

#include "lib/buf.h"
#include "queue/envelope.h"

struct config;

#define SENDMAIL_USAGE                                                                             \
    "sendmail [-t] [-i] [-f SENDER] [-F NAME] [-N DSN] [-R RET] [-V ENVID] [-bs | -bv | -bp | "    \
    "-q] [RCPT...]"

/* addr with "@myorigin" when it has no domain; caller frees. */
char *sendmail_qualify(const char *addr, const char *origin);
/*
 * An address checked as the SMTP server checks one, in its normal form;
 * NULL with a message on stderr naming what (sender, recipient). Caller frees.
 */
char *sendmail_checked(const char *addr, const char *origin, int allow_null, const char *what);
/* Appends the addresses of an address-list value (RFC 5322 3.4) to *list (strlist). */
void sendmail_addresses(const char *v, char ***list, size_t *n);
/* The access list key for the invoking user; 1 allowed, else a message on stderr. */
int sendmail_authorized(const struct config *cfg, const char *key, const char *what);
/*
 * Completes the headers of msg (CRLF) and hands it with e to
 * hongyan-postdrop. Returns the exit status: 0, EX_DATAERR or EX_TEMPFAIL.
 */
int sendmail_queue(const struct config *cfg, const struct envelope *e, const struct buf *msg,
                   const char *full_name);

/* -bs: an SMTP session on stdin/stdout; defaults (sender, DSN) from dflt. Exit status. */
int sendmail_session(const struct config *cfg, const struct envelope *dflt, unsigned notify);
/* -bv: prints how each address would be delivered; sends nothing. Exit status. */
int sendmail_verify(const struct config *cfg, const char *sender, char **addrs, int n);

#endif
