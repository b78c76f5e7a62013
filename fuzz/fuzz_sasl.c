/*
 * Fuzz target: the SASL PLAIN/LOGIN state machine and strict base64 decoder
 * (src/smtpd/sasl.c). Input: a first byte choosing the mechanism and
 * whether the first line is an initial response, then lines separated by LF
 * fed as client responses.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "smtpd/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const char *mechs[] = {"PLAIN", "LOGIN", "login", "CRAM-MD5"};
    const char *mech = mechs[data[0] & 3];
    int with_initial = (data[0] >> 2) & 1;
    data++;
    size--;

    /* The whole input through the decoder on its own, with a small cap. */
    unsigned char out[64];
    long n = base64_decode((const char *)data, size, BASE64_CANONICAL, out, sizeof out);
    if (n > (long)sizeof out)
        abort();

    struct sasl *s = sasl_new();
    const uint8_t *p = data, *end = data + size;
    enum sasl_status st;
    char *line = NULL;
    if (with_initial) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line = malloc(len + 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        st = sasl_start(s, mech, line);
        free(line);
    } else {
        st = sasl_start(s, mech, NULL);
    }
    while (st == SASL_CHALLENGE && p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        st = sasl_step(s, (const char *)p, len);
        p += len + (nl ? 1 : 0);
    }
    if (st == SASL_CHECK) {
        size_t ul = strlen(sasl_user(s)), pl = strlen(sasl_password(s));
        if (ul == 0 || ul > SASL_FIELD_MAX || pl > SASL_FIELD_MAX)
            abort();
    }
    if (st != SASL_CHALLENGE && st != SASL_CHECK && sasl_status_reply(st)[0] == '\0')
        abort();
    sasl_free(s);
    return 0;
}
