/*
 * The local submission boundary on disk: maildrop/ (mode 1730) and public/
 * (0710, holding the flush FIFO, 0620) belong to mail_owner and the
 * setgid_group that hongyan-postdrop runs with, so that only the helper,
 * the server and root can put anything there (docs/submission.md, "Local
 * submission boundary").
 */
#ifndef HONGYAN_QUEUE_MAILDROP_H
#define HONGYAN_QUEUE_MAILDROP_H

#include <sys/types.h>

#include "lib/buf.h"

#define MAILDROP_DIR_MODE 01730
#define MAILDROP_PUBLIC_MODE 0710
#define MAILDROP_FIFO_MODE 0620

/*
 * As root: creates what is missing of the above under queue_dir and gives
 * it owner and group, by descriptor and without following a symbolic link
 * (a path that is one, or is not a directory or FIFO as expected, is an
 * error naming it). 0 or -1 with err.
 */
int maildrop_prepare(const char *queue_dir, uid_t owner, gid_t group, struct buf *err);

#endif
