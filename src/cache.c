/* cache.c - the process's disk budget for cached data (see cache.h).
 *
 * Invariant: used == the sum of bytes of the listed items <= limit, except
 * right after cache_setup() lowered the limit (the next charge evicts).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "io.h"

static struct {
	pthread_mutex_t lock;	/* protects: everything below, every item */
	char dir[PATH_MAX];	/* "" until set: $TMPDIR or /var/tmp */
	uint64_t limit;
	uint64_t used;
	struct cache_item *head, *tail;
} C = { PTHREAD_MUTEX_INITIALIZER, "", CACHE_DEFAULT_SIZE, 0, NULL, NULL };

static const char *default_dir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/var/tmp";
}

int cache_setup(const char *dir, uint64_t limit, struct npz_err *err)
{
	struct stat st;

	if (!dir)
		dir = default_dir();
	if (strlen(dir) >= sizeof(C.dir)) {
		npz_err_set(err, "cache directory name too long");
		return -ENAMETOOLONG;
	}
	if (stat(dir, &st) < 0) {
		int e = errno;

		npz_err_set(err, "cache directory %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		npz_err_set(err, "cache directory %s: %s", dir,
			    strerror(ENOTDIR));
		return -ENOTDIR;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		int e = errno;

		npz_err_set(err, "cache directory %s: %s", dir, strerror(e));
		return -e;
	}
	pthread_mutex_lock(&C.lock);
	strcpy(C.dir, dir);
	C.limit = limit;
	pthread_mutex_unlock(&C.lock);
	return 0;
}

const char *cache_dir(void)
{
	/* set once before serving; the default never changes */
	return C.dir[0] ? C.dir : default_dir();
}

uint64_t cache_limit(void)
{
	uint64_t l;

	pthread_mutex_lock(&C.lock);
	l = C.limit;
	pthread_mutex_unlock(&C.lock);
	return l;
}

uint64_t cache_used(void)
{
	uint64_t u;

	pthread_mutex_lock(&C.lock);
	u = C.used;
	pthread_mutex_unlock(&C.lock);
	return u;
}

int cache_tmpfile(void)
{
	return io_tmpfile("cache");
}

/* C.lock held. */
static void unlink_item(struct cache_item *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		C.head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		C.tail = it->prev;
	it->prev = it->next = NULL;
}

/* C.lock held. */
static void push_front(struct cache_item *it)
{
	it->prev = NULL;
	it->next = C.head;
	if (C.head)
		C.head->prev = it;
	C.head = it;
	if (!C.tail)
		C.tail = it;
}

/* C.lock held.  Forget it entirely. */
static void remove_item(struct cache_item *it)
{
	unlink_item(it);
	it->listed = false;
	C.used -= it->bytes;
	it->bytes = 0;
}

/* Evict least recently used items other than keep until need more bytes
 * fit.  C.lock held.  Returns true when they fit. */
static bool make_room(struct cache_item *keep, uint64_t need)
{
	struct cache_item *v = C.tail, *prev;

	while (C.used + need > C.limit && v) {
		prev = v->prev;
		if (v != keep && v->evict(v))
			remove_item(v);
		v = prev;
	}
	return C.used + need <= C.limit;
}

int cache_charge(struct cache_item *it, uint64_t n)
{
	int ret = 0;

	pthread_mutex_lock(&C.lock);
	if (it->bytes + n > C.limit || !make_room(it, n)) {
		ret = -ENOSPC;
	} else {
		if (it->listed)
			unlink_item(it);
		push_front(it);
		it->listed = true;
		it->bytes += n;
		C.used += n;
	}
	pthread_mutex_unlock(&C.lock);
	return ret;
}

void cache_release(struct cache_item *it, uint64_t n)
{
	pthread_mutex_lock(&C.lock);
	if (n > it->bytes)
		n = it->bytes;
	it->bytes -= n;
	C.used -= n;
	pthread_mutex_unlock(&C.lock);
}

void cache_touch(struct cache_item *it)
{
	pthread_mutex_lock(&C.lock);
	if (it->listed && C.head != it) {
		unlink_item(it);
		push_front(it);
	}
	pthread_mutex_unlock(&C.lock);
}

void cache_drop(struct cache_item *it)
{
	pthread_mutex_lock(&C.lock);
	if (it->listed)
		remove_item(it);
	pthread_mutex_unlock(&C.lock);
}

int cache_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
