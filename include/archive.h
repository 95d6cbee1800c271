/* archive.h - the zip archive under the mount (the only module that knows
 * libzip and the zip format).
 *
 * The member list is read once at open, from the central directory (zip64
 * aware), and indexed by name in a hash map.  Reads:
 *  - stored members: pread() at the member's data offset, found from its
 *    local header on first use (numpy's local headers carry a zip64 extra
 *    field the central directory lacks); no libzip call per read;
 *  - deflated members: inflated on demand into a cache file (one unlinked,
 *    sparse temporary file shared by all members, each member at its own
 *    region), so data inflated once is served by pread() afterwards and a
 *    random read never re-inflates from the start of the member.  Live
 *    inflate streams are bounded in number; RAM use does not grow with the
 *    archive.
 *
 * Threads: every function may be called from any thread.  protects:
 * a->zip_lock serialises all libzip calls on the zip_t; each member's
 * inflate state has its own lock (member reads of different members run in
 * parallel; stored members need no lock at all).
 */
#ifndef NPZFS_ARCHIVE_H
#define NPZFS_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"

#define ARCHIVE_STORE 0
#define ARCHIVE_DEFLATE 8

struct archive;

struct archive_member {
	const char *name;	/* as stored in the zip (UTF-8), owned by archive */
	uint64_t size;		/* uncompressed size (central directory) */
	uint64_t comp_size;	/* compressed size */
	uint16_t method;	/* ARCHIVE_STORE or ARCHIVE_DEFLATE (others: EIO on read) */
	uint32_t crc;
	time_t mtime;		/* from the DOS date/time (local time) */
};

/* Open the archive read-only and index it.  Returns 0 and *out, or
 * -ENOENT/-EACCES/-EINVAL (not a zip, damaged central directory, ...) with
 * a one-line message like "not a zip archive" or "damaged archive:
 * central directory entry 3 past end of file".  The cache directory for
 * inflated data is $TMPDIR or /var/tmp. */
int archive_open(const char *path, struct archive **out, struct npz_err *err);

/* Close and free everything (cache file included). NULL is a no-op. */
void archive_close(struct archive *a);

/* Number of members (directory entries "x/" included). */
size_t archive_count(const struct archive *a);

/* Member i (0 <= i < count), in central-directory order. */
const struct archive_member *archive_member(const struct archive *a, size_t i);

/* Look a member up by exact name. Returns 0 and *idx, or -ENOENT. */
int archive_find(const struct archive *a, const char *name, size_t *idx);

/* Read up to len bytes at offset off of member i's uncompressed data.
 * Returns the number of bytes read (less than len only at the end of the
 * member, 0 at or past it) or -errno: -EIO for a damaged member (bad local
 * header, inflate error, unsupported method), with a log-worthy message
 * in err when err is not NULL. */
ssize_t archive_member_read(struct archive *a, size_t i, void *buf,
			    size_t len, uint64_t off, struct npz_err *err);

/* Name of a compression method: "stored", "deflated", or "method N". */
const char *archive_method_name(uint16_t method);

#endif
