/*
 * Builds a server generation (server/server.h) from the configuration: the
 * one place that sees every module a generation is made of, so it lives in
 * the top layer and the layers below only take references and release them.
 */
#include "server/server.h"

#include <string.h>

#include "config/config.h"
#include "ipc/keeper_client.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "milter/milter.h"
#include "queue/resolve.h"
#include "smtpd/restrict.h"
#include "tls/tls.h"

struct server_gen *server_gen_new(const char *config_path, struct config *cfg, int smtp_server,
                                  struct buf *err)
{
    struct server_gen *gen = xcalloc(1, sizeof *gen);
    gen->refs = 1;
    gen->restrict_conf_free = restrict_conf_free;
    gen->cfg = cfg ? cfg : config_load(config_path, err);
    if (gen->cfg == NULL)
        goto fail;
    gen->resolver = resolver_new(gen->cfg, err);
    if (gen->resolver == NULL)
        goto fail;
    /*
     * A broken key does not stop the server (mail must still flow) nor the
     * other domains' signing; it is logged now and with every message that
     * goes out unsigned because of it.
     */
    struct buf derr = BUF_INIT;
    /*
     * With a keeper (the server), asking it for the key list also has it
     * re-read main.cf and its keys, and make the self-signed TLS pair if it
     * is due, before tls_server_new reads that certificate.
     */
    struct keeper_client *keeper = keeper_client_default();
    gen->dkim =
        keeper ? dkim_signer_from_keeper(keeper, &derr) : dkim_signer_from_config(gen->cfg, &derr);
    if (derr.len)
        log_error("DKIM signing disabled for a domain: %s", buf_cstr(&derr));
    buf_free(&derr);
    if (!smtp_server)
        goto milters; /* delivery: no TLS server, no restrictions; the keeper refuses it TLS_SIGN */
    /* STARTTLS and smtps (RFC 3207, RFC 8314); the key stays with the keeper. */
    gen->tls = tls_server_new(gen->cfg, err);
    if (gen->tls == NULL)
        goto fail;
    /* A restriction typo is said now (start, reload); that stage answers 451 4.3.5. */
    struct buf rwarn = BUF_INIT;
    restrict_conf_check(gen->cfg, &rwarn);
    for (char *line = rwarn.data, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        log_warning("%s", line);
    }
    buf_free(&rwarn);
milters:
    gen->smtpd_milters = milter_conf_load(gen->cfg, "smtpd_milters", err);
    if (gen->smtpd_milters == NULL)
        goto fail;
    gen->non_smtpd_milters = milter_conf_load(gen->cfg, "non_smtpd_milters", err);
    if (gen->non_smtpd_milters == NULL)
        goto fail;
    return gen;
fail:
    server_gen_unref(gen);
    return NULL;
}
