/* archive.c - the zip archive under the mount: listing, name index, reads.
 *
 * Invariants:
 *  - the member table is built once in archive_open() and never changes; the
 *    central directory is parsed here (zip64 aware) and cross-checked against
 *    libzip's listing, so both agree on count, names and sizes;
 *  - a member's data starts at data_off = local header offset + 30 +
 *    name_len + LOCAL extra_len (read once, on first use, then cached);
 *  - deflated member i owns the region [base_i, base_i + size_i) of one
 *    unlinked sparse cache file; bytes [0, frontier_i) of that region hold
 *    the member's inflated data and never change afterwards;
 *  - a read that moves the frontier gets the new part of its range inflated
 *    into its own buffer (then written to the cache), only the part that
 *    was already inflated comes from the cache file.
 *
 * Threads.  protects:
 *  - a->zip_lock: every libzip call on a->zip (only used while opening:
 *    discarded once the member table is built);
 *  - m->lock: the inflate progress of member m (its frontier only grows, under
 *    this lock); take before a->pool_lock;
 *  - a->pool_lock: the stream pool (slot owner, busy, tick) and every m->zs;
 *  - m->data_off, m->frontier and m->bad are atomics read without a lock, so
 *    stored reads and reads below the frontier never wait for anybody.
 *
 * Writing (archive_commit(), at the end of this file) never touches a->zip
 * nor the member table: it reads the old file through a->fd with pread() and
 * replaces the file at a->path by rename(), so readers of a are undisturbed.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "archive.h"
#include "cache.h"

#define WRITEBACK_STEP (8u << 20)	/* start writeback every 8 MiB */
#define ARCHIVE_STREAMS 8		/* live inflate streams kept (LRU) */
#define ARCHIVE_IN_BLOCK (256u << 10)	/* compressed input per pread */
#define ARCHIVE_OUT_BLOCK (256u << 10)	/* inflated output per pwrite */
#define ARCHIVE_STEP (128u << 10)	/* least output of one inflate step */
#define ARCHIVE_MAX_STEP (1u << 30)	/* output per inflate() call */
#define ARCHIVE_SMALL (64u << 10)	/* inflated whole, no pooled stream */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u

#define NO_OWNER SIZE_MAX

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

struct inflater {
	z_stream z;
	bool z_ready;		/* inflateInit2 done */
	bool pooled;		/* a pool slot, not a one-shot private stream */
	bool busy;		/* pool_lock: a reader is using it */
	size_t owner;		/* pool_lock: member index or NO_OWNER */
	uint64_t tick;		/* pool_lock: last use, for LRU */
	uint64_t in_pos;	/* compressed bytes read so far */
	uint64_t out_pos;	/* uncompressed bytes produced so far */
	uint32_t crc;		/* CRC-32 of the out_pos bytes */
	unsigned char *in, *out;
	size_t in_cap, out_cap;
};

struct member {
	struct archive_member pub;	/* first: archive_member() returns it */
	const char *raw_name;		/* bytes as in the zip, for the local header */
	uint16_t raw_len;
	uint16_t flags;			/* general purpose bit flags */
	uint64_t lh_off;		/* local header offset */
	uint64_t base;			/* region in the cache file */
	_Atomic uint64_t data_off;	/* 0 until the local header was read */
	_Atomic uint64_t frontier;	/* bytes inflated into the cache */
	_Atomic int bad;		/* enum member_fault */
	pthread_mutex_t lock;		/* inflate progress; before pool_lock */
	struct inflater *zs;		/* pool_lock: pooled stream, or NULL */
	struct archive *a;		/* the archive (for eviction) */
	struct cache_item ci;		/* [base, base + frontier) in the budget */
	_Atomic unsigned pins;		/* readers reading the cache unlocked */
};

struct archive {
	char *path;			/* realpath() of the archive */
	struct stat st;			/* fstat() of fd at open */
	int fd;				/* the archive, for pread */
	int cache_fd;			/* inflated data, -1 until first needed */
	pthread_mutex_t cache_open_lock;	/* creating cache_fd; leaf */
	_Atomic bool rewritten;		/* the file changed behind fd: reads fail */
	uint64_t file_size;
	zip_t *zip;
	pthread_mutex_t zip_lock;	/* every libzip call on zip */
	size_t count;
	struct member *m;
	char *names;			/* all names, NUL-terminated */
	uint32_t *index;		/* hash: member index + 1, 0 = empty */
	size_t index_mask;
	pthread_mutex_t pool_lock;	/* pool, every m->zs; after m->lock */
	struct inflater pool[ARCHIVE_STREAMS];
	uint64_t tick;			/* pool_lock */
};

/* One entry of the central directory as parsed by us. */
struct cd_entry {
	const unsigned char *name;
	uint16_t name_len;
	uint16_t flags;
	uint16_t method;
	uint32_t crc;
	uint64_t comp_size;
	uint64_t size;
	uint64_t lh_off;
};

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* pread until len bytes or end of file.  Returns bytes read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_CLMUL_CRC 1

/* CRC-32 (zlib's, bit-reflected 0xedb88320) by carry-less multiplication:
 * "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
 * Instruction", V. Gopal, E. Ozturk et al., Intel 2009, folding four
 * 128-bit lanes over 64-byte blocks, then one lane, then Barrett reduction
 * (constants from the paper's appendix for the reflected domain, as in
 * Chromium's zlib).  len >= 64 and a multiple of 16; crc is not inverted
 * here (the caller inverts before and after). */
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc32_clmul(uint32_t crc, const unsigned char *p, size_t len)
{
	const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
	const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
	const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
	const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
	const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
	__m128i x1, x2, x3, x4, x5, x6, x7, x8;

	x1 = _mm_loadu_si128((const void *)(p + 0x00));
	x2 = _mm_loadu_si128((const void *)(p + 0x10));
	x3 = _mm_loadu_si128((const void *)(p + 0x20));
	x4 = _mm_loadu_si128((const void *)(p + 0x30));
	x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
	p += 64;
	len -= 64;
	while (len >= 64) {
		x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
		x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
		x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
		x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
		x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
		x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
		x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
		x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
		x1 = _mm_xor_si128(_mm_xor_si128(x1, x5),
				   _mm_loadu_si128((const void *)(p + 0x00)));
		x2 = _mm_xor_si128(_mm_xor_si128(x2, x6),
				   _mm_loadu_si128((const void *)(p + 0x10)));
		x3 = _mm_xor_si128(_mm_xor_si128(x3, x7),
				   _mm_loadu_si128((const void *)(p + 0x20)));
		x4 = _mm_xor_si128(_mm_xor_si128(x4, x8),
				   _mm_loadu_si128((const void *)(p + 0x30)));
		p += 64;
		len -= 64;
	}
	/* four lanes into one */
	x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
	x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
	x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
	x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
	x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
	x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
	x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
	while (len >= 16) {
		x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
		x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
		x1 = _mm_xor_si128(_mm_xor_si128(x1, x5),
				   _mm_loadu_si128((const void *)p));
		p += 16;
		len -= 16;
	}
	/* 128 bits to 64, then Barrett reduction to 32 */
	x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
	x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
	x2 = _mm_srli_si128(x1, 4);
	x1 = _mm_and_si128(x1, mask);
	x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k5k0, 0x00), x2);
	x2 = _mm_and_si128(x1, mask);
	x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
	x2 = _mm_and_si128(x2, mask);
	x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
	x1 = _mm_xor_si128(x1, x2);
	return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

/* zlib's crc32_z(crc, p, len), with PCLMULQDQ where the CPU has it. */
static uint32_t crc32_fast(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

#ifdef HAVE_CLMUL_CRC
	if (len >= 64 && __builtin_cpu_supports("pclmul") &&
	    __builtin_cpu_supports("sse4.1")) {
		size_t n = len & ~(size_t)15;

		crc = ~crc32_clmul(~crc, p, n);
		p += n;
		len -= n;
	}
#endif
	return (uint32_t)crc32_z(crc, p, len);
}

/* The one place libzip error codes become -errno. */
static int zip_error_to_errno(zip_error_t *ze)
{
	switch (zip_error_code_zip(ze)) {
	case ZIP_ER_OK:
		return 0;
	case ZIP_ER_OPEN:
	case ZIP_ER_READ:
	case ZIP_ER_SEEK:
	case ZIP_ER_TELL:
	case ZIP_ER_WRITE:
	case ZIP_ER_TMPOPEN:
	case ZIP_ER_RENAME:
	case ZIP_ER_CLOSE:
	case ZIP_ER_REMOVE:
		if (zip_error_system_type(ze) == ZIP_ET_SYS &&
		    zip_error_code_system(ze) > 0)
			return -zip_error_code_system(ze);
		return -EIO;
	case ZIP_ER_NOENT:
		return -ENOENT;
	case ZIP_ER_EXISTS:
		return -EEXIST;
	case ZIP_ER_MEMORY:
		return -ENOMEM;
	case ZIP_ER_NOZIP:
	case ZIP_ER_INCONS:
	case ZIP_ER_MULTIDISK:
	case ZIP_ER_EOF:
	case ZIP_ER_INVAL:
		return -EINVAL;
	case ZIP_ER_RDONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Find the end of central directory.  Fills the CD's offset, size and
 * entry count.  Returns 0 or -EINVAL/-EIO with a message. */
static int find_cdir(struct archive *a, uint64_t *cd_off, uint64_t *cd_size,
		     uint64_t *entries, struct npz_err *err)
{
	unsigned char *tail, head[4], loc[20], rec[56];
	size_t tail_len, i;
	uint64_t eocd = 0, cd_end;
	bool found = false;
	ssize_t n;
	int ret = 0;

	if (a->file_size == 0) {
		npz_err_set(err, "not a zip archive (empty file)");
		return -EINVAL;
	}
	tail_len = a->file_size < 22 + 65535 ? (size_t)a->file_size : 22 + 65535;
	tail = malloc(tail_len);
	if (!tail)
		return -ENOMEM;
	n = pread_full(a->fd, tail, tail_len, a->file_size - tail_len);
	if (n != (ssize_t)tail_len) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "read error: %s", strerror(-ret));
		goto out_free_tail;
	}
	for (i = tail_len >= 22 ? tail_len - 22 + 1 : 0; i-- > 0;) {
		if (get32(tail + i) == SIG_EOCD &&
		    i + 22 + get16(tail + i + 20) <= tail_len) {
			found = true;
			break;
		}
	}
	if (!found) {
		n = pread_full(a->fd, head, 4, 0);
		if (n == 4 && get32(head) == SIG_LOCAL)
			npz_err_set(err, "damaged archive: end of central "
				    "directory not found (truncated file?)");
		else
			npz_err_set(err, "not a zip archive");
		ret = -EINVAL;
		goto out_free_tail;
	}
	eocd = a->file_size - tail_len + i;
	if (get16(tail + i + 4) != 0 || get16(tail + i + 6) != 0) {
		npz_err_set(err, "multi-disk zip archives are not supported");
		ret = -EINVAL;
		goto out_free_tail;
	}
	*entries = get16(tail + i + 10);
	*cd_size = get32(tail + i + 12);
	*cd_off = get32(tail + i + 16);
	cd_end = eocd;

	/* zip64: locator right before the EOCD, pointing at the record. */
	if (eocd >= 20 && pread_full(a->fd, loc, 20, eocd - 20) == 20 &&
	    get32(loc) == SIG_EOCD64_LOC) {
		uint64_t rec_off = get64(loc + 8);

		if (rec_off > eocd - 20 || eocd - 20 - rec_off < 56 ||
		    pread_full(a->fd, rec, 56, rec_off) != 56 ||
		    get32(rec) != SIG_EOCD64) {
			npz_err_set(err, "damaged archive: bad zip64 end of "
				    "central directory");
			ret = -EINVAL;
			goto out_free_tail;
		}
		*entries = get64(rec + 32);
		*cd_size = get64(rec + 40);
		*cd_off = get64(rec + 48);
		cd_end = rec_off;
	}
	if (*cd_off > cd_end || *cd_size > cd_end - *cd_off) {
		npz_err_set(err, "damaged archive: central directory past "
			    "end of file");
		ret = -EINVAL;
	} else if (*entries > *cd_size / 46) {
		npz_err_set(err, "damaged archive: %llu entries cannot fit "
			    "in a %llu-byte central directory",
			    (unsigned long long)*entries,
			    (unsigned long long)*cd_size);
		ret = -EINVAL;
	}
out_free_tail:
	free(tail);
	return ret;
}

/* Parse one central header at p (avail bytes left).  Returns its length,
 * or 0 if it is damaged (message in err). */
static size_t parse_central(const unsigned char *p, size_t avail, size_t idx,
			    struct cd_entry *e, struct npz_err *err)
{
	size_t len, extra_len, comment_len;
	const unsigned char *x, *xend;
	uint32_t comp32, size32, off32;

	if (avail < 46 || get32(p) != SIG_CENTRAL) {
		npz_err_set(err, "damaged archive: bad central directory "
			    "entry %zu", idx);
		return 0;
	}
	e->flags = get16(p + 8);
	e->method = get16(p + 10);
	e->crc = get32(p + 16);
	comp32 = get32(p + 20);
	size32 = get32(p + 24);
	e->name_len = get16(p + 28);
	extra_len = get16(p + 30);
	comment_len = get16(p + 32);
	off32 = get32(p + 42);
	len = 46 + e->name_len + extra_len + comment_len;
	if (len > avail) {
		npz_err_set(err, "damaged archive: central directory entry "
			    "%zu past its end", idx);
		return 0;
	}
	e->name = p + 46;
	e->comp_size = comp32;
	e->size = size32;
	e->lh_off = off32;

	/* zip64 extended information: only the fields that overflowed. */
	x = p + 46 + e->name_len;
	xend = x + extra_len;
	while (xend - x >= 4) {
		uint16_t id = get16(x), sz = get16(x + 2);
		const unsigned char *f = x + 4, *fend = f + sz;

		if (sz > xend - f)
			break;
		if (id == 0x0001) {
			if (size32 == 0xffffffffu && fend - f >= 8) {
				e->size = get64(f);
				f += 8;
			}
			if (comp32 == 0xffffffffu && fend - f >= 8) {
				e->comp_size = get64(f);
				f += 8;
			}
			if (off32 == 0xffffffffu && fend - f >= 8)
				e->lh_off = get64(f);
			break;
		}
		x = fend;
	}
	return len;
}

/* libzip's raw name of an entry against the central directory's bytes:
 * equal, except that libzip shows a NUL byte as a space (or may stop at
 * the first one). */
static bool name_matches(const char *raw, const struct cd_entry *e)
{
	size_t len = strlen(raw), k;

	if (len > e->name_len || (len < e->name_len && e->name[len] != 0))
		return false;
	for (k = 0; k < len; k++)
		if ((unsigned char)raw[k] != e->name[k] &&
		    !(e->name[k] == 0 && raw[k] == ' '))
			return false;
	return true;
}

/* Cross-check entry i of our parse against libzip's listing and fill
 * the public fields.  Returns 0 or -EINVAL. */
static int check_entry(struct archive *a, size_t i, const struct cd_entry *e,
		       zip_stat_t *st, struct npz_err *err)
{
	const char *raw;

	zip_stat_init(st);
	if (zip_stat_index(a->zip, i, 0, st) < 0) {
		npz_err_set(err, "damaged archive: entry %zu: %s", i,
			    zip_strerror(a->zip));
		return -EINVAL;
	}
	raw = zip_get_name(a->zip, i, ZIP_FL_ENC_RAW);
	if (!raw || !name_matches(raw, e)) {
		npz_err_set(err, "damaged archive: entry %zu: name differs "
			    "from libzip's", i);
		return -EINVAL;
	}
	if (!(st->valid & ZIP_STAT_NAME) || !(st->valid & ZIP_STAT_SIZE) ||
	    st->size != e->size || st->comp_size != e->comp_size ||
	    st->comp_method != e->method || st->crc != e->crc) {
		npz_err_set(err, "damaged archive: entry %zu (%s): sizes "
			    "differ from libzip's", i, raw);
		return -EINVAL;
	}
	if (e->method == ARCHIVE_STORE && e->size != e->comp_size) {
		npz_err_set(err, "damaged archive: entry %zu (%s): stored "
			    "with %llu bytes for %llu", i, raw,
			    (unsigned long long)e->comp_size,
			    (unsigned long long)e->size);
		return -EINVAL;
	}
	if (e->lh_off > a->file_size || a->file_size - e->lh_off < 30 ||
	    e->comp_size > a->file_size) {
		npz_err_set(err, "damaged archive: central directory entry "
			    "%zu past end of file", i);
		return -EINVAL;
	}
	return 0;
}

static int build_index(struct archive *a)
{
	size_t cap = 16, i;

	while (cap < 2 * a->count)
		cap <<= 1;
	a->index = calloc(cap, sizeof(*a->index));
	if (!a->index)
		return -ENOMEM;
	a->index_mask = cap - 1;
	/* A later duplicate replaces an earlier one, as in Python's zipfile. */
	for (i = 0; i < a->count; i++) {
		size_t h = (size_t)fnv1a(a->m[i].pub.name) & a->index_mask;

		if (a->m[i].pub.nul_name)	/* not found by its cut name */
			continue;
		while (a->index[h] &&
		       strcmp(a->m[a->index[h] - 1].pub.name,
			      a->m[i].pub.name) != 0)
			h = (h + 1) & a->index_mask;
		a->index[h] = (uint32_t)(i + 1);
	}
	return 0;
}

/* The budget wants m's cached bytes back (cache.h: called with the
 * cache's lock held, must not block).  Readers outside m->lock pin the
 * member before they load the frontier; we zero the frontier before we
 * look at the pins, so either they see 0 (and inflate under m->lock, which
 * we hold) or we see their pin (and keep the data). */
static bool member_evict(struct cache_item *it)
{
	struct member *m = (struct member *)((char *)it -
					     offsetof(struct member, ci));
	uint64_t fr;

	if (pthread_mutex_trylock(&m->lock))
		return false;
	fr = atomic_exchange(&m->frontier, 0);
	if (atomic_load(&m->pins)) {
		atomic_store(&m->frontier, fr);
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	if (fr)
		fallocate(m->a->cache_fd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)m->base, (off_t)fr);
	pthread_mutex_unlock(&m->lock);
	return true;
}

/* Is the file behind a->fd still the one indexed (same size and mtime)?
 * Another program may rewrite it in place (np.savez truncates and
 * rewrites): our offsets then point into other bytes, so every read of it
 * fails from then on.  One fstat per call; call it after reading.
 * Returns 0 or -EIO (logged once). */
static int file_unchanged(struct archive *a)
{
	struct stat sb;

	if (atomic_load(&a->rewritten))
		return -EIO;
	if (fstat(a->fd, &sb) == 0 && sb.st_size == a->st.st_size &&
	    sb.st_mtim.tv_sec == a->st.st_mtim.tv_sec &&
	    sb.st_mtim.tv_nsec == a->st.st_mtim.tv_nsec)
		return 0;
	if (!atomic_exchange(&a->rewritten, true))
		npz_log("%s: the archive was rewritten in place by another "
			"program since it was opened: its members cannot be "
			"read any more (EIO) until it is mounted again",
			a->path);
	return -EIO;
}

/* The cache file of inflated data, created on first use.  Returns the
 * descriptor, or -1 when none can be made (reads then stream). */
static int cache_file(struct archive *a)
{
	int fd;

	pthread_mutex_lock(&a->cache_open_lock);
	if (a->cache_fd < 0) {
		fd = cache_tmpfile();
		if (fd >= 0)
			a->cache_fd = fd;
		else
			npz_log("cannot create a cache file in %s: %s; "
				"deflated members are read without a cache",
				cache_dir(), strerror(-fd));
	}
	fd = a->cache_fd;
	pthread_mutex_unlock(&a->cache_open_lock);
	return fd;
}

/* Read the central directory, check it against libzip and build the
 * member table, names and index. */
static int load_members(struct archive *a, struct npz_err *err)
{
	uint64_t cd_off, cd_size, entries, base = 0;
	struct cd_entry *ents = NULL;
	unsigned char *cd = NULL;
	size_t i, pos = 0, names_len = 0;
	zip_int64_t zn;
	char *np;
	ssize_t n;
	int ret;

	ret = find_cdir(a, &cd_off, &cd_size, &entries, err);
	if (ret)
		return ret;
	if (entries >= UINT32_MAX || cd_size > SIZE_MAX) {
		npz_err_set(err, "damaged archive: too many entries");
		return -EINVAL;
	}
	cd = malloc(cd_size ? (size_t)cd_size : 1);
	ents = calloc(entries ? (size_t)entries : 1, sizeof(*ents));
	if (!cd || !ents) {
		ret = -ENOMEM;
		goto out_free;
	}
	n = pread_full(a->fd, cd, (size_t)cd_size, cd_off);
	if (n != (ssize_t)cd_size) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "read error: %s", strerror(-ret));
		goto out_free;
	}
	for (i = 0; i < entries; i++) {
		size_t len = parse_central(cd + pos, (size_t)cd_size - pos, i,
					   &ents[i], err);
		if (!len) {
			ret = -EINVAL;
			goto out_free;
		}
		pos += len;
	}

	pthread_mutex_lock(&a->zip_lock);
	zn = zip_get_num_entries(a->zip, 0);
	if (zn < 0 || (uint64_t)zn != entries) {
		npz_err_set(err, "damaged archive: %llu entries in the central "
			    "directory, libzip sees %lld",
			    (unsigned long long)entries, (long long)zn);
		ret = -EINVAL;
		goto out_unlock;
	}
	a->count = (size_t)entries;
	a->m = calloc(a->count ? a->count : 1, sizeof(*a->m));
	if (!a->m) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	for (i = 0; i < a->count; i++)
		names_len += 2 * ((size_t)ents[i].name_len + 1);
	/* the UTF-8 name can be longer than the raw one (CP437 guess) */
	a->names = malloc(names_len + 1);
	if (!a->names) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	np = a->names;
	for (i = 0; i < a->count; i++) {
		struct member *m = &a->m[i];
		const struct cd_entry *e = &ents[i];
		zip_stat_t st;
		size_t sl;

		ret = check_entry(a, i, e, &st, err);
		if (ret)
			goto out_unlock;
		pthread_mutex_init(&m->lock, NULL);
		m->a = a;
		m->ci.evict = member_evict;
		memcpy(np, e->name, e->name_len);
		np[e->name_len] = '\0';
		m->raw_name = np;
		m->raw_len = e->name_len;
		np += e->name_len + 1;
		sl = strlen(st.name);
		if (sl == e->name_len && memcmp(st.name, e->name, sl) == 0) {
			m->pub.name = m->raw_name;
		} else {
			char *u = strdup(st.name);	/* rare: non-UTF-8 names */

			if (!u) {
				ret = -ENOMEM;
				goto out_unlock;
			}
			m->pub.name = u;
		}
		m->pub.nul_name = memchr(e->name, 0, e->name_len) != NULL;
		m->pub.size = e->size;
		m->pub.comp_size = e->comp_size;
		m->pub.method = e->method;
		m->pub.crc = e->crc;
		m->pub.mtime = (st.valid & ZIP_STAT_MTIME) ? st.mtime : 0;
		m->flags = e->flags;
		m->lh_off = e->lh_off;
		if (e->method == ARCHIVE_DEFLATE) {
			if (base > INT64_MAX - 8192 ||
			    e->size > INT64_MAX - 8192 - base) {
				npz_err_set(err, "damaged archive: member "
					    "sizes too large");
				ret = -EINVAL;
				goto out_unlock;
			}
			/* whole blocks each: punching one frees it all */
			m->base = base;
			base += (e->size + 4095) & ~(uint64_t)4095;
		}
	}
	pthread_mutex_unlock(&a->zip_lock);

	ret = build_index(a);
	goto out_free;

out_unlock:
	pthread_mutex_unlock(&a->zip_lock);
out_free:
	free(ents);
	free(cd);
	return ret;
}

/* archive_open(), with path already resolved (`resolved`) or not. */
static int open_path(const char *path, bool resolved, struct archive **out,
		     struct npz_err *err)
{
	struct archive *a;
	struct stat sb;
	zip_error_t ze;
	int zfd, zerr = 0, ret;
	size_t i;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cache_fd = -1;
	pthread_mutex_init(&a->zip_lock, NULL);
	pthread_mutex_init(&a->cache_open_lock, NULL);
	pthread_mutex_init(&a->pool_lock, NULL);
	for (i = 0; i < ARCHIVE_STREAMS; i++) {
		a->pool[i].owner = NO_OWNER;
		a->pool[i].pooled = true;
	}
	a->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (a->fd < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_free;
	}
	if (fstat(a->fd, &sb) < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_close;
	}
	if (S_ISDIR(sb.st_mode)) {
		ret = -EISDIR;
		npz_err_set(err, "%s", strerror(EISDIR));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode)) {
		ret = -EINVAL;
		npz_err_set(err, "not a regular file");
		goto out_close;
	}
	a->st = sb;
	a->file_size = (uint64_t)sb.st_size;
	/* realpath() costs one readlink() per component: once per mount */
	a->path = resolved ? strdup(path) : realpath(path, NULL);
	if (!a->path) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_close;
	}
	if (a->file_size == 0) {
		ret = -EINVAL;
		npz_err_set(err, "not a zip archive (empty file)");
		goto out_close;
	}

	/* libzip gets its own descriptor of the same open file. */
	zfd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
	if (zfd < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_close;
	}
	a->zip = zip_fdopen(zfd, 0, &zerr);
	if (!a->zip) {
		close(zfd);
		zip_error_init_with_code(&ze, zerr);
		ret = zip_error_to_errno(&ze);
		if (zerr == ZIP_ER_NOZIP) {
			/* our own parse tells truncated from not-a-zip */
			if (find_cdir(a, &(uint64_t){0}, &(uint64_t){0},
				      &(uint64_t){0}, err) == 0)
				npz_err_set(err, "damaged archive: "
					    "central directory unreadable");
		} else if (ret == -EINVAL) {
			npz_err_set(err, "damaged archive: %s",
				    zip_error_strerror(&ze));
		} else {
			npz_err_set(err, "%s", zip_error_strerror(&ze));
		}
		zip_error_fini(&ze);
		goto out_close;
	}
	ret = load_members(a, err);
	if (ret)
		goto out_close;
	/* libzip's listing only cross-checked ours: don't keep a second
	 * member table (about 200 bytes a member) for the archive's life */
	pthread_mutex_lock(&a->zip_lock);
	zip_discard(a->zip);
	a->zip = NULL;
	pthread_mutex_unlock(&a->zip_lock);
	*out = a;
	return 0;

out_close:
	archive_close(a);
	return ret;
out_free:
	pthread_mutex_destroy(&a->zip_lock);
	pthread_mutex_destroy(&a->pool_lock);
	pthread_mutex_destroy(&a->cache_open_lock);
	free(a);
	return ret;
}

int archive_open(const char *path, struct archive **out, struct npz_err *err)
{
	return open_path(path, false, out, err);
}

int archive_open_resolved(const char *path, struct archive **out,
			  struct npz_err *err)
{
	return open_path(path, true, out, err);
}

static void inflater_free_buffers(struct inflater *s)
{
	if (s->z_ready)
		inflateEnd(&s->z);
	s->z_ready = false;
	free(s->in);
	free(s->out);
	s->in = s->out = NULL;
}

/* Free everything but the descriptors and the path. */
static void free_tables(struct archive *a)
{
	size_t i;

	for (i = 0; i < ARCHIVE_STREAMS; i++)
		inflater_free_buffers(&a->pool[i]);
	if (a->m) {
		for (i = 0; i < a->count && a->m[i].raw_name; i++) {
			cache_drop(&a->m[i].ci);
			if (a->m[i].pub.name &&
			    a->m[i].pub.name != a->m[i].raw_name)
				free((char *)a->m[i].pub.name);
			pthread_mutex_destroy(&a->m[i].lock);
		}
	}
	free(a->m);
	free(a->names);
	free(a->index);
	a->m = NULL;
	a->names = NULL;
	a->index = NULL;
	a->count = 0;
	pthread_mutex_lock(&a->zip_lock);
	if (a->zip)
		zip_discard(a->zip);
	a->zip = NULL;
	pthread_mutex_unlock(&a->zip_lock);
}

void archive_retire(struct archive *a)
{
	if (!a)
		return;
	free_tables(a);
	/* no span points into the cache (archive_member_span): its bytes
	 * can go now, out of the budget and off the disk */
	if (a->cache_fd >= 0)
		close(a->cache_fd);
	a->cache_fd = -1;
}

void archive_close(struct archive *a)
{
	if (!a)
		return;
	free_tables(a);
	if (a->cache_fd >= 0)
		close(a->cache_fd);
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	pthread_mutex_destroy(&a->zip_lock);
	pthread_mutex_destroy(&a->pool_lock);
	pthread_mutex_destroy(&a->cache_open_lock);
	free(a);
}

size_t archive_count(const struct archive *a)
{
	return a->count;
}

const struct archive_member *archive_member(const struct archive *a, size_t i)
{
	return i < a->count ? &a->m[i].pub : NULL;
}

int archive_find(const struct archive *a, const char *name, size_t *idx)
{
	size_t h = (size_t)fnv1a(name) & a->index_mask;

	for (; a->index[h]; h = (h + 1) & a->index_mask) {
		if (strcmp(a->m[a->index[h] - 1].pub.name, name) == 0) {
			*idx = a->index[h] - 1;
			return 0;
		}
	}
	return -ENOENT;
}

const char *archive_method_name(uint16_t method)
{
	static _Thread_local char other[24];

	switch (method) {
	case ARCHIVE_STORE:
		return "stored";
	case ARCHIVE_DEFLATE:
		return "deflated";
	default:
		snprintf(other, sizeof(other), "method %u", method);
		return other;
	}
}

/* Record that m is damaged and say why.  Returns -EIO. */
static int member_fail(struct member *m, int fault, struct npz_err *err)
{
	int expected = FAULT_NONE;

	atomic_compare_exchange_strong(&m->bad, &expected, fault);
	switch (atomic_load(&m->bad)) {
	case FAULT_LOCAL_HEADER:
		npz_err_set(err, "member %s: bad local header", m->pub.name);
		break;
	case FAULT_PAST_EOF:
		npz_err_set(err, "member %s: data past end of archive",
			    m->pub.name);
		break;
	case FAULT_SIZE:
		npz_err_set(err, "member %s: inflated size differs from %llu",
			    m->pub.name, (unsigned long long)m->pub.size);
		break;
	case FAULT_CRC:
		npz_err_set(err, "member %s: CRC mismatch", m->pub.name);
		break;
	case FAULT_ENCRYPTED:
		npz_err_set(err, "member %s: encrypted members are not "
			    "supported", m->pub.name);
		break;
	default:
		npz_err_set(err, "member %s: damaged deflate data",
			    m->pub.name);
		break;
	}
	return -EIO;
}

/* Offset of m's data in the archive, from its local header (read once).
 * Returns the offset (> 0) or -errno. */
static int64_t member_data_off(struct archive *a, struct member *m,
			       struct npz_err *err)
{
	uint64_t off = atomic_load_explicit(&m->data_off, memory_order_acquire);
	unsigned char stackbuf[30 + 256], *h = stackbuf;
	size_t need = 30 + (size_t)m->raw_len;
	ssize_t n;
	int ret = 0;

	if (off)
		return (int64_t)off;
	if (atomic_load(&m->bad))
		return member_fail(m, FAULT_NONE, err);
	if (m->flags & 1)
		return member_fail(m, FAULT_ENCRYPTED, err);
	if (need > sizeof(stackbuf)) {
		h = malloc(need);
		if (!h)
			return -ENOMEM;
	}
	n = pread_full(a->fd, h, need, m->lh_off);
	if (n >= 0 && file_unchanged(a)) {
		ret = -EIO;
		npz_err_set(err, "member %s: the archive changed on disk",
			    m->pub.name);
	} else if (n < 0) {
		ret = (int)n;
		npz_err_set(err, "member %s: %s", m->pub.name, strerror(-ret));
	} else if ((size_t)n < need || get32(h) != SIG_LOCAL ||
		   get16(h + 26) != m->raw_len ||
		   memcmp(h + 30, m->raw_name, m->raw_len) != 0) {
		ret = member_fail(m, FAULT_LOCAL_HEADER, err);
	} else {
		off = m->lh_off + 30 + m->raw_len + get16(h + 28);
		if (off > a->file_size || m->pub.comp_size > a->file_size - off)
			ret = member_fail(m, FAULT_PAST_EOF, err);
		else
			atomic_store_explicit(&m->data_off, off,
					      memory_order_release);
	}
	if (h != stackbuf)
		free(h);
	return ret ? ret : (int64_t)off;
}

/* Get a stream for member idx: its live pooled one, a free or least
 * recently used idle pool slot (reset), or a one-shot private stream for
 * small members and when every slot is busy.  Returns NULL on ENOMEM. */
static struct inflater *stream_get(struct archive *a, size_t idx)
{
	struct member *m = &a->m[idx];
	struct inflater *s = NULL, *victim = NULL;
	size_t i;

	if (m->pub.size > ARCHIVE_SMALL) {
		pthread_mutex_lock(&a->pool_lock);
		if (m->zs) {
			s = m->zs;
		} else {
			for (i = 0; i < ARCHIVE_STREAMS; i++) {
				struct inflater *p = &a->pool[i];

				if (p->busy)
					continue;
				if (!victim || p->owner == NO_OWNER ||
				    (victim->owner != NO_OWNER &&
				     p->tick < victim->tick))
					victim = p;
				if (p->owner == NO_OWNER)
					break;
			}
			s = victim;
			if (s) {
				if (s->owner != NO_OWNER)
					a->m[s->owner].zs = NULL;
				s->owner = idx;
				m->zs = s;
				s->in_pos = s->out_pos = 0;
				s->crc = crc32(0, NULL, 0);
				s->z.avail_in = 0;
				if (s->z_ready)
					inflateReset(&s->z);
			}
		}
		if (s) {
			s->busy = true;
			s->tick = ++a->tick;
		}
		pthread_mutex_unlock(&a->pool_lock);
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->owner = idx;
		s->crc = crc32(0, NULL, 0);
	}
	if (!s->in) {
		s->in_cap = ARCHIVE_IN_BLOCK;
		s->out_cap = ARCHIVE_OUT_BLOCK;
		if (!s->pooled) {
			if (m->pub.comp_size < s->in_cap)
				s->in_cap = m->pub.comp_size ? m->pub.comp_size : 1;
			if (m->pub.size < s->out_cap)
				s->out_cap = m->pub.size ? m->pub.size : 1;
		}
		s->in = malloc(s->in_cap);
		s->out = malloc(s->out_cap);
	}
	if (s->in && s->out && !s->z_ready &&
	    inflateInit2(&s->z, -MAX_WBITS) == Z_OK)
		s->z_ready = true;
	if (!s->in || !s->out || !s->z_ready) {
		if (s->pooled) {
			/* keep the slot, without its buffers */
			inflater_free_buffers(s);
			pthread_mutex_lock(&a->pool_lock);
			s->busy = false;
			s->owner = NO_OWNER;
			m->zs = NULL;
			pthread_mutex_unlock(&a->pool_lock);
		} else {
			inflater_free_buffers(s);
			free(s);
		}
		return NULL;
	}
	return s;
}

/* Give s back; done: the member is finished (or failed), drop the stream. */
static void stream_put(struct archive *a, struct inflater *s, bool done)
{
	if (!s->pooled) {
		inflater_free_buffers(s);
		free(s);
		return;
	}
	pthread_mutex_lock(&a->pool_lock);
	s->busy = false;
	if (done) {
		a->m[s->owner].zs = NULL;
		s->owner = NO_OWNER;
	}
	pthread_mutex_unlock(&a->pool_lock);
}

/* The cache file for m, when m may be cached at all (it fits in the
 * budget), else -1. */
static int cache_file_if_any(struct archive *a, const struct member *m)
{
	if (m->pub.size > cache_limit())
		return -1;
	return cache_file(a);
}

/* Reset s to the start of its member's stream. */
static void stream_rewind(struct inflater *s)
{
	s->in_pos = s->out_pos = 0;
	s->crc = crc32(0, NULL, 0);
	s->z.avail_in = 0;
	inflateReset(&s->z);
}

/* Charge and write produced bytes [pos, pos + len) of member m at dst to
 * the cache when they extend its frontier.  A charge the budget refuses,
 * or a write error (disk full), only stops caching: returns false then. */
static bool cache_extend(struct archive *a, struct member *m, int fd,
			 const unsigned char *dst, uint64_t pos, size_t len)
{
	uint64_t fr = atomic_load(&m->frontier);
	size_t skip;
	int ret;

	if (fd < 0 || pos > fr || pos + len <= fr)
		return fd >= 0 && pos + len <= fr;
	skip = (size_t)(fr - pos);
	if (cache_charge(&m->ci, len - skip))
		return false;
	ret = pwrite_full(fd, dst + skip, len - skip, m->base + fr);
	if (ret) {
		cache_release(&m->ci, len - skip);
		npz_log("cache file in %s: %s; reading %s without it",
			cache_dir(), strerror(-ret), m->pub.name);
		return false;
	}
	(void)a;
	atomic_store_explicit(&m->frontier, pos + len, memory_order_release);
	return true;
}

/* Drop m's cached bytes (the cache file failed us).  m->lock held. */
static void cache_forget_member(struct archive *a, struct member *m)
{
	uint64_t fr = atomic_exchange(&m->frontier, 0);

	if (fr && a->cache_fd >= 0)
		fallocate(a->cache_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)m->base, (off_t)fr);
	cache_drop(&m->ci);
}

/* Fill buf with bytes [off, off + len) of deflated member idx: what is
 * cached from the cache file, the rest inflated straight into buf.  While
 * the budget lets it, inflated output extends the cached prefix
 * [0, frontier) of the member, up to `ahead` (read-ahead, >= off + len);
 * when it does not (member bigger than the budget, budget busy, cache
 * file full), the member is streamed: the inflate stream goes on from
 * where it is when the read is at or after it, and restarts from the
 * member's start when the read is behind it.  Called with m->lock held.
 * Returns 0 or -errno. */
static int member_inflate(struct archive *a, size_t idx, unsigned char *buf,
			  uint64_t off, size_t len, uint64_t ahead,
			  struct npz_err *err)
{
	struct member *m = &a->m[idx];
	uint64_t end = off + len, need = off, fr, target;
	int cfd = cache_file_if_any(a, m);
	struct inflater *s;
	int64_t data_off;
	bool done = false, caching = cfd >= 0;
	int ret = 0;

	if (atomic_load(&m->bad))
		return member_fail(m, FAULT_NONE, err);
	fr = atomic_load(&m->frontier);
	if (off < fr) {
		size_t k = (size_t)((end < fr ? end : fr) - off);
		ssize_t n = pread_full(a->cache_fd, buf, k, m->base + off);

		if (n == (ssize_t)k) {
			need = off + k;
			cache_touch(&m->ci);
		} else {
			npz_log("cache file in %s: %s; reading %s without it",
				cache_dir(), n < 0 ? strerror((int)-n) :
				"short read", m->pub.name);
			cache_forget_member(a, m);
		}
	}
	if (need >= end)
		return 0;
	data_off = member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	s = stream_get(a, idx);
	if (!s)
		return -ENOMEM;
	if (s->out_pos > need)
		stream_rewind(s);
	target = caching ? ahead : end;

	while (!done && (s->out_pos < target || s->out_pos >= m->pub.size)) {
		unsigned char *dst;
		size_t produced, cap;
		int zr;

		if (s->z.avail_in == 0) {
			size_t want = s->in_cap;
			ssize_t n;

			if (s->in_pos >= m->pub.comp_size) {
				ret = member_fail(m, FAULT_INFLATE, err);
				break;
			}
			if (m->pub.comp_size - s->in_pos < want)
				want = (size_t)(m->pub.comp_size - s->in_pos);
			n = pread_full(a->fd, s->in, want,
				       (uint64_t)data_off + s->in_pos);
			if (n != (ssize_t)want) {
				ret = n < 0 ? (int)n : -EIO;
				npz_err_set(err, "member %s: read error: %s",
					    m->pub.name, strerror(-ret));
				break;
			}
			ret = file_unchanged(a);
			if (ret)
				break;
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)want;
			s->in_pos += want;
		}
		/* Inside the caller's range the output goes to buf itself
		 * (no copy out of the cache afterwards); before it, our block
		 * stops at the range so that the next step lands in buf. */
		if (s->out_pos >= need && s->out_pos < end) {
			dst = buf + (s->out_pos - off);
			cap = (size_t)(end - s->out_pos);
		} else {
			dst = s->out;
			cap = s->out_cap;
			if (s->out_pos < need && need - s->out_pos < cap)
				cap = (size_t)(need - s->out_pos);
		}
		if (cap > ARCHIVE_MAX_STEP)
			cap = ARCHIVE_MAX_STEP;
		s->z.next_out = dst;
		s->z.avail_out = (uInt)cap;
		zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END &&
		    !(zr == Z_BUF_ERROR && s->z.avail_in == 0)) {
			ret = member_fail(m, FAULT_INFLATE, err);
			if (s->z.msg)
				npz_err_set(err, "member %s: damaged deflate "
					    "data: %s", m->pub.name, s->z.msg);
			break;
		}
		produced = cap - s->z.avail_out;
		if (produced > m->pub.size - s->out_pos) {
			ret = member_fail(m, FAULT_SIZE, err);
			break;
		}
		if (produced)
			s->crc = crc32_fast(s->crc, dst, produced);
		if (zr == Z_STREAM_END) {
			done = true;
			if (s->out_pos + produced != m->pub.size) {
				ret = member_fail(m, FAULT_SIZE, err);
				break;
			}
			if (s->crc != m->pub.crc) {
				ret = member_fail(m, FAULT_CRC, err);
				break;
			}
		}
		if (caching && produced &&
		    !cache_extend(a, m, cfd, dst, s->out_pos, produced)) {
			caching = false;
			target = end;
		}
		s->out_pos += produced;
	}
	stream_put(a, s, done || ret);
	return ret;
}

int archive_member_span(struct archive *a, size_t i, uint64_t off,
			size_t len, int *fd, uint64_t *pos, size_t *n,
			struct npz_err *err)
{
	struct member *m;
	int64_t data_off;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	*n = 0;
	*fd = a->fd;
	*pos = 0;
	if (off >= m->pub.size)
		return 0;
	if (len > m->pub.size - off)
		len = (size_t)(m->pub.size - off);
	/* Only stored members: cached inflated bytes may be evicted before
	 * the caller is done with the span. */
	if (m->pub.method != ARCHIVE_STORE)
		return -EAGAIN;
	data_off = member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	if (file_unchanged(a))
		return -EIO;
	*pos = (uint64_t)data_off + off;
	*n = len;
	return 0;
}

/* Read [off, off + len) of a deflated member: from the cache alone when
 * it holds the range (no lock: pinned against eviction), else under the
 * member's lock.  Returns 0 or -errno. */
static int deflated_read(struct archive *a, size_t i, void *buf, size_t len,
			 uint64_t off, struct npz_err *err)
{
	struct member *m = &a->m[i];
	uint64_t end = off + len, ahead;
	int ret = -EAGAIN;

	if (atomic_load(&m->bad))
		return member_fail(m, FAULT_NONE, err);
	atomic_fetch_add(&m->pins, 1);
	if (atomic_load(&m->frontier) >= end &&
	    pread_full(a->cache_fd, buf, len, m->base + off) == (ssize_t)len)
		ret = 0;
	atomic_fetch_sub(&m->pins, 1);
	if (!ret) {
		cache_touch(&m->ci);
		return 0;
	}
	/* at least ARCHIVE_STEP per inflate, so that small sequential reads
	 * do not each take the lock; small members whole */
	ahead = end;
	if (ahead - off < ARCHIVE_STEP)
		ahead = off + ARCHIVE_STEP;
	if (m->pub.size <= ARCHIVE_SMALL || ahead >= m->pub.size ||
	    m->pub.size - ahead <= ARCHIVE_STEP)
		ahead = m->pub.size;
	pthread_mutex_lock(&m->lock);
	ret = member_inflate(a, i, buf, off, len, ahead, err);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

ssize_t archive_member_read(struct archive *a, size_t i, void *buf,
			    size_t len, uint64_t off, struct npz_err *err)
{
	struct member *m;
	int64_t data_off;
	ssize_t n;
	int ret;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	if (off >= m->pub.size)
		return 0;
	if (len > m->pub.size - off)
		len = (size_t)(m->pub.size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0)
		return 0;

	switch (m->pub.method) {
	case ARCHIVE_STORE:
		data_off = member_data_off(a, m, err);
		if (data_off < 0)
			return (ssize_t)data_off;
		n = pread_full(a->fd, buf, len, (uint64_t)data_off + off);
		break;
	case ARCHIVE_DEFLATE:
		ret = deflated_read(a, i, buf, len, off, err);
		if (ret)
			return ret;
		n = (ssize_t)len;
		break;
	default:
		npz_err_set(err, "member %s: unsupported compression %s",
			    m->pub.name, archive_method_name(m->pub.method));
		return -EIO;
	}
	if (n < 0) {
		npz_err_set(err, "member %s: %s", m->pub.name,
			    strerror((int)-n));
		return n;
	}
	if ((size_t)n < len) {
		npz_err_set(err, "member %s: unexpected end of file",
			    m->pub.name);
		return -EIO;
	}
	/* after reading: bytes read before a rewrite was seen are not
	 * returned either (cached ones included, for one rule) */
	if (file_unchanged(a))
		return -EIO;
	return n;
}

const char *archive_path(const struct archive *a)
{
	return a->path;
}

time_t archive_mtime(const struct archive *a)
{
	return a->st.st_mtime;
}

/* ---- The commit lock ----------------------------------------------------
 *
 * Commits to one archive are mutually exclusive across processes (two
 * mounts, or two hosts on a shared filesystem): an open file description
 * lock (F_OFD_SETLKW: per open file, not per process, so two threads of one
 * daemon exclude each other too; NFS clients turn it into an NLM/NFSv4
 * lock) on ".NAME.lock" beside the archive.  The file is never removed:
 * removing it would let a later opener lock a new file while an older
 * holder still locks the old one.  A killed holder's lock dies with its
 * descriptor, so a stale file never blocks anyone.
 */

/* Open the lock file of the archive at path (created if missing).
 * Returns the descriptor, or -errno. */
static int lock_open(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	char lpath[PATH_MAX];
	int fd;

	if (!slash || (size_t)snprintf(lpath, sizeof(lpath), "%.*s/.%.200s.lock",
				      (int)dlen, path, slash + 1) >= sizeof(lpath))
		return -ENAMETOOLONG;
	fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	return fd < 0 ? -errno : fd;
}

/* Take the commit lock of the archive at path: wait for it, or only try
 * when !wait.  Returns the descriptor that holds it (close it to release),
 * -EAGAIN when !wait and another holds it, -1 when no lock file can be
 * made where the archive is (a read-only directory: no commit can write
 * there either, and fails with its own error), or another -errno. */
static int lock_take(const char *path, bool wait)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = lock_open(path), e;

	if (fd == -EACCES || fd == -EROFS || fd == -EPERM)
		return -1;
	if (fd < 0)
		return fd;
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		e = errno;
		if (e == EINTR)
			continue;
		close(fd);
		return e == EWOULDBLOCK ? -EAGAIN : -e;
	}
	return fd;
}

int archive_clean_temps(const char *path)
{
	char dcopy[PATH_MAX], bcopy[PATH_MAX], prefix[256];
	const char *dir, *base;
	struct dirent *d;
	size_t plen;
	DIR *dp;
	int removed = 0, lfd;

	if (strlen(path) >= PATH_MAX)
		return 0;
	strcpy(dcopy, path);
	strcpy(bcopy, path);
	dir = dirname(dcopy);
	base = basename(bcopy);
	snprintf(prefix, sizeof(prefix), ".%.200s.npzfs-", base);
	plen = strlen(prefix);
	/* a temporary file of a commit running right now is not stale */
	lfd = lock_take(path, false);
	if (lfd == -EAGAIN)
		return 0;
	dp = opendir(dir);
	if (!dp) {
		if (lfd >= 0)
			close(lfd);
		return 0;
	}
	while ((d = readdir(dp))) {
		if (strncmp(d->d_name, prefix, plen) ||
		    strlen(d->d_name) != plen + 6)
			continue;
		if (!unlinkat(dirfd(dp), d->d_name, 0))
			removed++;
	}
	closedir(dp);
	if (lfd >= 0)
		close(lfd);
	return removed;
}

/* ---- Writing: archive_commit() ----------------------------------------
 *
 * libzip writes the new archive (it copies untouched members' compressed
 * bytes and entries as they are), but through our own source over the
 * archive file, because libzip's file source renames without fsync:
 *  - reading goes through a->fd (the old file, whatever happens to the path);
 *  - writing goes to a temporary file beside the archive, which
 *    COMMIT_WRITE fsyncs, gives the original's mode and owner, renames over
 *    the path (after checking that the path still holds a's file) and whose
 *    directory it fsyncs; ROLLBACK_WRITE unlinks it.
 * New content is read with pread() from the caller's fd by a second kind of
 * source; deflated content is compressed by that source itself (zlib, at the
 * caller's level; big content in chunks on worker threads, see "Parallel
 * deflate" below) and handed to libzip as already-compressed data, which
 * libzip copies as it is (it recompresses only when the source's method
 * differs from the entry's).
 *
 * Untouched members are copied by libzip's own loop (8 KiB reads and writes
 * through file_src, which batches them into COMMIT_RBUF reads and
 * COMMIT_WBUF writes).  copy_file_range() from the old file was tried: the
 * bytes must still reach libzip's buffer, and on ext4 the in-kernel copy is
 * no cheaper than the write it replaces (measured slightly more CPU).
 */

/* Buffers stay within L2: a copy out of a 4 MiB buffer had to go to
 * memory, and measured up to 3 times slower when other processes ran. */
#define COMMIT_WBUF (256u << 10)	/* write buffer of the temporary file */
#define COMMIT_RBUF (256u << 10)	/* read-ahead over the old archive */
#define COMMIT_IN_BLOCK (256u << 10)	/* content read per pread */

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
};

/* Record a failure: libzip gets (zip_code, sys), we keep errno and text.
 * Returns -1 for the source callback to return. */
static zip_int64_t fsrc_fail(struct file_src *s, int zip_code, int sys,
			     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static zip_int64_t fsrc_fail(struct file_src *s, int zip_code, int sys,
			     const char *fmt, ...)
{
	va_list ap;

	zip_error_set(&s->error, zip_code, sys);
	if (!s->fail_errno) {
		s->fail_errno = sys > 0 ? sys : EIO;
		va_start(ap, fmt);
		vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Is the file at a's path still the one a opened?  Returns 0, -ESTALE or
 * -errno, with a message in msg. */
static int check_same_file(const struct archive *a, char *msg, size_t len)
{
	struct stat sb;

	if (stat(a->path, &sb) < 0) {
		int e = errno;

		if (e == ENOENT) {
			snprintf(msg, len, "%s: archive was removed by another "
				 "program", a->path);
			return -ESTALE;
		}
		snprintf(msg, len, "%s: %s", a->path, strerror(e));
		return -e;
	}
	if (sb.st_dev != a->st.st_dev || sb.st_ino != a->st.st_ino) {
		snprintf(msg, len, "%s: archive was replaced by another "
			 "program", a->path);
		return -ESTALE;
	}
	if (sb.st_size != a->st.st_size ||
	    sb.st_mtim.tv_sec != a->st.st_mtim.tv_sec ||
	    sb.st_mtim.tv_nsec != a->st.st_mtim.tv_nsec) {
		snprintf(msg, len, "%s: archive was modified by another "
			 "program", a->path);
		return -ESTALE;
	}
	return 0;
}

static int fsrc_flush(struct file_src *s)
{
	int ret;

	if (!s->wbuf_len)
		return 0;
	ret = pwrite_full(s->tmp_fd, s->wbuf, s->wbuf_len, s->wbuf_off);
	if (ret)
		return ret;
	s->wbuf_off += s->wbuf_len;
	s->wbuf_len = 0;
	/* Start writing back what is written so far, so that the disk works
	 * while we copy and the fsync at commit has little left to wait for.
	 * Only a hint: errors show up at fsync. */
	if (s->wbuf_off >= s->synced + WRITEBACK_STEP) {
		sync_file_range(s->tmp_fd, (off_t)s->synced,
				(off_t)(s->wbuf_off - s->synced),
				SYNC_FILE_RANGE_WRITE);
		s->synced = s->wbuf_off;
	}
	return 0;
}

static zip_int64_t fsrc_write(struct file_src *s, const void *data,
			      zip_uint64_t len)
{
	int ret = 0;

	/* a seek, or no room: write out what is buffered */
	if (s->wbuf_len && (s->wpos != s->wbuf_off + s->wbuf_len ||
			    len > COMMIT_WBUF - s->wbuf_len))
		ret = fsrc_flush(s);
	if (!ret && !s->wbuf_len)
		s->wbuf_off = s->wpos;
	if (!ret && len >= COMMIT_WBUF)
		ret = pwrite_full(s->tmp_fd, data, (size_t)len, s->wpos);
	else if (!ret) {
		memcpy(s->wbuf + s->wbuf_len, data, (size_t)len);
		s->wbuf_len += (size_t)len;
	}
	if (ret)
		return fsrc_fail(s, ZIP_ER_WRITE, -ret, "%s: writing the new "
				 "archive: %s", s->a->path, strerror(-ret));
	s->wpos += len;
	if (s->wpos > s->wsize)
		s->wsize = s->wpos;
	return (zip_int64_t)len;
}

static void fsrc_rollback(struct file_src *s)
{
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	s->tmp_fd = -1;
	if (s->tmp_path)
		unlink(s->tmp_path);
	free(s->tmp_path);
	s->tmp_path = NULL;
	s->wbuf_len = 0;
}

static zip_int64_t fsrc_begin_write(struct file_src *s)
{
	const char *base = strrchr(s->a->path, '/') + 1;
	size_t len;
	int e;

	fsrc_rollback(s);
	len = strlen(s->dir) + strlen(base) + 32;
	s->tmp_path = malloc(len);
	if (!s->tmp_path)
		return fsrc_fail(s, ZIP_ER_MEMORY, 0, "out of memory");
	/* stay below NAME_MAX with long archive names */
	snprintf(s->tmp_path, len, "%s/.%.200s.npzfs-XXXXXX",
		 strcmp(s->dir, "/") ? s->dir : "", base);
	s->tmp_fd = mkostemp(s->tmp_path, O_CLOEXEC);
	if (s->tmp_fd < 0) {
		e = errno;
		free(s->tmp_path);
		s->tmp_path = NULL;
		return fsrc_fail(s, ZIP_ER_TMPOPEN, e, "cannot create a "
				 "temporary file in %s: %s", s->dir,
				 strerror(e));
	}
	s->wbuf_off = s->wbuf_len = 0;
	s->synced = 0;
	s->wpos = s->wsize = 0;
	return 0;
}

static zip_int64_t fsrc_commit_write(struct file_src *s)
{
	const struct stat *st = &s->a->st;
	char msg[NPZ_ERR_MSG_MAX];
	int ret, dfd, e;

	ret = fsrc_flush(s);
	if (ret)
		return fsrc_fail(s, ZIP_ER_WRITE, -ret, "%s: writing the new "
				 "archive: %s", s->a->path, strerror(-ret));
	if (fsync(s->tmp_fd) < 0) {
		e = errno;
		return fsrc_fail(s, ZIP_ER_WRITE, e, "fsync of %s: %s",
				 s->tmp_path, strerror(e));
	}
	/* owner first: chown clears set-id bits; keep the group at least */
	if (fchown(s->tmp_fd, st->st_uid, st->st_gid) < 0)
		(void)!fchown(s->tmp_fd, (uid_t)-1, st->st_gid);
	if (fchmod(s->tmp_fd, st->st_mode & 07777) < 0) {
		e = errno;
		return fsrc_fail(s, ZIP_ER_WRITE, e, "chmod of %s: %s",
				 s->tmp_path, strerror(e));
	}
	if (close(s->tmp_fd) < 0) {
		s->tmp_fd = -1;
		e = errno;
		return fsrc_fail(s, ZIP_ER_CLOSE, e, "closing %s: %s",
				 s->tmp_path, strerror(e));
	}
	s->tmp_fd = -1;
	ret = check_same_file(s->a, msg, sizeof(msg));
	if (ret)
		return fsrc_fail(s, ZIP_ER_RENAME, -ret, "%s", msg);
	if (rename(s->tmp_path, s->a->path) < 0) {
		e = errno;
		return fsrc_fail(s, ZIP_ER_RENAME, e, "renaming %s to %s: %s",
				 s->tmp_path, s->a->path, strerror(e));
	}
	free(s->tmp_path);
	s->tmp_path = NULL;
	/* The new archive is in place: a failure to make the rename durable
	 * can only be logged. */
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		npz_log("%s: fsync of the directory: %s", s->dir,
			strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return 0;
}

/* libzip removes an archive left without members; we write an empty one. */
static zip_int64_t fsrc_remove(struct file_src *s)
{
	static const unsigned char eocd[22] = { 0x50, 0x4b, 0x05, 0x06 };

	if (fsrc_begin_write(s) < 0)
		return -1;
	if (fsrc_write(s, eocd, sizeof(eocd)) < 0 ||
	    fsrc_commit_write(s) < 0) {
		fsrc_rollback(s);
		return -1;
	}
	return 0;
}

static zip_int64_t fsrc_read(struct file_src *s, void *data, zip_uint64_t len)
{
	uint64_t size = s->a->file_size;
	ssize_t n;

	if (s->rpos >= size)
		return 0;
	if (len > size - s->rpos)
		len = size - s->rpos;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (s->rpos < s->rbuf_off || s->rpos >= s->rbuf_off + s->rbuf_len) {
		if (len >= COMMIT_RBUF) {
			n = pread_full(s->a->fd, data, (size_t)len, s->rpos);
			goto out_check;
		}
		n = pread_full(s->a->fd, s->rbuf, COMMIT_RBUF, s->rpos);
		if (n < 0)
			goto out_check;
		s->rbuf_off = s->rpos;
		s->rbuf_len = (size_t)n;
		if (s->rbuf_len == 0)
			goto out_check;
	}
	n = (ssize_t)(s->rbuf_off + s->rbuf_len - s->rpos);
	if ((zip_uint64_t)n > len)
		n = (ssize_t)len;
	memcpy(data, s->rbuf + (s->rpos - s->rbuf_off), (size_t)n);
out_check:
	if (n < 0)
		return fsrc_fail(s, ZIP_ER_READ, (int)-n, "reading %s: %s",
				 s->a->path, strerror((int)-n));
	if (n == 0)
		return fsrc_fail(s, ZIP_ER_READ, EIO, "reading %s: file "
				 "shrank", s->a->path);
	s->rpos += (uint64_t)n;
	return n;
}

static zip_int64_t fsrc_cb(void *ud, void *data, zip_uint64_t len,
			   zip_source_cmd_t cmd)
{
	struct file_src *s = ud;
	zip_int64_t off;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		s->rpos = 0;
		return 0;
	case ZIP_SOURCE_READ:
		return fsrc_read(s, data, len);
	case ZIP_SOURCE_CLOSE:
		return 0;
	case ZIP_SOURCE_SEEK:
		off = zip_source_seek_compute_offset(s->rpos, s->a->file_size,
						     data, len, &s->error);
		if (off < 0)
			return -1;
		s->rpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL:
		return (zip_int64_t)s->rpos;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len,
						     &s->error);
		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = s->a->file_size;
		st->mtime = s->a->st.st_mtime;
		st->valid = ZIP_STAT_SIZE | ZIP_STAT_MTIME;
		return sizeof(*st);
	}
	case ZIP_SOURCE_BEGIN_WRITE:
		return fsrc_begin_write(s);
	case ZIP_SOURCE_WRITE:
		return fsrc_write(s, data, len);
	case ZIP_SOURCE_SEEK_WRITE:
		off = zip_source_seek_compute_offset(s->wpos, s->wsize, data,
						     len, &s->error);
		if (off < 0)
			return -1;
		s->wpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL_WRITE:
		return (zip_int64_t)s->wpos;
	case ZIP_SOURCE_COMMIT_WRITE:
		return fsrc_commit_write(s);
	case ZIP_SOURCE_ROLLBACK_WRITE:
		fsrc_rollback(s);
		return 0;
	case ZIP_SOURCE_REMOVE:
		return fsrc_remove(s);
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&s->error, data, len);
	case ZIP_SOURCE_FREE:
		return 0;	/* s belongs to archive_commit() */
	case ZIP_SOURCE_SUPPORTS:
		return ZIP_SOURCE_SUPPORTS_WRITABLE;
	default:
		zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

/* ---- Parallel deflate of new content ------------------------------------
 *
 * Big content is deflated in independent chunks on worker threads, the way
 * pigz does it: chunk k (content bytes [k*C, k*C + C)) gets a deflate stream
 * of its own, primed with the 32 KiB of content before it as its dictionary
 * (deflateSetDictionary), and ends with Z_SYNC_FLUSH (an empty stored block:
 * byte-aligned, not final), the last chunk with Z_FINISH.  Concatenated in
 * order the chunks form one standard raw deflate stream; the CRC-32 of each
 * chunk is folded in with crc32_combine().  A worker pread()s its chunk and
 * the dictionary before it from the content fd itself, so reading is
 * parallel too and any chunk size works.
 *
 * Memory is bounded by a ring of 2 * threads compressed chunks: chunk k is
 * queued only once chunk k - ring has been handed to libzip.  libzip's
 * thread (pz_read) takes the chunks in order and waits for the next one when
 * it is not finished yet.
 *
 * protects: pz->lock guards queued, taken, stop and every slot's state; a
 * slot's other fields belong to the worker while it is PZ_BUSY and to the
 * reader once it is PZ_DONE or PZ_FAILED (the state change under the lock
 * orders them).
 */

#define PZ_DICT (32u << 10)		/* deflate's window */
#define PZ_CHUNK (1u << 20)		/* content per chunk */
#define PZ_MIN (4u << 20)		/* smaller content: one zlib stream */
#define PZ_MAX_THREADS 8		/* default; each holds 2 chunks */
#define PZ_MAX_CHUNK (64u << 20)	/* tuning limits */
#define PZ_MAX_TUNED_THREADS 64

enum pz_state { PZ_FREE, PZ_QUEUED, PZ_BUSY, PZ_DONE, PZ_FAILED };

struct pz_slot {
	int state;			/* enum pz_state; pz->lock */
	unsigned char *out;		/* the compressed chunk */
	size_t out_cap, out_len;
	size_t in_len;			/* content bytes of the chunk */
	uint32_t crc;			/* their CRC-32 */
	int err;			/* PZ_FAILED: errno, */
	int zip_code;			/* libzip's code for it */
	const char *what;		/* its text; NULL: strerror(err) */
};

struct pz {
	int fd;
	uint64_t size;
	int level;
	size_t chunk;
	uint64_t nchunks;		/* at least 1 (empty content: 1) */
	pthread_mutex_t lock;
	pthread_cond_t work;		/* workers: chunk queued, or stop */
	pthread_cond_t done;		/* reader: a chunk is done */
	uint64_t queued;		/* lock: chunks [0, queued) queued */
	uint64_t taken;			/* lock: [0, taken) taken by workers */
	bool stop;			/* lock: workers exit */
	struct pz_slot *slots;
	size_t nslots;
	pthread_t *threads;
	size_t nthreads;		/* started */
	/* the reader's (libzip's thread) */
	uint64_t emit;			/* chunk being handed to libzip */
	size_t emit_pos;		/* its bytes handed over */
	bool emit_ready;		/* its slot was seen done */
};

static _Atomic size_t pz_tune_chunk = PZ_CHUNK;
static _Atomic uint64_t pz_tune_min = PZ_MIN;
static _Atomic unsigned pz_tune_threads;	/* 0: from the CPU count */

void archive_tune_deflate(const struct archive_deflate_tuning *t)
{
	size_t chunk = t && t->chunk ? t->chunk : PZ_CHUNK;
	unsigned threads = t ? t->threads : 0;

	atomic_store(&pz_tune_chunk,
		     chunk < PZ_MAX_CHUNK ? chunk : PZ_MAX_CHUNK);
	atomic_store(&pz_tune_min, t ? t->min_parallel : PZ_MIN);
	atomic_store(&pz_tune_threads, threads < PZ_MAX_TUNED_THREADS ?
					       threads : PZ_MAX_TUNED_THREADS);
}

/* Worker threads for content of size bytes: the tuned count, or the online
 * CPUs (at least 2, at most PZ_MAX_THREADS); never more than chunks. */
static size_t pz_thread_count(uint64_t nchunks)
{
	unsigned t = atomic_load(&pz_tune_threads);
	long cpus;

	if (!t) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		t = cpus < 2 ? 2 : cpus > PZ_MAX_THREADS ? PZ_MAX_THREADS
							 : (unsigned)cpus;
	}
	return nchunks < t ? (size_t)nchunks : t;
}

/* Compress chunk k into slot sl with z (reset here).  in holds PZ_DICT +
 * chunk bytes.  On failure sets sl->err (and sl->what). */
static void pz_chunk(struct pz *pz, uint64_t k, struct pz_slot *sl,
		     z_stream *z, unsigned char *in)
{
	uint64_t start = k * pz->chunk;
	size_t len = pz->size - start < pz->chunk ? (size_t)(pz->size - start)
						   : pz->chunk;
	size_t dict = start < PZ_DICT ? (size_t)start : PZ_DICT;
	bool last = k + 1 == pz->nchunks;
	size_t need;
	ssize_t n;
	int zr;

	sl->err = 0;
	sl->zip_code = ZIP_ER_MEMORY;
	sl->what = NULL;
	sl->out_len = 0;
	sl->in_len = len;
	if (!in) {
		sl->err = ENOMEM;
		return;
	}
	n = pread_full(pz->fd, in, dict + len, start - dict);
	sl->zip_code = ZIP_ER_READ;
	if (n < 0) {
		sl->err = (int)-n;
		return;
	}
	if ((size_t)n < dict + len) {
		sl->err = EIO;
		sl->what = "content shorter than its size";
		return;
	}
	sl->zip_code = ZIP_ER_ZLIB;
	sl->crc = crc32_fast(0, in + dict, len);
	if (deflateReset(z) != Z_OK ||
	    (dict && deflateSetDictionary(z, in, (uInt)dict) != Z_OK)) {
		sl->err = EIO;
		sl->what = "deflate failed";
		return;
	}
	/* one call fits the chunk plus the 5-byte sync marker; grow if not */
	need = (size_t)deflateBound(z, (uLong)len) + 64;
	if (sl->out_cap < need) {
		free(sl->out);
		sl->out = malloc(need);
		sl->out_cap = sl->out ? need : 0;
		if (!sl->out) {
			sl->err = ENOMEM;
			sl->zip_code = ZIP_ER_MEMORY;
			return;
		}
	}
	z->next_in = in + dict;
	z->avail_in = (uInt)len;
	z->next_out = sl->out;
	z->avail_out = (uInt)sl->out_cap;
	for (;;) {
		zr = deflate(z, last ? Z_FINISH : Z_SYNC_FLUSH);
		sl->out_len = sl->out_cap - z->avail_out;
		if (zr == Z_STREAM_ERROR) {
			sl->err = EIO;
			sl->what = "deflate failed";
			return;
		}
		if (last ? zr == Z_STREAM_END
			 : z->avail_in == 0 && z->avail_out != 0)
			return;
		if (z->avail_out == 0) {
			unsigned char *p = realloc(sl->out, 2 * sl->out_cap);

			if (!p) {
				sl->err = ENOMEM;
				sl->zip_code = ZIP_ER_MEMORY;
				return;
			}
			sl->out = p;
			z->next_out = p + sl->out_len;
			z->avail_out = (uInt)(2 * sl->out_cap - sl->out_len);
			sl->out_cap *= 2;
		}
	}
}

static void *pz_worker(void *arg)
{
	struct pz *pz = arg;
	unsigned char *in = malloc(PZ_DICT + pz->chunk);
	z_stream z;
	bool z_ready;

	memset(&z, 0, sizeof(z));
	/* what zipfile (numpy) uses: raw deflate, window 15, memLevel 8 */
	z_ready = deflateInit2(&z, pz->level, Z_DEFLATED, -MAX_WBITS, 8,
			       Z_DEFAULT_STRATEGY) == Z_OK;
	pthread_mutex_lock(&pz->lock);
	for (;;) {
		struct pz_slot *sl;
		uint64_t k;

		while (!pz->stop && pz->taken == pz->queued)
			pthread_cond_wait(&pz->work, &pz->lock);
		if (pz->stop)
			break;
		k = pz->taken++;
		sl = &pz->slots[k % pz->nslots];
		sl->state = PZ_BUSY;
		pthread_mutex_unlock(&pz->lock);
		pz_chunk(pz, k, sl, &z, z_ready ? in : NULL);
		pthread_mutex_lock(&pz->lock);
		sl->state = sl->err ? PZ_FAILED : PZ_DONE;
		pthread_cond_broadcast(&pz->done);
	}
	pthread_mutex_unlock(&pz->lock);
	if (z_ready)
		deflateEnd(&z);
	free(in);
	return NULL;
}

/* Stop the workers, wait for them and free pz.  NULL is a no-op. */
static void pz_free(struct pz *pz)
{
	size_t i;

	if (!pz)
		return;
	pthread_mutex_lock(&pz->lock);
	pz->stop = true;
	pthread_cond_broadcast(&pz->work);
	pthread_mutex_unlock(&pz->lock);
	for (i = 0; i < pz->nthreads; i++)
		pthread_join(pz->threads[i], NULL);
	for (i = 0; i < pz->nslots; i++)
		free(pz->slots[i].out);
	free(pz->slots);
	free(pz->threads);
	pthread_cond_destroy(&pz->done);
	pthread_cond_destroy(&pz->work);
	pthread_mutex_destroy(&pz->lock);
	free(pz);
}

/* Start deflating size bytes of fd at level on worker threads.  Returns
 * the new state, or NULL when no thread could be started (ENOMEM, EAGAIN):
 * the caller then deflates in one stream itself. */
static struct pz *pz_new(int fd, uint64_t size, int level)
{
	struct pz *pz = calloc(1, sizeof(*pz));
	sigset_t all, old;
	size_t want, i;

	if (!pz)
		return NULL;
	pz->fd = fd;
	pz->size = size;
	pz->level = level;
	pz->chunk = atomic_load(&pz_tune_chunk);
	pz->nchunks = size ? (size - 1) / pz->chunk + 1 : 1;
	want = pz_thread_count(pz->nchunks);
	pz->nslots = 2 * want;
	pthread_mutex_init(&pz->lock, NULL);
	pthread_cond_init(&pz->work, NULL);
	pthread_cond_init(&pz->done, NULL);
	pz->slots = calloc(pz->nslots, sizeof(*pz->slots));
	pz->threads = calloc(want, sizeof(*pz->threads));
	if (!pz->slots || !pz->threads) {
		pz_free(pz);
		return NULL;
	}
	/* fill the ring before the workers start */
	pz->queued = pz->nchunks < pz->nslots ? pz->nchunks : pz->nslots;
	for (i = 0; i < pz->queued; i++)
		pz->slots[i].state = PZ_QUEUED;
	/* signals stay with the FUSE threads */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < want; i++) {
		if (pthread_create(&pz->threads[i], NULL, pz_worker, pz) != 0)
			break;
		pz->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!pz->nthreads) {
		pz_free(pz);
		return NULL;
	}
	return pz;
}

/* New content: pread() from the caller's fd, stored or deflated by us. */
struct content_src {
	const struct archive_change *c;
	struct file_src *s;		/* failures are reported there too */
	zip_error_t error;
	bool deflate;
	bool z_ready;
	bool done;			/* all output produced */
	struct pz *pz;			/* big content: in parallel */
	z_stream z;
	unsigned char *in;
	size_t in_pos, in_len;		/* stored: in[in_pos, in_len) unread */
	uint64_t pos;			/* content bytes read */
	uint64_t comp_size;		/* bytes produced (deflate) */
	uint32_t crc;			/* CRC-32 of the content read */
};

static zip_int64_t csrc_fail(struct content_src *cs, int zip_code, int sys,
			     const char *what)
{
	zip_error_set(&cs->error, zip_code, sys);
	fsrc_fail(cs->s, zip_code, sys, "member %s: %s", cs->c->name, what);
	return -1;
}

/* Read the next block of content at cs->pos into buf.  Returns bytes read
 * or -1 (content shorter than announced, read error). */
static zip_int64_t csrc_pread(struct content_src *cs, void *buf, size_t want)
{
	ssize_t n = pread_full(cs->c->fd, buf, want, cs->pos);

	if (n < 0)
		return csrc_fail(cs, ZIP_ER_READ, (int)-n, strerror((int)-n));
	if ((size_t)n < want)
		return csrc_fail(cs, ZIP_ER_READ, EIO, "content shorter "
				 "than its size");
	if (cs->deflate)	/* stored: libzip computes the CRC itself */
		cs->crc = crc32_fast(cs->crc, buf, (size_t)n);
	cs->pos += (uint64_t)n;
	return n;
}

/* Hand libzip up to len bytes of the chunks deflated by cs->pz, in order,
 * waiting for the next chunk when needed.  Returns bytes or -1. */
static zip_int64_t pz_read(struct content_src *cs, unsigned char *data,
			   size_t len)
{
	struct pz *pz = cs->pz;
	size_t done = 0, n;

	while (done < len && pz->emit < pz->nchunks) {
		struct pz_slot *sl = &pz->slots[pz->emit % pz->nslots];

		if (!pz->emit_ready) {
			int st;

			pthread_mutex_lock(&pz->lock);
			while (sl->state != PZ_DONE && sl->state != PZ_FAILED)
				pthread_cond_wait(&pz->done, &pz->lock);
			st = sl->state;
			pthread_mutex_unlock(&pz->lock);
			if (st == PZ_FAILED)
				return csrc_fail(cs, sl->zip_code, sl->err,
						 sl->what ? sl->what :
						 strerror(sl->err));
			pz->emit_ready = true;
		}
		n = sl->out_len - pz->emit_pos;
		if (n > len - done)
			n = len - done;
		memcpy(data + done, sl->out + pz->emit_pos, n);
		done += n;
		pz->emit_pos += n;
		if (pz->emit_pos < sl->out_len)
			break;
		cs->crc = (uint32_t)crc32_combine(cs->crc, sl->crc,
						  (z_off_t)sl->in_len);
		cs->pos += sl->in_len;
		pz->emit++;
		pz->emit_pos = 0;
		pz->emit_ready = false;
		/* the slot takes the chunk one ring further */
		pthread_mutex_lock(&pz->lock);
		sl->state = PZ_FREE;
		if (pz->queued < pz->nchunks) {
			pz->queued++;
			sl->state = PZ_QUEUED;
			pthread_cond_signal(&pz->work);
		}
		pthread_mutex_unlock(&pz->lock);
	}
	if (pz->emit == pz->nchunks)
		cs->done = true;
	cs->comp_size += done;
	return (zip_int64_t)done;
}

static zip_int64_t csrc_read(struct content_src *cs, void *data,
			     zip_uint64_t len)
{
	uint64_t size = cs->c->size;
	zip_int64_t n;
	int zr;

	if (!cs->deflate) {
		/* libzip reads 8 KiB at a time: serve it from cs->in */
		if (cs->in_pos == cs->in_len) {
			if (cs->pos >= size)
				return 0;
			if (len >= COMMIT_IN_BLOCK || !cs->in) {
				if (len > size - cs->pos)
					len = size - cs->pos;
				if (len > SSIZE_MAX)
					len = SSIZE_MAX;
				return csrc_pread(cs, data, (size_t)len);
			}
			cs->in_len = size - cs->pos < COMMIT_IN_BLOCK ?
				     (size_t)(size - cs->pos) : COMMIT_IN_BLOCK;
			cs->in_pos = 0;
			if (csrc_pread(cs, cs->in, cs->in_len) < 0) {
				cs->in_len = 0;
				return -1;
			}
		}
		if (len > cs->in_len - cs->in_pos)
			len = cs->in_len - cs->in_pos;
		memcpy(data, cs->in + cs->in_pos, (size_t)len);
		cs->in_pos += (size_t)len;
		return (zip_int64_t)len;
	}
	if (cs->pz) {
		if (len > SSIZE_MAX)
			len = SSIZE_MAX;
		return pz_read(cs, data, (size_t)len);
	}
	if (cs->done)
		return 0;
	if (len > UINT_MAX)
		len = UINT_MAX;
	cs->z.next_out = data;
	cs->z.avail_out = (uInt)len;
	while (cs->z.avail_out > 0 && !cs->done) {
		if (cs->z.avail_in == 0 && cs->pos < size) {
			size_t want = COMMIT_IN_BLOCK;

			if (size - cs->pos < want)
				want = (size_t)(size - cs->pos);
			n = csrc_pread(cs, cs->in, want);
			if (n < 0)
				return -1;
			cs->z.next_in = cs->in;
			cs->z.avail_in = (uInt)n;
		}
		zr = deflate(&cs->z, cs->pos == size ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_END)
			cs->done = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return csrc_fail(cs, ZIP_ER_ZLIB, 0, "deflate failed");
	}
	n = (zip_int64_t)(len - cs->z.avail_out);
	cs->comp_size += (uint64_t)n;
	return n;
}

static zip_int64_t csrc_cb(void *ud, void *data, zip_uint64_t len,
			   zip_source_cmd_t cmd)
{
	struct content_src *cs = ud;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		cs->pos = cs->comp_size = 0;
		cs->crc = (uint32_t)crc32(0, NULL, 0);
		cs->done = false;
		cs->in_pos = cs->in_len = 0;
		pz_free(cs->pz);
		cs->pz = NULL;
		if (!cs->deflate) {
			/* small content is read in one go, without a buffer */
			if (!cs->in && cs->c->size > COMMIT_IN_BLOCK)
				cs->in = malloc(COMMIT_IN_BLOCK);
			return 0;
		}
		if (cs->c->size >= atomic_load(&pz_tune_min)) {
			cs->pz = pz_new(cs->c->fd, cs->c->size,
					cs->c->level < 0 ? Z_DEFAULT_COMPRESSION
							 : cs->c->level);
			if (cs->pz)
				return 0;
			/* no thread: one stream, here */
		}
		if (!cs->in) {
			cs->in = malloc(COMMIT_IN_BLOCK);
			if (!cs->in) {
				zip_error_set(&cs->error, ZIP_ER_MEMORY, 0);
				return -1;
			}
		}
		if (cs->z_ready)
			deflateEnd(&cs->z);
		memset(&cs->z, 0, sizeof(cs->z));
		/* what zipfile (numpy) uses: raw deflate, window 15, memLevel 8 */
		cs->z_ready = deflateInit2(&cs->z, cs->c->level < 0 ?
					   Z_DEFAULT_COMPRESSION : cs->c->level,
					   Z_DEFLATED, -MAX_WBITS, 8,
					   Z_DEFAULT_STRATEGY) == Z_OK;
		if (!cs->z_ready) {
			zip_error_set(&cs->error, ZIP_ER_MEMORY, 0);
			return -1;
		}
		return 0;
	case ZIP_SOURCE_READ:
		return csrc_read(cs, data, len);
	case ZIP_SOURCE_CLOSE:
		/* libzip keeps every source until zip_close() ends: give the
		 * deflate state back now (STAT needs only crc and comp_size) */
		pz_free(cs->pz);
		cs->pz = NULL;
		if (cs->z_ready)
			deflateEnd(&cs->z);
		cs->z_ready = false;
		free(cs->in);
		cs->in = NULL;
		return 0;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len,
						     &cs->error);
		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = cs->c->size;
		st->mtime = cs->c->mtime;
		st->comp_method = cs->deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
		st->encryption_method = ZIP_EM_NONE;
		st->valid = ZIP_STAT_SIZE | ZIP_STAT_MTIME |
			    ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
		if (cs->deflate && cs->done) {
			/* once read: libzip takes the CRC from here */
			st->crc = cs->crc;
			st->comp_size = cs->comp_size;
			st->valid |= ZIP_STAT_CRC | ZIP_STAT_COMP_SIZE;
		}
		return sizeof(*st);
	}
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&cs->error, data, len);
	case ZIP_SOURCE_FREE:
		pz_free(cs->pz);
		if (cs->z_ready)
			deflateEnd(&cs->z);
		free(cs->in);
		free(cs);
		return 0;
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN,
			ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
			ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
	default:
		zip_error_set(&cs->error, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

/* Returns a new source over c's content, or NULL (ENOMEM). */
static zip_source_t *content_source(const struct archive_change *c,
				    struct file_src *s)
{
	struct content_src *cs = calloc(1, sizeof(*cs));
	zip_source_t *src;

	if (!cs)
		return NULL;
	cs->c = c;
	cs->s = s;
	cs->deflate = c->method == ARCHIVE_DEFLATE;
	zip_error_init(&cs->error);
	src = zip_source_function_create(csrc_cb, cs, NULL);
	if (!src)
		free(cs);
	return src;
}

static int cmp_name_ptr(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Check the change list.  Returns 0 or -EINVAL/-ENOMEM with a message. */
static int check_changes(const struct archive *a,
			 const struct archive_change *ch, size_t n,
			 struct npz_err *err)
{
	const char **names;
	size_t i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		const struct archive_change *c = &ch[i];

		if (!c->name || !*c->name || strlen(c->name) > UINT16_MAX) {
			npz_err_set(err, "change %zu: bad member name", i);
			return -EINVAL;
		}
		if (c->from >= 0 && (size_t)c->from >= a->count) {
			npz_err_set(err, "member %s: no member %zd to copy",
				    c->name, c->from);
			return -EINVAL;
		}
		if (c->from < -1 ||
		    (c->from == -1 && (c->fd < 0 ||
				       (c->method != ARCHIVE_STORE &&
					c->method != ARCHIVE_DEFLATE) ||
				       c->level < -1 || c->level > 9))) {
			npz_err_set(err, "member %s: bad content, method or "
				    "level", c->name);
			return -EINVAL;
		}
	}
	if (n < 2)
		return 0;
	names = malloc(n * sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		names[i] = ch[i].name;
	qsort(names, n, sizeof(*names), cmp_name_ptr);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			npz_err_set(err, "duplicate member name %s", names[i]);
			ret = -EINVAL;
			break;
		}
	}
	free(names);
	return ret;
}

/* How change k reaches the new archive. */
enum change_kind {
	CK_KEEP,	/* old entry kept in place (maybe renamed) */
	CK_REPLACE,	/* old entry of the same name, new content, in place */
	CK_COPY,	/* raw copy of an old member as a new entry */
	CK_ADD,		/* new entry, new content */
};

/* A name for a renamed entry between the two rename passes: in neither
 * the archive nor the change list. */
static int temp_member_name(zip_t *za, const struct archive_change *ch,
			    size_t n, char *buf, size_t len)
{
	static _Atomic unsigned long seq;
	size_t i;

	for (;;) {
		snprintf(buf, len, ".npzfs-rename-%lu", ++seq);
		if (zip_name_locate(za, buf, 0) >= 0)
			continue;
		for (i = 0; i < n && strcmp(ch[i].name, buf) != 0; i++)
			;
		if (i == n)
			return 0;
	}
}

/* Set method, level and mtime of entry idx for new content c. */
static int set_new_entry(zip_t *za, zip_uint64_t idx,
			 const struct archive_change *c)
{
	/* our deflate source hands libzip compressed data: the entry's
	 * method must say deflate so that libzip does not touch it */
	if (zip_set_file_compression(za, idx, c->method == ARCHIVE_DEFLATE ?
				     ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) < 0)
		return -1;
	return zip_file_set_mtime(za, idx, c->mtime, 0);
}

/* Turn the change list into libzip calls on za (opened on the current
 * archive).  Returns 0 or -1 (libzip's error in za, or -ENOMEM in *oom). */
static int apply_changes(struct archive *a, zip_t *za, struct file_src *s,
			 const struct archive_change *ch, size_t n, bool *oom)
{
	ssize_t *claim = malloc((a->count ? a->count : 1) * sizeof(*claim));
	bool *wanted = calloc(a->count ? a->count : 1, sizeof(*wanted));
	unsigned char *kind = malloc(n ? n : 1);
	char **tmp_names = calloc(n ? n : 1, sizeof(*tmp_names));
	ssize_t last = -1;
	bool appending = false;
	size_t i, k, idx;
	int ret = -1;

	*oom = !claim || !wanted || !kind || !tmp_names;
	if (*oom)
		goto out_free;
	for (i = 0; i < a->count; i++)
		claim[i] = -1;
	for (k = 0; k < n; k++)
		if (ch[k].from >= 0)
			wanted[ch[k].from] = true;

	/* Keep an old entry where the list's order allows it; the rest is
	 * appended, in order. */
	for (k = 0; k < n; k++) {
		const struct archive_change *c = &ch[k];

		if (c->from >= 0) {
			if (!appending && claim[c->from] < 0 && c->from > last) {
				claim[c->from] = (ssize_t)k;
				last = c->from;
				kind[k] = CK_KEEP;
			} else {
				kind[k] = CK_COPY;
				appending = true;
			}
		} else if (!appending && archive_find(a, c->name, &idx) == 0 &&
			   !wanted[idx] && claim[idx] < 0 &&
			   (ssize_t)idx > last) {
			claim[idx] = (ssize_t)k;
			last = (ssize_t)idx;
			kind[k] = CK_REPLACE;
		} else {
			kind[k] = CK_ADD;
			appending = true;
		}
	}

	/* Raw copies are set up first, from the archive as it is. */
	for (i = 0; i < a->count; i++)
		if (claim[i] < 0 && zip_delete(za, i) < 0)
			goto out_free;
	/* Renames in two passes, so that swaps and a->b over a deleted b
	 * never collide. */
	for (k = 0; k < n; k++) {
		char buf[64];

		if (kind[k] != CK_KEEP ||
		    strcmp(ch[k].name, a->m[ch[k].from].pub.name) == 0)
			continue;
		temp_member_name(za, ch, n, buf, sizeof(buf));
		tmp_names[k] = strdup(buf);
		if (!tmp_names[k]) {
			*oom = true;
			goto out_free;
		}
		if (zip_file_rename(za, (zip_uint64_t)ch[k].from, buf, 0) < 0)
			goto out_free;
	}
	for (k = 0; k < n; k++)
		if (tmp_names[k] && zip_file_rename(za,
			(zip_uint64_t)ch[k].from, ch[k].name, 0) < 0)
			goto out_free;
	for (k = 0; k < n; k++) {
		const struct archive_change *c = &ch[k];
		zip_source_t *src;
		zip_int64_t ni;

		if (kind[k] == CK_KEEP)
			continue;
		if (kind[k] == CK_COPY)
			src = zip_source_zip(za, za, (zip_uint64_t)c->from,
					     ZIP_FL_COMPRESSED |
					     ZIP_FL_UNCHANGED, 0, -1);
		else
			src = content_source(c, s);
		if (!src) {
			if (kind[k] != CK_COPY) {
				*oom = true;
			}
			goto out_free;
		}
		if (kind[k] == CK_REPLACE) {
			archive_find(a, c->name, &idx);
			if (zip_file_replace(za, idx, src, 0) < 0) {
				zip_source_free(src);
				goto out_free;
			}
			if (set_new_entry(za, idx, c) < 0)
				goto out_free;
			continue;
		}
		ni = zip_file_add(za, c->name, src, 0);
		if (ni < 0) {
			zip_source_free(src);
			goto out_free;
		}
		if (kind[k] == CK_COPY) {
			const struct archive_member *m = &a->m[c->from].pub;
			zip_uint8_t opsys;
			zip_uint32_t attr;

			if (zip_file_get_external_attributes(za,
				(zip_uint64_t)c->from, ZIP_FL_UNCHANGED,
				&opsys, &attr) < 0 ||
			    zip_file_set_external_attributes(za,
				(zip_uint64_t)ni, 0, opsys, attr) < 0 ||
			    zip_set_file_compression(za, (zip_uint64_t)ni,
						     m->method, 0) < 0 ||
			    zip_file_set_mtime(za, (zip_uint64_t)ni,
					       m->mtime, 0) < 0)
				goto out_free;
		} else {
			if (zip_file_set_external_attributes(za,
				(zip_uint64_t)ni, 0, ZIP_OPSYS_UNIX,
				(zip_uint32_t)(S_IFREG | 0644) << 16) < 0 ||
			    set_new_entry(za, (zip_uint64_t)ni, c) < 0)
				goto out_free;
		}
	}
	ret = 0;
out_free:
	if (tmp_names)
		for (k = 0; k < n; k++)
			free(tmp_names[k]);
	free(tmp_names);
	free(kind);
	free(wanted);
	free(claim);
	return ret;
}

int archive_commit(struct archive *a, const struct archive_change *changes,
		   size_t n, struct archive **out, struct npz_err *err)
{
	struct file_src s;
	char msg[NPZ_ERR_MSG_MAX] = "";
	zip_source_t *src;
	zip_error_t ze;
	zip_t *za;
	bool oom = false;
	char *slash;
	int ret, lfd;

	ret = check_changes(a, changes, n, err);
	if (ret)
		return ret;
	/* lock, check, write, fsync, rename, reopen, unlock */
	lfd = lock_take(a->path, true);
	if (lfd < -1) {
		npz_err_set(err, "%s: cannot take the commit lock: %s", a->path,
			    strerror(-lfd));
		return lfd;
	}
	ret = check_same_file(a, msg, sizeof(msg));
	if (!ret && file_unchanged(a))
		ret = -ESTALE;
	if (ret) {
		npz_err_set(err, "%s", msg[0] ? msg : "archive was rewritten "
			    "in place by another program");
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	memset(&s, 0, sizeof(s));
	s.a = a;
	s.tmp_fd = -1;
	zip_error_init(&s.error);
	slash = strrchr(a->path, '/');
	s.dir = slash == a->path ? strdup("/")
				 : strndup(a->path, (size_t)(slash - a->path));
	s.rbuf = malloc(COMMIT_RBUF);
	s.wbuf = malloc(COMMIT_WBUF);
	if (!s.dir || !s.rbuf || !s.wbuf) {
		ret = -ENOMEM;
		goto out_free;
	}
	zip_error_init(&ze);
	src = zip_source_function_create(fsrc_cb, &s, &ze);
	if (!src) {
		ret = -ENOMEM;
		goto out_free;
	}
	za = zip_open_from_source(src, 0, &ze);
	if (!za) {
		zip_source_free(src);
		ret = s.fail_errno ? -s.fail_errno : zip_error_to_errno(&ze);
		npz_err_set(err, "%s: %s", a->path,
			    s.fail_errno ? s.msg : zip_error_strerror(&ze));
		zip_error_fini(&ze);
		goto out_free;
	}
	zip_error_fini(&ze);
	if ((uint64_t)zip_get_num_entries(za, 0) != a->count) {
		zip_discard(za);
		ret = -ESTALE;
		npz_err_set(err, "%s: archive was modified by another program",
			    a->path);
		goto out_free;
	}
	if (apply_changes(a, za, &s, changes, n, &oom) < 0) {
		ret = oom ? -ENOMEM : zip_error_to_errno(zip_get_error(za));
		npz_err_set(err, "%s", oom ? strerror(ENOMEM) : zip_strerror(za));
		zip_discard(za);
		goto out_free;
	}
	if (zip_close(za) < 0) {
		if (s.fail_errno) {
			ret = -s.fail_errno;
			npz_err_set(err, "%s", s.msg);
		} else {
			ret = zip_error_to_errno(zip_get_error(za));
			npz_err_set(err, "writing %s: %s", a->path,
				    zip_strerror(za));
		}
		if (ret == 0)
			ret = -EIO;
		zip_discard(za);
		goto out_free;
	}
	ret = open_path(a->path, true, out, err);
	if (ret)
		npz_err_prefix(err, "%s: written, but cannot be opened again",
			       a->path);
out_free:
	fsrc_rollback(&s);	/* no temporary file survives a failure */
	if (lfd >= 0)
		close(lfd);
	zip_error_fini(&s.error);
	free(s.wbuf);
	free(s.rbuf);
	free(s.dir);
	return ret;
}

/* ---- Checking: archive_check_member(), archive_check_layout() ---------
 *
 * For `npzfs --check`: the local headers are read again and compared with
 * the central directory, and every member's data is read and checksummed
 * in bounded blocks (never through the inflate cache, so a check leaves
 * no cache behind and costs no disk space).
 */

#define CHECK_BLOCK (1u << 20)	/* data read / inflated per step */

/* What a local header says. */
struct local_hdr {
	uint16_t flags, method, name_len, extra_len;
	uint32_t crc;
	uint64_t comp_size, size;
	bool have_sizes;	/* sizes known (not placeholders, not bit 3) */
	uint64_t data_off;
};

/* Read and parse m's local header.  Returns 0, -EIO (damaged: err says
 * why) or -ENOMEM.  When check_name is set, the name must be m's. */
static int check_read_local(struct archive *a, const struct member *m,
			    struct local_hdr *lh, bool check_name,
			    struct npz_err *err)
{
	unsigned char fixed[30], *var = NULL;
	uint32_t comp32, size32;
	size_t var_len;
	ssize_t n;
	int ret = 0;

	if (m->lh_off > a->file_size || a->file_size - m->lh_off < 30) {
		npz_err_set(err, "local header past end of file");
		return -EIO;
	}
	n = pread_full(a->fd, fixed, 30, m->lh_off);
	if (n != 30) {
		npz_err_set(err, "read error: %s",
			    strerror(n < 0 ? (int)-n : EIO));
		return -EIO;
	}
	if (get32(fixed) != SIG_LOCAL) {
		npz_err_set(err, "bad local header signature at offset %llu",
			    (unsigned long long)m->lh_off);
		return -EIO;
	}
	lh->flags = get16(fixed + 6);
	lh->method = get16(fixed + 8);
	lh->crc = get32(fixed + 14);
	comp32 = get32(fixed + 18);
	size32 = get32(fixed + 22);
	lh->name_len = get16(fixed + 26);
	lh->extra_len = get16(fixed + 28);
	lh->comp_size = comp32;
	lh->size = size32;
	lh->have_sizes = !(lh->flags & 8);
	lh->data_off = m->lh_off + 30 + lh->name_len + lh->extra_len;
	var_len = (size_t)lh->name_len + lh->extra_len;
	if (lh->data_off > a->file_size) {
		npz_err_set(err, "local header name or extra field past end "
			    "of file");
		return -EIO;
	}
	var = malloc(var_len ? var_len : 1);
	if (!var)
		return -ENOMEM;
	n = pread_full(a->fd, var, var_len, m->lh_off + 30);
	if (n != (ssize_t)var_len) {
		npz_err_set(err, "read error: %s",
			    strerror(n < 0 ? (int)-n : EIO));
		ret = -EIO;
		goto out_free_var;
	}
	if (check_name && (lh->name_len != m->raw_len ||
			   memcmp(var, m->raw_name, m->raw_len) != 0)) {
		npz_err_set(err, "local header name \"%.*s\" differs from the "
			    "central directory's", lh->name_len > 64 ? 64 :
			    (int)lh->name_len, (const char *)var);
		ret = -EIO;
		goto out_free_var;
	}
	if (lh->have_sizes && (comp32 == 0xffffffffu || size32 == 0xffffffffu)) {
		/* zip64 extra: both sizes, size first (APPNOTE 4.5.3); take
		 * only the overflowed ones from a short field */
		const unsigned char *x = var + lh->name_len, *xend = x +
					 lh->extra_len;
		bool found = false;

		while (xend - x >= 4) {
			uint16_t id = get16(x), sz = get16(x + 2);
			const unsigned char *f = x + 4;

			if (sz > xend - f)
				break;
			if (id == 0x0001) {
				if (sz >= 16) {
					lh->size = get64(f);
					lh->comp_size = get64(f + 8);
					found = true;
				} else if (sz >= 8) {
					if (size32 == 0xffffffffu)
						lh->size = get64(f);
					else
						lh->comp_size = get64(f);
					found = comp32 != 0xffffffffu ||
						size32 != 0xffffffffu;
				}
				break;
			}
			x = f + sz;
		}
		lh->have_sizes = found;
	}
out_free_var:
	free(var);
	return ret;
}

/* Checksum m's data: stored bytes read as they are, deflated ones
 * inflated, each in blocks of at most CHECK_BLOCK.  0, -EIO, -ENOMEM. */
static int check_data(struct archive *a, const struct member *m,
		      uint64_t data_off, struct npz_err *err)
{
	const uint64_t size = m->pub.size, comp = m->pub.comp_size;
	size_t in_cap = comp < CHECK_BLOCK ? (size_t)comp : CHECK_BLOCK;
	size_t out_cap = size < CHECK_BLOCK ? (size_t)size : CHECK_BLOCK;
	unsigned char *in = NULL, *out = NULL;
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	uint64_t in_pos = 0, out_pos = 0;
	bool end = false;
	z_stream z;
	ssize_t n;
	int ret = 0, zr;

	if (m->pub.method == ARCHIVE_STORE) {
		in = malloc(in_cap ? in_cap : 1);
		if (!in)
			return -ENOMEM;
		while (in_pos < comp) {
			size_t want = comp - in_pos < in_cap ?
				      (size_t)(comp - in_pos) : in_cap;

			n = pread_full(a->fd, in, want, data_off + in_pos);
			if (n != (ssize_t)want) {
				npz_err_set(err, "read error: %s",
					    strerror(n < 0 ? (int)-n : EIO));
				ret = -EIO;
				goto out_free;
			}
			crc = crc32_fast(crc, in, want);
			in_pos += want;
		}
		out_pos = in_pos;
		end = true;
		goto out_crc;
	}

	memset(&z, 0, sizeof(z));
	in = malloc(in_cap ? in_cap : 1);
	out = malloc(out_cap ? out_cap : 1);
	if (!in || !out || inflateInit2(&z, -MAX_WBITS) != Z_OK) {
		ret = -ENOMEM;
		goto out_free;
	}
	while (!end) {
		if (z.avail_in == 0) {
			size_t want = comp - in_pos < in_cap ?
				      (size_t)(comp - in_pos) : in_cap;

			if (want == 0) {
				npz_err_set(err, "deflate data ends early "
					    "(%llu of %llu bytes inflated)",
					    (unsigned long long)out_pos,
					    (unsigned long long)size);
				ret = -EIO;
				break;
			}
			n = pread_full(a->fd, in, want, data_off + in_pos);
			if (n != (ssize_t)want) {
				npz_err_set(err, "read error: %s",
					    strerror(n < 0 ? (int)-n : EIO));
				ret = -EIO;
				break;
			}
			z.next_in = in;
			z.avail_in = (uInt)want;
			in_pos += want;
		}
		z.next_out = out;
		z.avail_out = (uInt)(out_cap ? out_cap : 1);
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END &&
		    !(zr == Z_BUF_ERROR && z.avail_in == 0)) {
			npz_err_set(err, "damaged deflate data: %s",
				    z.msg ? z.msg : "inflate error");
			ret = -EIO;
			break;
		}
		n = (ssize_t)((out_cap ? out_cap : 1) - z.avail_out);
		if ((uint64_t)n > size - out_pos) {
			npz_err_set(err, "inflates to more than its size %llu",
				    (unsigned long long)size);
			ret = -EIO;
			break;
		}
		crc = crc32_fast(crc, out, (size_t)n);
		out_pos += (uint64_t)n;
		end = zr == Z_STREAM_END;
	}
	inflateEnd(&z);
	if (ret)
		goto out_free;
out_crc:
	if (out_pos != size) {
		npz_err_set(err, "inflates to %llu bytes, not its size %llu",
			    (unsigned long long)out_pos,
			    (unsigned long long)size);
		ret = -EIO;
	} else if (crc != m->pub.crc) {
		npz_err_set(err, "CRC mismatch (stored 0x%08x, computed 0x%08x)",
			    m->pub.crc, crc);
		ret = -EIO;
	}
out_free:
	free(in);
	free(out);
	return ret;
}

int archive_check_member(struct archive *a, size_t i, struct npz_err *err)
{
	const struct member *m;
	struct local_hdr lh;
	int ret;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	ret = check_read_local(a, m, &lh, true, err);
	if (ret)
		return ret;
	if ((m->flags | lh.flags) & 1) {
		npz_err_set(err, "encrypted members are not supported");
		return -EIO;
	}
	if (lh.method != m->pub.method) {
		npz_err_set(err, "local header method %u differs from the "
			    "central directory's %u", lh.method,
			    m->pub.method);
		return -EIO;
	}
	if (lh.have_sizes && lh.crc != m->pub.crc) {
		npz_err_set(err, "local header CRC 0x%08x differs from the "
			    "central directory's 0x%08x", lh.crc, m->pub.crc);
		return -EIO;
	}
	if (lh.have_sizes && (lh.size != m->pub.size ||
			      lh.comp_size != m->pub.comp_size)) {
		npz_err_set(err, "local header sizes %llu/%llu differ from the "
			    "central directory's %llu/%llu",
			    (unsigned long long)lh.comp_size,
			    (unsigned long long)lh.size,
			    (unsigned long long)m->pub.comp_size,
			    (unsigned long long)m->pub.size);
		return -EIO;
	}
	if (m->pub.comp_size > a->file_size - lh.data_off) {
		npz_err_set(err, "data past end of file (%llu bytes at offset "
			    "%llu, file has %llu)",
			    (unsigned long long)m->pub.comp_size,
			    (unsigned long long)lh.data_off,
			    (unsigned long long)a->file_size);
		return -EIO;
	}
	if (m->pub.method != ARCHIVE_STORE && m->pub.method != ARCHIVE_DEFLATE) {
		npz_err_set(err, "unsupported compression method %u",
			    m->pub.method);
		return -EIO;
	}
	return check_data(a, m, lh.data_off, err);
}

struct extent {
	uint64_t start, end;
	size_t idx;
};

static int cmp_extent(const void *x, const void *y)
{
	const struct extent *p = x, *q = y;

	if (p->start != q->start)
		return p->start < q->start ? -1 : 1;
	return p->idx < q->idx ? -1 : p->idx > q->idx;
}

int archive_check_layout(struct archive *a, archive_report_fn *report,
			 void *ctx, struct npz_err *err)
{
	uint64_t cd_off, cd_size, entries, max_end = 0;
	struct extent *ext;
	size_t i, n = 0, max_idx = 0;
	char msg[NPZ_ERR_MSG_MAX];
	int ret, problems = 0;

	ret = find_cdir(a, &cd_off, &cd_size, &entries, err);
	if (ret)
		return ret;
	ext = malloc((a->count ? a->count : 1) * sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	for (i = 0; i < a->count; i++) {
		const struct member *m = &a->m[i];
		struct local_hdr lh;

		ret = check_read_local(a, m, &lh, false, NULL);
		if (ret == -ENOMEM)
			goto out_free;
		if (ret || m->pub.comp_size > a->file_size - lh.data_off)
			continue;
		ext[n].start = m->lh_off;
		ext[n].end = lh.data_off + m->pub.comp_size;
		ext[n].idx = i;
		n++;
	}
	ret = 0;
	qsort(ext, n, sizeof(*ext), cmp_extent);
	for (i = 0; i < n; i++) {
		const struct extent *e = &ext[i];
		bool bad = false;

		if (i > 0 && e->start < max_end) {
			snprintf(msg, sizeof(msg), "overlaps member %zu (%s): "
				 "bytes %llu-%llu and %llu-%llu",
				 max_idx, a->m[max_idx].pub.name,
				 (unsigned long long)e->start,
				 (unsigned long long)e->end,
				 (unsigned long long)a->m[max_idx].lh_off,
				 (unsigned long long)max_end);
			bad = true;
		} else if (e->end > cd_off) {
			snprintf(msg, sizeof(msg), "data overlaps the central "
				 "directory (ends at %llu, directory starts "
				 "at %llu)", (unsigned long long)e->end,
				 (unsigned long long)cd_off);
			bad = true;
		}
		if (bad) {
			report(ctx, e->idx, msg);
			problems++;
		}
		if (e->end > max_end) {
			max_end = e->end;
			max_idx = e->idx;
		}
	}
out_free:
	free(ext);
	return ret ? ret : problems;
}
