/* cache.h - one disk budget for everything the daemon caches: inflated
 * member data and the access points into deflated members (memory, but
 * charged here too: src/zip/inflate.c) and rendered text views
 * (src/mount/view.c).
 *
 * The budget stores nothing itself.  Owners keep their cached bytes in
 * files made by cache_tmpfile() (unlinked files in the cache directory),
 * embed a struct cache_item per cached thing, and charge its bytes before
 * they write them.  When a charge would pass the limit, the least recently
 * used other items are evicted through their evict() callback, which drops
 * the data (punches a hole, closes a file) and tells the owner it is gone.
 * A charge that cannot be met (the item alone is bigger than the limit, or
 * every other item is busy) fails with -ENOSPC: the owner then serves
 * without caching, as it does when writing its cache file fails.
 *
 * There is one budget per process, set up by cache_setup() before anything
 * is cached (default: 1 GiB in $TMPDIR, else /var/tmp).
 *
 * Threads.  protects: the cache's lock guards the LRU list, the total and
 * every item's bytes and links.  evict() runs with that lock held: it must
 * not block (it takes its owner's lock with trylock only, and returns false
 * when it cannot) and must not call back into the cache.  Owners call the
 * functions below with their own locks held; the cache never waits for an
 * owner's lock.
 */
#ifndef NPZFS_CACHE_H
#define NPZFS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define CACHE_DEFAULT_SIZE (1ull << 30)

struct cache_item {
	struct cache_item *prev, *next;	/* LRU list (most recent first) */
	bool listed;
	uint64_t bytes;			/* charged to the budget */
	/* Drop the item's data (its bytes are then uncharged and it leaves
	 * the list), or return false when it is in use right now. */
	bool (*evict)(struct cache_item *it);
};

/* Set the process's budget: limit bytes in directory dir (NULL: $TMPDIR,
 * else /var/tmp).  The directory must exist and be writable: returns 0, or
 * -errno with a message.  May be called again (tests); lowering the limit
 * takes effect at the next charge. */
int cache_setup(const char *dir, uint64_t limit, struct npz_err *err);

/* The directory and limit in use. */
const char *cache_dir(void);
uint64_t cache_limit(void);

/* Bytes charged right now (for tests and statistics). */
uint64_t cache_used(void);

/* A new unlinked temporary file in the cache directory, read-write,
 * close-on-exec.  Returns the descriptor or -errno. */
int cache_tmpfile(void);

/* Charge n more bytes to it, evicting least recently used other items as
 * needed; it becomes the most recently used.  Returns 0, or -ENOSPC when
 * the budget cannot hold them (nothing is charged then). */
int cache_charge(struct cache_item *it, uint64_t n);

/* Give back n of its charged bytes (a write the charge was for failed). */
void cache_release(struct cache_item *it, uint64_t n);

/* it was used: make it the most recently used (no-op when not listed). */
void cache_touch(struct cache_item *it);

/* The owner dropped it (or all of its data) itself: uncharge it all and
 * take it off the list.  No-op when not listed. */
void cache_drop(struct cache_item *it);

/* Parse a size with an optional K, M, G or T suffix (powers of 1024, an
 * optional trailing "B" or "iB" accepted).  Returns 0 or -EINVAL. */
int cache_parse_size(const char *s, uint64_t *out);

#endif
