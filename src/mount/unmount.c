/* unmount.c - the last commit: dirty files, scratch files stored as
 * plain members, rejected new arrays stored as NAME.rejected.
 *  Invariant: hidden names and backups ending in '~' are never stored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "mount_internal.h"

int tree_unmount(struct tree *t)
{
	struct npz_err err = { "" };
	struct buf path = BUF_INIT;
	struct node **nodes;
	size_t nn = 0;
	bool store = false;
	int ret = 0;

	pthread_rwlock_wrlock(&t->lock);
	nodes = malloc((t->count + 1) * sizeof(*nodes));
	if (!nodes) {
		pthread_rwlock_unlock(&t->lock);
		return -ENOMEM;
	}
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct node *n = t->buckets[b]; n; n = n->hnext)
			nodes[nn++] = n;
	for (size_t i = 0; i < nn; i++) {
		struct node *n = nodes[i];
		struct entry *e;

		if (n->kind == N_MEMBER || n->kind == N_VIEW) {
			if (n->dirty)
				commit_node(t, n);
			continue;
		}
		if (n->kind != N_NEW && n->kind != N_SCRATCH)
			continue;
		if (n->kind == N_NEW && n->dirty)
			commit_node(t, n);	/* written after its last close */
		buf_reset(&path);
		if (node_path(n, &path)) {
			ret = -ENOMEM;
			break;
		}
		if (n->kind == N_NEW && (!n->error || !n->edit)) {
			npz_log("%s: created but never written, not stored",
				path.data + 1);
			continue;
		}
		if (n->kind == N_NEW) {
			/* rejected (or failed) content: kept under another
			 * name, as a plain member, unless that name is taken */
			char *rname;

			if (asprintf(&rname, "%s.rejected", path.data) < 0) {
				ret = -ENOMEM;
				break;
			}
			if (ns_find(t, rname) ||
			    entry_by_mname(t, name_member(rname))) {
				npz_log("%s: rejected content dropped: %s exists",
					path.data + 1, rname + 1);
				free(rname);
				continue;
			}
			e = entry_new(name_member(rname));
			if (e && !entries_add(t, e)) {
				npz_log("%s: rejected content stored as member %s",
					path.data + 1, rname + 1);
				e->seq = t->next_seq++;
				e->pending = n->edit;
				store = true;
				free(rname);
				continue;
			}
			if (e)
				entry_free(e);
			free(rname);
			ret = -ENOMEM;
			break;
		}
		if (name_is_backup(n->name)) {
			npz_log("%s: editor scratch file, dropped", path.data + 1);
			continue;
		}
		e = entry_new(name_member(path.data));
		if (!e || entries_add(t, e)) {
			if (e)
				entry_free(e);
			ret = -ENOMEM;
			break;
		}
		e->seq = t->next_seq++;
		e->pending = n->edit;
		store = true;
	}
	if (!ret && store) {
		ret = commit_archive(t, &err);
		if (ret)
			npz_log("storing scratch files failed, they are lost: %s",
				err.msg);
	}
	free(nodes);
	buf_release(&path);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}
