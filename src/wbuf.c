/* wbuf.c - written content in memory, spilling to an unlinked file.
 * Invariant: exactly one of (mem, fd >= 0) holds the content; bytes past
 * size are never read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

void wbuf_release(struct wbuf *w)
{
	unmap(w);
	free(w->mem);
	if (w->fd >= 0)
		close(w->fd);
	wbuf_init(w);
}

/* Move the content from memory to a new spill file. */
static int spill(struct wbuf *w)
{
	int fd = io_tmpfile("spill"), ret;

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
	if (end > WBUF_MEM_MAX)
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

int wbuf_pwrite(struct wbuf *w, const void *p, size_t n, uint64_t off)
{
	uint64_t end = off + n;
	int ret;

	if (end < off || end > (uint64_t)INT64_MAX)
		return -EFBIG;
	unmap(w);
	ret = reserve(w, end);
	if (ret)
		return ret;
	if (w->fd >= 0) {
		ret = io_pwrite_all(w->fd, p, n, off);
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
	ret = reserve(w, size);
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

	if (w->fd < 0) {
		ret = spill(w);
		if (ret)
			return ret;
	}
	return w->fd;
}

int wbuf_map(struct wbuf *w, const char **p)
{
	static const char empty[1];

	if (w->fd < 0 || w->size == 0) {
		*p = w->size ? w->mem : empty;
		return 0;
	}
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
