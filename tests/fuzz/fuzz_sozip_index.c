/* fuzz_sozip_index.c - libFuzzer target over the SOZip index parser
 * (ar_sozip_parse, src/zip/sozip.c).  Input: the member's uncompressed
 * and compressed sizes (8 bytes each, little-endian), one byte choosing its
 * name ("x.npy" or "dir/x.npy"), then the hidden index record (local
 * header, name, extra field, index data).  Invariants: no crash, no leak,
 * no UB, no read outside the record; a refusal is -ENOENT, or -EINVAL with
 * a message; an accepted index has ceil(size / chunk_size) chunks, chunk
 * size at least 1 KiB, offsets from 0 strictly increasing to comp_size. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/zip/zip_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sozip_index: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "x.npy", "dir/x.npy" };
	struct sozip_map *x = NULL;
	struct npz_err err = { "" };
	uint64_t usize, csize;
	unsigned char *rec;
	const char *name;
	size_t len;
	int ret;

	if (size < 17)
		return 0;
	usize = get64(data);
	csize = get64(data + 8);
	name = names[data[16] & 1];
	len = size - 17;
	/* a copy of exactly the record's length: ASan sees any overread */
	rec = malloc(len ? len : 1);
	if (!rec)
		return 0;
	memcpy(rec, data + 17, len);
	ret = ar_sozip_parse(rec, len, name, strlen(name), usize, csize, &x,
			     &err);
	if (ret == 0) {
		check(x != NULL, "no index");
		check(x->chunk_size >= 1024, "chunk size");
		check(x->nchunks >= 2 && (x->nchunks - 1) * x->chunk_size < usize &&
		      x->nchunks * x->chunk_size >= usize, "chunk count");
		check(x->off[0] == 0 && x->off[x->nchunks] == csize, "ends");
		for (uint64_t k = 0; k < x->nchunks; k++)
			check(x->off[k] < x->off[k + 1], "offsets increase");
		ar_sozip_free(x);
	} else {
		check(ret == -ENOENT || ret == -ENOMEM ||
		      (ret == -EINVAL && err.msg[0]), "refusal");
		check(x == NULL, "index on failure");
	}
	free(rec);
	return 0;
}
