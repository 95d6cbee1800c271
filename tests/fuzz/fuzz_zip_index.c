/* fuzz_zip_index.c - libFuzzer target over the central-directory reader.
 * Each input is written to a file in /dev/shm and opened with
 * archive_open(); when it opens, every member is read (at most 1 MiB each,
 * so a zip bomb cannot make a run slow), asked for a span, and checked with
 * archive_check_member() (members claiming at most 8 MiB); then the layout
 * is checked and the archive closed.  Invariants: no crash, no leak, no UB;
 * every failure comes with a message; a read never returns more than asked. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define READ_MAX (1u << 20)	/* bytes read per member */
#define CHECK_MAX (8u << 20)	/* biggest member checked */

static char path[64];
static int fd = -1;

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_zip_index: %s\n", what);
		abort();
	}
}

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

static void on_layout(void *ctx, size_t i, const char *msg)
{
	struct archive *a = ctx;

	check(i < archive_count(a) && msg[0], "layout report");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* the inflate cache too lives in RAM */
	setenv("TMPDIR", "/dev/shm", 1);
	snprintf(path, sizeof(path), "/dev/shm/fuzz_zip_index.%d.zip",
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		abort();
	}
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[65536];
	struct archive *a;
	struct npz_err err;
	size_t i, n;
	int ret;

	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	err.msg[0] = '\0';
	ret = archive_open(path, &a, &err);
	if (ret) {
		check(ret < 0 && err.msg[0], "open failed without a message");
		return 0;
	}
	n = archive_count(a);
	for (i = 0; i < n; i++) {
		const struct archive_member *m = archive_member(a, i);
		uint64_t off = 0;
		size_t idx;

		check(m && m->name, "member");
		/* (a name holding a NUL byte is left out of the index) */
		check(m->nul_name ||
		      (archive_find(a, m->name, &idx) == 0 && idx < n &&
		       !strcmp(archive_member(a, idx)->name, m->name)), "find");
		while (off < READ_MAX) {
			ssize_t r;

			err.msg[0] = '\0';
			r = archive_member_read(a, i, buf, sizeof(buf), off, &err);
			if (r < 0) {
				check(r == -ENOMEM || err.msg[0],
				      "read failed without a message");
				break;
			}
			check((size_t)r <= sizeof(buf), "read too much");
			if (r == 0)
				break;
			off += (uint64_t)r;
		}
		{
			uint64_t pos;
			size_t got;
			int sfd;

			ret = archive_member_span(a, i, m->size / 2, 4096, &sfd,
						  &pos, &got, &err);
			check(ret == 0 || ret == -EAGAIN || ret == -EIO ||
			      ret == -ENOMEM, "span");
			check(ret || (got <= 4096 && got <= m->size), "span size");
		}
		if (m->size <= CHECK_MAX) {
			err.msg[0] = '\0';
			ret = archive_check_member(a, i, &err);
			check(ret == 0 || ret == -ENOMEM || err.msg[0],
			      "check failed without a message");
		}
	}
	err.msg[0] = '\0';
	ret = archive_check_layout(a, on_layout, a, &err);
	check(ret >= 0 || ret == -ENOMEM || err.msg[0], "layout failed");
	archive_close(a);
	return 0;
}
