/* tree.h - the mount's namespace, the archive's entries, open files, and
 * the write path (edits, validation, commits).
 *
 * What the mount shows: directories; for every archive member a file with
 * its bytes (NAME.npy, or any other name); for every NAME.npy member its
 * views (tree_opts.views: text NAME.txt by default, CSV NAME.csv, ...;
 * views.h) unless a member of that path exists or the view's kind has no
 * form for the array (objects; CSV: 0-d, 3-d and more); files created by
 * the user: new arrays (NAME.npy or a view name, added to the archive when
 * first written and closed) and scratch files (any other name: kept out
 * of the archive until unmount, or until renamed onto an array name).
 *
 * Writes are buffered per file in a wbuf (memory, then a spill file).  A
 * file written since its last commit is validated and committed at flush,
 * fsync and release: a .npy must be a valid npy, a view must parse; the
 * archive is then rewritten (archive_commit) and swapped in.  Rejected
 * content: -EINVAL, the edit is dropped, the reason is logged and kept in
 * user.npzfs.error.  A failed commit keeps the edit for a retry.
 * Namespace changes (unlink, rename of array names) commit at once and are
 * undone in the mount when the commit fails.
 *
 * Views are rendered lazily and kept within the cache budget: small
 * ones in one shared, unlinked cache file, big ones in a file each; stat
 * renders a view only when its text is at most TREE_STAT_TEXT_MAX bytes
 * (by text_size_bound), open renders any.
 *
 * Threads.  Lock order: tree->change_lock, tree->lock, then node->lock,
 * then entry->lock, then tree->cache_lock (docs/architecture.md has all).
 *  - tree->change_lock (mutex) is held for a whole change: a commit, unlink,
 *    rename, rmdir, truncate, unmount.  Commits are serialised by it; a
 *    commit releases tree->lock while it parses and writes (nothing it
 *    relies on changes without change_lock), so readers never wait for it.
 *  - tree->lock (rwlock) protects: the namespace (hash map, kids lists,
 *    node names, parents and kinds), the entry list, t->ar and t->ver.
 *    Written by changes (a commit: only to plan and to publish), creates
 *    and mkdir (which only add nodes); read by everything else.
 *  - node->lock (mutex) protects: the node's edit, write-open count, refs.
 *    A commit freezes the edit it reads: a write, truncate or O_TRUNC open
 *    of that node waits until the commit is published.
 *  - entry->lock (mutex) protects: the parsed header and rendered-view state.
 *  - tree->cache_lock (mutex) protects: the text cache file's end offset.
 *  - tree->inval_lock (leaf mutex) protects: the queue of paths whose
 *    kernel attributes are stale (sent after tree->lock is released).
 *  - tree->follow_lock (leaf mutex) wakes the follower thread (follow.c),
 *    which notices another program's change of the archive (a stat() of
 *    its path at most every 200 ms, when requests come) and loads the new
 *    version in a change, indexed with no tree lock held.
 *  - Archive versions are reference counted (atomic, no lock): the tree
 *    holds its current archive; a commit's new archive replaces it and the
 *    old one is closed by its last reference, the zero-copy span a thread
 *    still holds (see tree_read_span).
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

/* stat renders a view to learn its size only when its text is at most
 * this big (by text_size_bound) */
#define TREE_STAT_TEXT_MAX (1ull << 20)

enum tree_compress { TREE_KEEP, TREE_STORE, TREE_DEFLATE };

struct tree_opts {
	bool ro;			/* refuse every change with -EROFS */
	enum tree_compress compress;	/* method of changed and new members */
	int level;			/* deflate level, -1 = zlib default */
	unsigned views;			/* views shown: 1 << VIEW_* (views.h) */
};

struct tree;
struct tree_file;

enum tree_kind { TREE_DIR, TREE_FILE };

struct tree_stat {
	enum tree_kind kind;
	uint64_t size;
	time_t mtime;
	bool ro;	/* a read-only view (mode 0444): writes fail, EACCES */
};

/* Build the namespace of an open archive.  On success the tree owns ar
 * (it replaces it after each commit and closes it in tree_free).  Returns
 * 0 and *out, or -ENOMEM / -EIO (no cache file) with a message. */
int tree_new(struct archive *ar, const struct tree_opts *opts,
	     struct tree **out, struct npz_err *err);

/* The last work at unmount: commit files still dirty, store scratch files
 * as plain members (hidden names and backups ending in '~' are dropped with
 * a log line).  Returns 0 or the failed commit's -errno (logged). */
int tree_unmount(struct tree *t);

/* Free everything, releasing the calling thread's span (tree_read_span)
 * and the tree's reference on its archive: the archive is closed now, or
 * when the last other thread holding a span releases it. NULL is a no-op. */
void tree_free(struct tree *t);

/* Stat a path ("/", "/a/x.npy").  Returns 0 or -ENOENT. */
int tree_stat(struct tree *t, const char *path, struct tree_stat *st);

/* Call fill(ctx, name, st, next) for each visible entry of directory path
 * (not "." and "..") from position `start` on; `next` is the position to
 * resume after that entry.  Stops early when fill returns non-zero.
 * st->size is set only when `sizes` (as tree_stat would: small views are
 * rendered).  Returns 0, -ENOENT, or -ENOTDIR. */
int tree_readdir(struct tree *t, const char *path, bool sizes,
		 uint64_t start,
		 int (*fill)(void *ctx, const char *name,
			     const struct tree_stat *st, uint64_t next),
		 void *ctx);

/* Open an existing file (flags as in open(2)); O_TRUNC empties the file's
 * edit without marking it written.  A text view is rendered here if it was
 * not yet; a damaged array gives -EIO (logged once, naming the member).
 * Returns 0 and *out, or -errno.  Close with tree_release(). */
/* May the kernel keep f's file's page cache from earlier opens?  True when
 * it was opened showing the archive's content (a member or a view, no edit
 * in progress): every change of that content (a commit, a rejected edit)
 * invalidates the path's cache. */
bool tree_file_keep_cache(const struct tree_file *f);

/* Must f bypass the kernel's page cache (direct I/O)?  True for a
 * write-only open (its writes need no kernel copy), and while a file
 * opened before another program's version changed its content is still
 * open: the kernel keeps one page cache per path, and that file reads the
 * old version (its snapshot). */
bool tree_file_direct_io(const struct tree_file *f);

int tree_open(struct tree *t, const char *path, int flags,
	      struct tree_file **out);

/* Create and open a new file: -EEXIST if it exists and O_EXCL, else like
 * tree_open with O_TRUNC when it exists. */
int tree_create(struct tree *t, const char *path, int flags,
		struct tree_file **out);

/* Read: bytes read (short only at end of file) or -errno. */
ssize_t tree_read(struct tree *t, struct tree_file *f, void *buf, size_t len,
		  uint64_t off);

/* Where a read of [off, off + len) can be served from without copying:
 * *n bytes (0 at end of file) of descriptor *fd at *pos.  The descriptor
 * and the bytes there stay valid, even across commits, until this thread
 * calls tree_thread_release (at its next request), tree_read_span again,
 * or tree_free, or exits: the calling thread holds a reference on the
 * archive.  Returns 0, or -EAGAIN when the data must be read with
 * tree_read (the file is being written, or not inflated that far yet). */
int tree_read_span(struct tree *t, struct tree_file *f, size_t len,
		   uint64_t off, int *fd, uint64_t *pos, size_t *n);

/* Release the archive reference this thread's last tree_read_span kept:
 * call it when the thread starts a new request (its previous reply was
 * sent).  An archive a commit replaced is closed by its last reference. */
void tree_thread_release(void);

/* Write into the file's edit: len or -errno. */
ssize_t tree_write(struct tree *t, struct tree_file *f, const void *buf,
		   size_t len, uint64_t off);

/* Set the size, through an open file (f) or by path (f == NULL: a path
 * truncate of a file nobody has open commits at once). */
int tree_truncate(struct tree *t, const char *path, struct tree_file *f,
		  uint64_t size);

/* Commit f's file if it was written since its last commit: 0 or -errno
 * (-EINVAL for invalid content).  tree_flush and tree_fsync are the same
 * commit; both may run many times. */
int tree_flush(struct tree *t, struct tree_file *f);
int tree_fsync(struct tree *t, struct tree_file *f);

/* Close: commits what is still dirty (writes through a shared mmap arrive
 * after close), then frees f.  Returns the commit's result (for logging). */
int tree_release(struct tree *t, struct tree_file *f);

int tree_unlink(struct tree *t, const char *path);
/* flags: 0 or RENAME_NOREPLACE (RENAME_EXCHANGE: -EINVAL). */
int tree_rename(struct tree *t, const char *from, const char *to,
		unsigned int flags);
int tree_mkdir(struct tree *t, const char *path);
int tree_rmdir(struct tree *t, const char *path);

/* Extended attributes user.npzfs.{dtype,shape,compression,error}.
 * tree_getxattr appends the value to out: 0, -ENODATA, -ENOENT.
 * tree_listxattr appends the names, each NUL-terminated: 0 or -ENOENT. */
int tree_getxattr(struct tree *t, const char *path, const char *name,
		  struct buf *out);
int tree_listxattr(struct tree *t, const char *path, struct buf *out);

/* Register fn(ctx, path), called (with no tree lock held) for every path
 * whose size or existence changed behind the kernel's back: a sibling view
 * after a commit, a view rendered at open, a removed view.  The FUSE layer
 * uses it to drop the kernel's cached attributes.  Call before serving. */
void tree_set_invalidate(struct tree *t,
			 void (*fn)(void *ctx, const char *path), void *ctx);

/* The archive's path (for statfs). */
const char *tree_archive_path(struct tree *t);

#endif
