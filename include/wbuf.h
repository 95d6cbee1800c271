/* wbuf.h - the content of a file being written: in memory up to
 * WBUF_MEM_MAX bytes, beyond that in an unlinked temporary file (in $TMPDIR
 * or /var/tmp), so a multi-GiB copy never needs that much RAM; a first
 * write of WBUF_SPILL_NOW bytes or more goes to the file at once.
 *
 * Copy-on-write: a wbuf started by wbuf_init_cow() shows a base (bytes of
 * another file, e.g. a stored member in the archive) and keeps only the
 * pages written since (WBUF_PAGE bytes each) in a sparse spill file, with a
 * bitmap saying which.  Writing one value of a 4 GiB array costs one page,
 * not a copy of the array.  Reading such a wbuf changes nothing in it.
 *
 * Writes to the spill file are written behind (writebehind.h): they return
 * once the bytes are queued; a later call that needs the file waits for
 * them and reports a failed one (-ENOSPC, ...).
 *
 * Not thread-safe: the owner (a tree node) serialises calls with its lock.
 */
#ifndef NPZFS_WBUF_H
#define NPZFS_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "writebehind.h"

#define WBUF_MEM_MAX (8u << 20)
/* A first write of this many bytes or more goes straight to a spill
 * file. */
#define WBUF_SPILL_NOW (1u << 20)
#define WBUF_PAGE 4096u

/* What a copy-on-write wbuf shows where it was not written: bytes
 * [off, off + len) of fd, or, when read is not NULL, the bytes read(ctx,
 * buf, n, pos) gives for [0, len) (bytes read, short only at len, or
 * -errno; called from several threads at once; e.g. a deflated member read
 * through the archive); kept readable by a reference of the owner's,
 * dropped by put(ctx) when the wbuf lets the base go. */
struct wbuf_base {
	int fd;			/* read == NULL */
	uint64_t off, len;
	ssize_t (*read)(void *ctx, void *buf, size_t n, uint64_t pos);
	int (*check)(void *ctx);	/* fd's bytes read are still base's:
					   0, or -errno (optional) */
	void (*put)(void *ctx);
	void *ctx;
	uint64_t tag;		/* the owner's name for the base's content */
};

struct wbuf {
	char *mem;		/* content while fd < 0 (not copy-on-write) */
	size_t cap;
	int fd;			/* spill file, or -1 */
	uint64_t size;
	void *map;		/* wbuf_map() of the spill file, or NULL */
	size_t map_len;
	struct wb_file wb;	/* the spill file's writes (write-behind);
				   wb.writeback when it is beside the
				   archive (io_spill_file) */
	/* the CRC-32 of content written in order from its start (a cp) */
	bool crc_lost;		/* written out of order: not kept */
	bool crc_skip;		/* set by the owner: content that is parsed,
				   never stored as it is (a text view): no
				   CRC is kept, wbuf_crc() is false */
	uint32_t crc;		/* of bytes [0, crc_len) */
	bool adoptable;		/* set by the owner before it spills: the
				   owner throws the content away after its
				   commit, which may make the spill file the
				   new archive (archive_change.adopt); it is
				   made beside the archive when it can be
				   (io_spill_file_adoptable) */
	uint64_t crc_len;
	/* copy-on-write (cow): page p of the content is the spill file's
	 * when dirty bit p is set, else base's below base_live, else zeros */
	bool cow;
	struct wbuf_base base;
	uint64_t base_live;	/* base bytes still shown: <= size, base.len */
	uint64_t *dirty;	/* bitmap of written pages */
	size_t dirty_words;
};

void wbuf_init(struct wbuf *w);
/* Free memory, close the spill file, unmap. */
void wbuf_release(struct wbuf *w);

/* Write n bytes at off, growing the content (holes read as zeros).
 * Returns 0, -ENOMEM, -EFBIG, or the spill file's -errno (e.g. -ENOSPC). */
int wbuf_pwrite(struct wbuf *w, const void *p, size_t n, uint64_t off);

/* Read up to n bytes at off: the number read (short at the end) or -errno.
 * Reading changes nothing in w: it may run in several threads at once when
 * nobody changes w meanwhile. */
ssize_t wbuf_pread(struct wbuf *w, void *p, size_t n, uint64_t off);

/* Set the size; growing zero-fills.  Returns 0 or -errno. */
int wbuf_truncate(struct wbuf *w, uint64_t size);

/* The CRC-32 of the whole content, when it was written in order from its
 * start (computed as it came): true and *crc, else false. */
bool wbuf_crc(const struct wbuf *w, uint32_t *crc);

/* Declare crc the CRC-32 of w's whole content (plain w, in its file, after
 * a writer that wrote the file itself, e.g. from several threads, and
 * computed it); wbuf_crc() reports it until the next change. */
void wbuf_set_crc(struct wbuf *w, uint32_t crc);

/* Make w, empty and just initialised, a copy-on-write wbuf over base: its
 * content is base's bytes until written.  w takes over base's reference
 * (released by wbuf_release, or when w copies the base in). */
void wbuf_init_cow(struct wbuf *w, const struct wbuf_base *base);

/* Is w copy-on-write, with the same size as its base and never cut below
 * it: base's bytes with the pages of wbuf_next_written() replaced? */
bool wbuf_is_patch(const struct wbuf *w);

/* The next run of written pages of a copy-on-write w at or after *off:
 * true and [*off, *off + *len) (clamped to the content), or false. */
bool wbuf_next_written(const struct wbuf *w, uint64_t *off, uint64_t *len);

/* Give a copy-on-write w a new base: with `committed`, base holds w's
 * whole content (w's content was just stored there: no page is written
 * any more); else it holds the same bytes as the old base.  The old
 * base's reference is dropped. */
void wbuf_rebase(struct wbuf *w, const struct wbuf_base *base, bool committed);

/* Make sure the content is in a file and return its descriptor (owned by
 * w; pread it, do not close it).  A copy-on-write w copies its base in
 * first (and is a plain wbuf afterwards).  Returns fd >= 0 or -errno. */
int wbuf_fd(struct wbuf *w);

/* A read-only view of the whole content (valid until the next change or
 * release; copies a copy-on-write w's base in, as wbuf_fd).  Returns 0 and
 * *p (never NULL, even when empty) or -errno. */
int wbuf_map(struct wbuf *w, const char **p);

#endif
