/* fuse_ops.c - the thin FUSE layer: translate requests into tree_* calls.
 * Holds no state and no logic of its own; errors pass through as -errno. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npzfs.h"

static struct npzfs *fs(void)
{
	return fuse_get_context()->private_data;
}

static void *npzfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 0;
	cfg->entry_timeout = 1.0;
	cfg->negative_timeout = 0;
	/* Sizes of text views change when they are rendered: never cache. */
	cfg->attr_timeout = 0;
	return fs();
}

static void fill_stat(const struct npzfs *n, const struct tree_stat *ts,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (ts->kind == TREE_DIR) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (n->opts.ro ? 0444 : 0644);
		st->st_nlink = 1;
	}
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = (off_t)ts->size;
	st->st_blocks = (blkcnt_t)((ts->size + 511) / 512);
	st->st_blksize = 65536;
	st->st_mtime = st->st_ctime = st->st_atime = ts->mtime;
}

static int npzfs_getattr(const char *path, struct stat *st,
			 struct fuse_file_info *fi)
{
	struct tree_stat ts;
	int ret;

	(void)fi;
	ret = tree_stat(fs()->tree, path, &ts);
	if (!ret)
		fill_stat(fs(), &ts, st);
	return ret;
}

struct dir_fill {
	struct npzfs *fs;
	void *buf;
	fuse_fill_dir_t filler;
};

static int dir_fill_one(void *ctx, const char *name,
			const struct tree_stat *ts)
{
	struct dir_fill *d = ctx;
	struct stat st;

	fill_stat(d->fs, ts, &st);
	return d->filler(d->buf, name, &st, 0, 0);
}

static int npzfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
			 off_t offset, struct fuse_file_info *fi,
			 enum fuse_readdir_flags flags)
{
	struct dir_fill d = { fs(), buf, filler };

	(void)offset;
	(void)fi;
	(void)flags;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	return tree_readdir(fs()->tree, path, dir_fill_one, &d);
}

static int npzfs_open(const char *path, struct fuse_file_info *fi)
{
	struct tree_file *f;
	int ret = tree_open(fs()->tree, path, fi->flags, &f);

	if (!ret)
		fi->fh = (uint64_t)(uintptr_t)f;
	return ret;
}

static int npzfs_read(const char *path, char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)path;
	return (int)tree_read(fs()->tree, (struct tree_file *)(uintptr_t)fi->fh,
			      buf, size, (uint64_t)off);
}

static int npzfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	tree_release(fs()->tree, (struct tree_file *)(uintptr_t)fi->fh);
	return 0;
}

/* Copy a value into the caller's buffer the way getxattr(2) wants. */
static int xattr_reply(const struct buf *b, char *value, size_t size)
{
	if (size == 0)
		return (int)b->len;
	if (b->len > size)
		return -ERANGE;
	memcpy(value, b->data, b->len);
	return (int)b->len;
}

static int npzfs_getxattr(const char *path, const char *name, char *value,
			  size_t size)
{
	struct buf b = BUF_INIT;
	int ret = tree_getxattr(fs()->tree, path, name, &b);

	if (!ret)
		ret = xattr_reply(&b, value, size);
	buf_release(&b);
	return ret;
}

static int npzfs_listxattr(const char *path, char *list, size_t size)
{
	struct buf b = BUF_INIT;
	int ret = tree_listxattr(fs()->tree, path, &b);

	if (!ret)
		ret = xattr_reply(&b, list, size);
	buf_release(&b);
	return ret;
}

const struct fuse_operations npzfs_ops = {
	.init		= npzfs_init,
	.getattr	= npzfs_getattr,
	.readdir	= npzfs_readdir,
	.open		= npzfs_open,
	.read		= npzfs_read,
	.release	= npzfs_release,
	.getxattr	= npzfs_getxattr,
	.listxattr	= npzfs_listxattr,
};
