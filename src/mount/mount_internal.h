/* mount_internal.h - what the files of src/mount/ share: the tree, its
 * nodes and entries, open files, and the helpers one file offers another.
 * Not a public header: src/fuse_ops.c and everything outside src/mount/
 * use include/tree.h.  The model and the lock order are in tree.h.
 *
 * Invariants:
 *  - every live node is in the hash map under (parent, own name) and in
 *    its parent's kids (no node stores its full path: see namespace.c);
 *    dead nodes (unlinked while open) are in neither and are freed by the
 *    last tree_release;
 *  - t->entries holds one entry per member of t->ar (in_archive, member ==
 *    its index) plus the entries a running commit adds; an entry's raw and
 *    view nodes point back at it (e->view[k]->vk == k);
 *  - a VIEW node exists only where no other node has its path.
 *
 * Unless said otherwise, a helper that reads the namespace is called with
 * t->lock held (read or write), and one that changes it with t->lock held
 * for writing (and so t->change_lock: see change_begin).
 */
#ifndef NPZFS_MOUNT_INTERNAL_H
#define NPZFS_MOUNT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "archive.h"
#include "buf.h"
#include "cache.h"
#include "err.h"
#include "npy.h"
#include "tree.h"
#include "views.h"
#include "wbuf.h"

#define TOMBS 256	/* views remembered as removed with their array */

enum array_state { ARRAY_UNKNOWN, ARRAY_OK, ARRAY_BAD };

enum nkind {
	N_DIR,
	N_MEMBER,	/* an entry's bytes */
	N_VIEW,		/* a view of an array entry (node->vk: its kind) */
	N_NEW,		/* a created NAME.npy / NAME.txt not yet committed */
	N_SCRATCH,	/* any other created file */
};

struct node;
struct version;	/* version.c */

/* One view of an array entry (view kind k of include/views.h): its
 * rendering and cache.  Protected by its entry's lock. */
struct view_state {
	struct entry *e;
	bool visible;		/* state == ARRAY_OK: the kind's visible() */
	bool ro;		/* state == ARRAY_OK: the kind's read_only() */
	uint64_t bound;		/* state == ARRAY_OK: the kind's size_bound() */
	bool sized;		/* len is known (rendered once) */
	uint64_t len;
	bool rendered;		/* the view is cached: in fd, or at off of
				   t->cache_fd when fd < 0 */
	int fd;
	uint64_t off;
	time_t cache_failed;	/* when keeping the view last failed */
	struct cache_item ci;	/* the cached view in the budget */
	_Atomic bool big_render;	/* a big view is being rendered under
					   e->lock: listings do not wait */
};

struct entry {
	char *mname;		/* member name in the archive */
	bool in_archive;	/* member is valid */
	size_t member;		/* index in t->ar */
	uint64_t seq;		/* position in the archive's member order */
	bool is_array;		/* mname ends in ".npy" */
	bool doomed;		/* left out of the running commit */
	bool shadowed;		/* an earlier member of a duplicate name: not
				   shown, dropped at the first commit */
	bool nul_name;		/* shadowed: its name holds a NUL byte */
	struct node *raw;	/* N_MEMBER node, or NULL when not shown */
	struct node *view[VIEW_KINDS];	/* N_VIEW nodes, or NULL */
	struct wbuf *pending;	/* new content for the running commit */
	uint64_t ext_gen;	/* moves when a reload (follow.c) gives the
				   member other content (tree->lock): files
				   opened before read their snapshot */
	uint64_t ext_at;	/* t->ext_clock when a reload last gave it
				   content (0: never) */
	uint64_t content_tag;	/* names the member's content: a new one
				   whenever a commit gives it new bytes
				   (tree->lock); a copy-on-write edit's base
				   carries the tag of what it shows */
	time_t mtime;
	char *error;		/* last rejected write (tree->lock) */
	struct tree *t;
	pthread_mutex_t lock;	/* protects: state, data_len, vs; take
				   before the cache's lock */
	enum array_state state;
	uint64_t data_len;	/* state == ARRAY_OK: bytes of array data */
	struct view_state vs[VIEW_KINDS];
};

struct node {
	char *name;		/* own component ("b.npy"); "" for the root */
	enum nkind kind;
	struct node *parent;	/* NULL for the root and dead nodes */
	struct node **kids;	/* N_DIR */
	size_t nkids, kids_cap;
	struct entry *e;	/* N_MEMBER, N_VIEW; N_DIR: its "dir/" member */
	enum view_id vk;	/* N_VIEW: which view of e */
	time_t mtime;
	struct node *hnext;	/* hash chain */
	bool dead;		/* out of the namespace (tree->lock) */
	char *error;		/* N_NEW / N_SCRATCH: last rejected content */
	pthread_mutex_t lock;	/* protects: edit, frozen, dirty, wopens,
				   refs */
	struct wbuf *edit;	/* content being written, or NULL */
	bool frozen;		/* a running commit reads edit: nobody
				   changes or frees it (edit.c) */
	bool dirty;		/* written since the last commit */
	bool stale;		/* the edit began on an archive another
				   program replaced since (follow.c): its
				   commit fails with -ESTALE */
	bool rejected;		/* the edit was rejected: files opened since
				   see the archive's content again */
	uint64_t reject_gen;	/* counts rejections */
	uint64_t born_ext;	/* t->ext_clock when it was made: a created
				   file renamed onto a member another
				   program changed since is a conflict */
	uint64_t page_ext;	/* the entry's ext_gen the kernel's pages of
				   this path may hold (follow.c) */
	unsigned int wopens;	/* open files with write access */
	unsigned int refs;	/* open files */
};

struct tree {
	struct archive *ar;	/* the current archive: ver->ar */
	struct version *ver;	/* its version; the tree holds a reference */
	struct version *spare;	/* the next commit's version (version.c) */
	struct version *retired;	/* replaced in this change, handed to
					   the reaper after it (change_end) */
	pthread_mutex_t reap_lock;	/* protects: reap, reap_stop,
					   reaper_on; a leaf lock */
	pthread_cond_t reap_cv;
	struct version *reap;		/* for the reaper thread to close */
	bool reap_stop;
	bool reaper_on;			/* the reaper thread runs */
	pthread_t reaper;
	struct tree_opts opts;
	pthread_mutex_t change_lock;	/* see tree.h; before lock */
	pthread_rwlock_t lock;	/* see tree.h */
	struct node **buckets;
	size_t nbuckets;
	size_t count;
	struct node *root;
	uint64_t gen;		/* moves when nodes are removed or renamed */
	atomic_bool trim;	/* a commit freed memory: release_free_memory */
	char *tombs[TOMBS];	/* views removed with their array (for rm -r) */
	size_t ntombs;
	struct entry **entries;
	size_t nentries, entries_cap;
	uint64_t next_seq;
	uint64_t next_tag;	/* the last content_tag given (tree->lock) */
	pthread_mutex_t cache_lock;	/* protects: cache_end; a leaf lock */
	int cache_fd;			/* small rendered views, or -1 */
	uint64_t cache_end;
	pthread_mutex_t inval_lock;	/* protects: inval; a leaf lock */
	struct buf inval;		/* paths whose kernel attributes are
					   stale, NUL-separated */
	void (*inval_fn)(void *ctx, const char *path);
	void *inval_ctx;
	/* follow.c: noticing and loading the archive's other versions */
	char *apath;			/* the archive's path (resolved) */
	_Atomic int64_t follow_due;	/* ms (CLOCK_MONOTONIC_COARSE) of
					   the next check; lock-free */
	pthread_mutex_t files_lock;	/* protects: files and every file's
					   fprev/fnext; a leaf lock */
	struct tree_file *files;	/* open files (tree_file) */
	pthread_mutex_t follow_lock;	/* protects: follow_kick .. follower;
					   a leaf lock */
	pthread_cond_t follow_cv;
	bool follow_kick, follow_stop, follow_on;
	pthread_t follower;
	uint64_t ext_clock;	/* counts reloads (in a change, tree->lock
				   for writing) */
	struct stat seen;	/* stat() of apath as last accounted for
				   (change_lock) */
	uint64_t seen_gen;	/* moves when seen does (change_lock) */
	bool gone;		/* the archive's path was removed
				   (change_lock) */
	atomic_bool follow_inval;	/* a reload's paths are not yet
					   invalidated: opens keep no cache */
	struct stat failed;	/* the last version that failed to load
				   (follower thread only): logged once */
};

struct tree_file {
	struct node *node;
	bool writable;
	bool wrote;		/* written through this file since open */
	uint64_t gen;		/* node->reject_gen at open */
	bool keep_cache;	/* opened showing the archive's content */
	bool direct_io;		/* no page cache: see tree_file_direct_io */
	bool snapped;		/* opened on an archive member or its view:
				   snap_ext says which content */
	uint64_t snap_ext;	/* its entry's ext_gen at open */
	struct version *snap;	/* N_MEMBER: the version it opened
				   (version_ref_tables), read when another
				   program's version changed the member */
	size_t snap_member;	/* its member index there */
	/* t->files_lock: every open file, so that tree_free() frees those the
	 * kernel never released (a RELEASE dropped at unmount) */
	struct tree_file *fprev, *fnext;
};

/* ---- edit.c: open files ---------------------------------------------- */

/* Free the files still open when the tree is freed (the kernel dropped
 * their RELEASE at unmount): their version references go with them.  No
 * FUSE thread may run any more. */
void files_forget(struct tree *t);

/* ---- entries.c: the change lock ---------------------------------------- */

/* Start a change of the namespace, the entries or the archive: take
 * t->change_lock, then t->lock for writing.  Only a holder of change_lock
 * changes what readers find under t->lock, so a commit may release t->lock
 * while it builds (commit.c) and find everything as it left it. */
void change_begin(struct tree *t);
void change_end(struct tree *t);

/* ---- names.c: name rules, no tree (unit-tested) ----------------------- */

/* The last component of path ("/a/b" -> "b"). */
const char *name_base(const char *path);
/* Member name -> "/a/b" in out, without empty or "." components; *is_dir
 * when it ends in '/'.  -EINVAL for ".." components or an empty result. */
int name_member_path(const char *name, struct buf *out, bool *is_dir);
/* s ends in suffix, after a non-empty last component ("a/.npy": no). */
bool name_ends_with(const char *s, const char *suffix);
/* What a path names: NAME_NPY for NAME.npy, view kind k for NAME.SUFFIX
 * of a kind in the mask `views` (1 << k; built in), else NAME_OTHER. */
#define NAME_OTHER (-2)
#define NAME_NPY (-1)
int name_array_kind(const char *path, unsigned views);
/* The member name for a mount path: without the leading '/'. */
const char *name_member(const char *path);
/* "/d/x.txt", "/d/x.csv" or "/d/x.npy" -> member name "d/x.npy" (heap),
 * or NULL. */
char *name_array_member(const char *path);
/* A hidden name or an editor backup ending in '~' (dropped at unmount). */
bool name_is_backup(const char *name);

/* ---- namespace.c: nodes, the (parent, name) hash map, path walks ------ */

/* Grow the hash map to twice its size (1024 buckets at first). */
int ns_hash_grow(struct tree *t);
/* Nodes were removed or renamed: forget every thread's walk memo. */
void ns_moved(struct tree *t);
/* The kid of dir named name[0..len), or NULL. */
struct node *ns_kid_find(const struct tree *t, const struct node *dir,
			 const char *name, size_t len);
/* The node at path[0..len) ("/a/b"; "" and "/" are the root), or NULL. */
struct node *ns_find_len(const struct tree *t, const char *path, size_t len);
struct node *ns_find(const struct tree *t, const char *path);
/* The visible node at path (not a hidden view), or NULL. */
struct node *ns_lookup(struct tree *t, const char *path);
/* Append n's full path ("/" for the root) to out: 0 or -ENOMEM. */
int node_path(const struct node *n, struct buf *out);
/* n's full path in a new string (free() it), or NULL without memory. */
char *node_path_dup(const struct node *n);
/* Create a node named name[0..len) under parent (NULL for the root) and
 * index it: 0 or -ENOMEM. */
int node_add(struct tree *t, struct node *parent, const char *name,
	     size_t len, enum nkind kind, struct node **out);
/* node_add for the last component of path. */
int node_add_path(struct tree *t, struct node *parent, const char *path,
		  enum nkind kind, struct node **out);
/* Take n out of the namespace; free it unless an open file holds it. */
void node_detach(struct tree *t, struct node *n);
/* Give n the last component of path as its name, under a new parent. */
int node_move(struct tree *t, struct node *n, struct node *parent,
	      const char *path);
/* Free a node that is out of the namespace (or the whole tree goes). */
void node_free(struct node *n);
/* The directory at path[0..len), created with its parents when missing.
 * -ENOTDIR (and *out the file) when a file is in the way. */
int ns_dir_get(struct tree *t, const char *path, size_t len,
	       struct node **out);
/* The existing parent directory of path: 0, -ENOENT or -ENOTDIR. */
int ns_parent_of(struct tree *t, const char *path, struct node **out);

/* ---- entries.c: entries <-> archive members; the tree's life ---------- */

/* A new entry for member name mname (not in the archive yet), or NULL. */
struct entry *entry_new(const char *mname);
void entry_free(struct entry *e);
/* Append e to t->entries: 0 or -ENOMEM (then the caller still owns e). */
int entries_add(struct tree *t, struct entry *e);
/* The shown entry of member name mname, or NULL. */
struct entry *entry_by_mname(struct tree *t, const char *mname);
/* Forget the parsed header and rendered text: the content changed. */
void entry_reset(struct tree *t, struct entry *e);
/* Show member i of t->ar as a new entry (at mount, and for a member a
 * reload found): its nodes and parent directories; a clashing name is
 * logged and not shown.  path is scratch space.  0 or -ENOMEM. */
int entries_add_member(struct tree *t, size_t i, struct buf *path);
/* Add the views NAME.txt, NAME.csv, ... (the kinds -o views= shows) of an
 * array entry shown as NAME.npy, unless their paths are taken: 0 or
 * -ENOMEM. */
int entry_add_view(struct tree *t, struct entry *e);
/* Detach e's view nodes (e->view[] becomes NULL). */
void entry_detach_views(struct tree *t, struct entry *e);
/* The path of `path` (NAME.npy or any view name) with view kind k's
 * suffix, in a new string (free it), or NULL. */
char *name_with_view(const char *path, enum view_id k);
/* Replace the message in *slot (user.npzfs.error) by a copy of msg. */
void error_keep(char **slot, const char *msg);

/* ---- view.c: npy headers and views (rendering, cache) ----------------- */

/* Is view kind k shown (in -o views= and built in)? */
bool view_on(const struct tree *t, enum view_id k);
/* Parse the array's header into *hdr (release with npy_header_release).
 * e->lock held.  0 or -EIO (logged once, naming the member). */
int array_header(struct tree *t, struct entry *e, struct npy_header *hdr);
/* Learn the array's state once.  e->lock held: 0 or -EIO. */
int array_load(struct tree *t, struct entry *e);
/* Render e's view k when its bound is at most max_bound bytes, copying the
 * window [win_off, win_off + win_len) into win.  e->lock held.  0, -EFBIG
 * or -EIO (logged). */
int array_render(struct tree *t, struct entry *e, enum view_id k,
		 uint64_t max_bound, char *win, uint64_t win_off,
		 size_t win_len, size_t *got);
/* Does view node n show (its kind's visible() on its array)?  Takes
 * n->e->lock. */
bool view_visible(struct tree *t, const struct node *n);
/* Is view node n read-only (its kind's read_only())?  Takes n->e->lock. */
bool view_read_only(struct tree *t, const struct node *n);
/* Load e and render its view k if not cached.  Takes e->lock: 0 or -EIO. */
int view_ready(struct tree *t, struct entry *e, enum view_id k);
/* Read [off, off + len) of e's view k (rendered now if not cached): bytes
 * read or -EIO.  Takes e->lock. */
ssize_t view_read(struct tree *t, struct entry *e, enum view_id k,
		  void *buf, size_t len, uint64_t off);
/* The size of e's view k for stat: its length once known; small views
 * (bound at most TREE_STAT_TEXT_MAX) are rendered to learn it; 0 while a
 * big one renders.  Takes e->lock. */
uint64_t view_size(struct tree *t, struct entry *e, enum view_id k);
/* Drop the cached rendering of vs (it stays sized).  Its e->lock held. */
void view_drop(struct view_state *vs);
/* Forget every view's rendering and size (the content changed).  e->lock
 * held. */
void view_reset_all(struct entry *e);
/* The budget wants a view back (cache.h: must not block). */
bool view_evict(struct cache_item *it);

/* ---- read.c: stat, readdir, read -------------------------------------- */

/* Read n's content when it has no edit (archive bytes or view text). */
ssize_t node_read_content(struct tree *t, struct node *n, void *buf,
			  size_t len, uint64_t off);

/* ---- edit.c: open files and edits ------------------------------------- */

/* A copy of what n shows now, in a new wbuf.  n->lock held. */
int node_snapshot(struct tree *t, struct node *n, struct wbuf **out);
/* Hand n's edit to a commit (in a change): until edit_thaw, it is neither
 * changed nor freed, and may be read without n->lock; a write, truncate
 * or O_TRUNC open of n waits until the change ends.  n->lock held.  0 or
 * the spill file's -errno. */
int edit_freeze(struct node *n);
void edit_thaw(struct node *n);
/* Drop n's edit when nobody writes it any more.  n->lock held. */
void edit_end_if_idle(struct tree *t, struct node *n);
/* Move n's copy-on-write edit onto the current archive (t->lock held for
 * writing, n->lock held): with `committed`, the edit was just committed
 * whole (its written pages are now in the archive); else only when the
 * member's content is still what the edit's base shows.  The old archive
 * version is released.  Nothing happens when the member cannot be a base
 * (deflated without a SOZip index). */
void edit_rebase(struct tree *t, struct node *n, bool committed);

/* ---- commit.c: what a commit contains, and its outcome ---------------- */

/* Write the archive anew from the entries and swap it in.  Called in a
 * change (change_begin); t->lock is released while the archive is written.
 * On failure nothing in the tree changed. */
int commit_archive(struct tree *t, struct npz_err *err);

/* Wait for the .npy files parsed from text that are still being freed on
 * threads of their own (tree_free() calls it). */
void commit_release_wait(void);

/* Commit new content for the array or member at path (see commit.c).
 * content is frozen or private: it is read without a lock. */
int commit_content(struct tree *t, const char *path, struct entry *target,
		   struct wbuf *content, struct node *n, struct npz_err *err);
/* Commit n's edit if it was written since its last commit.  In a change
 * (change_begin), n->lock not held. */
int commit_node(struct tree *t, struct node *n);
/* Commit f's node when it is dirty (and, unless `any`, f wrote to it).
 * Makes its own change. */
int commit_file(struct tree *t, struct tree_file *f, bool any);
/* Report a rejected or failed write: log, keep in user.npzfs.error (of e,
 * else of n). */
void error_report(struct node *n, struct entry *e, const char *what, int ret,
		  const struct npz_err *err);

/* Rebasing namespace changes (rename, unlink) onto another program's
 * version: what the change relied on at a path (the member shown there and
 * its content_tag), taken before it tries. */
#define REBASE_TRIES 20	/* tries of a commit before it fails */
struct seen_path {
	char *mname;
	uint64_t tag;
	bool member;
};
void path_seen(struct tree *t, const char *path, struct seen_path *s);
void seen_release(struct seen_path *s);
/* A change found the archive changed by another program (-ESTALE): load
 * its version (follow_sync).  Returns -EAGAIN (try the change again: the
 * other program changed neither path's member; p2 may be NULL), -ESTALE
 * (it did: a conflict) or another -errno.  In the change. */
int rebase_paths(struct tree *t, const char *p1, const struct seen_path *s1,
		 const char *p2, const struct seen_path *s2);

/* ---- inval.c: work done after the tree lock is released --------------- */

/* Queue path: the kernel's cached attributes of it are stale.  Any lock
 * may be held. */
void inval_add(struct tree *t, const char *path);
/* Queue the full path of live node n. */
void inval_add_node(struct tree *t, const struct node *n);
/* Tell the kernel about the queued paths (but `skip`), and give memory
 * back.  No tree lock held. */
void inval_flush(struct tree *t, const char *skip);

/* ---- follow.c: the mount follows its archive ------------------------- */

/* A request looks at the namespace: when the last check is ~200 ms old,
 * wake the follower thread to stat() the archive's path.  Cheap (a coarse
 * clock read); any lock may be held. */
void follow_poke(struct tree *t);
/* A commit published its own archive (in a change): remember its
 * identity, so that it is not taken for another program's change. */
void follow_published(struct tree *t);
/* A commit found the archive changed by another program (-ESTALE from
 * archive_commit): load the version at the path now, in this change
 * (t->change_lock and t->lock for writing held; t->lock is released while
 * it is indexed), as the follower would: edits of members it changed are
 * marked stale, the others move onto it.  Returns 0 (loaded, or nothing to
 * load), -EAGAIN (not loadable yet: still being written, or changed while
 * read), -ESTALE (the archive was removed) or -errno, with err. */
int follow_sync(struct tree *t, struct npz_err *err);
/* At tree_new: the identity of the mounted archive.  0 or -ENOMEM. */
int follow_init(struct tree *t);
/* Stop the follower thread (unmount, tree_free); idempotent. */
void follow_stop(struct tree *t);
/* Does f read its snapshot (its member changed or went since open)?
 * t->lock held. */
bool follow_snapshot(const struct tree_file *f);

/* ---- version.c: archive versions, closed by their last reference ----- */

/* A new version of ar holding one reference (the caller's): 0 or -ENOMEM. */
int version_new(struct archive *ar, struct version **out);
/* One more reference on v (for a copy-on-write edit's base); returns v. */
struct version *version_ref(struct version *v);
/* Drop a reference; the last one closes the archive.  NULL is a no-op. */
void version_put(struct version *v);
/* v's archive. */
struct archive *version_archive(const struct version *v);
/* A reference that also reads members through v's archive tables
 * (archive_member_read), so that v is not retired while it lives; drop it
 * with version_put_tables().  Only on the current version (t->lock held). */
struct version *version_ref_tables(struct version *v);
void version_put_tables(struct version *v);
/* Make sure t->spare is there for the next version_publish: 0, or -ENOMEM
 * with a message.  Call before archive_commit.  t->lock held for writing. */
int version_reserve(struct tree *t, struct npz_err *err);
/* Swap nar (a commit's new archive) in as t->ar, in t->spare: the old
 * version goes to t->retired.  Cannot fail after version_reserve.  In a
 * change, t->lock held for writing. */
void version_publish(struct tree *t, struct archive *nar);
/* Hand the versions of list to the reaper thread (started on first use,
 * after the daemon forked), which retires each (tables freed, descriptors
 * kept) and drops the tree's reference: closing a replaced archive frees
 * its blocks, which takes long for a big one, and no request waits for it.
 * Without a thread, done here.  No tree lock held. */
void version_reap(struct tree *t, struct version *list);
/* Stop the reaper thread and release what it had not yet (tree_free). */
void version_reaper_stop(struct tree *t);
/* Take a reference on v for a zero-copy span, kept in this thread's slot
 * until tree_thread_release.  t->lock held.  0, or -EAGAIN (no memory for
 * the slot: read by copying). */
int version_hold(struct version *v);

#endif
