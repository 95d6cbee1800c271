/* crc.h - CRC-32 as zlib computes it (the zip format's), faster: carry-less
 * multiplication where the CPU has it.  Thread-safe; no state. */
#ifndef NPZFS_CRC_H
#define NPZFS_CRC_H

#include <stddef.h>
#include <stdint.h>

/* zlib's crc32_z(crc, buf, len): the CRC-32 of the bytes before (crc, 0
 * at the start) continued over buf[0..len). */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

#endif
