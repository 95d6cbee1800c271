/* wbuf.c - written content in memory, spilling to an unlinked file, or
 * copy-on-write over a base.
 * Invariants: a plain wbuf's content is in exactly one of (mem, fd >= 0);
 * bytes past size are never read.  A cow wbuf: base_live <= size and
 * base_live <= base.len; the spill file (created on the first write) holds
 * the written pages and reads zeros elsewhere: no byte of a clean page,
 * nor past size, was left in it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc.h"
#include "io.h"
#include "wbuf.h"

void wbuf_init(struct wbuf *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

static void unmap(struct wbuf *w)
{
	if (w->map)
		munmap(w->map, w->map_len);
	w->map = NULL;
	w->map_len = 0;
}

static void base_put(struct wbuf *w)
{
	if (w->cow && w->base.put)
		w->base.put(w->base.ctx);
	w->base.put = NULL;
}

void wbuf_release(struct wbuf *w)
{
	wb_drain(&w->wb);	/* nothing may write w->fd once closed */
	unmap(w);
	free(w->mem);
	if (w->fd >= 0)
		close(w->fd);
	base_put(w);
	free(w->dirty);
	wbuf_init(w);
}

/* ---- copy-on-write ---------------------------------------------------- */

void wbuf_init_cow(struct wbuf *w, const struct wbuf_base *base)
{
	w->cow = true;
	w->crc_lost = true;
	w->base = *base;
	w->base_live = base->len;
	w->size = base->len;
}

static bool page_written(const struct wbuf *w, uint64_t p)
{
	return p / 64 < w->dirty_words && (w->dirty[p / 64] >> (p % 64) & 1);
}

/* The end of the run of pages from p that are all written (or all not),
 * as a byte offset. */
static uint64_t run_end(const struct wbuf *w, uint64_t p, bool written)
{
	uint64_t words = w->dirty_words;

	while (p / 64 < words) {
		uint64_t word = w->dirty[p / 64];

		if (!written)
			word = ~word;
		word >>= p % 64;
		if (word != ~0ull >> (p % 64)) {
			/* the run ends inside this word */
			return (p + (uint64_t)__builtin_ctzll(~word)) * WBUF_PAGE;
		}
		p = (p / 64 + 1) * 64;
	}
	return written ? p * WBUF_PAGE : UINT64_MAX;
}

static int mark_written(struct wbuf *w, uint64_t first, uint64_t last)
{
	size_t need = (size_t)(last / 64 + 1);

	if (need > w->dirty_words) {
		size_t words = w->dirty_words ? w->dirty_words : 16;
		uint64_t *d;

		while (words < need)
			words *= 2;
		d = realloc(w->dirty, words * sizeof(*d));
		if (!d)
			return -ENOMEM;
		memset(d + w->dirty_words, 0,
		       (words - w->dirty_words) * sizeof(*d));
		w->dirty = d;
		w->dirty_words = words;
	}
	for (uint64_t p = first; p <= last; p++)
		w->dirty[p / 64] |= 1ull << (p % 64);
	return 0;
}

/* pread all n bytes at off of fd; zeros past its end. */
static int pread_zero(int fd, char *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			memset(p, 0, n);
			return 0;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Read all n bytes at off of w's base content (off + n <= base.len):
 * from its file, or through its read callback. */
static int base_read(const struct wbuf *w, char *p, size_t n, uint64_t off)
{
	if (!w->base.read) {
		int ret = pread_zero(w->base.fd, p, n, w->base.off + off);

		if (!ret && w->base.check)
			ret = w->base.check(w->base.ctx);
		return ret;
	}
	while (n) {
		ssize_t r = w->base.read(w->base.ctx, p, n, off);

		if (r < 0)
			return (int)r;
		if (r == 0) {
			memset(p, 0, n);
			return 0;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Read [off, off + n) of a cow w's content (within size). */
static int cow_read(const struct wbuf *w, char *p, size_t n, uint64_t off)
{
	while (n) {
		uint64_t page = off / WBUF_PAGE;
		bool written = page_written(w, page);
		uint64_t end = run_end(w, page, written), step, base;
		int ret = 0;

		step = end - off < n ? end - off : n;
		if (written) {
			ret = pread_zero(w->fd, p, (size_t)step, off);
		} else {
			base = off < w->base_live ? w->base_live - off : 0;
			if (base > step)
				base = step;
			if (base)
				ret = base_read(w, p, (size_t)base, off);
			memset(p + base, 0, (size_t)(step - base));
		}
		if (ret)
			return ret;
		p += step;
		n -= (size_t)step;
		off += step;
	}
	return 0;
}

/* Copy the base's bytes of clean page `page` into the spill file. */
static int page_fill(struct wbuf *w, uint64_t page)
{
	char buf[WBUF_PAGE];
	uint64_t off = page * WBUF_PAGE, n;
	int ret;

	if (page_written(w, page) || off >= w->base_live)
		return 0;	/* in the file already, or zeros (a hole) */
	n = w->base_live - off < WBUF_PAGE ? w->base_live - off : WBUF_PAGE;
	ret = base_read(w, buf, (size_t)n, off);
	if (!ret)
		ret = io_pwrite_all(w->fd, buf, (size_t)n, off);
	return ret;
}

/* The spill file of a cow w, created on first use.  0 or -errno. */
static int cow_spill(struct wbuf *w)
{
	int fd;

	if (w->fd >= 0)
		return 0;
	fd = io_spill_file(&w->wb.writeback);
	if (fd < 0)
		return fd;
	w->fd = fd;
	return 0;
}

static int cow_pwrite(struct wbuf *w, const void *p, size_t n, uint64_t off)
{
	uint64_t end = off + n, first = off / WBUF_PAGE,
		 last = (end - 1) / WBUF_PAGE;
	int ret;

	ret = cow_spill(w);
	if (ret)
		return ret;
	/* pages written in part keep the base's other bytes */
	ret = off % WBUF_PAGE ? page_fill(w, first) : 0;
	if (!ret && end % WBUF_PAGE && end < w->size &&
	    !(last == first && off % WBUF_PAGE))
		ret = page_fill(w, last);
	if (!ret)
		ret = mark_written(w, first, last);
	if (!ret)
		ret = io_pwrite_all(w->fd, p, n, off);
	if (!ret && end > w->size)
		w->size = end;
	return ret;
}

static int cow_truncate(struct wbuf *w, uint64_t size)
{
	uint64_t keep = (size + WBUF_PAGE - 1) / WBUF_PAGE;

	if (size >= w->size) {
		w->size = size;		/* zeros past the old size */
		return 0;
	}
	if (w->fd >= 0 && ftruncate(w->fd, (off_t)size))
		return -errno;
	for (uint64_t p = keep; p / 64 < w->dirty_words; p++)
		w->dirty[p / 64] &= ~(1ull << (p % 64));
	if (w->base_live > size)
		w->base_live = size;
	w->size = size;
	return 0;
}

/* Copy the base in: w becomes a plain wbuf with its content in a file. */
static int cow_flatten(struct wbuf *w)
{
	char *buf;
	uint64_t off = 0;
	int ret;

	ret = cow_spill(w);
	if (ret)
		return ret;
	buf = malloc(1u << 20);
	if (!buf)
		return -ENOMEM;
	while (!ret && off < w->base_live) {
		uint64_t page = off / WBUF_PAGE, end;
		size_t step;

		if (page_written(w, page)) {
			off = run_end(w, page, true);
			continue;
		}
		end = run_end(w, page, false);
		if (end > w->base_live)
			end = w->base_live;
		step = end - off < (1u << 20) ? (size_t)(end - off) : 1u << 20;
		ret = base_read(w, buf, step, off);
		if (!ret)
			ret = io_pwrite_all(w->fd, buf, step, off);
		off += step;
	}
	free(buf);
	if (!ret && ftruncate(w->fd, (off_t)w->size))
		ret = -errno;
	if (ret)
		return ret;
	base_put(w);
	free(w->dirty);
	w->dirty = NULL;
	w->dirty_words = 0;
	w->cow = false;
	return 0;
}

bool wbuf_is_patch(const struct wbuf *w)
{
	return w->cow && w->size == w->base.len && w->base_live == w->base.len;
}

bool wbuf_next_written(const struct wbuf *w, uint64_t *off, uint64_t *len)
{
	uint64_t page = *off / WBUF_PAGE, end;

	if (!w->cow || *off >= w->size)
		return false;
	if (!page_written(w, page))
		page = run_end(w, page, false) / WBUF_PAGE;
	if (page / 64 >= w->dirty_words || page * WBUF_PAGE >= w->size)
		return false;
	end = run_end(w, page, true);
	if (end > w->size)
		end = w->size;
	*off = page * WBUF_PAGE;
	*len = end - *off;
	return true;
}

void wbuf_rebase(struct wbuf *w, const struct wbuf_base *base, bool committed)
{
	base_put(w);
	w->base = *base;
	if (!committed)
		return;
	w->base_live = w->size;
	if (w->dirty)
		memset(w->dirty, 0, w->dirty_words * sizeof(*w->dirty));
	if (w->fd >= 0 && ftruncate(w->fd, 0) == 0)
		return;
	if (w->fd >= 0)		/* keep the invariant: no stale bytes */
		close(w->fd);
	w->fd = -1;
}

/* ---- plain ------------------------------------------------------------ */

/* Move the content from memory to a new spill file. */
static int spill(struct wbuf *w)
{
	int fd = w->adoptable ? io_spill_file_adoptable(&w->wb.writeback)
			      : io_spill_file(&w->wb.writeback), ret;

	if (fd < 0)
		return fd;
	ret = io_pwrite_all(fd, w->mem, (size_t)w->size, 0);
	if (ret) {
		close(fd);
		return ret;
	}
	free(w->mem);
	w->mem = NULL;
	w->cap = 0;
	w->fd = fd;
	return 0;
}

/* Room in memory for `end` bytes, or spill when that is too much. */
static int reserve(struct wbuf *w, uint64_t end)
{
	size_t cap;
	char *m;

	if (w->fd >= 0 || end <= w->cap)
		return 0;
	/* past the bound, or a first write of WBUF_SPILL_NOW bytes or more
	 * (cp, dd bs=1M): a big file is coming, so no stop in memory, whose
	 * bytes would be copied again at the bound */
	if (end > WBUF_MEM_MAX || (!w->size && end >= WBUF_SPILL_NOW))
		return spill(w);
	cap = w->cap ? w->cap : 4096;
	while (cap < end)
		cap *= 2;
	m = realloc(w->mem, cap);
	if (!m)
		return -ENOMEM;
	w->mem = m;
	w->cap = cap;
	return 0;
}

bool wbuf_crc(const struct wbuf *w, uint32_t *crc)
{
	*crc = w->crc;
	return !w->crc_lost && w->crc_len == w->size;
}

void wbuf_set_crc(struct wbuf *w, uint32_t crc)
{
	w->crc_skip = false;
	w->crc_lost = false;
	w->crc = crc;
	w->crc_len = w->size;
}

/* Keep the CRC of content written in order from its start. */
static void crc_follow(struct wbuf *w, const void *p, size_t n, uint64_t off)
{
	if (w->crc_lost || w->crc_skip || off != w->crc_len ||
	    w->size != w->crc_len) {
		w->crc_lost = true;
		return;
	}
	w->crc = crc32_update(w->crc, p, n);
	w->crc_len += n;
}

int wbuf_pwrite(struct wbuf *w, const void *p, size_t n, uint64_t off)
{
	uint64_t end = off + n;
	int ret;

	if (end < off || end > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (n == 0)
		return 0;
	unmap(w);
	if (w->cow)
		return cow_pwrite(w, p, n, off);
	ret = reserve(w, end);
	if (ret)
		return ret;
	crc_follow(w, p, n, off);
	if (w->fd >= 0) {
		ret = wb_pwrite(&w->wb, w->fd, p, n, off);
		if (ret)
			return ret;
	} else {
		if (off > w->size)
			memset(w->mem + w->size, 0, (size_t)(off - w->size));
		memcpy(w->mem + off, p, n);
	}
	if (end > w->size)
		w->size = end;
	return 0;
}

ssize_t wbuf_pread(struct wbuf *w, void *p, size_t n, uint64_t off)
{
	ssize_t r;

	if (off >= w->size)
		return 0;
	if (n > w->size - off)
		n = (size_t)(w->size - off);
	if (w->cow) {
		int ret = cow_read(w, p, n, off);

		return ret ? ret : (ssize_t)n;
	}
	if (w->fd >= 0) {
		int ret = wb_drain(&w->wb);

		if (ret)
			return ret;
	}
	if (w->fd < 0) {
		memcpy(p, w->mem + off, n);
		return (ssize_t)n;
	}
	do
		r = pread(w->fd, p, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int wbuf_truncate(struct wbuf *w, uint64_t size)
{
	int ret;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	unmap(w);
	if (w->cow)
		return cow_truncate(w, size);
	if (size == 0) {	/* written anew from its start */
		w->crc_lost = false;
		w->crc = 0;
		w->crc_len = 0;
	} else if (size != w->size) {
		w->crc_lost = true;
	}
	ret = reserve(w, size);
	if (!ret)
		ret = wb_drain(&w->wb);
	if (ret)
		return ret;
	if (w->fd >= 0) {
		if (ftruncate(w->fd, (off_t)size))
			return -errno;
	} else if (size > w->size) {
		memset(w->mem + w->size, 0, (size_t)(size - w->size));
	}
	w->size = size;
	return 0;
}

int wbuf_fd(struct wbuf *w)
{
	int ret;

	if (w->cow) {
		ret = cow_flatten(w);
		if (ret)
			return ret;
	}
	if (w->fd < 0) {
		ret = spill(w);
		if (ret)
			return ret;
	}
	ret = wb_drain(&w->wb);
	return ret ? ret : w->fd;
}

int wbuf_map(struct wbuf *w, const char **p)
{
	static const char empty[1];
	int ret;

	if (w->cow) {
		ret = cow_flatten(w);
		if (ret)
			return ret;
	}
	if (w->fd < 0 || w->size == 0) {
		*p = w->size ? w->mem : empty;
		return 0;
	}
	ret = wb_drain(&w->wb);
	if (ret)
		return ret;
	if (!w->map) {
		void *m = mmap(NULL, (size_t)w->size, PROT_READ, MAP_SHARED,
			       w->fd, 0);

		if (m == MAP_FAILED)
			return -errno;
		w->map = m;
		w->map_len = (size_t)w->size;
	}
	*p = w->map;
	return 0;
}
