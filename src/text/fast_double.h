/* fast_double.h - the common decimal, fast: digits eight at a time and
 * Clinger's fast path, inline in fast.c's conversion loop and in
 * decimal.c's text_to_double() and text_to_float() (always_inline: it is
 * the hot loop).
 */
#ifndef NPZFS_TEXT_FAST_DOUBLE_H
#define NPZFS_TEXT_FAST_DOUBLE_H

#include <math.h>
#include <string.h>

#include "parse_internal.h"

static const double pow10_d[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static const uint64_t pow10_u[9] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Digits from p on into *w (w = w * 10 + digit), eight bytes at a time
 * while eight can be read: the count of leading digits in a word comes
 * from a mask, so the loop runs once per eight digits whatever their
 * count (after fast_float's parse_eight_digits_unrolled).  Returns the
 * end of the digits. */
static inline __attribute__((always_inline))
const char *take_digits(const char *p, const char *e, uint64_t *w)
{
	uint64_t x = *w;

	while (e - p >= 8) {
		uint64_t v, d, nd;
		unsigned k, sh;

		memcpy(&v, p, 8);
		d = v ^ 0x3030303030303030ull;	/* digits: bytes 0..9 */
		nd = (((d & 0x7f7f7f7f7f7f7f7full) + 0x7676767676767676ull) | d) &
		     0x8080808080808080ull;	/* top bit: not a digit */
		k = nd ? (unsigned)__builtin_ctzll(nd) >> 3 : 8;
		/* the k digits to the top, zero bytes (leading zeros) below;
		 * two shifts, as k = 0 would shift by 64 */
		sh = 32 - 4 * k;
		d = d << sh << sh;
		d = d * 10 + (d >> 8);
		d = (((d & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
		     (((d >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >> 32;
		x = x * pow10_u[k] + d;
		p += k;
		if (k < 8) {
			*w = x;
			return p;
		}
	}
	for (; p < e && is_digit(*p); p++)
		x = x * 10 + (uint64_t)(*p - '0');
	*w = x;
	return p;
}
#else
static inline const char *take_digits(const char *p, const char *e, uint64_t *w)
{
	uint64_t x = *w;

	for (; p < e && is_digit(*p); p++)
		x = x * 10 + (uint64_t)(*p - '0');
	*w = x;
	return p;
}
#endif

/* The token at p (inside [p, e)) if it is a plain decimal
 * [+-]digits[.digits][(e|E)[+-]digits] of at most 19 significant digits
 * that ends at e or at whitespace: its end, and its digits *w, exponent
 * *exp10 and sign *neg.  Else NULL. */
static inline __attribute__((always_inline))
const char *fast_scan(const char *p, const char *e, uint64_t *wp, int *exp10p,
		      bool *negp)
{
	const char *s, *f;
	uint64_t w = 0;
	bool neg, dot = false;
	int exp10;
	size_t nd;

	if (p >= e)
		return NULL;
	neg = *p == '-';
	p += neg || *p == '+';
	s = p;
	for (; p < e && is_digit(*p); p++)
		w = w * 10 + (uint64_t)(*p - '0');
	f = p;
	if (p < e && *p == '.') {
		dot = true;
		p = take_digits(p + 1, e, &w);
	}
	nd = (size_t)(p - s) - dot;
	if (nd - 1 > 18) {
		/* no digits, or more than 19 (leading zeros do not count) */
		const char *z = s;

		if (!nd || p - s > 100000)
			return NULL;
		while (z < p && (*z == '0' || *z == '.'))
			z++;
		if ((size_t)(p - z) - (dot && z < f) > 19)
			return NULL;
	}
	exp10 = (int)(f + dot - p);	/* minus the digits after the point */
	if (p < e && ch_class[(unsigned char)*p] < CH_WS) {
		bool eneg = false;
		const char *x;
		int ex = 0;

		if ((*p | 0x20) != 'e')
			return NULL;
		if (++p < e && (*p == '-' || *p == '+'))
			eneg = *p++ == '-';
		for (x = p; p < e && is_digit(*p) && p - x < 5; p++)
			ex = ex * 10 + (*p - '0');
		if (p == x || (p < e && ch_class[(unsigned char)*p] < CH_WS))
			return NULL;	/* no digits, over five, or more after */
		exp10 += eneg ? -ex : ex;
	}
	*wp = w;
	*exp10p = exp10;
	*negp = neg;
	return p;
}

/* A plain decimal token at p (fast_scan()) whose double is found without
 * strtod: the end of the token and the correctly rounded double in *out.
 * Else NULL, and text_to_double() decides (it gives the same value for
 * every token accepted here, and the messages for the rest). */
static inline __attribute__((always_inline))
const char *fast_double(const char *p, const char *e, double *out)
{
	uint64_t w;
	int exp10;
	bool neg;

	p = fast_scan(p, e, &w, &exp10, &neg);
	if (!p)
		return NULL;
	if (w <= (1ull << 53) && (unsigned)(exp10 + 22) <= 44) {
		/* Clinger: both operands exact, one rounding; the sign
		 * without a branch (random signs are not predictable) */
		double v = (double)w;
		uint64_t b;

		v = exp10 < 0 ? v / pow10_d[-exp10] : v * pow10_d[exp10];
		memcpy(&b, &v, 8);
		b |= (uint64_t)neg << 63;
		memcpy(out, &b, 8);
		return p;
	}
	/* out of range (inf) is the converter's error, not a value */
	return text_eisel_lemire(w, exp10, neg, out) && !isinf(*out) ? p : NULL;
}

static const float pow10_f[11] = {
	1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f,
};

/* fast_double() for a float: rounded once from the decimal (Clinger in
 * float arithmetic, or Eisel-Lemire), never through a double.  Else NULL,
 * and text_to_float() decides. */
static inline __attribute__((always_inline))
const char *fast_float32(const char *p, const char *e, float *out)
{
	uint64_t w;
	int exp10;
	bool neg;

	p = fast_scan(p, e, &w, &exp10, &neg);
	if (!p)
		return NULL;
	if (w <= (1ull << 24) && (unsigned)(exp10 + 10) <= 20) {
		float v = (float)w;
		uint32_t b;

		v = exp10 < 0 ? v / pow10_f[-exp10] : v * pow10_f[exp10];
		memcpy(&b, &v, 4);
		b |= (uint32_t)neg << 31;
		memcpy(out, &b, 4);
		return p;
	}
	return text_eisel_lemire32(w, exp10, neg, out) && !isinf(*out) ? p : NULL;
}

#endif
