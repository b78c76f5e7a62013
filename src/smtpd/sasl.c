/*
 * SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) for the
 * SMTP server, without I/O; see sasl.h. Everything the client sends is
 * base64 checked strictly and bounded before it is looked at.
 */
#include "smtpd/sasl.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/util.h"
#include "lib/xalloc.h"

enum sasl_state {
    SASL_IDLE,
    SASL_PLAIN_WAIT, /* sent "334 ", waiting for the PLAIN message */
    SASL_LOGIN_USER, /* sent "334 VXNlcm5hbWU6" (Username:) */
    SASL_LOGIN_PASS, /* sent "334 UGFzc3dvcmQ6" (Password:) */
    SASL_DONE,
};

enum sasl_mech {
    SASL_MECH_NONE,
    SASL_MECH_PLAIN,
    SASL_MECH_LOGIN,
};

struct sasl {
    enum sasl_state state;
    enum sasl_mech mech;
    const char *challenge;
    char user[SASL_FIELD_MAX + 1];
    char pass[SASL_FIELD_MAX + 1];
};

/* The decoded PLAIN message: three fields of 255 and two NULs. */
#define SASL_PLAIN_MAX (3 * SASL_FIELD_MAX + 2)

static void sasl_wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

struct sasl *sasl_new(void)
{
    return xcalloc(1, sizeof(struct sasl));
}

void sasl_reset(struct sasl *s)
{
    sasl_wipe(s, sizeof *s);
    s->state = SASL_IDLE;
    s->mech = SASL_MECH_NONE;
    s->challenge = "";
}

void sasl_free(struct sasl *s)
{
    if (s == NULL)
        return;
    sasl_wipe(s, sizeof *s);
    free(s);
}


/*
 * Decodes one client response into out (NUL-terminated, at most max bytes
 * of data); -1 on bad base64 or too long. The "=" form of an empty
 * response is only valid as an initial response (RFC 4954 section 4) and
 * is handled by the caller.
 */
static long sasl_decode(const char *line, size_t len, unsigned char *out, size_t max)
{
    if (len > SASL_LINE_MAX)
        return -1;
    long n = base64_decode(line, len, BASE64_CANONICAL, out, max);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

/* A single field (LOGIN user or password): no NUL, at most 255 octets. */
static enum sasl_status sasl_take_field(const char *line, size_t len, char *dst, int allow_empty)
{
    unsigned char tmp[SASL_FIELD_MAX + 1];
    long n = sasl_decode(line, len, tmp, SASL_FIELD_MAX);
    enum sasl_status st = SASL_ERR_SYNTAX;
    if (n < 0 || memchr(tmp, '\0', (size_t)n) != NULL || (n == 0 && !allow_empty))
        goto out;
    memcpy(dst, tmp, (size_t)n + 1);
    st = SASL_CHECK;
out:
    sasl_wipe(tmp, sizeof tmp);
    return st;
}

/* RFC 4616 section 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. */
static enum sasl_status sasl_plain(struct sasl *s, const char *line, size_t len)
{
    unsigned char msg[SASL_PLAIN_MAX + 1];
    enum sasl_status st = SASL_ERR_SYNTAX;
    long n = sasl_decode(line, len, msg, SASL_PLAIN_MAX);
    if (n < 0)
        goto out;
    const char *authzid = (const char *)msg;
    const unsigned char *nul1 = memchr(msg, '\0', (size_t)n);
    if (nul1 == NULL)
        goto out;
    const char *authcid = (const char *)nul1 + 1;
    size_t rest = (size_t)n - (size_t)(nul1 + 1 - msg);
    const unsigned char *nul2 = memchr(nul1 + 1, '\0', rest);
    if (nul2 == NULL)
        goto out;
    const char *passwd = (const char *)nul2 + 1;
    size_t zlen = (size_t)(nul1 - msg);
    size_t clen = (size_t)(nul2 - nul1 - 1);
    size_t plen = (size_t)n - (size_t)(nul2 + 1 - msg);
    /* A third NUL would make passwd contain one: not SAFE (RFC 4616 section 2). */
    if (memchr(passwd, '\0', plen) != NULL)
        goto out;
    if (clen == 0 || plen == 0 || zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX ||
        plen > SASL_FIELD_MAX)
        goto out;
    /* We act for nobody else: an authzid is allowed only when it is the user itself. */
    if (zlen != 0 && (zlen != clen || memcmp(authzid, authcid, clen) != 0)) {
        st = SASL_ERR_AUTHZ;
        goto out;
    }
    memcpy(s->user, authcid, clen + 1);
    memcpy(s->pass, passwd, plen + 1);
    s->state = SASL_DONE;
    st = SASL_CHECK;
out:
    sasl_wipe(msg, sizeof msg);
    return st;
}

/* Ends the exchange on an error: nothing of it is kept. */
static enum sasl_status sasl_fail(struct sasl *s, enum sasl_status st)
{
    sasl_reset(s);
    return st;
}

enum sasl_status sasl_start(struct sasl *s, const char *mech, const char *initial)
{
    sasl_reset(s);
    if (mech == NULL || mech[0] == '\0')
        return SASL_ERR_SYNTAX;
    if (str_eq_ci(mech, "PLAIN"))
        s->mech = SASL_MECH_PLAIN;
    else if (str_eq_ci(mech, "LOGIN"))
        s->mech = SASL_MECH_LOGIN;
    else
        return sasl_fail(s, SASL_ERR_MECH);

    if (initial != NULL && strcmp(initial, "*") == 0)
        return sasl_fail(s, SASL_ABORTED);
    /* "=" is an initial response of zero length (RFC 4954 section 4). */
    const char *ir = initial;
    size_t irlen = ir ? strlen(ir) : 0;
    if (ir && strcmp(ir, "=") == 0)
        irlen = 0;

    if (s->mech == SASL_MECH_PLAIN) {
        if (ir == NULL) {
            s->state = SASL_PLAIN_WAIT;
            s->challenge = "";
            return SASL_CHALLENGE;
        }
        enum sasl_status st = sasl_plain(s, ir, irlen);
        return st == SASL_CHECK ? st : sasl_fail(s, st);
    }
    /* LOGIN: an initial response is the user name (as many clients send it). */
    if (ir == NULL) {
        s->state = SASL_LOGIN_USER;
        s->challenge = "VXNlcm5hbWU6";
        return SASL_CHALLENGE;
    }
    if (sasl_take_field(ir, irlen, s->user, 0) != SASL_CHECK)
        return sasl_fail(s, SASL_ERR_SYNTAX);
    s->state = SASL_LOGIN_PASS;
    s->challenge = "UGFzc3dvcmQ6";
    return SASL_CHALLENGE;
}

enum sasl_status sasl_step(struct sasl *s, const char *line, size_t len)
{
    /* RFC 4954 section 4: "*" cancels the exchange. */
    if (len == 1 && line[0] == '*')
        return sasl_fail(s, SASL_ABORTED);
    switch (s->state) {
    case SASL_PLAIN_WAIT: {
        enum sasl_status st = sasl_plain(s, line, len);
        return st == SASL_CHECK ? st : sasl_fail(s, st);
    }
    case SASL_LOGIN_USER:
        if (sasl_take_field(line, len, s->user, 0) != SASL_CHECK)
            return sasl_fail(s, SASL_ERR_SYNTAX);
        s->state = SASL_LOGIN_PASS;
        s->challenge = "UGFzc3dvcmQ6";
        return SASL_CHALLENGE;
    case SASL_LOGIN_PASS:
        if (sasl_take_field(line, len, s->pass, 1) != SASL_CHECK)
            return sasl_fail(s, SASL_ERR_SYNTAX);
        s->state = SASL_DONE;
        s->challenge = "";
        return SASL_CHECK;
    case SASL_IDLE:
    case SASL_DONE:
        break;
    }
    return sasl_fail(s, SASL_ERR_SYNTAX);
}

const char *sasl_challenge(const struct sasl *s)
{
    return s->challenge ? s->challenge : "";
}

const char *sasl_mechanism(const struct sasl *s)
{
    switch (s->mech) {
    case SASL_MECH_PLAIN:
        return "PLAIN";
    case SASL_MECH_LOGIN:
        return "LOGIN";
    case SASL_MECH_NONE:
        break;
    }
    return "";
}

const char *sasl_user(const struct sasl *s)
{
    return s->user;
}

const char *sasl_password(const struct sasl *s)
{
    return s->pass;
}

const char *sasl_status_reply(enum sasl_status st)
{
    switch (st) {
    case SASL_ERR_MECH:
        return "504 5.5.4 Unrecognized authentication type";
    case SASL_ERR_SYNTAX:
        return "501 5.5.2 Syntax error in authentication data";
    case SASL_ERR_AUTHZ:
        return "535 5.7.8 Authentication credentials invalid (authorization identity not allowed)";
    case SASL_ABORTED:
        return "501 5.0.0 Authentication aborted";
    case SASL_CHALLENGE:
    case SASL_CHECK:
        break;
    }
    return "";
}
