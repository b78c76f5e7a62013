/*
 * CRC-32C (Castagnoli, the iSCSI/ext4 polynomial 0x1EDC6F41, reflected):
 * the checksum of the spool's journal records (queue/journal.h), chosen
 * because a torn or stale sector must be told from a written one and
 * CRC-32C detects every burst of up to 32 bits.
 */
#ifndef HONGYAN_LIB_CRC32C_H
#define HONGYAN_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues crc over data: start with crc32c(0, ...), and feed the result
 * of one call to the next to checksum pieces as one run of bytes.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
/* The same in portable software: what crc32c() does without SSE4.2, and its tests' reference. */
uint32_t crc32c_soft(uint32_t crc, const void *data, size_t len);

#endif
