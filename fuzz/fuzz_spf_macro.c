/* Fuzz target: SPF macro expansion (RFC 7208 7) in both modes, fixed context. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

static const struct spf_macro_ctx ctx4 = {"strong-bad@email.example.com",
                                          "strong-bad",
                                          "email.example.com",
                                          "email.example.com",
                                          "192.0.2.3",
                                          "mx.example.org",
                                          "mx.example.net",
                                          1700000000,
                                          "mx.example.org"};
static const struct spf_macro_ctx ctx6 = {"~jack&jill=up@example.com",
                                          "~jack&jill=up",
                                          "example.com",
                                          "sub.example.com",
                                          "2001:db8::cb01",
                                          "helo",
                                          NULL,
                                          0,
                                          NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (int k = 0; k < 4; k++) {
        struct buf out = BUF_INIT;
        int rc = spf_macro_expand(text, k & 1 ? &ctx6 : &ctx4,
                                  k & 2 ? SPF_MACRO_EXPLAIN : SPF_MACRO_DOMAIN, &out);
        /* Only the context without a validated name may ask for %{p}. */
        if (rc == SPF_MACRO_NEED_P && !(k & 1))
            abort();
        if (rc == SPF_MACRO_NEED_P && !spf_macro_uses_p(text))
            abort();
        buf_free(&out);
    }
    free(text);
    return 0;
}
