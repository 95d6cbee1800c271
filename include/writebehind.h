/* writebehind.h - writes that return before the data is in the file: the
 * bytes are copied into a bounded queue (WB_QUEUE_MAX bytes for the whole
 * process) and one writer thread pwrite()s them in order.  A FUSE write of
 * a big file then returns while its data goes to the spill file, and the
 * writer (not the request) waits for the page cache and the disk.
 *
 * Threads: every function may be called from any thread; one struct
 * wb_file must not be used by two threads at once (its owner serialises
 * calls, as for a wbuf).  The writer thread starts on first use (after the
 * daemon forked), with every signal blocked.
 */
#ifndef NPZFS_WRITEBEHIND_H
#define NPZFS_WRITEBEHIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WB_QUEUE_MAX (16u << 20)
#define WB_WRITEBACK (8u << 20)	/* writeback started every ... bytes */

/* The write-behind state of one file.  Zero it to start. */
struct wb_file {
	unsigned int queued;	/* blocks not yet written (wb lock) */
	int err;		/* the first failed write's -errno: sticky */
	bool writeback;		/* start writeback as data is written (a
				   commit will clone the file) */
	uint64_t synced;	/* writeback started up to here */
};

/* Write n bytes at off of fd, later: 0, or a failed earlier write's -errno
 * (the file's content is then unknown).  Without a writer thread (or for
 * small writes) the write is done here.  fd stays valid until wb_drain. */
int wb_pwrite(struct wb_file *f, int fd, const void *p, size_t n,
	      uint64_t off);

/* Wait until every write of f is in its file: 0 or the sticky -errno. */
int wb_drain(struct wb_file *f);

#endif
