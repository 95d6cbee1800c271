/* follow.c - the mount follows its archive: another program's replacement
 * (a new inode at the path: write to a temporary file and rename), rewrite
 * in place (np.savez truncates and rewrites; zipfile's mode 'a' appends)
 * or removal is noticed and the new version loaded.
 *
 * Noticing: lookups, getattr, readdir and opens call follow_poke(), which
 * reads a coarse clock and, when the last check is FOLLOW_MS old, wakes
 * the follower thread (started on first use, after the daemon forked; all
 * signals blocked).  It stat()s the archive's path and compares (device,
 * inode, size, mtime, ctime) with t->seen, what the mount last accounted
 * for: no system call per request, one stat() per FOLLOW_MS at most, and
 * none on an idle mount.  Polling rather than inotify: it works on network
 * filesystems too, and a path that is a symlink needs nothing special.
 * Our own commits publish t->seen themselves (follow_published: fstat of
 * the new archive after its rename), so they are never taken for another
 * program's change; a stat() whose only difference is the ctime (chmod,
 * our rename) just updates t->seen.
 *
 * Loading: the new version is opened and indexed with no tree lock held
 * (archive_open_resolved: end record, central directory, libzip's cross
 * check); a version that does not open (numpy still writing it: no valid
 * end record yet) or that changed while it was indexed is not loaded: the
 * mount keeps the current one and retries at the next check.  Then, in a
 * change (change_begin: after any running commit, readers excluded only
 * while the entries are matched), the tree switches: entries are matched
 * to the new members by name; a member whose CRC, size or method differs
 * gets new content (a new content_tag and ext_gen, its view reset), one
 * that went is removed, a new one shown; the kernel's attributes and
 * pages of exactly those paths (and their directories) are invalidated by
 * the follower after the change.
 *
 * Snapshots: a file opened before the switch whose member changed or went
 * reads the version it opened (tree_file.snap holds a reference on it and
 * its tables); a view so changed fails with EIO (its text is gone).  When
 * the archive was rewritten in place, the old version's bytes are gone
 * too: the zip layer then fails its reads with EIO (ar_file_unchanged).
 *
 * Edits: an edit of a member that changed or went, or of a new array whose
 * name another program added, is marked stale: its commit fails with
 * ESTALE (logged, in user.npzfs.error), as does any commit that finds the
 * archive changed before the follower did.  Edits of unchanged members are
 * moved onto the new version and commit normally.
 *
 * Removal: the mount keeps showing the last version, open files read on
 * (the daemon holds the descriptor), commits fail with ESTALE (the zip
 * layer's identity check: nothing is written at the path).
 *
 * Locks: t->follow_lock is a leaf (the thread's wake-up); t->seen,
 * t->seen_gen and t->gone are under t->change_lock. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mount_internal.h"

#define FOLLOW_MS 200	/* at most one stat() of the archive this often */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Same inode, size, mtime and ctime. */
static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The same file with the same content, as the zip layer judges it (its
 * identity check before a commit and after reads: no ctime). */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int follow_init(struct tree *t)
{
	t->apath = strdup(archive_path(t->ar));
	if (!t->apath)
		return -ENOMEM;
	if (archive_fstat(t->ar, &t->seen))
		archive_identity(t->ar, &t->seen);
	return 0;
}

void follow_published(struct tree *t)
{
	if (archive_fstat(t->ar, &t->seen))
		archive_identity(t->ar, &t->seen);
	t->seen_gen++;
	t->gone = false;
}

bool follow_snapshot(const struct tree_file *f)
{
	return f->snapped && (!f->node->e || f->node->e->ext_gen != f->snap_ext);
}

/* ---- The switch ------------------------------------------------------ */

/* n's edit (if any) began before another program's change: its commit
 * must fail. */
static void mark_stale(struct node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	if (n->edit)
		n->stale = true;
	pthread_mutex_unlock(&n->lock);
}

/* Invalidate n's directory, once per run of nodes in one directory. */
static void inval_dir(struct tree *t, struct node *n, struct node **last)
{
	if (n && n->parent && n->parent != *last) {
		*last = n->parent;
		inval_add_node(t, n->parent);
	}
}

struct tally {
	size_t added, changed, removed;
};

/* Match the entries to nar's members (used[j]: member j has its entry);
 * mark the others doomed.  old is the version they were matched with. */
static void match_entries(struct tree *t, const struct archive *old,
			  const struct archive *nar, bool *used,
			  struct tally *n)
{
	struct node *last = NULL;

	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];
		const struct archive_member *om, *nm;
		size_t j;

		if (e->shadowed || !e->in_archive ||
		    archive_find(nar, e->mname, &j) || used[j]) {
			e->doomed = true;
			n->removed += !e->shadowed;
			continue;
		}
		used[j] = true;
		om = archive_member(old, e->member);
		nm = archive_member(nar, j);
		e->member = j;
		e->seq = j;
		if (om->crc != nm->crc || om->size != nm->size ||
		    om->method != nm->method) {
			n->changed++;
			e->ext_gen++;
			e->ext_at = t->ext_clock;
			e->content_tag = ++t->next_tag;
			entry_reset(t, e);
			free(e->error);
			e->error = NULL;
			mark_stale(e->raw);
			for (int k = 0; k < VIEW_KINDS; k++)
				mark_stale(e->view[k]);
		} else if (e->raw && e->raw->edit) {
			/* its edit moves onto the new version */
			pthread_mutex_lock(&e->raw->lock);
			edit_rebase(t, e->raw, false);
			pthread_mutex_unlock(&e->raw->lock);
		}
		if (om->crc == nm->crc && om->size == nm->size &&
		    om->method == nm->method && nm->mtime == e->mtime)
			continue;
		e->mtime = nm->mtime;
		if (e->raw) {
			e->raw->mtime = nm->mtime;
			inval_add_node(t, e->raw);
			inval_dir(t, e->raw, &last);
		}
		for (int k = 0; k < VIEW_KINDS; k++) {
			if (e->view[k]) {
				e->view[k]->mtime = nm->mtime;
				inval_add_node(t, e->view[k]);
			}
		}
	}
}

/* Take out d and the directories above it that the reload left empty
 * and without a "dir/" member of their own: another program removed
 * what was in them.  *last is forgotten (it may be one of them). */
static void prune_dirs(struct tree *t, struct node *d, struct node **last)
{
	while (d && d != t->root && d->kind == N_DIR && !d->nkids && !d->e) {
		struct node *up = d->parent;

		if (up)
			inval_add_node(t, up);
		node_detach(t, d);
		*last = NULL;
		d = up;
	}
}

/* Free the doomed entries, their nodes out of the namespace (files open
 * on them read their snapshot), and the directories they leave empty. */
static void drop_doomed(struct tree *t, struct buf *path)
{
	struct node *last = NULL;
	size_t keep = 0;
	bool is_dir;

	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];

		if (!e->doomed) {
			t->entries[keep++] = e;
			continue;
		}
		struct node *up = e->raw ? e->raw->parent : NULL;

		if (e->raw) {
			mark_stale(e->raw);
			inval_dir(t, e->raw, &last);
			node_detach(t, e->raw);
		}
		for (int k = 0; k < VIEW_KINDS; k++)
			mark_stale(e->view[k]);
		entry_detach_views(t, e);
		if (!e->raw && !e->shadowed &&
		    !name_member_path(e->mname, path, &is_dir) && is_dir) {
			/* a "dir/" member: its directory goes with it when
			 * nothing else is left in it */
			struct node *d = ns_find_len(t, path->data, path->len);

			if (d && d->e == e) {
				d->e = NULL;
				up = d;
			}
		}
		entry_free(e);
		prune_dirs(t, up, &last);
	}
	t->nentries = keep;
}

/* Show nar's members that no entry matched. */
static void add_new(struct tree *t, const struct archive *nar,
		    const bool *used, struct buf *path, struct tally *n)
{
	struct node *last = NULL;
	size_t count = archive_count(nar);

	for (size_t j = 0; j < count; j++) {
		const struct archive_member *m = archive_member(nar, j);
		struct entry *e;
		struct node *clash;
		bool is_dir;
		size_t k;

		if (used[j])
			continue;
		if (!m->nul_name && !archive_find(nar, m->name, &k) && k != j) {
			/* an earlier duplicate of a name: hidden, as at
			 * mount, and dropped at the next commit */
			e = entry_new(m->name);
			if (!e || entries_add(t, e)) {
				if (e)
					entry_free(e);
				continue;
			}
			e->in_archive = true;
			e->member = j;
			e->seq = j;
			e->shadowed = true;
			continue;
		}
		if (!m->nul_name && !name_member_path(m->name, path, &is_dir) &&
		    (clash = ns_find_len(t, path->data, path->len)) &&
		    clash->kind == N_NEW)
			mark_stale(clash);	/* a new array of that name */
		k = t->nentries;
		if (entries_add_member(t, j, path)) {
			npz_log("member '%s': out of memory, not shown",
				m->name);
			continue;
		}
		n->added++;
		if (t->nentries == k)
			continue;
		e = t->entries[k];
		e->ext_at = t->ext_clock;
		if (entry_add_view(t, e))
			npz_log("member '%s': out of memory, no view", m->name);
		if (e->raw) {
			inval_add_node(t, e->raw);
			inval_dir(t, e->raw, &last);
		}
	}
}

/* Switch the tree to nar, another program's version of the archive whose
 * path stat()ed as *st.  In a change.  Returns 0 (nar is the tree's), or
 * -ENOMEM (nothing changed; nar still the caller's). */
static int reload(struct tree *t, struct archive *nar, const struct stat *st)
{
	struct archive *old = t->ar;
	size_t count = archive_count(nar);
	struct buf path = BUF_INIT;
	struct tally n = { 0, 0, 0 };
	struct npz_err err = { "" };
	bool *used = calloc(count ? count : 1, sizeof(*used));

	if (!used || version_reserve(t, &err)) {
		free(used);
		return -ENOMEM;
	}
	version_publish(t, nar);	/* old's tables live until change_end */
	t->ext_clock++;
	match_entries(t, old, nar, used, &n);
	drop_doomed(t, &path);
	add_new(t, nar, used, &path, &n);
	t->next_seq = count;
	t->trim = true;
	atomic_store(&t->follow_inval, true);
	inval_add(t, "/");
	t->seen = *st;
	t->seen_gen++;
	t->gone = false;
	buf_release(&path);
	free(used);
	npz_log("%s: another program changed the archive: loaded its new version (%zu members: %zu new, %zu changed, %zu removed)",
		t->apath, count, n.added, n.changed, n.removed);
	return 0;
}

static bool follower_start(struct tree *t);

/* ---- A commit's rebase ---------------------------------------------- */

int follow_sync(struct tree *t, struct npz_err *err)
{
	struct stat sb, id, after;
	struct archive *nar;
	int ret;

	if (stat(t->apath, &sb)) {
		ret = -errno;
		if (ret == -ENOENT) {
			if (!t->gone)
				npz_log("%s: the archive was removed by another program: edits fail (ESTALE) and the archive is not re-created",
					t->apath);
			t->gone = true;
			npz_err_set(err, "%s: archive was removed by another program",
				    t->apath);
			return -ESTALE;
		}
		npz_err_set(err, "%s: %s", t->apath, strerror(-ret));
		return ret;
	}
	archive_identity(t->ar, &id);
	if (same_file(&sb, &id))
		return 0;	/* nothing to load: the caller retries */
	/* readers go on while it is indexed: we are in a change, nothing
	 * they rely on moves */
	pthread_rwlock_unlock(&t->lock);
	ret = archive_open_resolved(t->apath, &nar, err);
	if (!ret) {
		archive_identity(nar, &id);
		if (stat(t->apath, &after) || !same_file(&after, &id)) {
			archive_close(nar);
			npz_err_set(err, "%s: the archive changed while it was read",
				    t->apath);
			ret = -EAGAIN;
		}
	} else {
		ret = -EAGAIN;	/* still being written: not yet loadable */
	}
	pthread_rwlock_wrlock(&t->lock);
	if (ret)
		return ret;
	ret = reload(t, nar, &after);
	if (ret) {
		archive_close(nar);
		npz_err_set(err, "out of memory");
		return ret;
	}
	/* the follower sends the reload's invalidations and then lets opens
	 * keep their cache again (follow_inval) */
	pthread_mutex_lock(&t->follow_lock);
	if (!t->follow_stop && (t->follow_on || follower_start(t))) {
		t->follow_kick = true;
		pthread_cond_signal(&t->follow_cv);
	}
	pthread_mutex_unlock(&t->follow_lock);
	return 0;
}

/* ---- The check ------------------------------------------------------- */

/* Look at the archive's path; load another program's version.  On the
 * follower thread, no lock held. */
static void follow_check(struct tree *t)
{
	struct stat sb, id, after;
	struct npz_err err = { "" };
	struct archive *nar;
	uint64_t gen;
	int ret;

	/* after a running commit: what it published is in t->seen */
	pthread_mutex_lock(&t->change_lock);
	ret = stat(t->apath, &sb) ? -errno : 0;
	if (ret == -ENOENT && !t->gone)
		npz_log("%s: the archive was removed by another program: the mount keeps showing its last version and open files read on; edits fail (ESTALE) and the archive is not re-created",
			t->apath);
	if (ret == -ENOENT)
		t->gone = true;
	if (ret || same_stat(&sb, &t->seen)) {
		pthread_mutex_unlock(&t->change_lock);
		return;
	}
	archive_identity(t->ar, &id);
	if (same_file(&sb, &id)) {	/* only the ctime moved */
		t->seen = sb;
		t->seen_gen++;
		t->gone = false;
		pthread_mutex_unlock(&t->change_lock);
		return;
	}
	gen = t->seen_gen;
	pthread_mutex_unlock(&t->change_lock);

	/* index it with no lock held; a version still being written does
	 * not open, or changes while it is read: not loaded */
	ret = archive_open_resolved(t->apath, &nar, &err);
	if (!ret) {
		archive_identity(nar, &id);
		if (stat(t->apath, &after) || !same_file(&after, &id)) {
			archive_close(nar);
			npz_err_set(&err, "it changed while it was read");
			ret = -EAGAIN;
		}
	}
	if (ret) {
		if (!same_stat(&sb, &t->failed))
			npz_log("%s: another program changed the archive, but its new version cannot be loaded (yet: %s): the mount keeps the current one and retries",
				t->apath, err.msg[0] ? err.msg : strerror(-ret));
		t->failed = sb;
		return;
	}
	change_begin(t);
	if (t->seen_gen != gen || reload(t, nar, &after)) {
		/* a commit of ours came first (retry at the next check), or
		 * no memory */
		change_end(t);
		archive_close(nar);
		return;
	}
	change_end(t);
}

/* ---- The follower thread --------------------------------------------- */

static void *follower_main(void *arg)
{
	struct tree *t = arg;

	pthread_mutex_lock(&t->follow_lock);
	for (;;) {
		while (!t->follow_kick && !t->follow_stop)
			pthread_cond_wait(&t->follow_cv, &t->follow_lock);
		if (t->follow_stop)
			break;
		t->follow_kick = false;
		pthread_mutex_unlock(&t->follow_lock);
		follow_check(t);
		inval_flush(t, NULL);	/* no request of ours waits on it */
		atomic_store(&t->follow_inval, false);
		pthread_mutex_lock(&t->follow_lock);
	}
	pthread_mutex_unlock(&t->follow_lock);
	return NULL;
}

/* Start the follower, every signal blocked.  follow_lock held. */
static bool follower_start(struct tree *t)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&t->follower, NULL, follower_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	t->follow_on = !ret;
	if (ret) {
		npz_log("cannot start the thread that follows the archive: %s; changes by other programs are not noticed",
			strerror(ret));
		t->follow_stop = true;
	}
	return !ret;
}

void follow_poke(struct tree *t)
{
	int64_t now = now_ms();
	int64_t due = atomic_load_explicit(&t->follow_due,
					   memory_order_relaxed);

	if (now < due ||
	    !atomic_compare_exchange_strong(&t->follow_due, &due,
					    now + FOLLOW_MS))
		return;
	pthread_mutex_lock(&t->follow_lock);
	if (!t->follow_stop && (t->follow_on || follower_start(t))) {
		t->follow_kick = true;
		pthread_cond_signal(&t->follow_cv);
	}
	pthread_mutex_unlock(&t->follow_lock);
}

void follow_stop(struct tree *t)
{
	bool on;

	pthread_mutex_lock(&t->follow_lock);
	t->follow_stop = true;
	on = t->follow_on;
	t->follow_on = false;
	pthread_cond_signal(&t->follow_cv);
	pthread_mutex_unlock(&t->follow_lock);
	if (on)
		pthread_join(t->follower, NULL);
}
