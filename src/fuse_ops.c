/* fuse_ops.c - the thin FUSE layer: translate requests into tree_* calls.
 * Holds no state and no logic of its own; errors pass through as -errno. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "npzfs.h"

/* Every callback starts here, once, before anything else: a new request
 * on this thread means libfuse has sent the thread's previous reply, so
 * the archive reference its zero-copy span held is released here, and
 * only here (libfuse sends a read_buf reply in the calling thread, after
 * the callback returns).  Calling it again within a callback would drop
 * the span of a reply not yet sent. */
static struct npzfs *request(void)
{
	tree_thread_release();
	return fuse_get_context()->private_data;
}

static struct tree_file *file_of(const struct fuse_file_info *fi)
{
	return (struct tree_file *)(uintptr_t)fi->fh;
}

static void invalidate(void *ctx, const char *path)
{
	fuse_invalidate_path(ctx, path);	/* -ENOENT: the kernel never saw it */
}

static void *npzfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct npzfs *n = request();

	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* lookups in one directory need not wait for each other */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Big requests: 1 MiB reads and writes (max_pages follows max_write). */
	conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	conn->max_readahead = 1u << 20;
	conn->max_read = n->opts.max_read;
	cfg->use_ino = 0;
	cfg->entry_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->hard_remove = 1;	/* unlink means unlink, no .fuse_hidden files */
	/* The kernel caches attributes; the tree reports every size that
	 * changes behind its back (a view rendered at open, a sibling changed
	 * by a commit) and we invalidate them.  Single-threaded, invalidating
	 * could wait on a read only this thread can serve: no caching then. */
	if (n->singlethread) {
		cfg->attr_timeout = 0;
	} else {
		cfg->attr_timeout = 1.0;
		tree_set_invalidate(n->tree, invalidate, fuse_get_context()->fuse);
	}
	return n;
}

static void npzfs_destroy(void *data)
{
	struct npzfs *n = data;

	(void)request();
	tree_unmount(n->tree);
}

static void fill_stat(const struct npzfs *n, const struct tree_stat *ts,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (ts->kind == TREE_DIR) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (n->opts.ro || ts->ro ? 0444 : 0644);
		st->st_nlink = 1;
	}
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = (off_t)ts->size;
	st->st_blocks = (blkcnt_t)((ts->size + 511) / 512);
	st->st_blksize = 1 << 20;
	st->st_mtime = st->st_ctime = st->st_atime = ts->mtime;
}

static int npzfs_getattr(const char *path, struct stat *st,
			 struct fuse_file_info *fi)
{
	struct npzfs *n = request();
	struct tree_stat ts;
	int ret;

	(void)fi;
	ret = tree_stat(n->tree, path, &ts);
	if (!ret)
		fill_stat(n, &ts, st);
	return ret;
}

struct dir_fill {
	struct npzfs *fs;
	void *buf;
	fuse_fill_dir_t filler;
	enum fuse_fill_dir_flags flags;
};

/* Directory offsets: 1 after ".", 2 after "..", 2 + n after the tree's
 * entry n - 1, so libfuse need not buffer (and rescan) big directories. */
#define DIR_FIRST 2

static int dir_fill_one(void *ctx, const char *name,
			const struct tree_stat *ts, uint64_t next)
{
	struct dir_fill *d = ctx;
	struct stat st;

	fill_stat(d->fs, ts, &st);
	return d->filler(d->buf, name, &st, (off_t)(DIR_FIRST + next),
			 d->flags);
}

static int npzfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
			 off_t offset, struct fuse_file_info *fi,
			 enum fuse_readdir_flags flags)
{
	struct npzfs *n = request();
	struct dir_fill d = { n, buf, filler,
			      flags & FUSE_READDIR_PLUS ? FUSE_FILL_DIR_PLUS : 0 };
	struct stat st;

	(void)fi;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	if (offset < 1 && filler(buf, ".", &st, 1, 0))
		return 0;
	if (offset < 2 && filler(buf, "..", &st, 2, 0))
		return 0;
	return tree_readdir(n->tree, path, d.flags != 0,
			    offset > DIR_FIRST ? (uint64_t)(offset - DIR_FIRST) : 0,
			    dir_fill_one, &d);
}

static int npzfs_open(const char *path, struct fuse_file_info *fi)
{
	struct npzfs *n = request();
	struct tree_file *f;
	int ret = tree_open(n->tree, path, fi->flags, &f);

	if (!ret) {
		fi->fh = (uint64_t)(uintptr_t)f;
		fi->keep_cache = tree_file_keep_cache(f);
		fi->direct_io = tree_file_direct_io(f);
	}
	return ret;
}

static int npzfs_create(const char *path, mode_t mode,
			struct fuse_file_info *fi)
{
	struct npzfs *n = request();
	struct tree_file *f;
	int ret;

	(void)mode;
	ret = tree_create(n->tree, path, fi->flags, &f);
	if (!ret) {
		fi->fh = (uint64_t)(uintptr_t)f;
		fi->direct_io = tree_file_direct_io(f);
	}
	return ret;
}

/* Reply from the archive or a cache file by splice when possible. */
static int npzfs_read_buf(const char *path, struct fuse_bufvec **bufp,
			  size_t size, off_t off, struct fuse_file_info *fi)
{
	struct tree *t = request()->tree;
	struct fuse_bufvec *bv = malloc(sizeof(*bv));
	uint64_t pos;
	size_t n;
	int fd, ret;
	ssize_t r;

	(void)path;
	if (!bv)
		return -ENOMEM;
	ret = tree_read_span(t, file_of(fi), size, (uint64_t)off, &fd, &pos,
			     &n);
	if (!ret) {
		*bv = FUSE_BUFVEC_INIT(n);
		bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv->buf[0].fd = fd;
		bv->buf[0].pos = (off_t)pos;
		*bufp = bv;
		return 0;
	}
	*bv = FUSE_BUFVEC_INIT(size);
	bv->buf[0].mem = malloc(size ? size : 1);
	if (!bv->buf[0].mem) {
		free(bv);
		return -ENOMEM;
	}
	r = tree_read(t, file_of(fi), bv->buf[0].mem, size, (uint64_t)off);
	if (r < 0) {
		free(bv->buf[0].mem);
		free(bv);
		return (int)r;
	}
	bv->buf[0].size = (size_t)r;
	*bufp = bv;
	return 0;
}

static int npzfs_write(const char *path, const char *buf, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	(void)path;
	return (int)tree_write(request()->tree, file_of(fi), buf, size,
			       (uint64_t)off);
}

static int npzfs_truncate(const char *path, off_t size,
			  struct fuse_file_info *fi)
{
	struct tree *t = request()->tree;

	if (size < 0)
		return -EINVAL;
	return tree_truncate(t, path, fi ? file_of(fi) : NULL, (uint64_t)size);
}

static int npzfs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	return tree_flush(request()->tree, file_of(fi));
}

static int npzfs_fsync(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	return tree_fsync(request()->tree, file_of(fi));
}

static int npzfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	tree_release(request()->tree, file_of(fi));	/* errors are logged */
	return 0;
}

static int npzfs_unlink(const char *path)
{
	return tree_unlink(request()->tree, path);
}

static int npzfs_rename(const char *from, const char *to, unsigned int flags)
{
	return tree_rename(request()->tree, from, to, flags);
}

/* No symbolic or hard links in an npz: EPERM, as on other filesystems
 * without them (vfat), rather than libfuse's ENOSYS. */
static int npzfs_symlink(const char *target, const char *path)
{
	(void)target;
	(void)path;
	return request()->opts.ro ? -EROFS : -EPERM;
}

static int npzfs_link(const char *from, const char *to)
{
	(void)from;
	(void)to;
	return request()->opts.ro ? -EROFS : -EPERM;
}

static int npzfs_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	return tree_mkdir(request()->tree, path);
}

static int npzfs_rmdir(const char *path)
{
	return tree_rmdir(request()->tree, path);
}

/* Modes, owners and times are fixed by the archive: accept and ignore, so
 * that cp -p, tar, rsync and editors can finish their work. */
static int attr_change(const char *path, const struct fuse_file_info *fi)
{
	struct npzfs *n = request();
	struct tree_stat ts;

	if (fi)
		return 0;
	if (n->opts.ro)
		return -EROFS;
	return tree_stat(n->tree, path, &ts);
}

static int npzfs_chmod(const char *path, mode_t mode,
		       struct fuse_file_info *fi)
{
	(void)mode;
	return attr_change(path, fi);
}

static int npzfs_chown(const char *path, uid_t uid, gid_t gid,
		       struct fuse_file_info *fi)
{
	(void)uid;
	(void)gid;
	return attr_change(path, fi);
}

static int npzfs_utimens(const char *path, const struct timespec tv[2],
			 struct fuse_file_info *fi)
{
	(void)tv;
	return attr_change(path, fi);
}

static int npzfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return statvfs(tree_archive_path(request()->tree), st) ? -errno : 0;
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
	struct tree *t = request()->tree;
	struct buf b = BUF_INIT;
	int ret;

	/* Only user.* attributes exist here.  ENOTSUP (not ENODATA) for the
	 * others lets ls and cp stop asking for SELinux labels and ACLs. */
	if (strncmp(name, "user.", 5))
		return -ENOTSUP;
	ret = tree_getxattr(t, path, name, &b);

	if (!ret)
		ret = xattr_reply(&b, value, size);
	buf_release(&b);
	return ret;
}

static int npzfs_listxattr(const char *path, char *list, size_t size)
{
	struct buf b = BUF_INIT;
	int ret = tree_listxattr(request()->tree, path, &b);

	if (!ret)
		ret = xattr_reply(&b, list, size);
	buf_release(&b);
	return ret;
}

static int npzfs_setxattr(const char *path, const char *name,
			  const char *value, size_t size, int flags)
{
	(void)request();
	(void)path;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	return -ENOTSUP;
}

static int npzfs_removexattr(const char *path, const char *name)
{
	(void)request();
	(void)path;
	(void)name;
	return -ENOTSUP;
}

const struct fuse_operations npzfs_ops = {
	.init		= npzfs_init,
	.destroy	= npzfs_destroy,
	.getattr	= npzfs_getattr,
	.readdir	= npzfs_readdir,
	.open		= npzfs_open,
	.create		= npzfs_create,
	.read_buf	= npzfs_read_buf,
	.write		= npzfs_write,
	.truncate	= npzfs_truncate,
	.flush		= npzfs_flush,
	.fsync		= npzfs_fsync,
	.release	= npzfs_release,
	.unlink		= npzfs_unlink,
	.rename		= npzfs_rename,
	.symlink	= npzfs_symlink,
	.link		= npzfs_link,
	.mkdir		= npzfs_mkdir,
	.rmdir		= npzfs_rmdir,
	.chmod		= npzfs_chmod,
	.chown		= npzfs_chown,
	.utimens	= npzfs_utimens,
	.statfs		= npzfs_statfs,
	.getxattr	= npzfs_getxattr,
	.listxattr	= npzfs_listxattr,
	.setxattr	= npzfs_setxattr,
	.removexattr	= npzfs_removexattr,
};
