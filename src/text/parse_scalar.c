/* parse_scalar.c - one token into one element of a scalar dtype: bool,
 * integers, floats, complex, strings, bytes, void.
 *
 * Invariant: each converter reads back exactly what format_scalar.c
 * writes, refuses values that do not fit (no rounding to inf, no
 * wrapping), and names the line and token when it fails.
 */
#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

/* ---- float16 ------------------------------------------------------------- */

/* Round |v| (finite, >= 0) to float16 magnitude bits; dir < 0 / > 0 breaks
 * an exact tie downward / upward, 0 to even. */
static uint16_t half_round(double v, int dir)
{
	int e, ue;
	double scaled, fl;
	uint64_t q;

	if (v == 0)
		return 0;
	frexp(v, &e);		/* 2^(e-1) <= v < 2^e */
	/* ulp is 2^(e-11) for normals, 2^-24 below 2^-14 */
	ue = e - 11 < -24 ? -24 : e - 11;
	scaled = ldexp(v, -ue);	/* exact: v has 53 bits, scale is a power of 2 */
	fl = floor(scaled);
	q = (uint64_t)fl;
	double rem = scaled - fl;
	if (rem > 0.5 || (rem == 0.5 && (dir > 0 || (dir == 0 && (q & 1)))))
		q++;
	/* value = q * 2^ue; renormalise */
	if (ue == -24 && q < 0x400)
		return (uint16_t)q;	/* subnormal */
	int ex = ue + 25;		/* exponent field if q in [2^10, 2^11) */
	if (q >= 0x800) {
		q >>= 1;
		ex++;
	}
	if (ex >= 0x1f)
		return 0x7c00;		/* overflow */
	return (uint16_t)(ex << 10 | (q & 0x3ff));
}

/* ---- scalar converters --------------------------------------------------- */

static int conv_bool(struct tp *t, const char *s, size_t n,
		     unsigned char *dst, const struct npy_dtype *dt)
{
	if ((n == 4 && (!memcmp(s, "True", 4) || !memcmp(s, "true", 4))) ||
	    (n == 1 && *s == '1'))
		*dst = 1;
	else if ((n == 5 && (!memcmp(s, "False", 5) || !memcmp(s, "false", 5))) ||
		 (n == 1 && *s == '0'))
		*dst = 0;
	else
		return text_fail_bad(t, s, n, dt);
	return 0;
}

/* Decimal integer with optional sign into magnitude + sign.
 * Returns NUM_OK, NUM_BAD, or NUM_SPECIAL for a magnitude >= 2^64. */
int text_scan_int(const char *s, size_t n, bool *neg, uint64_t *mag)
{
	const char *p = s, *e = s + n;
	uint64_t v = 0;
	bool big = false;

	*neg = false;
	if (p < e && (*p == '+' || *p == '-'))
		*neg = *p++ == '-';
	if (p == e)
		return NUM_BAD;
	for (; p < e; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9)
			return NUM_BAD;
		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	*mag = v;
	return big ? NUM_SPECIAL : NUM_OK;
}

static void store_uint(unsigned char *dst, uint64_t v, size_t size, bool sw)
{
	switch (size) {
	case 1: *dst = (unsigned char)v; break;
	case 2: text_st16(dst, (uint16_t)v, sw); break;
	case 4: text_st32(dst, (uint32_t)v, sw); break;
	default: text_st64(dst, v, sw); break;
	}
}

static int conv_int(struct tp *t, const char *s, size_t n,
		    unsigned char *dst, const struct npy_dtype *dt)
{
	bool neg;
	uint64_t mag, lim = 1ull << (dt->itemsize * 8 - 1);
	int r = text_scan_int(s, n, &neg, &mag);

	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || mag > lim || (!neg && mag == lim))
		return text_fail_tok(t, s, n, dt, "out of range for");
	store_uint(dst, neg ? 0 - mag : mag, dt->itemsize, dt->swapped);
	return 0;
}

static int conv_uint(struct tp *t, const char *s, size_t n,
		     unsigned char *dst, const struct npy_dtype *dt)
{
	bool neg;
	uint64_t mag;
	int r = text_scan_int(s, n, &neg, &mag);

	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || (neg && mag) ||
	    (dt->itemsize < 8 && mag >> (dt->itemsize * 8)))
		return text_fail_tok(t, s, n, dt, "out of range for");
	store_uint(dst, mag, dt->itemsize, dt->swapped);
	return 0;
}

/* float64: the nearest double, refused if it overflows to inf. */
static int parse_f64(struct tp *t, const char *s, size_t n, unsigned char *dst,
		    const struct npy_dtype *dt)
{
	bool sw = dt->swapped;
	double d;
	int r;
	uint64_t b;

	r = text_to_double(s, n, &d);
	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	if (isinf(d) && r != NUM_SPECIAL)
		return text_fail_tok(t, s, n, dt, "out of range for");
	memcpy(&b, &d, 8);
	text_st64(dst, b, sw);
	return 0;
}

/* float32: the nearest float, rounded once from the decimal. */
static int parse_f32(struct tp *t, const char *s, size_t n, unsigned char *dst,
		    const struct npy_dtype *dt)
{
	bool sw = dt->swapped;
	int r;
	float f;
	uint32_t b;

	r = text_to_float(s, n, &f);
	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	if (isinf(f) && r != NUM_SPECIAL)
		return text_fail_tok(t, s, n, dt, "out of range for");
	memcpy(&b, &f, 4);
	text_st32(dst, b, sw);
	return 0;
}

/* float16: rounded from the double, a float16 midpoint decided on the
 * decimal. */
static int parse_f16(struct tp *t, const char *s, size_t n, unsigned char *dst,
		    const struct npy_dtype *dt)
{
	bool sw = dt->swapped;
	double d;
	int r;
	uint16_t h;
	bool neg;

	r = text_to_double(s, n, &d);
	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	neg = signbit(d);
	if (isnan(d)) {
		h = 0x7e00;
	} else if (isinf(d)) {
		if (r != NUM_SPECIAL)
			return text_fail_tok(t, s, n, dt, "out of range for");
		h = 0x7c00;
	} else {
		double a = fabs(d);
		int dir = 0;

		h = half_round(a, 0);
		if (half_round(a, -1) != half_round(a, 1)) {
			/* d is a float16 midpoint: is the decimal? */
			char small[128], *c = text_tok_cstr(s, n, small, sizeof(small));
			int mode = fegetround();
			double lo, hi;

			if (!c)
				return -ENOMEM;
			fesetround(FE_DOWNWARD);
			lo = fabs(strtod_l(c, NULL, text_c_locale()));
			fesetround(FE_UPWARD);
			hi = fabs(strtod_l(c, NULL, text_c_locale()));
			fesetround(mode);
			if (c != small)
				free(c);
			if (lo != hi)	/* inexact: above a if a is the lower bracket */
				dir = (lo < hi ? lo : hi) == a ? 1 : -1;
			h = half_round(a, dir);
		}
		if ((h & 0x7fff) == 0x7c00)
			return text_fail_tok(t, s, n, dt, "out of range for");
	}
	if (neg)
		h |= 0x8000;
	text_st16(dst, h, sw);
	return 0;
}

/* x87 long double in 12 or 16 bytes, through strtold in the C locale. */
static int parse_ld(struct tp *t, const char *s, size_t n, unsigned char *dst,
		    size_t size, const struct npy_dtype *dt)
{
	bool sw = dt->swapped;
	int r;
	struct decnum dn;
	char small[128], *c;
	long double v;
	unsigned char b[16] = { 0 };

	r = text_scan_float(s, n, &dn);
	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	c = text_tok_cstr(s, n, small, sizeof(small));
	if (!c)
		return -ENOMEM;
	v = strtold_l(c, NULL, text_c_locale());
	if (c != small)
		free(c);
	if (isinf(v) && r != NUM_SPECIAL)
		return text_fail_tok(t, s, n, dt, "out of range for");
	memcpy(b, &v, 10);
	text_copy_swapped(dst, b, size, sw);
	return 0;
}

/* One float of `size` bytes (2, 4, 8, 12, 16) from a token. */
static int parse_float(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, size_t size,
		       const struct npy_dtype *dt)
{
	if (size == 8)
		return parse_f64(t, s, n, dst, dt);
	if (size == 4)
		return parse_f32(t, s, n, dst, dt);
	if (size == 2)
		return parse_f16(t, s, n, dst, dt);
	return parse_ld(t, s, n, dst, size, dt);
}

static int conv_float(struct tp *t, const char *s, size_t n,
		      unsigned char *dst, const struct npy_dtype *dt)
{
	return parse_float(t, s, n, dst, dt->itemsize, dt);
}

/* Complex "a+bj", "a-bj", "bj", "a" (optionally in parentheses). */
bool text_split_complex(const char *s, size_t n, size_t *re_n,
			const char **im, size_t *im_n)
{
	size_t i;

	if (n >= 2 && s[0] == '(' && s[n - 1] == ')') {
		s++;
		n -= 2;
	}
	*im = NULL;
	*im_n = 0;
	if (!n || (s[n - 1] != 'j' && s[n - 1] != 'J')) {
		*re_n = n;
		return n > 0;
	}
	for (i = n - 1; i > 0; i--) {
		if ((s[i] == '+' || s[i] == '-') && s[i - 1] != 'e' &&
		    s[i - 1] != 'E')
			break;
	}
	*re_n = i;
	*im = s + i;
	*im_n = n - 1 - i;
	return *im_n > 0;
}

static int conv_complex(struct tp *t, const char *s, size_t n,
			unsigned char *dst, const struct npy_dtype *dt)
{
	size_t half = dt->itemsize / 2, re_n, im_n;
	const char *im, *re = s;
	int ret;

	if (n >= 2 && s[0] == '(' && s[n - 1] == ')')
		re = s + 1;
	if (!text_split_complex(s, n, &re_n, &im, &im_n))
		return text_fail_bad(t, s, n, dt);
	if (re_n) {
		ret = parse_float(t, re, re_n, dst, half, dt);
	} else {
		memset(dst, 0, half);
		ret = 0;
	}
	if (!ret && im) {
		/* "+" or "-" alone before j is not a number */
		if (im_n == 1 && (*im == '+' || *im == '-'))
			return text_fail_bad(t, s, n, dt);
		ret = parse_float(t, im, im_n, dst + half, half, dt);
	} else if (!ret) {
		memset(dst + half, 0, half);
	}
	return ret;
}

/* ---- strings ------------------------------------------------------------- */

enum str_form { STR_BARE, STR_QUOTED, STR_BYTES };

/* Walk the characters of a string token (quotes and escapes resolved),
 * calling put(ctx, value) for each.  bytes: the target is S (\u refused,
 * non-ASCII raw bytes kept as bytes); else U (raw UTF-8 decoded).
 * Returns 0 or -EINVAL with a message. */
int text_walk_string(struct tp *t, const char *s, size_t n, bool bytes,
		     int (*put)(void *ctx, uint32_t c), void *ctx)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	enum str_form form = STR_BARE;
	uint32_t c;
	int ret;
	char q[TOK_MSG + 4];

	if (n >= 3 && p[0] == 'b' && p[1] == '"' && e[-1] == '"') {
		form = STR_BYTES;
		p += 2;
		e--;
	} else if (n >= 2 && p[0] == '"' && e[-1] == '"') {
		form = STR_QUOTED;
		p++;
		e--;
	}
	while (p < e) {
		if (*p == '\\' && form != STR_BARE) {
			int len = 0, v;

			if (p + 1 >= e)
				return text_fail(t, "bad escape at the end of %s",
						 text_quote_tok(s, n, q));
			switch (p[1]) {
			case '\\': c = '\\'; break;
			case '"': c = '"'; break;
			case '\'': c = '\''; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case '0': c = 0; break;
			case 'x': len = 2; break;
			case 'u': len = 4; break;
			case 'U': len = 8; break;
			default:
				return text_fail(t, "bad escape '\\%c' in %s",
						 p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?',
						 text_quote_tok(s, n, q));
			}
			if (len && (bytes || form == STR_BYTES) && len != 2)
				return text_fail(t, "bad escape '\\%c' in bytes %s",
						 p[1], text_quote_tok(s, n, q));
			p += 2;
			if (len) {
				c = 0;
				if (e - p < len)
					return text_fail(t, "bad escape in %s",
							 text_quote_tok(s, n, q));
				for (int i = 0; i < len; i++) {
					v = npy_hex_digit((unsigned char)p[i]);
					if (v < 0)
						return text_fail(t, "bad escape in %s",
								 text_quote_tok(s, n, q));
					c = c << 4 | (uint32_t)v;
				}
				/* numpy cannot load code points past U+10FFFF;
				 * lone surrogates it loads, and so do we */
				if (c > 0x10ffff)
					return text_fail(t, "code point \\U%08x beyond U+10FFFF in %s",
							 (unsigned)c, text_quote_tok(s, n, q));
				p += len;
			}
		} else if (*p < 0x80 || bytes || form == STR_BYTES) {
			c = *p++;
		} else {
			size_t k = npy_utf8_get(p, (size_t)(e - p), &c);

			if (!k)
				return text_fail(t, "invalid UTF-8 in %s",
						 text_quote_tok(s, n, q));
			p += k;
		}
		ret = put(ctx, c);
		if (ret)
			return ret;
	}
	return 0;
}

struct sput {
	unsigned char *dst;	/* NULL: count only */
	size_t n, cap;
	bool sw, bytes;
};

static int sput_char(void *ctx, uint32_t c)
{
	struct sput *sp = ctx;

	if (sp->bytes && c > 0xff)
		return -ERANGE;
	if (sp->dst) {
		if (sp->n >= sp->cap)
			return -E2BIG;
		if (sp->bytes)
			sp->dst[sp->n] = (unsigned char)c;
		else
			text_st32(sp->dst + 4 * sp->n, c, sp->sw);
	}
	sp->n++;
	return 0;
}

static int conv_str(struct tp *t, const char *s, size_t n,
		    unsigned char *dst, const struct npy_dtype *dt)
{
	bool bytes = dt->kind == NPY_BYTES;
	struct sput sp = { .dst = dst, .sw = dt->swapped, .bytes = bytes,
			   .cap = bytes ? dt->itemsize : dt->itemsize / 4 };
	int ret = text_walk_string(t, s, n, bytes, sput_char, &sp);

	if (ret == -E2BIG)
		return text_fail_tok(t, s, n, dt, "too long for");
	if (ret == -ERANGE)
		return text_fail_tok(t, s, n, dt, "does not fit");
	if (ret)
		return ret;
	memset(dst + (bytes ? sp.n : 4 * sp.n), 0,
	       dt->itemsize - (bytes ? sp.n : 4 * sp.n));
	return 0;
}

static int conv_void(struct tp *t, const char *s, size_t n,
		     unsigned char *dst, const struct npy_dtype *dt)
{
	size_t i;

	if (n != 2 + 2 * dt->itemsize || s[0] != '0' || (s[1] | 0x20) != 'x')
		goto bad;
	for (i = 0; i < dt->itemsize; i++) {
		int hi = npy_hex_digit((unsigned char)s[2 + 2 * i]),
		    lo = npy_hex_digit((unsigned char)s[3 + 2 * i]);

		if (hi < 0 || lo < 0)
			goto bad;
		dst[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
bad:
	{
		char q[TOK_MSG + 4];

		return text_fail(t, "bad value '%s' (expected 0x and %zu hex digits)",
				 text_quote_tok(s, n, q), 2 * dt->itemsize);
	}
}

conv_fn text_conv_for(const struct npy_dtype *dt)
{
	switch (dt->kind) {
	case NPY_BOOL: return conv_bool;
	case NPY_INT: return conv_int;
	case NPY_UINT: return conv_uint;
	case NPY_FLOAT: return conv_float;
	case NPY_COMPLEX: return conv_complex;
	case NPY_BYTES:
	case NPY_STR: return conv_str;
	case NPY_VOID: return conv_void;
	case NPY_DATETIME: return text_conv_datetime;
	case NPY_TIMEDELTA: return text_conv_timedelta;
	default: return NULL;
	}
}
