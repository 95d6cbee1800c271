/* fuzz_text_parse.c - libFuzzer target over text_parse().
 *
 * Each input is parsed twice: without a base array (dtype from the header
 * line or inferred) and with one of a few base headers.  Checked invariants:
 * failures come with a message; on success begin() ran once, write_at()
 * covered 0 .. data_len exactly once, and the array renders and parses back
 * to the same bytes (NaN payloads aside), the same header and the same text
 * (small arrays only).  Each parse is also done by the general path alone
 * (text_parse_fast off): the fast path, cut into tiny chunks, now and then
 * on two threads, counting with each SIMD width, must give the same result,
 * message, header and data. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Test hooks of the parser's fast path (text_internal.h, defined in fast.c). */
extern size_t text_parse_chunk_bytes;
extern int text_parse_threads;
extern bool text_parse_fast;
extern int text_parse_simd;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEEP_MAX (1u << 20)	/* keep (and re-render) arrays up to 1 MiB */

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_text_parse: %s\n", what);
		abort();
	}
}

struct out {
	int begins;
	uint64_t len, written;
	unsigned char *data;	/* NULL when larger than KEEP_MAX */
	unsigned char *seen;
	struct buf hdr;
	bool threads;		/* begin() says write_at() is thread-safe */
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int out_begin(void *ctx, const struct npy_header *h)
{
	struct out *o = ctx;

	o->begins++;
	o->len = h->data_len;
	if (h->data_len <= KEEP_MAX) {
		o->data = calloc(1, h->data_len + 1);
		o->seen = calloc(1, h->data_len + 1);
		check(o->data && o->seen, "calloc");
	}
	if (npy_header_format(h, &o->hdr))
		return -ENOMEM;
	return o->threads ? 1 : 0;
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct out *o = ctx;

	pthread_mutex_lock(&out_lock);
	check(o->begins == 1, "write_at before begin");
	check(off <= o->len && len <= o->len - off, "write_at out of bounds");
	o->written += len;
	if (o->data) {
		memcpy(o->data + off, buf, len);
		for (size_t i = 0; i < len; i++)
			check(!o->seen[off + i]++, "byte written twice");
	}
	pthread_mutex_unlock(&out_lock);
	return 0;
}

static void out_release(struct out *o)
{
	free(o->data);
	free(o->seen);
	buf_release(&o->hdr);
	memset(o, 0, sizeof(*o));
}

struct mem {
	const unsigned char *p;
	uint64_t len;
};

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	check(off <= m->len && len <= m->len - off, "read out of bounds");
	memcpy(buf, m->p + off, len);
	return 0;
}

static int sink_write(void *ctx, const void *p, size_t n)
{
	return buf_add(ctx, p, n);
}

/* The general path's result must be the fast path's. */
static void check_general(const char *text, size_t size,
			  const struct npy_header *base, int ret,
			  const struct npz_err *err, const struct out *o)
{
	struct out g = { 0 };
	struct text_out out = { out_begin, out_write_at, &g };
	struct npy_header h;
	struct npz_err gerr = { { 0 } };
	int gret;

	text_parse_fast = false;
	gret = text_parse(text, size, base, &h, &out, &gerr);
	text_parse_fast = true;
	if (gret != ret || strcmp(gerr.msg, err->msg))
		fprintf(stderr, "fast: %d '%s', general: %d '%s'\n", ret, err->msg,
			gret, gerr.msg);
	check(gret == ret && !strcmp(gerr.msg, err->msg),
	      "fast path result differs from the general path");
	if (!ret) {
		check(g.hdr.len == o->hdr.len &&
		      !memcmp(g.hdr.data, o->hdr.data, g.hdr.len),
		      "fast path header differs from the general path");
		check(!g.data == !o->data && g.len == o->len &&
		      (!g.data || !memcmp(g.data, o->data, g.len)),
		      "fast path data differs from the general path");
		npy_header_release(&h);
	}
	out_release(&g);
}

static void parse_one(const char *text, size_t size,
		      const struct npy_header *base)
{
	struct out o = { 0 };
	struct text_out out = { out_begin, out_write_at, &o };
	struct npy_header h;
	struct npz_err err = { { 0 } };
	int ret;

	/* chunks of 1 to 64 bytes; two threads for one input in four, three
	 * or four for one in eight each; the token count with AVX2, SSE2 or
	 * neither */
	text_parse_chunk_bytes = 1 + size % 64;
	text_parse_threads = size % 4 == 0 ? 2 : size % 8 == 1 ? 3 : size % 8 == 3 ? 4 : 1;
	text_parse_simd = (int)(size / 4 % 3);
	o.threads = size / 12 % 2;	/* helpers write their own blocks */
	ret = text_parse(text, size, base, &h, &out, &err);
	check_general(text, size, base, ret, &err, &o);
	text_parse_chunk_bytes = 1u << 20;
	text_parse_threads = 0;
	text_parse_simd = 2;
	if (ret) {
		check(ret == -EINVAL && err.msg[0], "failure without a message");
		out_release(&o);
		return;
	}
	check(o.begins == 1 && o.written == h.data_len, "coverage");
	if (o.data && text_viewable(&h)) {
		/* render, parse back: identical */
		struct mem m = { o.data, h.data_len };
		struct text_src src = { mem_read, &m };
		struct buf txt = BUF_INIT;
		struct text_sink sink = { sink_write, &txt };
		struct out o2 = { 0 };
		struct text_out out2 = { out_begin, out_write_at, &o2 };
		struct npy_header h2;

		ret = text_format(&h, &src, &sink, &err);
		if (!ret) {
			ret = text_parse(txt.data, txt.len, NULL, &h2, &out2, &err);
			if (ret)
				fprintf(stderr, "reparse: %s\n", err.msg);
			check(!ret, "rendered text does not parse");
			check(o2.hdr.len == o.hdr.len &&
			      !memcmp(o2.hdr.data, o.hdr.data, o.hdr.len),
			      "header differs after round trip");
			/* NaN signs and payloads are not kept ("-nan" reads
			 * as a negative NaN but renders as "nan") */
			check(o2.len == o.len &&
			      (!memcmp(o2.data, o.data, o.len) ||
			       memmem(txt.data, txt.len, "nan", 3)),
			      "data differs after round trip");
			/* and the text is a fixed point */
			struct mem m2 = { o2.data, h2.data_len };
			struct text_src src2 = { mem_read, &m2 };
			struct buf txt2 = BUF_INIT;
			struct text_sink sink2 = { sink_write, &txt2 };

			check(!text_format(&h2, &src2, &sink2, &err) &&
			      txt2.len == txt.len &&
			      !memcmp(txt2.data, txt.data, txt.len),
			      "text differs after round trip");
			buf_release(&txt2);
			npy_header_release(&h2);
		} else {
			/* datetimes beyond int64 after the unit multiplier */
			check(ret == -EINVAL && err.msg[0], "render failed");
		}
		out_release(&o2);
		buf_release(&txt);
	}
	npy_header_release(&h);
	out_release(&o);
}

static const char *const bases[] = {
	"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
	"{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2, 2), }",
	"{'descr': '<U5', 'fortran_order': False, 'shape': (3,), }",
	"{'descr': '<M8[s]', 'fortran_order': False, 'shape': (), }",
	"{'descr': '>c8', 'fortran_order': False, 'shape': (1, 1, 1, 2), }",
	"{'descr': [('a', '<i2'), ('b', [('x', '>f4')], (2,)), ('', '|V2'), "
	"('s', '|S3')], 'fortran_order': False, 'shape': (2,), }",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct npy_header base[sizeof(bases) / sizeof(bases[0])];
	static int ready;
	const char *text = (const char *)data;

	if (!ready) {
		for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
			check(!npy_header_parse_dict(bases[i], strlen(bases[i]),
						     &base[i], NULL), "base");
		ready = 1;
	}
	parse_one(text, size, NULL);
	parse_one(text, size, &base[size % (sizeof(bases) / sizeof(bases[0]))]);
	return 0;
}
