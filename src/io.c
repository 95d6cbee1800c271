/* io.c - whole-buffer pwrite and unlinked temporary files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "io.h"

int io_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;

	while (n) {
		ssize_t r = pwrite(fd, c, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

const char *io_tmpdir(void)
{
	return cache_dir();
}

static char *spill_dir;

int io_set_spill_dir(const char *dir)
{
	char *d = dir ? strdup(dir) : NULL;

	if (dir && !d)
		return -ENOMEM;
	free(spill_dir);
	spill_dir = d;
	return 0;
}

int io_spill_file(bool *near)
{
	int fd = -1;

	if (spill_dir)
		fd = open(spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	*near = fd >= 0;
	return fd >= 0 ? fd : io_tmpfile("spill");
}

int io_tmpfile(const char *tag)
{
	const char *dir = io_tmpdir();
	char tmpl[4096];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(tmpl, sizeof(tmpl), "%s/npzfs-%s-XXXXXX", dir, tag);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}
