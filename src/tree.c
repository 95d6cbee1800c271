/* tree.c - the mount's namespace, the archive's entries, open files and the
 * write path.  See tree.h for the model and the locks.
 *
 * Invariants:
 *  - every live node is in the hash map under (parent, own name) and in
 *    its parent's kids (no node stores its full path: see "Namespace"); dead nodes (unlinked while open) are in neither and
 *    are freed by the last tree_release;
 *  - t->entries holds one entry per member of t->ar (in_archive, member ==
 *    its index) plus the entries a running commit adds; an entry's raw and
 *    view nodes point back at it;
 *  - a VIEW node exists only where no other node has its path.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "convert.h"
#include "io.h"
#include "npy.h"
#include "text.h"
#include "tree.h"
#include "wbuf.h"

#define XATTR_PREFIX "user.npzfs."
#define HEAD_PEEK 4096
#define COPY_BLOCK (1u << 20)
#define TOMBS 256
#define GRAVE_SECONDS 2	/* how long replaced archives stay readable */
#define VIEW_MEM_MAX (16u << 20)	/* views whose text is at most this
					   (bound) are rendered in memory, then
					   appended to the shared cache file;
					   bigger ones get a cache file each */
#define CACHE_RETRY_SECONDS 1	/* after caching a view failed */

enum array_state { ARRAY_UNKNOWN, ARRAY_OK, ARRAY_BAD };

enum nkind {
	N_DIR,
	N_MEMBER,	/* an entry's bytes */
	N_VIEW,		/* an array entry's text view */
	N_NEW,		/* a created NAME.npy / NAME.txt not yet committed */
	N_SCRATCH,	/* any other created file */
};

struct node;

struct entry {
	char *mname;		/* member name in the archive */
	bool in_archive;	/* member is valid */
	size_t member;		/* index in t->ar */
	uint64_t seq;		/* position in the archive's member order */
	bool is_array;		/* mname ends in ".npy" */
	bool doomed;		/* left out of the running commit */
	bool shadowed;		/* an earlier member of a duplicate name: not
				   shown, dropped at the first commit */
	bool nul_name;		/* shadowed: its name holds a NUL byte */
	struct node *raw;	/* N_MEMBER node, or NULL when not shown */
	struct node *view;	/* N_VIEW node, or NULL */
	struct wbuf *pending;	/* new content for the running commit */
	time_t mtime;
	char *error;		/* last rejected write (tree->lock) */
	struct tree *t;
	pthread_mutex_t lock;	/* protects: state .. cache_failed; take
				   before the cache's lock */
	enum array_state state;
	bool viewable;		/* state == ARRAY_OK: no objects inside */
	uint64_t data_len;	/* state == ARRAY_OK: bytes of array data */
	uint64_t text_bound;	/* state == ARRAY_OK: text_size_bound() */
	bool sized;		/* text_len is known (rendered once) */
	uint64_t text_len;
	bool rendered;		/* the text is cached: in view_fd, or at
				   text_off of t->cache_fd when view_fd < 0 */
	int view_fd;
	uint64_t text_off;
	time_t cache_failed;	/* when keeping the text last failed */
	struct cache_item ci;	/* the cached text in the budget */
	_Atomic bool big_render;	/* a big view is being rendered under
					   e->lock: listings do not wait */
};

struct node {
	char *name;		/* own component ("b.npy"); "" for the root */
	enum nkind kind;
	struct node *parent;	/* NULL for the root and dead nodes */
	struct node **kids;	/* N_DIR */
	size_t nkids, kids_cap;
	struct entry *e;	/* N_MEMBER, N_VIEW; N_DIR: its "dir/" member */
	time_t mtime;
	struct node *hnext;	/* hash chain */
	bool dead;		/* out of the namespace (tree->lock) */
	char *error;		/* N_NEW / N_SCRATCH: last rejected content */
	pthread_mutex_t lock;	/* protects: edit, dirty, wopens, refs */
	struct wbuf *edit;	/* content being written, or NULL */
	bool dirty;		/* written since the last commit */
	bool rejected;		/* the edit was rejected: files opened since
				   see the archive's content again */
	uint64_t reject_gen;	/* counts rejections */
	unsigned int wopens;	/* open files with write access */
	unsigned int refs;	/* open files */
};

struct tree {
	struct archive *ar;
	struct tree_opts opts;
	pthread_rwlock_t lock;	/* see tree.h */
	struct node **buckets;
	size_t nbuckets;
	size_t count;
	struct node *root;
	uint64_t gen;		/* moves when nodes are removed or renamed */
	atomic_bool trim;	/* a commit freed memory: release_free_memory */
	char *tombs[TOMBS];	/* views removed with their array (for rm -r) */
	size_t ntombs;
	struct entry **entries;
	size_t nentries, entries_cap;
	uint64_t next_seq;
	pthread_mutex_t cache_lock;	/* protects: cache_end; a leaf lock */
	int cache_fd;			/* small rendered views, or -1 */
	uint64_t cache_end;
	pthread_mutex_t grave_lock;	/* protects: graves; a leaf lock */
	struct grave *graves;
	pthread_mutex_t inval_lock;	/* protects: inval; a leaf lock */
	struct buf inval;		/* paths whose kernel attributes are
					   stale, NUL-separated */
	void (*inval_fn)(void *ctx, const char *path);
	void *inval_ctx;
};

/* An archive a commit replaced, kept a while for zero-copy replies still
 * in flight (tree_read_span hands out descriptors and offsets that are
 * used after the tree lock is released). */
struct grave {
	struct archive *ar;
	time_t when;
	struct grave *next;
};

struct tree_file {
	struct node *node;
	bool writable;
	bool wrote;		/* written through this file since open */
	uint64_t gen;		/* node->reject_gen at open */
};

/* ---- Kernel attribute invalidation ------------------------------------ */

/* Queue path: the kernel's cached attributes of it are stale.  Any lock may
 * be held. */
static void inval_add(struct tree *t, const char *path)
{
	if (!t->inval_fn)
		return;
	pthread_mutex_lock(&t->inval_lock);
	buf_add(&t->inval, path, strlen(path) + 1);
	pthread_mutex_unlock(&t->inval_lock);
}

/* Queue the full path of live node n. */
static int node_path(const struct node *n, struct buf *out);

static void inval_add_node(struct tree *t, const struct node *n)
{
	size_t len;

	if (!t->inval_fn)
		return;
	pthread_mutex_lock(&t->inval_lock);
	len = t->inval.len;
	if (node_path(n, &t->inval) || buf_addch(&t->inval, '\0')) {
		t->inval.len = len;	/* no memory: the kernel waits 1 s */
		t->inval.data[len] = '\0';
	}
	pthread_mutex_unlock(&t->inval_lock);
}

/* Give the memory commits freed back to the system.  A commit allocates
 * and frees memory in proportion to the member count (libzip's copy of the
 * central directory, the change list, the new member table replacing the
 * old one), each time on whichever FUSE thread runs it; glibc keeps what is
 * freed in that thread's arena and returns only the top of a heap by
 * itself, so the daemon kept a few MB per thread that ever committed
 * (20,000 members, 100 commits: RSS 31 -> 69 MB; 21 -> 31 MB with this).
 * malloc_trim() measured 3-17 ms there: it runs with no tree lock held. */
static void release_free_memory(struct tree *t)
{
	if (!atomic_exchange(&t->trim, false))
		return;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* Tell the kernel about the queued paths (but `skip`), and return what
 * commits freed to the system.  Called with no tree lock held: the kernel
 * may wait for reads that need it. */
static void inval_flush(struct tree *t, const char *skip)
{
	struct buf b;

	release_free_memory(t);
	if (!t->inval_fn)
		return;
	pthread_mutex_lock(&t->inval_lock);
	b = t->inval;
	buf_init(&t->inval);
	pthread_mutex_unlock(&t->inval_lock);
	for (size_t i = 0; i < b.len; i += strlen(b.data + i) + 1)
		if (!skip || strcmp(b.data + i, skip))
			t->inval_fn(t->inval_ctx, b.data + i);
	buf_release(&b);
}

void tree_set_invalidate(struct tree *t,
			 void (*fn)(void *ctx, const char *path), void *ctx)
{
	t->inval_fn = fn;
	t->inval_ctx = ctx;
}

/* ---- Replaced archives and text, released a little later -------------- */

static void grave_add(struct tree *t, struct archive *ar)
{
	struct grave *g = calloc(1, sizeof(*g));

	if (!g) {	/* no memory: release now rather than leak */
		archive_close(ar);
		return;
	}
	g->ar = ar;
	g->when = time(NULL);
	pthread_mutex_lock(&t->grave_lock);
	g->next = t->graves;
	t->graves = g;
	pthread_mutex_unlock(&t->grave_lock);
}

/* Close what was replaced more than GRAVE_SECONDS ago (all of
 * it when `all`). */
static void grave_sweep(struct tree *t, bool all)
{
	time_t now = time(NULL);
	struct grave **p, *g, *done = NULL;

	pthread_mutex_lock(&t->grave_lock);
	for (p = &t->graves; (g = *p);) {
		if (all || now - g->when > GRAVE_SECONDS) {
			*p = g->next;
			g->next = done;
			done = g;
		} else {
			p = &g->next;
		}
	}
	pthread_mutex_unlock(&t->grave_lock);
	while ((g = done)) {
		done = g->next;
		archive_close(g->ar);
		free(g);
	}
}

/* ---- Namespace --------------------------------------------------------
 *
 * A node stores only its own name and its parent; the hash map is keyed by
 * (parent, name), so a chain of d directories costs O(d) memory whatever
 * their depth, and a path is looked up one component at a time (O(path
 * length)).  Full paths (kernel invalidation, log lines, member names) are
 * built on demand by walking the parents. */

static uint64_t name_hash(const struct node *parent, const char *s,
			  size_t len)
{
	uint64_t h = 1469598103934665603ull ^
		     ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 32);
}

/* The kid of dir named name[0..len), or NULL. */
static struct node *kid_find(const struct tree *t, const struct node *dir,
			     const char *name, size_t len)
{
	struct node *n = t->buckets[name_hash(dir, name, len) &
				    (t->nbuckets - 1)];

	for (; n; n = n->hnext)
		if (n->parent == dir && !strncmp(n->name, name, len) &&
		    n->name[len] == '\0')
			return n;
	return NULL;
}

/* Each thread remembers the directory of its last lookup (FUSE sends the
 * full path with every request: `find` in a deep tree looks up a/b/c right
 * after a/b), so a lookup compares that prefix with memcmp and walks only
 * the components after it.  The memo is valid while t->gen has not moved
 * (namespace changes that remove or rename nodes move it). */
struct walk_memo {
	const struct tree *t;
	uint64_t gen;
	struct node *dir;
	struct buf path;	/* dir's full path, "" for the root */
};

static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;
static bool memo_ok;
static _Atomic uint64_t tree_gens;	/* t->gen values, never reused */

static void memo_free(void *p)
{
	struct walk_memo *m = p;

	buf_release(&m->path);
	free(m);
}

static void memo_key_init(void)
{
	memo_ok = pthread_key_create(&memo_key, memo_free) == 0;
}

static struct walk_memo *memo_get(void)
{
	struct walk_memo *m;

	pthread_once(&memo_once, memo_key_init);
	if (!memo_ok)
		return NULL;
	m = pthread_getspecific(memo_key);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return NULL;
		buf_init(&m->path);
		if (pthread_setspecific(memo_key, m)) {
			free(m);
			return NULL;
		}
	}
	return m;
}

/* Nodes were removed or renamed: forget every thread's memo.  t->lock
 * held for writing. */
static void tree_moved(struct tree *t)
{
	t->gen = atomic_fetch_add(&tree_gens, 1) + 1;
}

/* Where to start walking path[0..len) from the memo: the node of the
 * longest directory prefix path shares with the memo's path (reached by
 * going up from the memo's directory), with *at set to its end; NULL to
 * start from the root.  O(len + memo length). */
static struct node *memo_start(const struct walk_memo *m,
			       const struct tree *t, const char *path,
			       size_t len, size_t *at)
{
	size_t mlen, c = 0, b;
	struct node *n;

	if (!m || m->t != t || m->gen != t->gen || !m->path.len)
		return NULL;
	mlen = m->path.len;
	b = len < mlen ? len : mlen;
	if (!memcmp(path, m->path.data, b))
		c = b;
	else
		while (path[c] == m->path.data[c])
			c++;
	/* back to a component boundary of both */
	for (b = c; b > 0; b--)
		if ((b == len || path[b] == '/') &&
		    (b == mlen || m->path.data[b] == '/'))
			break;
	if (b == 0)
		return NULL;
	n = m->dir;
	for (size_t i = b; n && i < mlen; i++)
		if (m->path.data[i] != '/' && m->path.data[i - 1] == '/')
			n = n->parent;	/* one component of the memo past b */
	if (!n)
		return NULL;
	*at = b;
	return n;
}

/* The node at path[0..len) ("/a/b"; "" and "/" are the root), walking one
 * component at a time.  t->lock held. */
static struct node *find_len(const struct tree *t, const char *path,
			     size_t len)
{
	struct walk_memo *m = memo_get();
	struct node *n = t->root, *dir = NULL, *from;
	size_t i = 0, j, dir_len = 0;

	from = memo_start(m, t, path, len, &i);
	if (from)
		n = from;
	else
		i = 0;
	while (n && i < len) {
		if (path[i] == '/') {
			i++;
			continue;
		}
		for (j = i; j < len && path[j] != '/'; j++)
			;
		dir = n;
		dir_len = i - 1;
		n = kid_find(t, n, path + i, j - i);
		i = j;
	}
	/* remember the last directory walked through (a parent, for the next
	 * lookup of a sibling or of a child) */
	if (m && dir && dir_len && dir->kind == N_DIR &&
	    !(m->t == t && m->gen == t->gen && m->dir == dir)) {
		buf_reset(&m->path);
		if (buf_add(&m->path, path, dir_len)) {
			m->t = NULL;
		} else {
			m->t = t;
			m->gen = t->gen;
			m->dir = dir;
		}
	}
	return n;
}

static struct node *find(const struct tree *t, const char *path)
{
	return find_len(t, path, strlen(path));
}

/* Append n's full path ("/" for the root) to out: 0 or -ENOMEM. */
static int node_path(const struct node *n, struct buf *out)
{
	const struct node *p;
	size_t len = 0, at;
	int ret;

	if (!n->parent)
		return buf_addch(out, '/');
	for (p = n; p->parent; p = p->parent)
		len += 1 + strlen(p->name);
	ret = buf_grow(out, len);
	if (ret)
		return ret;
	at = out->len + len;
	for (p = n; p->parent; p = p->parent) {
		size_t l = strlen(p->name);

		at -= l;
		memcpy(out->data + at, p->name, l);
		out->data[--at] = '/';
	}
	out->len += len;
	out->data[out->len] = '\0';
	return 0;
}

/* n's full path in a new string (free() it), or NULL without memory. */
static char *node_path_dup(const struct node *n)
{
	struct buf b = BUF_INIT;

	if (node_path(n, &b)) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* The last component of path ("/a/b" -> "b"). */
static const char *base_of(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static void hash_insert(struct tree *t, struct node *n)
{
	size_t h = name_hash(n->parent, n->name, strlen(n->name)) &
		   (t->nbuckets - 1);

	n->hnext = t->buckets[h];
	t->buckets[h] = n;
}

static void hash_remove(struct tree *t, struct node *n)
{
	size_t h = name_hash(n->parent, n->name, strlen(n->name)) &
		   (t->nbuckets - 1);
	struct node **p = &t->buckets[h];

	while (*p && *p != n)
		p = &(*p)->hnext;
	if (*p)
		*p = n->hnext;
	n->hnext = NULL;
}

static int hash_grow(struct tree *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : 1024;
	struct node **old = t->buckets;
	size_t oldn = t->nbuckets;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	t->buckets = b;
	t->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		struct node *n = old[i], *next;

		for (; n; n = next) {
			next = n->hnext;
			hash_insert(t, n);
		}
	}
	free(old);
	return 0;
}

static int kids_add(struct node *dir, struct node *kid)
{
	if (dir->nkids == dir->kids_cap) {
		size_t cap = dir->kids_cap ? dir->kids_cap * 2 : 8;
		struct node **k = realloc(dir->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		dir->kids = k;
		dir->kids_cap = cap;
	}
	dir->kids[dir->nkids++] = kid;
	return 0;
}

static void kids_remove(struct node *dir, struct node *kid)
{
	for (size_t i = 0; i < dir->nkids; i++) {
		if (dir->kids[i] == kid) {
			memmove(dir->kids + i, dir->kids + i + 1,
				(dir->nkids - i - 1) * sizeof(*dir->kids));
			dir->nkids--;
			return;
		}
	}
}

static void node_free(struct node *n)
{
	if (n->edit) {
		wbuf_release(n->edit);
		free(n->edit);
	}
	pthread_mutex_destroy(&n->lock);
	free(n->error);
	free(n->kids);
	free(n->name);
	free(n);
}

/* Create a node named name[0..len) under parent (NULL for the root) and
 * index it. */
static int node_add(struct tree *t, struct node *parent, const char *name,
		    size_t len, enum nkind kind, struct node **out)
{
	struct node *n;
	int ret;

	if (t->count + 1 > t->nbuckets / 2) {
		ret = hash_grow(t);
		if (ret)
			return ret;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->name = strndup(name, len);
	if (!n->name) {
		free(n);
		return -ENOMEM;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->kind = kind;
	n->parent = parent;
	n->mtime = parent ? parent->mtime : archive_mtime(t->ar);
	if (parent) {
		ret = kids_add(parent, n);
		if (ret) {
			node_free(n);
			return ret;
		}
	}
	hash_insert(t, n);
	t->count++;
	*out = n;
	return 0;
}

/* node_add for the last component of path. */
static int node_add_path(struct tree *t, struct node *parent,
			 const char *path, enum nkind kind, struct node **out)
{
	const char *name = base_of(path);

	return node_add(t, parent, name, strlen(name), kind, out);
}

/* Take n out of the namespace; free it unless an open file holds it. */
static void node_detach(struct tree *t, struct node *n)
{
	bool busy;

	inval_add_node(t, n);
	hash_remove(t, n);
	if (n->parent)
		kids_remove(n->parent, n);
	n->parent = NULL;	/* the parent may go before n does */
	tree_moved(t);
	t->count--;
	n->dead = true;
	n->e = NULL;
	pthread_mutex_lock(&n->lock);
	busy = n->refs > 0;
	pthread_mutex_unlock(&n->lock);
	if (!busy)
		node_free(n);
}

/* Give n the last component of path as its name, under a new parent. */
static int node_move(struct tree *t, struct node *n, struct node *parent,
		     const char *path)
{
	char *name = strdup(base_of(path));
	int ret;

	if (!name)
		return -ENOMEM;
	hash_remove(t, n);
	if (parent != n->parent) {
		ret = kids_add(parent, n);
		if (ret) {
			hash_insert(t, n);
			free(name);
			return ret;
		}
		kids_remove(n->parent, n);
		n->parent = parent;
	}
	free(n->name);
	n->name = name;
	hash_insert(t, n);
	tree_moved(t);
	return 0;
}

/* The directory at path[0..len), created with its parents when missing
 * (one walk over the path).  -ENOTDIR when a file is in the way. */
static int dir_get(struct tree *t, const char *path, size_t len,
		   struct node **out)
{
	struct node *d = t->root, *n;
	size_t i = 0, j;
	int ret;

	while (i < len) {
		if (path[i] == '/') {
			i++;
			continue;
		}
		for (j = i; j < len && path[j] != '/'; j++)
			;
		n = kid_find(t, d, path + i, j - i);
		if (!n) {
			ret = node_add(t, d, path + i, j - i, N_DIR, &n);
			if (ret)
				return ret;
		} else if (n->kind != N_DIR) {
			*out = n;
			return -ENOTDIR;
		}
		d = n;
		i = j;
	}
	*out = d;
	return 0;
}

/* The existing parent directory of path: 0, -ENOENT or -ENOTDIR. */
static int parent_of(struct tree *t, const char *path, struct node **out)
{
	size_t len = strrchr(path, '/') - path;
	struct node *d = len ? find_len(t, path, len) : t->root;

	if (!d)
		return -ENOENT;
	*out = d;
	return d->kind == N_DIR ? 0 : -ENOTDIR;
}

/* Member name -> "/a/b" in out, without empty or "." components.
 * -EINVAL for ".." components or an empty result. */
static int member_path(const char *name, struct buf *out, bool *is_dir)
{
	const char *p = name;
	int ret;

	buf_reset(out);
	*is_dir = name[0] && name[strlen(name) - 1] == '/';
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 2 && !memcmp(p, "..", 2))
			return -EINVAL;
		if (n && !(n == 1 && p[0] == '.')) {
			ret = buf_addch(out, '/');
			if (!ret)
				ret = buf_add(out, p, n);
			if (ret)
				return ret;
		}
		p += n + (e != NULL);
	}
	return out->len ? 0 : (*is_dir ? 0 : -EINVAL);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !memcmp(s + n - m, suffix, m) && s[n - m - 1] != '/';
}

/* 'n' for NAME.npy, 't' for NAME.txt, 0 for other names. */
static char array_name(const char *path)
{
	if (ends_with(path, ".npy"))
		return 'n';
	if (ends_with(path, ".txt"))
		return 't';
	return 0;
}

/* ---- Entries ---------------------------------------------------------- */

static bool view_evict(struct cache_item *it);

static struct entry *entry_new(const char *mname)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->view_fd = -1;
	e->ci.evict = view_evict;
	e->mname = strdup(mname);
	if (!e->mname) {
		free(e);
		return NULL;
	}
	e->is_array = ends_with(mname, ".npy");
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

/* Drop the cached text of e (it stays sized).  e->lock held. */
static void view_drop(struct entry *e)
{
	if (!e->rendered)
		return;
	if (e->view_fd >= 0)
		close(e->view_fd);
	else if (e->text_len)
		fallocate(e->t->cache_fd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)e->text_off, (off_t)e->text_len);
	e->view_fd = -1;
	e->rendered = false;
}

/* The budget wants e's text back (cache.h: must not block). */
static bool view_evict(struct cache_item *it)
{
	struct entry *e = (struct entry *)((char *)it -
					   offsetof(struct entry, ci));

	if (pthread_mutex_trylock(&e->lock))
		return false;
	view_drop(e);
	pthread_mutex_unlock(&e->lock);
	return true;
}

static void entry_free(struct entry *e)
{
	cache_drop(&e->ci);	/* no eviction can reach it after this */
	if (e->t)
		view_drop(e);
	pthread_mutex_destroy(&e->lock);
	free(e->error);
	free(e->mname);
	free(e);
}

static int entries_add(struct tree *t, struct entry *e)
{
	if (t->nentries == t->entries_cap) {
		size_t cap = t->entries_cap ? t->entries_cap * 2 : 64;
		struct entry **p = realloc(t->entries, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->entries = p;
		t->entries_cap = cap;
	}
	t->entries[t->nentries++] = e;
	e->t = t;
	return 0;
}

static struct entry *entry_by_mname(struct tree *t, const char *mname)
{
	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];

		if (!e->shadowed && !e->doomed && !strcmp(e->mname, mname))
			return e;
	}
	return NULL;
}

/* The member name for a mount path: without the leading '/'. */
static const char *mname_of(const char *path)
{
	return path + 1;
}

static void set_error(char **slot, const char *msg)
{
	free(*slot);
	*slot = strdup(msg);
}

/* Forget the parsed header and rendered text: the content changed. */
static void entry_reset(struct tree *t, struct entry *e)
{
	(void)t;
	pthread_mutex_lock(&e->lock);
	e->state = ARRAY_UNKNOWN;
	view_drop(e);
	cache_drop(&e->ci);
	e->sized = false;
	e->text_len = 0;
	e->cache_failed = 0;
	pthread_mutex_unlock(&e->lock);
}

/* ---- Building the tree at mount -------------------------------------- */

static int add_member(struct tree *t, size_t i, struct buf *path)
{
	const struct archive_member *m = archive_member(t->ar, i);
	struct node *parent, *n;
	struct entry *e;
	bool is_dir;
	size_t plen;
	int ret;

	e = entry_new(m->name);
	if (!e)
		return -ENOMEM;
	e->in_archive = true;
	e->member = i;
	e->seq = i;
	e->mtime = m->mtime;
	ret = entries_add(t, e);
	if (ret) {
		entry_free(e);
		return ret;
	}
	if (m->nul_name) {
		/* no path can name it, and zip readers disagree on its
		 * name: hidden, and left out of the next commit */
		npz_log("member '%s': name holds a NUL byte, not shown; the next commit drops it",
			m->name);
		e->shadowed = true;
		e->nul_name = true;
		return 0;
	}
	ret = member_path(m->name, path, &is_dir);
	if (ret == -EINVAL) {
		npz_log("member '%s': unsafe name, not shown", m->name);
		return 0;
	}
	if (ret)
		return ret;
	if (is_dir) {
		e->is_array = false;
		ret = dir_get(t, path->data, path->len, &n);
		if (!ret && !n->e && n != t->root)
			n->e = e;
		if (ret == -ENOTDIR) {
			npz_log("member '%s': clashes with a file, not shown",
				m->name);
			return 0;
		}
		return ret;
	}
	n = find_len(t, path->data, path->len);
	if (n && n->kind == N_MEMBER && !strcmp(n->e->mname, m->name)) {
		/* a duplicate name: the later member wins, as in numpy */
		n->e->raw = NULL;
		n->e->shadowed = true;
		n->e = e;
		n->mtime = m->mtime;
		e->raw = n;
		return 0;
	}
	if (n) {
		npz_log("member '%s': name clashes with another member, not shown",
			m->name);
		return 0;
	}
	plen = strrchr(path->data, '/') - path->data;
	ret = dir_get(t, path->data, plen, &parent);
	if (ret == -ENOTDIR) {
		npz_log("member '%s': clashes with a file, not shown", m->name);
		return 0;
	}
	if (ret)
		return ret;
	ret = node_add(t, parent, path->data + plen + 1, path->len - plen - 1,
		       N_MEMBER, &n);
	if (ret)
		return ret;
	n->e = e;
	n->mtime = m->mtime;
	e->raw = n;
	return 0;
}

/* Add the view NAME.txt of an array entry shown as NAME.npy, unless that
 * path is taken. */
static int add_view(struct tree *t, struct entry *e)
{
	struct node *raw = e->raw, *v;
	size_t len;
	char *p;
	int ret = 0;

	if (!raw || !raw->parent || !e->is_array || e->view ||
	    !ends_with(raw->name, ".npy"))
		return 0;
	len = strlen(raw->name);
	p = strdup(raw->name);
	if (!p)
		return -ENOMEM;
	memcpy(p + len - 4, ".txt", 4);
	if (!kid_find(t, raw->parent, p, len)) {
		ret = node_add(t, raw->parent, p, len, N_VIEW, &v);
		if (!ret) {
			v->e = e;
			v->mtime = e->mtime;
			e->view = v;
		}
	}
	free(p);
	return ret;
}

/* The shared cache file of small views.  Without one, views are served
 * without a cache. */
static void cache_open(struct tree *t)
{
	t->cache_fd = cache_tmpfile();
	if (t->cache_fd < 0)
		npz_log("cannot create a cache file in %s: %s; text views are "
			"rendered for every read", cache_dir(),
			strerror(-t->cache_fd));
}

int tree_new(struct archive *ar, const struct tree_opts *opts,
	     struct tree **out, struct npz_err *err)
{
	struct buf path = BUF_INIT;
	struct tree *t;
	size_t n = archive_count(ar);
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ar = ar;
	t->opts = *opts;
	t->cache_fd = -1;
	t->next_seq = n;
	pthread_rwlock_init(&t->lock, NULL);
	pthread_mutex_init(&t->cache_lock, NULL);
	pthread_mutex_init(&t->inval_lock, NULL);
	pthread_mutex_init(&t->grave_lock, NULL);
	buf_init(&t->inval);
	tree_moved(t);
	ret = hash_grow(t);
	if (!ret)
		ret = node_add(t, NULL, "", 0, N_DIR, &t->root);
	if (!ret)
		cache_open(t);
	for (size_t i = 0; !ret && i < n; i++)
		ret = add_member(t, i, &path);
	for (size_t i = 0; !ret && i < t->nentries; i++)
		ret = add_view(t, t->entries[i]);
	buf_release(&path);
	if (ret) {
		if (ret == -ENOMEM)
			npz_err_set(err, "out of memory");
		t->ar = NULL;	/* the caller still owns ar */
		tree_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct node *n = t->buckets[b], *next;

		for (; n; n = next) {
			next = n->hnext;
			node_free(n);
		}
	}
	for (size_t i = 0; i < t->nentries; i++)
		entry_free(t->entries[i]);
	for (size_t i = 0; i < t->ntombs; i++)
		free(t->tombs[i]);
	grave_sweep(t, true);
	pthread_mutex_destroy(&t->grave_lock);
	free(t->entries);
	free(t->buckets);
	if (t->cache_fd >= 0)
		close(t->cache_fd);
	archive_close(t->ar);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->cache_lock);
	pthread_mutex_destroy(&t->inval_lock);
	buf_release(&t->inval);
	free(t);
}

/* ---- Arrays: header and text view ------------------------------------- */

/* Read exactly len bytes of member data at off: 0 or -EIO. */
static int member_read_full(struct tree *t, size_t member, void *buf,
			    size_t len, uint64_t off, struct npz_err *err)
{
	char *p = buf;

	while (len) {
		ssize_t r = archive_member_read(t->ar, member, p, len, off, err);

		if (r < 0)
			return (int)r;
		if (r == 0) {
			npz_err_set(err, "unexpected end of member data");
			return -EIO;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int array_parse(struct tree *t, struct entry *e,
		       struct npy_header *hdr, struct npz_err *err)
{
	const struct archive_member *m = archive_member(t->ar, e->member);
	char head[HEAD_PEEK];
	size_t got = m->size < sizeof(head) ? (size_t)m->size : sizeof(head);
	size_t total;
	char *big;
	int ret;

	ret = member_read_full(t, e->member, head, got, 0, err);
	if (ret)
		return ret;
	ret = npy_header_size(head, got, &total, err);
	if (ret)
		return ret;
	if (total > m->size) {
		npz_err_set(err, "header length %zu past end of member (%llu bytes)",
			    total, (unsigned long long)m->size);
		return -EINVAL;
	}
	if (total <= got)
		return npy_header_parse(head, got, hdr, err);
	big = malloc(total);
	if (!big)
		return -ENOMEM;
	ret = member_read_full(t, e->member, big, total, 0, err);
	if (!ret)
		ret = npy_header_parse(big, total, hdr, err);
	free(big);
	return ret;
}

/* Parse the array's header into *hdr (release it with
 * npy_header_release).  Headers are not kept, only what the namespace
 * needs (state, viewable, data_len): RAM stays small with many members.
 * Called with e->lock held.  Returns 0 or -EIO (logged once, naming the
 * member). */
static int array_header(struct tree *t, struct entry *e,
			struct npy_header *hdr)
{
	const struct archive_member *m;
	struct npz_err err = { "" };
	int ret;

	if (e->state == ARRAY_BAD || !e->in_archive)
		return -EIO;
	m = archive_member(t->ar, e->member);
	ret = array_parse(t, e, hdr, &err);
	if (!ret && hdr->header_len + hdr->data_len > m->size &&
	    !npy_dtype_has_object(&hdr->dtype)) {	/* pickles: any length */
		npz_err_set(&err, "data length %llu does not match the header (%llu bytes)",
			    (unsigned long long)(m->size - hdr->header_len),
			    (unsigned long long)hdr->data_len);
		npy_header_release(hdr);
		ret = -EINVAL;
	}
	if (ret) {
		e->state = ARRAY_BAD;
		npz_log("member '%s': bad npy: %s", m->name,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	if (e->state == ARRAY_UNKNOWN) {
		e->state = ARRAY_OK;
		e->viewable = text_viewable(hdr);
		e->data_len = hdr->data_len;
		e->text_bound = text_size_bound(hdr);
	}
	return 0;
}

/* Learn the array's state once.  Called with e->lock held: 0 or -EIO. */
static int array_load(struct tree *t, struct entry *e)
{
	struct npy_header hdr;
	int ret;

	if (e->state == ARRAY_OK)
		return 0;
	ret = array_header(t, e, &hdr);
	if (!ret)
		npy_header_release(&hdr);
	return ret;
}

/* A view is hidden when its array holds objects. */
static bool view_visible(struct tree *t, struct entry *e)
{
	bool visible;

	if (atomic_load(&e->big_render))
		return true;	/* it renders: it has a view */
	pthread_mutex_lock(&e->lock);
	visible = array_load(t, e) || e->viewable;
	pthread_mutex_unlock(&e->lock);
	return visible;
}

/* Rendering a view: the text goes to the view's cache (memory then the
 * shared file for small views, a file of its own for big ones) while the
 * budget lets it, and the bytes of a window [win_off, win_off + win_len)
 * are copied out on the way (a read of a view that is not cached). */
struct render_ctx {
	struct tree *t;
	struct entry *e;
	uint64_t data_off;	/* the npy header's length */
	struct npz_err *err;
	uint64_t pos;		/* text produced so far */
	bool caching;		/* still keeping the text */
	bool in_mem;		/* keeping it in mem, else in fd */
	struct buf mem;
	int fd;
	char *win;
	uint64_t win_off;
	size_t win_len, win_got;
	bool stop_after_win;	/* the size is known: stop after the window */
};

static int render_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct render_ctx *rc = ctx;

	return member_read_full(rc->t, rc->e->member, buf, len,
				rc->data_off + off, rc->err);
}

/* Stop keeping the text (budget full, disk full): the render goes on for
 * the window and the size. */
static void render_uncache(struct render_ctx *rc)
{
	rc->caching = false;
	buf_release(&rc->mem);
	if (rc->fd >= 0) {
		close(rc->fd);
		rc->fd = -1;
		cache_drop(&rc->e->ci);
	}
}

static int render_sink_write(void *ctx, const void *buf, size_t len)
{
	struct render_ctx *rc = ctx;
	uint64_t wend = rc->win_off + rc->win_len;

	if (rc->win && rc->pos + len > rc->win_off && rc->pos < wend) {
		uint64_t from = rc->pos > rc->win_off ? rc->pos : rc->win_off;
		uint64_t to = rc->pos + len < wend ? rc->pos + len : wend;

		memcpy(rc->win + (from - rc->win_off),
		       (const char *)buf + (from - rc->pos), (size_t)(to - from));
		rc->win_got = (size_t)(to - rc->win_off);
	}
	if (rc->caching && rc->in_mem) {
		if (buf_add(&rc->mem, buf, len))
			render_uncache(rc);
	} else if (rc->caching) {
		if (cache_charge(&rc->e->ci, len)) {
			render_uncache(rc);
		} else if (io_pwrite_all(rc->fd, buf, len, rc->pos)) {
			cache_release(&rc->e->ci, len);
			render_uncache(rc);
		}
	}
	rc->pos += len;
	if (!rc->caching && rc->stop_after_win && rc->pos >= wend)
		return -ECANCELED;	/* the window is full */
	return 0;
}

/* Keep a small view rendered in memory: charge it and append it to the
 * shared file.  e->lock held.  Returns true when it is cached. */
static bool render_keep_mem(struct render_ctx *rc)
{
	struct tree *t = rc->t;
	struct entry *e = rc->e;
	uint64_t off;

	if (t->cache_fd < 0 || cache_charge(&e->ci, rc->mem.len))
		return false;
	pthread_mutex_lock(&t->cache_lock);
	off = t->cache_end;
	t->cache_end = (off + rc->mem.len + 63) & ~63ull;
	pthread_mutex_unlock(&t->cache_lock);
	if (io_pwrite_all(t->cache_fd, rc->mem.data, rc->mem.len, off)) {
		cache_drop(&e->ci);
		return false;
	}
	e->text_off = off;
	e->view_fd = -1;
	return true;
}

/* Render e's view when its text is at most max_bound bytes (by
 * text_size_bound): learn its size, keep it in the cache when the budget
 * lets it, and copy the window [win_off, win_off + win_len) into win (when
 * win is not NULL; *got says how many bytes).  Called with e->lock held.
 * Returns 0, -EFBIG (bigger than max_bound: nothing done) or -EIO (logged:
 * a damaged member, an object array). */
static int array_render(struct tree *t, struct entry *e, uint64_t max_bound,
			char *win, uint64_t win_off, size_t win_len,
			size_t *got)
{
	struct npz_err err = { "" };
	struct render_ctx rc = { .t = t, .e = e, .err = &err, .fd = -1,
				 .win = win, .win_off = win_off,
				 .win_len = win_len };
	struct text_src src = { render_src_read, &rc };
	struct text_sink sink = { render_sink_write, &rc };
	struct npy_header hdr;
	bool full;
	int ret;

	if (e->state == ARRAY_OK && (!e->viewable || e->text_bound > max_bound))
		return e->viewable ? -EFBIG : -EIO;
	ret = array_header(t, e, &hdr);
	if (ret)
		return ret;
	if (!e->viewable || e->text_bound > max_bound) {
		npy_header_release(&hdr);
		return e->viewable ? -EFBIG : -EIO;
	}
	rc.data_off = hdr.header_len;
	buf_init(&rc.mem);
	rc.in_mem = e->text_bound <= VIEW_MEM_MAX;
	rc.caching = !e->rendered && time(NULL) - e->cache_failed >=
		     CACHE_RETRY_SECONDS &&
		     (!e->sized || e->text_len <= cache_limit());
	if (rc.caching && !rc.in_mem) {
		rc.fd = cache_tmpfile();
		rc.caching = rc.fd >= 0;
	}
	rc.stop_after_win = win && e->sized;
	if (e->text_bound > TREE_STAT_TEXT_MAX)
		atomic_store(&e->big_render, true);
	ret = text_format(&hdr, &src, &sink, &err);
	atomic_store(&e->big_render, false);
	npy_header_release(&hdr);
	full = !ret;
	if (ret == -ECANCELED && rc.stop_after_win)
		ret = 0;
	if (ret) {
		render_uncache(&rc);
		npz_log("member '%s': cannot render text view: %s", e->mname,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	if (full) {
		e->sized = true;
		e->text_len = rc.pos;
		if (rc.caching && rc.in_mem)
			rc.caching = render_keep_mem(&rc);
		else if (rc.caching)
			e->view_fd = rc.fd;
		e->rendered = rc.caching;
		if (!rc.caching && !e->cache_failed)
			npz_log("member '%s': text view (%llu bytes) not kept "
				"in the cache (cache_size=%llu): it is rendered "
				"again for reads", e->mname,
				(unsigned long long)rc.pos,
				(unsigned long long)cache_limit());
		if (!rc.caching)
			e->cache_failed = time(NULL);
	}
	buf_release(&rc.mem);
	if (got)
		*got = rc.win_got;
	return 0;
}

/* Load e and render its view if it is not cached (and was not given up
 * on a moment ago): 0 or -EIO. */
static int view_ready(struct tree *t, struct entry *e)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = array_load(t, e);
	if (!ret && (!e->sized || (!e->rendered &&
				   time(NULL) - e->cache_failed >=
				   CACHE_RETRY_SECONDS)))
		ret = array_render(t, e, UINT64_MAX, NULL, 0, 0, NULL);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/* ---- Reading and sizes ------------------------------------------------ */

/* The size of n's content.  t->lock held; takes n->lock. */
static uint64_t node_size(struct tree *t, struct node *n)
{
	uint64_t size = 0;
	struct entry *e = n->e;

	pthread_mutex_lock(&n->lock);
	if (n->edit && !n->rejected) {
		size = n->edit->size;
	} else if (n->kind == N_MEMBER && e && e->in_archive) {
		size = archive_member(t->ar, e->member)->size;
	} else if (n->kind == N_VIEW && e && !atomic_load(&e->big_render)) {
		/* (a big view being rendered: 0 until its open is done) */
		pthread_mutex_lock(&e->lock);
		/* only small views are rendered to learn their size */
		if (!e->sized && e->in_archive && e->state != ARRAY_BAD)
			array_render(t, e, TREE_STAT_TEXT_MAX, NULL, 0, 0, NULL);
		if (e->sized)
			size = e->text_len;
		pthread_mutex_unlock(&e->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return size;
}

static void node_stat(struct tree *t, struct node *n, struct tree_stat *st)
{
	st->kind = n->kind == N_DIR ? TREE_DIR : TREE_FILE;
	st->mtime = n->mtime;
	st->size = n->kind == N_DIR ? 0 : node_size(t, n);
}

/* The visible node at path, or NULL.  Called with t->lock held. */
static struct node *lookup(struct tree *t, const char *path)
{
	struct node *n = find(t, path);

	if (n && n->kind == N_VIEW && !view_visible(t, n->e))
		return NULL;
	return n;
}

int tree_stat(struct tree *t, const char *path, struct tree_stat *st)
{
	struct node *n;
	int ret = -ENOENT;

	grave_sweep(t, false);
	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	if (n) {
		node_stat(t, n, st);
		ret = 0;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_readdir(struct tree *t, const char *path, bool sizes,
		 uint64_t start,
		 int (*fill)(void *ctx, const char *name,
			     const struct tree_stat *st, uint64_t next),
		 void *ctx)
{
	struct node *d;
	int ret = 0;

	pthread_rwlock_rdlock(&t->lock);
	d = find(t, path);
	if (!d)
		ret = -ENOENT;
	else if (d->kind != N_DIR)
		ret = -ENOTDIR;
	for (size_t i = start; !ret && i < d->nkids; i++) {
		struct node *k = d->kids[i];
		struct tree_stat st = { TREE_FILE, 0, k->mtime };

		/* sizes first: rendering a view also learns its visibility */
		if (k->kind == N_DIR)
			st.kind = TREE_DIR;
		else if (sizes)
			st.size = node_size(t, k);
		if (k->kind == N_VIEW && !view_visible(t, k->e))
			continue;
		if (fill(ctx, k->name, &st, i + 1))
			break;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* Read n's content when it has no edit.  t->lock held. */
static ssize_t content_read(struct tree *t, struct node *n, void *buf,
			    size_t len, uint64_t off)
{
	struct entry *e = n->e;
	size_t got = 0;
	ssize_t r;

	if (!e)
		return 0;	/* removed while open */
	if (n->kind == N_MEMBER) {
		struct npz_err err = { "" };

		r = archive_member_read(t->ar, e->member, buf, len, off, &err);
		if (r < 0 && err.msg[0])
			npz_log("%s", err.msg);
		return r;
	}
	/* under e->lock: the cached text cannot be evicted meanwhile */
	pthread_mutex_lock(&e->lock);
	r = array_load(t, e);
	if (!r && e->rendered) {
		if (off >= e->text_len)
			len = 0;
		else if (len > e->text_len - off)
			len = (size_t)(e->text_len - off);
		r = pread(e->view_fd >= 0 ? e->view_fd : t->cache_fd, buf, len,
			  (off_t)((e->view_fd >= 0 ? 0 : e->text_off) + off));
		if (r == (ssize_t)len) {
			cache_touch(&e->ci);
		} else {	/* the cache failed us: render this read */
			view_drop(e);
			cache_drop(&e->ci);
			e->cache_failed = time(NULL);
			r = 0;
		}
	}
	if (!r && !e->rendered) {
		r = array_render(t, e, UINT64_MAX, buf, off, len, &got);
		if (!r)
			r = (ssize_t)got;
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

ssize_t tree_read(struct tree *t, struct tree_file *f, void *buf, size_t len,
		  uint64_t off)
{
	struct node *n = f->node;
	ssize_t r;

	pthread_rwlock_rdlock(&t->lock);
	pthread_mutex_lock(&n->lock);
	if (n->edit && (!n->rejected || f->gen < n->reject_gen)) {
		r = wbuf_pread(n->edit, buf, len, off);
		pthread_mutex_unlock(&n->lock);
	} else {
		pthread_mutex_unlock(&n->lock);
		r = content_read(t, n, buf, len, off);
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}

int tree_read_span(struct tree *t, struct tree_file *f, size_t len,
		   uint64_t off, int *fd, uint64_t *pos, size_t *n)
{
	struct node *n_ = f->node;
	struct entry *e;
	int ret = -EAGAIN;

	grave_sweep(t, false);
	pthread_rwlock_rdlock(&t->lock);
	pthread_mutex_lock(&n_->lock);
	e = n_->edit ? NULL : n_->e;
	pthread_mutex_unlock(&n_->lock);
	if (e && n_->kind == N_MEMBER) {
		ret = archive_member_span(t->ar, e->member, off, len, fd, pos, n,
					  NULL);
	}
	/* views: never zero-copy, their cached text may be evicted before
	 * the caller is done with a span */
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* ---- Edits ------------------------------------------------------------ */

/* A copy of what n shows now, in a new wbuf.  t->lock and n->lock held. */
static int snapshot(struct tree *t, struct node *n, struct wbuf **out)
{
	struct wbuf *w = malloc(sizeof(*w));
	char *block = malloc(COPY_BLOCK);
	uint64_t off = 0;
	int ret = w && block ? 0 : -ENOMEM;

	if (w)
		wbuf_init(w);
	while (!ret) {
		ssize_t r = n->edit ? wbuf_pread(n->edit, block, COPY_BLOCK, off)
				    : content_read(t, n, block, COPY_BLOCK, off);

		if (r <= 0) {
			ret = (int)r;
			break;
		}
		ret = wbuf_pwrite(w, block, (size_t)r, off);
		off += (uint64_t)r;
	}
	free(block);
	if (ret && w) {
		wbuf_release(w);
		free(w);
	}
	if (!ret)
		*out = w;
	return ret;
}

/* Start editing n: its edit holds a copy of the current content (or
 * nothing when empty).  t->lock and n->lock held. */
static int edit_begin(struct tree *t, struct node *n, bool empty)
{
	struct wbuf *w;

	if (n->edit)
		return empty ? wbuf_truncate(n->edit, 0) : 0;
	if (empty || !n->e || (n->kind != N_MEMBER && n->kind != N_VIEW)) {
		w = malloc(sizeof(*w));
		if (!w)
			return -ENOMEM;
		wbuf_init(w);
		n->edit = w;
		return 0;
	}
	return snapshot(t, n, &n->edit);
}

/* Drop n's edit when nobody writes it any more.  n->lock held. */
static void edit_end_if_idle(struct tree *t, struct node *n)
{
	if (n->edit && !n->dirty && n->wopens == 0 &&
	    (n->kind == N_MEMBER || n->kind == N_VIEW)) {
		if (n->kind == N_VIEW && !n->dead)
			inval_add_node(t, n);
		wbuf_release(n->edit);
		free(n->edit);
		n->edit = NULL;
		n->rejected = false;
	}
}

/* Before f writes: a rejected edit is continued by the files that wrote
 * it, and thrown away by files opened since.  n->lock held. */
static void edit_claim(struct node *n, const struct tree_file *f)
{
	if (!n->rejected)
		return;
	n->rejected = false;
	if (f && f->gen < n->reject_gen)
		return;
	wbuf_release(n->edit);
	free(n->edit);
	n->edit = NULL;
}

static int file_new(struct node *n, int flags, struct tree_file **out)
{
	struct tree_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->node = n;
	f->writable = (flags & O_ACCMODE) != O_RDONLY;
	f->gen = n->reject_gen;
	n->refs++;
	if (f->writable)
		n->wopens++;
	*out = f;
	return 0;
}

/* Open node n.  t->lock held. */
static int open_node(struct tree *t, struct node *n, int flags,
		     struct tree_file **out)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	int ret = 0;

	if (n->kind == N_DIR)
		return -EISDIR;
	if ((writable || (flags & O_TRUNC)) && t->opts.ro)
		return -EROFS;
	if (n->kind == N_VIEW && !(flags & O_TRUNC)) {
		bool sized;

		pthread_mutex_lock(&n->e->lock);
		sized = n->e->sized;
		pthread_mutex_unlock(&n->e->lock);
		ret = view_ready(t, n->e);
		if (ret)
			return ret;
		if (!sized)	/* stat said 0 for a big view: now it knows */
			inval_add_node(t, n);
	}
	pthread_mutex_lock(&n->lock);
	if (flags & O_TRUNC) {
		edit_claim(n, NULL);
		ret = edit_begin(t, n, true);
	}
	if (!ret)
		ret = file_new(n, flags, out);
	pthread_mutex_unlock(&n->lock);
	return ret;
}

int tree_open(struct tree *t, const char *path, int flags,
	      struct tree_file **out)
{
	struct node *n;
	int ret;

	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	ret = n ? open_node(t, n, flags, out) : -ENOENT;
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

int tree_create(struct tree *t, const char *path, int flags,
		struct tree_file **out)
{
	struct node *n, *parent;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);
	n = lookup(t, path);
	if (n && (flags & O_EXCL)) {
		ret = -EEXIST;
	} else if (n) {
		ret = open_node(t, n, flags | O_TRUNC, out);
	} else {
		ret = parent_of(t, path, &parent);
		if (!ret) {
			/* a hidden view's path is taken by the view node */
			struct node *hidden = find(t, path);

			if (hidden)
				ret = -EEXIST;
			if (hidden && hidden->kind == N_VIEW && hidden->e) {
				char msg[NPZ_ERR_MSG_MAX];

				snprintf(msg, sizeof(msg), "%s: %s is an object array, which has no text view to write",
					 path + 1, hidden->e->mname);
				npz_log("%s", msg);
				set_error(&hidden->e->error, msg);
				ret = -EPERM;
			}
		}
		if (!ret)
			ret = node_add_path(t, parent, path,
					    array_name(path) ? N_NEW : N_SCRATCH,
					    &n);
		if (!ret) {
			n->mtime = time(NULL);
			pthread_mutex_lock(&n->lock);
			ret = edit_begin(t, n, true);
			if (!ret)
				ret = file_new(n, flags, out);
			pthread_mutex_unlock(&n->lock);
			if (ret)
				node_detach(t, n);
		}
	}
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

ssize_t tree_write(struct tree *t, struct tree_file *f, const void *buf,
		   size_t len, uint64_t off)
{
	struct node *n = f->node;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_rdlock(&t->lock);
	pthread_mutex_lock(&n->lock);
	edit_claim(n, f);
	ret = edit_begin(t, n, false);
	if (!ret)
		ret = wbuf_pwrite(n->edit, buf, len, off);
	if (!ret) {
		n->dirty = true;
		f->wrote = true;
		n->mtime = time(NULL);
	}
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&t->lock);
	return ret ? ret : (ssize_t)len;
}

/* ---- Commits ---------------------------------------------------------- */

static int seq_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a;
	const struct entry *y = *(struct entry *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool archive_has_deflated(const struct archive *ar)
{
	for (size_t i = 0; i < archive_count(ar); i++)
		if (archive_member(ar, i)->method == ARCHIVE_DEFLATE)
			return true;
	return false;
}

/* The method for new content of e under the compress= rule. */
static uint16_t method_for(struct tree *t, const struct entry *e)
{
	if (t->opts.compress == TREE_STORE)
		return ARCHIVE_STORE;
	if (t->opts.compress == TREE_DEFLATE)
		return ARCHIVE_DEFLATE;
	if (e->in_archive)
		return archive_member(t->ar, e->member)->method ==
			ARCHIVE_DEFLATE ? ARCHIVE_DEFLATE : ARCHIVE_STORE;
	return archive_has_deflated(t->ar) ? ARCHIVE_DEFLATE : ARCHIVE_STORE;
}

/* Write the archive anew from the entries (doomed ones left out, pending
 * content for the others that have it) and swap it in.  t->lock held for
 * writing.  On success doomed entries are freed (their nodes detached) and
 * pending content is dropped; on failure nothing in the tree changed and
 * the caller undoes its own preparations. */
static int commit(struct tree *t, struct npz_err *err)
{
	struct archive_change *ch;
	struct entry **list;
	struct archive *nar;
	size_t n = 0, keep = 0;
	time_t now = time(NULL);
	int ret;

	list = malloc((t->nentries + 1) * sizeof(*list));
	ch = calloc(t->nentries + 1, sizeof(*ch));
	if (!list || !ch) {
		free(list);
		free(ch);
		npz_err_set(err, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->nentries; i++)
		if (!t->entries[i]->doomed && !t->entries[i]->shadowed)
			list[n++] = t->entries[i];
	qsort(list, n, sizeof(*list), seq_cmp);
	for (size_t i = 0; i < n; i++) {
		struct entry *e = list[i];

		ch[i].name = e->mname;
		ch[i].from = -1;
		if (!e->pending) {
			ch[i].from = (ssize_t)e->member;
			continue;
		}
		ch[i].fd = wbuf_fd(e->pending);
		if (ch[i].fd < 0) {
			ret = ch[i].fd;
			npz_err_set(err, "spill file: %s", strerror(-ret));
			goto out_free;
		}
		ch[i].size = e->pending->size;
		ch[i].method = method_for(t, e);
		ch[i].level = t->opts.level;
		ch[i].mtime = now;
	}
	grave_sweep(t, false);
	ret = archive_commit(t->ar, ch, n, &nar, err);
	if (ret)
		goto out_free;
	/* nobody reads the old archive's tables any more (readers hold
	 * t->lock): only its descriptors stay, for zero-copy replies */
	archive_retire(t->ar);
	grave_add(t, t->ar);
	t->ar = nar;
	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];

		if (e->doomed || e->shadowed) {
			if (e->shadowed && e->nul_name)
				npz_log("member '%s': name with a NUL byte, dropped",
					e->mname);
			else if (e->shadowed)
				npz_log("member '%s': earlier duplicate of that name dropped",
					e->mname);
			if (e->raw)
				node_detach(t, e->raw);
			if (e->view)
				node_detach(t, e->view);
			entry_free(e);
			continue;
		}
		t->entries[keep++] = e;
	}
	t->nentries = keep;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = list[i];

		e->in_archive = true;
		e->member = i;
		e->seq = i;
		if (e->pending) {
			e->mtime = now;
			e->pending = NULL;	/* owned by the caller */
			entry_reset(t, e);
			if (e->raw) {
				e->raw->mtime = now;
				inval_add_node(t, e->raw);
			}
			if (e->view) {
				e->view->mtime = now;
				inval_add_node(t, e->view);
			}
		}
	}
	t->next_seq = n;
	ret = 0;
out_free:
	free(list);
	free(ch);
	t->trim = true;		/* see release_free_memory() */
	return ret;
}

/* Report a rejected or failed write: log, keep in user.npzfs.error. */
static void report(struct node *n, struct entry *e, const char *what,
		   int ret, const struct npz_err *err)
{
	char msg[NPZ_ERR_MSG_MAX + 64];

	snprintf(msg, sizeof(msg), "%s: %s", what,
		 err->msg[0] ? err->msg : strerror(-ret));
	npz_log("%s", msg);
	if (e)
		set_error(&e->error, msg);
	else if (n)
		set_error(&n->error, msg);
}

/* Report the rejected content of a new array file n (N_NEW): it is not in
 * the archive; it stays in the mount under its name (to be rewritten or
 * removed), and is stored as the plain member NAME.rejected at unmount. */
static void report_new_rejected(struct node *n, const char *path,
				const struct npz_err *err)
{
	char *msg;

	if (asprintf(&msg, "new array %s rejected: %s; not stored in the archive: %s stays in the mount until rewritten or removed, and is stored as member %s.rejected at unmount",
		     path + 1, err->msg[0] ? err->msg : strerror(EINVAL),
		     path + 1, path + 1) < 0) {
		report(n, NULL, path + 1, -EINVAL, err);
		return;
	}
	npz_log("%s", msg);
	free(n->error);
	n->error = msg;
}

/* Turn `content` (what was written to a file named like `path`) into the
 * new bytes of array entry e: a .txt is parsed (e's current array as the
 * base), a .npy checked.  *npy is content itself or a new wbuf (owned).
 * Returns 0 or -EINVAL with err. */
static int make_npy(struct tree *t, struct entry *e, char kind,
		    struct wbuf *content, struct wbuf **npy,
		    struct npz_err *err)
{
	const struct npy_header *base = NULL;
	struct wbuf *out;
	int ret;

	if (kind == 'n') {
		*npy = content;
		return convert_check_npy(content, err);
	}
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;
	wbuf_init(out);
	if (e) {
		struct npy_header hdr;

		pthread_mutex_lock(&e->lock);
		if (e->in_archive && !array_header(t, e, &hdr))
			base = &hdr;
		pthread_mutex_unlock(&e->lock);
		ret = convert_text_to_npy(content, base, out, err);
		if (base)
			npy_header_release(&hdr);
	} else {
		ret = convert_text_to_npy(content, NULL, out, err);
	}
	if (ret) {
		wbuf_release(out);
		free(out);
		return ret;
	}
	*npy = out;
	return 0;
}

static void npy_free(struct wbuf *npy, struct wbuf *content)
{
	if (npy && npy != content) {
		wbuf_release(npy);
		free(npy);
	}
}

/* "/d/x.txt" or "/d/x.npy" -> member name "d/x.npy" (heap). */
static char *array_mname(const char *path)
{
	char *m = strdup(mname_of(path));

	if (m)
		memcpy(m + strlen(m) - 4, ".npy", 4);
	return m;
}

/* Show a newly committed array entry: its .npy node (reusing `n` when it
 * is the .npy path) and its view (reusing `n` when it is the .txt path). */
static int show_entry(struct tree *t, struct entry *e, struct node *n)
{
	struct node *parent, *raw;
	char *path;
	int ret;

	if (n && array_name(n->name) == 'n') {
		n->kind = N_MEMBER;
		n->e = e;
		e->raw = n;
		return add_view(t, e);
	}
	if (n) {
		n->kind = N_VIEW;
		n->e = e;
		e->view = n;
	}
	if (e->raw)
		return 0;
	if (asprintf(&path, "/%s", e->mname) < 0)
		return -ENOMEM;
	ret = -EEXIST;
	if (!find(t, path)) {
		ret = parent_of(t, path, &parent);
		if (!ret)
			ret = node_add_path(t, parent, path, N_MEMBER, &raw);
		if (!ret) {
			raw->e = e;
			raw->mtime = e->mtime;
			e->raw = raw;
		}
	}
	free(path);
	if (!ret && !e->view)
		ret = add_view(t, e);
	return ret == -EEXIST ? 0 : ret;
}

/* Commit new content for the array or member at `path`.  `content` is what
 * was written (text for a .txt path, bytes otherwise); target is the entry
 * it replaces, or NULL to add a new entry.  `n` is the node to show the
 * result through (or NULL).  t->lock held for writing.  Returns 0 or
 * -errno, with err set; on failure nothing changed. */
static int commit_content(struct tree *t, const char *path,
			  struct entry *target, struct wbuf *content,
			  struct node *n, struct npz_err *err)
{
	char kind = target ? (target->is_array ? 'n' : 0) : array_name(path);
	struct entry *e = target;
	struct wbuf *npy = content;
	char *mname = NULL;
	bool added = false;
	int ret;

	if (target && target->view && n == target->view)
		kind = 't';
	if (!target && kind) {
		mname = array_mname(path);
		if (!mname)
			return -ENOMEM;
		e = entry_by_mname(t, mname);	/* a hidden member */
	}
	if (kind) {
		ret = make_npy(t, e, kind, content, &npy, err);
		if (ret)
			goto out;
	}
	if (!e) {
		e = entry_new(mname ? mname : mname_of(path));
		ret = e ? entries_add(t, e) : -ENOMEM;
		if (ret) {
			if (e)
				entry_free(e);
			goto out_npy;
		}
		e->seq = t->next_seq++;
		added = true;
	}
	e->pending = npy;
	ret = commit(t, err);
	e->pending = NULL;
	if (ret && added) {
		t->nentries--;
		entry_free(e);
	}
	if (!ret && (added || (n && n->kind == N_NEW)))
		ret = show_entry(t, e, n);
out_npy:
	npy_free(npy, content);
out:
	free(mname);
	return ret;
}

/* Commit n's edit if it was written since its last commit.  t->lock held
 * for writing; takes n->lock. */
static int commit_node(struct tree *t, struct node *n)
{
	struct npz_err err = { "" };
	struct entry *e = n->e;
	char *path;
	int ret = 0;

	pthread_mutex_lock(&n->lock);
	if (!n->dirty || n->dead || n->kind == N_SCRATCH || !n->edit) {
		if (n->kind == N_SCRATCH)
			n->dirty = false;
		pthread_mutex_unlock(&n->lock);
		return 0;
	}
	path = node_path_dup(n);
	if (!path) {
		pthread_mutex_unlock(&n->lock);
		return -ENOMEM;
	}
	if (n->kind == N_NEW)
		ret = commit_content(t, path, NULL, n->edit, n, &err);
	else
		ret = commit_content(t, path, e, n->edit, n, &err);
	if (!ret) {
		n->dirty = false;
		free(n->error);
		n->error = NULL;
		if (n->e) {
			free(n->e->error);
			n->e->error = NULL;
		}
	} else if (ret == -EINVAL && n->kind != N_NEW) {
		/* rejected: files opened from now on show the unchanged array
		 * again; the files that wrote it may still finish their edit
		 * (a child closing a shared descriptor also flushes) */
		n->dirty = false;
		n->rejected = true;
		n->reject_gen++;
		inval_add(t, path);
		edit_end_if_idle(t, n);
	} else if (ret == -EINVAL) {
		n->dirty = false;
	}
	pthread_mutex_unlock(&n->lock);
	if (ret == -EINVAL && n->kind == N_NEW)
		report_new_rejected(n, path, &err);
	else if (ret)
		report(n, n->e, path + 1, ret, &err);
	free(path);
	return ret;
}

static bool node_dirty(struct node *n)
{
	bool dirty;

	pthread_mutex_lock(&n->lock);
	dirty = n->dirty;
	pthread_mutex_unlock(&n->lock);
	return dirty;
}

/* Commit f's node when it is dirty (and, unless `any`, f wrote to it). */
static int commit_file(struct tree *t, struct tree_file *f, bool any)
{
	int ret;

	if (!(any || f->wrote) || !node_dirty(f->node))
		return 0;
	pthread_rwlock_wrlock(&t->lock);
	ret = commit_node(t, f->node);
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

int tree_flush(struct tree *t, struct tree_file *f)
{
	return commit_file(t, f, false);
}

int tree_fsync(struct tree *t, struct tree_file *f)
{
	return commit_file(t, f, true);
}

int tree_release(struct tree *t, struct tree_file *f)
{
	struct node *n = f->node;
	bool gone;
	int ret = 0;

	grave_sweep(t, false);
	ret = commit_file(t, f, false);
	pthread_rwlock_rdlock(&t->lock);
	pthread_mutex_lock(&n->lock);
	n->refs--;
	if (f->writable)
		n->wopens--;
	edit_end_if_idle(t, n);
	gone = n->dead && n->refs == 0;
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	if (gone)
		node_free(n);
	free(f);
	return ret;
}

int tree_truncate(struct tree *t, const char *path, struct tree_file *f,
		  uint64_t size)
{
	struct node *n;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);
	n = f ? f->node : lookup(t, path);
	if (!n) {
		ret = -ENOENT;
		goto out;
	}
	if (n->kind == N_DIR) {
		ret = -EISDIR;
		goto out;
	}
	if (n->kind == N_VIEW && !n->edit) {
		ret = view_ready(t, n->e);
		if (ret)
			goto out;
	}
	pthread_mutex_lock(&n->lock);
	edit_claim(n, f);
	ret = edit_begin(t, n, size == 0);
	if (!ret)
		ret = wbuf_truncate(n->edit, size);
	if (!ret) {
		n->dirty = true;
		if (f)
			f->wrote = true;
		n->mtime = time(NULL);
	}
	pthread_mutex_unlock(&n->lock);
	/* A path truncate of a file nobody has open has no close to wait for. */
	if (!ret && !f && n->wopens == 0) {
		ret = commit_node(t, n);
		pthread_mutex_lock(&n->lock);
		edit_end_if_idle(t, n);
		pthread_mutex_unlock(&n->lock);
	}
out:
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, path);
	return ret;
}

/* ---- Namespace changes ------------------------------------------------ */

/* Remove entry e from the archive (and its nodes from the mount). */
static int remove_entry(struct tree *t, struct entry *e)
{
	struct npz_err err = { "" };
	int ret;

	e->doomed = true;
	ret = commit(t, &err);
	if (ret) {
		e->doomed = false;
		report(NULL, NULL, e->mname, ret, &err);
	}
	return ret;
}

/* Remember that the view at path went away with its array, so that its own
 * unlink (rm x.npy x.txt, rm -r) succeeds.  t->lock held for writing. */
static void tomb_add(struct tree *t, const char *path)
{
	char *p = strdup(path);

	if (!p)
		return;
	if (t->ntombs == TOMBS) {
		free(t->tombs[0]);
		memmove(t->tombs, t->tombs + 1, (TOMBS - 1) * sizeof(*t->tombs));
		t->ntombs--;
	}
	t->tombs[t->ntombs++] = p;
}

/* Forget path's tombstone; true if it had one. */
static bool tomb_take(struct tree *t, const char *path)
{
	for (size_t i = 0; i < t->ntombs; i++) {
		if (!strcmp(t->tombs[i], path)) {
			free(t->tombs[i]);
			memmove(t->tombs + i, t->tombs + i + 1,
				(t->ntombs - i - 1) * sizeof(*t->tombs));
			t->ntombs--;
			return true;
		}
	}
	return false;
}

int tree_unlink(struct tree *t, const char *path)
{
	struct node *n, *sibling;
	char *spath = NULL;
	int ret = 0;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);
	n = lookup(t, path);
	if (!n) {
		ret = tomb_take(t, path) ? 0 : -ENOENT;
	} else if (n->kind == N_DIR) {
		ret = -EISDIR;
	} else if (n->kind == N_MEMBER || n->kind == N_VIEW) {
		sibling = n == n->e->raw ? n->e->view : n->e->raw;
		if (sibling) {
			spath = node_path_dup(sibling);
			if (!spath)
				ret = -ENOMEM;
		}
		if (!ret)
			ret = remove_entry(t, n->e);
		if (!ret && spath)
			tomb_add(t, spath);
		free(spath);
	} else {
		node_detach(t, n);
	}
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

/* What a node shows now, as a new wbuf (for moving a view's text out to a
 * scratch file).  t->lock held. */
static int node_copy(struct tree *t, struct node *n, struct wbuf **out)
{
	int ret;

	if (n->kind == N_VIEW && !n->edit) {
		ret = view_ready(t, n->e);
		if (ret)
			return ret;
	}
	pthread_mutex_lock(&n->lock);
	ret = snapshot(t, n, out);
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* Make a scratch file at path holding content (ownership taken on success). */
static int scratch_add(struct tree *t, const char *path, struct wbuf *content)
{
	struct node *parent, *s;
	int ret = parent_of(t, path, &parent);

	if (!ret)
		ret = node_add_path(t, parent, path, N_SCRATCH, &s);
	if (ret)
		return ret;
	s->edit = content;
	s->mtime = time(NULL);
	return 0;
}

/* Rename array entry e to the array named by path `to` (NAME.npy or
 * NAME.txt): the entry's member becomes NAME.npy, replacing any other
 * entry of that name. */
static int rename_array(struct tree *t, struct entry *e, const char *to)
{
	struct npz_err err = { "" };
	char *mname = array_mname(to), *old;
	struct entry *victim;
	struct node *parent;
	char *path;
	int ret;

	if (!mname)
		return -ENOMEM;
	if (!strcmp(mname, e->mname)) {
		free(mname);
		return 0;
	}
	ret = parent_of(t, to, &parent);
	if (ret) {
		free(mname);
		return ret;
	}
	victim = entry_by_mname(t, mname);
	if (victim)
		victim->doomed = true;
	old = e->mname;
	e->mname = mname;
	ret = commit(t, &err);
	if (ret) {
		e->mname = old;
		if (victim)
			victim->doomed = false;
		free(mname);
		report(NULL, e, to + 1, ret, &err);
		return ret;
	}
	free(old);
	/* move the nodes: NAME.npy, and the view if its path is free */
	if (asprintf(&path, "/%s", mname) < 0)
		return -ENOMEM;
	if (e->view) {
		node_detach(t, e->view);
		e->view = NULL;
	}
	ret = 0;
	if (e->raw) {
		struct node *clash = find(t, path);

		if (clash && clash != e->raw)
			node_detach(t, clash);
		ret = node_move(t, e->raw, parent, path);
	}
	free(path);
	if (!ret) {
		struct node *clash;

		path = strdup(to);
		if (!path)
			return -ENOMEM;
		memcpy(path + strlen(path) - 4, ".txt", 4);
		clash = find(t, path);
		if (clash && (clash->kind == N_NEW || clash->kind == N_SCRATCH))
			node_detach(t, clash);
		free(path);
		ret = add_view(t, e);
	}
	return ret;
}

/* Rename member entry e (shown by node n) to the plain or array name `to`. */
static int rename_member(struct tree *t, struct node *n, const char *to,
			 struct node *dst)
{
	struct npz_err err = { "" };
	struct entry *e = n->e, *victim = dst ? dst->e : NULL;
	bool dst_scratch = dst && (dst->kind == N_NEW || dst->kind == N_SCRATCH);
	struct node *parent;
	char *mname = strdup(mname_of(to)), *old;
	bool was_array = e->is_array;
	int ret;

	if (!mname)
		return -ENOMEM;
	ret = parent_of(t, to, &parent);
	if (ret) {
		free(mname);
		return ret;
	}
	if (victim && victim != e)
		victim->doomed = true;
	old = e->mname;
	e->mname = mname;
	e->is_array = ends_with(mname, ".npy");
	ret = commit(t, &err);
	if (ret) {
		e->mname = old;
		e->is_array = was_array;
		if (victim)
			victim->doomed = false;
		free(mname);
		report(NULL, e, to + 1, ret, &err);
		return ret;
	}
	free(old);
	if (dst_scratch)
		node_detach(t, dst);
	if (e->view) {
		node_detach(t, e->view);
		e->view = NULL;
	}
	entry_reset(t, e);
	ret = node_move(t, n, parent, to);
	if (!ret)
		ret = add_view(t, e);
	return ret;
}

int tree_rename(struct tree *t, const char *from, const char *to,
		unsigned int flags)
{
	struct npz_err err = { "" };
	struct node *src, *dst, *parent;
	char tkind = array_name(to);
	struct wbuf *text;
	int ret = 0;

	if (t->opts.ro)
		return -EROFS;
	if (flags & ~1u)	/* only RENAME_NOREPLACE */
		return -EINVAL;
	pthread_rwlock_wrlock(&t->lock);
	src = lookup(t, from);
	dst = lookup(t, to);
	if (!src) {
		ret = -ENOENT;
		goto out;
	}
	if (src == dst || !strcmp(from, to))
		goto out;
	if (dst && (flags & 1u)) {
		ret = -EEXIST;
		goto out;
	}
	ret = parent_of(t, to, &parent);
	if (ret)
		goto out;
	if (src->kind == N_DIR) {
		ret = -EXDEV;	/* mv copies a directory, then removes it */
		goto out;
	}
	if (dst && dst->kind == N_DIR) {
		ret = -EISDIR;
		goto out;
	}
	switch (src->kind) {
	case N_NEW:
	case N_SCRATCH:
		if (dst && (dst->kind == N_MEMBER || dst->kind == N_VIEW)) {
			ret = commit_content(t, to, dst->e, src->edit, dst, &err);
		} else if (tkind) {
			if (dst)
				node_detach(t, dst);
			ret = commit_content(t, to, NULL, src->edit, NULL, &err);
		} else {
			if (dst)
				node_detach(t, dst);
			ret = node_move(t, src, parent, to);
			if (!ret)
				src->kind = N_SCRATCH;
			goto out;
		}
		if (ret) {
			report(src, NULL, to + 1, ret, &err);
			if (ret == -EINVAL && dst && dst->e)
				set_error(&dst->e->error, src->error);
		} else {
			node_detach(t, src);
		}
		break;
	case N_VIEW:
		if (tkind && !(dst && dst->kind == N_MEMBER && !dst->e->is_array)) {
			ret = rename_array(t, src->e, to);
			break;
		}
		/* the text moves out to a scratch file; the array stays */
		ret = node_copy(t, src, &text);
		if (ret)
			break;
		if (dst && dst->kind == N_MEMBER) {
			ret = commit_content(t, to, dst->e, text, dst, &err);
			wbuf_release(text);
			free(text);
			break;
		}
		if (dst)
			node_detach(t, dst);
		ret = scratch_add(t, to, text);
		if (ret) {
			wbuf_release(text);
			free(text);
		}
		break;
	case N_MEMBER:
		if (src->e->is_array && tkind &&
		    !(dst && dst->kind == N_MEMBER && !dst->e->is_array)) {
			ret = rename_array(t, src->e, to);
			break;
		}
		ret = rename_member(t, src, to, dst);
		break;
	case N_DIR:
		break;
	}
out:
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

int tree_mkdir(struct tree *t, const char *path)
{
	struct node *n, *parent;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);
	if (find(t, path))
		ret = -EEXIST;
	else
		ret = parent_of(t, path, &parent);
	if (!ret)
		ret = node_add_path(t, parent, path, N_DIR, &n);
	if (!ret)
		n->mtime = time(NULL);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_rmdir(struct tree *t, const char *path)
{
	struct node *n;
	int ret = 0;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);
	n = find(t, path);
	if (!n)
		ret = -ENOENT;
	else if (n->kind != N_DIR)
		ret = -ENOTDIR;
	else if (n == t->root)
		ret = -EBUSY;
	else if (n->nkids)
		ret = -ENOTEMPTY;
	if (!ret && n->e) {
		struct entry *e = n->e;

		ret = remove_entry(t, e);	/* its "dir/" member */
		if (!ret)
			n = find(t, path);
	}
	if (!ret && n)
		node_detach(t, n);
	pthread_rwlock_unlock(&t->lock);
	inval_flush(t, NULL);
	return ret;
}

/* ---- Unmount ---------------------------------------------------------- */

static bool is_backup_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' || (n && name[n - 1] == '~');
}

int tree_unmount(struct tree *t)
{
	struct npz_err err = { "" };
	struct buf path = BUF_INIT;
	struct node **nodes;
	size_t nn = 0;
	bool store = false;
	int ret = 0;

	pthread_rwlock_wrlock(&t->lock);
	nodes = malloc((t->count + 1) * sizeof(*nodes));
	if (!nodes) {
		pthread_rwlock_unlock(&t->lock);
		return -ENOMEM;
	}
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct node *n = t->buckets[b]; n; n = n->hnext)
			nodes[nn++] = n;
	for (size_t i = 0; i < nn; i++) {
		struct node *n = nodes[i];
		struct entry *e;

		if (n->kind == N_MEMBER || n->kind == N_VIEW) {
			if (n->dirty)
				commit_node(t, n);
			continue;
		}
		if (n->kind != N_NEW && n->kind != N_SCRATCH)
			continue;
		if (n->kind == N_NEW && n->dirty)
			commit_node(t, n);	/* written after its last close */
		buf_reset(&path);
		if (node_path(n, &path)) {
			ret = -ENOMEM;
			break;
		}
		if (n->kind == N_NEW && (!n->error || !n->edit)) {
			npz_log("%s: created but never written, not stored",
				path.data + 1);
			continue;
		}
		if (n->kind == N_NEW) {
			/* rejected (or failed) content: kept under another
			 * name, as a plain member, unless that name is taken */
			char *rname;

			if (asprintf(&rname, "%s.rejected", path.data) < 0) {
				ret = -ENOMEM;
				break;
			}
			if (find(t, rname) ||
			    entry_by_mname(t, mname_of(rname))) {
				npz_log("%s: rejected content dropped: %s exists",
					path.data + 1, rname + 1);
				free(rname);
				continue;
			}
			e = entry_new(mname_of(rname));
			if (e && !entries_add(t, e)) {
				npz_log("%s: rejected content stored as member %s",
					path.data + 1, rname + 1);
				e->seq = t->next_seq++;
				e->pending = n->edit;
				store = true;
				free(rname);
				continue;
			}
			if (e)
				entry_free(e);
			free(rname);
			ret = -ENOMEM;
			break;
		}
		if (is_backup_name(n->name)) {
			npz_log("%s: editor scratch file, dropped", path.data + 1);
			continue;
		}
		e = entry_new(mname_of(path.data));
		if (!e || entries_add(t, e)) {
			if (e)
				entry_free(e);
			ret = -ENOMEM;
			break;
		}
		e->seq = t->next_seq++;
		e->pending = n->edit;
		store = true;
	}
	if (!ret && store) {
		ret = commit(t, &err);
		if (ret)
			npz_log("storing scratch files failed, they are lost: %s",
				err.msg);
	}
	free(nodes);
	buf_release(&path);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* ---- Extended attributes ---------------------------------------------- */

static const char *const xattr_names[] = {
	"dtype", "shape", "compression", "error"
};

/* Append attribute `name` (without prefix) of node n: 0 or -ENODATA. */
static int node_xattr(struct tree *t, struct node *n, const char *name,
		      struct buf *out)
{
	struct npy_header hdr;
	struct entry *e = n->e;
	int ret = -ENODATA;

	if (!strcmp(name, "error")) {
		const char *msg = e ? e->error : n->error;

		return msg ? buf_adds(out, msg) : -ENODATA;
	}
	if (n->kind == N_DIR || !e || !e->in_archive)
		return -ENODATA;
	if (!strcmp(name, "compression"))
		return buf_adds(out, archive_method_name(
				archive_member(t->ar, e->member)->method));
	if (!e->is_array)
		return -ENODATA;
	pthread_mutex_lock(&e->lock);
	if (array_header(t, e, &hdr) == 0) {
		const char *d = hdr.descr;
		size_t len = strlen(d);

		if (!strcmp(name, "dtype") && len >= 2 && d[0] == '\'')
			ret = buf_add(out, d + 1, len - 2);
		else if (!strcmp(name, "dtype"))
			ret = buf_add(out, d, len);
		else if (!strcmp(name, "shape"))
			ret = npy_shape_format(hdr.ndim, hdr.shape, out);
		npy_header_release(&hdr);
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int tree_getxattr(struct tree *t, const char *path, const char *name,
		  struct buf *out)
{
	struct node *n;
	int ret;

	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	if (!n)
		ret = -ENOENT;
	else if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		ret = -ENODATA;
	else
		ret = node_xattr(t, n, name + strlen(XATTR_PREFIX), out);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_listxattr(struct tree *t, const char *path, struct buf *out)
{
	struct buf val = BUF_INIT;
	struct node *n;
	int ret = 0;

	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	if (!n)
		ret = -ENOENT;
	for (size_t i = 0; n && !ret && i < 4; i++) {
		buf_reset(&val);
		if (node_xattr(t, n, xattr_names[i], &val))
			continue;
		ret = buf_addf(out, "%s%s", XATTR_PREFIX, xattr_names[i]);
		if (!ret)
			ret = buf_addch(out, '\0');
	}
	pthread_rwlock_unlock(&t->lock);
	buf_release(&val);
	return ret;
}

const char *tree_archive_path(struct tree *t)
{
	return archive_path(t->ar);
}
