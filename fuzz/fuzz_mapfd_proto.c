/*
 * Fuzz target: the delivering process's decoder of the table files the
 * supervisor hands over (src/ipc/mapfd_proto.c). The first byte says how
 * many descriptors came with the datagram, the rest is the datagram. A
 * message that decodes must hold paths within the buffer, as many errors 0
 * as descriptors, and re-encode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nfds = data[0] % (MAPFD_FILES_MAX + 2);
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    struct mapfd_msg m;
    if (mapfd_msg_decode(msg, len, nfds, &m) < 0)
        return 0;
    if (m.count > MAPFD_FILES_MAX)
        abort();
    struct buf again = BUF_INIT;
    char path[MAPFD_PATH_MAX + 1];
    size_t with_fd = 0;
    mapfd_put_files(&again, m.count);
    for (uint32_t i = 0; i < m.count; i++) {
        struct keeper_bytes p = m.files[i].path;
        if (p.len == 0 || p.len > MAPFD_PATH_MAX || p.data < msg || p.data + p.len > msg + len ||
            memchr(p.data, '\0', p.len) != NULL || m.files[i].error > MAPFD_ERRNO_MAX)
            abort();
        memcpy(path, p.data, p.len);
        path[p.len] = '\0';
        mapfd_put_file(&again, path, m.files[i].error);
        with_fd += m.files[i].error == 0;
    }
    if (with_fd != nfds || again.len != len || memcmp(again.data, msg, len) != 0)
        abort();
    buf_free(&again);
    return 0;
}
