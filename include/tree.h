/* tree.h - the mount's namespace: path -> node, per-array state (parsed npy
 * header, rendered text view) and open files.
 *
 * Node kinds: directories; FILE nodes show one archive member's bytes
 * (NAME.npy or any other member); VIEW nodes are the text view NAME.txt of
 * the FILE node NAME.npy.  A real member always wins over a view of the
 * same name; object arrays have no visible view.
 *
 * Text views are rendered lazily (stat renders views of arrays with at most
 * TREE_STAT_RENDER_MAX bytes of data; open renders any) into one shared,
 * unlinked cache file, so RAM does not grow with the archive.
 *
 * Threads.  Lock order: tree->lock, then array->lock, then tree->cache_lock.
 *  - tree->lock (rwlock) protects: the path hash map and directory child
 *    lists (read-locked by lookups; the namespace is fixed for now).
 *  - array->lock (mutex) protects: header state and view rendering state of
 *    one array.
 *  - tree->cache_lock (mutex) protects: the cache file's end offset (appends).
 * Nodes live as long as the tree; open files hold a reference (refs).
 */
#ifndef NPZFS_TREE_H
#define NPZFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "archive.h"
#include "buf.h"
#include "err.h"

#define TREE_STAT_RENDER_MAX (64ull << 20)

struct tree;
struct tree_file;

enum tree_kind { TREE_DIR, TREE_FILE, TREE_VIEW };

struct tree_stat {
	enum tree_kind kind;
	uint64_t size;
	time_t mtime;
};

/* Build the namespace of an open archive (the tree does not own it).
 * Returns 0 and *out, or -ENOMEM / -EIO (no cache file) with a message. */
int tree_new(struct archive *ar, time_t dir_mtime, struct tree **out,
	     struct npz_err *err);
void tree_free(struct tree *t);

/* Stat a path ("/", "/a/x.npy").  Returns 0 or -ENOENT. */
int tree_stat(struct tree *t, const char *path, struct tree_stat *st);

/* Call fill(ctx, name, st) for each visible entry of directory path (not
 * "." and ".."); stops early when fill returns non-zero.  Returns 0,
 * -ENOENT, or -ENOTDIR. */
int tree_readdir(struct tree *t, const char *path,
		 int (*fill)(void *ctx, const char *name,
			     const struct tree_stat *st),
		 void *ctx);

/* Open a file for reading (flags as in open(2); write access: -EROFS for
 * now).  A text view is rendered here if it was not yet; a damaged array
 * gives -EIO and one log line naming the member.  Returns 0 and *out, or
 * -errno.  Close with tree_release(). */
int tree_open(struct tree *t, const char *path, int flags,
	      struct tree_file **out);

/* Read from an open file: bytes read (short only at end of file) or -errno. */
ssize_t tree_read(struct tree *t, struct tree_file *f, void *buf, size_t len,
		  uint64_t off);

void tree_release(struct tree *t, struct tree_file *f);

/* Extended attributes user.npzfs.{dtype,shape,compression,error}.
 * tree_getxattr appends the value to out: 0, -ENODATA, -ENOENT.
 * tree_listxattr appends the names, each NUL-terminated: 0 or -ENOENT. */
int tree_getxattr(struct tree *t, const char *path, const char *name,
		  struct buf *out);
int tree_listxattr(struct tree *t, const char *path, struct buf *out);

#endif
