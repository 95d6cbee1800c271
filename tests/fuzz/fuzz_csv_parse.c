/* fuzz_csv_parse.c - libFuzzer target over csv_parse().
 *
 * The first input byte picks one of a few base headers (plain 1-d and 2-d,
 * Fortran order, strings, a structured array); the rest is the CSV.
 * Checked invariants: a failure is -EINVAL with a message naming a line
 * (or -ENOMEM); on success begin() ran once, write_at() covered 0 ..
 * data_len exactly once, the header keeps base's dtype and number of
 * dimensions, and the array renders to CSV that parses back to the same
 * bytes (small arrays only).  Each input is parsed on one thread and again
 * on two (tiny blocks, pass 1 split): the same result, message and data. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test hooks of src/text/ (text_internal.h). */
extern size_t text_csv_block_bytes, text_csv_split_bytes;
extern int text_parse_threads;
extern int text_parse_simd;

#define KEEP_MAX (1u << 20)

static const char *const bases[] = {
	"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
	"{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }",
	"{'descr': '>f4', 'fortran_order': True, 'shape': (2, 2), }",
	"{'descr': '<U3', 'fortran_order': False, 'shape': (2, 2), }",
	"{'descr': '|S2', 'fortran_order': False, 'shape': (2,), }",
	"{'descr': [('name', '<U2'), ('v', '<c8'), ('p', '<u1', (2,)), ('t', '<M8[s]')], 'fortran_order': False, 'shape': (1,), }",
	"{'descr': '|b1', 'fortran_order': False, 'shape': (4, 1), }",
};

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_csv_parse: %s\n", what);
		abort();
	}
}

struct out {
	int begins;
	uint64_t len, written;
	unsigned char *data, *seen;	/* NULL past KEEP_MAX */
	struct buf hdr;
};

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
	return npy_header_format(h, &o->hdr);
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct out *o = ctx;

	check(o->begins == 1, "write_at before begin");
	check(off <= o->len && len <= o->len - off, "write_at out of bounds");
	o->written += len;
	if (o->data) {
		memcpy(o->data + off, buf, len);
		for (size_t i = 0; i < len; i++)
			check(!o->seen[off + i]++, "byte written twice");
	}
	return 0;
}

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	memcpy(buf, (const unsigned char *)ctx + off, len);
	return 0;
}

static int sink_write(void *ctx, const void *p, size_t n)
{
	return buf_add(ctx, p, n);
}

/* Parse text against base into o; returns csv_parse's result. */
static int parse(const char *text, size_t len, const struct npy_header *base,
		 struct npy_header *h, struct out *o, struct npz_err *err)
{
	struct text_out to = { out_begin, out_write_at, o };

	memset(o, 0, sizeof(*o));
	buf_init(&o->hdr);
	return csv_parse(text, len, base, h, &to, err);
}

static void out_release(struct out *o)
{
	free(o->data);
	free(o->seen);
	buf_release(&o->hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npz_err err = { "" };
	struct npy_header base, h, h2;
	struct out o, o2;
	const char *b;
	int ret;

	if (!size)
		return 0;
	b = bases[data[0] % (sizeof(bases) / sizeof(*bases))];
	check(!npy_header_parse_dict(b, strlen(b), &base, NULL), "base");
	{
		struct npz_err err2 = { "" };
		struct npy_header h2b;
		struct out o2b;
		int ret2;

		text_parse_threads = 2;
		text_parse_simd = 2;	/* 64 bytes at a time, where it can */
		text_csv_block_bytes = 8 + data[0] / 8;
		text_csv_split_bytes = 0;
		ret2 = parse((const char *)data + 1, size - 1, &base, &h2b, &o2b,
			     &err2);
		text_parse_threads = 1;
		text_parse_simd = 0;	/* eight bytes at a time */
		text_csv_block_bytes = 1u << 20;
		text_csv_split_bytes = SIZE_MAX;
		ret = parse((const char *)data + 1, size - 1, &base, &h, &o, &err);
		text_parse_simd = 2;
		check(ret == ret2 && !strcmp(err.msg, err2.msg),
		      "two threads: another result");
		check(ret || (o.len == o2b.len && o.written == o2b.written &&
			      (!o.data || !memcmp(o.data, o2b.data, o.len))),
		      "two threads: other data");
		if (!ret2)
			npy_header_release(&h2b);
		out_release(&o2b);
	}
	if (ret) {
		check(ret == -EINVAL || ret == -ENOMEM, "unexpected error");
		check(ret != -EINVAL || !strncmp(err.msg, "line ", 5) ||
		      strstr(err.msg, "too large"), "message names no line");
	} else {
		check(o.begins == 1 && o.written == h.data_len, "coverage");
		check(h.ndim == base.ndim && h.dtype.itemsize == base.dtype.itemsize,
		      "dtype or dimensions changed");
		if (o.data) {
			struct text_src src = { mem_read, o.data };
			struct buf csv = BUF_INIT;
			struct text_sink sink = { sink_write, &csv };

			/* U code points from UTF-8 are always writable */
			check(!csv_format(&h, &src, &sink, &err), "render");
			check(!parse(csv.data, csv.len, &base, &h2, &o2, &err),
			      "parse of the render");
			check(o2.len == o.len &&
			      o2.hdr.len == o.hdr.len &&
			      !memcmp(o2.hdr.data, o.hdr.data, o.hdr.len),
			      "header of the round trip");
			/* NaN payloads and bool bytes are not kept: compare
			 * the renders instead of the bytes */
			struct buf csv2 = BUF_INIT;
			struct text_src src2 = { mem_read, o2.data };
			struct text_sink sink2 = { sink_write, &csv2 };

			check(!csv_format(&h2, &src2, &sink2, &err), "render 2");
			check(csv2.len == csv.len &&
			      !memcmp(csv2.data, csv.data, csv.len),
			      "render of the round trip");
			npy_header_release(&h2);
			out_release(&o2);
			buf_release(&csv);
			buf_release(&csv2);
		}
		npy_header_release(&h);
	}
	out_release(&o);
	npy_header_release(&base);
	return 0;
}
