/* text_parse.c - read a text view back into an array.
 *
 * Invariant: text_parse(text_format(a)) == a, byte for byte (see the
 * exceptions listed in text_format.c: NaN payloads, bool bytes other than
 * 0/1, long double padding, structured padding).
 *
 * Two passes over the text: the first finds the layout (lines, values per
 * line, blank-line separated blocks) and, without a dtype, infers one; the
 * second converts values into ~1 MiB blocks handed to out->write_at (or, for
 * Fortran order, bands of up to 32 MiB transposed in memory).  Every error
 * names the 1-based line of the text.  Floats are read exactly (Clinger's
 * fast path, Eisel-Lemire, strtod in the C locale as the last resort) and
 * must fit the precision: "1e39" is refused for float32, not made inf.
 *
 * The usual case, an edited view whose element count still matches its
 * header, takes a fast path (see "fast path" below): a first pass that only
 * counts tokens with SIMD, and a second that converts chunks of the text on
 * two threads.  It gives the same results and the same errors as the
 * general path, which the unit tests and the fuzzer check against it.
 */
#include <errno.h>
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "text.h"
#include "text_internal.h"

#define OUT_BLOCK (1u << 20)	/* C-order write block */
#define TOK_MSG 40		/* quote at most this much of a token */

/* ---- characters ---------------------------------------------------------- */

enum { CH_OTHER, CH_QUOTE, CH_WS, CH_NL };	/* < CH_WS: inside a token */

static const unsigned char ch_class[256] = {
	[' '] = CH_WS, ['\t'] = CH_WS, ['\r'] = CH_WS, ['\v'] = CH_WS,
	['\f'] = CH_WS, ['\n'] = CH_NL, ['"'] = CH_QUOTE,
};

static inline bool is_ws(char c)
{
	return ch_class[(unsigned char)c] == CH_WS;
}

static inline bool is_digit(char c)
{
	return (unsigned)(c - '0') < 10;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool eq_nocase(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n && word[i]; i++)
		if ((s[i] | 0x20) != word[i])
			return false;
	return i == n && !word[i];
}

/* ---- parser state -------------------------------------------------------- */

struct tp;
typedef int (*conv_fn)(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, const struct npy_dtype *dt);

struct col {
	conv_fn conv;
	const struct npy_dtype *dt;
	size_t offset;
};

struct tp {
	const char *text;
	size_t len;
	struct npz_err *err;
	size_t lineno;		/* current line, 1-based */

	/* layout from the first pass */
	size_t body;		/* offset of the first line after the header */
	size_t body_lineno;
	uint64_t nvalues;	/* tokens in data lines */
	uint64_t nlines;	/* data lines */
	uint64_t nblocks;
	uint64_t block_lines;	/* data lines per block (of the first) */
	size_t ragged_block;	/* first line of a block of another size */
	uint64_t ragged_rows;	/* its number of rows */
	uint64_t line_values;	/* tokens per data line */

	/* conversion */
	const struct npy_dtype *dt;
	size_t isz;
	struct col *cols;	/* one per token of a record, or one */
	size_t ncols;
	bool record;

	/* output */
	const struct text_out *out;
	const struct npy_header *hdr;
	unsigned char *cbuf;	/* C-order elements */
	size_t cap;		/* elements cbuf holds */
	size_t n;		/* elements in cbuf */
	uint64_t done;		/* elements written before cbuf */
	/* Fortran order */
	bool fortran;
	uint64_t rest;		/* elements per first-axis index */
	unsigned char *fbuf;
	unsigned char *ebuf;	/* per-element fallback */
};

static int fail(struct tp *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct tp *t, const char *fmt, ...)
{
	char msg[NPZ_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	npz_err_set(t->err, "line %zu: %s", t->lineno, msg);
	return -EINVAL;
}

/* Quote a token for a message: printable ASCII, at most TOK_MSG bytes. */
static const char *quote_tok(const char *s, size_t n, char *out)
{
	size_t i, m = n > TOK_MSG ? TOK_MSG : n;

	for (i = 0; i < m; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > m) {
		memcpy(out + m, "...", 3);
		m += 3;
	}
	out[m] = '\0';
	return out;
}

static int fail_tok(struct tp *t, const char *s, size_t n,
		    const struct npy_dtype *dt, const char *why)
{
	char q[TOK_MSG + 4], name[48];

	text_dtype_name(dt, name, sizeof(name));
	return fail(t, "'%s' %s %s", quote_tok(s, n, q), why, name);
}

static int fail_bad(struct tp *t, const char *s, size_t n,
		    const struct npy_dtype *dt)
{
	char q[TOK_MSG + 4], name[48];

	text_dtype_name(dt, name, sizeof(name));
	return fail(t, "bad value '%s' (expected %s)", quote_tok(s, n, q), name);
}

/* ---- tokens -------------------------------------------------------------- */

/* End of the token starting at p (not whitespace, not newline), or NULL
 * with a message for an unterminated string or garbage after one. */
static const char *tok_end(struct tp *t, const char *p, const char *e)
{
	const char *q = p;

	if (*q == 'b' && q + 1 < e && q[1] == '"')
		q++;
	if (*q == '"') {
		for (q++; q < e && *q != '"' && *q != '\n'; q++)
			if (*q == '\\' && q + 1 < e && q[1] != '\n')
				q++;
		if (q >= e || *q != '"') {
			fail(t, "unterminated string");
			return NULL;
		}
		q++;
		if (q < e && ch_class[(unsigned char)*q] < CH_WS) {
			char m[TOK_MSG + 4];

			fail(t, "unexpected '%s' after a string",
			     quote_tok(q, 1, m));
			return NULL;
		}
		return q;
	}
	while (q < e && ch_class[(unsigned char)*q] < CH_WS)
		q++;
	return q;	/* bare: up to whitespace, quotes included */
}

/* Line kinds */
enum { L_BLANK, L_COMMENT, L_SEP, L_DATA };

static int line_kind(const char *p, const char *e)
{
	while (p < e && is_ws(*p))
		p++;
	if (p == e)
		return L_BLANK;
	if (*p != '#')
		return L_DATA;
	for (p++; p < e && is_ws(*p); p++)
		;
	return p < e && *p == '[' ? L_SEP : L_COMMENT;
}

/* ---- numbers ------------------------------------------------------------- */

static const double pow10_d[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* man * 10^exp10 correctly rounded, or false when undecided. */
static bool eisel_lemire(uint64_t man, int exp10, bool neg, double *out)
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

enum { NUM_OK, NUM_BAD, NUM_SPECIAL };

/* A decimal float token split up: sign, up to 19 significant digits,
 * exponent; trunc if nonzero digits were dropped. */
struct decnum {
	bool neg, trunc;
	uint64_t w;
	int exp10;
	double special;		/* nan / inf when NUM_SPECIAL */
};

static int scan_float(const char *s, size_t n, struct decnum *d)
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
static char *tok_cstr(const char *s, size_t n, char *small, size_t size)
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
	char small[128], *c = tok_cstr(s, n, small, sizeof(small));
	double v;

	if (!c)
		return NAN;	/* out of memory: reported as a bad value */
	v = strtod_l(c, NULL, text_c_locale());
	if (c != small)
		free(c);
	return v;
}

/* ---- the common decimal, fast -------------------------------------------- */

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
 * that ends at e or at whitespace, and its value is found without strtod:
 * the end of the token and the correctly rounded double in *out.  Else
 * NULL, and to_double() decides (it gives the same value for every token
 * accepted here, and the messages for the rest). */
static inline __attribute__((always_inline))
const char *fast_double(const char *p, const char *e, double *out)
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
	return eisel_lemire(w, exp10, neg, out) ? p : NULL;
}

/* The nearest double to the decimal token in *out.  Returns NUM_OK,
 * NUM_SPECIAL (nan/inf spelled out) or NUM_BAD. */
static inline int to_double(const char *s, size_t n, double *out)
{
	struct decnum d;
	double v;
	int r;

	if (fast_double(s, s + n, out) == s + n)
		return NUM_OK;
	r = scan_float(s, n, &d);
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
		if (eisel_lemire(d.w, d.exp10, d.neg, out))
			return NUM_OK;
	} else {
		double v2;

		if (eisel_lemire(d.w, d.exp10, d.neg, &v) &&
		    eisel_lemire(d.w + 1, d.exp10, d.neg, &v2) && v == v2) {
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
		return fail_bad(t, s, n, dt);
	return 0;
}

/* Decimal integer with optional sign into magnitude + sign.
 * Returns NUM_OK, NUM_BAD, or NUM_SPECIAL for a magnitude >= 2^64. */
static int scan_int(const char *s, size_t n, bool *neg, uint64_t *mag)
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
	int r = scan_int(s, n, &neg, &mag);

	if (r == NUM_BAD)
		return fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || mag > lim || (!neg && mag == lim))
		return fail_tok(t, s, n, dt, "out of range for");
	store_uint(dst, neg ? 0 - mag : mag, dt->itemsize, dt->swapped);
	return 0;
}

static int conv_uint(struct tp *t, const char *s, size_t n,
		     unsigned char *dst, const struct npy_dtype *dt)
{
	bool neg;
	uint64_t mag;
	int r = scan_int(s, n, &neg, &mag);

	if (r == NUM_BAD)
		return fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || (neg && mag) ||
	    (dt->itemsize < 8 && mag >> (dt->itemsize * 8)))
		return fail_tok(t, s, n, dt, "out of range for");
	store_uint(dst, mag, dt->itemsize, dt->swapped);
	return 0;
}

/* One float of `size` bytes (2, 4, 8, 12, 16) from a token. */
static int parse_float(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, size_t size,
		       const struct npy_dtype *dt)
{
	bool sw = dt->swapped;
	double d;
	int r;

	if (size == 8) {
		uint64_t b;

		r = to_double(s, n, &d);
		if (r == NUM_BAD)
			return fail_bad(t, s, n, dt);
		if (isinf(d) && r != NUM_SPECIAL)
			return fail_tok(t, s, n, dt, "out of range for");
		memcpy(&b, &d, 8);
		text_st64(dst, b, sw);
		return 0;
	}
	if (size == 4) {
		float f;
		uint32_t b;

		r = to_double(s, n, &d);
		if (r == NUM_BAD)
			return fail_bad(t, s, n, dt);
		f = (float)d;
		if ((double)f != d && !isnan(d)) {
			/* Exactly between two floats: decide on the decimal. */
			float g = nextafterf(f, d > f ? INFINITY : -INFINITY);
			if ((double)g - d == d - (double)f || d - (double)g == (double)f - d) {
				char small[128], *c = tok_cstr(s, n, small, sizeof(small));

				if (!c)
					return -ENOMEM;
				f = strtof_l(c, NULL, text_c_locale());
				if (c != small)
					free(c);
			}
		}
		if (isinf(f) && r != NUM_SPECIAL)
			return fail_tok(t, s, n, dt, "out of range for");
		memcpy(&b, &f, 4);
		text_st32(dst, b, sw);
		return 0;
	}
	if (size == 2) {
		uint16_t h;
		bool neg;

		r = to_double(s, n, &d);
		if (r == NUM_BAD)
			return fail_bad(t, s, n, dt);
		neg = signbit(d);
		if (isnan(d)) {
			h = 0x7e00;
		} else if (isinf(d)) {
			if (r != NUM_SPECIAL)
				return fail_tok(t, s, n, dt, "out of range for");
			h = 0x7c00;
		} else {
			double a = fabs(d);
			int dir = 0;

			h = half_round(a, 0);
			if (half_round(a, -1) != half_round(a, 1)) {
				/* d is a float16 midpoint: is the decimal? */
				char small[128], *c = tok_cstr(s, n, small, sizeof(small));
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
				return fail_tok(t, s, n, dt, "out of range for");
		}
		if (neg)
			h |= 0x8000;
		text_st16(dst, h, sw);
		return 0;
	}
	/* x87 long double in 12 or 16 bytes */
	{
		struct decnum dn;
		char small[128], *c;
		long double v;
		unsigned char b[16] = { 0 };

		r = scan_float(s, n, &dn);
		if (r == NUM_BAD)
			return fail_bad(t, s, n, dt);
		c = tok_cstr(s, n, small, sizeof(small));
		if (!c)
			return -ENOMEM;
		v = strtold_l(c, NULL, text_c_locale());
		if (c != small)
			free(c);
		if (isinf(v) && r != NUM_SPECIAL)
			return fail_tok(t, s, n, dt, "out of range for");
		memcpy(b, &v, 10);
		text_copy_swapped(dst, b, size, sw);
		return 0;
	}
}

static int conv_float(struct tp *t, const char *s, size_t n,
		      unsigned char *dst, const struct npy_dtype *dt)
{
	return parse_float(t, s, n, dst, dt->itemsize, dt);
}

/* Complex "a+bj", "a-bj", "bj", "a" (optionally in parentheses). */
static bool split_complex(const char *s, size_t n, size_t *re_n,
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
	if (!split_complex(s, n, &re_n, &im, &im_n))
		return fail_bad(t, s, n, dt);
	if (re_n) {
		ret = parse_float(t, re, re_n, dst, half, dt);
	} else {
		memset(dst, 0, half);
		ret = 0;
	}
	if (!ret && im) {
		/* "+" or "-" alone before j is not a number */
		if (im_n == 1 && (*im == '+' || *im == '-'))
			return fail_bad(t, s, n, dt);
		ret = parse_float(t, im, im_n, dst + half, half, dt);
	} else if (!ret) {
		memset(dst + half, 0, half);
	}
	return ret;
}

/* ---- datetimes ----------------------------------------------------------- */

static bool take_num(const char **p, const char *e, int digits, int *v)
{
	int x = 0;

	for (int i = 0; i < digits; i++) {
		if (*p >= e || !is_digit(**p))
			return false;
		x = x * 10 + (*(*p)++ - '0');
	}
	*v = x;
	return true;
}

/* hi * mult + lo (0 <= lo < mult) without an intermediate overflow when
 * hi is negative; false if the result does not fit. */
static bool combine(int64_t hi, int64_t mult, int64_t lo, int64_t *out)
{
	if (hi < 0 && lo) {
		hi++;
		lo -= mult;
	}
	return !__builtin_mul_overflow(hi, mult, out) &&
	       !__builtin_add_overflow(*out, lo, out);
}

/* days -> value checked for overflow: y/m/d may be huge. */
static bool days_checked(int64_t y, int m, int d, int64_t *days)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = text_floor_div(y, 400);
	yoe = text_floor_mod(y, 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return !__builtin_mul_overflow(era, 146097, days) &&
	       !__builtin_add_overflow(*days, doe - 719468, days);
}

/* ISO 8601 as numpy writes it, into the dtype's unit (exactly). */
static int conv_datetime(struct tp *t, const char *s, size_t n,
			 unsigned char *dst, const struct npy_dtype *dt)
{
	const char *p = s, *e = s + n;
	int64_t y = 0, v, days, sub = 0;
	int mo = 1, d = 1, hh = 0, mi = 0, ss = 0, fd, nf = 0;
	uint64_t frac = 0;
	bool neg = false, extra = false;

	if (eq_nocase(s, n, "nat")) {
		text_st64(dst, (uint64_t)INT64_MIN, dt->swapped);
		return 0;
	}
	if (dt->unit == NPY_UNIT_GENERIC)
		return fail(t, "datetime64 without a unit holds only NaT");
	if (p < e && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	if (p == e || !is_digit(*p))
		goto bad;
	for (; p < e && is_digit(*p); p++) {
		if (y > (INT64_MAX - 9) / 10)
			goto range;
		y = y * 10 + (*p - '0');
	}
	if (neg)
		y = -y;
	if (p < e && *p == '-') {
		p++;
		if (!take_num(&p, e, 2, &mo) || mo < 1 || mo > 12)
			goto bad;
		if (p < e && *p == '-') {
			p++;
			if (!take_num(&p, e, 2, &d) || d < 1 ||
			    d > text_month_days(y, mo))
				goto bad;
			if (p < e && *p == 'T') {
				p++;
				if (!take_num(&p, e, 2, &hh) || hh > 23)
					goto bad;
				if (p < e && *p == ':') {
					p++;
					if (!take_num(&p, e, 2, &mi) || mi > 59)
						goto bad;
					if (p < e && *p == ':') {
						p++;
						if (!take_num(&p, e, 2, &ss) || ss > 59)
							goto bad;
						if (p < e && *p == '.') {
							p++;
							if (p == e || !is_digit(*p))
								goto bad;
							for (; p < e && is_digit(*p); p++) {
								if (nf < 18) {
									frac = frac * 10 + (uint64_t)(*p - '0');
									nf++;
								} else if (*p != '0') {
									extra = true;
								}
							}
						}
					}
				}
			}
		}
	}
	if (p != e)
		goto bad;

	switch (dt->unit) {
	case NPY_UNIT_Y:
		if (mo != 1 || d != 1 || hh || mi || ss || frac || extra)
			goto inexact;
		if (__builtin_sub_overflow(y, 1970, &v))
			goto range;
		break;
	case NPY_UNIT_M:
		if (d != 1 || hh || mi || ss || frac || extra)
			goto inexact;
		if (__builtin_sub_overflow(y, 1970, &v) ||
		    __builtin_mul_overflow(v, 12, &v) ||
		    __builtin_add_overflow(v, mo - 1, &v))
			goto range;
		break;
	default:
		if (!days_checked(y, mo, d, &days))
			goto range;
		switch (dt->unit) {
		case NPY_UNIT_W:
			if (hh || mi || ss || frac || extra || days % 7)
				goto inexact;
			v = days / 7;
			break;
		case NPY_UNIT_D:
			if (hh || mi || ss || frac || extra)
				goto inexact;
			v = days;
			break;
		case NPY_UNIT_h:
			if (mi || ss || frac || extra)
				goto inexact;
			if (!combine(days, 24, hh, &v))
				goto range;
			break;
		case NPY_UNIT_m:
			if (ss || frac || extra)
				goto inexact;
			if (!combine(days, 1440, hh * 60 + mi, &v))
				goto range;
			break;
		default:
			fd = text_unit_frac_digits(dt->unit);
			if (extra || nf > fd) {
				/* digits beyond the unit must be zeros */
				uint64_t p10 = 1;

				if (extra)
					goto inexact;
				for (int i = fd; i < nf; i++)
					p10 *= 10;
				if (frac % p10)
					goto inexact;
				frac /= p10;
				nf = fd;
			}
			for (; nf < fd; nf++)
				frac *= 10;
			if (!combine(days, 86400, hh * 3600 + mi * 60 + ss, &v))
				goto range;
			sub = 1;
			for (int i = 0; i < fd; i++)
				sub *= 10;
			if (!combine(v, sub, (int64_t)frac, &v))
				goto range;
			break;
		}
	}
	if (dt->unit_mult != 1) {
		if (v % dt->unit_mult)
			goto inexact;
		v /= dt->unit_mult;
	}
	if (v == INT64_MIN)
		goto range;
	text_st64(dst, (uint64_t)v, dt->swapped);
	return 0;

bad:
	return fail_bad(t, s, n, dt);
range:
	return fail_tok(t, s, n, dt, "out of range for");
inexact:
	return fail_tok(t, s, n, dt, "is not a whole number of units of");
}

static int conv_timedelta(struct tp *t, const char *s, size_t n,
			  unsigned char *dst, const struct npy_dtype *dt)
{
	bool neg;
	uint64_t mag;
	int r;

	if (eq_nocase(s, n, "nat")) {
		text_st64(dst, (uint64_t)INT64_MIN, dt->swapped);
		return 0;
	}
	r = scan_int(s, n, &neg, &mag);
	if (r == NUM_BAD)
		return fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || mag > (1ull << 63) || (!neg && mag == (1ull << 63)))
		return fail_tok(t, s, n, dt, "out of range for");
	text_st64(dst, neg ? 0 - mag : mag, dt->swapped);
	return 0;
}

/* ---- strings ------------------------------------------------------------- */

enum str_form { STR_BARE, STR_QUOTED, STR_BYTES };

/* Walk the characters of a string token (quotes and escapes resolved),
 * calling put(ctx, value) for each.  bytes: the target is S (\u refused,
 * non-ASCII raw bytes kept as bytes); else U (raw UTF-8 decoded).
 * Returns 0 or -EINVAL with a message. */
static int walk_string(struct tp *t, const char *s, size_t n, bool bytes,
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
				return fail(t, "bad escape at the end of %s",
					    quote_tok(s, n, q));
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
				return fail(t, "bad escape '\\%c' in %s",
					    p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?',
					    quote_tok(s, n, q));
			}
			if (len && (bytes || form == STR_BYTES) && len != 2)
				return fail(t, "bad escape '\\%c' in bytes %s",
					    p[1], quote_tok(s, n, q));
			p += 2;
			if (len) {
				c = 0;
				if (e - p < len)
					return fail(t, "bad escape in %s",
						    quote_tok(s, n, q));
				for (int i = 0; i < len; i++) {
					v = hexval((char)p[i]);
					if (v < 0)
						return fail(t, "bad escape in %s",
							    quote_tok(s, n, q));
					c = c << 4 | (uint32_t)v;
				}
				/* numpy cannot load code points past U+10FFFF;
				 * lone surrogates it loads, and so do we */
				if (c > 0x10ffff)
					return fail(t, "code point \\U%08x beyond U+10FFFF in %s",
						    (unsigned)c, quote_tok(s, n, q));
				p += len;
			}
		} else if (*p < 0x80 || bytes || form == STR_BYTES) {
			c = *p++;
		} else {
			size_t k = npy_utf8_get(p, (size_t)(e - p), &c);

			if (!k)
				return fail(t, "invalid UTF-8 in %s",
					    quote_tok(s, n, q));
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
	int ret = walk_string(t, s, n, bytes, sput_char, &sp);

	if (ret == -E2BIG)
		return fail_tok(t, s, n, dt, "too long for");
	if (ret == -ERANGE)
		return fail_tok(t, s, n, dt, "does not fit");
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
		int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);

		if (hi < 0 || lo < 0)
			goto bad;
		dst[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
bad:
	{
		char q[TOK_MSG + 4];

		return fail(t, "bad value '%s' (expected 0x and %zu hex digits)",
			    quote_tok(s, n, q), 2 * dt->itemsize);
	}
}

static conv_fn conv_for(const struct npy_dtype *dt)
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
	case NPY_DATETIME: return conv_datetime;
	case NPY_TIMEDELTA: return conv_timedelta;
	default: return NULL;
	}
}

/* ---- inference ----------------------------------------------------------- */

enum infer { INF_NONE, INF_BOOL, INF_INT, INF_FLOAT, INF_COMPLEX, INF_STR };

struct inferred {
	enum infer kind;
	size_t maxlen;		/* strings: longest, in characters */
	size_t maxnum;		/* longest number token, in case strings follow */
	bool all_bytes;		/* every string token was b"..." */
};

static int count_char(void *ctx, uint32_t c)
{
	(void)c;
	(*(size_t *)ctx)++;
	return 0;
}

/* Numbers seen before the first string need their length too. */
static size_t bare_len(const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += ((unsigned char)s[i] & 0xc0) != 0x80;
	return len;
}

static int infer_token(struct tp *t, const char *s, size_t n,
		       struct inferred *inf)
{
	enum infer k;
	struct decnum d;
	bool neg;
	uint64_t mag;
	size_t re_n, im_n;
	const char *im;

	if ((n == 4 && !memcmp(s, "True", 4)) || (n == 5 && !memcmp(s, "False", 5)))
		k = INF_BOOL;
	else if (scan_int(s, n, &neg, &mag) == NUM_OK &&
		 (neg ? mag <= (1ull << 63) : mag < (1ull << 63)))
		k = INF_INT;
	else if (scan_float(s, n, &d) != NUM_BAD)
		k = INF_FLOAT;
	else if (split_complex(s, n, &re_n, &im, &im_n) && im &&
		 !(im_n == 1 && (*im == '+' || *im == '-')) &&
		 scan_float(im, im_n, &d) != NUM_BAD &&
		 (!re_n || scan_float(s + (n >= 2 && s[0] == '(' && s[n - 1] == ')'),
				      re_n, &d) != NUM_BAD))
		k = INF_COMPLEX;
	else
		k = INF_STR;
	if (k != INF_STR) {
		size_t bl = bare_len(s, n);

		if (bl > inf->maxnum)
			inf->maxnum = bl;
	}
	if (k != INF_STR && inf->kind == INF_STR) {
		/* numbers among strings are strings */
		k = INF_STR;
	}
	if (k == INF_STR) {
		size_t len = 0;
		bool is_bytes = n >= 3 && s[0] == 'b' && s[1] == '"';
		int ret = walk_string(t, s, n, false, count_char, &len);

		if (ret)
			return ret;
		if (inf->kind != INF_STR) {
			inf->all_bytes = true;
			inf->kind = INF_STR;
		}
		inf->all_bytes &= is_bytes;
		if (len > inf->maxlen)
			inf->maxlen = len;
		return 0;
	}
	if (k > inf->kind)
		inf->kind = k;
	return 0;
}

/* ---- pass 1: layout ------------------------------------------------------ */

/* Blocks of different sizes are only an error when the shape needs them. */
static void end_block(struct tp *t, uint64_t rows, size_t first_line)
{
	if (t->nblocks == 1)
		t->block_lines = rows;
	else if (rows != t->block_lines && !t->ragged_block) {
		t->ragged_block = first_line;
		t->ragged_rows = rows;
	}
}

static int scan_layout(struct tp *t, struct inferred *inf)
{
	const char *p = t->text + t->body, *end = t->text + t->len;
	uint64_t cur = 0;	/* lines in the current block */
	size_t block_start = 0;
	bool in_block = false, first_line = true;
	int ret;

	t->lineno = t->body_lineno;
	for (; p < end; t->lineno++) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *next;
		int kind;

		if (!e)
			e = end;
		next = e < end ? e + 1 : end;
		kind = line_kind(p, e);
		if (kind == L_COMMENT) {
			p = next;
			continue;
		}
		if (kind != L_DATA) {
			if (in_block)
				end_block(t, cur, block_start);
			in_block = false;
			p = next;
			continue;
		}
		if (!in_block) {
			in_block = true;
			t->nblocks++;
			cur = 0;
			block_start = t->lineno;
		}
		cur++;
		t->nlines++;

		/* tokens */
		uint64_t ntok = 0;
		const char *q = p;
		for (;;) {
			while (q < e && is_ws(*q))
				q++;
			if (q >= e)
				break;
			const char *te = tok_end(t, q, e);
			if (!te)
				return -EINVAL;
			if (inf) {
				ret = infer_token(t, q, (size_t)(te - q), inf);
				if (ret)
					return ret;
			}
			ntok++;
			q = te;
		}
		if (t->record) {
			if (ntok != t->ncols)
				return fail(t, "expected %zu values, found %llu",
					    t->ncols, (unsigned long long)ntok);
		} else if (first_line) {
			t->line_values = ntok;
		} else if (ntok != t->line_values) {
			return fail(t, "expected %llu values, found %llu (ragged rows)",
				    (unsigned long long)t->line_values,
				    (unsigned long long)ntok);
		}
		first_line = false;
		t->nvalues += ntok;
		p = next;
	}
	if (in_block)
		end_block(t, cur, block_start);
	if (inf && inf->kind == INF_STR && inf->maxnum > inf->maxlen)
		inf->maxlen = inf->maxnum;
	return 0;
}

/* ---- shape --------------------------------------------------------------- */

static int ragged_blocks(struct tp *t)
{
	t->lineno = t->ragged_block;
	return fail(t, "block has %llu rows, expected %llu",
		    (unsigned long long)t->ragged_rows,
		    (unsigned long long)t->block_lines);
}

/* The shape: ref's (the header line's, else base's) when its count matches,
 * else from the layout, keeping ref's number of dimensions where it can.
 * Blank-line separated blocks count only for 0-d/new arrays and ndim >= 3. */
static int decide_shape(struct tp *t, const struct npy_header *ref,
			int *ndim, uint64_t *shape)
{
	uint64_t N = t->record ? t->nlines : t->nvalues;
	uint64_t B = t->nblocks, L = t->block_lines, T = t->line_values;
	uint64_t lines = t->nlines;
	int d = ref ? ref->ndim : -1, i;

	if (t->record && !t->ncols && ref)
		N = ref->count;		/* records without columns: lines are empty */
	if (ref && ref->count == N) {
		*ndim = ref->ndim;
		memcpy(shape, ref->shape, sizeof(uint64_t) * (size_t)ref->ndim);
		return 0;
	}
	if (t->record) {
		*ndim = 1;
		shape[0] = N;
		return 0;
	}
	if (!N) {
		*ndim = d >= 1 ? d : 1;
		if (d >= 1)
			memcpy(shape, ref->shape, sizeof(uint64_t) * (size_t)d);
		shape[0] = 0;
		return 0;
	}
	if (d == 1 || d == 2 || B <= 1) {
		/* rows are all the data lines, whatever blank lines say */
		if (d >= 3) {
			*ndim = d;
			for (i = 0; i < d - 2; i++)
				shape[i] = 1;
			shape[d - 2] = lines;
			shape[d - 1] = T;
		} else if (d != 2 && (lines == 1 || T == 1)) {
			*ndim = 1;
			shape[0] = N;
		} else {
			*ndim = 2;
			shape[0] = lines;
			shape[1] = T;
		}
		return 0;
	}
	if (t->ragged_block)
		return ragged_blocks(t);
	if (d <= 3) {
		*ndim = 3;
		shape[0] = B;
		shape[1] = L;
		shape[2] = T;
		return 0;
	}
	/* keep the leading dimensions when they still multiply to B */
	uint64_t prod = 1;
	for (i = 0; i < d - 2; i++)
		prod = ref->shape[i] && prod <= UINT64_MAX / ref->shape[i] ?
		       prod * ref->shape[i] : 0;
	*ndim = d;
	for (i = 0; i < d - 2; i++)
		shape[i] = prod == B ? ref->shape[i] : (i ? 1 : B);
	shape[d - 2] = L;
	shape[d - 1] = T;
	return 0;
}

/* ---- output -------------------------------------------------------------- */

static int flush_band(struct tp *t);

static int out_flush(struct tp *t)
{
	int ret = 0;

	if (!t->n)
		return 0;
	if (t->fortran) {
		ret = flush_band(t);
	} else if (t->isz) {
		ret = t->out->write_at(t->out->ctx, t->cbuf, t->n * t->isz,
				       t->done * t->isz);
	}
	t->done += t->n;
	t->n = 0;
	return ret;
}

/* Write the C-order elements in cbuf (whole first-axis indices, or one
 * element in the fallback) at their Fortran offsets. */
static int flush_band(struct tp *t)
{
	const struct npy_header *h = t->hdr;
	size_t isz = t->isz;
	uint64_t idx[NPY_MAXDIMS], fs[NPY_MAXDIMS];
	int nd = h->ndim, j, ret = 0;

	if (!isz)
		return 0;
	if (!t->fbuf) {
		/* fallback: single elements at their F offset */
		for (size_t e = 0; e < t->n && !ret; e++) {
			uint64_t c = t->done + e, off = 0, stride = 1;

			for (j = nd - 1; j >= 0; j--) {
				idx[j] = c % h->shape[j];
				c /= h->shape[j];
			}
			for (j = 0; j < nd; j++) {
				off += idx[j] * stride;
				stride *= h->shape[j];
			}
			ret = t->out->write_at(t->out->ctx, t->cbuf + e * isz, isz,
					       off * isz);
		}
		return ret;
	}
	uint64_t d0 = h->shape[0], a = t->done / t->rest;
	size_t k = t->n / t->rest;

	fs[1] = 1;
	for (j = 2; j < nd; j++)
		fs[j] = fs[j - 1] * h->shape[j - 1];
	const unsigned char *src = t->cbuf;
	for (size_t i0 = 0; i0 < k; i0++) {
		uint64_t r = 0;

		memset(idx, 0, sizeof(idx));
		for (uint64_t c = 0; c < t->rest; c++) {
			memcpy(t->fbuf + (r * k + i0) * isz, src, isz);
			src += isz;
			for (j = nd - 1; j >= 1; j--) {
				r += fs[j];
				if (++idx[j] < h->shape[j])
					break;
				r -= fs[j] * h->shape[j];
				idx[j] = 0;
			}
		}
	}
	if (k == d0)
		return t->out->write_at(t->out->ctx, t->fbuf, k * t->rest * isz, 0);
	for (uint64_t r = 0; r < t->rest && !ret; r++)
		ret = t->out->write_at(t->out->ctx, t->fbuf + r * k * isz, k * isz,
				       (a + r * d0) * isz);
	return ret;
}

static int out_setup(struct tp *t)
{
	const struct npy_header *h = t->hdr;
	size_t isz = t->isz ? t->isz : 1;

	t->fortran = h->fortran_order && h->ndim >= 2 && h->count > 0;
	if (t->fortran) {
		t->rest = h->count / h->shape[0];
		if (t->isz && t->rest <= text_band_bytes / t->isz) {
			uint64_t band = text_band_bytes / (t->isz * t->rest);

			if (band > h->shape[0])
				band = h->shape[0];
			t->cap = (size_t)(band * t->rest);
			t->fbuf = malloc(t->cap * isz);
			if (!t->fbuf)
				return -ENOMEM;
		} else {
			t->cap = OUT_BLOCK / isz ? OUT_BLOCK / isz : 1;
		}
	} else {
		t->cap = OUT_BLOCK / isz ? OUT_BLOCK / isz : 1;
	}
	if (t->cap > h->count)
		t->cap = h->count ? (size_t)h->count : 1;
	t->cbuf = malloc(t->cap * isz);
	return t->cbuf ? 0 : -ENOMEM;
}

/* ---- pass 2: values ------------------------------------------------------ */

static int convert(struct tp *t)
{
	const char *p = t->text + t->body, *end = t->text + t->len;
	size_t col = 0, ncols = t->ncols;
	const struct col *cols = t->cols;
	unsigned char *elem = NULL;
	int ret;

	if (!t->record && !t->nvalues)
		return 0;
	t->lineno = t->body_lineno;
	for (; p < end; t->lineno++) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *next;

		if (!e)
			e = end;
		next = e < end ? e + 1 : end;
		if (line_kind(p, e) != L_DATA) {
			p = next;
			continue;
		}
		for (const char *q = p;;) {
			while (q < e && is_ws(*q))
				q++;
			if (q >= e)
				break;
			const char *te = tok_end(t, q, e);

			if (!te)
				return -EINVAL;
			if (!col) {
				if (t->n == t->cap) {
					ret = out_flush(t);
					if (ret)
						return ret;
				}
				elem = t->cbuf + t->n * t->isz;
				if (t->record)
					memset(elem, 0, t->isz);
			}
			ret = cols[col].conv(t, q, (size_t)(te - q),
					     elem + cols[col].offset, cols[col].dt);
			if (ret)
				return ret;
			if (++col == ncols) {
				col = 0;
				t->n++;
			}
			q = te;
		}
		p = next;
	}
	return out_flush(t);
}

/* ---- fast path: values in a known shape -----------------------------------
 *
 * Most texts written back are an edited view: a header line whose element
 * count still matches the body, then whitespace-separated values without
 * quotes.  For those the first pass only counts tokens and newlines (32
 * bytes at a time with AVX2, else 16 with SSE2, else one) and the second
 * converts values as it meets them, float64 inline (fast_double), without
 * finding lines first.  The body is cut into chunks of about
 * text_parse_chunk_bytes that begin at line starts, so that each chunk's
 * first value index and line number come from the counts before it; each
 * pass works chunk by chunk, on two threads when there are two CPUs.  The
 * helper thread never calls `out` (callbacks stay on the calling thread):
 * it hands its blocks to the calling thread, which writes them.
 *
 * When the count is not the reference's (or there is none: a new array),
 * the general layout scan still decides the shape, but the conversion is
 * this one whenever the body has no quotes and the result is in C order.
 *
 * Errors are those of the general path, always: each chunk stops at its
 * first error and the lowest chunk's wins (the first in the text), and as
 * the general first pass reports layout errors (ragged rows) before any
 * value, any error after skipping that scan is followed by it, and its
 * message, if it has one, wins.
 */

size_t text_parse_chunk_bytes = 1u << 20;
int text_parse_threads;
bool text_parse_fast = true;
int text_parse_simd = 2;

#define FAST_BLOCK (256u << 10)	/* output bytes per block */
#define FAST_ITEM_MAX 4096	/* larger elements take the general path */

struct chunk {
	size_t start, end;	/* text offsets; start is a line start */
	uint64_t first;		/* index of its first value */
	uint64_t values;	/* tokens in data lines */
	uint64_t newlines;
	size_t lineno;		/* line number of start */
};

struct fast;

struct worker {
	struct fast *f;
	struct tp t;		/* own lineno and err, for the converters */
	struct npz_err err;
	bool helper;
	unsigned char *buf, *spare;	/* output blocks of `cap` elements */
	size_t n, cap;		/* elements in buf */
	uint64_t first;		/* element index of buf[0] */
	int ret;		/* first conversion error ... */
	size_t err_chunk;	/* ... in this chunk */
	int cb_ret;		/* out->write_at failed (calling thread) */
};

struct fast {
	struct tp *t;
	struct chunk *ch;
	size_t nch;
	int pass;		/* 1: count, 2: convert */
	uint64_t line_values;	/* tokens of the first data line */
	bool quoted;		/* pass 1 met a quote: not for this path */

	pthread_mutex_t lock;
	pthread_cond_t cv;
	size_t next;		/* next chunk to take */
	size_t fail;		/* lowest chunk with an error, nch if none */
	bool stop;		/* give up: quote seen, or a write failed */
	bool helper_done;
	/* the helper's hand-off: one full block for the caller to write */
	int slot_full;		/* atomic, changed under lock */
	const unsigned char *slot;
	size_t slot_len;
	uint64_t slot_off;
	unsigned char *back;	/* a written block, back to the helper */
};

/* ---- pass 1: count ---- */

/* Tokens in the data lines of [p, e) by lines, with comment lines left
 * out (as scan_layout sees them); for chunks holding a '#'. */
static void count_lines(const char *p, const char *e, struct chunk *c)
{
	c->values = c->newlines = 0;
	while (p < e) {
		const char *le = memchr(p, '\n', (size_t)(e - p));

		if (!le)
			le = e;
		if (line_kind(p, le) == L_DATA) {
			bool in = false;

			for (const char *q = p; q < le; q++) {
				bool tk = ch_class[(unsigned char)*q] < CH_WS;

				c->values += tk && !in;
				in = tk;
			}
		}
		if (le < e)
			c->newlines++;
		p = le < e ? le + 1 : e;
	}
}

/* Token starts and newlines of [p, e) byte by byte, after a token byte if
 * `in`, added to c; true if there is a '"' or a '#'. */
static bool count_bytes(const char *p, const char *e, bool in, struct chunk *c)
{
	bool special = false;

	for (; p < e; p++) {
		int k = ch_class[(unsigned char)*p];
		bool tk = k < CH_WS;

		c->values += tk && !in;
		in = tk;
		c->newlines += k == CH_NL;
		special |= k == CH_QUOTE || *p == '#';
	}
	return special;
}

/* 64 bytes as masks (bit i: byte i): ws whitespace, nl newlines. */
static inline void count_masks(struct chunk *c, uint64_t ws, uint64_t nl,
			       uint64_t *carry)
{
	uint64_t tok = ~ws;

	c->values += (uint64_t)__builtin_popcountll(tok & ~(tok << 1 | *carry));
	c->newlines += (uint64_t)__builtin_popcountll(nl);
	*carry = tok >> 63;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define COUNT_AVX2 1
/* count_plain() 32 bytes at a time, for CPUs with AVX2. */
__attribute__((target("avx2,popcnt")))
static bool count_avx2(const char *p, const char *e, struct chunk *c)
{
	const __m256i c9 = _mm256_set1_epi8(9), c4 = _mm256_set1_epi8(4);
	const __m256i sp = _mm256_set1_epi8(' '), lf = _mm256_set1_epi8('\n');
	const __m256i dq = _mm256_set1_epi8('"'), hash = _mm256_set1_epi8('#');
	__m256i spec = _mm256_setzero_si256();
	uint64_t carry = 0;

	for (; e - p >= 64; p += 64) {
		uint64_t ws = 0, nl = 0;

		for (int i = 0; i < 2; i++) {
			__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * i));
			__m256i y = _mm256_sub_epi8(x, c9);
			/* 9..13 (\t \n \v \f \r) or ' ' */
			__m256i w = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(y, c4), y),
						    _mm256_cmpeq_epi8(x, sp));

			ws |= (uint64_t)(uint32_t)_mm256_movemask_epi8(w) << (32 * i);
			nl |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, lf))
			      << (32 * i);
			spec = _mm256_or_si256(spec, _mm256_or_si256(_mm256_cmpeq_epi8(x, dq),
								     _mm256_cmpeq_epi8(x, hash)));
		}
		count_masks(c, ws, nl, &carry);
	}
	return count_bytes(p, e, carry, c) || !_mm256_testz_si256(spec, spec);
}
#endif

/* Token starts and newlines of [p, e) into c; true if there is a '"' or a
 * '#' (then the counts are those of plain words, without quoted strings
 * or comment lines). */
static bool count_plain(const char *p, const char *e, struct chunk *c)
{
	uint64_t carry = 0;

	c->values = c->newlines = 0;
#ifdef COUNT_AVX2
	static int avx2 = -1;	/* benign race: every thread finds the same */
	int have = __atomic_load_n(&avx2, __ATOMIC_RELAXED);

	if (have < 0) {
		have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
		__atomic_store_n(&avx2, have, __ATOMIC_RELAXED);
	}
	if (have && text_parse_simd >= 2)
		return count_avx2(p, e, c);
#endif
#ifdef __SSE2__
	if (text_parse_simd < 1)
		return count_bytes(p, e, false, c);

	const __m128i c9 = _mm_set1_epi8(9), c4 = _mm_set1_epi8(4);
	const __m128i sp = _mm_set1_epi8(' '), lf = _mm_set1_epi8('\n');
	const __m128i dq = _mm_set1_epi8('"'), hash = _mm_set1_epi8('#');
	__m128i spec = _mm_setzero_si128();

	for (; e - p >= 64; p += 64) {
		uint64_t ws = 0, nl = 0;

		for (int i = 0; i < 4; i++) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
			__m128i y = _mm_sub_epi8(x, c9);
			__m128i w = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(y, c4), y),
						 _mm_cmpeq_epi8(x, sp));

			ws |= (uint64_t)(unsigned)_mm_movemask_epi8(w) << (16 * i);
			nl |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, lf))
			      << (16 * i);
			spec = _mm_or_si128(spec, _mm_or_si128(_mm_cmpeq_epi8(x, dq),
							       _mm_cmpeq_epi8(x, hash)));
		}
		count_masks(c, ws, nl, &carry);
	}
	return count_bytes(p, e, carry, c) || _mm_movemask_epi8(spec);
#else
	return count_bytes(p, e, carry, c);
#endif
}

/* Count chunk c; false if it has a quote. */
static bool count_chunk(const struct tp *t, struct chunk *c)
{
	const char *p = t->text + c->start, *e = t->text + c->end;

	if (!count_plain(p, e, c))
		return true;
	if (memchr(p, '"', (size_t)(e - p)))
		return false;
	count_lines(p, e, c);	/* comment lines */
	return true;
}

/* ---- pass 2: convert ---- */

static void slot_wait(struct fast *f)
{
	pthread_cond_wait(&f->cv, &f->lock);
}

/* Write the helper's block if there is one (calling thread). */
static void serve_helper(struct fast *f, struct worker *w)
{
	const struct text_out *out = f->t->out;

	if (!__atomic_load_n(&f->slot_full, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&f->lock);
	while (f->slot_full) {
		const unsigned char *b = f->slot;
		size_t len = f->slot_len;
		uint64_t off = f->slot_off;
		int ret = 0;

		pthread_mutex_unlock(&f->lock);
		if (!w->cb_ret)
			ret = out->write_at(out->ctx, b, len, off);
		pthread_mutex_lock(&f->lock);
		if (ret) {
			w->cb_ret = ret;
			f->stop = true;
		}
		f->back = (unsigned char *)b;
		__atomic_store_n(&f->slot_full, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->lock);
}

/* Hand the block on: write it (calling thread) or pass it to the calling
 * thread (helper).  Returns 0 or -errno. */
static int worker_flush(struct worker *w)
{
	struct fast *f = w->f;
	size_t isz = f->t->isz;
	int ret = 0;

	if (!w->n)
		return 0;
	if (!w->helper) {
		const struct text_out *out = f->t->out;

		ret = out->write_at(out->ctx, w->buf, w->n * isz, w->first * isz);
		if (ret) {
			w->cb_ret = ret;
			pthread_mutex_lock(&f->lock);
			f->stop = true;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->lock);
		}
		serve_helper(f, w);
	} else {
		pthread_mutex_lock(&f->lock);
		while (f->slot_full && !f->stop)
			slot_wait(f);
		if (f->stop) {
			ret = -ECANCELED;
		} else {
			if (f->back) {
				w->spare = f->back;
				f->back = NULL;
			}
			f->slot = w->buf;
			f->slot_len = w->n * isz;
			f->slot_off = w->first * isz;
			__atomic_store_n(&f->slot_full, 1, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&f->cv);
			w->buf = w->spare;
			w->spare = NULL;
		}
		pthread_mutex_unlock(&f->lock);
	}
	w->first += w->n;
	w->n = 0;
	return ret;
}

/* Convert the values of chunk c; `f64`: the dtype is native float64 (a
 * constant, so that each caller gets its own copy of the loop).  Returns 0,
 * a converter's error (message in w->err), or a write error (w->cb_ret). */
static inline __attribute__((always_inline))
int convert_chunk_as(struct worker *w, const struct chunk *c, bool f64)
{
	const struct tp *t = w->f->t;
	const char *p = t->text + c->start, *end = t->text + c->end;
	const struct col *col = &t->cols[0];
	const struct npy_dtype *dt = col->dt;
	size_t isz = t->isz, lineno = c->lineno;
	uint64_t want = w->f->line_values, ntok = 0;
	unsigned char *dst = w->buf, *full = w->buf + w->cap * isz;
	int ret;

	w->first = c->first;
	for (;;) {
		const char *te;

		for (; p < end; p++) {
			int k = ch_class[(unsigned char)*p];

			if (k < CH_WS)
				break;
			if (k == CH_NL) {
				if (ntok && ntok != want)
					goto ragged;
				ntok = 0;
				lineno++;
			}
		}
		if (p >= end)
			break;
		if (!ntok && *p == '#') {	/* comment line */
			te = memchr(p, '\n', (size_t)(end - p));
			p = te ? te : end;
			continue;
		}
		if (dst == full) {
			w->n = w->cap;
			ret = worker_flush(w);
			if (ret)
				return ret;
			dst = w->buf;
			full = w->buf + w->cap * isz;
		}
		if (f64) {
			double d;

			te = fast_double(p, end, &d);
			if (te) {
				memcpy(dst, &d, 8);
				goto next;
			}
		}
		for (te = p; te < end && ch_class[(unsigned char)*te] < CH_WS; te++)
			;
		w->t.lineno = lineno;
		ret = col->conv(&w->t, p, (size_t)(te - p), dst, dt);
		if (ret)
			return ret;
next:
		dst += isz;
		ntok++;
		p = te;
	}
	if (ntok && ntok != want)
		goto ragged;
	w->n = (size_t)(dst - w->buf) / isz;
	return worker_flush(w);
ragged:
	w->t.lineno = lineno;
	return fail(&w->t, "expected %llu values, found %llu (ragged rows)",
		    (unsigned long long)want, (unsigned long long)ntok);
}

static int convert_chunk(struct worker *w, const struct chunk *c)
{
	const struct npy_dtype *dt = w->f->t->cols[0].dt;

	if (dt->kind == NPY_FLOAT && dt->itemsize == 8 && !dt->swapped)
		return convert_chunk_as(w, c, true);
	return convert_chunk_as(w, c, false);
}

/* ---- both passes ---- */

/* Take chunks and work on them until there are none left. */
static void run_pass(struct worker *w)
{
	struct fast *f = w->f;

	for (;;) {
		size_t i;
		int ret;

		pthread_mutex_lock(&f->lock);
		i = f->next;
		if (f->stop || i >= f->nch || i > f->fail)
			i = f->nch;
		else
			f->next++;
		pthread_mutex_unlock(&f->lock);
		if (i == f->nch)
			break;
		if (f->pass == 1) {
			if (!count_chunk(f->t, &f->ch[i])) {
				pthread_mutex_lock(&f->lock);
				f->quoted = f->stop = true;
				pthread_mutex_unlock(&f->lock);
				break;
			}
			continue;
		}
		ret = convert_chunk(w, &f->ch[i]);
		if (w->cb_ret || ret == -ECANCELED)
			break;
		if (ret) {
			w->ret = ret;
			w->err_chunk = i;
			w->n = 0;
			pthread_mutex_lock(&f->lock);
			if (i < f->fail)
				f->fail = i;
			pthread_mutex_unlock(&f->lock);
			break;
		}
	}
	if (w->helper) {
		pthread_mutex_lock(&f->lock);
		f->helper_done = true;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->lock);
	} else if (f->pass == 2) {
		/* the helper's last blocks */
		pthread_mutex_lock(&f->lock);
		while (!f->helper_done || f->slot_full) {
			if (f->slot_full) {
				pthread_mutex_unlock(&f->lock);
				serve_helper(f, w);
				pthread_mutex_lock(&f->lock);
			} else {
				slot_wait(f);
			}
		}
		pthread_mutex_unlock(&f->lock);
	}
}

static void *helper_main(void *arg)
{
	run_pass(arg);
	return NULL;
}

static bool use_helper(const struct fast *f)
{
	int n = text_parse_threads;

	if (!n) {
		static int cpus;	/* benign race: every thread finds the same */
		int c = __atomic_load_n(&cpus, __ATOMIC_RELAXED);

		if (!c) {
			c = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1;
			__atomic_store_n(&cpus, c, __ATOMIC_RELAXED);
		}
		n = c;
	}
	return n > 1 && f->nch > 1;
}

/* Run f->pass over all chunks with the workers (w[1]: the helper, used if
 * it can start). */
static void run_both(struct fast *f, struct worker w[2])
{
	pthread_t th;
	bool two = use_helper(f);

	f->next = 0;
	f->stop = false;
	f->helper_done = !two;
	if (two && pthread_create(&th, NULL, helper_main, &w[1])) {
		two = false;
		f->helper_done = true;
	}
	run_pass(&w[0]);
	if (two)
		pthread_join(th, NULL);
}

static void worker_init(struct worker *w, struct fast *f, bool helper)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
	w->t = *f->t;
	w->t.err = &w->err;
	w->helper = helper;
}

/* Cut the body into chunks at line starts. */
static int make_chunks(struct fast *f)
{
	const struct tp *t = f->t;
	size_t pos = t->body, len = t->len;
	size_t step = text_parse_chunk_bytes ? text_parse_chunk_bytes : 1;

	f->ch = calloc((len - pos) / step + 1, sizeof(*f->ch));
	if (!f->ch)
		return -ENOMEM;
	while (pos < len) {
		struct chunk *c = &f->ch[f->nch++];
		const char *nl = NULL;

		c->start = pos;
		if (len - pos > step)
			nl = memchr(t->text + pos + step - 1, '\n', len - pos - step + 1);
		pos = nl ? (size_t)(nl - t->text) + 1 : len;
		c->end = pos;
	}
	return 0;
}

/* Pass 1: *count values and *ok, or !*ok if the body is not for the fast
 * path (quotes, no values).  Fills in the chunks' first value and line. */
static void fast_count(struct fast *f, bool *ok, uint64_t *count)
{
	struct tp *t = f->t;
	struct worker w[2];
	uint64_t n = 0;
	size_t line = t->body_lineno;

	*ok = false;
	if (make_chunks(f))
		return;		/* no memory: the general path */
	f->pass = 1;
	f->fail = f->nch;
	worker_init(&w[0], f, false);
	worker_init(&w[1], f, true);
	run_both(f, w);
	if (f->quoted)
		return;
	for (size_t i = 0; i < f->nch; i++) {
		f->ch[i].first = n;
		f->ch[i].lineno = line;
		n += f->ch[i].values;
		line += f->ch[i].newlines;
	}
	*count = n;
	if (!n)
		return;
	/* tokens of the first data line */
	for (const char *p = t->text + t->body, *end = t->text + t->len; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));

		if (!e)
			e = end;
		if (line_kind(p, e) == L_DATA) {
			struct chunk c;

			count_plain(p, e, &c);
			f->line_values = c.values;
			break;
		}
		p = e < end ? e + 1 : end;
	}
	*ok = true;
}

/* Pass 2.  Returns 0 or the error of the general path's convert(). */
static int fast_convert(struct fast *f)
{
	struct tp *t = f->t;
	struct worker w[2];
	size_t cap = FAST_BLOCK / t->isz ? FAST_BLOCK / t->isz : 1;
	int ret = 0;

	f->pass = 2;
	f->fail = f->nch;
	worker_init(&w[0], f, false);
	worker_init(&w[1], f, true);
	for (int i = 0; i < 2; i++) {
		w[i].cap = cap;
		w[i].buf = malloc(cap * t->isz);
		if (!w[i].buf)
			ret = -ENOMEM;
	}
	w[1].spare = malloc(cap * t->isz);
	if (!w[1].spare)
		ret = -ENOMEM;
	if (!ret) {
		run_both(f, w);
		if (w[0].cb_ret) {
			ret = w[0].cb_ret;
		} else {
			struct worker *e = NULL;

			for (int i = 0; i < 2; i++)
				if (w[i].ret && (!e || w[i].err_chunk < e->err_chunk))
					e = &w[i];
			if (e) {
				ret = e->ret;
				if (t->err)
					*t->err = e->err;
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		free(w[i].buf);
		free(w[i].spare);
	}
	free(f->back);
	f->back = NULL;
	return ret;
}

/* ---- entry --------------------------------------------------------------- */

static int make_dtype(const char *str, struct npy_dtype *dt)
{
	return npy_dtype_parse_str(str, strlen(str), dt, NULL) ? -EINVAL : 0;
}

static int setup_cols(struct tp *t, const struct npy_dtype *dt)
{
	struct text_leaf *leaves = NULL;
	size_t n, i;
	int ret;

	t->dt = dt;
	t->isz = dt->itemsize;
	t->record = dt->kind == NPY_RECORD;
	if (!t->record) {
		t->cols = calloc(1, sizeof(*t->cols));
		if (!t->cols)
			return -ENOMEM;
		t->cols[0].conv = conv_for(dt);
		t->cols[0].dt = dt;
		t->ncols = 1;
		return 0;
	}
	ret = text_leaves(dt, &leaves, &n);
	if (ret) {
		if (ret == -EINVAL)
			npz_err_set(t->err, "too many columns");
		return ret;
	}
	t->cols = calloc(n ? n : 1, sizeof(*t->cols));
	if (!t->cols) {
		free(leaves);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		t->cols[i].conv = conv_for(leaves[i].dt);
		t->cols[i].dt = leaves[i].dt;
		t->cols[i].offset = leaves[i].offset;
	}
	t->ncols = n;
	free(leaves);
	return 0;
}

/* Fill major/minor/header_len as npy_header_format() decides them. */
static int header_sizes(struct npy_header *h)
{
	struct buf b = BUF_INIT;
	int ret = npy_header_format(h, &b);

	if (!ret) {
		h->major = (unsigned char)b.data[6];
		h->minor = 0;
		h->header_len = b.len;
	}
	buf_release(&b);
	return ret;
}

int text_parse(const char *text, size_t len, const struct npy_header *base,
	       struct npy_header *hdr, const struct text_out *out,
	       struct npz_err *err)
{
	struct tp t = { .text = text, .len = len, .err = err, .out = out };
	struct npy_header hl = { 0 };	/* from the header line */
	struct npy_dtype inferred = { 0 };
	const struct npy_header *ref = NULL;
	const struct npy_dtype *dt;
	struct inferred inf = { INF_NONE, 0, 0, false };
	uint64_t shape[NPY_MAXDIMS];
	int ndim = 0, ret;
	bool have_hl = false, counted = false, fast = false;
	struct fast f = { .t = &t, .lock = PTHREAD_MUTEX_INITIALIZER,
			  .cv = PTHREAD_COND_INITIALIZER };

	memset(hdr, 0, sizeof(*hdr));
	if (!len)
		t.text = text = "";	/* an empty file may come as NULL */
	t.body_lineno = 1;

	/* line 1: "# {...}" */
	{
		const char *e = memchr(text, '\n', len);
		const char *p = text, *le = e ? e : text + len;

		while (p < le && is_ws(*p))
			p++;
		if (p < le && *p == '#') {
			for (p++; p < le && is_ws(*p); p++)
				;
			if (p < le && *p == '{') {
				while (le > p && is_ws(le[-1]))
					le--;
				ret = npy_header_parse_dict(p, (size_t)(le - p), &hl, err);
				if (ret) {
					npz_err_prefix(err, "line 1: bad header");
					return ret;
				}
				have_hl = true;
				t.body = e ? (size_t)(e - text) + 1 : len;
				t.body_lineno = 2;
			}
		}
	}
	if (have_hl)
		ref = &hl;
	else if (base)
		ref = base;

	if (ref) {
		dt = &ref->dtype;
	} else {
		/* infer: a first scan with classification */
		struct tp s = t;

		s.ncols = 1;
		ret = scan_layout(&s, &inf);
		if (ret)
			return ret;
		char str[32];
		switch (inf.kind) {
		case INF_BOOL: strcpy(str, "|b1"); break;
		case INF_INT: strcpy(str, "<i8"); break;
		case INF_NONE:
		case INF_FLOAT: strcpy(str, "<f8"); break;
		case INF_COMPLEX: strcpy(str, "<c16"); break;
		default:
			snprintf(str, sizeof(str), inf.all_bytes ? "|S%zu" : "<U%zu",
				 inf.maxlen ? inf.maxlen : 1);
			break;
		}
		ret = make_dtype(str, &inferred);
		if (ret) {
			npz_err_set(err, "strings too long");
			return ret;
		}
		dt = &inferred;
	}
	ret = text_check_dtype(dt, 0, err);
	if (ret)
		goto out_release;
	ret = setup_cols(&t, dt);
	if (ret)
		goto out_release;
	if (text_parse_fast && !t.record && t.isz && t.isz <= FAST_ITEM_MAX &&
	    t.cols[0].conv) {
		/* counted: no quotes, the chunks know their first values;
		 * fast: and the count is the reference's, so the shape is
		 * known without the general layout scan */
		uint64_t n = 0;

		fast_count(&f, &counted, &n);
		fast = counted && ref && n == ref->count &&
		       !(have_hl && hl.fortran_order && hl.ndim >= 2);
		if (fast)
			t.nvalues = n;
	}
	if (!fast) {
		ret = scan_layout(&t, NULL);
		if (ret)
			goto out_release;
	}

	ret = decide_shape(&t, ref, &ndim, shape);
	if (ret)
		goto out_release;
	if (have_hl && ndim == hl.ndim &&
	    !memcmp(shape, hl.shape, sizeof(uint64_t) * (size_t)ndim)) {
		*hdr = hl;
		memset(&hl, 0, sizeof(hl));
		ret = header_sizes(hdr);
	} else {
		ret = npy_header_init(hdr, dt, ndim, shape,
				      have_hl && hl.fortran_order);
		if (ret == -EINVAL)
			npz_err_set(err, "array too large");
	}
	if (ret)
		goto out_release;
	/* the columns pointed into hl, which may have moved into hdr */
	free(t.cols);
	t.cols = NULL;
	ret = setup_cols(&t, &hdr->dtype);
	if (ret)
		goto out_release;
	{
		uint64_t have = t.record ? t.nlines : t.nvalues;

		if (t.record && !t.ncols) {
			have = hdr->count;
			if (hdr->data_len > TEXT_MAX_ITEMSIZE) {
				npz_err_set(err, "array too large");
				ret = -EINVAL;
				goto out_release;
			}
		}
		if (have != hdr->count) {
			npz_err_set(err, "%llu values do not fill shape of %llu",
				    (unsigned long long)have,
				    (unsigned long long)hdr->count);
			ret = -EINVAL;
			goto out_release;
		}
	}
	t.hdr = hdr;
	/* the fast conversion writes C order only */
	counted = counted && !(hdr->fortran_order && hdr->ndim >= 2);
	if (!counted)
		ret = out_setup(&t);
	if (ret)
		goto out_release;
	ret = out->begin(out->ctx, hdr);
	if (ret)
		goto out_release;
	if (counted) {
		ret = fast_convert(&f);
	} else if (t.record && !t.ncols) {
		/* records without columns (padding only): all zeros */
		memset(t.cbuf, 0, t.cap * (t.isz ? t.isz : 1));
		while (t.isz && t.done < hdr->count && !ret) {
			t.n = hdr->count - t.done < t.cap ?
			      (size_t)(hdr->count - t.done) : t.cap;
			ret = out_flush(&t);
		}
	} else {
		ret = convert(&t);
	}

out_release:
	if (ret && fast) {
		/* the general path's first pass would have failed first */
		struct tp s = { .text = t.text, .len = len, .err = err,
				.body = t.body, .body_lineno = t.body_lineno,
				.ncols = 1 };

		if (scan_layout(&s, NULL))
			ret = -EINVAL;
	}
	free(f.ch);
	free(t.cols);
	free(t.cbuf);
	free(t.fbuf);
	npy_header_release(&hl);
	npy_dtype_release(&inferred);
	if (ret)
		npy_header_release(hdr);
	return ret;
}
