/* edit.c - open files and edits: open, create, write, truncate, flush,
 * fsync, release.  Commits go through commit.c.
 *  Invariant: n->refs counts the open files of n, n->wopens the writable
 *  ones; a dead node is freed by the release that drops refs to 0. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "mount_internal.h"

#define COPY_BLOCK (1u << 20)

/* A copy of what n shows now, in a new wbuf.  t->lock and n->lock held. */
int node_snapshot(struct tree *t, struct node *n, struct wbuf **out)
{
	struct wbuf *w = malloc(sizeof(*w));
	char *block = malloc(COPY_BLOCK);
	uint64_t off = 0;
	int ret = w && block ? 0 : -ENOMEM;

	if (w)
		wbuf_init(w);
	while (!ret) {
		ssize_t r = n->edit ? wbuf_pread(n->edit, block, COPY_BLOCK, off)
				    : node_read_content(t, n, block, COPY_BLOCK, off);

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

int edit_freeze(struct node *n)
{
	const char *p;
	int ret = 0;

	/* after these, reading the wbuf changes nothing in it (reading a
	 * copy-on-write wbuf never does) */
	if (n->edit && !n->edit->cow)
		ret = wbuf_fd(n->edit);
	if (ret >= 0 && n->edit && !n->edit->cow)
		ret = wbuf_map(n->edit, &p);
	if (ret < 0)
		return ret;
	n->frozen = true;
	return 0;
}

void edit_thaw(struct node *n)
{
	n->frozen = false;
}

/* Wait until the running change (a commit that froze an edit) is over:
 * called without locks. */
static void change_wait(struct tree *t)
{
	pthread_mutex_lock(&t->change_lock);
	pthread_mutex_unlock(&t->change_lock);
}

static void base_put(void *version)
{
	version_put(version);
}

/* A stored member's base is read from its version's file: bytes read
 * after another program rewrote that file in place are not the base's. */
static int base_check(void *version)
{
	return archive_intact(version_archive(version)) ? 0 : -EIO;
}

/* The base of an edit of a SOZip member: its content read through the
 * archive (a chunk at a time), whose tables a reference keeps. */
struct member_base {
	struct version *v;
	struct archive *ar;
	size_t member;
};

static ssize_t member_base_read(void *ctx, void *buf, size_t n, uint64_t pos)
{
	struct member_base *mb = ctx;

	return archive_member_read(mb->ar, mb->member, buf, n, pos, NULL);
}

static void member_base_put(void *ctx)
{
	struct member_base *mb = ctx;

	version_put_tables(mb->v);
	free(mb);
}

/* e's content in the current archive as a copy-on-write base: a stored
 * member's bytes, or a SOZip member's content read through the archive.
 * t->lock held.  0, or -EAGAIN (other deflated members: no base), -EIO,
 * -ENOMEM. */
static int edit_base(struct tree *t, struct entry *e, struct wbuf_base *b)
{
	const struct archive_member *am = archive_member(t->ar, e->member);
	uint64_t size = am->size, pos;
	struct member_base *mb;
	size_t got;
	int fd, ret;

	if (am->method == ARCHIVE_DEFLATE && archive_member_sozip(t->ar, e->member)) {
		mb = malloc(sizeof(*mb));
		if (!mb)
			return -ENOMEM;
		*mb = (struct member_base){ version_ref_tables(t->ver), t->ar,
					    e->member };
		*b = (struct wbuf_base){ .fd = -1, .len = size,
					 .read = member_base_read,
					 .put = member_base_put, .ctx = mb,
					 .tag = e->content_tag };
		return 0;
	}
	if (am->method != ARCHIVE_STORE || size > SIZE_MAX)
		return -EAGAIN;
	ret = archive_member_span(t->ar, e->member, 0, (size_t)size, &fd,
				  &pos, &got, NULL);
	if (ret)
		return ret;
	if (got != size)
		return -EIO;
	*b = (struct wbuf_base){ .fd = fd, .off = pos, .len = size,
				 .check = base_check, .put = base_put,
				 .ctx = version_ref(t->ver),
				 .tag = e->content_tag };
	return 0;
}

void edit_rebase(struct tree *t, struct node *n, bool committed)
{
	struct wbuf *w = n->edit;
	struct wbuf_base b;

	if (!w || !w->cow || n->kind != N_MEMBER || !n->e ||
	    !n->e->in_archive || (!committed && w->base.tag != n->e->content_tag))
		return;
	if (edit_base(t, n->e, &b))
		return;
	if (b.len != w->size) {	/* cannot be: the member is w's content */
		b.put(b.ctx);
		return;
	}
	wbuf_rebase(w, &b, committed);
}

/* Start editing n: its edit holds the current content (or nothing when
 * empty): a stored or SOZip member's by copy-on-write, anything else by a
 * copy (a deflated member without an index: its commit writes it whole,
 * as SOZip where the commit clones, so its next edit is copy-on-write).
 * t->lock and n->lock held. */
static int edit_begin(struct tree *t, struct node *n, bool empty)
{
	struct wbuf_base b;
	struct wbuf *w;

	if (n->edit)
		return empty ? wbuf_truncate(n->edit, 0) : 0;
	if (!empty && n->kind == N_MEMBER && n->e && n->e->in_archive &&
	    !edit_base(t, n->e, &b)) {
		w = malloc(sizeof(*w));
		if (!w) {
			b.put(b.ctx);
			return -ENOMEM;
		}
		wbuf_init(w);
		wbuf_init_cow(w, &b);
		n->edit = w;
		return 0;
	}
	if (empty || !n->e || (n->kind != N_MEMBER && n->kind != N_VIEW)) {
		w = malloc(sizeof(*w));
		if (!w)
			return -ENOMEM;
		wbuf_init(w);
		/* text is parsed, never stored: no CRC while it is written
		 * (a .txt renamed to another name gets its CRC at commit) */
		w->crc_skip = n->kind == N_VIEW ||
			      name_array_kind(n->name, t->opts.views) >= 0;
		n->edit = w;
		return 0;
	}
	return node_snapshot(t, n, &n->edit);
}

/* Drop n's edit when nobody writes it any more.  n->lock held. */
void edit_end_if_idle(struct tree *t, struct node *n)
{
	if (n->edit && !n->frozen && !n->dirty && n->wopens == 0 &&
	    (n->kind == N_MEMBER || n->kind == N_VIEW)) {
		if (n->kind == N_VIEW && !n->dead)
			inval_add_node(t, n);
		wbuf_release(n->edit);
		free(n->edit);
		n->edit = NULL;
		n->rejected = false;
		n->stale = false;
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
	n->stale = false;
}

static void file_unlink(struct tree *t, struct tree_file *f)
{
	pthread_mutex_lock(&t->files_lock);
	if (f->fprev)
		f->fprev->fnext = f->fnext;
	else
		t->files = f->fnext;
	if (f->fnext)
		f->fnext->fprev = f->fprev;
	pthread_mutex_unlock(&t->files_lock);
}

static int file_new(struct tree *t, struct node *n, int flags,
		    struct tree_file **out)
{
	struct tree_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->node = n;
	f->writable = (flags & O_ACCMODE) != O_RDONLY;
	/* (an archive rewritten in place behind us must not be read from
	 * the page cache: its reads fail) */
	f->keep_cache = !n->edit && !(flags & O_TRUNC) &&
			(n->kind == N_MEMBER || n->kind == N_VIEW) &&
			archive_intact(t->ar) &&
			!atomic_load(&t->follow_inval);
	f->gen = n->reject_gen;
	/* A write-only open (cp, > file, editors' saves) needs no page
	 * cache: its writes reach us straight from the writer's pages,
	 * without the kernel first copying them into pages of its own
	 * (64 MB of text: 45 ms instead of 70).  It cannot be mapped. */
	if ((flags & O_ACCMODE) == O_WRONLY)
		f->direct_io = true;
	if ((n->kind == N_MEMBER || n->kind == N_VIEW) && n->e &&
	    n->e->in_archive) {
		if (n->e->ext_gen != n->page_ext) {
			/* another program's version changed the content:
			 * this open drops the kernel's pages of the old one,
			 * unless a file opened before reads them */
			f->keep_cache = false;
			if (n->refs)
				f->direct_io = true;
			else
				n->page_ext = n->e->ext_gen;
		}
		f->snapped = true;
		f->snap_ext = n->e->ext_gen;
		if (n->kind == N_MEMBER) {
			f->snap = version_ref_tables(t->ver);
			f->snap_member = n->e->member;
		}
	}
	n->refs++;
	if (f->writable)
		n->wopens++;
	pthread_mutex_lock(&t->files_lock);
	f->fnext = t->files;
	if (t->files)
		t->files->fprev = f;
	t->files = f;
	pthread_mutex_unlock(&t->files_lock);
	*out = f;
	return 0;
}

/* Open node n.  t->lock held.  -EINPROGRESS: n's edit is frozen and
 * O_TRUNC would change it; wait for the change and retry. */
static int open_node(struct tree *t, struct node *n, int flags,
		     struct tree_file **out)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	int ret = 0;

	if (n->kind == N_DIR)
		return -EISDIR;
	if ((writable || (flags & O_TRUNC)) && t->opts.ro)
		return -EROFS;
	if (n->kind == N_VIEW && (writable || (flags & O_TRUNC)) &&
	    view_read_only(t, n))
		return -EACCES;
	if (n->kind == N_VIEW && !(flags & O_TRUNC)) {
		bool sized;

		pthread_mutex_lock(&n->e->lock);
		sized = n->e->vs[n->vk].sized;
		pthread_mutex_unlock(&n->e->lock);
		ret = view_ready(t, n->e, n->vk);
		if (ret)
			return ret;
		if (!sized)	/* stat said 0 for a big view: now it knows */
			inval_add_node(t, n);
	}
	pthread_mutex_lock(&n->lock);
	if ((flags & O_TRUNC) && n->frozen) {
		pthread_mutex_unlock(&n->lock);
		return -EINPROGRESS;
	}
	if (flags & O_TRUNC) {
		edit_claim(n, NULL);
		ret = edit_begin(t, n, true);
	}
	if (!ret)
		ret = file_new(t, n, flags, out);
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* tree_open with t->lock held (-EINPROGRESS: retry). */
static int open_locked(struct tree *t, const char *path, int flags,
		       struct tree_file **out)
{
	struct node *n = ns_lookup(t, path);

	return n ? open_node(t, n, flags, out) : -ENOENT;
}

/* Run fn with t->lock held (for writing when `write`), again after the
 * running change as long as it finds an edit frozen (-EINPROGRESS). */
static int open_retrying(struct tree *t, bool write,
			 int (*fn)(struct tree *, const char *, int,
				   struct tree_file **),
			 const char *path, int flags, struct tree_file **out)
{
	int ret;

	for (;;) {
		if (write)
			pthread_rwlock_wrlock(&t->lock);
		else
			pthread_rwlock_rdlock(&t->lock);
		ret = fn(t, path, flags, out);
		pthread_rwlock_unlock(&t->lock);
		if (ret != -EINPROGRESS)
			break;
		change_wait(t);
	}
	inval_flush(t, NULL);
	return ret;
}

bool tree_file_keep_cache(const struct tree_file *f)
{
	return f->keep_cache;
}

bool tree_file_direct_io(const struct tree_file *f)
{
	return f->direct_io;
}

int tree_open(struct tree *t, const char *path, int flags,
	      struct tree_file **out)
{
	follow_poke(t);
	return open_retrying(t, false, open_locked, path, flags, out);
}

/* -EEXIST when path is taken by a hidden node: -EPERM (reported) when that
 * is the hidden view of an array (objects; a CSV of a 3-d array).  t->lock
 * held. */
static int create_hidden(struct tree *t, const char *path)
{
	struct node *hidden = ns_find(t, path);
	const char *label;
	char msg[NPZ_ERR_MSG_MAX];
	struct npy_header hdr;
	bool objects = false;

	if (!hidden)
		return 0;
	if (hidden->kind != N_VIEW || !hidden->e)
		return -EEXIST;
	pthread_mutex_lock(&hidden->e->lock);
	if (!array_header(t, hidden->e, &hdr)) {
		objects = npy_dtype_has_object(&hdr.dtype);
		npy_header_release(&hdr);
	}
	pthread_mutex_unlock(&hidden->e->lock);
	label = view_kind(hidden->vk)->label;
	if (objects)
		snprintf(msg, sizeof(msg), "%s: %s is an object array, which has no %s view to write",
			 path + 1, hidden->e->mname, label);
	else
		snprintf(msg, sizeof(msg), "%s: %s has no %s view to write (the %s view has no form for its shape or dtype)",
			 path + 1, hidden->e->mname, label, label);
	npz_log("%s", msg);
	error_keep(&hidden->e->error, msg);
	return -EPERM;
}

/* tree_create with t->lock held for writing (-EINPROGRESS: retry). */
static int create_locked(struct tree *t, const char *path, int flags,
			 struct tree_file **out)
{
	struct node *n = ns_lookup(t, path), *parent;
	int ret;

	if (n)
		return flags & O_EXCL ? -EEXIST
				      : open_node(t, n, flags | O_TRUNC, out);
	ret = ns_parent_of(t, path, &parent);
	if (!ret)
		ret = create_hidden(t, path);
	if (!ret)
		ret = node_add_path(t, parent, path,
				    name_array_kind(path, t->opts.views) != NAME_OTHER ?
				    N_NEW : N_SCRATCH, &n);
	if (ret)
		return ret;
	n->mtime = time(NULL);
	pthread_mutex_lock(&n->lock);
	ret = edit_begin(t, n, true);
	if (!ret)
		ret = file_new(t, n, flags, out);
	pthread_mutex_unlock(&n->lock);
	if (ret)
		node_detach(t, n);
	return ret;
}

/* A create only adds a node: it takes t->lock, not the change lock, so
 * that a create (an editor's temporary file) does not wait for a commit
 * (the kernel would hold the directory meanwhile, and `ls` with it). */
int tree_create(struct tree *t, const char *path, int flags,
		struct tree_file **out)
{
	if (t->opts.ro)
		return -EROFS;
	return open_retrying(t, true, create_locked, path, flags, out);
}

ssize_t tree_write(struct tree *t, struct tree_file *f, const void *buf,
		   size_t len, uint64_t off)
{
	struct node *n = f->node;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	for (;;) {
		pthread_rwlock_rdlock(&t->lock);
		pthread_mutex_lock(&n->lock);
		if (!n->frozen)
			break;
		pthread_mutex_unlock(&n->lock);
		pthread_rwlock_unlock(&t->lock);
		change_wait(t);
	}
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

int tree_release(struct tree *t, struct tree_file *f)
{
	struct node *n = f->node;
	bool gone;
	int ret = 0;

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
	if (f->snap)
		version_put_tables(f->snap);
	inval_flush(t, NULL);
	if (gone)
		node_free(n);
	file_unlink(t, f);
	free(f);
	return ret;
}

void files_forget(struct tree *t)
{
	struct tree_file *f;

	while ((f = t->files)) {
		file_unlink(t, f);
		if (f->snap)
			version_put_tables(f->snap);
		free(f);
	}
}

int tree_truncate(struct tree *t, const char *path, struct tree_file *f,
		  uint64_t size)
{
	struct node *n;
	bool unopened;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	change_begin(t);
	n = f ? f->node : ns_lookup(t, path);
	if (!n) {
		ret = -ENOENT;
		goto out;
	}
	if (n->kind == N_DIR) {
		ret = -EISDIR;
		goto out;
	}
	if (n->kind == N_VIEW && view_read_only(t, n)) {
		ret = -EACCES;
		goto out;
	}
	if (n->kind == N_VIEW && !n->edit) {
		ret = view_ready(t, n->e, n->vk);
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
	unopened = n->wopens == 0;	/* release changes it under n->lock */
	pthread_mutex_unlock(&n->lock);
	/* A path truncate of a file nobody has open has no close to wait for. */
	if (!ret && !f && unopened) {
		ret = commit_node(t, n);
		pthread_mutex_lock(&n->lock);
		edit_end_if_idle(t, n);
		pthread_mutex_unlock(&n->lock);
	}
out:
	change_end(t);
	inval_flush(t, path);
	return ret;
}
