/* zip_internal.h - what the files of src/zip/ share: the archive and member
 * structs, the zip format's signatures, and the helpers one file of the zip
 * layer offers another.  Nothing outside src/zip/ includes it; the public
 * promise is include/archive.h.
 *
 * Invariants:
 *  - the member table is built once in archive_open() (index.c) and never
 *    changes; the central directory is parsed there (zip64 aware) and
 *    cross-checked against libzip's listing, so both agree on count, names
 *    and sizes;
 *  - a member's data starts at data_off = local header offset + 30 +
 *    name_len + LOCAL extra_len (read once, on first use, then cached:
 *    reader.c);
 *  - deflated member i owns the region [base_i, base_i + size_i) of one
 *    unlinked sparse cache file, where blocks of its inflated data are
 *    cached, each charged to the budget on its own (inflate.c);
 *  - a non-SOZip deflated member gets access points while it is inflated
 *    (inflate.c): a read far from where its stream is resumes at the
 *    nearest point before it instead of inflating from the start.
 *
 * Threads.  protects:
 *  - a->zip_lock: every libzip call on a->zip (only used while opening:
 *    discarded once the member table is built);
 *  - m->lock: member m's inflate stream (its position, windows) while
 *    in use; take before a->pool_lock and before the member's zran lock
 *    (inflate.c: points, blocks' states and pins; a leaf but for the
 *    cache budget's lock);
 *  - a->pool_lock: which members hold the live streams (a->streams);
 *  - a->cache_open_lock: creating a->cache_fd; a leaf;
 *  - m->data_off, m->cached and m->bad are atomics read without a lock;
 *    stored reads and reads of cached blocks never wait for an inflate;
 *  - m->sz (a SOZip index, sozip.c) is published once by compare-and-swap
 *    and read without a lock: SOZip reads take no lock at all.
 *  The commit's own locks (the OFD lock on .NAME.lock, lock.c; the parallel
 *  deflate's pz->lock, deflate.c) are described where they live.
 *
 * Writing (archive_commit(), commit.c) never touches a->zip nor the member
 * table: it reads the old file through a->fd with pread() and replaces the
 * file at a->path by rename(), so readers of a are undisturbed.  The new
 * archive is opened from the temporary file's descriptor before the rename
 * (writer.c): nothing is looked up by path, and nothing can fail, after it.
 */
#ifndef NPZFS_ZIP_INTERNAL_H
#define NPZFS_ZIP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <zip.h>
#include <zlib.h>

#include "archive.h"
#include "cache.h"
#include "crc.h"
#include "err.h"

#define ARCHIVE_STREAMS 8		/* live inflate streams kept (LRU) */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

/* Why a member was found damaged (m->bad); 0 while it is not. */
enum member_fault {
	FAULT_NONE,
	FAULT_LOCAL_HEADER,
	FAULT_PAST_EOF,
	FAULT_INFLATE,
	FAULT_SIZE,
	FAULT_CRC,
	FAULT_ENCRYPTED,
};

struct zran;		/* inflate.c: a deflated member's access points,
			   cached blocks and stream */

struct member {
	struct archive_member pub;	/* first: archive_member() returns it */
	const char *raw_name;		/* bytes as in the zip, for the local header */
	uint16_t raw_len;
	uint16_t flags;			/* general purpose bit flags */
	uint64_t lh_off;		/* local header offset */
	uint64_t cd_pos;		/* its central entry: at cd_off + cd_pos, */
	size_t cd_len;			/* cd_len bytes */
	uint64_t base;			/* region in the cache file */
	_Atomic uint64_t data_off;	/* 0 until the local header was read */
	_Atomic uint64_t cached;	/* inflated bytes in the cache file */
	_Atomic int bad;		/* enum member_fault */
	pthread_mutex_t lock;		/* its stream; before pool_lock */
	struct archive *a;		/* the archive */
	/* its access points, cached blocks and stream (inflate.c): NULL
	 * until first read, set once under m->lock, freed with the table */
	struct zran *_Atomic zr;
	/* its SOZip index (sozip.c): NULL until first looked for, then
	 * published once by compare-and-swap and never changed (a "none"
	 * sentinel when the member has no usable index); freed with the
	 * member table */
	struct sozip_map *_Atomic sz;
};

struct archive {
	char *path;			/* realpath() of the archive */
	struct stat st;			/* fstat() of fd at open */
	int fd;				/* the archive, for pread */
	int cache_fd;			/* inflated data, -1 until first needed */
	pthread_mutex_t cache_open_lock;	/* creating cache_fd; leaf */
	_Atomic bool rewritten;		/* the file changed behind fd: reads fail */
	uint64_t file_size;
	uint64_t cd_off, cd_size;	/* the central directory */
	zip_t *zip;
	pthread_mutex_t zip_lock;	/* every libzip call on zip */
	size_t count;
	struct member *m;
	char *names;			/* all names, NUL-terminated */
	uint32_t *index;		/* hash: member index + 1, 0 = empty */
	size_t index_mask;
	pthread_mutex_t pool_lock;	/* live streams; after m->lock */
	struct member *streams[ARCHIVE_STREAMS];	/* pool_lock: owners */
	uint64_t stream_tick[ARCHIVE_STREAMS];	/* pool_lock: last use */
	uint64_t tick;			/* pool_lock */
};

/* Little-endian fields of zip headers. */
static inline uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- index.c: the central directory ---- */

/* The one place libzip error codes become -errno. */
int ar_zip_error_to_errno(zip_error_t *ze);

/* Find the end of central directory of a (a->fd, a->file_size).  Fills the
 * CD's offset, size and entry count.  Returns 0 or -EINVAL/-EIO/-ENOMEM
 * with a message. */
int ar_find_cdir(struct archive *a, uint64_t *cd_off, uint64_t *cd_size,
		 uint64_t *entries, struct npz_err *err);

/* archive_open() of the file open as fd, known by the resolved path `path`
 * (used as it is, not looked up): the archive reads a descriptor of its own
 * (a dup of fd; fd stays the caller's) and records that file's identity.
 * Returns 0 and *out, or -errno with a message. */
int ar_open_fd(int fd, const char *path, struct archive **out,
	       struct npz_err *err);

/* ---- reader.c: member data in the archive file ---- */

/* pread until len bytes or end of file.  Returns bytes read or -errno. */
ssize_t ar_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Is the file behind a->fd still the one indexed (same size and mtime)?
 * Returns 0 or -EIO (the rewrite is logged once). */
int ar_file_unchanged(struct archive *a);

/* Record that m is damaged (the first fault sticks) and say why in err.
 * Returns -EIO. */
int ar_member_fail(struct member *m, int fault, struct npz_err *err);

/* Offset of m's data in the archive, from its local header (read once).
 * Returns the offset (> 0) or -errno. */
int64_t ar_member_data_off(struct archive *a, struct member *m,
			   struct npz_err *err);

/* ---- inflate.c: deflated members (zran access points, block cache) ---- */

/* Make a's stream pool empty (open) / free its streams and every member's
 * points and blocks (the member table is going). */
void ar_pool_init(struct archive *a);
void ar_pool_release(struct archive *a);

/* Read [off, off + len) of deflated member i, from cached blocks or
 * inflated.  Returns 0 or -errno. */
int ar_deflated_read(struct archive *a, size_t i, void *buf, size_t len,
		     uint64_t off, struct npz_err *err);

struct inflate_state;
/* The bytes of a snapshot of st (a raw ISA-L inflate stream between two
 * calls): the state up to its output buffer plus the history it keeps.
 * Writes at most AR_SNAP_MAX bytes to out (may be NULL to only size it)
 * and returns their count. */
size_t ar_zran_snapshot(const struct inflate_state *st, unsigned char *out);
/* Bytes a snapshot takes at most. */
extern const size_t AR_SNAP_MAX;
/* Make st the stream snapshot snap[0..len) was taken of: it then goes on
 * from there given the compressed input from where it was (snapshot time
 * fed - avail_in) and any output buffer. */
void ar_zran_restore(struct inflate_state *st, const unsigned char *snap,
		     size_t len);
/* Uncompressed bytes between two access points of a member of size bytes
 * under a budget of limit bytes: its points take about a quarter of the
 * limit at most; a multiple of the block size, at least 1 MiB. */
uint64_t ar_zran_span(uint64_t size, uint64_t limit);
/* Access points member i has (for tests; 0 before its first read). */
size_t ar_zran_points(struct archive *a, size_t i);
/* Inflate ahead of sequential readers on a background thread (the
 * default), or only when asked; for tests and benchmarks. */
void ar_zran_set_readahead(bool on);

/* ---- sozip.c: SOZip members (seek-optimized zip, spec 0.5) ---- */

/* ar_sozip_read() found no usable index: read the member the usual way. */
#define AR_SOZIP_NONE 1

/* A member's parsed SOZip index: chunk k holds uncompressed bytes
 * [k * chunk_size, min((k + 1) * chunk_size, size)) and compressed bytes
 * [off[k], off[k + 1]) of the member's data. */
struct sozip_map {
	uint32_t chunk_size;
	uint64_t nchunks;	/* ceil(size / chunk_size), at least 2 */
	uint64_t *off;		/* nchunks + 1 entries: off[0] = 0, strictly
				   increasing, off[nchunks] = comp_size */
	uint64_t rec_end;	/* file offset just past the hidden index
				   record (its local header and data) */
	_Atomic bool broken;	/* a chunk did not inflate as the index
				   says: reads take the ordinary path */
};

/* Parse the hidden index record rec[0..len) (local header, name, extra
 * field, stored index data) of the member whose raw name is
 * name[0..name_len) and whose central directory says size and comp_size.
 * Returns 0 and *out (free it with ar_sozip_free(); rec_end 0), -ENOENT
 * when rec is not that member's index record (no local header there, or
 * another name), -EINVAL when it is but is unusable (err says why:
 * "chunk size 12 below 1024"), or -ENOMEM.  Never reads outside rec. */
int ar_sozip_parse(const unsigned char *rec, size_t len, const char *name,
		   size_t name_len, uint64_t size, uint64_t comp_size,
		   struct sozip_map **out, struct npz_err *err);

void ar_sozip_free(struct sozip_map *x);

/* Read [off, off + len) (inside the member, len > 0) of deflated member m
 * through its SOZip index, looked for on the first call: only the chunks
 * covering the range are inflated, each on its own, straight into buf.
 * Returns 0, AR_SOZIP_NONE (no usable index: nothing read; an index that
 * turns out not to match its data is dropped, logged once, and later reads
 * take the ordinary path too) or -errno (-EIO with err set). */
int ar_sozip_read(struct archive *a, struct member *m, void *buf, size_t len,
		  uint64_t off, struct npz_err *err);

/* Where m's extent ends when a valid SOZip index record follows its data
 * (so that a cloned commit keeps it), else 0 (also on errors). */
uint64_t ar_sozip_extent_end(struct archive *a, struct member *m);

/* m's usable SOZip index (looked for once), or NULL: none, damaged,
 * found not to match its data, or not deflated. */
struct sozip_map *ar_sozip_map(struct archive *a, struct member *m);

/* Free m's index (the member table is going). */
void ar_sozip_release(struct member *m);

/* The hidden index's name for member name[0..name_len) ("DIR/BASE" ->
 * "DIR/.BASE.sozip.idx") into out (room for name_len + 11 bytes, not
 * NUL-terminated); returns its length. */
size_t ar_sozip_index_name(const char *name, size_t name_len, char *out);

struct sozip_index;
/* The index data of a member written in AR_SOZIP_CHUNK chunks (version 1,
 * 64-bit offsets) in a new buffer *out (free() it) of *len bytes.
 * Returns 0 or -ENOMEM. */
int ar_sozip_index_data(uint64_t size, uint64_t comp_size,
			const struct sozip_index *idx, unsigned char **out,
			size_t *len);

/* Reads served from the chunks kept for reads of their other parts (a
 * process-wide count, for tests). */
uint64_t ar_sozip_tail_hits(void);

/* Inflate the chunks of a read of two or more on the inflate pool (the
 * default) or each in order on the caller's thread; for tests. */
void ar_sozip_set_parallel(bool on);

/* ---- sozip_edit.c: patches of SOZip members ---- */

/* Can n bytes of padding (empty deflate blocks, inflating to nothing) be
 * made: 0, or 5 and more but 8?  ar_sozip_pad() writes them at p (at a
 * byte boundary of a stream, before its final block) and returns n, or 0
 * when they cannot be made. */
bool ar_sozip_pad_ok(size_t n);
size_t ar_sozip_pad(unsigned char *p, size_t n);

struct zip_entry;
/* A patch of a SOZip member: its touched chunks deflated anew. */
struct sozip_patch;

/* Prepare change c (c->patch of a's member c->patch_of): when that member
 * is deflated with a usable SOZip index and few enough chunks are touched
 * (their content at most 64 MiB), *out is a new patch (free it with
 * ar_sozip_patch_free()): the touched chunks deflated anew at c->level
 * (read: the old chunk inflated, c's written ranges laid over) and the new
 * CRC, else *out is NULL (write c whole).  Returns 0 or -errno (err says
 * why). */
int ar_sozip_patch_prepare(struct archive *a, const struct archive_change *c,
			   struct sozip_patch **out, struct npz_err *err);
void ar_sozip_patch_free(struct sozip_patch *sp);

/* Does the patched member keep its compressed size and every chunk's
 * offset (so it can be patched where it lies, index unchanged)? */
bool ar_sozip_patch_in_place(const struct sozip_patch *sp);

/* In place (ar_sozip_patch_in_place): write the touched chunks over the
 * member's bytes in out_fd (a clone or copy of a's file), whose data is at
 * data and local header at lh_off there, and its new CRC and time (mtime)
 * into that local header; e gets crc, time and date for its central
 * entry.  Returns 0 or -errno. */
int ar_sozip_patch_apply(const struct sozip_patch *sp, struct zip_entry *e,
			 time_t mtime, int out_fd, uint64_t data,
			 uint64_t lh_off);

/* Write the patched member anew at *pos of out_fd (moved past it): local
 * header (e: name, flags, times and attributes set by the caller; method,
 * sizes, CRC, lh_off and pad set here), its data starting at the old
 * data's offset modulo 4096 (untouched chunks cloned from a's file where
 * out_fd's filesystem can, or copied; *cloned counts cloned bytes), then
 * the new hidden index.  Returns 0 or -errno. */
int ar_sozip_patch_write(struct archive *a, const struct sozip_patch *sp,
			 struct zip_entry *e, int out_fd, uint64_t *pos,
			 uint64_t *cloned);

/* ---- lock.c: the commit lock ---- */

/* Take the commit lock of the archive at path: wait for it, or only try
 * when !wait.  Returns the descriptor that holds it (close it to release),
 * -EAGAIN when !wait and another holds it, -1 when no lock file can be
 * made where the archive is (a read-only directory: no commit can write
 * there either, and fails with its own error), or another -errno. */
int ar_lock_take(const char *path, bool wait);

/* ---- writer.c: the durable zip_source over the archive file ---- */

/* The state of the zip_source a commit reads the old archive through and
 * writes the new one with (temporary file, fsync, rename). */
struct file_src {
	struct archive *a;
	zip_error_t error;
	int fail_errno;			/* first failure of ours, or 0 */
	char msg[NPZ_ERR_MSG_MAX];	/* its message */
	/* reading the old file */
	uint64_t rpos;
	unsigned char *rbuf;
	uint64_t rbuf_off;
	size_t rbuf_len;
	/* writing the temporary file */
	char *dir;			/* the archive's directory */
	char *tmp_path;			/* set while a temporary file exists */
	int tmp_fd;
	unsigned char *wbuf;
	uint64_t wbuf_off;		/* file offset of wbuf[0] */
	size_t wbuf_len;
	uint64_t wpos;			/* write position */
	uint64_t wsize;			/* bytes of file written (or buffered) */
	uint64_t synced;		/* writeback started up to here */
	/* the new archive, opened from the temporary file before the rename
	 * (ar_fsrc_take_new()); closed by a rollback */
	struct archive *opened;
};

/* Set s up over a.  Returns 0 or -ENOMEM; either way release s with
 * ar_fsrc_release(). */
int ar_fsrc_init(struct file_src *s, struct archive *a);

/* Remove the temporary file, if any (no temporary file survives a
 * failure), close the new archive unless it was taken, and free s's
 * buffers. */
void ar_fsrc_release(struct file_src *s);

/* The new archive the commit wrote and renamed into place, opened from the
 * temporary file's descriptor, now the caller's; NULL when nothing was
 * written (libzip writes nothing when nothing changed). */
struct archive *ar_fsrc_take_new(struct file_src *s);

/* A new zip_source over s (s stays the caller's), or NULL with ze set. */
zip_source_t *ar_fsrc_source(struct file_src *s, zip_error_t *ze);

/* Create the temporary file beside the archive (s->tmp_path, s->tmp_fd),
 * removing a previous one.  Returns 0 or -errno (s->msg says why). */
int ar_fsrc_begin(struct file_src *s);

/* Make fd (an unlinked O_TMPFILE, not closed here) the temporary file:
 * linked beside the archive, written through a duplicate.  Returns 0, or
 * -errno with nothing left behind and fd unchanged (-EXDEV: fd is on
 * another filesystem; s->msg is not set). */
int ar_fsrc_adopt(struct file_src *s, int fd);

/* Make the temporary file the archive: fsync, the original's owner and
 * mode, open it as the new archive (ar_fsrc_take_new()), check that the
 * path still holds a's file, rename, fsync the directory.  Returns 0 once
 * renamed, or -errno (s->msg says why; ar_fsrc_rollback() cleans up). */
int ar_fsrc_finish(struct file_src *s);

/* Remove the temporary file, if any, and close the new archive. */
void ar_fsrc_rollback(struct file_src *s);

/* Record a failure: libzip gets (zip_code, sys), we keep errno and text.
 * Returns -1 for the source callback to return. */
zip_int64_t ar_fsrc_fail(struct file_src *s, int zip_code, int sys,
			 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Is the file at a's path still the one a opened?  Returns 0, -ESTALE or
 * -errno, with a message in msg. */
int ar_check_same_file(const struct archive *a, char *msg, size_t len);

/* ---- deflate.c: new content for a commit ---- */

/* Returns a new source over c's content (stored, or deflated by us, big
 * content on worker threads), or NULL (ENOMEM).  Failures are recorded in
 * s too. */
zip_source_t *ar_content_source(const struct archive_change *c,
				struct file_src *s);

/* Read up to len bytes of c's content (c->from == -1) at off, through
 * c->read or from c->fd: bytes read (short only at the end) or -errno. */
ssize_t ar_content_pread(const struct archive_change *c, void *buf,
			 size_t len, uint64_t off);

/* SOZip (seek-optimized zip, spec 0.5): a deflated member written with a
 * sync and a full flush every AR_SOZIP_CHUNK bytes of content, so that each
 * chunk inflates on its own, and a hidden index after its data. */
#define AR_SOZIP_CHUNK (256u << 10)	/* measured: docs/bench.md */

/* The chunk offsets of a member being written: offs[i] is where content
 * chunk i + 1 starts in the compressed data.  lost: no index (the member
 * was not written in chunks). */
struct sozip_index {
	uint64_t *offs;
	size_t n, cap;
	bool lost;
};

/* Write c's content (c->from == -1), stored or deflated as c->method says
 * (the same code as ar_content_source()), to out_fd at off.  Returns 0
 * with *comp_size (bytes written) and *crc (CRC-32 of the content), or
 * -errno (s->msg says why).  With idx, deflated content of more than
 * AR_SOZIP_CHUNK bytes is written as SOZip chunks and idx gets their
 * offsets (idx->lost: it could not be; idx->offs is the caller's to free). */
int ar_content_write(const struct archive_change *c, struct file_src *s,
		     int out_fd, uint64_t off, uint64_t *comp_size,
		     uint32_t *crc, struct sozip_index *idx);

/* ---- zipfmt.c: zip records written by our commits (clone and copy) ---- */

/* One entry as the cloned commit writes it. */
struct zip_entry {
	const char *name;
	uint16_t name_len;
	uint16_t made_by, needed, flags, method, time, date;
	uint32_t crc, ext_attr;
	uint64_t comp_size, size, lh_off;
	uint16_t pad;		/* local header: bytes of an alignment extra
				   field (0, or at least AR_PAD_MIN) */
};

/* Stored data a commit writes starts on an AR_ALIGN_BIG boundary for
 * members of AR_ALIGN_BIG_MIN bytes or more (block-aligned: range clones,
 * mmap straight out of the archive), else on AR_ALIGN_SMALL, as Android's
 * zipalign does: an extra field 0xd935 (alignment, then zeros). */
#define AR_ALIGN_BIG 4096u
#define AR_ALIGN_BIG_MIN (64u << 10)
#define AR_ALIGN_SMALL 64u
#define AR_PAD_MIN 6u
#define AR_PAD_ID 0xd935u

/* The padding e needs so that its data, after a local header starting at
 * lh_off, is aligned (e->method, e->size, e->name_len set). */
uint16_t ar_local_pad(const struct zip_entry *e, bool zip64, uint64_t lh_off);

/* Content of size bytes needs a zip64 local header (zipfile's rule). */
bool ar_local_needs_zip64(uint64_t size);

/* The local header of e (with the 20-byte zip64 extra when zip64, then
 * e->pad bytes of alignment extra) into p; returns its length,
 * ar_local_header_len(e, zip64). */
size_t ar_local_header(unsigned char *p, const struct zip_entry *e,
		       bool zip64);
size_t ar_local_header_len(const struct zip_entry *e, bool zip64);

/* The central-directory entry of e into p (a zip64 extra with the fields
 * that overflow 32 bits); returns its length, ar_central_len(e). */
size_t ar_central_entry(unsigned char *p, const struct zip_entry *e);
size_t ar_central_len(const struct zip_entry *e);

/* Central entry src (len bytes, a kept member's) into dst, its local
 * header offset now off: in the 32-bit field, or in the zip64 extra's
 * offset field when the entry has one; when off does not fit 32 bits and
 * the entry has no such field, one is inserted (into its zip64 extra after
 * the sizes, or a new zip64 extra at the end of its extra field).  Every
 * other byte is src's (needed version at least 4.5 with a zip64 field).
 * Returns the new length (len, at most len + 12), or 0: no room for a
 * zip64 field in the extra field. */
size_t ar_central_moved(unsigned char *dst, const unsigned char *src,
			size_t len, uint64_t off);

/* The end records of a central directory (zip64 ones when a field
 * overflows) into p (at most AR_END_MAX bytes); returns their length. */
#define AR_END_MAX (56 + 20 + 22)
size_t ar_end_records(unsigned char *p, uint64_t entries, uint64_t cd_off,
		      uint64_t cd_size);

/* t as a DOS time and date (local time; 1980-01-01 before 1980). */
void ar_dos_time(time_t t, uint16_t *dtime, uint16_t *ddate);

/* ---- clone.c: the commit by reflink, or by copy ---- */

/* ar_clone_commit() declines: the caller has libzip write the archive. */
#define AR_CLONE_DECLINED 1

/* Write the new archive of changes[0..n) through s (temporary file,
 * fsync, rename; s->opened is the new archive): as a clone of a's file,
 * edited where it changed, or, where the filesystem cannot clone or the
 * clone would hold too many dead bytes, as a copy written from scratch.
 * Returns 0; AR_CLONE_DECLINED (nothing written, no temporary file left)
 * under archive_tune_commit(false) or when nothing changed; or -errno
 * with s->msg set. */
int ar_clone_commit(struct archive *a, const struct archive_change *changes,
		    size_t n, struct file_src *s);

#endif
