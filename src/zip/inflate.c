/* inflate.c - deflated members: inflated on demand into one unlinked sparse
 * cache file (each member at its own region, charged to the cache budget),
 * through a small LRU pool of live inflate streams.
 *  Invariant: bytes [0, frontier) of a member's region hold its inflated
 *  data and never change until evicted (frontier back to 0). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "zip_internal.h"

#define ARCHIVE_IN_BLOCK (256u << 10)	/* compressed input per pread */
#define ARCHIVE_OUT_BLOCK (256u << 10)	/* inflated output per pwrite */
#define ARCHIVE_STEP (128u << 10)	/* least output of one inflate step */
#define ARCHIVE_MAX_STEP (1u << 30)	/* output per inflate() call */
#define ARCHIVE_SMALL (64u << 10)	/* inflated whole, no pooled stream */

#define NO_OWNER SIZE_MAX

/* The budget wants m's cached bytes back (cache.h: called with the
 * cache's lock held, must not block).  Readers outside m->lock pin the
 * member before they load the frontier; we zero the frontier before we
 * look at the pins, so either they see 0 (and inflate under m->lock, which
 * we hold) or we see their pin (and keep the data). */
bool ar_member_evict(struct cache_item *it)
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

static void inflater_free_buffers(struct inflater *s)
{
	if (s->z_ready)
		inflateEnd(&s->z);
	s->z_ready = false;
	free(s->in);
	free(s->out);
	s->in = s->out = NULL;
}

void ar_pool_init(struct archive *a)
{
	size_t i;

	for (i = 0; i < ARCHIVE_STREAMS; i++) {
		a->pool[i].owner = NO_OWNER;
		a->pool[i].pooled = true;
	}
}

void ar_pool_release(struct archive *a)
{
	size_t i;

	for (i = 0; i < ARCHIVE_STREAMS; i++)
		inflater_free_buffers(&a->pool[i]);
}

/* Member idx's live pooled stream, else a free or least recently used idle
 * pool slot (reset, now idx's), marked busy; NULL when every slot is busy. */
static struct inflater *pool_claim(struct archive *a, size_t idx)
{
	struct member *m = &a->m[idx];
	struct inflater *s = NULL, *victim = NULL;
	size_t i;

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
	return s;
}

/* Get a stream for member idx: its live pooled one, a free or least
 * recently used idle pool slot (reset), or a one-shot private stream for
 * small members and when every slot is busy.  Returns NULL on ENOMEM. */
static struct inflater *stream_get(struct archive *a, size_t idx)
{
	struct member *m = &a->m[idx];
	struct inflater *s = NULL;

	if (m->pub.size > ARCHIVE_SMALL)
		s = pool_claim(a, idx);
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
	ret = io_pwrite_all(fd, dst + skip, len - skip, m->base + fr);
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

/* Copy what the cache holds of [off, end) of m to buf.  Returns where
 * the bytes still to be inflated start (off when nothing was cached; a
 * cache file that fails is forgotten, and off returned). */
static uint64_t read_cached(struct archive *a, struct member *m,
			    unsigned char *buf, uint64_t off, uint64_t end)
{
	uint64_t fr = atomic_load(&m->frontier);
	size_t k;
	ssize_t n;

	if (off >= fr)
		return off;
	k = (size_t)((end < fr ? end : fr) - off);
	n = ar_pread_full(a->cache_fd, buf, k, m->base + off);
	if (n == (ssize_t)k) {
		cache_touch(&m->ci);
		return off + k;
	}
	npz_log("cache file in %s: %s; reading %s without it",
		cache_dir(), n < 0 ? strerror((int)-n) :
		"short read", m->pub.name);
	cache_forget_member(a, m);
	return off;
}

/* Read the next block of m's compressed data (at data_off in the archive)
 * into s's input.  Returns 0 or -errno (-EIO: damaged member or archive
 * rewritten). */
static int refill_input(struct archive *a, struct member *m,
			struct inflater *s, uint64_t data_off,
			struct npz_err *err)
{
	size_t want = s->in_cap;
	ssize_t n;
	int ret;

	if (s->in_pos >= m->pub.comp_size)
		return ar_member_fail(m, FAULT_INFLATE, err);
	if (m->pub.comp_size - s->in_pos < want)
		want = (size_t)(m->pub.comp_size - s->in_pos);
	n = ar_pread_full(a->fd, s->in, want, data_off + s->in_pos);
	if (n != (ssize_t)want) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "member %s: read error: %s",
			    m->pub.name, strerror(-ret));
		return ret;
	}
	ret = ar_file_unchanged(a);
	if (ret)
		return ret;
	s->z.next_in = s->in;
	s->z.avail_in = (uInt)want;
	s->in_pos += want;
	return 0;
}

/* Inflate into dst (cap bytes at most): *produced bytes, CRC updated; at
 * the end of the stream *done, with size and CRC checked.  Returns 0 or
 * -EIO (the member is marked damaged). */
static int inflate_step(struct member *m, struct inflater *s,
			unsigned char *dst, size_t cap, size_t *produced,
			bool *done, struct npz_err *err)
{
	int zr;

	s->z.next_out = dst;
	s->z.avail_out = (uInt)cap;
	zr = inflate(&s->z, Z_NO_FLUSH);
	if (zr != Z_OK && zr != Z_STREAM_END &&
	    !(zr == Z_BUF_ERROR && s->z.avail_in == 0)) {
		int ret = ar_member_fail(m, FAULT_INFLATE, err);

		if (s->z.msg)
			npz_err_set(err, "member %s: damaged deflate "
				    "data: %s", m->pub.name, s->z.msg);
		return ret;
	}
	*produced = cap - s->z.avail_out;
	if (*produced > m->pub.size - s->out_pos)
		return ar_member_fail(m, FAULT_SIZE, err);
	if (*produced)
		s->crc = crc32_update(s->crc, dst, *produced);
	if (zr == Z_STREAM_END) {
		*done = true;
		if (s->out_pos + *produced != m->pub.size)
			return ar_member_fail(m, FAULT_SIZE, err);
		if (s->crc != m->pub.crc)
			return ar_member_fail(m, FAULT_CRC, err);
	}
	return 0;
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
	uint64_t end = off + len, need, target;
	int cfd = cache_file_if_any(a, m);
	struct inflater *s;
	int64_t data_off;
	bool done = false, caching = cfd >= 0;
	int ret = 0;

	if (atomic_load(&m->bad))
		return ar_member_fail(m, FAULT_NONE, err);
	need = read_cached(a, m, buf, off, end);
	if (need >= end)
		return 0;
	data_off = ar_member_data_off(a, m, err);
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
		size_t produced = 0, cap;

		if (s->z.avail_in == 0) {
			ret = refill_input(a, m, s, (uint64_t)data_off, err);
			if (ret)
				break;
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
		ret = inflate_step(m, s, dst, cap, &produced, &done, err);
		if (ret)
			break;
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

/* Read [off, off + len) of a deflated member: from the cache alone when
 * it holds the range (no lock: pinned against eviction), else under the
 * member's lock.  Returns 0 or -errno. */
int ar_deflated_read(struct archive *a, size_t i, void *buf, size_t len,
		     uint64_t off, struct npz_err *err)
{
	struct member *m = &a->m[i];
	uint64_t end = off + len, ahead;
	int ret = -EAGAIN;

	if (atomic_load(&m->bad))
		return ar_member_fail(m, FAULT_NONE, err);
	/* a SOZip member: only the chunks of the range, no cache */
	ret = ar_sozip_read(a, m, buf, len, off, err);
	if (ret != AR_SOZIP_NONE)
		return ret;
	ret = -EAGAIN;
	atomic_fetch_add(&m->pins, 1);
	if (atomic_load(&m->frontier) >= end &&
	    ar_pread_full(a->cache_fd, buf, len, m->base + off) == (ssize_t)len)
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
