/* namespace.c - nodes, the hash map keyed by (parent, name), path walks
 * with a per-thread memo, and node creation, removal and moves.
 *  Invariant: a live node is in the hash map and in its parent's kids;
 *  a dead node (parent NULL) is in neither. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mount_internal.h"

/* A node stores only its own name and its parent; the hash map is keyed by
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
struct node *ns_kid_find(const struct tree *t, const struct node *dir,
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
void ns_moved(struct tree *t)
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
struct node *ns_find_len(const struct tree *t, const char *path,
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
		n = ns_kid_find(t, n, path + i, j - i);
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

struct node *ns_find(const struct tree *t, const char *path)
{
	return ns_find_len(t, path, strlen(path));
}

/* Append n's full path ("/" for the root) to out: 0 or -ENOMEM. */
int node_path(const struct node *n, struct buf *out)
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
char *node_path_dup(const struct node *n)
{
	struct buf b = BUF_INIT;

	if (node_path(n, &b)) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
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

int ns_hash_grow(struct tree *t)
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

void node_free(struct node *n)
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
int node_add(struct tree *t, struct node *parent, const char *name,
	     size_t len, enum nkind kind, struct node **out)
{
	struct node *n;
	int ret;

	if (t->count + 1 > t->nbuckets / 2) {
		ret = ns_hash_grow(t);
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
	n->born_ext = t->ext_clock;
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
int node_add_path(struct tree *t, struct node *parent,
		  const char *path, enum nkind kind, struct node **out)
{
	const char *name = name_base(path);

	return node_add(t, parent, name, strlen(name), kind, out);
}

/* Take n out of the namespace; free it unless an open file holds it. */
void node_detach(struct tree *t, struct node *n)
{
	bool busy;

	inval_add_node(t, n);
	hash_remove(t, n);
	if (n->parent)
		kids_remove(n->parent, n);
	n->parent = NULL;	/* the parent may go before n does */
	ns_moved(t);
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
int node_move(struct tree *t, struct node *n, struct node *parent,
	      const char *path)
{
	char *name = strdup(name_base(path));
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
	ns_moved(t);
	return 0;
}

/* The directory at path[0..len), created with its parents when missing
 * (one walk over the path).  -ENOTDIR when a file is in the way. */
int ns_dir_get(struct tree *t, const char *path, size_t len,
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
		n = ns_kid_find(t, d, path + i, j - i);
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
int ns_parent_of(struct tree *t, const char *path, struct node **out)
{
	size_t len = strrchr(path, '/') - path;
	struct node *d = len ? ns_find_len(t, path, len) : t->root;

	if (!d)
		return -ENOENT;
	*out = d;
	return d->kind == N_DIR ? 0 : -ENOTDIR;
}

/* The visible node at path, or NULL.  Called with t->lock held. */
struct node *ns_lookup(struct tree *t, const char *path)
{
	struct node *n = ns_find(t, path);

	if (n && n->kind == N_VIEW && !view_visible(t, n))
		return NULL;
	return n;
}
