/* format_internal.h - what the renderers of src/text/ share: the output
 * buffer, digit writers and the float16/32/64 renderers.
 *
 * The inline functions here sit in the hot loops of format.c (every
 * element of a float64 view goes through fmt_f64): keep them static inline
 * so that the compiler inlines them into emit() and text_fmt_fixed().
 */
#ifndef NPZFS_TEXT_FORMAT_INTERNAL_H
#define NPZFS_TEXT_FORMAT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "text.h"
#include "text_internal.h"

#define OUT_CAP (64u << 10)	/* sink chunk size */
#define ELEM_MAX 160		/* longest fixed-size element text */

/* ---- output buffer (format_scalar.c) ---- */

struct ob {
	char *buf;
	size_t len;
	const struct text_sink *sink;
	int ret;		/* first sink error; later output is dropped */
};

/* Hand what o holds to the sink (unless it failed before) and empty it. */
void text_ob_flush(struct ob *o);

/* Append n bytes, flushing as often as needed. */
void text_ob_put(struct ob *o, const void *p, size_t n);

/* Room for n <= OUT_CAP more bytes; returns where to write them. */
static inline char *ob_room(struct ob *o, size_t n)
{
	if (o->len + n > OUT_CAP)
		text_ob_flush(o);
	return o->buf + o->len;
}

static inline void ob_end(struct ob *o, char *end)
{
	o->len = (size_t)(end - o->buf);
}

/* ---- the data walk (format.c), shared by the text and CSV renderers ---- */

/* One rendering: the layout and what emit() writes each element as. */
struct fmt {
	struct ob ob;
	const struct npy_header *hdr;
	const struct npy_dtype *dt;
	size_t isz;
	struct text_leaf *leaves;	/* records: the columns */
	size_t nleaves;
	uint64_t cols;		/* elements per line */
	uint64_t slice;		/* elements per 2-d slice when ndim >= 3, else 0 */
	uint64_t col;		/* position in the current line */
	uint64_t in_slice;	/* position in the current slice */
	uint64_t nslice;	/* slices started so far */
	struct npz_err *err;
	/* Render n consecutive elements (C order) stored at p: 0 or -errno */
	int (*emit)(struct fmt *f, const unsigned char *p, size_t n);
};

/* Read hdr's data from src in logical (C index) order: C order in blocks
 * of about 1 MiB, Fortran order in transposed bands, and hand it to
 * f->emit.  0 or the first -errno. */
int text_render_body(struct fmt *f, const struct text_src *src);

/* "a %s value cannot be shown as text" in f->err; returns -EINVAL. */
int text_fail_value(struct fmt *f, const struct npy_dtype *dt);

/* ---- digits ---- */

/* "00".."99", two characters each; 10^0 .. 10^19.  Static, a copy in each
 * file that includes this: as extern data, rendering datetimes was 15%
 * slower (the compiler no longer sees the values). */
static const char text_dig2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

static const uint64_t text_pow10_u64[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull,
	10000000000000000000ull,
};

/* Number of decimal digits of v (1 for 0). */
static inline int u64_len(uint64_t v)
{
	uint64_t w = v | 1;	/* same digit count, never 0 */
	int t = ((64 - __builtin_clzll(w)) * 1233) >> 12;

	return t - (w < text_pow10_u64[t]) + 1;
}

/* Write the digits of v so that they end just before end. */
static inline void put_digits(char *end, uint64_t v)
{
	while (v >= 100000000) {
		uint64_t q = v / 100000000;
		uint32_t r = (uint32_t)(v - q * 100000000);
		uint32_t a = r / 10000, b = r % 10000;

		memcpy(end - 2, text_dig2 + 2 * (b % 100), 2);
		memcpy(end - 4, text_dig2 + 2 * (b / 100), 2);
		memcpy(end - 6, text_dig2 + 2 * (a % 100), 2);
		memcpy(end - 8, text_dig2 + 2 * (a / 100), 2);
		end -= 8;
		v = q;
	}
	uint32_t w = (uint32_t)v;
	while (w >= 100) {
		memcpy(end - 2, text_dig2 + 2 * (w % 100), 2);
		end -= 2;
		w /= 100;
	}
	if (w >= 10)
		memcpy(end - 2, text_dig2 + 2 * w, 2);
	else
		end[-1] = (char)('0' + w);
}

static inline char *fmt_u64(char *o, uint64_t v)
{
	int n = u64_len(v);

	put_digits(o + n, v);
	return o + n;
}

static inline __attribute__((always_inline))
char *fmt_i64(char *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return fmt_u64(o, 0 - (uint64_t)v);
	}
	return fmt_u64(o, (uint64_t)v);
}

static inline char *put_str(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* Code point c (at most 0x10ffff, not a surrogate) as UTF-8 at o. */
static inline char *put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		*o++ = (char)c;
	} else if (c < 0x800) {
		*o++ = (char)(0xc0 | c >> 6);
		*o++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*o++ = (char)(0xe0 | c >> 12);
		*o++ = (char)(0x80 | (c >> 6 & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	} else {
		*o++ = (char)(0xf0 | c >> 18);
		*o++ = (char)(0x80 | (c >> 12 & 0x3f));
		*o++ = (char)(0x80 | (c >> 6 & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	}
	return o;
}

/* Python-repr layout of the decimal 0.d[0]d[1]..d[n-1] * 10^(E+1): d has no
 * leading or trailing zeros; E is the exponent of the first digit.  Returns
 * the end of what it wrote at o (shortest.c). */
char *text_fmt_digits(char *o, const char *d, int n, int E);

/* m * 10^e, m >= 1, in repr layout. */
static inline char *fmt_dec(char *o, uint64_t m, int e)
{
	char d[24];
	int n;

	while (m % 10 == 0) {
		m /= 10;
		e++;
	}
	n = u64_len(m);
	put_digits(d + n, m);
	return text_fmt_digits(o, d, n, e + n - 1);
}

/* ---- floats (shortest.c) ---- */

struct dec {
	uint64_t m;
	int e;
};

/* Shortest decimal m * 10^e that rounds (to nearest even) back to the
 * positive finite binary float with exponent field ef and fraction f of mb
 * bits, a normal value being (2^mb + f) * 2^(ef - bias_mb).  Of several
 * shortest candidates the closest is chosen (as Python's repr does). */
struct dec text_shortest(uint64_t f, int ef, int mb, int bias_mb);

/* x87 extended precision in repr style: shortest digits by search with
 * snprintf/strtold in the C locale (slow, but long doubles are rare). */
char *text_fmt_ld(char *o, long double v);

/* A binary float given by its fields, rendered in repr style. */
static inline __attribute__((always_inline))
char *fmt_binary(char *o, bool neg, uint64_t f, int ef, int efmax,
		 int mb, int bias_mb)
{
	if (ef == efmax) {
		if (f)
			return put_str(o, "nan", 3);
		return neg ? put_str(o, "-inf", 4) : put_str(o, "inf", 3);
	}
	if (neg)
		*o++ = '-';
	if (!ef && !f)
		return put_str(o, "0.0", 3);
	struct dec d = text_shortest(f, ef, mb, bias_mb);
	return fmt_dec(o, d.m, d.e);
}

static inline char *fmt_f64(char *o, uint64_t b)
{
	return fmt_binary(o, b >> 63, b & ((1ull << 52) - 1),
			  (int)(b >> 52) & 0x7ff, 0x7ff, 52, 1075);
}

static inline char *fmt_f32(char *o, uint32_t b)
{
	return fmt_binary(o, b >> 31, b & ((1u << 23) - 1),
			  (int)(b >> 23) & 0xff, 0xff, 23, 150);
}

static inline char *fmt_f16(char *o, uint16_t b)
{
	return fmt_binary(o, b >> 15, b & 0x3ff, (b >> 10) & 0x1f, 0x1f, 10, 25);
}

/* ---- one element (format_scalar.c) ---- */

static inline bool is_fixed(enum npy_kind k)
{
	return k != NPY_BYTES && k != NPY_STR && k != NPY_VOID;
}

/* A fixed-size kind (is_fixed(): at most ELEM_MAX bytes of text) at p,
 * written at o; returns its end, or NULL for a value that cannot be shown. */
char *text_fmt_fixed(char *o, const struct npy_dtype *dt, const unsigned char *p);

/* Any scalar kind, into ob; 0, or -EINVAL for a value that cannot be
 * shown. */
int text_fmt_scalar(struct ob *ob, const struct npy_dtype *dt,
		    const unsigned char *p);

#endif
