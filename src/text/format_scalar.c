/* format_scalar.c - render one element of a scalar dtype as in a text view,
 * and the output buffer that collects it.
 *
 * Invariant: what these functions write reads back through the converters
 * of parse_scalar.c to the same bytes (the exceptions are listed in
 * format.c).  Output reaches the sink in chunks of at most OUT_CAP bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format_internal.h"

void text_ob_flush(struct ob *o)
{
	if (o->len && !o->ret)
		o->ret = o->sink->write(o->sink->ctx, o->buf, o->len);
	o->len = 0;
}

void text_ob_put(struct ob *o, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		size_t k = OUT_CAP - o->len;

		if (!k) {
			text_ob_flush(o);
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
	default: return text_fmt_ld(o, ld_load(p, size, dt->swapped));
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
	memcpy(o, text_dig2 + 2 * v, 2);
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
	int64_t secs = text_floor_div(t, (int64_t)text_pow10_u64[fd]);
	uint64_t frac = (uint64_t)text_floor_mod(t, (int64_t)text_pow10_u64[fd]);
	days = text_floor_div(secs, 86400);
	secs = text_floor_mod(secs, 86400);
	o = fmt_date(o, days);
	o = fmt_2(o, 'T', (unsigned)(secs / 3600));
	o = fmt_2(o, ':', (unsigned)(secs / 60 % 60));
	o = fmt_2(o, ':', (unsigned)(secs % 60));
	if (fd) {
		*o++ = '.';
		put_digits(o + fd, frac + text_pow10_u64[fd]);	/* leading '1' lands at o[-1] */
		o[-1] = '.';
		o += fd;
	}
	return o;
}

/* ---- one element --------------------------------------------------------- */

/* Fixed-size kinds (at most ELEM_MAX bytes); NULL on an unshowable value. */
char *text_fmt_fixed(char *o, const struct npy_dtype *dt,
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
		} else if ((c >= 0xd800 && c <= 0xdfff) || c == 0x2028 ||
			   c == 0x2029) {
			o = put_str(o, "\\u", 2);
			o = put_x2(o, c >> 8);
			o = put_x2(o, c & 0xff);
		} else if (c <= 0x10ffff) {
			o = put_utf8(o, c);
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
int text_fmt_scalar(struct ob *ob, const struct npy_dtype *dt,
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
		o = text_fmt_fixed(ob_room(ob, ELEM_MAX), dt, p);
		if (!o)
			return -EINVAL;
		ob_end(ob, o);
		return 0;
	}
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
	ret = text_fmt_scalar(&ob, dt, p);
	if (!ret)
		text_ob_flush(&ob);
	if (!ret)
		ret = ob.ret;
	free(ob.buf);
	return ret;
}
