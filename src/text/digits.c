/* digits.c - decimal digits for the renderers: the tables behind the inline
 * writers of format_internal.h, and the Python-repr layout of a decimal.
 *
 * Invariant: text_fmt_digits() lays digits out as Python's repr() of a float
 * does: positional for 1e-4 <= |v| < 1e16, else d.ddde+XX.
 */
#include "format_internal.h"

const char text_dig2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

const uint64_t text_pow10_u64[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull,
	10000000000000000000ull,
};

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
