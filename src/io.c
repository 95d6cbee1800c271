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

static char *spill_dir;		/* see io_set_spill_dir() */
static char *archive_dir;	/* see io_set_archive_dir() */

/* *slot = a copy of dir (or NULL).  0 or -ENOMEM (*slot unchanged). */
static int set_dir(char **slot, const char *dir)
{
	char *d = dir ? strdup(dir) : NULL;

	if (dir && !d)
		return -ENOMEM;
	free(*slot);
	*slot = d;
	return 0;
}

int io_set_spill_dir(const char *dir)
{
	return set_dir(&spill_dir, dir);
}

int io_set_archive_dir(const char *dir)
{
	return set_dir(&archive_dir, dir);
}

int io_spill_file_adoptable(bool *near)
{
	int fd = -1;

	if (archive_dir)
		fd = open(archive_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_spill_file(near);
	*near = true;
	return fd;
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

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				    (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

/* The "MAJ:MIN" of the last mount on mountpoint, from /proc/self/mountinfo
 * (fields: id, parent, MAJ:MIN, root, mount point, ...).  0 or -errno. */
static int mount_device(const char *mountpoint, char *dev, size_t cap)
{
	char *line = NULL, devf[64], *mp;
	size_t lcap = 0;
	int ret = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (getline(&line, &lcap, f) > 0) {
		char *save = NULL, *tok;
		int field;

		mp = NULL;
		devf[0] = '\0';
		tok = strtok_r(line, " ", &save);
		for (field = 0; tok && field < 5; field++) {
			if (field == 2)
				snprintf(devf, sizeof(devf), "%s", tok);
			if (field == 4)
				mp = tok;
			if (field < 4)
				tok = strtok_r(NULL, " ", &save);
		}
		if (!mp || !devf[0])
			continue;
		unescape_octal(mp);
		if (!strcmp(mp, mountpoint) && strlen(devf) < cap) {
			strcpy(dev, devf);
			ret = 0;	/* keep looking: the last one is on top */
		}
	}
	free(line);
	fclose(f);
	return ret;
}

int io_set_readahead(const char *mountpoint, unsigned kb)
{
	char dev[64], path[128], val[16];
	int fd, ret, n;

	ret = mount_device(mountpoint, dev, sizeof(dev));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(val, sizeof(val), "%u\n", kb);
	ret = io_pwrite_all(fd, val, (size_t)n, 0);
	close(fd);
	return ret;
}
