/*
 * The SMTP server session (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN). smtpd_session_start() is
 * declared in server/server.h; this header holds what the session's
 * neighbours (STARTTLS, AUTH) need to hook in.
 *
 * Shape (after OpenSMTPD): an explicit state, one table of commands each
 * with the states it is legal in, a check and a proceed; every state change
 * goes through one function that logs it at debug level.
 */
#ifndef HONGYAN_SMTPD_SESSION_H
#define HONGYAN_SMTPD_SESSION_H

#include "server/server.h"

enum smtpd_state {
    SMTPD_STATE_CONNECTED, /* greeting sent, no HELO/EHLO yet */
    SMTPD_STATE_HELO,      /* HELO/EHLO done, no transaction */
    SMTPD_STATE_MAIL,      /* MAIL accepted, no recipient yet */
    SMTPD_STATE_RCPT,      /* at least one recipient accepted */
    SMTPD_STATE_DATA,      /* reading the DATA body */
    SMTPD_STATE_BDAT,      /* reading the bytes of a BDAT chunk */
    SMTPD_STATE_BDAT_MORE, /* between BDAT chunks (RFC 3030) */
    SMTPD_STATE_COMMIT,    /* waiting for the spool to make the message durable */
    SMTPD_STATE_QUIT,      /* closing: output drains, then the session ends */
    SMTPD_STATE_COUNT
};

/* Command lines longer than this (CRLF included) get 500 5.5.6. */
#define SMTPD_LINE_MAX 2048

const char *smtpd_state_name(enum smtpd_state st);

#endif
