/* io.h - small file helpers shared by the modules: whole-buffer pwrite and
 * unlinked temporary files.  Thread-safe; no state. */
#ifndef NPZFS_IO_H
#define NPZFS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write all n bytes at off (retrying short writes and EINTR).
 * Returns 0 or -errno. */
int io_pwrite_all(int fd, const void *p, size_t n, uint64_t off);

/* An unlinked temporary file, read-write, close-on-exec, in the cache
 * directory (-o cache_dir; default $TMPDIR, else /var/tmp) (O_TMPFILE, else mkostemp + unlink; `tag` names the latter).
 * Returns the descriptor or -errno. */
int io_tmpfile(const char *tag);

/* The directory io_tmpfile() uses. */
const char *io_tmpdir(void);

/* Make dir (or, with NULL, nothing) the directory of spill files: see
 * io_spill_file().  Call before any thread uses io_spill_file(). */
int io_set_spill_dir(const char *dir);

/* An unlinked temporary file for written content (wbuf.h): O_TMPFILE in the
 * spill directory when one was set (the archive's own, on a filesystem that
 * can clone: a commit then clones the content into the new archive instead
 * of copying it: *near is then true), else io_tmpfile().  Returns the
 * descriptor or -errno. */
int io_spill_file(bool *near);

/* Make dir (or, with NULL, nothing) the archive's directory, for
 * io_spill_file_adoptable().  Call before any thread uses that. */
int io_set_archive_dir(const char *dir);

/* A spill file for content that a commit may make the new archive itself
 * (archive_change.adopt): O_TMPFILE in the archive's directory when one was
 * set (*near: true, as its writes end up in the archive), else as
 * io_spill_file().  Returns the descriptor or -errno. */
int io_spill_file_adoptable(bool *near);

/* Ask the kernel to read ahead kb KiB in the filesystem mounted last on
 * mountpoint (an absolute path): its backing device's read_ahead_kb in
 * /sys/class/bdi (a FUSE mount starts at 128 KiB; with 1 MiB the kernel
 * sends 1 MiB reads).  Only root may.  Returns 0 or -errno. */
int io_set_readahead(const char *mountpoint, unsigned kb);

#endif
