/* commit.c - what a commit contains and what follows it: new content
 * checked or converted to npy, the change list handed to archive_commit(),
 * the new archive swapped in, the namespace updated, rejections reported.
 *  Invariant: a failed commit leaves the tree as it was before. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert.h"
#include "mount_internal.h"

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

/* What a commit writes: the entries that stay, in member order, and for
 * each its change (a copy of its member, or its pending content).  Built
 * under t->lock; archive_commit() reads only ch and the pending content. */
struct commit_plan {
	struct entry **list;
	struct archive_change *ch;
	size_t n;
	time_t now;
};

/* archive_change.read over a frozen (or private) wbuf: reading a
 * copy-on-write wbuf changes nothing, so threads may share it. */
static ssize_t wbuf_read_at(void *w, void *buf, size_t len, uint64_t off)
{
	return wbuf_pread(w, buf, len, off);
}

/* The written ranges of copy-on-write content w, as c's ranges (a new
 * array, freed by plan_free). */
static int written_ranges(const struct wbuf *w, struct archive_change *c)
{
	struct archive_range *r;
	uint64_t off = 0, len;
	size_t count = 0, i = 0;

	while (wbuf_next_written(w, &off, &len)) {
		count++;
		off += len;
	}
	r = malloc((count ? count : 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (off = 0; i < count && wbuf_next_written(w, &off, &len); i++) {
		r[i] = (struct archive_range){ off, len };
		off += len;
	}
	c->ranges = r;
	c->nranges = count;
	return 0;
}

static void plan_free(struct commit_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free((void *)p->ch[i].ranges);
	free(p->list);
	free(p->ch);
}

/* New content w of e as change c: a copy-on-write w is read as it is,
 * and when it is its base (e's member, as the tag says) with some pages
 * written, it is a patch of that member (stored, or SOZip: the zip layer
 * then recompresses only the chunks those pages touch).  t->lock held.  0 or -errno. */
static int plan_content(struct tree *t, struct entry *e,
			struct archive_change *c)
{
	struct wbuf *w = e->pending;
	const struct archive_member *m;

	c->method = method_for(t, e);
	if (!w->cow) {
		c->crc_known = wbuf_crc(w, &c->crc);
		c->fd = wbuf_fd(w);
		c->adopt = w->adoptable;
		return c->fd < 0 ? c->fd : 0;
	}
	c->fd = -1;
	c->read = wbuf_read_at;
	c->read_ctx = w;
	if (!wbuf_is_patch(w) || !e->in_archive ||
	    w->base.tag != e->content_tag)
		return 0;
	m = archive_member(t->ar, e->member);
	if (m->method != c->method || m->size != w->size ||
	    (m->method == ARCHIVE_DEFLATE &&
	     !archive_member_sozip(t->ar, e->member)) ||
	    (m->method != ARCHIVE_STORE && m->method != ARCHIVE_DEFLATE))
		return 0;
	c->patch = true;
	c->patch_of = e->member;
	return written_ranges(w, c);
}

/* Fill p (list and ch allocated for t->nentries + 1) from the entries that
 * are neither doomed nor shadowed.  t->lock held.  Returns 0, or a spill
 * file's -errno with err. */
static int commit_plan(struct tree *t, struct commit_plan *p,
		       struct npz_err *err)
{
	int ret;

	for (size_t i = 0; i < t->nentries; i++)
		if (!t->entries[i]->doomed && !t->entries[i]->shadowed)
			p->list[p->n++] = t->entries[i];
	qsort(p->list, p->n, sizeof(*p->list), seq_cmp);
	for (size_t i = 0; i < p->n; i++) {
		struct entry *e = p->list[i];
		struct archive_change *ch = p->ch;

		ch[i].name = e->mname;
		ch[i].from = -1;
		if (!e->pending) {
			ch[i].from = (ssize_t)e->member;
			continue;
		}
		ret = plan_content(t, e, &ch[i]);
		if (ret) {
			npz_err_set(err, "spill file: %s", strerror(-ret));
			return ret;
		}
		ch[i].size = e->pending->size;
		ch[i].level = t->opts.level;
		ch[i].mtime = p->now;
	}
	return 0;
}

/* After a commit: free the entries it left out (doomed, shadowed) and
 * detach their nodes.  t->lock held for writing. */
static void commit_drop_left_out(struct tree *t)
{
	size_t keep = 0;

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
			entry_detach_views(t, e);
			entry_free(e);
			continue;
		}
		t->entries[keep++] = e;
	}
	t->nentries = keep;
}

/* After a commit: the entries of p are the new archive's members, in that
 * order; those with pending content forget their old header and text
 * (the pending wbuf stays the caller's).  t->lock held for writing. */
static void commit_renumber(struct tree *t, const struct commit_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct entry *e = p->list[i];

		e->in_archive = true;
		e->member = i;
		e->seq = i;
		if (!e->pending && e->raw && e->raw->edit) {
			/* an edit over this unchanged member lets the old
			 * archive go */
			pthread_mutex_lock(&e->raw->lock);
			edit_rebase(t, e->raw, false);
			pthread_mutex_unlock(&e->raw->lock);
		}
		if (e->pending) {
			e->content_tag = ++t->next_tag;
			e->mtime = p->now;
			e->pending = NULL;	/* owned by the caller */
			entry_reset(t, e);
			if (e->raw) {
				e->raw->mtime = p->now;
				inval_add_node(t, e->raw);
			}
			for (int k = 0; k < VIEW_KINDS; k++) {
				if (e->view[k]) {
					e->view[k]->mtime = p->now;
					inval_add_node(t, e->view[k]);
				}
			}
		}
	}
	t->next_seq = p->n;
}

/* Write the archive anew from the entries (doomed ones left out, pending
 * content for the others that have it) and swap it in.  In a change:
 * t->lock is released while the archive is written.  On success doomed
 * entries are freed (their nodes detached) and pending content is dropped; on failure nothing in the tree changed and
 * the caller undoes its own preparations. */
int commit_archive(struct tree *t, struct npz_err *err)
{
	struct commit_plan p = { .now = time(NULL) };
	struct archive *nar;
	int ret;

	p.list = malloc((t->nentries + 1) * sizeof(*p.list));
	p.ch = calloc(t->nentries + 1, sizeof(*p.ch));
	if (!p.list || !p.ch) {
		free(p.list);
		free(p.ch);
		npz_err_set(err, "out of memory");
		return -ENOMEM;
	}
	ret = commit_plan(t, &p, err);
	if (!ret)
		ret = version_reserve(t, err);
	if (!ret) {
		/* readers go on meanwhile: we are in a change, so the entries,
		 * t->ar and the pending content stay as planned */
		pthread_rwlock_unlock(&t->lock);
		ret = archive_commit(t->ar, p.ch, p.n, &nar, err);
		pthread_rwlock_wrlock(&t->lock);
	}
	if (!ret) {
		version_publish(t, nar);
		follow_published(t);	/* not another program's change */
		commit_drop_left_out(t);
		commit_renumber(t, &p);
	}
	plan_free(&p);
	t->trim = true;		/* see release_free_memory() */
	return ret;
}

/* Report a rejected or failed write: log, keep in user.npzfs.error. */
void error_report(struct node *n, struct entry *e, const char *what,
		  int ret, const struct npz_err *err)
{
	char msg[NPZ_ERR_MSG_MAX + 64];

	snprintf(msg, sizeof(msg), "%s: %s", what,
		 err->msg[0] ? err->msg : strerror(-ret));
	npz_log("%s", msg);
	if (e)
		error_keep(&e->error, msg);
	else if (n)
		error_keep(&n->error, msg);
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
		error_report(n, NULL, path + 1, -EINVAL, err);
		return;
	}
	npz_log("%s", msg);
	free(n->error);
	n->error = msg;
}

/* Turn `content` (what was written to a file of `kind`: NAME_NPY or a view
 * kind) into the new bytes of array entry e: a view is parsed (e's current
 * array as the base), a .npy checked.  *npy is content itself or a new
 * wbuf (owned).  Returns 0 or -EINVAL with err. */
static int make_npy(struct tree *t, struct entry *e, int kind,
		    struct wbuf *content, struct wbuf **npy,
		    struct npz_err *err)
{
	const struct view_kind *vk = view_kind(kind);
	const struct npy_header *base = NULL;
	struct wbuf *out;
	int ret;

	if (kind == NAME_NPY) {
		*npy = content;
		return convert_check_npy(content, err);
	}
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;
	wbuf_init(out);
	out->adoptable = true;	/* npy_free() throws it away after the commit */
	if (e) {
		struct npy_header hdr;

		pthread_mutex_lock(&e->lock);
		if (e->in_archive && !array_header(t, e, &hdr))
			base = &hdr;
		pthread_mutex_unlock(&e->lock);
		ret = convert_view_to_npy(vk, content, base, out, err);
		if (base)
			npy_header_release(&hdr);
	} else {
		ret = convert_view_to_npy(vk, content, NULL, out, err);
	}
	if (ret) {
		wbuf_release(out);
		free(out);
		return ret;
	}
	*npy = out;
	return 0;
}

/* .npy wbufs being freed (npy_free), some on threads of their own */
static pthread_mutex_t releasing_lock = PTHREAD_MUTEX_INITIALIZER; /* protects:
					releasing; a leaf lock */
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
static int releasing;

static void *npy_release_main(void *arg)
{
	wbuf_release(arg);
	free(arg);
	pthread_mutex_lock(&releasing_lock);
	releasing--;
	pthread_cond_broadcast(&released);
	pthread_mutex_unlock(&releasing_lock);
	return NULL;
}

void commit_release_wait(void)
{
	pthread_mutex_lock(&releasing_lock);
	while (releasing)
		pthread_cond_wait(&released, &releasing_lock);
	pthread_mutex_unlock(&releasing_lock);
}

/* Free the .npy parsed from a .txt.  A big one's spill file is closed on
 * a thread of its own: dropping tens of MiB of page cache takes
 * milliseconds that the writer's close() would otherwise wait for. */
static void npy_free(struct wbuf *npy, struct wbuf *content)
{
	pthread_attr_t a;
	pthread_t th;
	bool bg = false;

	if (!npy || npy == content)
		return;
	pthread_mutex_lock(&releasing_lock);
	releasing++;
	pthread_mutex_unlock(&releasing_lock);
	if (npy->fd >= 0 && npy->size > WBUF_MEM_MAX &&
	    !pthread_attr_init(&a)) {
		bg = !pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) &&
		     !pthread_create(&th, &a, npy_release_main, npy);
		pthread_attr_destroy(&a);
	}
	if (!bg)
		npy_release_main(npy);
}

/* Show a newly committed array entry: its .npy node (reusing `n` when it
 * is the .npy path) and its views (reusing `n` when it is a view path). */
static int show_entry(struct tree *t, struct entry *e, struct node *n)
{
	int kind = n ? name_array_kind(n->name, t->opts.views) : NAME_OTHER;
	struct node *parent, *raw;
	char *path;
	int ret;

	if (kind == NAME_NPY) {
		n->kind = N_MEMBER;
		n->e = e;
		e->raw = n;
		return entry_add_view(t, e);
	}
	if (kind >= 0) {
		n->kind = N_VIEW;
		n->vk = kind;
		n->e = e;
		e->view[kind] = n;
	}
	if (e->raw)
		return 0;
	if (asprintf(&path, "/%s", e->mname) < 0)
		return -ENOMEM;
	ret = -EEXIST;
	if (!ns_find(t, path)) {
		ret = ns_parent_of(t, path, &parent);
		if (!ret)
			ret = node_add_path(t, parent, path, N_MEMBER, &raw);
		if (!ret) {
			raw->e = e;
			raw->mtime = e->mtime;
			e->raw = raw;
		}
	}
	free(path);
	if (!ret)
		ret = entry_add_view(t, e);
	return ret == -EEXIST ? 0 : ret;
}

/* Commit new content for the array or member at `path`.  `content` is what
 * was written (a view for a view path, bytes otherwise); target is the entry
 * it replaces, or NULL to add a new entry.  `n` is the node to show the
 * result through (or NULL).  In a change; content is frozen or private
 * (t->lock is released while it is parsed and committed).  Returns 0 or
 * -errno, with err set; on failure nothing changed. */
int commit_content(struct tree *t, const char *path,
		   struct entry *target, struct wbuf *content,
		   struct node *n, struct npz_err *err)
{
	int kind = target ? (target->is_array ? NAME_NPY : NAME_OTHER)
			  : name_array_kind(path, t->opts.views);
	struct entry *e = target;
	struct wbuf *npy = content;
	char *mname = NULL;
	bool added = false;
	int ret;

	if (target && n && n->kind == N_VIEW && n->e == target)
		kind = n->vk;
	if (!target && kind != NAME_OTHER) {
		mname = name_array_member(path);
		if (!mname)
			return -ENOMEM;
		e = entry_by_mname(t, mname);	/* a hidden member */
	}
	if (kind != NAME_OTHER) {
		/* parsing may take long: let readers in (we are in a change,
		 * nothing make_npy reads can change meanwhile) */
		pthread_rwlock_unlock(&t->lock);
		ret = make_npy(t, e, kind, content, &npy, err);
		pthread_rwlock_wrlock(&t->lock);
		if (ret)
			goto out;
	}
	if (!e) {
		e = entry_new(mname ? mname : name_member(path));
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
	ret = commit_archive(t, err);
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

/* n's commit is over (ret): n's edit is thawed; on success or rejection
 * it is no longer dirty.  n->lock held. */
static void commit_outcome(struct tree *t, struct node *n, const char *path,
			   int ret)
{
	edit_thaw(n);
	if (!ret) {
		n->dirty = false;
		free(n->error);
		n->error = NULL;
		if (n->e) {
			free(n->e->error);
			n->e->error = NULL;
		}
	} else if ((ret == -EINVAL || ret == -ESTALE) && n->kind != N_NEW) {
		/* rejected (or stale: another program changed the archive
		 * since the edit began; it fails again if retried): files
		 * opened from now on show the archive's array again; the
		 * files that wrote it may still finish their edit (a child
		 * closing a shared descriptor also flushes) */
		if (ret == -ESTALE)
			n->stale = true;
		n->dirty = false;
		n->rejected = true;
		n->reject_gen++;
		inval_add(t, path);
		edit_end_if_idle(t, n);
	} else if (ret == -EINVAL || ret == -ESTALE) {
		n->dirty = false;
	}
}

/* A copy of frozen (or private) content w in a new wbuf: 0 or -errno. */
static int content_copy(struct wbuf *w, struct wbuf **out)
{
	struct wbuf *c = malloc(sizeof(*c));
	size_t blen = 1u << 20;
	char *block = malloc(blen);
	uint64_t off = 0;
	int ret = c && block ? 0 : -ENOMEM;

	if (c)
		wbuf_init(c);
	while (!ret && off < w->size) {
		ssize_t r = wbuf_pread(w, block, blen, off);

		if (r <= 0) {
			ret = r ? (int)r : -EIO;
			break;
		}
		ret = wbuf_pwrite(c, block, (size_t)r, off);
		off += (uint64_t)r;
	}
	free(block);
	if (ret && c) {
		wbuf_release(c);
		free(c);
	}
	if (!ret)
		*out = c;
	return ret;
}

/* Keep w, the content of the edit at path whose commit lost to another
 * program's change, as the scratch file PATH.conflict (or PATH.conflict.K
 * when that name is busy): a scratch file already there without open
 * files is replaced.  t->lock held for writing, in a change.  Returns 0
 * with the scratch file's path in *out (free it), or -errno. */
static int keep_conflict(struct tree *t, const char *path, struct wbuf *w,
			 char **out)
{
	struct wbuf *copy;
	int ret = content_copy(w, &copy);

	if (ret)
		return ret;
	for (int k = 1; k <= 9; k++) {
		struct node *c, *parent;
		struct wbuf *old = NULL;
		char *cpath;

		if ((k == 1 ? asprintf(&cpath, "%s.conflict", path)
			    : asprintf(&cpath, "%s.conflict.%d", path, k)) < 0)
			break;
		c = ns_find(t, cpath);
		if (c && c->kind == N_SCRATCH) {
			pthread_mutex_lock(&c->lock);
			if (c->refs == 0 && !c->frozen) {
				old = c->edit;
				c->edit = copy;
				c->dirty = false;
				c->mtime = time(NULL);
				copy = NULL;
			}
			pthread_mutex_unlock(&c->lock);
			if (!copy) {
				if (old) {
					wbuf_release(old);
					free(old);
				}
				inval_add(t, cpath);
				*out = cpath;
				return 0;
			}
		} else if (!c && !ns_parent_of(t, cpath, &parent) &&
			   !node_add_path(t, parent, cpath, N_SCRATCH, &c)) {
			c->edit = copy;
			c->mtime = time(NULL);
			inval_add_node(t, parent);
			*out = cpath;
			return 0;
		}
		free(cpath);
	}
	wbuf_release(copy);
	free(copy);
	return -EEXIST;
}

/* Commit n's edit: when the archive turns out to be another program's
 * newer version (-ESTALE from the zip layer's identity check, under the
 * commit lock), load that version here (follow_sync: in this change, so
 * the follower waits; t->lock is released only while it is indexed),
 * which moves n's edit onto it when the other program did not change n's
 * member, or marks it stale when it did; then plan and try again, at most
 * REBASE_TRIES times.  No sleep: the commit lock serialises the writers,
 * so each try that fails means another commit landed meanwhile (only a
 * version another program is still writing, which does not load yet,
 * waits REBASE_WAIT_MS).  A stale edit is a conflict: -ESTALE, and the
 * content is kept as PATH.conflict.  t->lock held for writing. */
#define REBASE_WAIT_MS 10

void path_seen(struct tree *t, const char *path, struct seen_path *s)
{
	struct node *n = ns_lookup(t, path);

	*s = (struct seen_path){ NULL, 0, false };
	if (n && (n->kind == N_MEMBER || n->kind == N_VIEW) && n->e) {
		s->mname = strdup(n->e->mname);
		s->tag = n->e->content_tag;
		s->member = s->mname != NULL;
	}
}

void seen_release(struct seen_path *s)
{
	free(s->mname);
	s->mname = NULL;
}

static bool path_same(struct tree *t, const char *path,
		      const struct seen_path *s)
{
	struct seen_path now;
	bool same;

	path_seen(t, path, &now);
	same = now.member == s->member &&
	       (!s->member || (!strcmp(now.mname, s->mname) &&
			       now.tag == s->tag));
	seen_release(&now);
	return same;
}

/* After a load wait a little when the new version was not loadable yet
 * (t->lock released meanwhile).  Returns 0 or follow_sync's error. */
static int sync_once(struct tree *t, struct npz_err *err)
{
	int ret = follow_sync(t, err);

	if (ret == -EAGAIN) {
		struct timespec ts = { 0, REBASE_WAIT_MS * 1000000L };

		pthread_rwlock_unlock(&t->lock);
		nanosleep(&ts, NULL);
		pthread_rwlock_wrlock(&t->lock);
		ret = 0;
	}
	return ret;
}

int rebase_paths(struct tree *t, const char *p1, const struct seen_path *s1,
		 const char *p2, const struct seen_path *s2)
{
	struct npz_err err = { "" };
	int ret = sync_once(t, &err);

	if (ret) {
		npz_log("%s", err.msg);
		return ret;
	}
	if (!path_same(t, p1, s1) || (p2 && !path_same(t, p2, s2))) {
		npz_log("%s: another program changed the archive's member there: not replayed (ESTALE)",
			(p2 && !path_same(t, p2, s2) ? p2 : p1) + 1);
		return -ESTALE;
	}
	npz_log("%s: replayed on another program's version of the archive",
		(p2 ? p2 : p1) + 1);
	return -EAGAIN;
}

static int commit_rebasing(struct tree *t, struct node *n, const char *path,
			   struct wbuf *w, bool stale, struct npz_err *err)
{
	struct npz_err serr = { "" };
	char *cpath = NULL;
	int ret = 0, sret;

	for (int tries = 0; ; tries++) {
		if (stale) {
			npz_err_set(err, "another program changed the archive's %s since this edit began: the edit is not committed",
				    path + 1);
			ret = -ESTALE;
			break;
		}
		ret = commit_content(t, path, n->kind == N_NEW ? NULL : n->e,
				     w, n, err);
		if (ret != -ESTALE || tries + 1 >= REBASE_TRIES)
			break;
		sret = sync_once(t, &serr);
		if (sret) {
			*err = serr;
			ret = sret;
			break;
		}
		pthread_mutex_lock(&n->lock);
		stale = n->stale;
		pthread_mutex_unlock(&n->lock);
	}
	if (ret != -ESTALE)
		return ret;
	/* lost to another program: nothing of this side is dropped */
	sret = keep_conflict(t, path, w, &cpath);
	if (!sret) {
		size_t len = strlen(err->msg);

		snprintf(err->msg + len, sizeof(err->msg) - len,
			 "; its content is kept in %s", cpath + 1);
		free(cpath);
	} else if (sret == -EIO) {
		size_t len = strlen(err->msg);

		/* a copy-on-write edit whose base file was rewritten */
		snprintf(err->msg + len, sizeof(err->msg) - len,
			 "; its content could not be kept: the archive was rewritten in place, and the bytes this edit did not write are gone");
	} else {
		size_t len = strlen(err->msg);

		snprintf(err->msg + len, sizeof(err->msg) - len,
			 "; its content could not be kept as %s.conflict (name busy or no memory)",
			 path + 1);
	}
	if (n->kind == N_NEW && !n->dead) {
		/* another program added an array of this name: show its */
		char *mname = name_array_member(path);
		struct entry *e = mname ? entry_by_mname(t, mname) : NULL;

		free(mname);
		if (e && !e->raw) {
			node_detach(t, n);
			show_entry(t, e, NULL);
			error_keep(&e->error, err->msg);
		}
	}
	return ret;
}

/* Commit n's edit if it was written since its last commit.  In a change,
 * n->lock not held.  The edit is frozen meanwhile: readers of n read it,
 * writers of n wait for the end of the change. */
int commit_node(struct tree *t, struct node *n)
{
	struct npz_err err = { "" };
	struct wbuf *w;
	char *path;
	bool stale, gone;
	int ret;

	pthread_mutex_lock(&n->lock);
	if (!n->dirty || n->dead || n->kind == N_SCRATCH || !n->edit) {
		if (n->kind == N_SCRATCH)
			n->dirty = false;
		pthread_mutex_unlock(&n->lock);
		return 0;
	}
	path = node_path_dup(n);
	ret = path ? edit_freeze(n) : -ENOMEM;
	w = n->edit;
	stale = n->stale;
	n->refs++;	/* a reload may detach n meanwhile */
	pthread_mutex_unlock(&n->lock);
	if (!ret)
		ret = commit_rebasing(t, n, path, w, stale, &err);
	pthread_mutex_lock(&n->lock);
	if (!ret)	/* the archive holds the edit: it is the new base */
		edit_rebase(t, n, true);
	if (path)
		commit_outcome(t, n, path, ret);
	n->refs--;
	gone = n->dead && n->refs == 0;
	pthread_mutex_unlock(&n->lock);
	if (path && ret == -EINVAL && n->kind == N_NEW)
		report_new_rejected(n, path, &err);
	else if (path && ret)
		error_report(n, n->e, path + 1, ret, &err);
	free(path);
	if (gone)
		node_free(n);
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
int commit_file(struct tree *t, struct tree_file *f, bool any)
{
	int ret;

	if (!(any || f->wrote) || !node_dirty(f->node))
		return 0;
	change_begin(t);
	ret = commit_node(t, f->node);
	change_end(t);
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
