/* npzfs.h - the daemon's state (FUSE private_data) and its FUSE operations.
 *
 * One struct npzfs holds all state.  Its fields are set before fuse_main
 * and read-only afterwards; the objects they point to do their own locking
 * (see tree.h and archive.h).
 */
#ifndef NPZFS_NPZFS_H
#define NPZFS_NPZFS_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse.h>

#include "archive.h"
#include "tree.h"

struct npzfs_opts {
	char *archive;		/* absolute path */
	int ro;			/* -o ro */
	int create;		/* -o create */
	char *compress;		/* -o compress=keep|store|deflate */
	int level;		/* -o level=N, -1 = zlib default */
	char *commit;		/* -o commit=auto|rewrite */
	char *cache_size;	/* -o cache_size=SIZE, or NULL */
	char *cache_dir;	/* -o cache_dir=DIR, or NULL */
	unsigned views;		/* -o views=txt,csv: 1 << VIEW_* (views.h) */
	int views_set;		/* -o views= was given */
	unsigned max_read;	/* -o max_read=N: the largest read the kernel
				   sends (default NPZFS_MAX_READ) */
	int show_help;
	int show_version;
};

/* Reads up to 512 KiB: a reply of 1 MiB plus its header would not fit the
 * 1 MiB pipe libfuse splices through (fs.pipe-max-size), and it would copy
 * every byte instead. */
#define NPZFS_MAX_READ (512u << 10)

struct npzfs {
	struct npzfs_opts opts;
	bool singlethread;	/* -s: the kernel may not cache attributes */
	uid_t uid;		/* the mounting user: owner of every file */
	gid_t gid;
	struct archive *ar;
	struct tree *tree;
};

/* The table of FUSE callbacks; each one translates a request into a
 * tree_* call on the struct npzfs found in fuse_get_context(). */
extern const struct fuse_operations npzfs_ops;

#endif
