/* decimal.c - decimal tokens to doubles, exactly.
 *
 * Invariant: text_to_double() gives the correctly rounded double of every
 * decimal token (Clinger's fast path, Eisel-Lemire, strtod in the C
 * locale as the last resort), the same as strtod.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fast_double.h"

/* man * 10^exp10 correctly rounded, or false when undecided. */
bool text_eisel_lemire(uint64_t man, int exp10, bool neg, double *out)
{
	uint64_t bits;

	if (man == 0) {
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	if (exp10 < TEXT_POW10_MIN || exp10 > 308)
		return false;
	const uint64_t *g = text_pow10[exp10 - TEXT_POW10_MIN];
	int clz = __builtin_clzll(man);
	man <<= clz;
	uint64_t e2 = (uint64_t)(((217706 * exp10) >> 16) + 64 + 1023) -
		      (uint64_t)clz;
	unsigned __int128 x = (unsigned __int128)man * g[0];
	uint64_t xhi = (uint64_t)(x >> 64), xlo = (uint64_t)x;

	if ((xhi & 0x1ff) == 0x1ff && xlo + man < man) {
		unsigned __int128 y = (unsigned __int128)man * g[1];
		uint64_t yhi = (uint64_t)(y >> 64), ylo = (uint64_t)y;
		uint64_t mhi = xhi, mlo = xlo + yhi;

		if (mlo < xlo)
			mhi++;
		if ((mhi & 0x1ff) == 0x1ff && mlo + 1 == 0 && ylo + man < man)
			return false;
		xhi = mhi;
		xlo = mlo;
	}
	uint64_t msb = xhi >> 63;
	uint64_t m = xhi >> (msb + 9);
	e2 -= 1 ^ msb;
	if (xlo == 0 && (xhi & 0x1ff) == 0 && (m & 3) == 1)
		return false;
	m += m & 1;
	m >>= 1;
	if (m >> 53) {
		m >>= 1;
		e2++;
	}
	if (e2 - 1 >= 0x7ff - 1)
		return false;	/* subnormal or overflow: let strtod decide */
	bits = e2 << 52 | (m & ((1ull << 52) - 1));
	if (neg)
		bits |= 1ull << 63;
	memcpy(out, &bits, 8);
	return true;
}


int text_scan_float(const char *s, size_t n, struct decnum *d)
{
	const char *p = s, *e = s + n;
	int nd = 0, ex = 0;
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
			d->exp10++;
			d->trunc |= *p != '0';
		}
	}
	if (p < e && *p == '.') {
		for (p++; p < e && is_digit(*p); p++, any = true) {
			if (!nd && *p == '0') {
				d->exp10--;
			} else if (nd < 19) {
				d->w = d->w * 10 + (uint64_t)(*p - '0');
				nd++;
				d->exp10--;
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
			if (ex < 100000)
				ex = ex * 10 + (*p - '0');
		}
		if (!edig)
			return NUM_BAD;
		d->exp10 += eneg ? -ex : ex;
	}
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
