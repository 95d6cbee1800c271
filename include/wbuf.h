/* wbuf.h - the content of a file being written: in memory up to
 * WBUF_MEM_MAX bytes, beyond that in an unlinked temporary file (in $TMPDIR
 * or /var/tmp), so a multi-GiB copy never needs that much RAM.
 *
 * Not thread-safe: the owner (a tree node) serialises calls with its lock.
 */
#ifndef NPZFS_WBUF_H
#define NPZFS_WBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WBUF_MEM_MAX (8u << 20)

struct wbuf {
	char *mem;		/* content while fd < 0 */
	size_t cap;
	int fd;			/* spill file, or -1 */
	uint64_t size;
	void *map;		/* wbuf_map() of the spill file, or NULL */
	size_t map_len;
};

void wbuf_init(struct wbuf *w);
/* Free memory, close the spill file, unmap. */
void wbuf_release(struct wbuf *w);

/* Write n bytes at off, growing the content (holes read as zeros).
 * Returns 0, -ENOMEM, -EFBIG, or the spill file's -errno (e.g. -ENOSPC). */
int wbuf_pwrite(struct wbuf *w, const void *p, size_t n, uint64_t off);

/* Read up to n bytes at off: the number read (short at the end) or -errno. */
ssize_t wbuf_pread(struct wbuf *w, void *p, size_t n, uint64_t off);

/* Set the size; growing zero-fills.  Returns 0 or -errno. */
int wbuf_truncate(struct wbuf *w, uint64_t size);

/* Make sure the content is in a file and return its descriptor (owned by
 * w; pread it, do not close it).  Returns fd >= 0 or -errno. */
int wbuf_fd(struct wbuf *w);

/* A read-only view of the whole content (valid until the next change or
 * release).  Returns 0 and *p (never NULL, even when empty) or -errno. */
int wbuf_map(struct wbuf *w, const char **p);

#endif
