/* archive.h - the zip archive under the mount (the only module that knows
 * libzip and the zip format; its code is in src/zip/, one file per job,
 * their shared structs and locks in src/zip/zip_internal.h).
 *
 * The member list is read once at open, from the central directory (zip64
 * aware), and indexed by name in a hash map.  Reads:
 *  - stored members: pread() at the member's data offset, found from its
 *    local header on first use (numpy's local headers carry a zip64 extra
 *    field the central directory lacks); no libzip call per read;
 *  - deflated members (one deflate stream, as numpy writes them):
 *    inflated with ISA-L in 256 KiB blocks.  A member's stream goes on
 *    from where the last read left it, and inflates ahead of a sequential
 *    reader on a background thread, so a sequential read inflates every
 *    byte once.  While it inflates it keeps access points (snapshots of
 *    the inflater every few MiB, their number bounded by a quarter of the
 *    cache budget), so that a read far from the stream resumes at the
 *    nearest point before it instead of at the member's start.  Blocks are
 *    cached in one unlinked sparse cache file (each member at its own
 *    region): every block of a member that fits in half the budget, else
 *    the blocks random reads asked for.  Blocks and points are charged to
 *    the budget (cache.h) and evicted least recently used; the cache never
 *    passes it.  A member read from start to end has its CRC checked, a
 *    member of at most 1 MiB before any byte is served.  Live streams are
 *    bounded in number; RAM use does not grow with the archive (beyond
 *    the points, which the budget bounds);
 *  - SOZip members (deflated in independent chunks, with a valid hidden
 *    chunk index after their data): only the chunks a read covers are
 *    inflated, straight into its buffer, without the cache; their CRC is
 *    not checked by reads (archive_check_member() checks it).  A damaged
 *    index is logged once and the member read as above.
 *
 * Threads: every function may be called from any thread.  protects:
 * a->zip_lock serialises all libzip calls on the zip_t; each member's
 * inflate stream has its own lock (member reads of different members run in
 * parallel; reads of inflated blocks held in memory or cached do not wait
 * for an inflate; stored members need no lock at all).  One process-wide
 * read-ahead thread (signals blocked) lives as long as the process;
 * archive_close() waits for its work on that archive.  archive_commit() may run
 * worker threads of its own (all signals blocked) to deflate new content;
 * they have exited when it returns.
 */
#ifndef NPZFS_ARCHIVE_H
#define NPZFS_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
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
	bool nul_name;		/* the zip name holds a NUL byte: name is the
				   part before it (what libzip and Python's
				   zipfile see); archive_find() skips it */
};

/* Open the archive read-only and index it.  Returns 0 and *out, or
 * -ENOENT/-EACCES/-EINVAL (not a zip, damaged central directory, ...) with
 * a one-line message like "not a zip archive" or "damaged archive:
 * central directory entry 3 past end of file".  The cache directory for
 * inflated data is $TMPDIR or /var/tmp. */
int archive_open(const char *path, struct archive **out, struct npz_err *err);

/* archive_open() for a path realpath() already resolved (absolute, no
 * symlink, "." or ".." component), used as it is: realpath() costs one
 * readlink() per component of the path. */
int archive_open_resolved(const char *path, struct archive **out,
			  struct npz_err *err);

/* Free a's member table, inflate state and cached inflated data, keeping
 * only the archive file's descriptor, which stays valid for the zero-copy
 * spans archive_member_span() handed out until archive_close(a).
 * For an archive replaced by a commit: afterwards only archive_path() and
 * archive_close() may be called on a.  NULL is a no-op. */
void archive_retire(struct archive *a);

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

/* Where the bytes [off, off + len) of member i can be read from directly
 * (for zero-copy replies): *fd (the archive file) at *pos, *n bytes
 * (clamped to the member; 0 at or past its end).  Stored members only;
 * deflated ones give -EAGAIN (read them with archive_member_read: their
 * cached inflated bytes may be evicted before a splice is done).  The
 * descriptor stays valid until archive_close(a), also after
 * archive_retire(a).  Returns 0, -EAGAIN or -EIO. */
int archive_member_span(struct archive *a, size_t i, uint64_t off,
			size_t len, int *fd, uint64_t *pos, size_t *n,
			struct npz_err *err);

/* Is member i a SOZip member (deflated, with a valid chunk index after its
 * data; looked for once, on first use)?  Such a member's content can be
 * read anywhere at the cost of a chunk, and patched (archive_change) at
 * the cost of the chunks that changed. */
bool archive_member_sozip(struct archive *a, size_t i);

/* Verify member i the way `unzip -t` does, without the inflate cache:
 *  - its local header: signature, name, method, not encrypted, and (unless
 *    flag bit 3 defers them to a data descriptor) CRC and sizes equal to
 *    the central directory's (0xffffffff placeholders are compared through
 *    the local zip64 extra field when there is one, else skipped);
 *  - its data [data offset, + comp_size) lies within the file;
 *  - all of its data is read (stored) or inflated (deflated) in blocks of
 *    at most 1 MiB, and must give exactly `size` bytes whose CRC-32 is the
 *    central directory's.
 * Memory use is bounded whatever the member's size; the member's inflate
 * cache is neither used nor changed.  Returns 0 when the member is sound;
 * -EIO for a damaged member (other methods included: "unsupported
 * compression method 12") with err saying why, WITHOUT the member's name
 * ("CRC mismatch (stored 0x1234abcd, computed 0x89abcdef)"); -EINVAL for i
 * out of range; -ENOMEM. */
int archive_check_member(struct archive *a, size_t i, struct npz_err *err);

/* Called by archive_check_layout() once per problem: member i, and why
 * (without the member's name). */
typedef void archive_report_fn(void *ctx, size_t i, const char *msg);

/* Check how the members lie in the file: every member's extent (its local
 * header, name, extra field and data) ends before the central directory and
 * overlaps no other member's.  An overlap is reported once, at the member
 * that starts inside another (the later one by offset; for two members at
 * the same offset, the later one in the central directory).  Members whose
 * local header cannot be read are skipped (archive_check_member() reports
 * them).  Returns the number of problems reported, or -ENOMEM / -EIO /
 * -EINVAL (err says why). */
int archive_check_layout(struct archive *a, archive_report_fn *report,
			 void *ctx, struct npz_err *err);

/* Name of a compression method: "stored", "deflated", or "method N". */
const char *archive_method_name(uint16_t method);

/* A byte range of a member's content. */
struct archive_range {
	uint64_t off, len;
};

/* One member of the archive written by archive_commit(). */
struct archive_change {
	const char *name;	/* member name in the new archive (unique) */
	ssize_t from;		/* >= 0: index of a member of the current archive
				   whose compressed bytes, method, CRC, mtime and
				   attributes are copied unchanged, without
				   recompression (a rename when name differs);
				   -1: new content from fd (or read) */
	int fd;			/* from == -1, read NULL: the uncompressed
				   content is pread(fd) over [0, size); fd's
				   offset is not used or moved, and fd is not
				   closed */
	/* from == -1: when not NULL, the content is read with read()
	 * instead (bytes read, short only at the end, or -errno); it may be
	 * called from several threads at once */
	ssize_t (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *read_ctx;
	uint64_t size;
	uint16_t method;	/* from == -1: ARCHIVE_STORE or ARCHIVE_DEFLATE */
	int level;		/* from == -1, deflate: zlib level 0-9, -1 = zlib's
				   default (6, what numpy's savez_compressed uses) */
	time_t mtime;		/* from == -1: the entry's timestamp */
	bool crc_known;		/* from == -1: crc is the content's CRC-32
				   (spares reading content that is cloned) */
	uint32_t crc;
	/* from == -1, fd, stored, crc_known: fd is an unlinked O_TMPFILE
	 * whose content the caller throws away after the commit, whatever
	 * its outcome.  A copying commit may then make that file the new
	 * archive instead of copying the content into one: the content is
	 * moved one block up in place (FALLOC_FL_INSERT_RANGE, no data
	 * copied), its local header written before it, the other members
	 * after it.  Where that cannot be done (another filesystem, no
	 * INSERT_RANGE), the content is copied as usual. */
	bool adopt;
	/* from == -1: the content is member patch_of of the current archive
	 * (size bytes, method as the change's) with only ranges[0..nranges)
	 * (sorted, disjoint) changed; that member is either stored, or
	 * deflated with a valid SOZip index (archive_member_sozip()).  Our
	 * own writer (clone or copy mode) then reads and writes O(change):
	 *  - stored: when it has this name (and no data descriptor), a cloned
	 *    commit keeps that member in place, a copying one copies it in
	 *    the kernel, and either writes only those ranges and the new CRC
	 *    (from the changed bytes alone);
	 *  - SOZip: only the chunks the ranges touch are deflated anew (at
	 *    `level`), the others' compressed bytes taken as they are, the new
	 *    CRC from the touched chunks alone; the member is kept (in place,
	 *    or copied) when its compressed size does not change (padding
	 *    blocks that inflate to nothing make up for a chunk that shrank),
	 *    else it is written anew after the kept ones, its unchanged
	 *    chunks cloned (placed so that they stay block-aligned) or copied,
	 *    with a new index.  More than 64 MiB of touched chunks: written
	 *    whole, as new content.
	 * Other commits (the libzip rewrite, renamed patches) read the whole
	 * content. */
	bool patch;
	size_t patch_of;
	const struct archive_range *ranges;
	size_t nranges;
};

/* Write a new archive whose members are exactly changes[0..n) in that order
 * and atomically replace the file a was opened from: the new archive is
 * written to a temporary file ".NAME.npzfs-XXXXXX" in the same directory,
 * fsync()ed, given the original's mode and owner (the owner only where
 * permitted), renamed over the original, and the directory is fsync()ed.
 * Where the filesystem can clone (FICLONE: XFS, btrfs, ...), the temporary
 * file starts as a clone of the old one: members kept under their name keep
 * their bytes and offsets, other members are appended after them, the bytes
 * of removed ones are punched out.  Elsewhere (ext4, tmpfs), and when the
 * holes would exceed a quarter of the file (compaction), it is written
 * from scratch in list order: members kept under their name are copied by
 * copy_file_range() byte for byte (SOZip index included; a stored one's
 * local header may get an alignment extra field), their central entries
 * with only the offset changed.  Stored data written either way starts on
 * 4096 bytes (64 KiB or more, else 64); deflated content of more than 256
 * KiB is written as SOZip.  archive_tune_commit(false): libzip rewrites
 * the archive instead.
 * (a's path is resolved with realpath() at open: a symlink stays a symlink;
 * the new archive reuses that path without resolving it again.)
 * New deflated content of 4 MiB or more is deflated on several threads
 * (see archive_tune_deflate()); smaller content exactly as numpy does.
 * Members are written in list order when it follows the current order, with
 * new members after the current ones (the usual case: untouched members keep
 * their place and every byte of their entry); other orders work too, the
 * members out of order being copied raw as new entries.  n == 0 writes an
 * empty archive.
 *
 * Returns 0 and *out, a new struct archive over the new file (opened from
 * the temporary file's own descriptor before the rename, never by path, so
 * it reads exactly the bytes just written, with the path a was opened
 * from); a itself stays valid and keeps reading the old file (readers in
 * flight see old data) until the caller archive_close()s it.  The rename is
 * the last step that can fail: once it is done the commit returns 0.  On
 * failure the file on disk is untouched, no temporary file is left behind,
 * *out is not set, and err says why in one line:
 *  -EINVAL  bad change list (duplicate or empty name, from out of range,
 *           unknown method or level);
 *  -ESTALE  the file at a's path is no longer the one a opened (other
 *           inode, size or mtime; also when it was removed);
 *  -ENOSPC, -EDQUOT, -EACCES, -EROFS, -EPERM, -EIO, -ENOMEM, -EMFILE:
 *           from the system, while writing the temporary file, opening it
 *           as the new archive, or renaming it.
 * The content fds are read while archive_commit() runs, not after.
 * Not to be called twice at the same time on one archive file. */
int archive_commit(struct archive *a, const struct archive_change *changes,
		   size_t n, struct archive **out, struct npz_err *err);

/* How archive_commit() deflates new content (ARCHIVE_DEFLATE).  Content of
 * at least min_parallel bytes is cut into chunks of chunk bytes that
 * threads worker threads deflate at the same time, each chunk primed with
 * the 32 KiB before it, into one standard deflate stream (the way pigz
 * writes it; a little bigger than one zlib stream, and not byte-identical to
 * numpy's savez_compressed); at most 2 * threads compressed chunks are held
 * in memory.  Smaller content is deflated in one zlib stream, exactly as
 * numpy's savez_compressed writes it. */
struct archive_deflate_tuning {
	size_t chunk;		/* content bytes per chunk, at most
				   64 MiB; 0: 1 MiB */
	uint64_t min_parallel;	/* smallest content deflated in chunks */
	unsigned threads;	/* at most 64; 0: the online CPUs, at least 2,
				   at most 8 */
};

/* Set the tuning for the whole process (for tests and benchmarks); NULL
 * restores the defaults: 1 MiB chunks from 4 MiB of content on, threads 0.
 * Not to be called while a commit runs. */
void archive_tune_deflate(const struct archive_deflate_tuning *t);

/* May archive_commit() write the archive itself, by clone or copy (default
 * true)?  false: every commit has libzip rewrite the whole archive (no
 * alignment, no SOZip).  For the whole process (-o commit=). */
void archive_tune_commit(bool clone);

/* When a's directory is on a filesystem that can clone (and commits may:
 * archive_tune_commit), make it the directory of spill files
 * (io_set_spill_dir): a commit then clones written content into the new
 * archive (FICLONERANGE) instead of copying it.  Returns true if so. */
bool archive_spill_near(const struct archive *a);

/* Create an empty archive (no member) at path, which must not exist yet
 * (mode 0644 less the umask), and fsync() it.  Returns 0 or -errno
 * (-EEXIST when path exists). */
int archive_create_empty(const char *path);

/* The path a was opened from, resolved by realpath(). */
const char *archive_path(const struct archive *a);

/* Remove the temporary files a commit killed part-way (kill -9, power
 * loss) left beside the archive at path.  Returns how many were removed.
 * Call before mounting: not while another commit on the archive runs. */
int archive_clean_temps(const char *path);

/* Is the file a was opened from still as it was (size and modification
 * time, through a's descriptor)?  false once another program rewrote it in
 * place (logged once): its members then read as EIO. */
bool archive_intact(struct archive *a);

/* The identity a was indexed with: fstat() of its descriptor when it was
 * opened (device, inode, size, modification time). */
void archive_identity(const struct archive *a, struct stat *st);

/* fstat() of a's descriptor now (its ctime moves when a commit renames
 * the file into place).  0 or -errno. */
int archive_fstat(const struct archive *a, struct stat *st);

/* The archive file's modification time when it was opened. */
time_t archive_mtime(const struct archive *a);

#endif
