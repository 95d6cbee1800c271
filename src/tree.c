/* tree.c - the mount's namespace, per-array state and open files.
 *
 * Invariants: every node is reachable from the path hash map under its
 * full path; a directory's kids are exactly the nodes whose parent it is;
 * a VIEW node exists only where no member of the same path exists.
 * Locking is described in tree.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "text.h"
#include "tree.h"

#define XATTR_PREFIX "user.npzfs."
#define HEAD_PEEK 4096

enum array_state { ARRAY_UNKNOWN, ARRAY_OK, ARRAY_BAD };

struct array {
	size_t member;
	pthread_mutex_t lock;	/* protects everything below */
	enum array_state state;
	struct npy_header hdr;	/* valid when state == ARRAY_OK */
	bool rendered;
	uint64_t text_off;	/* rendered text in the cache file */
	uint64_t text_len;
};

struct node {
	char *path;		/* "/a/b.npy"; "/" for the root */
	const char *name;	/* last component, inside path */
	enum tree_kind kind;
	struct node *parent;
	struct node **kids;	/* TREE_DIR */
	size_t nkids, kids_cap;
	size_t member;		/* TREE_FILE: archive index */
	struct array *array;	/* .npy TREE_FILE and its TREE_VIEW, else NULL */
	time_t mtime;
	struct node *hnext;	/* hash chain */
};

struct tree {
	struct archive *ar;
	pthread_rwlock_t lock;	/* protects: buckets, kids lists */
	struct node **buckets;
	size_t nbuckets;
	size_t count;
	struct node *root;
	time_t dir_mtime;
	pthread_mutex_t cache_lock;	/* protects: cache_end */
	int cache_fd;
	uint64_t cache_end;
};

struct tree_file {
	struct node *node;
};

static uint64_t path_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct node *find_len(const struct tree *t, const char *path,
			     size_t len)
{
	struct node *n = t->buckets[path_hash(path, len) & (t->nbuckets - 1)];

	for (; n; n = n->hnext)
		if (strlen(n->path) == len && !memcmp(n->path, path, len))
			return n;
	return NULL;
}

static struct node *find(const struct tree *t, const char *path)
{
	return find_len(t, path, strlen(path));
}

static int hash_grow(struct tree *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : 1024;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct node *n = t->buckets[i], *next;

		for (; n; n = next) {
			size_t h = path_hash(n->path, strlen(n->path)) & (nb - 1);

			next = n->hnext;
			n->hnext = b[h];
			b[h] = n;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
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

/* Create a node at path (len bytes) under parent and index it. */
static int node_add(struct tree *t, struct node *parent, const char *path,
		    size_t len, enum tree_kind kind, struct node **out)
{
	struct node *n;
	size_t h;
	int ret;

	if (t->count + 1 > t->nbuckets / 2) {
		ret = hash_grow(t);
		if (ret)
			return ret;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->path = strndup(path, len);
	if (!n->path) {
		free(n);
		return -ENOMEM;
	}
	n->name = strrchr(n->path, '/') + 1;
	n->kind = kind;
	n->parent = parent;
	n->mtime = t->dir_mtime;
	if (parent) {
		ret = kids_add(parent, n);
		if (ret) {
			free(n->path);
			free(n);
			return ret;
		}
	}
	h = path_hash(n->path, len) & (t->nbuckets - 1);
	n->hnext = t->buckets[h];
	t->buckets[h] = n;
	t->count++;
	*out = n;
	return 0;
}

/* The directory at path[0..len), created with its parents when missing.
 * -ENOTDIR when a file is in the way. */
static int dir_get(struct tree *t, const char *path, size_t len,
		   struct node **out)
{
	struct node *n, *parent;
	size_t plen;
	int ret;

	if (len == 0) {
		*out = t->root;
		return 0;
	}
	n = find_len(t, path, len);
	if (n) {
		*out = n;
		return n->kind == TREE_DIR ? 0 : -ENOTDIR;
	}
	plen = len;
	while (plen > 0 && path[plen - 1] != '/')
		plen--;
	ret = dir_get(t, path, plen ? plen - 1 : 0, &parent);
	if (ret)
		return ret;
	return node_add(t, parent, path, len, TREE_DIR, out);
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

	return n > m && !memcmp(s + n - m, suffix, m);
}

static int add_member(struct tree *t, size_t i, struct buf *path)
{
	const struct archive_member *m = archive_member(t->ar, i);
	struct node *parent, *n;
	bool is_dir;
	size_t plen;
	int ret;

	ret = member_path(m->name, path, &is_dir);
	if (ret == -EINVAL) {
		npz_log("member '%s': unsafe name, not shown", m->name);
		return 0;
	}
	if (ret)
		return ret;
	if (is_dir) {
		ret = dir_get(t, path->data, path->len, &n);
		if (ret == -ENOTDIR) {
			npz_log("member '%s': clashes with a file, not shown",
				m->name);
			return 0;
		}
		return ret;
	}
	if (find_len(t, path->data, path->len)) {
		npz_log("member '%s': duplicate name, not shown", m->name);
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
	ret = node_add(t, parent, path->data, path->len, TREE_FILE, &n);
	if (ret)
		return ret;
	n->member = i;
	n->mtime = m->mtime;
	if (ends_with(n->name, ".npy")) {
		n->array = calloc(1, sizeof(*n->array));
		if (!n->array)
			return -ENOMEM;
		n->array->member = i;
		pthread_mutex_init(&n->array->lock, NULL);
	}
	return 0;
}

/* Add NAME.txt beside every NAME.npy unless that path is taken. */
static int add_views(struct tree *t, struct buf *path)
{
	size_t nb = t->nbuckets;
	int ret;

	/* Views are collected first: adding nodes may rehash the buckets. */
	struct node **files = malloc((t->count + 1) * sizeof(*files));
	size_t nfiles = 0;

	if (!files)
		return -ENOMEM;
	for (size_t b = 0; b < nb; b++)
		for (struct node *n = t->buckets[b]; n; n = n->hnext)
			if (n->kind == TREE_FILE && n->array)
				files[nfiles++] = n;
	for (size_t i = 0; i < nfiles; i++) {
		struct node *f = files[i], *v;
		size_t len = strlen(f->path) - 4;

		buf_reset(path);
		ret = buf_add(path, f->path, len);
		if (!ret)
			ret = buf_adds(path, ".txt");
		if (ret)
			goto out_free;
		if (find_len(t, path->data, path->len))
			continue;
		ret = node_add(t, f->parent, path->data, path->len, TREE_VIEW,
			       &v);
		if (ret)
			goto out_free;
		v->member = f->member;
		v->array = f->array;
		v->mtime = f->mtime;
	}
	ret = 0;
out_free:
	free(files);
	return ret;
}

static int cache_open(struct tree *t, struct npz_err *err)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[4096];

	if (!dir || !*dir)
		dir = "/var/tmp";
	t->cache_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->cache_fd >= 0)
		return 0;
	snprintf(tmpl, sizeof(tmpl), "%s/npzfs-text-XXXXXX", dir);
	t->cache_fd = mkstemp(tmpl);
	if (t->cache_fd < 0) {
		npz_err_set(err, "cannot create a cache file in %s: %s", dir,
			    strerror(errno));
		return -EIO;
	}
	unlink(tmpl);
	return 0;
}

int tree_new(struct archive *ar, time_t dir_mtime, struct tree **out,
	     struct npz_err *err)
{
	struct buf path = BUF_INIT;
	struct tree *t;
	size_t n = archive_count(ar);
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ar = ar;
	t->dir_mtime = dir_mtime;
	t->cache_fd = -1;
	pthread_rwlock_init(&t->lock, NULL);
	pthread_mutex_init(&t->cache_lock, NULL);
	ret = hash_grow(t);
	if (!ret)
		ret = node_add(t, NULL, "/", 1, TREE_DIR, &t->root);
	if (!ret) {
		t->root->name = t->root->path;	/* "/" has no last component */
		ret = cache_open(t, err);
	}
	for (size_t i = 0; !ret && i < n; i++)
		ret = add_member(t, i, &path);
	if (!ret)
		ret = add_views(t, &path);
	buf_release(&path);
	if (ret) {
		if (ret == -ENOMEM)
			npz_err_set(err, "out of memory");
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
			if (n->kind == TREE_FILE && n->array) {
				npy_header_release(&n->array->hdr);
				pthread_mutex_destroy(&n->array->lock);
				free(n->array);
			}
			free(n->kids);
			free(n->path);
			free(n);
		}
	}
	free(t->buckets);
	if (t->cache_fd >= 0)
		close(t->cache_fd);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->cache_lock);
	free(t);
}

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

static int array_parse(struct tree *t, struct array *a, struct npz_err *err)
{
	const struct archive_member *m = archive_member(t->ar, a->member);
	char head[HEAD_PEEK];
	size_t got = m->size < sizeof(head) ? (size_t)m->size : sizeof(head);
	size_t total;
	char *big;
	int ret;

	ret = member_read_full(t, a->member, head, got, 0, err);
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
		return npy_header_parse(head, got, &a->hdr, err);
	big = malloc(total);
	if (!big)
		return -ENOMEM;
	ret = member_read_full(t, a->member, big, total, 0, err);
	if (!ret)
		ret = npy_header_parse(big, total, &a->hdr, err);
	free(big);
	return ret;
}

/* Parse the array's header once.  Called with a->lock held.  Returns 0 or
 * -EIO (logged once, naming the member). */
static int array_load(struct tree *t, struct array *a)
{
	const struct archive_member *m;
	struct npz_err err = { "" };
	int ret;

	if (a->state == ARRAY_OK)
		return 0;
	if (a->state == ARRAY_BAD)
		return -EIO;
	m = archive_member(t->ar, a->member);
	ret = array_parse(t, a, &err);
	if (!ret && a->hdr.header_len + a->hdr.data_len > m->size) {
		npz_err_set(&err, "data length %llu does not match header (%llu bytes of data)",
			    (unsigned long long)(m->size - a->hdr.header_len),
			    (unsigned long long)a->hdr.data_len);
		npy_header_release(&a->hdr);
		ret = -EINVAL;
	}
	if (ret) {
		a->state = ARRAY_BAD;
		npz_log("member '%s': bad npy: %s", m->name,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	a->state = ARRAY_OK;
	return 0;
}

/* A view is hidden when its array holds objects. */
static bool view_visible(struct tree *t, struct node *v)
{
	bool visible;

	pthread_mutex_lock(&v->array->lock);
	visible = array_load(t, v->array) || text_viewable(&v->array->hdr);
	pthread_mutex_unlock(&v->array->lock);
	return visible;
}

struct render_ctx {
	struct tree *t;
	struct array *a;
	uint64_t pos;		/* next write offset in the cache file */
	struct npz_err *err;
};

static int render_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct render_ctx *rc = ctx;

	return member_read_full(rc->t, rc->a->member, buf, len,
				rc->a->hdr.header_len + off, rc->err);
}

static int render_sink_write(void *ctx, const void *buf, size_t len)
{
	struct render_ctx *rc = ctx;
	const char *p = buf;

	while (len) {
		ssize_t w = pwrite(rc->t->cache_fd, p, len, (off_t)rc->pos);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			npz_err_set(rc->err, "cache file: %s", strerror(errno));
			return -EIO;
		}
		p += w;
		len -= (size_t)w;
		rc->pos += (uint64_t)w;
	}
	return 0;
}

/* Render the view into the cache file once.  Called with a->lock held,
 * after a successful array_load.  Returns 0 or -EIO (logged). */
static int array_render(struct tree *t, struct array *a)
{
	struct npz_err err = { "" };
	struct render_ctx rc = { t, a, 0, &err };
	struct text_src src = { render_src_read, &rc };
	struct text_sink sink = { render_sink_write, &rc };
	int ret;

	if (a->rendered)
		return 0;
	pthread_mutex_lock(&t->cache_lock);
	rc.pos = t->cache_end;
	ret = text_format(&a->hdr, &src, &sink, &err);
	if (!ret) {
		a->text_off = t->cache_end;
		a->text_len = rc.pos - t->cache_end;
		a->rendered = true;
		/* keep each view page-aligned in the cache file */
		t->cache_end = (rc.pos + 4095) & ~4095ull;
	}
	pthread_mutex_unlock(&t->cache_lock);
	if (ret) {
		npz_log("member '%s': cannot render text view: %s",
			archive_member(t->ar, a->member)->name,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	return 0;
}

static void node_stat(struct tree *t, struct node *n, struct tree_stat *st)
{
	st->kind = n->kind;
	st->mtime = n->mtime;
	st->size = 0;
	if (n->kind == TREE_FILE) {
		st->size = archive_member(t->ar, n->member)->size;
	} else if (n->kind == TREE_VIEW) {
		struct array *a = n->array;

		pthread_mutex_lock(&a->lock);
		if (!array_load(t, a) && !a->rendered &&
		    a->hdr.data_len <= TREE_STAT_RENDER_MAX)
			array_render(t, a);
		if (a->rendered)
			st->size = a->text_len;
		pthread_mutex_unlock(&a->lock);
	}
}

/* The visible node at path, or NULL.  Called with t->lock held. */
static struct node *lookup(struct tree *t, const char *path)
{
	struct node *n = find(t, path);

	if (n && n->kind == TREE_VIEW && !view_visible(t, n))
		return NULL;
	return n;
}

int tree_stat(struct tree *t, const char *path, struct tree_stat *st)
{
	struct node *n;
	int ret = -ENOENT;

	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	if (n) {
		node_stat(t, n, st);
		ret = 0;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_readdir(struct tree *t, const char *path,
		 int (*fill)(void *ctx, const char *name,
			     const struct tree_stat *st),
		 void *ctx)
{
	struct node *d;
	int ret = 0;

	pthread_rwlock_rdlock(&t->lock);
	d = find(t, path);
	if (!d)
		ret = -ENOENT;
	else if (d->kind != TREE_DIR)
		ret = -ENOTDIR;
	for (size_t i = 0; !ret && i < d->nkids; i++) {
		struct node *k = d->kids[i];
		struct tree_stat st = { k->kind, 0, k->mtime };

		if (k->kind == TREE_VIEW && !view_visible(t, k))
			continue;
		if (k->kind == TREE_FILE)
			st.size = archive_member(t->ar, k->member)->size;
		if (fill(ctx, k->name, &st))
			break;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_open(struct tree *t, const char *path, int flags,
	      struct tree_file **out)
{
	struct tree_file *f;
	struct node *n;
	int ret = 0;

	pthread_rwlock_rdlock(&t->lock);
	n = lookup(t, path);
	if (!n)
		ret = -ENOENT;
	else if (n->kind == TREE_DIR)
		ret = -EISDIR;
	else if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		ret = -EROFS;
	else if (n->kind == TREE_VIEW) {
		pthread_mutex_lock(&n->array->lock);
		ret = array_load(t, n->array);
		if (!ret)
			ret = array_render(t, n->array);
		pthread_mutex_unlock(&n->array->lock);
	}
	pthread_rwlock_unlock(&t->lock);
	if (ret)
		return ret;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->node = n;
	*out = f;
	return 0;
}

ssize_t tree_read(struct tree *t, struct tree_file *f, void *buf, size_t len,
		  uint64_t off)
{
	struct node *n = f->node;
	struct array *a = n->array;
	uint64_t text_off, text_len;
	ssize_t r;

	if (n->kind == TREE_FILE) {
		struct npz_err err = { "" };

		r = archive_member_read(t->ar, n->member, buf, len, off, &err);
		if (r < 0 && err.msg[0])
			npz_log("%s", err.msg);
		return r;
	}
	pthread_mutex_lock(&a->lock);
	text_off = a->text_off;
	text_len = a->text_len;
	pthread_mutex_unlock(&a->lock);
	if (off >= text_len)
		return 0;
	if (len > text_len - off)
		len = (size_t)(text_len - off);
	r = pread(t->cache_fd, buf, len, (off_t)(text_off + off));
	return r < 0 ? -errno : r;
}

void tree_release(struct tree *t, struct tree_file *f)
{
	(void)t;
	free(f);
}

static const char *const xattr_names[] = { "dtype", "shape", "compression" };

/* Append attribute `name` (without prefix) of node n: 0 or -ENODATA. */
static int node_xattr(struct tree *t, struct node *n, const char *name,
		      struct buf *out)
{
	struct array *a = n->array;
	int ret = -ENODATA;

	if (n->kind == TREE_DIR)
		return -ENODATA;
	if (!strcmp(name, "compression"))
		return buf_adds(out, archive_method_name(
				archive_member(t->ar, n->member)->method));
	if (!a)
		return -ENODATA;
	pthread_mutex_lock(&a->lock);
	if (array_load(t, a) == 0) {
		const char *d = a->hdr.descr;
		size_t len = strlen(d);

		if (!strcmp(name, "dtype") && len >= 2 && d[0] == '\'')
			ret = buf_add(out, d + 1, len - 2);
		else if (!strcmp(name, "dtype"))
			ret = buf_add(out, d, len);
		else if (!strcmp(name, "shape"))
			ret = npy_shape_format(a->hdr.ndim, a->hdr.shape, out);
	}
	pthread_mutex_unlock(&a->lock);
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
	for (size_t i = 0; n && !ret && i < 3; i++) {
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
