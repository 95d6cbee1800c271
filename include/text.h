/* text.h - the text view of an array: render (src/text/format.c) and read back
 * (src/text/parse.c).  Knows nothing of files or archives: data comes from and
 * goes to caller-supplied callbacks, so arrays never need to fit in RAM.
 *
 * Invariant: text_parse(text_format(a)) == a, byte for byte (padding bytes
 * of structured dtypes excepted: they read back as zeros).
 * All functions are reentrant; callbacks are called from the calling thread.
 */
#ifndef NPZFS_TEXT_H
#define NPZFS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "npy.h"

/* Reads `len` bytes of array data (offset 0 = first byte after the npy
 * header) into buf.  Returns 0 or -errno; a short read is an error. */
struct text_src {
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
};

/* Read [off, off + len) of src's data into buf, in reads of at most
 * 8 MiB each.  Returns 0 or src's -errno. */
int text_src_read(const struct text_src *src, void *buf, uint64_t len,
		  uint64_t off);

/* Receives rendered text in order.  Returns 0 or -errno. */
struct text_sink {
	int (*write)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

/* Receives a parsed array: begin() once with the final header (the caller
 * writes npy_header_format(hdr) in front of the data), then write_at()
 * with array data at data offsets (any order, each byte exactly once;
 * the whole 0 .. hdr->data_len range is covered).  Return 0 or -errno;
 * begin() may also return 1: write_at() may then be called from several
 * threads at once (each parse thread writes its own blocks), else every
 * call comes from the thread that called text_parse(). */
struct text_out {
	int (*begin)(void *ctx, const struct npy_header *hdr);
	int (*write_at)(void *ctx, const void *buf, size_t len, uint64_t off);
	void *ctx;
};

/* True if the array has a text view (no object fields anywhere). */
bool text_viewable(const struct npy_header *hdr);

/* An upper bound on the size of the text view of hdr's array, from its
 * element count and the widest text of one element of its dtype (plus
 * the header lines and n-d slice comments).  UINT64_MAX when it does not
 * fit (or for objects). */
uint64_t text_size_bound(const struct npy_header *hdr);

/* Render the text view of the array described by hdr whose data src reads.
 * Output is written to sink in chunks of at most 64 KiB.  Returns 0, or
 * -errno from a callback, or -EINVAL for an object dtype (with message). */
int text_format(const struct npy_header *hdr, const struct text_src *src,
		const struct text_sink *sink, struct npz_err *err);

/* Parse a whole text view held in memory (it may be an mmap of a file).
 * dtype: from the '# {...}' header line when present, else base's dtype
 * (base may be NULL), else inferred (bool, int64, float64, complex128 or
 * U<n>, the narrowest that holds every value).  Shape: the header line's
 * when its element count matches the body, else from the body's layout,
 * keeping the header's number of dimensions where possible.
 * Returns 0 after out->begin + writes, or -EINVAL with a message naming
 * the line ("line 7: '1e999' out of range for float32"), -ENOMEM, or a
 * callback's -errno.  On any error the caller discards what out received. */
int text_parse(const char *text, size_t len, const struct npy_header *base,
	       struct npy_header *hdr, const struct text_out *out,
	       struct npz_err *err);

/* Render one element of a scalar (non-record) dtype at p into out, as in a
 * text view.  Exposed for tests and the xattr code.  Returns 0 / -ENOMEM /
 * -EINVAL (object or record). */
int text_format_scalar(const struct npy_dtype *dt, const void *p,
		       struct buf *out);

#endif
