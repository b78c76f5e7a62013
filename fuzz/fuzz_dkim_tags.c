/*
 * Fuzz target: a DKIM-Signature tag list (RFC 6376 3.2, 3.5). The input is
 * parsed as a tag list, then verified as the value of a DKIM-Signature on a
 * small message, with keys answered at once from memory.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mailauth/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_keyfile *keys;

static void done(void *arg, const struct dkim_verify_result *res)
{
    int *called = arg;
    (*called)++;
    for (size_t i = 0; i < res->count; i++)
        if (res->sigs[i].reason == NULL || res->sigs[i].domain == NULL ||
            res->sigs[i].result == DKIM_NONE)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL) {
        keys = dkim_keyfile_new();
        dkim_keyfile_add(keys, "brisbane._domainkey.football.example.com",
                         "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
        dkim_keyfile_add(keys, "down._domainkey.football.example.com", NULL);
    }
    struct dkim_tags t;
    struct buf err = BUF_INIT;
    if (dkim_tags_parse(&t, (const char *)data, size, &err) == 0) {
        for (size_t i = 0; i < t.count; i++)
            if (t.tag[i].name[0] == '\0' || dkim_tags_get(&t, t.tag[i].name) == NULL)
                abort();
    } else if (err.len == 0) {
        abort();
    }
    dkim_tags_free(&t);
    buf_free(&err);

    struct buf msg = BUF_INIT;
    buf_puts(&msg, "DKIM-Signature: ");
    buf_append(&msg, data, size);
    buf_puts(&msg, "\r\nFrom: Joe <joe@football.example.com>\r\nSubject: hi\r\n\r\nHi.\r\n");
    int called = 0;
    struct txt_lookup lk = dkim_keyfile_lookup(keys);
    if (dkim_verify_start(msg.data, msg.len, 1528637909, &lk, done, &called) != NULL || called != 1)
        abort();
    buf_free(&msg);
    return 0;
}
