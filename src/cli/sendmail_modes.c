/*
 * sendmail -bs (an SMTP session on stdin and stdout, as Postfix's sendmail
 * runs smtpd for it: what Symfony Mailer and other applications speak) and
 * sendmail -bv (how each address would be delivered, sending nothing).
 * The session parses commands with the SMTP server's own parsers
 * (src/smtp/command.c) and queues each message as plain sendmail does,
 * through hongyan-postdrop: the same checks, the same uid in Received.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cli/sendmail.h"
#include "config/config.h"
#include "deliver/route.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "lib/xalloc.h"
#include "maps/maps.h"
#include "queue/resolve.h"
#include "smtp/command.h"

#define SENDMAIL_BS_LINE_MAX 65536
#define SENDMAIL_BS_ERRORS_MAX 20

/* One line of stdin without its LF or CRLF; -1 at end of input. *too_long when cut at max. */
static int sendmail_bs_line(struct buf *line, size_t max, int *too_long)
{
    buf_reset(line);
    *too_long = 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (line->len < max)
            buf_putc(line, (char)c);
        else
            *too_long = 1;
    }
    if (c == EOF && line->len == 0)
        return -1;
    if (line->len > 0 && line->data[line->len - 1] == '\r')
        line->data[--line->len] = '\0';
    return 0;
}

static void sendmail_bs_reply(int code, const char *status, const char *text)
{
    printf("%d %s %s\r\n", code, status, text);
    fflush(stdout);
}

struct sendmail_tx {
    struct envelope *e; /* NULL: no MAIL yet */
    size_t nrcpt;
};

static void sendmail_tx_reset(struct sendmail_tx *tx)
{
    envelope_free(tx->e);
    tx->e = NULL;
    tx->nrcpt = 0;
}

/* DATA: reads to the lone dot, unstuffing (RFC 5321 4.5.2); -1 at end of input. */
static int sendmail_bs_data(struct buf *msg, long long limit, int *too_big)
{
    struct buf line = BUF_INIT;
    int too_long, rc = -1;
    *too_big = 0;
    while (sendmail_bs_line(&line, SENDMAIL_BS_LINE_MAX, &too_long) == 0) {
        const char *l = buf_cstr(&line);
        if (strcmp(l, ".") == 0) {
            rc = 0;
            break;
        }
        if (l[0] == '.')
            l++;
        if (limit > 0 && (long long)(msg->len + strlen(l) + 2) > limit)
            *too_big = 1;
        if (!*too_big) {
            buf_puts(msg, l);
            buf_puts(msg, "\r\n");
        }
    }
    buf_free(&line);
    return rc;
}

int sendmail_session(const struct config *cfg, const struct envelope *dflt, unsigned notify)
{
    const char *host = config_get(cfg, "myhostname");
    const char *origin = config_get(cfg, "myorigin");
    long long limit = config_get_int(cfg, "message_size_limit");
    long long max_rcpts = config_get_int(cfg, "smtpd_recipient_limit");
    unsigned ext = SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN |
                   SMTP_EXT_UNQUALIFIED_SENDER;
    struct sendmail_tx tx = {NULL, 0};
    struct buf line = BUF_INIT;
    int errors = 0, too_long;
    printf("220 %s ESMTP %s\r\n", host, config_get(cfg, "mail_name"));
    fflush(stdout);
    while (errors < SENDMAIL_BS_ERRORS_MAX &&
           sendmail_bs_line(&line, SENDMAIL_BS_LINE_MAX, &too_long) == 0) {
        struct smtp_command cmd;
        struct smtp_reply rep = {0, NULL, NULL};
        if (too_long) {
            sendmail_bs_reply(500, "5.5.2", "Error: line too long");
            errors++;
            continue;
        }
        if (smtp_command_parse(line.data, line.len, &cmd, &rep) < 0) {
            sendmail_bs_reply(rep.code, rep.status, rep.text);
            errors++;
            continue;
        }
        switch (cmd.verb) {
        case SMTP_CMD_EHLO:
        case SMTP_CMD_HELO:
            if (smtp_helo_check(cmd.args, cmd.args_len, &rep) < 0) {
                sendmail_bs_reply(rep.code, rep.status, rep.text);
                errors++;
                break;
            }
            sendmail_tx_reset(&tx);
            if (cmd.verb == SMTP_CMD_HELO) {
                printf("250 %s\r\n", host);
            } else {
                printf("250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n250-8BITMIME\r\n"
                       "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 SMTPUTF8\r\n",
                       host, limit > 0 ? limit : 0);
            }
            fflush(stdout);
            break;
        case SMTP_CMD_MAIL: {
            struct smtp_mail mail;
            if (tx.e != NULL) {
                sendmail_bs_reply(503, "5.5.1", "Error: nested MAIL command");
                errors++;
                break;
            }
            if (smtp_mail_parse(cmd.args, cmd.args_len, ext,
                                limit > 0 ? (unsigned long long)limit : 0, &mail, &rep) < 0) {
                sendmail_bs_reply(rep.code, rep.status, rep.text);
                errors++;
                break;
            }
            tx.e = envelope_new();
            tx.e->arrival = time(NULL);
            free(tx.e->sender);
            tx.e->sender = sendmail_qualify(mail.from.addr, origin);
            tx.e->smtputf8 = mail.smtputf8;
            tx.e->body_8bit = mail.body == SMTP_BODY_8BITMIME || dflt->body_8bit;
            tx.e->ret = mail.ret ? (enum dsn_ret)mail.ret : dflt->ret;
            tx.e->envid = mail.envid[0] ? xstrdup(mail.envid)
                          : dflt->envid ? xstrdup(dflt->envid)
                                        : NULL;
            sendmail_bs_reply(250, "2.1.0", "Ok");
            break;
        }
        case SMTP_CMD_RCPT: {
            struct smtp_rcpt rcpt;
            if (tx.e == NULL) {
                sendmail_bs_reply(503, "5.5.1", "Error: need MAIL command");
                errors++;
                break;
            }
            if (smtp_rcpt_parse(cmd.args, cmd.args_len, ext, tx.e->smtputf8, &rcpt, &rep) < 0) {
                sendmail_bs_reply(rep.code, rep.status, rep.text);
                errors++;
                break;
            }
            if (max_rcpts > 0 && (long long)tx.nrcpt >= max_rcpts) {
                sendmail_bs_reply(452, "4.5.3", "Error: too many recipients");
                break;
            }
            char *q = sendmail_qualify(rcpt.to.addr, origin);
            struct envelope_rcpt *r = envelope_add_rcpt(tx.e, q);
            free(q);
            r->notify = rcpt.notify ? rcpt.notify : notify;
            r->orcpt = rcpt.orcpt[0] ? xstrdup(rcpt.orcpt) : NULL;
            tx.nrcpt++;
            sendmail_bs_reply(250, "2.1.5", "Ok");
            break;
        }
        case SMTP_CMD_DATA: {
            if (tx.e == NULL || tx.nrcpt == 0) {
                sendmail_bs_reply(503, "5.5.1",
                                  tx.e ? "Error: need RCPT command" : "Error: need MAIL command");
                errors++;
                break;
            }
            printf("354 End data with <CR><LF>.<CR><LF>\r\n");
            fflush(stdout);
            struct buf msg = BUF_INIT;
            int too_big;
            if (sendmail_bs_data(&msg, limit, &too_big) < 0) {
                buf_free(&msg);
                sendmail_tx_reset(&tx);
                goto out; /* the input ended inside DATA: nothing is queued */
            }
            if (too_big) {
                sendmail_bs_reply(552, "5.3.4", "Error: message file too big");
            } else {
                int rc = sendmail_queue(cfg, tx.e, &msg, NULL);
                if (rc == 0)
                    sendmail_bs_reply(250, "2.0.0", "Ok: queued");
                else
                    sendmail_bs_reply(451, "4.3.0", "Error: queue file write error");
            }
            buf_free(&msg);
            sendmail_tx_reset(&tx);
            break;
        }
        case SMTP_CMD_RSET:
            sendmail_tx_reset(&tx);
            sendmail_bs_reply(250, "2.0.0", "Ok");
            break;
        case SMTP_CMD_NOOP:
            sendmail_bs_reply(250, "2.0.0", "Ok");
            break;
        case SMTP_CMD_QUIT:
            sendmail_bs_reply(221, "2.0.0", "Bye");
            goto out;
        case SMTP_CMD_VRFY:
            sendmail_bs_reply(502, "5.5.1", "VRFY command is disabled");
            break;
        case SMTP_CMD_UNKNOWN:
            sendmail_bs_reply(500, "5.5.2", "Error: command not recognized");
            errors++;
            break;
        default:
            sendmail_bs_reply(502, "5.5.1", "Error: command not implemented");
            errors++;
            break;
        }
    }
    if (errors >= SENDMAIL_BS_ERRORS_MAX)
        sendmail_bs_reply(421, "4.7.0", "Error: too many errors");
out:
    sendmail_tx_reset(&tx);
    buf_free(&line);
    return 0;
}

/*
 * Route tables for -bv: the two that decide a next hop. Passwords
 * (smtp_sasl_password_maps) are never read here.
 */
static int sendmail_bv_lookup(void *ctx, const char *table, const char *key, struct buf *value,
                              struct buf *err)
{
    const struct config *cfg = ctx;
    if (strcmp(table, "transport_maps") != 0 &&
        strcmp(table, "sender_dependent_relayhost_maps") != 0)
        return MAP_NOTFOUND;
    struct map_list *l = map_list_open(config_get(cfg, table), err);
    if (l == NULL)
        return MAP_TEMPFAIL;
    int r = (int)map_list_lookup(l, key, value, err);
    map_list_free(l);
    return r;
}

/* One final recipient: prints its route; 0 deliverable, EX_NOUSER, or EX_TEMPFAIL. */
static int sendmail_bv_route(const struct config *cfg, const char *sender, const char *shown,
                             const struct resolved_rcpt *item)
{
    struct route_tables tables = {.lookup = sendmail_bv_lookup, .ctx = (void *)cfg};
    enum route_class cls = item->cls != RESOLVE_LOCAL ? ROUTE_CLASS_REMOTE
                           : item->virtual_domain     ? ROUTE_CLASS_VIRTUAL
                                                      : ROUTE_CLASS_MYDEST;
    struct route r;
    struct buf err = BUF_INIT;
    int rc = 0;
    if (route_decide_class(cfg, &tables, sender, item->address, cls, &r, &err) != ROUTE_FOUND) {
        printf("%s: deferred: %s\n", shown, buf_cstr(&err));
        buf_free(&err);
        return EX_TEMPFAIL;
    }
    switch (r.kind) {
    case ROUTE_LOCAL:
        printf("%s: deliverable: mailbox %s\n", shown, item->mailbox ? item->mailbox : "(none)");
        break;
    case ROUTE_SMTP:
        printf("%s: deliverable: relay=%s, port %d (%s%s)\n", shown, r.host, r.port, r.source,
               r.mx ? ", MX lookup" : "");
        break;
    case ROUTE_LMTP:
        printf("%s: deliverable: lmtp %s (%s)\n", shown, r.path ? r.path : r.nexthop, r.source);
        break;
    case ROUTE_DISCARD:
        printf("%s: deliverable: discarded (%s)\n", shown, r.source);
        break;
    case ROUTE_ERROR:
        printf("%s: undeliverable: %s\n", shown, r.text ? r.text : "transport error");
        rc = EX_NOUSER;
        break;
    case ROUTE_RETRY:
        printf("%s: deferred: %s\n", shown, r.text ? r.text : "transport retry");
        rc = EX_TEMPFAIL;
        break;
    }
    route_clear(&r);
    buf_free(&err);
    return rc;
}

int sendmail_verify(const struct config *cfg, const char *sender, char **addrs, int n)
{
    struct buf err = BUF_INIT;
    struct resolver *res = resolver_new(cfg, &err);
    if (res == NULL) {
        fprintf(stderr, "sendmail: -bv: %s\n", buf_cstr(&err));
        buf_free(&err);
        return EX_TEMPFAIL;
    }
    char **list = xcalloc(1, sizeof *list);
    size_t nl = 0;
    for (int i = 0; i < n; i++)
        sendmail_addresses(addrs[i], &list, &nl);
    int worst = nl == 0 ? EX_USAGE : 0;
    if (nl == 0)
        fprintf(stderr, "sendmail: -bv: no addresses given\n");
    for (size_t i = 0; i < nl; i++) {
        char *a = sendmail_checked(list[i], config_get(cfg, "myorigin"), 0, "recipient");
        if (a == NULL) {
            worst = worst ? worst : EX_USAGE;
            continue;
        }
        struct resolved_list rl = {0};
        buf_reset(&err);
        enum map_result mr = resolver_expand(res, a, &rl, &err);
        int rc = 0;
        if (mr == MAP_TEMPFAIL) {
            printf("%s: deferred: %s\n", a, buf_cstr(&err));
            rc = EX_TEMPFAIL;
        } else if (mr == MAP_NOTFOUND || rl.count == 0) {
            printf("%s: undeliverable: %s\n", a, err.len ? buf_cstr(&err) : "unknown user");
            rc = EX_NOUSER;
        }
        for (size_t k = 0; mr == MAP_FOUND && k < rl.count; k++) {
            char *shown = strcmp(rl.items[k].address, a) == 0
                              ? xstrdup(a)
                              : xasprintf("%s -> %s", a, rl.items[k].address);
            int r = sendmail_bv_route(cfg, sender, shown, &rl.items[k]);
            rc = rc ? rc : r;
            free(shown);
        }
        resolved_list_free(&rl);
        free(a);
        worst = worst ? worst : rc;
    }
    fflush(stdout);
    strlist_free(list);
    resolver_free(res);
    buf_free(&err);
    return worst;
}
