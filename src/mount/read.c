/* read.c - the read side: stat, readdir, read and zero-copy spans, all
 * under t->lock held for reading.
 *  Invariant: an edit that is not rejected is what every reader sees. */
#include <errno.h>
#include <unistd.h>

#include "mount_internal.h"

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
	} else if (n->kind == N_VIEW && e) {
		size = view_size(t, e, n->vk);
	}
	pthread_mutex_unlock(&n->lock);
	return size;
}

static void node_stat(struct tree *t, struct node *n, struct tree_stat *st)
{
	st->kind = n->kind == N_DIR ? TREE_DIR : TREE_FILE;
	st->mtime = n->mtime;
	st->size = n->kind == N_DIR ? 0 : node_size(t, n);
	st->ro = n->kind == N_VIEW && n->e && view_read_only(t, n);
}

int tree_stat(struct tree *t, const char *path, struct tree_stat *st)
{
	struct node *n;
	int ret = -ENOENT;

	follow_poke(t);
	pthread_rwlock_rdlock(&t->lock);
	n = ns_lookup(t, path);
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

	follow_poke(t);
	pthread_rwlock_rdlock(&t->lock);
	d = ns_find(t, path);
	if (!d)
		ret = -ENOENT;
	else if (d->kind != N_DIR)
		ret = -ENOTDIR;
	for (size_t i = start; !ret && i < d->nkids; i++) {
		struct node *k = d->kids[i];
		struct tree_stat st = { TREE_FILE, 0, k->mtime, false };

		/* sizes first: rendering a view also learns its visibility */
		if (k->kind == N_DIR)
			st.kind = TREE_DIR;
		else if (sizes)
			st.size = node_size(t, k);
		if (k->kind == N_VIEW && !view_visible(t, k))
			continue;
		if (k->kind == N_VIEW && sizes)
			st.ro = view_read_only(t, k);
		if (fill(ctx, k->name, &st, i + 1))
			break;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* Read n's content when it has no edit.  t->lock held. */
ssize_t node_read_content(struct tree *t, struct node *n, void *buf,
			  size_t len, uint64_t off)
{
	struct entry *e = n->e;
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
	return view_read(t, e, n->vk, buf, len, off);
}

/* Read f's snapshot: the member it opened, in the version it opened
 * (another program's version changed or removed it since); a view's text
 * of then is gone: -EIO.  t->lock held. */
static ssize_t snapshot_read(struct tree_file *f, void *buf, size_t len,
			     uint64_t off)
{
	struct npz_err err = { "" };
	ssize_t r;

	if (!f->snap)
		return -EIO;
	r = archive_member_read(version_archive(f->snap), f->snap_member, buf,
				len, off, &err);
	if (r < 0 && err.msg[0])
		npz_log("%s", err.msg);
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
		r = follow_snapshot(f) ? snapshot_read(f, buf, len, off)
				       : node_read_content(t, n, buf, len, off);
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

	pthread_rwlock_rdlock(&t->lock);
	pthread_mutex_lock(&n_->lock);
	e = n_->edit ? NULL : n_->e;
	if (!n_->edit && f->snap && follow_snapshot(f)) {
		/* the version it opened: another program's changed it */
		pthread_mutex_unlock(&n_->lock);
		ret = archive_member_span(version_archive(f->snap),
					  f->snap_member, off, len, fd, pos, n,
					  NULL);
		if (!ret)
			ret = version_hold(f->snap);
		e = NULL;
	} else {
		pthread_mutex_unlock(&n_->lock);
	}
	if (e && n_->kind == N_MEMBER) {
		ret = archive_member_span(t->ar, e->member, off, len, fd, pos, n,
					  NULL);
		if (!ret)	/* the reply is sent after we return */
			ret = version_hold(t->ver);
	}
	/* views: never zero-copy, their cached text may be evicted before
	 * the caller is done with a span */
	pthread_rwlock_unlock(&t->lock);
	return ret;
}
