/* fuzz_npy_header.c - libFuzzer target over the .npy header parser.
 * Invariant checked: whatever parses, formats, and parses back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_npy_header: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct npy_header hdr, back, copy;
	struct npz_err err;
	struct buf out = BUF_INIT, descr = BUF_INIT;
	size_t total;
	int ret;

	err.msg[0] = '\0';
	ret = npy_header_size(data, size, &total, &err);
	check(ret == 0 || err.msg[0], "size failed without a message");
	ret = npy_header_parse(data, size, &hdr, &err);
	if (ret) {
		check(err.msg[0] && !hdr.descr && !hdr.dict, "bad failure");
		/* the same bytes as a text view's dict line */
		if (!npy_header_parse_dict((const char *)data, size, &back, NULL))
			npy_header_release(&back);
		return 0;
	}
	check(hdr.header_len <= size && hdr.header_len == total, "header_len");
	check(npy_header_copy(&copy, &hdr) == 0, "copy");

	/* format, then parse back: same dtype, shape, order, descr */
	check(npy_header_format(&hdr, &out) == 0, "format");
	check(out.len % 64 == 0 && out.data[out.len - 1] == '\n', "alignment");
	check(npy_header_parse(out.data, out.len, &back, &err) == 0, "reparse");
	check(back.header_len == out.len && back.ndim == hdr.ndim &&
	      !memcmp(back.shape, hdr.shape, sizeof(hdr.shape)) &&
	      back.fortran_order == hdr.fortran_order &&
	      back.count == hdr.count && back.data_len == hdr.data_len &&
	      back.dtype.itemsize == hdr.dtype.itemsize &&
	      back.dtype.kind == hdr.dtype.kind &&
	      back.dtype.nfields == hdr.dtype.nfields &&
	      !strcmp(back.descr, hdr.descr), "reparse differs");
	npy_header_release(&back);

	/* the dtype spelled by npy_dtype_format parses to the same thing, and
	 * is a fixed point */
	check(npy_dtype_format(&hdr.dtype, &descr) == 0, "dtype_format");
	free(copy.descr);
	copy.descr = NULL;
	buf_reset(&out);
	check(npy_header_format(&copy, &out) == 0, "format from dtype");
	check(npy_header_parse(out.data, out.len, &back, &err) == 0,
	      "reparse from dtype");
	check(!strcmp(back.descr, descr.data) &&
	      back.dtype.itemsize == hdr.dtype.itemsize &&
	      back.dtype.nfields == hdr.dtype.nfields &&
	      back.count == hdr.count, "dtype round trip differs");
	buf_reset(&descr);
	check(npy_dtype_format(&back.dtype, &descr) == 0 &&
	      !strcmp(back.descr, descr.data), "dtype_format not a fixed point");
	npy_header_release(&back);

	/* and the dict text alone, as the text view uses it */
	check(npy_header_parse_dict(hdr.dict, strlen(hdr.dict), &back, &err) == 0 &&
	      !strcmp(back.descr, hdr.descr) && back.count == hdr.count,
	      "parse_dict(dict)");
	npy_header_release(&back);

	npy_header_release(&copy);
	npy_header_release(&hdr);
	buf_release(&out);
	buf_release(&descr);
	return 0;
}
