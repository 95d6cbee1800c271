/* writer.c - the temporary file of a commit (begin, finish, rollback: shared
 * by clone.c) and the durable zip_source libzip rewrites through: reads the old
 * archive by pread(), writes the new one to a temporary file beside it,
 * fsync()s it, gives it the original's mode and owner, opens it as the new
 * struct archive, renames it over the archive and fsync()s the directory;
 * leftover temporary files are removed by archive_clean_temps().
 *  Invariant: the file at the archive's path is the old or the new archive,
 *  never a partial one; a failed commit leaves no temporary file; once the
 *  rename is done, nothing fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "io.h"
#include "zip_internal.h"

/* How archive_commit() (commit.c) writes.
 *
 * libzip writes the new archive (it copies untouched members' compressed
 * bytes and entries as they are), but through our own source over the
 * archive file, because libzip's file source renames without fsync:
 *  - reading goes through a->fd (the old file, whatever happens to the path);
 *  - writing goes to a temporary file beside the archive, which
 *    COMMIT_WRITE fsyncs, gives the original's mode and owner, opens as the
 *    new struct archive (through a dup of its descriptor), renames over the
 *    path (after checking that the path still holds a's file) and whose
 *    directory it fsyncs; ROLLBACK_WRITE unlinks it (and closes the new
 *    struct archive).  The rename is the last step that can fail: after
 *    it, the commit has happened and archive_commit() reports success.
 * New content is read with pread() from the caller's fd by a second kind of
 * source (deflate.c); deflated content is compressed by that source itself
 * (zlib, at the caller's level; big content in chunks on worker threads)
 * and handed to libzip as already-compressed data, which libzip copies as
 * it is (it recompresses only when the source's method differs from the
 * entry's).
 *
 * Untouched members are copied by libzip's own loop (8 KiB reads and writes
 * through file_src, which batches them into COMMIT_RBUF reads and
 * COMMIT_WBUF writes).  copy_file_range() from the old file was tried: the
 * bytes must still reach libzip's buffer, and on ext4 the in-kernel copy is
 * no cheaper than the write it replaces (measured slightly more CPU).
 */

/* An empty zip: just the end-of-central-directory record. */
static const unsigned char empty_zip[22] = { 'P', 'K', 5, 6 };

#define WRITEBACK_STEP (8u << 20)	/* start writeback every 8 MiB */
/* Buffers stay within L2: a copy out of a 4 MiB buffer had to go to
 * memory, and measured up to 3 times slower when other processes ran. */
#define COMMIT_WBUF (256u << 10)	/* write buffer of the temporary file */
#define COMMIT_RBUF (256u << 10)	/* read-ahead over the old archive */

zip_int64_t ar_fsrc_fail(struct file_src *s, int zip_code, int sys,
			 const char *fmt, ...)
{
	va_list ap;

	zip_error_set(&s->error, zip_code, sys);
	if (!s->fail_errno) {
		s->fail_errno = sys > 0 ? sys : EIO;
		va_start(ap, fmt);
		vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ar_fsrc_fail() for a system call that failed on path (errno).
 * Returns -errno. */
static int fsrc_sys_fail(struct file_src *s, int zip_code, const char *what,
			 const char *path)
{
	int e = errno;

	ar_fsrc_fail(s, zip_code, e, "%s %s: %s", what, path, strerror(e));
	return -e;
}

/* Is the file at a's path still the one a opened?  Returns 0, -ESTALE or
 * -errno, with a message in msg. */
int ar_check_same_file(const struct archive *a, char *msg, size_t len)
{
	struct stat sb;

	if (stat(a->path, &sb) < 0) {
		int e = errno;

		if (e == ENOENT) {
			snprintf(msg, len, "%s: archive was removed by another "
				 "program", a->path);
			return -ESTALE;
		}
		snprintf(msg, len, "%s: %s", a->path, strerror(e));
		return -e;
	}
	if (sb.st_dev != a->st.st_dev || sb.st_ino != a->st.st_ino) {
		snprintf(msg, len, "%s: archive was replaced by another "
			 "program", a->path);
		return -ESTALE;
	}
	if (sb.st_size != a->st.st_size ||
	    sb.st_mtim.tv_sec != a->st.st_mtim.tv_sec ||
	    sb.st_mtim.tv_nsec != a->st.st_mtim.tv_nsec) {
		snprintf(msg, len, "%s: archive was modified by another "
			 "program", a->path);
		return -ESTALE;
	}
	return 0;
}

static int fsrc_flush(struct file_src *s)
{
	int ret;

	if (!s->wbuf_len)
		return 0;
	ret = io_pwrite_all(s->tmp_fd, s->wbuf, s->wbuf_len, s->wbuf_off);
	if (ret)
		return ret;
	s->wbuf_off += s->wbuf_len;
	s->wbuf_len = 0;
	/* Start writing back what is written so far, so that the disk works
	 * while we copy and the fsync at commit has little left to wait for.
	 * Only a hint: errors show up at fsync. */
	if (s->wbuf_off >= s->synced + WRITEBACK_STEP) {
		sync_file_range(s->tmp_fd, (off_t)s->synced,
				(off_t)(s->wbuf_off - s->synced),
				SYNC_FILE_RANGE_WRITE);
		s->synced = s->wbuf_off;
	}
	return 0;
}

static zip_int64_t fsrc_write(struct file_src *s, const void *data,
			      zip_uint64_t len)
{
	int ret = 0;

	/* a seek, or no room: write out what is buffered */
	if (s->wbuf_len && (s->wpos != s->wbuf_off + s->wbuf_len ||
			    len > COMMIT_WBUF - s->wbuf_len))
		ret = fsrc_flush(s);
	if (!ret && !s->wbuf_len)
		s->wbuf_off = s->wpos;
	if (!ret && len >= COMMIT_WBUF)
		ret = io_pwrite_all(s->tmp_fd, data, (size_t)len, s->wpos);
	else if (!ret) {
		memcpy(s->wbuf + s->wbuf_len, data, (size_t)len);
		s->wbuf_len += (size_t)len;
	}
	if (ret)
		return ar_fsrc_fail(s, ZIP_ER_WRITE, -ret, "%s: writing the new "
				    "archive: %s", s->a->path, strerror(-ret));
	s->wpos += len;
	if (s->wpos > s->wsize)
		s->wsize = s->wpos;
	return (zip_int64_t)len;
}

void ar_fsrc_rollback(struct file_src *s)
{
	archive_close(s->opened);
	s->opened = NULL;
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	s->tmp_fd = -1;
	if (s->tmp_path)
		unlink(s->tmp_path);
	free(s->tmp_path);
	s->tmp_path = NULL;
	s->wbuf_len = 0;
}

int ar_fsrc_begin(struct file_src *s)
{
	const char *base = strrchr(s->a->path, '/') + 1;
	size_t len;
	int e;

	ar_fsrc_rollback(s);
	len = strlen(s->dir) + strlen(base) + 32;
	s->tmp_path = malloc(len);
	if (!s->tmp_path) {
		ar_fsrc_fail(s, ZIP_ER_MEMORY, ENOMEM, "out of memory");
		return -s->fail_errno;
	}
	/* stay below NAME_MAX with long archive names */
	snprintf(s->tmp_path, len, "%s/.%.200s.npzfs-XXXXXX",
		 strcmp(s->dir, "/") ? s->dir : "", base);
	s->tmp_fd = mkostemp(s->tmp_path, O_CLOEXEC);
	if (s->tmp_fd < 0) {
		e = errno;
		free(s->tmp_path);
		s->tmp_path = NULL;
		ar_fsrc_fail(s, ZIP_ER_TMPOPEN, e, "cannot create a temporary "
			     "file in %s: %s", s->dir, strerror(e));
		return -s->fail_errno;
	}
	s->wbuf_off = s->wbuf_len = 0;
	s->synced = 0;
	s->wpos = s->wsize = 0;
	return 0;
}

int ar_fsrc_adopt(struct file_src *s, int fd)
{
	const char *base = strrchr(s->a->path, '/') + 1;
	char proc[64];
	size_t len;
	int e = EEXIST;

	ar_fsrc_rollback(s);
	len = strlen(s->dir) + strlen(base) + 32;
	s->tmp_path = malloc(len);
	if (!s->tmp_path)
		return -ENOMEM;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* a fresh name as mkostemp() would make one, then the link */
	for (int tries = 0; tries < 8 && e == EEXIST; tries++) {
		int x;

		snprintf(s->tmp_path, len, "%s/.%.200s.npzfs-XXXXXX",
			 strcmp(s->dir, "/") ? s->dir : "", base);
		x = mkostemp(s->tmp_path, O_CLOEXEC);
		if (x < 0) {
			e = errno;
			break;
		}
		close(x);
		unlink(s->tmp_path);
		e = 0;
		if (linkat(AT_FDCWD, proc, AT_FDCWD, s->tmp_path,
			   AT_SYMLINK_FOLLOW) < 0 &&
		    linkat(fd, "", AT_FDCWD, s->tmp_path, AT_EMPTY_PATH) < 0)
			e = errno;
	}
	if (!e) {
		s->tmp_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (s->tmp_fd < 0) {
			e = errno;
			unlink(s->tmp_path);
		}
	}
	if (e) {
		free(s->tmp_path);
		s->tmp_path = NULL;
		return -e;
	}
	s->wbuf_off = s->wbuf_len = 0;
	s->synced = 0;
	s->wpos = s->wsize = 0;
	return 0;
}

/* Open the new archive from the temporary file's descriptor, before the
 * rename: once the file is at the archive's path the commit has happened,
 * and opening it again by path could fail (EMFILE, a path renamed away, a
 * mode without read permission).  A failure here fails the commit cleanly:
 * the archive on disk is still the old one. */
static int fsrc_open_new(struct file_src *s)
{
	struct npz_err err = { "" };
	int ret;

	archive_close(s->opened);
	s->opened = NULL;
	ret = ar_open_fd(s->tmp_fd, s->a->path, &s->opened, &err);
	if (ret)
		ar_fsrc_fail(s, ret == -ENOMEM ? ZIP_ER_MEMORY : ZIP_ER_READ,
			     -ret, "%s: the new archive cannot be opened: %s",
			     s->a->path, err.msg[0] ? err.msg : strerror(-ret));
	return ret;
}

int ar_fsrc_finish(struct file_src *s)
{
	const struct stat *st = &s->a->st;
	char msg[NPZ_ERR_MSG_MAX];
	int ret, dfd, e;


	ret = fsrc_flush(s);
	if (ret) {
		ar_fsrc_fail(s, ZIP_ER_WRITE, -ret, "%s: writing the new "
			     "archive: %s", s->a->path, strerror(-ret));
		return ret;
	}
	if (fsync(s->tmp_fd) < 0)
		return fsrc_sys_fail(s, ZIP_ER_WRITE, "fsync of", s->tmp_path);
	/* owner first: chown clears set-id bits; keep the group at least */
	if (fchown(s->tmp_fd, st->st_uid, st->st_gid) < 0)
		(void)!fchown(s->tmp_fd, (uid_t)-1, st->st_gid);
	if (fchmod(s->tmp_fd, st->st_mode & 07777) < 0)
		return fsrc_sys_fail(s, ZIP_ER_WRITE, "chmod of", s->tmp_path);
	/* after fchown and fchmod: the new archive records the final mode
	 * and owner, which the next commit gives its own file */
	ret = fsrc_open_new(s);
	if (ret)
		return ret;
	e = close(s->tmp_fd);
	s->tmp_fd = -1;
	if (e < 0)
		return fsrc_sys_fail(s, ZIP_ER_CLOSE, "closing", s->tmp_path);
	ret = ar_check_same_file(s->a, msg, sizeof(msg));
	if (ret) {
		ar_fsrc_fail(s, ZIP_ER_RENAME, -ret, "%s", msg);
		return ret;
	}
	if (rename(s->tmp_path, s->a->path) < 0) {
		e = errno;
		ar_fsrc_fail(s, ZIP_ER_RENAME, e, "renaming %s to %s: %s",
			     s->tmp_path, s->a->path, strerror(e));
		return -e;
	}
	free(s->tmp_path);
	s->tmp_path = NULL;
	/* The new archive is in place: a failure to make the rename durable
	 * can only be logged. */
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		npz_log("%s: fsync of the directory: %s", s->dir,
			strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return 0;
}

/* libzip removes an archive left without members; we write an empty one. */
static zip_int64_t fsrc_remove(struct file_src *s)
{
	if (ar_fsrc_begin(s))
		return -1;
	if (fsrc_write(s, empty_zip, sizeof(empty_zip)) < 0 ||
	    ar_fsrc_finish(s)) {
		ar_fsrc_rollback(s);
		return -1;
	}
	return 0;
}

static zip_int64_t fsrc_read(struct file_src *s, void *data, zip_uint64_t len)
{
	uint64_t size = s->a->file_size;
	ssize_t n;

	if (s->rpos >= size)
		return 0;
	if (len > size - s->rpos)
		len = size - s->rpos;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (s->rpos < s->rbuf_off || s->rpos >= s->rbuf_off + s->rbuf_len) {
		if (len >= COMMIT_RBUF) {
			n = ar_pread_full(s->a->fd, data, (size_t)len, s->rpos);
			goto out_check;
		}
		n = ar_pread_full(s->a->fd, s->rbuf, COMMIT_RBUF, s->rpos);
		if (n < 0)
			goto out_check;
		s->rbuf_off = s->rpos;
		s->rbuf_len = (size_t)n;
		if (s->rbuf_len == 0)
			goto out_check;
	}
	n = (ssize_t)(s->rbuf_off + s->rbuf_len - s->rpos);
	if ((zip_uint64_t)n > len)
		n = (ssize_t)len;
	memcpy(data, s->rbuf + (s->rpos - s->rbuf_off), (size_t)n);
out_check:
	if (n < 0)
		return ar_fsrc_fail(s, ZIP_ER_READ, (int)-n, "reading %s: %s",
				    s->a->path, strerror((int)-n));
	if (n == 0)
		return ar_fsrc_fail(s, ZIP_ER_READ, EIO, "reading %s: file "
				    "shrank", s->a->path);
	s->rpos += (uint64_t)n;
	return n;
}

static zip_int64_t fsrc_cb(void *ud, void *data, zip_uint64_t len,
			   zip_source_cmd_t cmd)
{
	struct file_src *s = ud;
	zip_int64_t off;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		s->rpos = 0;
		return 0;
	case ZIP_SOURCE_READ:
		return fsrc_read(s, data, len);
	case ZIP_SOURCE_CLOSE:
		return 0;
	case ZIP_SOURCE_SEEK:
		off = zip_source_seek_compute_offset(s->rpos, s->a->file_size,
						     data, len, &s->error);
		if (off < 0)
			return -1;
		s->rpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL:
		return (zip_int64_t)s->rpos;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len,
						     &s->error);
		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = s->a->file_size;
		st->mtime = s->a->st.st_mtime;
		st->valid = ZIP_STAT_SIZE | ZIP_STAT_MTIME;
		return sizeof(*st);
	}
	case ZIP_SOURCE_BEGIN_WRITE:
		return ar_fsrc_begin(s) ? -1 : 0;
	case ZIP_SOURCE_WRITE:
		return fsrc_write(s, data, len);
	case ZIP_SOURCE_SEEK_WRITE:
		off = zip_source_seek_compute_offset(s->wpos, s->wsize, data,
						     len, &s->error);
		if (off < 0)
			return -1;
		s->wpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL_WRITE:
		return (zip_int64_t)s->wpos;
	case ZIP_SOURCE_COMMIT_WRITE:
		return ar_fsrc_finish(s) ? -1 : 0;
	case ZIP_SOURCE_ROLLBACK_WRITE:
		ar_fsrc_rollback(s);
		return 0;
	case ZIP_SOURCE_REMOVE:
		return fsrc_remove(s);
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&s->error, data, len);
	case ZIP_SOURCE_FREE:
		return 0;	/* s belongs to archive_commit() */
	case ZIP_SOURCE_SUPPORTS:
		return ZIP_SOURCE_SUPPORTS_WRITABLE;
	default:
		zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

struct archive *ar_fsrc_take_new(struct file_src *s)
{
	struct archive *a = s->opened;

	s->opened = NULL;
	return a;
}

zip_source_t *ar_fsrc_source(struct file_src *s, zip_error_t *ze)
{
	return zip_source_function_create(fsrc_cb, s, ze);
}

int ar_fsrc_init(struct file_src *s, struct archive *a)
{
	char *slash;

	memset(s, 0, sizeof(*s));
	s->a = a;
	s->tmp_fd = -1;
	zip_error_init(&s->error);
	slash = strrchr(a->path, '/');
	s->dir = slash == a->path ? strdup("/")
				  : strndup(a->path, (size_t)(slash - a->path));
	s->rbuf = malloc(COMMIT_RBUF);
	s->wbuf = malloc(COMMIT_WBUF);
	if (!s->dir || !s->rbuf || !s->wbuf)
		return -ENOMEM;
	return 0;
}

void ar_fsrc_release(struct file_src *s)
{
	ar_fsrc_rollback(s);	/* no temporary file survives a failure */
	zip_error_fini(&s->error);
	free(s->wbuf);
	free(s->rbuf);
	free(s->dir);
}

int archive_clean_temps(const char *path)
{
	char dcopy[PATH_MAX], bcopy[PATH_MAX], prefix[256];
	const char *dir, *base;
	struct dirent *d;
	size_t plen;
	DIR *dp;
	int removed = 0, lfd;

	if (strlen(path) >= PATH_MAX)
		return 0;
	strcpy(dcopy, path);
	strcpy(bcopy, path);
	dir = dirname(dcopy);
	base = basename(bcopy);
	snprintf(prefix, sizeof(prefix), ".%.200s.npzfs-", base);
	plen = strlen(prefix);
	/* a temporary file of a commit running right now is not stale */
	lfd = ar_lock_take(path, false);
	if (lfd == -EAGAIN)
		return 0;
	dp = opendir(dir);
	if (!dp) {
		if (lfd >= 0)
			close(lfd);
		return 0;
	}
	while ((d = readdir(dp))) {
		if (strncmp(d->d_name, prefix, plen) ||
		    strlen(d->d_name) != plen + 6)
			continue;
		if (!unlinkat(dirfd(dp), d->d_name, 0))
			removed++;
	}
	closedir(dp);
	if (lfd >= 0)
		close(lfd);
	return removed;
}

int archive_create_empty(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, empty_zip, sizeof(empty_zip)) !=
	    (ssize_t)sizeof(empty_zip) || fsync(fd))
		ret = -errno ? -errno : -EIO;
	close(fd);
	return ret;
}
