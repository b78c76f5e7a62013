/*
 * The Postfix parameter names hongyan knows without implementing them, and
 * why (config_keys.h). The table itself is data: postfix_params.def, one
 * line per Postfix 3.7 parameter with its class in one word.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_keys.h"

/* Reasons, by the id the .def file names. */
#define PF_REASON_NONE NULL
#define PF_REASON_RESTRICTIONS                                                                     \
    "this restriction-list option is not implemented; the lists would apply in their usual "       \
    "order (docs/smtpd.md, Restrictions)"
#define PF_REASON_MILTER "this milter option is not implemented; mail would pass without it"
#define PF_REASON_CONTENT                                                                          \
    "content inspection (header/body checks, content filters) is not implemented; mail would "     \
    "pass unfiltered"
#define PF_REASON_REWRITE                                                                          \
    "this address rewriting, copying or recipient table is not implemented; addresses would be "   \
    "accepted and sent as they are"
#define PF_REASON_TRANSPORT                                                                        \
    "this delivery route is not implemented; mail would be delivered elsewhere than it says"
#define PF_REASON_SASL                                                                             \
    "hongyan checks AUTH itself against smtpd_sasl_users and logs in to relays with "              \
    "smtp_sasl_password_maps; it has no Cyrus or Dovecot SASL and not this option"
#define PF_REASON_PROXY "the HAProxy protocol is not implemented; client addresses would be wrong"
#define PF_REASON_LMTP_TLS "hongyan's LMTP client uses neither TLS nor AUTH"
#define PF_REASON_NOT_IMPLEMENTED "not implemented; ignoring it could change security or delivery"
#define PF_REASON_LOG "hongyan's logging is fixed (maillog_file and stderr, syslog_name)"
#define PF_REASON_MASTER                                                                           \
    "a service that runs only when master.cf enables it; hongyan has no master.cf"
#define PF_REASON_SCHEDULER "queue scheduler tuning; hongyan's queue manager schedules by itself"
#define PF_REASON_LAYOUT "Postfix's installation layout; hongyan is one binary"
#define PF_REASON_PROCESS "tuning of Postfix's daemons, caches or tables; not applicable"
#define PF_REASON_COMPAT "a compatibility setting with no effect on hongyan"
#define PF_REASON_NO_LOCAL                                                                         \
    "hongyan has no local(8) delivery agent: local mail goes to Maildir or mailbox_transport"
#define PF_REASON_FLUSH "hongyan has no ETRN or fast flush service"
#define PF_REASON_XCLIENT "hongyan offers and sends no XCLIENT or XFORWARD"
#define PF_REASON_RESTRICT_PARAM                                                                   \
    "used only by restriction features hongyan does not have (address verification, reject "       \
    "footers, the restriction words docs/smtpd.md lists as unsupported)"
#define PF_REASON_FIXED "hongyan's behaviour here is fixed (as Postfix's default)"

#define PF(name, class, reason) {name, CONFIG_PF_##class, PF_REASON_##reason},

const struct config_postfix_param config_postfix_params[] = {
#include "config/postfix_params.def"
};

const size_t config_postfix_param_count =
    sizeof config_postfix_params / sizeof config_postfix_params[0];

const struct config_postfix_param *config_postfix_param(const char *name)
{
    for (size_t i = 0; i < config_postfix_param_count; i++)
        if (strcmp(config_postfix_params[i].name, name) == 0)
            return &config_postfix_params[i];
    return NULL;
}

/* Edit distance with a cap: names are short (< 64), beyond that they are not typos. */
static size_t config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

const char *config_key_suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < config_key_count + config_postfix_param_count; i++) {
        const char *cand = i < config_key_count ? config_keys[i].name
                                                : config_postfix_params[i - config_key_count].name;
        size_t d = config_edit_distance(name, cand);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    /* A third of the name may be wrong: "relay_host", "mydomian", "smtp_tls_security". */
    size_t allowed = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
    return best_d <= allowed ? best : NULL;
}
