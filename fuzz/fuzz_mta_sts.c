/*
 * Fuzz target: the MTA-STS parsers (src/deliver/mta_sts_policy.c). The
 * first byte picks the parser: the policy body (RFC 8461 3.2), the TXT
 * record's id (3.1) or the cache file; what parses must hold its
 * invariants (mode known, max_age in range, a pattern list as long as
 * nmx, an id of 1 to 32 letters and digits), and every MX pattern must
 * match itself when it is not a wildcard.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mta_sts.h"

static void fuzz_check_policy(const struct mta_sts_policy *p)
{
    if (p->mode != MTA_STS_NONE && p->mode != MTA_STS_TESTING && p->mode != MTA_STS_ENFORCE)
        abort();
    if (p->max_age < 0 || p->max_age > MTA_STS_MAX_AGE_LIMIT)
        abort();
    if (!p->mx || p->mx[p->nmx] != NULL)
        abort();
    if (p->mode != MTA_STS_NONE && p->nmx == 0)
        abort();
    for (size_t i = 0; i < p->nmx; i++)
        if (p->mx[i][0] != '*' && !mta_sts_mx_match(p, p->mx[i]))
            abort();
}

static void fuzz_check_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 32)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % 3;
    /* A copy of exactly the input, so that reads past its end are caught. */
    size_t n = size - 1;
    char *text = malloc(n ? n : 1);
    memcpy(text, data + 1, n);
    if (which == 0) {
        struct mta_sts_policy p;
        struct buf err = BUF_INIT;
        if (mta_sts_policy_parse(text, n, &p, &err) == 0) {
            fuzz_check_policy(&p);
            struct mta_sts_policy *d = mta_sts_policy_dup(&p);
            fuzz_check_policy(d);
            mta_sts_policy_free(d);
            mta_sts_policy_clear(&p);
        } else if (err.len == 0) {
            abort(); /* a refusal always says why */
        }
        buf_free(&err);
    } else if (which == 1) {
        /* Records separated by NUL bytes, as the resolver hands them over. */
        char *s = malloc(n + 1);
        memcpy(s, text, n);
        s[n] = '\0';
        char *recs[16];
        size_t count = 0;
        for (char *p = s; count < 16 && p <= s + n; p += strlen(p) + 1)
            recs[count++] = p;
        char id[33];
        if (mta_sts_txt_id(recs, count, id) == 0)
            fuzz_check_id(id);
        free(s);
    } else {
        char id[33];
        time_t fetched;
        struct mta_sts_policy p;
        const char *body;
        size_t blen;
        if (mta_sts_cache_parse(text, n, id, &fetched, &p, &body, &blen) == 0) {
            fuzz_check_id(id);
            fuzz_check_policy(&p);
            if (body < text || body + blen != text + n)
                abort();
            mta_sts_policy_clear(&p);
        }
    }
    free(text);
    return 0;
}
