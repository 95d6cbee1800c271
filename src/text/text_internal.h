/* text_internal.h - helpers shared by text_format.c and text_parse.c only.
 *
 * Not part of any public interface: the power-of-ten table (Schubfach when
 * rendering, Eisel-Lemire when parsing), byte order, float16 and calendar
 * arithmetic, the flattening of structured dtypes into leaf columns, and
 * short dtype names for messages.
 */
#ifndef NPZFS_TEXT_INTERNAL_H
#define NPZFS_TEXT_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "npy.h"

/* text_pow10[k - TEXT_POW10_MIN] = {hi, lo}: floor(10^k / 2^r) with r
 * chosen so that 2^127 <= value < 2^128 (the 128-bit significand of 10^k,
 * truncated).  Defined in text_format.c. */
#define TEXT_POW10_MIN (-342)
#define TEXT_POW10_MAX 324
extern const uint64_t text_pow10[TEXT_POW10_MAX - TEXT_POW10_MIN + 1][2];

/* floor(log2(10^e)) for |e| <= 1233. */
static inline int text_floor_log2_pow10(int e)
{
	return (e * 1741647) >> 19;
}

/* Structured dtypes are shown as flat columns: one leaf per scalar. */
struct text_leaf {
	const struct npy_dtype *dt;	/* scalar kind, never NPY_RECORD */
	size_t offset;			/* within the record */
};

#define TEXT_MAX_LEAVES (1u << 24)
#define TEXT_MAX_ITEMSIZE (64u << 20)	/* larger elements have no text view */
#define TEXT_MAX_EMPTY_COUNT (1ull << 32)	/* elements of itemsize 0 */

/* Flatten dt (NPY_RECORD) into *leaves (malloc'd, *n entries, possibly 0).
 * Returns 0, -ENOMEM, or -EINVAL when there are more than TEXT_MAX_LEAVES. */
int text_leaves(const struct npy_dtype *dt, struct text_leaf **leaves,
		size_t *n);

/* Short name for messages: "float64", "uint8", "U5", "datetime64[s]". */
void text_dtype_name(const struct npy_dtype *dt, char *out, size_t size);

/* Fortran-order band size in bytes (32 MiB); tests lower it to exercise
 * the multi-band and element-at-a-time paths.  Defined in text_format.c. */
extern size_t text_band_bytes;

/* Test hooks of text_parse.c's fast path: body bytes per chunk (1 MiB),
 * threads (0: two when there are two CPUs; 1: one), false to always take
 * the general path (the reference the fast path must agree with), and the
 * widest SIMD its token count may use (2: AVX2 where the CPU has it, 1:
 * SSE2, 0: none). */
extern size_t text_parse_chunk_bytes;
extern int text_parse_threads;
extern bool text_parse_fast;
extern int text_parse_simd;

/* True if dt is a scalar (non-record) kind with a size we can show. */
bool text_scalar_ok(const struct npy_dtype *dt);

/* 0, or -EINVAL with a message if the array has no text view: objects,
 * unsupported scalar sizes, elements over TEXT_MAX_ITEMSIZE, more than
 * TEXT_MAX_EMPTY_COUNT elements of itemsize 0. */
int text_check_dtype(const struct npy_dtype *dt, uint64_t count,
		     struct npz_err *err);

/* The "C" locale, for snprintf/strtod of long doubles and fallbacks. */
locale_t text_c_locale(void);

/* ---- byte order ---- */

static inline uint16_t text_ld16(const void *p, bool swap)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return swap ? __builtin_bswap16(v) : v;
}

static inline uint32_t text_ld32(const void *p, bool swap)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return swap ? __builtin_bswap32(v) : v;
}

static inline uint64_t text_ld64(const void *p, bool swap)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return swap ? __builtin_bswap64(v) : v;
}

static inline void text_st16(void *p, uint16_t v, bool swap)
{
	if (swap)
		v = __builtin_bswap16(v);
	memcpy(p, &v, 2);
}

static inline void text_st32(void *p, uint32_t v, bool swap)
{
	if (swap)
		v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

static inline void text_st64(void *p, uint64_t v, bool swap)
{
	if (swap)
		v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}

/* Copy n bytes reversed when swap (long double and its padding). */
static inline void text_copy_swapped(void *dst, const void *src, size_t n,
				     bool swap)
{
	if (!swap) {
		memcpy(dst, src, n);
		return;
	}
	const unsigned char *s = src;
	unsigned char *d = dst;
	for (size_t i = 0; i < n; i++)
		d[i] = s[n - 1 - i];
}

/* ---- calendar (proleptic Gregorian, days since 1970-01-01) ---- */

static inline int64_t text_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* a mod b in [0, b) for b > 0, without overflow. */
static inline int64_t text_floor_mod(int64_t a, int64_t b)
{
	int64_t r = a % b;

	return r < 0 ? r + b : r;
}

/* days -> y/m/d for any int64 day count (after H. Hinnant). */
static inline void text_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	/* Split off whole 400-year eras first so nothing overflows. */
	int64_t era = text_floor_div(z, 146097);
	int64_t doe = text_floor_mod(z, 146097) + 719468;	/* from 0000-03-01 */

	era += doe / 146097;
	doe %= 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = era * 400 + yoe + (*m <= 2);
}

static inline bool text_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline int text_month_days(int64_t y, int m)
{
	static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				    30, 31 };
	return m == 2 && text_is_leap(y) ? 29 : md[m - 1];
}

/* Units below a day: how many per day (0 for Y/M/W/D/generic), and the
 * count of fraction digits when rendered after the seconds. */
static inline int text_unit_frac_digits(enum npy_unit u)
{
	switch (u) {
	case NPY_UNIT_ms: return 3;
	case NPY_UNIT_us: return 6;
	case NPY_UNIT_ns: return 9;
	case NPY_UNIT_ps: return 12;
	case NPY_UNIT_fs: return 15;
	case NPY_UNIT_as: return 18;
	default: return 0;
	}
}

#endif
