/* unmount.c - the last commit: dirty files, scratch files stored as
 * plain members, rejected new arrays stored as NAME.rejected.
 *  Invariant: hidden names and backups ending in '~' are never stored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "mount_internal.h"

/* Add an entry for member mname whose content is `content` (still owned
 * by its node), to be written by the unmount's commit: 0 or -ENOMEM. */
static int store_as(struct tree *t, const char *mname, struct wbuf *content)
{
	struct entry *e = entry_new(mname);

	if (!e || entries_add(t, e)) {
		if (e)
			entry_free(e);
		return -ENOMEM;
	}
	e->seq = t->next_seq++;
	e->pending = content;
	return 0;
}

/* A new array n at path whose content was rejected (or failed): kept
 * under another name, as a plain member, unless that name is taken.
 * Sets *store when it is to be stored.  0 or -ENOMEM. */
static int store_rejected(struct tree *t, struct node *n, const char *path,
			  bool *store)
{
	char *rname;

	if (asprintf(&rname, "%s.rejected", path) < 0)
		return -ENOMEM;
	if (ns_find(t, rname) || entry_by_mname(t, name_member(rname))) {
		npz_log("%s: rejected content dropped: %s exists", path + 1,
			rname + 1);
		free(rname);
		return 0;
	}
	if (store_as(t, name_member(rname), n->edit)) {
		free(rname);
		return -ENOMEM;
	}
	npz_log("%s: rejected content stored as member %s", path + 1,
		rname + 1);
	*store = true;
	free(rname);
	return 0;
}

/* The unmount's work for node n: commit it when dirty; a created file
 * that is to be kept gets an entry with its content (*store set).
 * path is scratch space.  0 or -ENOMEM. */
static int unmount_node(struct tree *t, struct node *n, struct buf *path,
			bool *store)
{
	if (n->kind == N_MEMBER || n->kind == N_VIEW) {
		if (n->dirty)
			commit_node(t, n);
		return 0;
	}
	if (n->kind != N_NEW && n->kind != N_SCRATCH)
		return 0;
	if (n->kind == N_NEW && n->dirty)
		commit_node(t, n);	/* written after its last close */
	buf_reset(path);
	if (node_path(n, path))
		return -ENOMEM;
	if (n->kind == N_NEW && (!n->error || !n->edit)) {
		npz_log("%s: created but never written, not stored",
			path->data + 1);
		return 0;
	}
	if (n->kind == N_NEW)
		return store_rejected(t, n, path->data, store);
	if (name_is_backup(n->name)) {
		npz_log("%s: editor scratch file, dropped", path->data + 1);
		return 0;
	}
	if (store_as(t, name_member(path->data), n->edit))
		return -ENOMEM;
	*store = true;
	return 0;
}

int tree_unmount(struct tree *t)
{
	struct npz_err err = { "" };
	struct buf path = BUF_INIT;
	struct node **nodes;
	size_t nn = 0;
	bool store = false;
	int ret = 0;

	follow_stop(t);		/* no reload from now on */
	change_begin(t);
	nodes = malloc((t->count + 1) * sizeof(*nodes));
	if (!nodes) {
		change_end(t);
		return -ENOMEM;
	}
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct node *n = t->buckets[b]; n; n = n->hnext)
			nodes[nn++] = n;
	for (size_t i = 0; !ret && i < nn; i++)
		ret = unmount_node(t, nodes[i], &path, &store);
	if (!ret && store) {
		ret = commit_archive(t, &err);
		if (ret)
			npz_log("storing scratch files failed, they are lost: %s",
				err.msg);
	}
	free(nodes);
	buf_release(&path);
	change_end(t);
	return ret;
}
