/* lock.c - the commit lock: an OFD lock on ".NAME.lock" beside the archive,
 * so that commits to one archive exclude each other across threads,
 * processes and hosts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zip_internal.h"

/* How commits exclude each other.
 *
 * Commits to one archive are mutually exclusive across processes (two
 * mounts, or two hosts on a shared filesystem): an open file description
 * lock (F_OFD_SETLKW: per open file, not per process, so two threads of one
 * daemon exclude each other too; NFS clients turn it into an NLM/NFSv4
 * lock) on ".NAME.lock" beside the archive.  The file is never removed:
 * removing it would let a later opener lock a new file while an older
 * holder still locks the old one.  A killed holder's lock dies with its
 * descriptor, so a stale file never blocks anyone.
 */

/* Open the lock file of the archive at path (created if missing).
 * Returns the descriptor, or -errno. */
static int lock_open(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	char lpath[PATH_MAX];
	int fd;

	if (!slash || (size_t)snprintf(lpath, sizeof(lpath), "%.*s/.%.200s.lock",
				      (int)dlen, path, slash + 1) >= sizeof(lpath))
		return -ENAMETOOLONG;
	fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	return fd < 0 ? -errno : fd;
}

/* Take the commit lock of the archive at path: wait for it, or only try
 * when !wait.  Returns the descriptor that holds it (close it to release),
 * -EAGAIN when !wait and another holds it, -1 when no lock file can be
 * made where the archive is (a read-only directory: no commit can write
 * there either, and fails with its own error), or another -errno. */
int ar_lock_take(const char *path, bool wait)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = lock_open(path), e;

	if (fd == -EACCES || fd == -EROFS || fd == -EPERM)
		return -1;
	if (fd < 0)
		return fd;
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		e = errno;
		if (e == EINTR)
			continue;
		close(fd);
		return e == EWOULDBLOCK ? -EAGAIN : -e;
	}
	return fd;
}
