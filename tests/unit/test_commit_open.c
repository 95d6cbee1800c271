/* test_commit_open.c - archive_commit() hands back the new archive opened
 * from the file it wrote, never by looking the path up again: a commit to
 * an archive its user may write but not read (mode 0200) succeeds, and the
 * new archive serves exactly the bytes written, carries the identity later
 * commits and the in-place-rewrite check compare against.
 * The checks run in a child that, under root, drops to "nobody" (root
 * would read the file whatever its mode); its counts reach test_report(). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive.h"
#include "test.h"

#define NOBODY 65534

static char dir[256];

/* A file dir/name of len bytes, byte i = (i * mul + i / 7) & 0xff; its
 * bytes go to *data (malloc'd).  Returns an open descriptor, or -1. */
static int make_content(const char *name, size_t len, unsigned mul,
			unsigned char **data)
{
	char p[512];
	size_t i;
	int fd;

	*data = malloc(len);
	if (!*data)
		return -1;
	for (i = 0; i < len; i++)
		(*data)[i] = (unsigned char)((i * mul + i / 7) & 0xff);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && write(fd, *data, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static struct archive_change content(const char *name, int fd, size_t len,
				     uint16_t method)
{
	struct archive_change c = { .name = name, .from = -1, .fd = fd,
				    .size = len, .method = method,
				    .level = -1, .mtime = 1700000000 };
	return c;
}

static struct archive_change keep(struct archive *a, const char *name,
				  const char *new_name)
{
	struct archive_change c = { .name = new_name ? new_name : name,
				    .from = -1, .fd = -1 };
	size_t i;

	if (archive_find(a, name, &i) == 0)
		c.from = (ssize_t)i;
	return c;
}

/* Member name of a reads back as exactly want[0..len). */
static bool member_is(struct archive *a, const char *name,
		      const unsigned char *want, size_t len)
{
	unsigned char *got = malloc(len + 1);
	size_t i;
	bool ok;

	ok = got && archive_find(a, name, &i) == 0 &&
	     archive_member(a, i)->size == len &&
	     archive_member_read(a, i, got, len + 1, 0, NULL) == (ssize_t)len &&
	     memcmp(got, want, len) == 0;
	free(got);
	return ok;
}

static bool no_temp_left(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q npzfs-", dir);
	return system(cmd) != 0;
}

/* The content of the commits: data[k] (len[k] bytes) in file fd[k]. */
struct fixture {
	unsigned char *data[3];
	size_t len[3];
	int fd[3];
};

/* As root: content files and, at path, an archive of two members whose
 * mode is 0200 (written by a commit, so that the mode recorded at open is
 * the one the next commit gives its file).  Returns 0 and *b open. */
static int setup(const char *path, struct fixture *fx, struct archive **b)
{
	static const size_t len[3] = { 70000, 300000, 200000 };
	struct archive *a = NULL, *c = NULL;
	struct archive_change ch[2];
	int k, ret;

	for (k = 0; k < 3; k++) {
		fx->len[k] = len[k];
		fx->fd[k] = make_content((const char *[]){ "c0", "c1", "c2" }[k],
					 len[k], (unsigned)(2 * k + 1),
					 &fx->data[k]);
		if (fx->fd[k] < 0)
			return -1;
	}
	ch[0] = content("x.npy", fx->fd[0], len[0], ARCHIVE_STORE);
	ch[1] = content("y.npy", fx->fd[1], len[1], ARCHIVE_DEFLATE);
	ret = archive_create_empty(path);
	if (!ret)
		ret = archive_open(path, &a, NULL);
	if (!ret)
		ret = archive_commit(a, ch, 2, &c, NULL);
	archive_close(a);
	archive_close(c);
	if (!ret)
		ret = chmod(path, 0200);
	return ret ? ret : archive_open(path, b, NULL);
}

/* A commit to b when its user may write the file but not read it. */
static void check_write_only(const char *path, struct fixture *fx,
			     struct archive *b, struct archive **c)
{
	struct archive_change ch[3];
	struct npz_err err = { "" };
	struct stat sb;
	int ret;

	test_cond("write-only archive: open() fails with EACCES",
		  open(path, O_RDONLY) < 0 && errno == EACCES);
	ch[0] = keep(b, "x.npy", NULL);
	ch[1] = content("y.npy", fx->fd[2], fx->len[2], ARCHIVE_DEFLATE);
	ch[2] = content("z.npy", fx->fd[0], fx->len[0], ARCHIVE_STORE);
	ret = archive_commit(b, ch, 3, c, &err);
	if (ret)
		printf("commit: %s (%s)\n", strerror(-ret), err.msg);
	test_cond("commit to a write-only archive succeeds", ret == 0 && *c);
	if (!*c)
		return;
	test_cond("new archive: kept member",
		  member_is(*c, "x.npy", fx->data[0], fx->len[0]));
	test_cond("new archive: replaced member",
		  member_is(*c, "y.npy", fx->data[2], fx->len[2]));
	test_cond("new archive: added member",
		  member_is(*c, "z.npy", fx->data[0], fx->len[0]));
	test_cond("new archive: path, mtime and mode", stat(path, &sb) == 0 &&
		  strcmp(archive_path(*c), path) == 0 &&
		  archive_mtime(*c) == sb.st_mtime &&
		  (sb.st_mode & 07777) == 0200);
	test_cond("no temporary file left", no_temp_left());
}

/* What c recorded lets later commits through and shows a rewrite. */
static void check_identity(const char *path, struct fixture *fx,
			   struct archive *c)
{
	struct archive *d = NULL, *e = NULL;
	struct archive_change ch[3];
	struct npz_err err = { "" };
	int fd;

	/* unchanged list: libzip writes nothing, the archive is opened
	 * again from the current descriptor */
	ch[0] = keep(c, "x.npy", NULL);
	ch[1] = keep(c, "y.npy", NULL);
	ch[2] = keep(c, "z.npy", NULL);
	test_cond("unchanged commit", archive_commit(c, ch, 3, &d, &err) == 0 &&
		  d && member_is(d, "y.npy", fx->data[2], fx->len[2]));
	archive_close(d);
	d = NULL;

	ch[0] = keep(c, "z.npy", "w.npy");
	ch[1] = keep(c, "x.npy", NULL);
	test_cond("next commit: no ESTALE",
		  archive_commit(c, ch, 2, &d, &err) == 0 && d);
	if (!d)
		return;
	test_cond("next commit: content", archive_count(d) == 2 &&
		  member_is(d, "w.npy", fx->data[0], fx->len[0]) &&
		  member_is(d, "x.npy", fx->data[0], fx->len[0]));

	fd = open(path, O_WRONLY | O_APPEND);
	test_cond("append to the archive", fd >= 0 && write(fd, "x", 1) == 1);
	if (fd >= 0)
		close(fd);
	test_cond("rewritten in place: reads fail",
		  !member_is(d, "x.npy", fx->data[0], fx->len[0]));
	ch[0] = keep(d, "w.npy", NULL);
	test_cond("rewritten in place: commit ESTALE",
		  archive_commit(d, ch, 1, &e, &err) == -ESTALE && !e);
	archive_close(d);
}

/* The child: set up as root, then check as nobody.  Exit status 99:
 * not root. */
static void checks(const char *path)
{
	struct fixture fx = { { NULL, NULL, NULL }, { 0, 0, 0 }, { -1, -1, -1 } };
	struct archive *b = NULL, *c = NULL;
	int k;

	if (geteuid() != 0)
		_exit(99);
	test_cond("setup", setup(path, &fx, &b) == 0);
	if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		_exit(99);
	if (b)
		check_write_only(path, &fx, b, &c);
	if (c)
		check_identity(path, &fx, c);
	archive_close(c);
	archive_close(b);
	for (k = 0; k < 3; k++) {
		free(fx.data[k]);
		if (fx.fd[k] >= 0)
			close(fx.fd[k]);
	}
}

/* Run checks() in a child; add its counts to ours. */
static void run_checks(const char *path)
{
	int fds[2], counts[2] = { 0, 0 }, status = 0;
	pid_t pid;

	if (pipe(fds) < 0) {
		test_cond("pipe", 0);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		checks(path);
		fflush(stdout);
		counts[0] = test_passed_;
		counts[1] = test_failed_;
		/* exit(), not _exit(): a sanitized build checks for leaks */
		exit(write(fds[1], counts, sizeof(counts)) ==
		     (ssize_t)sizeof(counts) ? 0 : 1);
	}
	close(fds[1]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 99) {
		printf("skip: needs root to drop privileges\n");
	} else {
		test_cond("child ran", pid > 0 && WIFEXITED(status) &&
			  WEXITSTATUS(status) == 0 &&
			  read(fds[0], counts, sizeof(counts)) ==
				  (ssize_t)sizeof(counts));
		test_passed_ += counts[0];
		test_failed_ += counts[1];
	}
	close(fds[0]);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char path[512], cmd[600];

	snprintf(dir, sizeof(dir), "%s/test_commit_open.XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(dir) || chmod(dir, 0777) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/w.npz", dir);
	run_checks(path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return test_report();
}
