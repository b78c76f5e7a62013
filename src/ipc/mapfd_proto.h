/*
 * The supervisor → child message that hands over the table files root
 * opened for a process that may not open them itself (the relay password
 * maps, docs/security.md; daemon/mapfd.c sends and receives it). Root writes
 * it, so no network input reaches it, but the child still decodes it with
 * the rules of every socketpair of ours: one SOCK_SEQPACKET datagram, the
 * keeper's header and field codec (keeper_proto.h), every length capped,
 * nothing left over.
 *
 *   FILES  u32 n (at most MAPFD_FILES_MAX), then n x (bytes path, u32 error):
 *          error 0 means the file's descriptor is the next one of the
 *          datagram's SCM_RIGHTS descriptors, in order; otherwise it is the
 *          errno of root's open (1..4095) and no descriptor goes with it.
 *          The number of descriptors must equal the number of errors 0.
 *
 * Ownership: decoded paths point into the message buffer they came from.
 */
#ifndef HONGYAN_IPC_MAPFD_PROTO_H
#define HONGYAN_IPC_MAPFD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/keeper_proto.h"
#include "lib/buf.h"

/* Files in one message: far more than any smtp_sasl_password_maps lists (SCM_RIGHTS allows 253). */
#define MAPFD_FILES_MAX 16
/* A path's longest in the message; a longer one is not handed over (the supervisor logs it). */
#define MAPFD_PATH_MAX 1024
#define MAPFD_MSG_MAX (KEEPER_HDR_LEN + 4 + MAPFD_FILES_MAX * (2 + MAPFD_PATH_MAX + 4))
/* errno values fit below this (Linux's are under 4096). */
#define MAPFD_ERRNO_MAX 4095

enum mapfd_type {
    MAPFD_FILES = 1,
};

struct mapfd_file {
    struct keeper_bytes path; /* 1..MAPFD_PATH_MAX bytes, no NUL */
    uint32_t error;           /* 0: with a descriptor */
};

struct mapfd_msg {
    uint32_t count;
    struct mapfd_file files[MAPFD_FILES_MAX];
};

/* Appends the message header and the count; then one mapfd_put_file per file. */
void mapfd_put_files(struct buf *msg, uint32_t count);
/* path: at most MAPFD_PATH_MAX bytes; error 0 when its descriptor goes along. */
void mapfd_put_file(struct buf *msg, const char *path, uint32_t error);

/*
 * Decodes one datagram that came with nfds descriptors: type FILES, id and
 * status 0, at most MAPFD_FILES_MAX files, each path 1..MAPFD_PATH_MAX
 * bytes without NUL, each error 0..MAPFD_ERRNO_MAX, as many errors 0 as
 * descriptors, nothing left over. 0, or -1.
 */
int mapfd_msg_decode(const void *msg, size_t len, size_t nfds, struct mapfd_msg *out);

#endif
