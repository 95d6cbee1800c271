/* inflate.c - deflated members that are one deflate stream (numpy's; SOZip
 * members go to sozip.c): inflated with ISA-L, made seekable with access
 * points (the zran technique), and cached in blocks inside the budget.
 *
 * Blocks.  A member's inflated data is cut into blocks of blk bytes
 * (256 KiB, more for members of over 64 GiB so that there are at most
 * 2^18).  A cached block lives at its place in the member's region of the
 * archive's unlinked sparse cache file, charged to the budget on its own
 * (its own cache_item, evicted least recently used: a punched hole).
 *
 * Streams.  A member being read has a stream (ISA-L inflate state, a
 * window of compressed input, ZR_WINDOWS windows of output holding the
 * last blocks inflated) at its position; a read of the next block goes on
 * from there, so a sequential read inflates every byte once.  Readers copy
 * out of windows without m->lock (the window pinned under z->lock), so
 * that the read-ahead thread (below) inflates the next blocks of a
 * sequential reader while its FUSE threads copy the previous ones.  At
 * most ARCHIVE_STREAMS members of an archive keep a stream (the least
 * recently used idle one is taken over; when none is free, a read uses a
 * private one).
 *
 * Access points.  While a stream inflates, at every span bytes of output
 * (a multiple of blk, chosen so that a member's points take at most about a
 * quarter of the budget: ar_zran_span) it keeps a snapshot of itself: ISA-L
 * keeps its whole decoder state, history included, in the flat struct
 * inflate_state (the history in tmp_out_buffer; no pointers but next_in
 * and next_out), so a snapshot is that struct up to tmp_out_buffer plus the
 * last 32 KiB of history and any output it holds back (about 54 KiB),
 * with the compressed offset it had consumed (tests/unit/test_zran.c
 * proves that restoring one gives the same bytes).  A read of a block the
 * stream has passed, or far ahead of it, restores the nearest point at or
 * before the block instead of inflating from the start.  A member's points
 * are one item of the budget (memory, charged as they are taken; evicted
 * all together).
 *
 * What is cached: every block of a member whose size is at most half the
 * budget; for bigger members only the blocks a non-sequential read asked
 * for (a sequential read of a big member would only churn the cache; the
 * kernel's page cache keeps what it read).  A charge the budget refuses,
 * or a write the cache file refuses (logged once per member), means the
 * block is served uncached.
 *
 * CRC: a stream that inflated from the member's start to its end without a
 * restore checks the CRC-32 (ISA-L computes it as it inflates); members of
 * at most ZR_WHOLE bytes are inflated whole (CRC checked) on their first
 * read, before any byte is served; every
 * stream that reaches the end checks that the deflate stream ends exactly
 * at the member's size.  Damaged data (ISA-L errors, truncation, wrong size
 * or CRC) marks the member bad: every read is then EIO.
 *
 * Locks: m->lock (the member's stream and its windows, held while
 * inflating) before a->pool_lock (which members hold streams) and before
 * z->lock (points, blocks' states and pins; held only for short copies).
 * Reads of cached blocks take z->lock alone, never m->lock, so they do not
 * wait for an inflate.  Evictions (cache lock held) take z->lock by trylock.
 */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "zip_internal.h"

#define ZR_BLOCK (256u << 10)		/* least block size */
#define ZR_MIN_SPAN (1u << 20)		/* least distance of two points */
#define ZR_MAX_BLOCKS (1u << 18)	/* blocks grow past this */
#define ZR_POINT_EST (56u << 10)	/* a point's bytes, for the span */
#define ZR_IN_CAP (256u << 10)		/* compressed bytes per pread */
#define ZR_HIST (32u << 10)		/* deflate's history */
#define ZR_WINDOWS 16			/* blocks a stream keeps inflated */
#define ZR_WHOLE (1u << 20)		/* members inflated whole first */
#define ZR_AHEAD 8			/* blocks inflated ahead of a reader */
#define ZR_NEAR 8			/* blocks between reads that count as
					   one sequential reader's */
#define RA_QUEUE 16			/* read-ahead jobs waiting, at most */
/* Deflate gives at most 258 bytes per 2 bits (1032:1): a member that says
 * it inflates to more than this (a damaged or forged size) is refused
 * before anything is sized by it. */
#define ZR_MAX_RATIO 1032u
#define ZR_MAX_SIZE (1ull << 40)	/* 1 TiB: 4 MiB blocks, 2^18 of them */

#define SNAP_HEAD offsetof(struct inflate_state, tmp_out_buffer)
const size_t AR_SNAP_MAX = sizeof(struct inflate_state);

enum { BLK_EMPTY, BLK_WRITING, BLK_CACHED };

struct zr_block {
	struct cache_item ci;
	struct zran *z;
	uint32_t idx;
	uint8_t state;		/* z->lock */
	unsigned pins;		/* z->lock: readers of the cached bytes */
};

struct zr_point {
	uint64_t in;		/* compressed bytes consumed */
	size_t len;
	unsigned char *snap;	/* NULL: no point here */
};

struct zr_stream {
	struct inflate_state st;
	unsigned char *in;	/* compressed bytes [in_lo, in_lo + in_len) */
	uint64_t in_lo;
	size_t in_len;
	uint64_t fed;		/* compressed bytes given to st so far */
	uint64_t pos;		/* output produced so far */
	bool valid;		/* positioned at pos */
	bool from_start;	/* inflated from 0 with no restore: CRC known */
	bool ended;		/* the deflate stream ended, checked */
	/* windows: the last blocks inflated.  Their buffers are filled
	 * under m->lock; which block each holds, its pins and last use are
	 * under z->lock, so that readers copy out of a window without
	 * m->lock while the stream inflates into another one */
	unsigned char *win[ZR_WINDOWS];
	uint64_t win_blk[ZR_WINDOWS];	/* block held, UINT64_MAX: none */
	unsigned win_pins[ZR_WINDOWS];	/* readers copying out of it */
	uint64_t win_use[ZR_WINDOWS];	/* last use (tick), for refills */
	uint64_t tick;
	size_t win_cap;
	int slot;		/* a->streams slot, -1: private */
};

struct zran {
	struct member *m;
	uint64_t blk, span, nblocks, npoints;
	bool cache_all;		/* the member fits in half the budget */
	_Atomic bool write_failed;	/* the cache file refused a block */
	pthread_mutex_t lock;	/* points, blocks' state and pins; after
				   m->lock; taken by evictions by trylock */
	struct zr_point *pt;	/* npoints: pt[k] at output k * span */
	size_t have_points;
	uint64_t pt_gen;	/* z->lock: bumped when points are evicted */
	struct cache_item pci;	/* all points' bytes */
	struct zr_block *b;
	struct zr_stream *s;	/* its stream, or NULL: set under m->lock
				   and z->lock, read under either */
	_Atomic uint64_t next_blk;	/* the block the stream inflates
					   next, UINT64_MAX: none */
	_Atomic uint64_t last_blk;	/* the block last read */
};

/* ---- snapshots ---- */

size_t ar_zran_snapshot(const struct inflate_state *st, unsigned char *out)
{
	int32_t from = st->tmp_out_processed - (int32_t)ZR_HIST;
	struct inflate_state *h;
	size_t n;

	/* the history ISA-L needs is the ZR_HIST bytes before what it has
	 * handed out; bytes after that are output it still holds back */
	if (from < 0)
		from = 0;
	n = (size_t)(st->tmp_out_valid - from);
	if (out) {
		memcpy(out, st, SNAP_HEAD);
		memcpy(out + SNAP_HEAD, st->tmp_out_buffer + from, n);
		h = (struct inflate_state *)(void *)out;
		h->tmp_out_valid -= from;
		h->tmp_out_processed -= from;
		h->next_in = NULL;
		h->avail_in = 0;
		h->next_out = NULL;
		h->avail_out = 0;
	}
	return SNAP_HEAD + n;
}

void ar_zran_restore(struct inflate_state *st, const unsigned char *snap,
		     size_t len)
{
	memcpy(st, snap, len);
}

static uint64_t block_size(uint64_t size)
{
	uint64_t blk = ZR_BLOCK;

	while (size / blk >= ZR_MAX_BLOCKS)
		blk <<= 1;
	return blk;
}

uint64_t ar_zran_span(uint64_t size, uint64_t limit)
{
	uint64_t blk = block_size(size), n = limit / 4 / ZR_POINT_EST, span;

	if (n < 1)
		n = 1;
	span = size / n + 1;
	if (span < ZR_MIN_SPAN)
		span = ZR_MIN_SPAN;
	span = (span + blk - 1) / blk * blk;
	return span;
}

/* ---- the budget's callbacks (cache lock held: trylock only) ---- */

static bool block_evict(struct cache_item *it)
{
	struct zr_block *b = (struct zr_block *)(void *)it;
	struct zran *z = b->z;
	struct member *m = z->m;
	uint64_t off = (uint64_t)b->idx * z->blk;
	bool done = false;

	if (pthread_mutex_trylock(&z->lock))
		return false;
	if (b->state == BLK_CACHED && !b->pins) {
		b->state = BLK_EMPTY;
		atomic_fetch_sub(&m->cached, it->bytes);
		fallocate(m->a->cache_fd, FALLOC_FL_PUNCH_HOLE |
			  FALLOC_FL_KEEP_SIZE, (off_t)(m->base + off),
			  (off_t)it->bytes);
		done = true;
	}
	pthread_mutex_unlock(&z->lock);
	return done;
}

/* z->lock held. */
static void points_free(struct zran *z)
{
	for (uint64_t k = 0; k < z->npoints; k++) {
		free(z->pt[k].snap);
		z->pt[k].snap = NULL;
	}
	z->have_points = 0;
	z->pt_gen++;
}

static bool points_evict(struct cache_item *it)
{
	struct zran *z = (struct zran *)((char *)it -
					 offsetof(struct zran, pci));

	if (pthread_mutex_trylock(&z->lock))
		return false;
	points_free(z);
	pthread_mutex_unlock(&z->lock);
	return true;
}

/* ---- per-member state ---- */

static struct zran *zran_new(struct member *m)
{
	struct zran *z = calloc(1, sizeof(*z));
	uint64_t limit = cache_limit();

	if (!z)
		return NULL;
	z->m = m;
	z->blk = block_size(m->pub.size);
	z->span = ar_zran_span(m->pub.size, limit);
	z->nblocks = (m->pub.size + z->blk - 1) / z->blk;
	z->npoints = m->pub.size / z->span + 1;
	z->cache_all = m->pub.size <= limit / 2;
	z->pt = calloc(z->npoints, sizeof(*z->pt));
	z->b = calloc(z->nblocks ? z->nblocks : 1, sizeof(*z->b));
	if (!z->pt || !z->b) {
		free(z->pt);
		free(z->b);
		free(z);
		return NULL;
	}
	for (uint64_t i = 0; i < z->nblocks; i++) {
		z->b[i].ci.evict = block_evict;
		z->b[i].z = z;
		z->b[i].idx = (uint32_t)i;
	}
	z->pci.evict = points_evict;
	atomic_init(&z->next_blk, UINT64_MAX);
	atomic_init(&z->last_blk, UINT64_MAX);
	pthread_mutex_init(&z->lock, NULL);
	return z;
}

/* m's zran, made on first use.  NULL on ENOMEM. */
static struct zran *zran_get(struct member *m)
{
	struct zran *z = atomic_load_explicit(&m->zr, memory_order_acquire);

	if (z)
		return z;
	pthread_mutex_lock(&m->lock);
	z = atomic_load(&m->zr);
	if (!z) {
		z = zran_new(m);
		if (z)
			atomic_store_explicit(&m->zr, z, memory_order_release);
	}
	pthread_mutex_unlock(&m->lock);
	return z;
}

size_t ar_zran_points(struct archive *a, size_t i)
{
	struct zran *z = atomic_load(&a->m[i].zr);
	size_t n;

	if (!z)
		return 0;
	pthread_mutex_lock(&z->lock);
	n = z->have_points;
	pthread_mutex_unlock(&z->lock);
	return n;
}

/* ---- streams ---- */

static void windows_free(struct zr_stream *s)
{
	for (int i = 0; i < ZR_WINDOWS; i++) {
		free(s->win[i]);
		s->win[i] = NULL;
	}
	s->win_cap = 0;
}

static void stream_free(struct zr_stream *s)
{
	if (!s)
		return;
	free(s->in);
	windows_free(s);
	free(s);
}

/* Make s ready for member z->m: windows of z's block size, empty, not
 * positioned.  Returns 0. */
static int stream_adopt(struct zr_stream *s, struct zran *z)
{
	size_t cap = (size_t)(z->blk < z->m->pub.size ? z->blk :
			      z->m->pub.size);

	if (!cap)
		cap = 1;
	if (s->win_cap != cap) {
		/* allocated as they are first filled (inflate_block) */
		windows_free(s);
		s->win_cap = cap;
	}
	for (int i = 0; i < ZR_WINDOWS; i++) {
		s->win_blk[i] = UINT64_MAX;
		s->win_pins[i] = 0;
		s->win_use[i] = 0;
	}
	s->valid = s->ended = false;
	s->in_len = 0;
	s->in_lo = 0;
	return 0;
}

static struct zr_stream *stream_alloc(void)
{
	struct zr_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->in = malloc(ZR_IN_CAP);
	if (!s->in) {
		free(s);
		return NULL;
	}
	s->slot = -1;
	return s;
}

/* Take victim's stream for another member, when no reader copies out of
 * its windows.  victim->lock held.  Returns it or NULL. */
static struct zr_stream *stream_take(struct member *victim)
{
	struct zran *vz = atomic_load(&victim->zr);
	struct zr_stream *s = vz->s;

	pthread_mutex_lock(&vz->lock);
	for (int i = 0; s && i < ZR_WINDOWS; i++)
		if (s->win_pins[i])
			s = NULL;
	if (s) {
		vz->s = NULL;
		atomic_store(&vz->next_blk, UINT64_MAX);
	}
	pthread_mutex_unlock(&vz->lock);
	return s;
}

/* A stream for member z->m (m->lock held): its own, a new one in a free
 * slot, the least recently used other member's idle one, or a private one
 * (freed by stream_put) when every slot's owner is busy.  NULL on ENOMEM. */
static struct zr_stream *stream_get(struct archive *a, struct zran *z)
{
	struct member *m = z->m;
	struct zr_stream *s = NULL;
	int slot = -1, order[ARCHIVE_STREAMS], n = 0;

	pthread_mutex_lock(&a->pool_lock);
	if (z->s) {
		s = z->s;
		a->stream_tick[s->slot] = ++a->tick;
		pthread_mutex_unlock(&a->pool_lock);
		return s;
	}
	for (int i = 0; i < ARCHIVE_STREAMS && slot < 0; i++)
		if (!a->streams[i])
			slot = i;
	if (slot < 0) {
		/* other members' slots, least recently used first */
		for (int i = 0; i < ARCHIVE_STREAMS; i++) {
			int j = n++;

			while (j > 0 && a->stream_tick[order[j - 1]] >
					a->stream_tick[i]) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
		for (int k = 0; k < n && !s; k++) {
			struct member *v = a->streams[order[k]];

			if (v == m || pthread_mutex_trylock(&v->lock))
				continue;
			s = stream_take(v);
			pthread_mutex_unlock(&v->lock);
			if (s)
				slot = order[k];
		}
	}
	if (slot >= 0) {
		a->streams[slot] = m;
		a->stream_tick[slot] = ++a->tick;
	}
	pthread_mutex_unlock(&a->pool_lock);
	if (!s)
		s = stream_alloc();
	if (s && stream_adopt(s, z)) {
		stream_free(s);
		s = NULL;
	}
	if (!s) {
		if (slot >= 0) {
			pthread_mutex_lock(&a->pool_lock);
			a->streams[slot] = NULL;
			pthread_mutex_unlock(&a->pool_lock);
		}
		return NULL;
	}
	s->slot = slot;
	if (slot >= 0) {
		pthread_mutex_lock(&z->lock);
		z->s = s;
		pthread_mutex_unlock(&z->lock);
	}
	return s;
}

static void stream_put(struct zr_stream *s)
{
	if (s->slot < 0)
		stream_free(s);
}

void ar_pool_init(struct archive *a)
{
	memset(a->streams, 0, sizeof(a->streams));
}

static void ra_forget(struct archive *a);

void ar_pool_release(struct archive *a)
{
	ra_forget(a);
	for (size_t i = 0; a->m && i < a->count && a->m[i].raw_name; i++) {
		struct zran *z = atomic_exchange(&a->m[i].zr, NULL);

		if (!z)
			continue;
		for (uint64_t b = 0; b < z->nblocks; b++)
			cache_drop(&z->b[b].ci);
		cache_drop(&z->pci);
		points_free(z);
		stream_free(z->s);
		pthread_mutex_destroy(&z->lock);
		free(z->pt);
		free(z->b);
		free(z);
	}
	memset(a->streams, 0, sizeof(a->streams));
}

/* ---- inflating ---- */

/* The cache file of inflated data, created on first use.  Returns the
 * descriptor, or -1 when none can be made (reads then go uncached). */
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

/* Start s over at the member's start. */
static void stream_rewind(struct zr_stream *s)
{
	isal_inflate_init(&s->st);
	s->st.crc_flag = ISAL_GZIP_NO_HDR;	/* raw deflate, CRC-32 kept */
	s->st.avail_in = 0;
	s->fed = 0;
	s->pos = 0;
	s->valid = true;
	s->from_start = true;
	s->ended = false;
}

/* Give the stream compressed bytes from s->fed on.  Returns 0 or -errno. */
static int feed(struct archive *a, struct member *m, struct zr_stream *s,
		uint64_t data_off, struct npz_err *err)
{
	uint64_t pos = s->fed, comp = m->pub.comp_size;

	if (pos < s->in_lo || pos >= s->in_lo + s->in_len) {
		size_t want = comp - pos < ZR_IN_CAP ? (size_t)(comp - pos) :
			      ZR_IN_CAP;
		ssize_t n = ar_pread_full(a->fd, s->in, want, data_off + pos);
		int ret;

		if (n != (ssize_t)want) {
			ret = n < 0 ? (int)n : -EIO;
			npz_err_set(err, "member %s: read error: %s",
				    m->pub.name, strerror(-ret));
			s->in_len = 0;
			return ret;
		}
		ret = ar_file_unchanged(a);
		if (ret) {
			s->in_len = 0;
			return ret;
		}
		s->in_lo = pos;
		s->in_len = want;
	}
	s->st.next_in = s->in + (pos - s->in_lo);
	s->st.avail_in = (uint32_t)(s->in_lo + s->in_len - pos);
	s->fed = s->in_lo + s->in_len;
	return 0;
}

/* Inflate exactly len bytes into dst (len 0: only run the stream to its
 * end, which must produce nothing).  Returns 0 or -errno (-EIO: the
 * member is marked damaged). */
static int inflate_to(struct archive *a, struct member *m,
		      struct zr_stream *s, uint64_t data_off,
		      unsigned char *dst, size_t len, struct npz_err *err)
{
	unsigned char spare[1];
	size_t done = 0;
	int ret;

	for (;;) {
		uint32_t in0;
		size_t cap, got;
		int zr;

		if (done == len && (len || s->st.block_state ==
				    ISAL_BLOCK_FINISH))
			return 0;
		if (s->st.block_state == ISAL_BLOCK_FINISH)
			return ar_member_fail(m, FAULT_SIZE, err);
		if (s->st.avail_in == 0 && s->fed < m->pub.comp_size) {
			ret = feed(a, m, s, data_off, err);
			if (ret)
				return ret;
		}
		/* at the end, a spare byte shows any output past the size */
		cap = len ? len - done : sizeof(spare);
		if (cap > (1u << 30))
			cap = 1u << 30;
		s->st.next_out = len ? dst + done : spare;
		s->st.avail_out = (uint32_t)cap;
		in0 = s->st.avail_in;
		zr = isal_inflate(&s->st);
		if (zr < 0) {
			ret = ar_member_fail(m, FAULT_INFLATE, err);
			npz_err_set(err, "member %s: damaged deflate data "
				    "(ISA-L error %d)", m->pub.name, zr);
			return ret;
		}
		got = cap - s->st.avail_out;
		if (!len && got)
			return ar_member_fail(m, FAULT_SIZE, err);
		done += got;
		s->pos += got;
		if (!got && s->st.avail_in == in0 &&
		    s->st.block_state != ISAL_BLOCK_FINISH &&
		    (in0 || s->fed >= m->pub.comp_size))
			return ar_member_fail(m, FAULT_INFLATE, err);
	}
}

/* The stream produced the member's last byte: the deflate stream must end
 * there, and, read from the start, match the CRC. */
static int stream_end(struct archive *a, struct member *m,
		      struct zr_stream *s, uint64_t data_off,
		      struct npz_err *err)
{
	int ret = inflate_to(a, m, s, data_off, NULL, 0, err);

	if (ret)
		return ret;
	s->ended = true;
	if (s->from_start && s->st.crc != m->pub.crc)
		return ar_member_fail(m, FAULT_CRC, err);
	return 0;
}

/* Keep an access point for s's position (at a span boundary) unless there
 * is one; a charge the budget refuses means no point. */
static void point_take(struct zran *z, struct zr_stream *s)
{
	uint64_t k = s->pos / z->span, gen;
	size_t len;
	unsigned char *snap;

	pthread_mutex_lock(&z->lock);
	gen = z->pt_gen;
	if (z->pt[k].snap) {
		pthread_mutex_unlock(&z->lock);
		return;
	}
	pthread_mutex_unlock(&z->lock);
	len = ar_zran_snapshot(&s->st, NULL);
	snap = malloc(len);
	if (!snap)
		return;
	ar_zran_snapshot(&s->st, snap);
	if (cache_charge(&z->pci, len)) {
		free(snap);
		return;
	}
	pthread_mutex_lock(&z->lock);
	if (z->pt_gen != gen || z->pt[k].snap) {
		/* evicted meanwhile (the charge went with them) or taken */
		if (z->pt_gen == gen)
			cache_release(&z->pci, len);
		free(snap);
	} else {
		z->pt[k].snap = snap;
		z->pt[k].len = len;
		z->pt[k].in = s->fed - s->st.avail_in;
		z->have_points++;
	}
	pthread_mutex_unlock(&z->lock);
}

/* Put s at or before output offset target: it goes on from where it is
 * when that is between the nearest access point and target, else from that
 * point (or the start).  Returns SEEK_ON, SEEK_START or SEEK_POINT. */
enum { SEEK_ON, SEEK_START, SEEK_POINT };

static int stream_seek(struct zran *z, struct zr_stream *s, uint64_t target)
{
	uint64_t k = target / z->span;

	pthread_mutex_lock(&z->lock);
	while (k > 0 && !z->pt[k].snap)
		k--;
	if (s->valid && s->pos <= target && s->pos >= k * z->span) {
		pthread_mutex_unlock(&z->lock);
		return SEEK_ON;
	}
	if (k == 0) {
		pthread_mutex_unlock(&z->lock);
		stream_rewind(s);
		return SEEK_START;
	}
	ar_zran_restore(&s->st, z->pt[k].snap, z->pt[k].len);
	s->fed = z->pt[k].in;
	pthread_mutex_unlock(&z->lock);
	cache_touch(&z->pci);
	s->st.next_in = NULL;
	s->st.avail_in = 0;
	s->pos = k * z->span;
	s->valid = true;
	s->from_start = false;
	s->ended = false;
	return SEEK_POINT;
}

/* Write block bi (data[0..len)) to the cache file, when the budget and the
 * file take it.  m->lock held. */
static void block_store(struct archive *a, struct zran *z, uint64_t bi,
			const unsigned char *data, size_t len)
{
	struct zr_block *b = &z->b[bi];
	struct member *m = z->m;
	int fd, ret;

	if (atomic_load(&z->write_failed))
		return;
	fd = cache_file(a);
	if (fd < 0)
		return;
	pthread_mutex_lock(&z->lock);
	if (b->state != BLK_EMPTY) {
		pthread_mutex_unlock(&z->lock);
		return;
	}
	b->state = BLK_WRITING;
	pthread_mutex_unlock(&z->lock);
	ret = cache_charge(&b->ci, len);
	if (!ret) {
		ret = io_pwrite_all(fd, data, len, m->base + bi * z->blk);
		if (ret) {
			cache_drop(&b->ci);
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(m->base + bi * z->blk), (off_t)len);
			if (!atomic_exchange(&z->write_failed, true))
				npz_log("cache file in %s: %s; reading %s "
					"without it", cache_dir(),
					strerror(-ret), m->pub.name);
		}
	}
	pthread_mutex_lock(&z->lock);
	b->state = ret ? BLK_EMPTY : BLK_CACHED;
	pthread_mutex_unlock(&z->lock);
	if (!ret)
		atomic_fetch_add(&m->cached, len);
}

static size_t block_len(const struct zran *z, uint64_t bi)
{
	uint64_t start = bi * z->blk, left = z->m->pub.size - start;

	return (size_t)(left < z->blk ? left : z->blk);
}

/* The window of s to fill next: an empty one, else the least recently
 * used one no reader copies out of; -1 when every one is being read.
 * Marked empty.  z->lock held. */
static int window_claim(struct zr_stream *s)
{
	int w = -1;

	for (int i = 0; i < ZR_WINDOWS; i++) {
		if (s->win_pins[i])
			continue;
		if (s->win_blk[i] == UINT64_MAX) {
			w = i;
			break;
		}
		if (w < 0 || s->win_use[i] < s->win_use[w])
			w = i;
	}
	if (w >= 0)
		s->win_blk[w] = UINT64_MAX;
	return w;
}

/* Inflate s's next block (s->pos is a block's start) into a window,
 * taking an access point first when it starts a span, and cache it when
 * store.  m->lock held.  Returns the window, or -errno. */
static int inflate_block(struct archive *a, struct zran *z,
			 struct zr_stream *s, uint64_t data_off, bool store,
			 struct npz_err *err)
{
	struct member *m = z->m;
	uint64_t bi = s->pos / z->blk;
	size_t len = block_len(z, bi);
	int w, ret;

	pthread_mutex_lock(&z->lock);
	w = window_claim(s);
	pthread_mutex_unlock(&z->lock);
	if (w < 0)
		return -EAGAIN;	/* not for long: readers only copy */
	if (!s->win[w]) {
		s->win[w] = malloc(s->win_cap);
		if (!s->win[w])
			return -ENOMEM;
	}
	if (s->pos && s->pos % z->span == 0)
		point_take(z, s);
	ret = inflate_to(a, m, s, data_off, s->win[w], len, err);
	if (!ret && s->pos == m->pub.size)
		ret = stream_end(a, m, s, data_off, err);
	if (ret) {
		s->valid = false;
		atomic_store(&z->next_blk, UINT64_MAX);
		return ret;
	}
	pthread_mutex_lock(&z->lock);
	s->win_blk[w] = bi;
	s->win_use[w] = ++s->tick;
	pthread_mutex_unlock(&z->lock);
	atomic_store(&z->next_blk, bi + 1);
	if (store || z->cache_all)
		block_store(a, z, bi, s->win[w], len);
	return w;
}

/* Copy [boff, boff + n) of block bi out of a window of z's stream when
 * one holds it (no m->lock: the window is pinned meanwhile).  Returns true
 * when done. */
static bool window_read(struct zran *z, uint64_t bi, unsigned char *dst,
			size_t boff, size_t n)
{
	struct zr_stream *s;
	int w = -1;

	pthread_mutex_lock(&z->lock);
	s = z->s;
	for (int i = 0; s && i < ZR_WINDOWS; i++)
		if (s->win_blk[i] == bi)
			w = i;
	if (w < 0) {
		pthread_mutex_unlock(&z->lock);
		return false;
	}
	s->win_pins[w]++;
	s->win_use[w] = ++s->tick;
	pthread_mutex_unlock(&z->lock);
	memcpy(dst, s->win[w] + boff, n);
	pthread_mutex_lock(&z->lock);
	s->win_pins[w]--;
	pthread_mutex_unlock(&z->lock);
	return true;
}

/* Copy [boff, boff + n) of block bi to dst through m's stream.
 * m->lock held.  Returns 0 or -errno. */
static int stream_read(struct archive *a, struct zran *z, uint64_t bi,
		       unsigned char *dst, size_t boff, size_t n,
		       struct npz_err *err)
{
	struct member *m = z->m;
	struct zr_stream *s;
	int64_t data_off;
	int w = -1, ret = 0, how;
	bool jumped, was_valid;

	data_off = ar_member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	s = stream_get(a, z);
	if (!s)
		return -ENOMEM;
	/* m->lock held: no window is refilled (or the stream taken) now */
	for (int i = 0; i < ZR_WINDOWS; i++)
		if (s->win_blk[i] == bi)
			w = i;
	if (w < 0) {
		/* a read far from the stream, or behind it, is a random
		 * one: its block is cached; one a few blocks ahead (FUSE
		 * sends a sequential reader's requests two at a time), or
		 * near the start of a fresh stream, is not */
		was_valid = s->valid;
		how = stream_seek(z, s, bi * z->blk);
		jumped = how == SEEK_POINT ||
			 (how == SEEK_START && was_valid) ||
			 bi * z->blk - s->pos > ZR_NEAR * z->blk;
		atomic_store(&z->next_blk, s->pos / z->blk);
		while (s->pos < bi * z->blk) {
			ret = inflate_block(a, z, s, (uint64_t)data_off, false,
					    err);
			if (ret < 0)
				goto out;
		}
		w = inflate_block(a, z, s, (uint64_t)data_off, jumped, err);
		ret = w < 0 ? w : 0;
		/* a small member is inflated whole and its CRC checked
		 * before any of it is served */
		while (!ret && s->from_start && !s->ended &&
		       m->pub.size <= ZR_WHOLE) {
			ret = inflate_block(a, z, s, (uint64_t)data_off, false,
					    err);
			ret = ret < 0 ? ret : 0;
		}
		if (ret)
			goto out;
		for (int i = 0; i < ZR_WINDOWS; i++)
			if (s->win_blk[i] == bi)
				w = i;
	}
	memcpy(dst, s->win[w] + boff, n);
	ret = 0;
out:
	stream_put(s);
	return ret;
}

/* ---- read-ahead: one process-wide thread inflates the next blocks of a
 * member read sequentially while the reader's threads copy, so inflating
 * and FUSE's copies run on two cores.  A job names (archive, member); it
 * inflates the stream's next blocks while they are at most ZR_AHEAD ahead
 * of the member's last read block.  ar_pool_release() drops an archive's jobs and waits
 * for a running one. ---- */

struct ra_job {
	struct archive *a;
	struct member *m;
};

static struct {
	pthread_mutex_t lock;	/* protects: everything below; a leaf */
	pthread_cond_t work, idle;
	struct ra_job q[RA_QUEUE];
	int n;
	struct archive *running;
	enum { RA_NONE, RA_ON, RA_FAILED } state;
} RA = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	 PTHREAD_COND_INITIALIZER, { { NULL, NULL } }, 0, NULL, RA_NONE };

static _Atomic bool ra_off;

void ar_zran_set_readahead(bool on)
{
	atomic_store(&ra_off, !on);
}

/* Is block nb (the stream's next) worth inflating ahead for a reader whose
 * last block was last? */
static bool ra_wanted(const struct zran *z, uint64_t nb, uint64_t last)
{
	return last != UINT64_MAX && nb != UINT64_MAX && nb < z->nblocks &&
	       nb <= last + ZR_AHEAD && nb + ZR_NEAR >= last;
}

/* Inflate the member's next blocks while they are at most ZR_AHEAD ahead
 * of its reader, one block per hold of m->lock. */
static void ra_run(const struct ra_job *j)
{
	struct member *m = j->m;
	struct zran *z = atomic_load(&m->zr);
	int64_t data_off = ar_member_data_off(j->a, m, NULL);
	bool more = z && data_off > 0;

	while (more) {
		struct zr_stream *s;

		pthread_mutex_lock(&m->lock);
		s = z->s;
		more = s && s->valid && !atomic_load(&m->bad) &&
		       s->pos % z->blk == 0 &&
		       ra_wanted(z, s->pos / z->blk,
				 atomic_load(&z->last_blk));
		/* an error marks the member bad: its reader reports it */
		if (more)
			more = inflate_block(j->a, z, s, (uint64_t)data_off,
					     false, NULL) >= 0;
		pthread_mutex_unlock(&m->lock);
	}
}

static void *ra_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&RA.lock);
	for (;;) {
		struct ra_job j;

		while (!RA.n)
			pthread_cond_wait(&RA.work, &RA.lock);
		j = RA.q[0];
		memmove(RA.q, RA.q + 1, (size_t)--RA.n * sizeof(*RA.q));
		RA.running = j.a;
		pthread_mutex_unlock(&RA.lock);
		ra_run(&j);
		pthread_mutex_lock(&RA.lock);
		RA.running = NULL;
		pthread_cond_broadcast(&RA.idle);
	}
	return NULL;
}

/* Start the thread once (RA.lock held).  false: no read-ahead. */
static bool ra_ready(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t tid;

	if (RA.state != RA_NONE)
		return RA.state == RA_ON;
	RA.state = RA_FAILED;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, ra_main, NULL) == 0)
		RA.state = RA_ON;
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return RA.state == RA_ON;
}

/* A sequential reader of m just read block bi: ask the read-ahead thread
 * to inflate the stream's next blocks, up to ZR_AHEAD past bi. */
static void ra_request(struct archive *a, struct zran *z, uint64_t bi)
{
	uint64_t last = atomic_exchange(&z->last_blk, bi);
	uint64_t nb = atomic_load(&z->next_blk);

	/* only for a reader near its last read, when the stream is near */
	if (atomic_load(&ra_off) || last == UINT64_MAX ||
	    bi + ZR_NEAR < last || bi > last + ZR_NEAR ||
	    !ra_wanted(z, nb, bi))
		return;
	pthread_mutex_lock(&RA.lock);
	for (int i = 0; i < RA.n; i++)
		if (RA.q[i].m == z->m) {
			pthread_mutex_unlock(&RA.lock);
			return;
		}
	if (RA.n < RA_QUEUE && ra_ready()) {
		RA.q[RA.n++] = (struct ra_job){ a, z->m };
		pthread_cond_signal(&RA.work);
	}
	pthread_mutex_unlock(&RA.lock);
}

/* Drop a's read-ahead jobs and wait for its running one. */
static void ra_forget(struct archive *a)
{
	int k = 0;

	pthread_mutex_lock(&RA.lock);
	for (int i = 0; i < RA.n; i++)
		if (RA.q[i].a != a)
			RA.q[k++] = RA.q[i];
	RA.n = k;
	while (RA.running == a)
		pthread_cond_wait(&RA.idle, &RA.lock);
	pthread_mutex_unlock(&RA.lock);
}

/* Copy [boff, boff + n) of block bi from the cache file when cached.
 * Returns true when done. */
static bool cached_read(struct archive *a, struct zran *z, uint64_t bi,
			unsigned char *dst, size_t boff, size_t n)
{
	struct zr_block *b = &z->b[bi];
	ssize_t got;

	pthread_mutex_lock(&z->lock);
	if (b->state != BLK_CACHED) {
		pthread_mutex_unlock(&z->lock);
		return false;
	}
	b->pins++;
	pthread_mutex_unlock(&z->lock);
	got = ar_pread_full(a->cache_fd, dst, n,
			    z->m->base + bi * z->blk + boff);
	pthread_mutex_lock(&z->lock);
	b->pins--;
	pthread_mutex_unlock(&z->lock);
	if (got == (ssize_t)n) {
		cache_touch(&b->ci);
		return true;
	}
	npz_log("cache file in %s: %s; reading %s without it", cache_dir(),
		got < 0 ? strerror((int)-got) : "short read",
		z->m->pub.name);
	return false;
}

/* Read [off, off + len) of a deflated member, block by block: out of the
 * stream's windows or the cache file without the member's lock, else
 * through the stream under its lock.  Returns 0 or -errno. */
int ar_deflated_read(struct archive *a, size_t i, void *buf, size_t len,
		     uint64_t off, struct npz_err *err)
{
	struct member *m = &a->m[i];
	uint64_t pos = off, end = off + len;
	struct zran *z;
	int ret;

	if (atomic_load(&m->bad))
		return ar_member_fail(m, FAULT_NONE, err);
	/* a SOZip member: only the chunks of the range, no cache */
	ret = ar_sozip_read(a, m, buf, len, off, err);
	if (ret != AR_SOZIP_NONE)
		return ret;
	if (m->pub.size > ZR_MAX_SIZE ||
	    m->pub.size / ZR_MAX_RATIO > m->pub.comp_size + 65536)
		return ar_member_fail(m, FAULT_SIZE, err);
	z = zran_get(m);
	if (!z)
		return -ENOMEM;
	while (pos < end) {
		uint64_t bi = pos / z->blk, bend = (bi + 1) * z->blk;
		size_t boff = (size_t)(pos - bi * z->blk);
		size_t n = (size_t)((end < bend ? end : bend) - pos);
		unsigned char *dst = (unsigned char *)buf + (pos - off);

		if (!window_read(z, bi, dst, boff, n) &&
		    !cached_read(a, z, bi, dst, boff, n)) {
			pthread_mutex_lock(&m->lock);
			if (atomic_load(&m->bad))
				ret = ar_member_fail(m, FAULT_NONE, err);
			else
				do
					ret = stream_read(a, z, bi, dst, boff,
							  n, err);
				while (ret == -EAGAIN);
			pthread_mutex_unlock(&m->lock);
			if (ret)
				return ret;
		}
		ra_request(a, z, bi);
		pos += n;
	}
	return 0;
}
