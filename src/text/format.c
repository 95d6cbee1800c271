/* text_format.c - render an array as its text view.
 *
 * Invariant: text_parse(text_format(a)) == a, byte for byte, for every
 * dtype but object.  Exceptions, by design: every NaN renders as "nan", so
 * a NaN's sign and payload bits come back as the default quiet NaN of the
 * precision; bool bytes other than 0/1 come back as 1; the 6 (or 2) unused
 * bytes of an x87 long double (f16/f12) and non-canonical x87 encodings come
 * back as zeros / the canonical value; padding bytes of structured dtypes
 * come back as zeros.
 *
 * Floats are printed as the shortest decimal that reads back to the same
 * value (Schubfach for float16/32/64, snprintf/strtold search for long
 * double), in Python repr style.  Output goes to the sink in chunks of at
 * most 64 KiB; data is read in blocks of about 1 MiB (C order), or in bands
 * of up to 32 MiB transposed in memory (Fortran order).
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "text_internal.h"

#define OUT_CAP (64u << 10)	/* sink chunk size */
#define IN_BLOCK (1u << 20)	/* C-order read block */
#define ELEM_MAX 160		/* longest fixed-size element text */

/* ---- small shared helpers ------------------------------------------------ */

size_t text_band_bytes = 32u << 20;

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
	c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

locale_t text_c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_init);
	return c_locale_obj ? c_locale_obj : LC_GLOBAL_LOCALE;
}

static int add_leaves(const struct npy_dtype *dt, size_t base,
		      struct text_leaf **v, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *f = &dt->fields[i];
		for (uint64_t j = 0; j < f->count; j++) {
			size_t off = base + f->offset + (size_t)j * f->type.itemsize;
			int ret;

			if (f->type.kind == NPY_RECORD) {
				ret = add_leaves(&f->type, off, v, n, cap);
				if (ret)
					return ret;
				continue;
			}
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 16;
				struct text_leaf *nv;

				if (*n >= TEXT_MAX_LEAVES)
					return -EINVAL;
				nv = realloc(*v, nc * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				*v = nv;
				*cap = nc;
			}
			(*v)[*n].dt = &f->type;
			(*v)[*n].offset = off;
			(*n)++;
		}
	}
	return 0;
}

int text_leaves(const struct npy_dtype *dt, struct text_leaf **leaves,
		size_t *n)
{
	size_t cap = 0;
	int ret;

	*leaves = NULL;
	*n = 0;
	ret = add_leaves(dt, 0, leaves, n, &cap);
	if (ret) {
		free(*leaves);
		*leaves = NULL;
		*n = 0;
	}
	return ret;
}

void text_dtype_name(const struct npy_dtype *dt, char *out, size_t size)
{
	static const char *const units[] = { "", "Y", "M", "W", "D", "h", "m",
		"s", "ms", "us", "ns", "ps", "fs", "as" };
	const char *u = (unsigned)dt->unit < sizeof(units) / sizeof(units[0]) ?
			units[dt->unit] : "?";
	size_t bits = dt->itemsize * 8;

	switch (dt->kind) {
	case NPY_BOOL: snprintf(out, size, "bool"); break;
	case NPY_INT: snprintf(out, size, "int%zu", bits); break;
	case NPY_UINT: snprintf(out, size, "uint%zu", bits); break;
	case NPY_FLOAT: snprintf(out, size, "float%zu", bits); break;
	case NPY_COMPLEX: snprintf(out, size, "complex%zu", bits); break;
	case NPY_BYTES: snprintf(out, size, "S%zu", dt->itemsize); break;
	case NPY_STR: snprintf(out, size, "U%zu", dt->itemsize / 4); break;
	case NPY_VOID: snprintf(out, size, "V%zu", dt->itemsize); break;
	case NPY_DATETIME:
	case NPY_TIMEDELTA:
		if (dt->unit == NPY_UNIT_GENERIC)
			snprintf(out, size, "%s",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64");
		else if (dt->unit_mult != 1)
			snprintf(out, size, "%s[%" PRId64 "%s]",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64",
				 dt->unit_mult, u);
		else
			snprintf(out, size, "%s[%s]",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64", u);
		break;
	case NPY_OBJECT: snprintf(out, size, "object"); break;
	default: snprintf(out, size, "record"); break;
	}
}

bool text_scalar_ok(const struct npy_dtype *dt)
{
	size_t s = dt->itemsize;

	switch (dt->kind) {
	case NPY_BOOL: return s == 1;
	case NPY_INT:
	case NPY_UINT: return s == 1 || s == 2 || s == 4 || s == 8;
	case NPY_FLOAT: return s == 2 || s == 4 || s == 8 ||
			((s == 12 || s == 16) && LDBL_MANT_DIG == 64);
	case NPY_COMPLEX: return s == 8 || s == 16 ||
			  ((s == 24 || s == 32) && LDBL_MANT_DIG == 64);
	case NPY_BYTES:
	case NPY_VOID: return true;
	case NPY_STR: return s % 4 == 0;
	case NPY_DATETIME:
	case NPY_TIMEDELTA: return s == 8;
	default: return false;
	}
}

/* ---- output buffer ------------------------------------------------------- */

struct ob {
	char *buf;
	size_t len;
	const struct text_sink *sink;
	int ret;		/* first sink error; later output is dropped */
};

static void ob_flush(struct ob *o)
{
	if (o->len && !o->ret)
		o->ret = o->sink->write(o->sink->ctx, o->buf, o->len);
	o->len = 0;
}

/* Room for n <= OUT_CAP more bytes; returns where to write them. */
static inline char *ob_room(struct ob *o, size_t n)
{
	if (o->len + n > OUT_CAP)
		ob_flush(o);
	return o->buf + o->len;
}

static inline void ob_end(struct ob *o, char *end)
{
	o->len = (size_t)(end - o->buf);
}

static void ob_put(struct ob *o, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		size_t k = OUT_CAP - o->len;

		if (!k) {
			ob_flush(o);
			k = OUT_CAP;
		}
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

/* ---- digits -------------------------------------------------------------- */

static const char dig2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233"
	"34353637383940414243444546474849505152535455565758596061626364656667"
	"6869707172737475767778798081828384858687888990919293949596979899";

static const uint64_t pow10_u64[20] = {
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

	return t - (w < pow10_u64[t]) + 1;
}

/* Write the digits of v so that they end just before end. */
static inline void put_digits(char *end, uint64_t v)
{
	while (v >= 100000000) {
		uint64_t q = v / 100000000;
		uint32_t r = (uint32_t)(v - q * 100000000);
		uint32_t a = r / 10000, b = r % 10000;

		memcpy(end - 2, dig2 + 2 * (b % 100), 2);
		memcpy(end - 4, dig2 + 2 * (b / 100), 2);
		memcpy(end - 6, dig2 + 2 * (a % 100), 2);
		memcpy(end - 8, dig2 + 2 * (a / 100), 2);
		end -= 8;
		v = q;
	}
	uint32_t w = (uint32_t)v;
	while (w >= 100) {
		memcpy(end - 2, dig2 + 2 * (w % 100), 2);
		end -= 2;
		w /= 100;
	}
	if (w >= 10)
		memcpy(end - 2, dig2 + 2 * w, 2);
	else
		end[-1] = (char)('0' + w);
}

static inline char *fmt_u64(char *o, uint64_t v)
{
	int n = u64_len(v);

	put_digits(o + n, v);
	return o + n;
}

static inline char *fmt_i64(char *o, int64_t v)
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

/* Python-repr layout of the decimal 0.d[0]d[1]..d[n-1] * 10^(E+1): d has no
 * leading or trailing zeros; E is the exponent of the first digit. */
static char *fmt_digits(char *o, const char *d, int n, int E)
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
		memcpy(o, dig2 + 2 * a, 2);
		return o + 2;
	}
	return fmt_u64(o, a);
}

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
	return fmt_digits(o, d, n, e + n - 1);
}

/* ---- shortest round-trip binary -> decimal (Schubfach) ------------------- */

struct dec {
	uint64_t m;
	int e;
};

static inline uint64_t round_to_odd(uint64_t ghi, uint64_t glo, uint64_t cp)
{
	unsigned __int128 x = (unsigned __int128)cp * glo;
	unsigned __int128 y = (unsigned __int128)cp * ghi + (uint64_t)(x >> 64);

	return (uint64_t)(y >> 64) | ((uint64_t)y != 0);
}

/* Shortest decimal m * 10^e that rounds (to nearest even) back to the
 * positive finite binary float with exponent field ef and fraction f of mb
 * bits, a normal value being (2^mb + f) * 2^(ef - bias_mb).  Of several
 * shortest candidates the closest is chosen (as Python's repr does). */
static struct dec shortest(uint64_t f, int ef, int mb, int bias_mb)
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

/* A binary float given by its fields, rendered in repr style. */
static inline char *fmt_binary(char *o, bool neg, uint64_t f, int ef, int efmax,
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
	struct dec d = shortest(f, ef, mb, bias_mb);
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

/* x87 extended precision: shortest digits by search with snprintf/strtold
 * in the C locale (slow, but long doubles are rare). */
static char *fmt_ld(char *o, long double v)
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
	return fmt_digits(o, d, n, E);
}

static long double ld_load(const unsigned char *p, size_t size, bool swap)
{
	unsigned char b[16] = { 0 };
	long double v;

	text_copy_swapped(b, p, size, swap);
	memset(b + 10, 0, 6);
	memcpy(&v, b, sizeof(v) < 16 ? sizeof(v) : 16);
	return v;
}

static char *fmt_float(char *o, const struct npy_dtype *dt,
		       const unsigned char *p, size_t size)
{
	switch (size) {
	case 2: return fmt_f16(o, text_ld16(p, dt->swapped));
	case 4: return fmt_f32(o, text_ld32(p, dt->swapped));
	case 8: return fmt_f64(o, text_ld64(p, dt->swapped));
	default: return fmt_ld(o, ld_load(p, size, dt->swapped));
	}
}

/* ---- dates --------------------------------------------------------------- */

/* numpy prints years with "%04lld": -1 is "-001". */
static char *fmt_year(char *o, int64_t y)
{
	uint64_t a = y < 0 ? 0 - (uint64_t)y : (uint64_t)y;
	int n = u64_len(a), w = y < 0 ? 3 : 4;

	if (y < 0)
		*o++ = '-';
	for (; n < w; w--)
		*o++ = '0';
	return fmt_u64(o, a);
}

static inline char *fmt_2(char *o, char sep, unsigned v)
{
	*o++ = sep;
	memcpy(o, dig2 + 2 * v, 2);
	return o + 2;
}

static char *fmt_date(char *o, int64_t days)
{
	int64_t y;
	int m, d;

	text_civil_from_days(days, &y, &m, &d);
	o = fmt_year(o, y);
	o = fmt_2(o, '-', (unsigned)m);
	return fmt_2(o, '-', (unsigned)d);
}

/* NULL if the value cannot be shown (no unit, or value * multiplier
 * overflows int64). */
static char *fmt_datetime(char *o, const struct npy_dtype *dt,
			  const unsigned char *p)
{
	int64_t v = (int64_t)text_ld64(p, dt->swapped), t, days, y;
	int fd;

	if (v == INT64_MIN)
		return put_str(o, "NaT", 3);
	if (dt->unit == NPY_UNIT_GENERIC ||
	    __builtin_mul_overflow(v, dt->unit_mult, &t))
		return NULL;
	switch (dt->unit) {
	case NPY_UNIT_Y:
		if (__builtin_add_overflow(t, 1970, &y))
			return NULL;
		return fmt_year(o, y);
	case NPY_UNIT_M:
		y = text_floor_div(t, 12);
		o = fmt_year(o, y + 1970);
		return fmt_2(o, '-', (unsigned)(text_floor_mod(t, 12) + 1));
	case NPY_UNIT_W:
		if (__builtin_mul_overflow(t, 7, &days))
			return NULL;
		return fmt_date(o, days);
	case NPY_UNIT_D:
		return fmt_date(o, t);
	case NPY_UNIT_h:
		days = text_floor_div(t, 24);
		o = fmt_date(o, days);
		return fmt_2(o, 'T', (unsigned)text_floor_mod(t, 24));
	case NPY_UNIT_m:
		days = text_floor_div(t, 1440);
		t = text_floor_mod(t, 1440);
		o = fmt_date(o, days);
		o = fmt_2(o, 'T', (unsigned)(t / 60));
		return fmt_2(o, ':', (unsigned)(t % 60));
	default:
		break;
	}
	fd = text_unit_frac_digits(dt->unit);
	int64_t secs = text_floor_div(t, (int64_t)pow10_u64[fd]);
	uint64_t frac = (uint64_t)text_floor_mod(t, (int64_t)pow10_u64[fd]);
	days = text_floor_div(secs, 86400);
	secs = text_floor_mod(secs, 86400);
	o = fmt_date(o, days);
	o = fmt_2(o, 'T', (unsigned)(secs / 3600));
	o = fmt_2(o, ':', (unsigned)(secs / 60 % 60));
	o = fmt_2(o, ':', (unsigned)(secs % 60));
	if (fd) {
		*o++ = '.';
		put_digits(o + fd, frac + pow10_u64[fd]);	/* leading '1' lands at o[-1] */
		o[-1] = '.';
		o += fd;
	}
	return o;
}

/* ---- one element --------------------------------------------------------- */

/* Fixed-size kinds (at most ELEM_MAX bytes); NULL on an unshowable value. */
static char *fmt_fixed(char *o, const struct npy_dtype *dt,
		       const unsigned char *p)
{
	bool sw = dt->swapped;

	switch (dt->kind) {
	case NPY_BOOL:
		return *p ? put_str(o, "True", 4) : put_str(o, "False", 5);
	case NPY_INT:
		switch (dt->itemsize) {
		case 1: return fmt_i64(o, (int8_t)*p);
		case 2: return fmt_i64(o, (int16_t)text_ld16(p, sw));
		case 4: return fmt_i64(o, (int32_t)text_ld32(p, sw));
		default: return fmt_i64(o, (int64_t)text_ld64(p, sw));
		}
	case NPY_UINT:
		switch (dt->itemsize) {
		case 1: return fmt_u64(o, *p);
		case 2: return fmt_u64(o, text_ld16(p, sw));
		case 4: return fmt_u64(o, text_ld32(p, sw));
		default: return fmt_u64(o, text_ld64(p, sw));
		}
	case NPY_FLOAT:
		return fmt_float(o, dt, p, dt->itemsize);
	case NPY_COMPLEX: {
		size_t half = dt->itemsize / 2;
		char *im;

		o = fmt_float(o, dt, p, half);
		im = fmt_float(o + 1, dt, p + half, half);
		if (o[1] == '-') {
			memmove(o, o + 1, (size_t)(im - o - 1));
			im--;
		} else {
			*o = '+';
		}
		*im++ = 'j';
		return im;
	}
	case NPY_DATETIME:
		return fmt_datetime(o, dt, p);
	case NPY_TIMEDELTA: {
		int64_t v = (int64_t)text_ld64(p, sw);

		if (v == INT64_MIN)
			return put_str(o, "NaT", 3);
		return fmt_i64(o, v);
	}
	default:
		return NULL;
	}
}

static inline bool is_fixed(enum npy_kind k)
{
	return k != NPY_BYTES && k != NPY_STR && k != NPY_VOID;
}

static const char hexd[] = "0123456789abcdef";

static char *put_x2(char *o, unsigned v)
{
	*o++ = hexd[v >> 4 & 15];
	*o++ = hexd[v & 15];
	return o;
}

static void fmt_ustr(struct ob *ob, const unsigned char *p, size_t units,
		     bool sw)
{
	char *o;

	while (units && !text_ld32(p + 4 * (units - 1), sw))
		units--;
	o = ob_room(ob, 1);
	*o++ = '"';
	ob_end(ob, o);
	for (size_t i = 0; i < units; i++) {
		uint32_t c = text_ld32(p + 4 * i, sw);

		o = ob_room(ob, 10);
		if (c == '\\' || c == '"') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			o = put_str(o, "\\n", 2);
		} else if (c == '\r') {
			o = put_str(o, "\\r", 2);
		} else if (c == '\t') {
			o = put_str(o, "\\t", 2);
		} else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
			o = put_str(o, "\\x", 2);
			o = put_x2(o, c);
		} else if (c < 0x80) {
			*o++ = (char)c;
		} else if (c < 0x800) {
			*o++ = (char)(0xc0 | c >> 6);
			*o++ = (char)(0x80 | (c & 0x3f));
		} else if ((c >= 0xd800 && c <= 0xdfff) || c == 0x2028 ||
			   c == 0x2029) {
			o = put_str(o, "\\u", 2);
			o = put_x2(o, c >> 8);
			o = put_x2(o, c & 0xff);
		} else if (c < 0x10000) {
			*o++ = (char)(0xe0 | c >> 12);
			*o++ = (char)(0x80 | (c >> 6 & 0x3f));
			*o++ = (char)(0x80 | (c & 0x3f));
		} else if (c <= 0x10ffff) {
			*o++ = (char)(0xf0 | c >> 18);
			*o++ = (char)(0x80 | (c >> 12 & 0x3f));
			*o++ = (char)(0x80 | (c >> 6 & 0x3f));
			*o++ = (char)(0x80 | (c & 0x3f));
		} else {
			o = put_str(o, "\\U", 2);
			o = put_x2(o, c >> 24);
			o = put_x2(o, c >> 16 & 0xff);
			o = put_x2(o, c >> 8 & 0xff);
			o = put_x2(o, c & 0xff);
		}
		ob_end(ob, o);
	}
	o = ob_room(ob, 1);
	*o++ = '"';
	ob_end(ob, o);
}

static void fmt_bytes(struct ob *ob, const unsigned char *p, size_t n)
{
	char *o;

	while (n && !p[n - 1])
		n--;
	o = ob_room(ob, 2);
	o = put_str(o, "b\"", 2);
	ob_end(ob, o);
	for (size_t i = 0; i < n; i++) {
		unsigned c = p[i];

		o = ob_room(ob, 4);
		if (c == '\\' || c == '"') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			o = put_str(o, "\\n", 2);
		} else if (c == '\r') {
			o = put_str(o, "\\r", 2);
		} else if (c == '\t') {
			o = put_str(o, "\\t", 2);
		} else if (c < 0x20 || c >= 0x7f) {
			o = put_str(o, "\\x", 2);
			o = put_x2(o, c);
		} else {
			*o++ = (char)c;
		}
		ob_end(ob, o);
	}
	o = ob_room(ob, 1);
	*o++ = '"';
	ob_end(ob, o);
}

static void fmt_void(struct ob *ob, const unsigned char *p, size_t n)
{
	char *o = ob_room(ob, 2);

	o = put_str(o, "0x", 2);
	ob_end(ob, o);
	for (size_t i = 0; i < n; i++) {
		o = ob_room(ob, 2);
		ob_end(ob, put_x2(o, p[i]));
	}
}

/* Any scalar kind; -EINVAL for a value that cannot be shown. */
static int fmt_scalar(struct ob *ob, const struct npy_dtype *dt,
		      const unsigned char *p)
{
	char *o;

	switch (dt->kind) {
	case NPY_BYTES:
		fmt_bytes(ob, p, dt->itemsize);
		return 0;
	case NPY_STR:
		fmt_ustr(ob, p, dt->itemsize / 4, dt->swapped);
		return 0;
	case NPY_VOID:
		fmt_void(ob, p, dt->itemsize);
		return 0;
	default:
		o = fmt_fixed(ob_room(ob, ELEM_MAX), dt, p);
		if (!o)
			return -EINVAL;
		ob_end(ob, o);
		return 0;
	}
}

/* ---- layout -------------------------------------------------------------- */

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
};

static void slice_header(struct fmt *f)
{
	const struct npy_header *h = f->hdr;
	uint64_t idx[NPY_MAXDIMS], s = f->nslice++;
	char line[NPY_MAXDIMS * 24 + 16], *o = line;
	int d;

	for (d = h->ndim - 3; d >= 0; d--) {
		idx[d] = s % h->shape[d];
		s /= h->shape[d];
	}
	if (f->nslice > 1)
		*o++ = '\n';
	o = put_str(o, "# [", 3);
	for (d = 0; d <= h->ndim - 3; d++) {
		o = fmt_u64(o, idx[d]);
		o = put_str(o, ", ", 2);
	}
	o = put_str(o, ":, :]\n", 6);
	ob_put(&f->ob, line, (size_t)(o - line));
}

static int fail_value(struct fmt *f, const struct npy_dtype *dt)
{
	char name[48];

	text_dtype_name(dt, name, sizeof(name));
	npz_err_set(f->err, "a %s value cannot be shown as text", name);
	return -EINVAL;
}

/* Render n consecutive elements (C order) stored at p. */
static int emit(struct fmt *f, const unsigned char *p, size_t n)
{
	const struct npy_dtype *dt = f->dt;
	size_t isz = f->isz;
	char *o;
	int ret;

	/* Fast path: plain little-endian float64, any layout. */
	if (dt->kind == NPY_FLOAT && isz == 8 && !dt->swapped) {
		for (size_t i = 0; i < n; i++, p += 8) {
			if (f->slice && !f->in_slice)
				slice_header(f);
			o = fmt_f64(ob_room(&f->ob, 40), text_ld64(p, false));
			if (++f->col == f->cols) {
				*o++ = '\n';
				f->col = 0;
			} else {
				*o++ = ' ';
			}
			ob_end(&f->ob, o);
			if (f->slice && ++f->in_slice == f->slice)
				f->in_slice = 0;
		}
		return f->ob.ret;
	}

	for (size_t i = 0; i < n; i++, p += isz) {
		if (f->leaves) {
			for (size_t j = 0; j < f->nleaves; j++) {
				const struct text_leaf *l = &f->leaves[j];

				ret = fmt_scalar(&f->ob, l->dt, p + l->offset);
				if (ret)
					return fail_value(f, l->dt);
				o = ob_room(&f->ob, 1);
				*o++ = j + 1 < f->nleaves ? ' ' : '\n';
				ob_end(&f->ob, o);
			}
			if (!f->nleaves) {
				o = ob_room(&f->ob, 1);
				*o++ = '\n';
				ob_end(&f->ob, o);
			}
			continue;
		}
		if (f->slice && !f->in_slice)
			slice_header(f);
		if (is_fixed(dt->kind)) {
			o = fmt_fixed(ob_room(&f->ob, ELEM_MAX + 1), dt, p);
			if (!o)
				return fail_value(f, dt);
		} else {
			fmt_scalar(&f->ob, dt, p);
			o = ob_room(&f->ob, 1);
		}
		if (++f->col == f->cols) {
			*o++ = '\n';
			f->col = 0;
		} else {
			*o++ = ' ';
		}
		ob_end(&f->ob, o);
		if (f->slice && ++f->in_slice == f->slice)
			f->in_slice = 0;
	}
	return f->ob.ret;
}

static int src_read(const struct text_src *src, void *buf, uint64_t len,
		    uint64_t off)
{
	unsigned char *p = buf;

	while (len) {
		size_t n = len > (8u << 20) ? (8u << 20) : (size_t)len;
		int ret = src->read(src->ctx, p, n, off);

		if (ret)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int render_c(struct fmt *f, const struct text_src *src)
{
	uint64_t count = f->hdr->count, i;
	size_t isz = f->isz, blk;
	unsigned char *buf;
	int ret = 0;

	if (!isz) {
		static const unsigned char none[1];

		for (i = 0; i < count && !ret; i++)
			ret = emit(f, none, 1);
		return ret;
	}
	blk = isz >= IN_BLOCK ? 1 : IN_BLOCK / isz;
	if (blk > count)
		blk = (size_t)count;
	buf = malloc(blk * isz);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < count && !ret; i += blk) {
		size_t n = count - i < blk ? (size_t)(count - i) : blk;

		ret = src_read(src, buf, (uint64_t)n * isz, i * isz);
		if (!ret)
			ret = emit(f, buf, n);
	}
	free(buf);
	return ret;
}

/* Fortran order, ndim >= 2: bands of whole first-axis indices are read
 * (runs contiguous in the file) and transposed to C order in memory. */
static int render_f(struct fmt *f, const struct text_src *src)
{
	const struct npy_header *h = f->hdr;
	uint64_t d0 = h->shape[0], rest = h->count / d0, a;
	uint64_t idx[NPY_MAXDIMS], fs[NPY_MAXDIMS];
	size_t isz = f->isz, k, band;
	unsigned char *fb = NULL, *cb = NULL;
	int nd = h->ndim, ret = 0, j;

	if (!isz)
		return render_c(f, src);
	if (rest > text_band_bytes / isz) {
		/* Huge slices: one element at a time, by logical index. */
		unsigned char *e = malloc(isz);
		uint64_t off = 0, i;

		if (!e)
			return -ENOMEM;
		fs[0] = 1;
		for (j = 1; j < nd; j++)
			fs[j] = fs[j - 1] * h->shape[j - 1];
		memset(idx, 0, sizeof(idx));
		for (i = 0; i < h->count && !ret; i++) {
			ret = src->read(src->ctx, e, isz, off * isz);
			if (!ret)
				ret = emit(f, e, 1);
			for (j = nd - 1; j >= 0; j--) {
				off += fs[j];
				if (++idx[j] < h->shape[j])
					break;
				off -= fs[j] * h->shape[j];
				idx[j] = 0;
			}
		}
		free(e);
		return ret;
	}
	band = text_band_bytes / (isz * (size_t)rest);
	if (band > d0)
		band = (size_t)d0;
	fb = malloc(band * rest * isz);
	cb = malloc(band * rest * isz);
	if (!fb || !cb) {
		ret = -ENOMEM;
		goto out_free;
	}
	fs[1] = 1;
	for (j = 2; j < nd; j++)
		fs[j] = fs[j - 1] * h->shape[j - 1];
	for (a = 0; a < d0 && !ret; a += k) {
		k = d0 - a < band ? (size_t)(d0 - a) : band;
		if (k == d0) {
			ret = src_read(src, fb, h->data_len, 0);
		} else {
			for (uint64_t r = 0; r < rest && !ret; r++)
				ret = src->read(src->ctx, fb + r * k * isz, k * isz,
						(a + r * d0) * isz);
		}
		if (ret)
			break;
		/* fb[r][i0] (F index r over axes 1..) -> cb[i0][c] (C order) */
		unsigned char *o = cb;
		for (size_t i0 = 0; i0 < k; i0++) {
			uint64_t r = 0;

			memset(idx, 0, sizeof(idx));
			for (uint64_t c = 0; c < rest; c++) {
				memcpy(o, fb + (r * k + i0) * isz, isz);
				o += isz;
				for (j = nd - 1; j >= 1; j--) {
					r += fs[j];
					if (++idx[j] < h->shape[j])
						break;
					r -= fs[j] * h->shape[j];
					idx[j] = 0;
				}
			}
		}
		ret = emit(f, cb, k * rest);
	}
out_free:
	free(fb);
	free(cb);
	return ret;
}

static int check_scalars(const struct npy_dtype *dt, struct npz_err *err)
{
	char name[48];

	if (dt->kind == NPY_RECORD) {
		for (size_t i = 0; i < dt->nfields; i++) {
			int ret = check_scalars(&dt->fields[i].type, err);

			if (ret)
				return ret;
		}
		return 0;
	}
	if (!text_scalar_ok(dt)) {
		text_dtype_name(dt, name, sizeof(name));
		npz_err_set(err, "unsupported dtype %s", name);
		return -EINVAL;
	}
	return 0;
}

int text_check_dtype(const struct npy_dtype *dt, uint64_t count,
		     struct npz_err *err)
{
	if (npy_dtype_has_object(dt)) {
		npz_err_set(err, "object arrays have no text view");
		return -EINVAL;
	}
	if (dt->itemsize > TEXT_MAX_ITEMSIZE) {
		npz_err_set(err, "elements of %zu bytes have no text view",
			    dt->itemsize);
		return -EINVAL;
	}
	if (!dt->itemsize && count > TEXT_MAX_EMPTY_COUNT) {
		npz_err_set(err, "too many elements of size 0");
		return -EINVAL;
	}
	return check_scalars(dt, err);
}

/* The header dict when hdr has none (built by hand). */
static int dict_line(const struct npy_header *hdr, struct buf *b)
{
	int ret;

	if (hdr->dict)
		return buf_adds(b, hdr->dict);
	ret = buf_adds(b, "{'descr': ");
	if (!ret)
		ret = hdr->descr ? buf_adds(b, hdr->descr) :
				   npy_dtype_format(&hdr->dtype, b);
	if (!ret)
		ret = buf_addf(b, ", 'fortran_order': %s, 'shape': ",
			       hdr->fortran_order ? "True" : "False");
	if (!ret)
		ret = npy_shape_format(hdr->ndim, hdr->shape, b);
	return ret ? ret : buf_adds(b, ", }");
}

static int column_names(const struct npy_dtype *dt, struct buf *prefix,
			struct buf *out, size_t *n)
{
	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *fl = &dt->fields[i];
		size_t plen = prefix->len;
		uint64_t idx[NPY_MAXDIMS] = { 0 };
		int ret = 0;

		/* a comment line: control characters in names as \xNN */
		for (const char *c = fl->name; *c && !ret; c++) {
			unsigned char ch = (unsigned char)*c;

			if (ch < 0x20 || ch == 0x7f)
				ret = buf_addf(prefix, "\\x%02x", ch);
			else
				ret = buf_addch(prefix, (char)ch);
		}

		for (uint64_t e = 0; e < fl->count && !ret; e++) {
			size_t blen = prefix->len;

			if (fl->ndim > 0) {
				ret = buf_addch(prefix, '[');
				for (int d = 0; d < fl->ndim && !ret; d++)
					ret = buf_addf(prefix, d ? ",%llu" : "%llu",
						       (unsigned long long)idx[d]);
				if (!ret)
					ret = buf_addch(prefix, ']');
				for (int d = fl->ndim - 1; d >= 0; d--) {
					if (++idx[d] < fl->shape[d])
						break;
					idx[d] = 0;
				}
			}
			if (ret)
				break;
			if (fl->type.kind == NPY_RECORD) {
				ret = buf_addch(prefix, '.');
				if (!ret)
					ret = column_names(&fl->type, prefix, out, n);
			} else {
				if (*n >= TEXT_MAX_LEAVES)
					ret = -EINVAL;
				else
					ret = buf_adds(out, (*n)++ ? " " : "");
				if (!ret)
					ret = buf_add(out, prefix->data, prefix->len);
			}
			prefix->len = blen;
			prefix->data[blen] = '\0';
		}
		prefix->len = plen;
		prefix->data[plen] = '\0';
		if (ret)
			return ret;
	}
	return 0;
}

static int header_lines(struct fmt *f)
{
	struct buf b = BUF_INIT, prefix = BUF_INIT;
	size_t n = 0;
	int ret;

	ret = buf_adds(&b, "# ");
	if (!ret)
		ret = dict_line(f->hdr, &b);
	/* a newline can only be whitespace between tokens of the dict (npy
	 * refuses it inside strings): keep the dict on one line */
	for (size_t i = 2; i < b.len; i++)
		if (b.data[i] == '\n')
			b.data[i] = ' ';
	if (!ret)
		ret = buf_addch(&b, '\n');
	if (!ret && f->dt->kind == NPY_RECORD) {
		ret = buf_adds(&b, "# columns:");
		size_t at = b.len;
		if (!ret)
			ret = buf_addch(&b, ' ');
		if (!ret)
			ret = column_names(f->dt, &prefix, &b, &n);
		if (!ret && !n) {	/* no columns: no trailing space */
			b.len = at;
			b.data[at] = '\0';
		}
		if (!ret)
			ret = buf_addch(&b, '\n');
	}
	if (!ret)
		ob_put(&f->ob, b.data, b.len);
	buf_release(&b);
	buf_release(&prefix);
	return ret;
}

/* ---- Size bound ---------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The widest text of one element of dt, its separator included. */
static uint64_t elem_bound(const struct npy_dtype *dt)
{
	uint64_t w = 0;

	switch (dt->kind) {
	case NPY_BOOL:
		return 6;			/* "False " */
	case NPY_INT:
	case NPY_UINT:
		return dt->itemsize <= 1 ? 5 : dt->itemsize <= 2 ? 7 :
		       dt->itemsize <= 4 ? 12 : 21;
	case NPY_FLOAT:				/* "-2.2250738585072014e-308" */
		return dt->itemsize <= 2 ? 11 : dt->itemsize <= 4 ? 17 :
		       dt->itemsize <= 8 ? 26 : 48;
	case NPY_COMPLEX:
		return dt->itemsize <= 8 ? 34 : dt->itemsize <= 16 ? 52 : 96;
	case NPY_BYTES:				/* b"\xNN..." */
		return sat_add(4, sat_mul(dt->itemsize, 4));
	case NPY_STR:				/* "\U0010ffff..." */
		return sat_add(3, sat_mul(dt->itemsize / 4, 10));
	case NPY_VOID:
		return sat_add(3, sat_mul(dt->itemsize, 2));
	case NPY_DATETIME:
		return 48;
	case NPY_TIMEDELTA:
		return 21;
	case NPY_RECORD:
		for (size_t i = 0; i < dt->nfields; i++)
			w = sat_add(w, sat_mul(dt->fields[i].count,
					       elem_bound(&dt->fields[i].type)));
		return w ? w : 1;
	default:
		return UINT64_MAX;
	}
}

/* The widest "# columns:" line of a record dtype, names under a prefix of
 * plen bytes. */
static uint64_t columns_bound(const struct npy_dtype *dt, uint64_t plen)
{
	uint64_t w = 0;

	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *fl = &dt->fields[i];
		uint64_t name = sat_add(plen, sat_add(4 * strlen(fl->name),
					(uint64_t)fl->ndim * 21 + 2));

		w = sat_add(w, sat_mul(fl->count, fl->type.kind == NPY_RECORD ?
				       columns_bound(&fl->type, name + 1) :
				       name + 1));
	}
	return w;
}

uint64_t text_size_bound(const struct npy_header *hdr)
{
	uint64_t b, slices = 0, dict;

	dict = hdr->dict ? strlen(hdr->dict) : hdr->header_len + 128;
	b = sat_add(dict, 4);
	if (hdr->dtype.kind == NPY_RECORD)
		b = sat_add(b, sat_add(12, columns_bound(&hdr->dtype, 0)));
	b = sat_add(b, sat_mul(hdr->count, elem_bound(&hdr->dtype)));
	if (hdr->ndim >= 3 && hdr->shape[hdr->ndim - 1] &&
	    hdr->shape[hdr->ndim - 2])
		slices = hdr->count / (hdr->shape[hdr->ndim - 1] *
				       hdr->shape[hdr->ndim - 2]);
	return sat_add(b, sat_mul(slices, (uint64_t)hdr->ndim * 22 + 8));
}

bool text_viewable(const struct npy_header *hdr)
{
	return !text_check_dtype(&hdr->dtype, hdr->count, NULL);
}

int text_format(const struct npy_header *hdr, const struct text_src *src,
		const struct text_sink *sink, struct npz_err *err)
{
	struct fmt f = { .hdr = hdr, .dt = &hdr->dtype, .err = err };
	int ret;

	ret = text_check_dtype(&hdr->dtype, hdr->count, err);
	if (ret)
		return ret;
	f.isz = hdr->dtype.itemsize;
	f.ob.sink = sink;
	f.ob.buf = malloc(OUT_CAP);
	if (!f.ob.buf)
		return -ENOMEM;
	if (hdr->dtype.kind == NPY_RECORD) {
		ret = text_leaves(&hdr->dtype, &f.leaves, &f.nleaves);
		if (ret == -EINVAL)
			npz_err_set(err, "too many columns");
		if (ret)
			goto out_free;
		if (!f.leaves)	/* no columns: still one (empty) line per record */
			f.leaves = malloc(1);
		if (!f.leaves) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	f.cols = hdr->ndim >= 2 ? hdr->shape[hdr->ndim - 1] : 1;
	if (hdr->ndim >= 3)
		f.slice = hdr->shape[hdr->ndim - 2] * hdr->shape[hdr->ndim - 1];
	ret = header_lines(&f);
	if (ret)
		goto out_free;
	if (hdr->count) {
		if (hdr->fortran_order && hdr->ndim >= 2)
			ret = render_f(&f, src);
		else
			ret = render_c(&f, src);
	}
	if (!ret)
		ob_flush(&f.ob);
	if (!ret)
		ret = f.ob.ret;
out_free:
	free(f.leaves);
	free(f.ob.buf);
	return ret;
}

static int buf_sink_write(void *ctx, const void *p, size_t n)
{
	return buf_add(ctx, p, n);
}

int text_format_scalar(const struct npy_dtype *dt, const void *p,
		       struct buf *out)
{
	struct text_sink sink = { buf_sink_write, out };
	struct ob ob = { .sink = &sink };
	int ret;

	if (dt->kind == NPY_OBJECT || dt->kind == NPY_RECORD ||
	    !text_scalar_ok(dt))
		return -EINVAL;
	ob.buf = malloc(OUT_CAP);
	if (!ob.buf)
		return -ENOMEM;
	ret = fmt_scalar(&ob, dt, p);
	if (!ret)
		ob_flush(&ob);
	if (!ret)
		ret = ob.ret;
	free(ob.buf);
	return ret;
}
