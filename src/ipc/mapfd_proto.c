/*
 * Encoding and decoding of the table-file hand-over (ipc_proto.h), on the
 * keeper protocol's field codec.
 */
#include "ipc/ipc_proto.h"

#include <string.h>

void mapfd_put_files(struct buf *msg, uint32_t count)
{
    keeper_put_hdr(msg, 0, (enum keeper_type)MAPFD_FILES, 0);
    keeper_put_u32(msg, count);
}

void mapfd_put_file(struct buf *msg, const char *path, uint32_t error)
{
    keeper_put_str(msg, path);
    keeper_put_u32(msg, error);
}

int mapfd_msg_decode(const void *msg, size_t len, size_t nfds, struct mapfd_msg *out)
{
    memset(out, 0, sizeof *out);
    if (len > MAPFD_MSG_MAX)
        return -1;
    struct keeper_reader r;
    struct keeper_hdr h;
    keeper_reader_init(&r, msg, len);
    if (keeper_get_hdr(&r, &h) < 0 || h.id != 0 || h.status != 0 || h.type != MAPFD_FILES)
        return -1;
    uint32_t count = keeper_get_u32(&r);
    if (r.bad || count > MAPFD_FILES_MAX)
        return -1;
    size_t with_fd = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct mapfd_file *f = &out->files[i];
        f->path = keeper_get_bytes(&r, MAPFD_PATH_MAX);
        f->error = keeper_get_u32(&r);
        if (r.bad || !keeper_bytes_is_name(f->path, MAPFD_PATH_MAX) || f->error > MAPFD_ERRNO_MAX)
            return -1;
        with_fd += f->error == 0;
    }
    if (keeper_reader_done(&r) < 0 || with_fd != nfds)
        return -1;
    out->count = count;
    return 0;
}
