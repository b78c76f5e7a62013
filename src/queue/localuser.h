/*
 * Local users as the submission boundary sees them: the name of a uid, and
 * Postfix's authorized_submit_users / authorized_flush_users access lists.
 */
#ifndef HONGYAN_QUEUE_LOCALUSER_H
#define HONGYAN_QUEUE_LOCALUSER_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

/* The login name of uid into out; "unknown" when the password file has none (as Postfix). */
void localuser_name(uid_t uid, char *out, size_t size);

/*
 * Whether user matches the access list spec (Postfix's string list): names,
 * "type:table" (matched when the name is a key; static:anything matches
 * every name), "/file/name" (its names), "!pattern" to exclude; left to
 * right, first match wins; an empty list matches nobody. 1 match, 0 no
 * match, -1 a table could not be read (err says why: treat as "try later").
 */
int localuser_listed(const char *spec, const char *user, struct buf *err);

/*
 * The rule of both keys: root and mail_owner always pass; anyone else must
 * be listed. Same results as localuser_listed.
 */
int localuser_authorized(const char *spec, const char *mail_owner, uid_t uid, const char *user,
                         struct buf *err);

#endif
