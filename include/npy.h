/* npy.h - the .npy format: headers (versions 1.0, 2.0, 3.0) and dtypes.
 *
 * Knows nothing of zip archives or text.  All functions are pure and
 * thread-safe (no shared state).  Every parser accepts arbitrary bytes:
 * hostile input yields -EINVAL and a message, never a crash.
 */
#ifndef NPZFS_NPY_H
#define NPZFS_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define NPY_MAXDIMS 64		/* numpy allows 32 (64 in numpy 2) */
#define NPY_MAGIC_LEN 6		/* "\x93NUMPY" */
#define NPY_PREFIX_MAX 12	/* magic + version + 4-byte length */
#define NPY_HEADER_MAX (16u << 20)	/* refuse longer header dicts */

enum npy_kind {
	NPY_BOOL,	/* b1 */
	NPY_INT,	/* i1 i2 i4 i8 */
	NPY_UINT,	/* u1 u2 u4 u8 */
	NPY_FLOAT,	/* f2 f4 f8, f16 = x87 long double in 16 bytes (f12 too) */
	NPY_COMPLEX,	/* c8 c16 c32 (two floats of half the size) */
	NPY_BYTES,	/* S<n> */
	NPY_STR,	/* U<n>: n UCS-4 code units, itemsize 4n */
	NPY_VOID,	/* V<n>: opaque bytes */
	NPY_DATETIME,	/* M8[unit] */
	NPY_TIMEDELTA,	/* m8[unit] */
	NPY_OBJECT,	/* O: pickled objects, never interpreted */
	NPY_RECORD,	/* structured: fields[] */
};

/* Datetime/timedelta units, in numpy's order. */
enum npy_unit {
	NPY_UNIT_GENERIC,	/* 'M8' with no unit */
	NPY_UNIT_Y, NPY_UNIT_M, NPY_UNIT_W, NPY_UNIT_D,
	NPY_UNIT_h, NPY_UNIT_m, NPY_UNIT_s, NPY_UNIT_ms, NPY_UNIT_us,
	NPY_UNIT_ns, NPY_UNIT_ps, NPY_UNIT_fs, NPY_UNIT_as,
};

struct npy_field;

struct npy_dtype {
	enum npy_kind kind;
	char order;		/* '<', '>' or '|' as written in the descr */
	bool swapped;		/* multi-byte data not in host byte order */
	size_t itemsize;	/* bytes per element (for records: total, with padding) */
	enum npy_unit unit;	/* NPY_DATETIME / NPY_TIMEDELTA only */
	int64_t unit_mult;	/* e.g. 10 for 'M8[10s]'; 1 when no multiplier */
	size_t nfields;		/* NPY_RECORD only: named fields, padding excluded */
	struct npy_field *fields;
};

struct npy_field {
	char *name;		/* UTF-8, NUL-terminated, never "" */
	size_t offset;		/* byte offset within the record */
	struct npy_dtype type;	/* element type of the field */
	int ndim;		/* subarray dimensions, 0 for a plain field */
	uint64_t *shape;	/* ndim entries (NULL when ndim == 0) */
	uint64_t count;		/* product of shape, 1 when ndim == 0 */
	char *title;		/* UTF-8 title of a ((title, name), format)
				   entry, else NULL */
};

struct npy_header {
	int major, minor;	/* format version: 1.0, 2.0 or 3.0 */
	size_t header_len;	/* bytes before the array data (magic .. '\n') */
	struct npy_dtype dtype;
	bool fortran_order;
	int ndim;
	uint64_t shape[NPY_MAXDIMS];
	uint64_t count;		/* product of shape (1 for 0-d) */
	uint64_t data_len;	/* count * dtype.itemsize, checked for overflow */
	char *descr;		/* the descr value exactly as written, e.g. "'<f8'"
				   or "[('a', '<i8')]" (heap; may be NULL only in
				   a header built by hand, see npy_header_format) */
	char *dict;		/* the whole dict, e.g. "{'descr': '<f8', ...}"
				   without trailing padding/newline (heap, or NULL) */
};

/* Total header length (magic .. '\n') from the first bytes of a file.
 * Needs len >= NPY_PREFIX_MAX bytes (or the whole file if shorter).
 * Returns 0 and sets *total, or -EINVAL (bad magic/version, too short,
 * header longer than NPY_HEADER_MAX) with a message. */
int npy_header_size(const void *data, size_t len, size_t *total,
		    struct npz_err *err);

/* Parse the header at the start of a .npy file; data must hold at least
 * the whole header (see npy_header_size).  Returns 0, or -EINVAL / -ENOMEM;
 * on failure *hdr is zeroed and owns nothing, and err says why
 * ("shape: expected ')' at byte 41").  Release with npy_header_release(). */
int npy_header_parse(const void *data, size_t len, struct npy_header *hdr,
		     struct npz_err *err);

/* Does a .npy of `size` bytes hold the data hdr promises?  exact: and
 * nothing after it (content written through the mount); else trailing
 * bytes are allowed (members written by others).  An object array
 * (pickled) may have any length.  Returns 0 or -EINVAL with a message. */
int npy_check_data_len(const struct npy_header *hdr, uint64_t size,
		       bool exact, struct npz_err *err);

/* Parse just the header dictionary text ("{'descr': ..., }"), as found in
 * the first line of a text view.  Fills everything but major/minor and
 * header_len, which npy_header_format() decides.  Same errors as above. */
int npy_header_parse_dict(const char *dict, size_t len, struct npy_header *hdr,
			  struct npz_err *err);

/* Free what hdr owns and zero it. Safe on a zeroed header. */
void npy_header_release(struct npy_header *hdr);

/* Deep copy. Returns 0 or -ENOMEM (dst zeroed). */
int npy_header_copy(struct npy_header *dst, const struct npy_header *src);

/* Append the complete header (magic, version, length, dict, padding, '\n')
 * to out, byte-identical to what numpy 1.24's np.save writes for the same
 * dtype/shape/order: version 1.0 unless the dict needs 2.0 (length) or 3.0
 * (non-latin-1 names); 64-byte alignment including numpy's growth-axis
 * spaces.  Uses hdr->descr when set, else npy_dtype_format(&hdr->dtype).
 * Sets nothing in hdr.  Returns 0, -ENOMEM, or -EINVAL (e.g. dict > 4 GiB). */
int npy_header_format(const struct npy_header *hdr, struct buf *out);

/* Append just the dict, "{'descr': D, 'fortran_order': F, 'shape': S, }"
 * as numpy writes it (hdr->descr when set).  Returns 0, -ENOMEM or
 * -EINVAL. */
int npy_header_format_dict(const struct npy_header *hdr, struct buf *out);

/* Build a header for a new array of the given dtype and shape (C order).
 * Copies dt (deep) and computes count/data_len/descr/dict/header_len.
 * Returns 0, -ENOMEM, or -EINVAL on overflow. */
int npy_header_init(struct npy_header *hdr, const struct npy_dtype *dt,
		    int ndim, const uint64_t *shape, bool fortran_order);

/* Parse a descr given as Python literal text: "'<f8'" or
 * "[('a', '<i8'), ('pos', '<f4', (2,))]" (nested lists, subarrays, and
 * ('', '|V4') padding entries as numpy writes them).  Returns 0 or
 * -EINVAL/-ENOMEM with a message; on failure *dt owns nothing. */
int npy_dtype_parse(const char *text, size_t len, struct npy_dtype *dt,
		    struct npz_err *err);

/* Parse a bare type string without quotes: "<f8", "|S3", "<M8[ns]", "b1". */
int npy_dtype_parse_str(const char *s, size_t len, struct npy_dtype *dt,
			struct npz_err *err);

/* Append the descr literal numpy would write (Python repr of dtype.descr). */
int npy_dtype_format(const struct npy_dtype *dt, struct buf *out);

void npy_dtype_release(struct npy_dtype *dt);
int npy_dtype_copy(struct npy_dtype *dst, const struct npy_dtype *src);

/* True if dt is, or contains anywhere, an object ('O') type. */
bool npy_dtype_has_object(const struct npy_dtype *dt);

/* Append the shape as Python writes it: "()", "(5,)", "(2, 3)". */
int npy_shape_format(int ndim, const uint64_t *shape, struct buf *out);

/* Decode one strict UTF-8 sequence (no overlongs, surrogates or values past
 * U+10FFFF) from s[0..len): its length and *cp, or 0 if invalid. */
size_t npy_utf8_get(const unsigned char *s, size_t len, uint32_t *cp);

/* Name of a datetime unit ("ns"), "" for generic. */
const char *npy_unit_name(enum npy_unit unit);

/* The value of hex digit c (either case), or -1.  Shared by the header
 * lexer and the text parser. */
static inline int npy_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
