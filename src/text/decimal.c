/* decimal.c - decimal tokens to doubles and floats, exactly.
 *
 * Invariant: text_to_double() / text_to_float() give the correctly rounded
 * double / float of every decimal token (ties to even), the same as
 * strtod / strtof: Clinger's fast path, Eisel-Lemire (subnormals, zero and
 * infinity included), and strtod / strtof in the C locale only when
 * Eisel-Lemire cannot decide (a 128-bit product too close to a rounding
 * boundary, or more than 19 digits whose truncation leaves two candidates).
 * A float is rounded once from the decimal, never through a double (which
 * would round twice).  Checked against Python's float() and exact rational
 * rounding (tests/integration/test_float_exact.py) and against glibc
 * (tests/fuzz/fuzz_float_parse.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fast_double.h"

/* ---- Eisel-Lemire -------------------------------------------------------
 *
 * man * 10^q to the nearest binary float of mbits explicit mantissa bits
 * (52: double, 23: float), ties to even, as IEEE bits without the sign
 * (Lemire, "Number parsing at a gigabyte per second", 2021, with the
 * subnormal and halfway rules of fast_float and Rust's dec2flt):
 *
 * man is normalised (its top bit set) and multiplied by the 128-bit
 * truncated significand of 10^q (pow10_table.c).  Only the top
 * mbits + 3 bits of the 192-bit product are needed (a leading bit that is
 * 0 or 1, mbits + 1 mantissa bits, a rounding bit): when the bits below
 * them in the high word are not all ones, the truncation error (< 2^64
 * times the high word's weight) cannot carry into them, so they are exact.
 * When they are all ones a second 64-bit multiplication by the low half of
 * the significand narrows the error; if that is still undecided the
 * caller falls back (strtod).  An exact halfway case needs an exact
 * product, possible only for small q (5^q < 2^64 ... or 10^q's fraction
 * exact): then the low bits tell, and ties go to even.  Below the normal
 * range the mantissa is shifted further (a subnormal), which never meets
 * a tie.  Beyond the table: 0 (q < TEXT_POW10_MIN: man * 10^q is below
 * half the smallest subnormal) or infinity. */
static inline __attribute__((always_inline))
bool eisel_lemire(uint64_t man, int q, int mbits, int min_exp, int inf_exp,
		  int even_qmin, int even_qmax, uint64_t *bits)
{
	const uint64_t mask = ~0ull >> (mbits + 3);
	const uint64_t *g;
	unsigned __int128 x;
	uint64_t hi, lo, m, upper;
	int lz, p2;

	if (man == 0 || q < TEXT_POW10_MIN) {
		*bits = 0;
		return true;
	}
	if (q > 308) {
		*bits = (uint64_t)inf_exp << mbits;
		return true;
	}
	g = text_pow10[q - TEXT_POW10_MIN];
	lz = __builtin_clzll(man);
	man <<= lz;
	x = (unsigned __int128)man * g[0];
	hi = (uint64_t)(x >> 64);
	lo = (uint64_t)x;
	if ((hi & mask) == mask) {
		unsigned __int128 y = (unsigned __int128)man * g[1];
		uint64_t yhi = (uint64_t)(y >> 64), ylo = (uint64_t)y;

		lo += yhi;
		if (lo < yhi)
			hi++;
		/* the rest of the product (< man) could still carry */
		if ((hi & mask) == mask && lo == ~0ull && ylo + man < man)
			return false;
	}
	upper = hi >> 63;
	m = hi >> (upper + 64 - mbits - 3);
	/* floor(log2(10^q)) + 63 = the weight of the product's top bit */
	p2 = (((152170 + 65536) * q) >> 16) + 63 + (int)upper - lz - min_exp;
	if (p2 <= 0) {		/* subnormal (or zero) */
		if (1 - p2 >= 64) {
			*bits = 0;
			return true;
		}
		m >>= 1 - p2;
		m += m & 1;
		m >>= 1;
		/* rounding up to the smallest normal gives exponent 1 */
		*bits = m;
		return true;
	}
	/* exactly halfway: round to even (down when the kept bit is even) */
	if (lo <= 1 && q >= even_qmin && q <= even_qmax && (m & 3) == 1 &&
	    m << (upper + 64 - mbits - 3) == hi)
		m &= ~1ull;
	m += m & 1;
	m >>= 1;
	if (m >= 2ull << mbits) {
		m = 1ull << mbits;
		p2++;
	}
	m &= ~(1ull << mbits);
	if (p2 >= inf_exp) {
		*bits = (uint64_t)inf_exp << mbits;
		return true;
	}
	*bits = (uint64_t)p2 << mbits | m;
	return true;
}

bool text_eisel_lemire(uint64_t man, int exp10, bool neg, double *out)
{
	uint64_t b;

	if (!eisel_lemire(man, exp10, 52, -1023, 0x7ff, -4, 23, &b))
		return false;
	b |= (uint64_t)neg << 63;
	memcpy(out, &b, 8);
	return true;
}

bool text_eisel_lemire32(uint64_t man, int exp10, bool neg, float *out)
{
	uint64_t b;
	uint32_t b32;

	if (!eisel_lemire(man, exp10, 23, -127, 0xff, -17, 10, &b))
		return false;
	b32 = (uint32_t)b | (uint32_t)neg << 31;
	memcpy(out, &b32, 4);
	return true;
}

int text_scan_float(const char *s, size_t n, struct decnum *d)
{
	const char *p = s, *e = s + n;
	int nd = 0;
	int64_t x10 = 0, ex = 0;	/* digits' exponent; |x10| <= n */
	bool any = false;

	d->neg = false;
	d->trunc = false;
	d->w = 0;
	d->exp10 = 0;
	if (p < e && (*p == '+' || *p == '-'))
		d->neg = *p++ == '-';
	if (p == e)
		return NUM_BAD;
	if (!is_digit(*p) && *p != '.') {
		size_t m = (size_t)(e - p);

		if (eq_nocase(p, m, "nan"))
			d->special = d->neg ? -NAN : NAN;
		else if (eq_nocase(p, m, "inf") || eq_nocase(p, m, "infinity"))
			d->special = d->neg ? -INFINITY : INFINITY;
		else
			return NUM_BAD;
		return NUM_SPECIAL;
	}
	while (p < e && *p == '0') {
		p++;
		any = true;
	}
	for (; p < e && is_digit(*p); p++, any = true) {
		if (nd < 19) {
			d->w = d->w * 10 + (uint64_t)(*p - '0');
			nd++;
		} else {
			x10++;
			d->trunc |= *p != '0';
		}
	}
	if (p < e && *p == '.') {
		for (p++; p < e && is_digit(*p); p++, any = true) {
			if (!nd && *p == '0') {
				x10--;
			} else if (nd < 19) {
				d->w = d->w * 10 + (uint64_t)(*p - '0');
				nd++;
				x10--;
			} else {
				d->trunc |= *p != '0';
			}
		}
	}
	if (!any)
		return NUM_BAD;
	if (p < e && (*p == 'e' || *p == 'E')) {
		bool eneg = false, edig = false;

		p++;
		if (p < e && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		for (; p < e && is_digit(*p); p++) {
			edig = true;
			if (ex < (1ll << 40))	/* beyond any token's digits */
				ex = ex * 10 + (*p - '0');
		}
		if (!edig)
			return NUM_BAD;
		x10 += eneg ? -ex : ex;
	}
	/* w < 10^19: beyond +-100000 the value is 0 or inf all the same */
	d->exp10 = x10 < -100000 ? -100000 : x10 > 100000 ? 100000 : (int)x10;
	return p == e ? NUM_OK : NUM_BAD;
}

/* The token (already validated by scan_float) through strtod-like fn. */
char *text_tok_cstr(const char *s, size_t n, char *small, size_t size)
{
	char *c = n < size ? small : malloc(n + 1);

	if (c) {
		memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

static double slow_strtod(const char *s, size_t n)
{
	char small[128], *c = text_tok_cstr(s, n, small, sizeof(small));
	double v;

	if (!c)
		return NAN;	/* out of memory: reported as a bad value */
	v = strtod_l(c, NULL, text_c_locale());
	if (c != small)
		free(c);
	return v;
}

/* The nearest double to the decimal token in *out.  Returns NUM_OK,
 * NUM_SPECIAL (nan/inf spelled out) or NUM_BAD. */
int text_to_double(const char *s, size_t n, double *out)
{
	struct decnum d;
	double v;
	int r;

	if (fast_double(s, s + n, out) == s + n)
		return NUM_OK;
	r = text_scan_float(s, n, &d);
	if (r != NUM_OK) {
		*out = r == NUM_SPECIAL ? d.special : 0;
		return r;
	}
	if (!d.trunc) {
		if (d.w <= (1ull << 53) && d.exp10 >= -22 && d.exp10 <= 22) {
			v = (double)d.w;
			v = d.exp10 < 0 ? v / pow10_d[-d.exp10] : v * pow10_d[d.exp10];
			*out = d.neg ? -v : v;
			return NUM_OK;
		}
		if (text_eisel_lemire(d.w, d.exp10, d.neg, out))
			return NUM_OK;
	} else {
		double v2;

		if (text_eisel_lemire(d.w, d.exp10, d.neg, &v) &&
		    text_eisel_lemire(d.w + 1, d.exp10, d.neg, &v2) && v == v2) {
			*out = v;
			return NUM_OK;
		}
	}
	if (d.w == 0 || d.exp10 < -400)
		*out = d.neg ? -0.0 : 0.0;
	else
		*out = slow_strtod(s, n);
	return NUM_OK;
}

static float slow_strtof(const char *s, size_t n)
{
	char small[128], *c = text_tok_cstr(s, n, small, sizeof(small));
	float v;

	if (!c)
		return NAN;	/* out of memory: reported as a bad value */
	v = strtof_l(c, NULL, text_c_locale());
	if (c != small)
		free(c);
	return v;
}

/* The nearest float to the decimal token, rounded once (not through a
 * double): Clinger's fast path in float arithmetic, Eisel-Lemire, strtof
 * as the last resort. */
int text_to_float(const char *s, size_t n, float *out)
{
	struct decnum d;
	int r;

	if (fast_float32(s, s + n, out) == s + n)
		return NUM_OK;
	r = text_scan_float(s, n, &d);
	if (r != NUM_OK) {
		*out = r == NUM_SPECIAL ? (float)d.special : 0;
		return r;
	}
	if (!d.trunc) {
		if (d.w <= (1ull << 24) && d.exp10 >= -10 && d.exp10 <= 10) {
			float v = (float)d.w;

			v = d.exp10 < 0 ? v / pow10_f[-d.exp10] : v * pow10_f[d.exp10];
			*out = d.neg ? -v : v;
			return NUM_OK;
		}
		if (text_eisel_lemire32(d.w, d.exp10, d.neg, out))
			return NUM_OK;
	} else {
		float v, v2;

		if (text_eisel_lemire32(d.w, d.exp10, d.neg, &v) &&
		    text_eisel_lemire32(d.w + 1, d.exp10, d.neg, &v2) && v == v2) {
			*out = v;
			return NUM_OK;
		}
	}
	*out = slow_strtof(s, n);
	return NUM_OK;
}
