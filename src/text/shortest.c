/* shortest.c - the shortest decimal that reads back to the same float, laid
 * out as Python's repr() does.
 *
 * Invariant: for every finite float16/32/64, text_shortest() gives the shortest
 * decimal that rounds back to it, the closest of several (Schubfach, after
 * R. Giulietti); for x87 long doubles text_fmt_ld() finds the same by search.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "format_internal.h"

static inline uint64_t round_to_odd(uint64_t ghi, uint64_t glo, uint64_t cp)
{
	unsigned __int128 x = (unsigned __int128)cp * glo;
	unsigned __int128 y = (unsigned __int128)cp * ghi + (uint64_t)(x >> 64);

	return (uint64_t)(y >> 64) | ((uint64_t)y != 0);
}

struct dec text_shortest(uint64_t f, int ef, int mb, int bias_mb)
{
	uint64_t c;
	int q;

	if (ef) {
		c = (1ull << mb) | f;
		q = ef - bias_mb;
		if (q <= 0 && -q <= mb) {
			uint64_t i = c >> -q;

			if (i << -q == c)
				return (struct dec){ i, 0 };
		}
	} else {
		c = f;
		q = 1 - bias_mb;
	}

	bool even = !(c & 1);
	bool lower_closer = f == 0 && ef > 1;
	uint64_t cbl = 4 * c - 2 + lower_closer, cb = 4 * c, cbr = 4 * c + 2;
	int k = (q * 1262611 - (lower_closer ? 524031 : 0)) >> 22;
	int h = q + text_floor_log2_pow10(-k) + 1;
	const uint64_t *g = text_pow10[-k - TEXT_POW10_MIN];
	uint64_t glo = g[1] + 1, ghi = g[0] + (glo == 0);

	uint64_t vbl = round_to_odd(ghi, glo, cbl << h);
	uint64_t vb = round_to_odd(ghi, glo, cb << h);
	uint64_t vbr = round_to_odd(ghi, glo, cbr << h);
	uint64_t lower = vbl + !even, upper = vbr - !even;
	uint64_t s = vb / 4;

	if (s >= 10) {
		uint64_t sp = s / 10;
		bool up_in = lower <= 40 * sp, wp_in = 40 * sp + 40 <= upper;

		if (up_in != wp_in)
			return (struct dec){ sp + wp_in, k + 1 };
	}
	bool u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
	if (u_in != w_in)
		return (struct dec){ s + w_in, k };
	uint64_t mid = 4 * s + 2;
	bool up = vb > mid || (vb == mid && (s & 1));
	return (struct dec){ s + up, k };
}

char *text_fmt_ld(char *o, long double v)
{
	char tmp[64], d[32];
	int p, n = 0, E, ex;
	locale_t old;

	if (isnan(v))
		return put_str(o, "nan", 3);
	if (signbit(v)) {
		*o++ = '-';
		v = -v;
	}
	if (isinf(v))
		return put_str(o, "inf", 3);
	if (v == 0)
		return put_str(o, "0.0", 3);
	old = uselocale(text_c_locale());
	bool pow2 = frexpl(v, &ex) == 0.5L;
	for (p = 1; p <= 21; p++) {
		snprintf(tmp, sizeof(tmp), "%.*Le", p - 1, v);
		if (strtold(tmp, NULL) == v)
			break;
		if (pow2 && strtold(tmp, NULL) < v) {
			/* The rounding interval is narrower below a power of
			 * two: the next p-digit decimal up may still fit. */
			char alt[64], dd[32];
			int m = 0, e2, i;
			const char *s;

			for (s = tmp; *s && *s != 'e'; s++)
				if (*s >= '0' && *s <= '9')
					dd[m++] = *s;
			e2 = atoi(s + 1);
			for (i = m - 1; i >= 0 && dd[i] == '9'; i--)
				dd[i] = '0';
			if (i < 0) {
				dd[0] = '1';
				e2++;
			} else {
				dd[i]++;
			}
			snprintf(alt, sizeof(alt), "%c.%.*se%d", dd[0], m - 1,
				 dd + 1, e2);
			if (strtold(alt, NULL) == v) {
				memcpy(tmp, alt, sizeof(alt));
				break;
			}
		}
	}
	uselocale(old);
	const char *s;
	n = 0;
	for (s = tmp; *s && *s != 'e'; s++)
		if (*s >= '0' && *s <= '9')
			d[n++] = *s;
	E = atoi(s + 1);
	while (n > 1 && d[n - 1] == '0')
		n--;
	return text_fmt_digits(o, d, n, E);
}

/* Positional for 1e-4 <= |v| < 1e16, else d.ddde+XX. */
char *text_fmt_digits(char *o, const char *d, int n, int E)
{
	int i;

	if (E >= -4 && E < 16) {
		if (E < 0) {
			*o++ = '0';
			*o++ = '.';
			for (i = 0; i < -E - 1; i++)
				*o++ = '0';
			o = put_str(o, d, (size_t)n);
		} else if (E + 1 >= n) {
			o = put_str(o, d, (size_t)n);
			for (i = n; i <= E; i++)
				*o++ = '0';
			*o++ = '.';
			*o++ = '0';
		} else {
			o = put_str(o, d, (size_t)E + 1);
			*o++ = '.';
			o = put_str(o, d + E + 1, (size_t)(n - E - 1));
		}
		return o;
	}
	*o++ = d[0];
	if (n > 1) {
		*o++ = '.';
		o = put_str(o, d + 1, (size_t)n - 1);
	}
	*o++ = 'e';
	*o++ = E < 0 ? '-' : '+';
	unsigned a = (unsigned)(E < 0 ? -E : E);
	if (a < 100) {
		memcpy(o, text_dig2 + 2 * a, 2);
		return o + 2;
	}
	return fmt_u64(o, a);
}
