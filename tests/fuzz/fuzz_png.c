/* fuzz_png.c - libFuzzer target over png_parse().
 *
 * Each input is parsed against a base array whose height and width come
 * from the input's own IHDR when they are small (so that the fuzzer gets
 * past the size check into the pixels), of a kind picked by the input's
 * length (gray8, <u2, >u2, RGB, RGBA; C or Fortran order), and against a
 * fixed 3x4 gray8 base.  Checked invariants: a failure is -EINVAL with a
 * message (or -ENOMEM); on success begin() ran once, write_at() covered
 * the data exactly once, and the array renders (png_format) and parses
 * back to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pngview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIDE_MAX 256

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_png: %s\n", what);
		abort();
	}
}

struct out {
	int begins;
	uint64_t len;
	unsigned char *data, *seen;
};

static int out_begin(void *ctx, const struct npy_header *h)
{
	struct out *o = ctx;

	o->begins++;
	o->len = h->data_len;
	o->data = calloc(1, h->data_len + 1);
	o->seen = calloc(1, h->data_len + 1);
	check(o->data && o->seen, "calloc");
	return 0;
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct out *o = ctx;

	check(o->begins == 1, "write_at before begin");
	check(off <= o->len && len <= o->len - off, "write_at out of bounds");
	memcpy(o->data + off, buf, len);
	for (size_t i = 0; i < len; i++)
		check(!o->seen[off + i]++, "byte written twice");
	return 0;
}

static void out_release(struct out *o)
{
	free(o->data);
	free(o->seen);
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
	check(n <= 65536, "sink chunk over 64 KiB");
	return buf_add(ctx, p, n);
}

static void parse_one(const uint8_t *data, size_t size,
		      const struct npy_header *base)
{
	struct out o = { 0 };
	struct text_out out = { out_begin, out_write_at, &o };
	struct npy_header h;
	struct npz_err err = { { 0 } };
	int ret = png_parse(data, size, base, &h, &out, &err);

	if (ret) {
		check((ret == -EINVAL && err.msg[0]) || ret == -ENOMEM,
		      "failure without a message");
		out_release(&o);
		return;
	}
	check(o.begins == 1 && h.data_len == base->data_len, "header");
	for (uint64_t i = 0; i < o.len; i++)
		check(o.seen[i] == 1, "coverage");

	/* render, parse back: identical */
	struct mem m = { o.data, o.len };
	struct text_src src = { mem_read, &m };
	struct buf png = BUF_INIT;
	struct text_sink sink = { sink_write, &png };
	struct out o2 = { 0 };
	struct text_out out2 = { out_begin, out_write_at, &o2 };
	struct npy_header h2;

	check(!png_format(&h, &src, &sink, &err), "render failed");
	check(png.len <= png_size_bound(&h), "PNG over its size bound");
	check(!png_parse(png.data, png.len, &h, &h2, &out2, &err),
	      "rendered PNG does not parse");
	check(o2.len == o.len && !memcmp(o2.data, o.data, o.len),
	      "data differs after round trip");
	npy_header_release(&h2);
	out_release(&o2);
	buf_release(&png);
	npy_header_release(&h);
	out_release(&o);
}

static const char *const kinds[][2] = {
	{ "|u1", "" }, { "<u2", "" }, { ">u2", "" }, { "|u1", ", 3" },
	{ "|u1", ", 4" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct npy_header fixed;
	static int ready;
	struct npy_header base;
	char dict[160];

	if (!ready) {
		strcpy(dict, "{'descr': '|u1', 'fortran_order': False, "
			     "'shape': (3, 4), }");
		check(!npy_header_parse_dict(dict, strlen(dict), &fixed, NULL),
		      "base");
		ready = 1;
	}
	parse_one(data, size, &fixed);
	if (size >= 24) {
		uint32_t w = (uint32_t)data[16] << 24 | data[17] << 16 |
			     data[18] << 8 | data[19];
		uint32_t h = (uint32_t)data[20] << 24 | data[21] << 16 |
			     data[22] << 8 | data[23];
		size_t k = size % 5;

		if (w && h && w <= SIDE_MAX && h <= SIDE_MAX) {
			snprintf(dict, sizeof(dict), "{'descr': '%s', "
				 "'fortran_order': %s, 'shape': (%u, %u%s), }",
				 kinds[k][0], size / 5 % 2 ? "True" : "False",
				 h, w, kinds[k][1]);
			check(!npy_header_parse_dict(dict, strlen(dict), &base,
						     NULL), "base");
			parse_one(data, size, &base);
			npy_header_release(&base);
		}
	}
	return 0;
}
