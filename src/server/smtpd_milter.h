/*
 * What the SMTP server tells its milters (smtpd_milters) beyond the events
 * themselves: the Sendmail macros, with Postfix's names and values, and
 * how the edits a filter asked for land in the queued envelope. The
 * conversation is milter/milter.h; the session's hooks are in
 * smtpd/session_milter.c. Also used for non_smtpd_milters
 * (qmgr/pickup_milter.c), which is why it sits in server/, below both.
 */
#ifndef HONGYAN_SERVER_SMTPD_MILTER_H
#define HONGYAN_SERVER_SMTPD_MILTER_H

#include <sys/socket.h>

#include "milter/milter.h"
#include "queue/envelope.h"

struct config;
struct resolver;

/*
 * The values the macros come from. The owner keeps the pointers current
 * before each event (NULL: the macro is not sent, as Postfix does).
 */
struct smtpd_milter_info {
    const char *myhostname;  /* j */
    const char *daemon_name; /* {daemon_name}: milter_macro_daemon_name */
    const char *version;     /* v: milter_macro_v */
    const char *client_addr, *client_name, *client_ptr;
    unsigned client_port;
    char daemon_addr[64];
    unsigned daemon_port;
    const char *helo;
    const char *queue_id;                /* i */
    const char *auth_type, *auth_authen; /* {auth_type} {auth_authen} {auth_author} */
    const char *mail_addr;               /* {mail_addr} */
    const char *rcpt_addr;               /* {rcpt_addr} */
    const char *rcpt_mailer, *rcpt_host;
    const char *tls_version, *cipher;
    int cipher_bits;
    char forged[400]; /* the _ macro, built on demand */
    char bits[16];
    char port[16];
};

/* The fixed part: names from cfg, the client's address and port, ours from fd. */
void smtpd_milter_info_init(struct smtpd_milter_info *in, const struct config *cfg,
                            const char *client_addr, const struct sockaddr_storage *peer, int fd);

/* The milter_macro_fn for a struct smtpd_milter_info. */
const char *smtpd_milter_macro(void *info, const char *name);

/*
 * Applies the envelope edits of msg (change sender, add and delete
 * recipients) to env; added local recipients are expanded through res
 * (aliases) as at RCPT time. queue_id is for the log.
 */
void smtpd_milter_apply_envelope(const struct milter_msg *msg, struct envelope *env,
                                 struct resolver *res, const char *queue_id);

/* The argument list of MAIL or RCPT for the filters: "<addr>", then the ESMTP parameters. */
char **smtpd_milter_argv(const char *addr, const char *args, size_t len);

/* The stage's name in log lines: CONNECT, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE. */
const char *smtpd_milter_where(char ev);

/*
 * Postfix's line: "QUEUEID: milter-reject: MAIL from host[addr]: 550 ...;
 * from=<...> to=<...> proto=ESMTP helo=<...>" (from, to may be NULL).
 */
void smtpd_milter_log(const char *queue_id, const char *action, const char *where, const char *host,
                      const char *addr, const char *text, const char *from, const char *to,
                      const char *proto, const char *helo);

#endif
