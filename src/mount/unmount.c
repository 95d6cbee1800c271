/* unmount.c - the last commit: dirty files, scratch files stored as
 * plain members, rejected new arrays stored as NAME.rejected.
 *  Invariant: hidden names and backups ending in '~' are never stored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Store scratch file n at path as a plain member; when another program's
 * version has a member of that name (a reload at unmount), under
 * NAME.K.  Sets *store.  0 or -ENOMEM. */
static int store_scratch(struct tree *t, struct node *n, const char *path,
			 bool *store)
{
	const char *mname = name_member(path);
	char *alt = NULL;

	for (int k = 2; entry_by_mname(t, mname) && k < 100; k++) {
		free(alt);
		if (asprintf(&alt, "%s.%d", name_member(path), k) < 0)
			return -ENOMEM;
		mname = alt;
	}
	if (entry_by_mname(t, mname)) {
		npz_log("%s: scratch file dropped: the archive has members of its names",
			path + 1);
		free(alt);
		return 0;
	}
	if (alt)
		npz_log("%s: the archive has a member of that name: the scratch file is stored as %s",
			path + 1, alt);
	if (store_as(t, mname, n->edit)) {
		free(alt);
		return -ENOMEM;
	}
	free(alt);
	*store = true;
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
	return store_scratch(t, n, path->data, store);
}

/* Drop the entries store_as added (the nodes keep their content). */
static void unstore(struct tree *t, uint64_t next_seq)
{
	size_t keep = 0;

	for (size_t i = 0; i < t->nentries; i++) {
		struct entry *e = t->entries[i];

		if (e->pending && !e->in_archive) {
			e->pending = NULL;	/* its node's */
			entry_free(e);
			continue;
		}
		t->entries[keep++] = e;
	}
	t->nentries = keep;
	t->next_seq = next_seq;
}

/* One try of the unmount's work: commit dirty files, store scratch files.
 * In the change.  0 or -errno with err. */
static int unmount_try(struct tree *t, struct npz_err *err)
{
	struct buf path = BUF_INIT;
	struct node **nodes;
	uint64_t next_seq = t->next_seq;
	size_t nn = 0;
	bool store = false;
	int ret = 0;

	nodes = malloc((t->count + 1) * sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct node *n = t->buckets[b]; n; n = n->hnext)
			nodes[nn++] = n;
	for (size_t i = 0; !ret && i < nn; i++)
		ret = unmount_node(t, nodes[i], &path, &store);
	if (!ret && store)
		ret = commit_archive(t, err);
	if (ret && store)
		unstore(t, next_seq);
	free(nodes);
	buf_release(&path);
	return ret;
}

/* The unmount's commit, rebased like any other (commit.c): when another
 * program changed the archive meanwhile, its version is loaded and the
 * scratch files are stored on top of it. */
#define UNMOUNT_TRIES 20

int tree_unmount(struct tree *t)
{
	struct npz_err err = { "" }, serr = { "" };
	int ret = 0, sret;

	follow_stop(t);		/* no reload from now on but ours */
	change_begin(t);
	for (int tries = 0; ; tries++) {
		ret = unmount_try(t, &err);
		if (ret != -ESTALE || tries + 1 >= UNMOUNT_TRIES)
			break;
		sret = follow_sync(t, &serr);
		if (sret == -EAGAIN) {
			struct timespec ts = { 0, 10 * 1000000L };

			pthread_rwlock_unlock(&t->lock);
			nanosleep(&ts, NULL);
			pthread_rwlock_wrlock(&t->lock);
		} else if (sret) {
			err = serr;
			ret = sret;
			break;
		}
	}
	if (ret)
		npz_log("storing scratch files failed, they are lost: %s",
			err.msg[0] ? err.msg : strerror(-ret));
	change_end(t);
	return ret;
}
