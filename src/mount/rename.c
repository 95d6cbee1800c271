/* rename.c - namespace changes: unlink, rename, mkdir, rmdir; the rules of
 * scratch files (any created name that is not NAME.npy or a view name).
 *  Invariant: a change of array names commits at once; when the commit
 *  fails the mount is as it was. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mount_internal.h"

/* Remove entry e from the archive (and its nodes from the mount). */
static int remove_entry(struct tree *t, struct entry *e)
{
	struct npz_err err = { "" };
	int ret;

	e->doomed = true;
	ret = commit_archive(t, &err);
	if (ret) {
		e->doomed = false;
		error_report(NULL, NULL, e->mname, ret, &err);
	}
	return ret;
}

/* Remember that the file at path went away with its array, so that its own
 * unlink (rm x.npy x.txt x.csv, rm -r) succeeds.  t->lock held for
 * writing. */
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

/* The paths of n's siblings, the other files of its entry (NAME.npy and
 * the views), into spaths[VIEW_KINDS + 1] (NULL where none): 0 or
 * -ENOMEM. */
static int sibling_paths(struct node *n, char **spaths)
{
	struct entry *e = n->e;

	for (int k = 0; k <= VIEW_KINDS; k++) {
		struct node *s = k < VIEW_KINDS ? e->view[k] : e->raw;

		spaths[k] = NULL;
		if (s && s != n && !(spaths[k] = node_path_dup(s)))
			return -ENOMEM;
	}
	return 0;
}

/* One try of an unlink, in the change. */
static int unlink_once(struct tree *t, const char *path)
{
	char *spaths[VIEW_KINDS + 1] = { NULL };
	struct node *n;
	int ret = 0;

	n = ns_lookup(t, path);
	if (!n) {
		ret = tomb_take(t, path) ? 0 : -ENOENT;
	} else if (n->kind == N_DIR) {
		ret = -EISDIR;
	} else if (n->kind == N_MEMBER || n->kind == N_VIEW) {
		ret = sibling_paths(n, spaths);
		if (!ret)
			ret = remove_entry(t, n->e);
		for (int k = 0; k <= VIEW_KINDS; k++) {
			if (!ret && spaths[k])
				tomb_add(t, spaths[k]);
			free(spaths[k]);
		}
	} else {
		node_detach(t, n);
	}
	return ret;
}

/* An unlink whose commit found the archive changed by another program is
 * replayed on its new version, unless the other program changed that
 * member (a conflict: -ESTALE, the member stays with its content). */
int tree_unlink(struct tree *t, const char *path)
{
	int ret;

	if (t->opts.ro)
		return -EROFS;
	change_begin(t);
	for (int tries = 0; ; tries++) {
		struct seen_path a;

		path_seen(t, path, &a);
		ret = unlink_once(t, path);
		if (ret == -ESTALE && tries + 1 < REBASE_TRIES)
			ret = rebase_paths(t, path, &a, NULL, NULL);
		seen_release(&a);
		if (ret != -EAGAIN)
			break;
	}
	change_end(t);
	inval_flush(t, NULL);
	return ret;
}

/* What a node shows now, as a new wbuf (for moving a view's text out to a
 * scratch file).  t->lock held. */
static int node_copy(struct tree *t, struct node *n, struct wbuf **out)
{
	int ret;

	if (n->kind == N_VIEW && !n->edit) {
		ret = view_ready(t, n->e, n->vk);
		if (ret)
			return ret;
	}
	pthread_mutex_lock(&n->lock);
	ret = node_snapshot(t, n, out);
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* Make a scratch file at path holding content (ownership taken on success). */
static int scratch_add(struct tree *t, const char *path, struct wbuf *content)
{
	struct node *parent, *s;
	int ret = ns_parent_of(t, path, &parent);

	if (!ret)
		ret = node_add_path(t, parent, path, N_SCRATCH, &s);
	if (ret)
		return ret;
	s->edit = content;
	s->mtime = time(NULL);
	return 0;
}

/* Commit entry e under the new member name mname (a new string, taken
 * over on success) and kind is_array, leaving victim (another entry of that
 * name, or NULL) out.  On failure e and victim are as they were, mname is
 * freed, and the error is reported against path `to`. */
static int commit_renamed(struct tree *t, struct entry *e, char *mname,
			  bool is_array, struct entry *victim, const char *to)
{
	struct npz_err err = { "" };
	char *old = e->mname;
	bool was_array = e->is_array;
	int ret;

	if (victim)
		victim->doomed = true;
	e->mname = mname;
	e->is_array = is_array;
	ret = commit_archive(t, &err);
	if (ret) {
		e->mname = old;
		e->is_array = was_array;
		if (victim)
			victim->doomed = false;
		free(mname);
		error_report(NULL, e, to + 1, ret, &err);
		return ret;
	}
	free(old);
	return 0;
}

/* Rename array entry e to the array named by path `to` (NAME.npy or a
 * view name): the entry's member becomes NAME.npy, replacing any other
 * entry of that name. */
static int rename_array(struct tree *t, struct entry *e, const char *to)
{
	char *mname = name_array_member(to);
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
	ret = ns_parent_of(t, to, &parent);
	if (ret) {
		free(mname);
		return ret;
	}
	victim = entry_by_mname(t, mname);
	ret = commit_renamed(t, e, mname, e->is_array, victim, to);
	if (ret)
		return ret;
	/* move the nodes: NAME.npy, and the view if its path is free */
	if (asprintf(&path, "/%s", mname) < 0)
		return -ENOMEM;
	entry_detach_views(t, e);
	ret = 0;
	if (e->raw) {
		struct node *clash = ns_find(t, path);

		if (clash && clash != e->raw)
			node_detach(t, clash);
		ret = node_move(t, e->raw, parent, path);
	}
	free(path);
	for (int k = 0; !ret && k < VIEW_KINDS; k++) {
		struct node *clash;

		if (!view_on(t, k))
			continue;
		path = name_with_view(to, k);
		if (!path)
			return -ENOMEM;
		clash = ns_find(t, path);
		if (clash && (clash->kind == N_NEW || clash->kind == N_SCRATCH))
			node_detach(t, clash);
		free(path);
	}
	return ret ? ret : entry_add_view(t, e);
}

/* Rename member entry e (shown by node n) to the plain or array name `to`. */
static int rename_member(struct tree *t, struct node *n, const char *to,
			 struct node *dst)
{
	struct entry *e = n->e, *victim = dst ? dst->e : NULL;
	bool dst_scratch = dst && (dst->kind == N_NEW || dst->kind == N_SCRATCH);
	struct node *parent;
	char *mname = strdup(name_member(to));
	int ret;

	if (!mname)
		return -ENOMEM;
	ret = ns_parent_of(t, to, &parent);
	if (ret) {
		free(mname);
		return ret;
	}
	ret = commit_renamed(t, e, mname, name_ends_with(mname, ".npy"),
			     victim != e ? victim : NULL, to);
	if (ret)
		return ret;
	if (dst_scratch)
		node_detach(t, dst);
	entry_detach_views(t, e);
	entry_reset(t, e);
	ret = node_move(t, n, parent, to);
	if (!ret)
		ret = entry_add_view(t, e);
	return ret;
}

/* Commit the content of created file src onto the array or member at `to`
 * (dst: its node, or NULL).  src may be open for writing: its edit is
 * frozen meanwhile. */
static int commit_created(struct tree *t, struct node *src, const char *to,
			  struct node *dst, struct npz_err *err)
{
	int ret;

	pthread_mutex_lock(&src->lock);
	ret = edit_freeze(src);
	pthread_mutex_unlock(&src->lock);
	if (ret)
		return ret;
	ret = commit_content(t, to, dst ? dst->e : NULL, src->edit, dst, err);
	pthread_mutex_lock(&src->lock);
	edit_thaw(src);
	pthread_mutex_unlock(&src->lock);
	return ret;
}

/* Rename a created file src (N_NEW, N_SCRATCH) to `to`: its content is
 * committed onto an array or member, or it moves as a scratch file. */
static int rename_created(struct tree *t, struct node *src, struct node *dst,
			  struct node *parent, const char *to)
{
	struct npz_err err = { "" };
	int ret;

	if (dst && dst->kind == N_VIEW && view_read_only(t, dst)) {
		return -EACCES;
	} else if (dst && (dst->kind == N_MEMBER || dst->kind == N_VIEW)) {
		ret = commit_created(t, src, to, dst, &err);
	} else if (name_array_kind(to, t->opts.views) != NAME_OTHER) {
		if (dst)
			node_detach(t, dst);
		ret = commit_created(t, src, to, NULL, &err);
	} else {
		if (dst)
			node_detach(t, dst);
		ret = node_move(t, src, parent, to);
		if (!ret)
			src->kind = N_SCRATCH;
		return ret;
	}
	if (ret) {
		error_report(src, NULL, to + 1, ret, &err);
		if (ret == -EINVAL && dst && dst->e)
			error_keep(&dst->e->error, src->error);
	} else {
		node_detach(t, src);
	}
	return ret;
}

/* Rename the view src to `to`: an array name renames the array; any other
 * name gets the view's bytes (as a member's content, or as a scratch file)
 * while the array stays. */
static int rename_view(struct tree *t, struct node *src, struct node *dst,
		       const char *to)
{
	struct npz_err err = { "" };
	struct wbuf *text;
	int ret;

	if (name_array_kind(to, t->opts.views) != NAME_OTHER &&
	    !(dst && dst->kind == N_MEMBER && !dst->e->is_array))
		return rename_array(t, src->e, to);
	/* the text moves out to a scratch file; the array stays */
	ret = node_copy(t, src, &text);
	if (ret)
		return ret;
	if (dst && dst->kind == N_MEMBER) {
		ret = commit_content(t, to, dst->e, text, dst, &err);
		if (ret)
			error_report(dst, dst->e, to + 1, ret, &err);
		wbuf_release(text);
		free(text);
		return ret;
	}
	if (dst)
		node_detach(t, dst);
	ret = scratch_add(t, to, text);
	if (ret) {
		wbuf_release(text);
		free(text);
	}
	return ret;
}

/* A rename lost to another program's change: a created file that was to
 * become the array at `to` is kept as TO.conflict (its content as
 * written); the reason is in the log and user.npzfs.error.  True when it
 * was moved there. */
static bool rename_conflict(struct tree *t, const char *from, const char *to)
{
	struct node *src = ns_lookup(t, from), *dst, *parent;
	bool kept = false;
	char *cpath;

	if (!src || (src->kind != N_NEW && src->kind != N_SCRATCH) ||
	    name_array_kind(to, t->opts.views) == NAME_OTHER ||
	    asprintf(&cpath, "%s.conflict", to) < 0)
		return false;
	dst = ns_lookup(t, cpath);
	if ((!dst || dst->kind == N_SCRATCH) &&
	    !ns_parent_of(t, cpath, &parent)) {
		if (dst && dst != src)
			node_detach(t, dst);
		if (!node_move(t, src, parent, cpath)) {
			kept = true;
			src->kind = N_SCRATCH;
			inval_add(t, from);	/* the kernel did not move it */
			npz_log("%s: another program changed the archive's %s: %s is kept as %s",
				to + 1, to + 1, from + 1, cpath + 1);
			dst = ns_lookup(t, to);
			if (dst && dst->e) {
				char msg[NPZ_ERR_MSG_MAX];

				snprintf(msg, sizeof(msg), "%s: another program changed it: the renamed content is kept in %s",
					 to + 1, cpath + 1);
				error_keep(&dst->e->error, msg);
			}
		}
	}
	free(cpath);
	return kept;
}

/* A file created before another program changed the member at `to`
 * (sed -i's temporary file, written from what the view showed then) would
 * overwrite that change unseen: a conflict.  In the change. */
static bool created_outrun(struct tree *t, const char *from, const char *to)
{
	struct node *src = ns_lookup(t, from), *dst = ns_lookup(t, to);

	return src && dst && dst->e &&
	       (src->kind == N_NEW || src->kind == N_SCRATCH) &&
	       (dst->kind == N_MEMBER || dst->kind == N_VIEW) &&
	       dst->e->ext_at > src->born_ext;
}

/* One try of a rename, in the change. */
static int rename_once(struct tree *t, const char *from, const char *to,
		       unsigned int flags)
{
	struct node *src, *dst, *parent;
	int ret = 0;

	src = ns_lookup(t, from);
	dst = ns_lookup(t, to);
	if (!src)
		return -ENOENT;
	if (src == dst || !strcmp(from, to))
		return 0;
	if (dst && (flags & 1u))
		return -EEXIST;
	ret = ns_parent_of(t, to, &parent);
	if (ret)
		return ret;
	if (src->kind == N_DIR)
		return -EXDEV;	/* mv copies a directory, then removes it */
	if (dst && dst->kind == N_DIR)
		return -EISDIR;
	switch (src->kind) {
	case N_NEW:
	case N_SCRATCH:
		ret = rename_created(t, src, dst, parent, to);
		break;
	case N_VIEW:
		ret = rename_view(t, src, dst, to);
		break;
	case N_MEMBER:
		if (src->e->is_array &&
		    name_array_kind(to, t->opts.views) != NAME_OTHER &&
		    !(dst && dst->kind == N_MEMBER && !dst->e->is_array)) {
			ret = rename_array(t, src->e, to);
			break;
		}
		ret = rename_member(t, src, to, dst);
		break;
	case N_DIR:
		break;
	}
	return ret;
}

/* A rename's commit that found the archive changed by another program
 * (-ESTALE) is replayed on its new version (path_seen / path_same: when
 * the other side changed neither path's member) as commits are
 * (commit.c); else it is a conflict: -ESTALE, and a created file that was
 * to become an array is kept as TO.conflict, and then the error is
 * -EBUSY: Linux tries a rename that failed with ESTALE once more, which
 * would find `from` gone and say ENOENT. */
int tree_rename(struct tree *t, const char *from, const char *to,
		unsigned int flags)
{
	int ret;

	if (t->opts.ro)
		return -EROFS;
	if (flags & ~1u)	/* only RENAME_NOREPLACE */
		return -EINVAL;
	change_begin(t);
	if (created_outrun(t, from, to)) {
		npz_log("%s: another program changed the archive's member there after %s was created: not renamed (ESTALE)",
			to + 1, from + 1);
		ret = -ESTALE;
		goto conflict;
	}
	for (int tries = 0; ; tries++) {
		struct seen_path a, b;

		path_seen(t, from, &a);
		path_seen(t, to, &b);
		ret = rename_once(t, from, to, flags);
		if (ret == -ESTALE && tries + 1 < REBASE_TRIES)
			ret = rebase_paths(t, from, &a, to, &b);
		seen_release(&a);
		seen_release(&b);
		if (ret != -EAGAIN)
			break;
		if (tries == 0) {	/* the first try's error was not final */
			struct node *d = ns_lookup(t, to);

			if (d && d->e) {
				free(d->e->error);
				d->e->error = NULL;
			}
		}
	}
conflict:
	if (ret == -ESTALE && rename_conflict(t, from, to))
		ret = -EBUSY;
	change_end(t);
	inval_flush(t, NULL);
	return ret;
}

int tree_mkdir(struct tree *t, const char *path)
{
	struct node *n, *parent;
	int ret;

	if (t->opts.ro)
		return -EROFS;
	pthread_rwlock_wrlock(&t->lock);	/* adds a node: see tree_create */
	if (ns_find(t, path))
		ret = -EEXIST;
	else
		ret = ns_parent_of(t, path, &parent);
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
	change_begin(t);
	n = ns_find(t, path);
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
			n = ns_find(t, path);
	}
	if (!ret && n)
		node_detach(t, n);
	change_end(t);
	inval_flush(t, NULL);
	return ret;
}
