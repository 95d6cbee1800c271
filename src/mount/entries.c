/* entries.c - entries (one per archive member) and their nodes; building
 * the tree from the archive at mount, and freeing it.
 *  Invariant: t->entries[i]->t == t; an entry's raw and view nodes point
 *  back at it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mount_internal.h"

struct entry *entry_new(const char *mname)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	for (int k = 0; k < VIEW_KINDS; k++) {
		e->vs[k].e = e;
		e->vs[k].fd = -1;
		e->vs[k].ci.evict = view_evict;
	}
	e->mname = strdup(mname);
	if (!e->mname) {
		free(e);
		return NULL;
	}
	e->is_array = name_ends_with(mname, ".npy");
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

void entry_free(struct entry *e)
{
	for (int k = 0; k < VIEW_KINDS; k++) {
		/* no eviction can reach it after this */
		cache_drop(&e->vs[k].ci);
		if (e->t)
			view_drop(&e->vs[k]);
	}
	pthread_mutex_destroy(&e->lock);
	free(e->error);
	free(e->mname);
	free(e);
}

int entries_add(struct tree *t, struct entry *e)
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
	e->content_tag = ++t->next_tag;
	return 0;
}

struct entry *entry_by_mname(struct tree *t, const char *mname)
{
	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];

		if (!e->shadowed && !e->doomed && !strcmp(e->mname, mname))
			return e;
	}
	return NULL;
}

void error_keep(char **slot, const char *msg)
{
	free(*slot);
	*slot = strdup(msg);
}

/* Forget the parsed header and rendered text: the content changed. */
void entry_reset(struct tree *t, struct entry *e)
{
	(void)t;
	pthread_mutex_lock(&e->lock);
	e->state = ARRAY_UNKNOWN;
	view_reset_all(e);
	pthread_mutex_unlock(&e->lock);
}

/* ---- Building the tree at mount -------------------------------------- */

/* Show entry e of a "dir/" member as the directory at path (its parents
 * created): 0 or -ENOMEM; a file in the way hides it (logged). */
static int add_dir_member(struct tree *t, struct entry *e,
			  const struct buf *path)
{
	struct node *n;
	int ret;

	e->is_array = false;
	ret = ns_dir_get(t, path->data, path->len, &n);
	if (!ret && !n->e && n != t->root)
		n->e = e;
	if (ret == -ENOTDIR) {
		npz_log("member '%s': clashes with a file, not shown",
			e->mname);
		return 0;
	}
	return ret;
}

int entries_add_member(struct tree *t, size_t i, struct buf *path)
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
	ret = name_member_path(m->name, path, &is_dir);
	if (ret == -EINVAL) {
		npz_log("member '%s': unsafe name, not shown", m->name);
		return 0;
	}
	if (ret)
		return ret;
	if (is_dir)
		return add_dir_member(t, e, path);
	n = ns_find_len(t, path->data, path->len);
	if (n && n->kind == N_VIEW && n->e) {
		/* a real member wins over a view of its name: at mount views
		 * come after every member; a reload (follow.c) adds members
		 * among views */
		n->e->view[n->vk] = NULL;
		node_detach(t, n);
		n = NULL;
	}
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
	ret = ns_dir_get(t, path->data, plen, &parent);
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

char *name_with_view(const char *path, enum view_id k)
{
	char *p = strdup(path);

	if (p)	/* ".npy" and every suffix are four bytes */
		memcpy(p + strlen(p) - 4, view_kind(k)->suffix, 4);
	return p;
}

/* Add the views of an array entry shown as NAME.npy (the kinds -o views=
 * shows), each unless its path is taken: a real member wins. */
int entry_add_view(struct tree *t, struct entry *e)
{
	struct node *raw = e->raw, *v;
	int ret = 0;

	if (!raw || !raw->parent || !e->is_array ||
	    !name_ends_with(raw->name, ".npy"))
		return 0;
	for (int k = 0; k < VIEW_KINDS && !ret; k++) {
		char *p;

		if (!view_on(t, k) || e->view[k])
			continue;
		p = name_with_view(raw->name, k);
		if (!p)
			return -ENOMEM;
		if (!ns_kid_find(t, raw->parent, p, strlen(p))) {
			ret = node_add(t, raw->parent, p, strlen(p), N_VIEW, &v);
			if (!ret) {
				v->e = e;
				v->vk = k;
				v->mtime = e->mtime;
				e->view[k] = v;
			}
		}
		free(p);
	}
	return ret;
}

void entry_detach_views(struct tree *t, struct entry *e)
{
	for (int k = 0; k < VIEW_KINDS; k++) {
		if (e->view[k]) {
			node_detach(t, e->view[k]);
			e->view[k] = NULL;
		}
	}
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
	pthread_mutex_init(&t->change_lock, NULL);
	pthread_mutex_init(&t->reap_lock, NULL);
	pthread_cond_init(&t->reap_cv, NULL);
	pthread_rwlock_init(&t->lock, NULL);
	pthread_mutex_init(&t->cache_lock, NULL);
	pthread_mutex_init(&t->inval_lock, NULL);
	pthread_mutex_init(&t->follow_lock, NULL);
	pthread_mutex_init(&t->files_lock, NULL);
	pthread_cond_init(&t->follow_cv, NULL);
	buf_init(&t->inval);
	ns_moved(t);
	ret = ns_hash_grow(t);
	if (!ret)
		ret = node_add(t, NULL, "", 0, N_DIR, &t->root);
	if (!ret)
		cache_open(t);
	for (size_t i = 0; !ret && i < n; i++)
		ret = entries_add_member(t, i, &path);
	for (size_t i = 0; !ret && i < t->nentries; i++)
		ret = entry_add_view(t, t->entries[i]);
	if (!ret)
		ret = version_new(ar, &t->ver);
	if (!ret)
		ret = follow_init(t);
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
	commit_release_wait();
	follow_stop(t);
	files_forget(t);
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
	free(t->entries);
	free(t->buckets);
	if (t->cache_fd >= 0)
		close(t->cache_fd);
	/* this thread's span, then the tree's reference: the last one
	 * closes the archive (a worker thread's slot releases the rest) */
	tree_thread_release();
	version_reaper_stop(t);
	version_put(t->spare);
	version_put(t->ver);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->change_lock);
	pthread_mutex_destroy(&t->reap_lock);
	pthread_cond_destroy(&t->reap_cv);
	pthread_mutex_destroy(&t->cache_lock);
	pthread_mutex_destroy(&t->inval_lock);
	pthread_mutex_destroy(&t->follow_lock);
	pthread_mutex_destroy(&t->files_lock);
	pthread_cond_destroy(&t->follow_cv);
	free(t->apath);
	buf_release(&t->inval);
	free(t);
}

void change_begin(struct tree *t)
{
	pthread_mutex_lock(&t->change_lock);
	pthread_rwlock_wrlock(&t->lock);
}

void change_end(struct tree *t)
{
	struct version *retired = t->retired;

	t->retired = NULL;
	pthread_rwlock_unlock(&t->lock);
	pthread_mutex_unlock(&t->change_lock);
	version_reap(t, retired);	/* closing takes long: not here */
}

const char *tree_archive_path(struct tree *t)
{
	return archive_path(t->ar);
}
