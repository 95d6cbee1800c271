/* test_io.h - an array's data in memory as a text_src, and a text_sink
 * into a buf, each able to fail at its Nth call: the harness of the view
 * tests (test_text.c, test_png.c). */
#ifndef NPZFS_TEST_IO_H
#define NPZFS_TEST_IO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

struct test_mem {
	const unsigned char *p;
	size_t len;
	int fail_at;	/* read number that fails with -EIO, 0 = never */
	int reads;
};

static inline int test_mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct test_mem *m = ctx;

	if (m->fail_at && ++m->reads == m->fail_at)
		return -EIO;
	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

struct test_sinkbuf {
	struct buf b;
	size_t max_chunk;	/* the largest write seen */
	int fail_at, writes;	/* write number that fails with -ENOSPC */
};

static inline int test_sink_write(void *ctx, const void *p, size_t n)
{
	struct test_sinkbuf *s = ctx;

	if (s->fail_at && ++s->writes == s->fail_at)
		return -ENOSPC;
	if (n > s->max_chunk)
		s->max_chunk = n;
	return buf_add(&s->b, p, n);
}

#endif
