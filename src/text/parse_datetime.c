/* parse_datetime.c - ISO 8601 datetimes and integer timedeltas into their
 * dtype's unit.
 *
 * Invariant: a value is stored only when it is a whole number of units
 * and fits int64 (NaT excepted); nothing is rounded.
 */
#include <string.h>

#include "parse_internal.h"

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

/* The fields of an ISO 8601 datetime, as written (absent ones at their
 * defaults); frac holds the first nf fraction digits, extra says that a
 * later one is not zero. */
struct iso {
	int64_t y;
	int mo, d, hh, mi, ss, nf;
	uint64_t frac;
	bool extra;
};

enum iso_ret { ISO_OK, ISO_BAD, ISO_RANGE, ISO_INEXACT };

/* Field k (0 month, 1 day, 2 hour, 3 minute, 4 second) is in range. */
static bool iso_field_ok(const struct iso *f, int k)
{
	switch (k) {
	case 0:
		return f->mo >= 1 && f->mo <= 12;
	case 1:
		return f->d >= 1 && f->d <= text_month_days(f->y, f->mo);
	case 2:
		return f->hh <= 23;
	default:
		return (k == 3 ? f->mi : f->ss) <= 59;
	}
}

/* The fraction digits after "ss.": at least one. */
static int iso_scan_frac(const char **pp, const char *e, struct iso *f)
{
	const char *p = *pp;

	if (p == e || !is_digit(*p))
		return ISO_BAD;
	for (; p < e && is_digit(*p); p++) {
		if (f->nf < 18) {
			f->frac = f->frac * 10 + (uint64_t)(*p - '0');
			f->nf++;
		} else if (*p != '0') {
			f->extra = true;
		}
	}
	*pp = p;
	return ISO_OK;
}

/* [+-]Y[-MM[-DD[Thh[:mm[:ss[.f]]]]]] into f. */
static int iso_scan(const char *p, const char *e, struct iso *f)
{
	static const char sep[] = "--T::";
	int *field[] = { &f->mo, &f->d, &f->hh, &f->mi, &f->ss };
	bool neg = false;

	*f = (struct iso){ .mo = 1, .d = 1 };
	if (p < e && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	if (p == e || !is_digit(*p))
		return ISO_BAD;
	for (; p < e && is_digit(*p); p++) {
		if (f->y > (INT64_MAX - 9) / 10)
			return ISO_RANGE;
		f->y = f->y * 10 + (*p - '0');
	}
	if (neg)
		f->y = -f->y;
	for (int k = 0; k < 5 && p < e && *p == sep[k]; k++) {
		p++;
		if (!take_num(&p, e, 2, field[k]) || !iso_field_ok(f, k))
			return ISO_BAD;
		if (k == 4 && p < e && *p == '.') {
			p++;
			if (iso_scan_frac(&p, e, f))
				return ISO_BAD;
		}
	}
	return p == e ? ISO_OK : ISO_BAD;
}

/* f in a unit of a second or finer (fd fraction digits), from days. */
static int iso_sub_day(struct iso f, int64_t days, int fd, int64_t *v)
{
	int64_t sub = 1;

	if (f.extra || f.nf > fd) {	/* digits beyond the unit: zeros */
		uint64_t p10 = 1;

		if (f.extra)
			return ISO_INEXACT;
		for (int i = fd; i < f.nf; i++)
			p10 *= 10;
		if (f.frac % p10)
			return ISO_INEXACT;
		f.frac /= p10;
		f.nf = fd;
	}
	for (; f.nf < fd; f.nf++)
		f.frac *= 10;
	for (int i = 0; i < fd; i++)
		sub *= 10;
	if (!combine(days, 86400, f.hh * 3600 + f.mi * 60 + f.ss, v) ||
	    !combine(*v, sub, (int64_t)f.frac, v))
		return ISO_RANGE;
	return ISO_OK;
}

/* f in units of a day or finer (W, D, h, m, s ...). */
static int iso_from_days(const struct iso *f, enum npy_unit unit, int64_t *v)
{
	bool below_min = f->ss || f->frac || f->extra;
	int64_t days;

	if (!days_checked(f->y, f->mo, f->d, &days))
		return ISO_RANGE;
	switch (unit) {
	case NPY_UNIT_W:
	case NPY_UNIT_D:
		if (f->hh || f->mi || below_min || (unit == NPY_UNIT_W && days % 7))
			return ISO_INEXACT;
		*v = unit == NPY_UNIT_W ? days / 7 : days;
		return ISO_OK;
	case NPY_UNIT_h:
		if (f->mi || below_min)
			return ISO_INEXACT;
		return combine(days, 24, f->hh, v) ? ISO_OK : ISO_RANGE;
	case NPY_UNIT_m:
		if (below_min)
			return ISO_INEXACT;
		return combine(days, 1440, f->hh * 60 + f->mi, v) ? ISO_OK
								  : ISO_RANGE;
	default:
		return iso_sub_day(*f, days, text_unit_frac_digits(unit), v);
	}
}

/* f as a count of `unit` since 1970, exactly. */
static int iso_units(const struct iso *f, enum npy_unit unit, int64_t *v)
{
	bool below_month = f->d != 1 || f->hh || f->mi || f->ss || f->frac ||
			   f->extra;

	if (unit == NPY_UNIT_Y) {
		if (f->mo != 1 || below_month)
			return ISO_INEXACT;
		return __builtin_sub_overflow(f->y, 1970, v) ? ISO_RANGE : ISO_OK;
	}
	if (unit == NPY_UNIT_M) {
		if (below_month)
			return ISO_INEXACT;
		if (__builtin_sub_overflow(f->y, 1970, v) ||
		    __builtin_mul_overflow(*v, 12, v) ||
		    __builtin_add_overflow(*v, f->mo - 1, v))
			return ISO_RANGE;
		return ISO_OK;
	}
	return iso_from_days(f, unit, v);
}

/* ISO 8601 as numpy writes it, into the dtype's unit (exactly). */
int text_conv_datetime(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, const struct npy_dtype *dt)
{
	struct iso f;
	int64_t v = 0;
	int r;

	if (eq_nocase(s, n, "nat")) {
		text_st64(dst, (uint64_t)INT64_MIN, dt->swapped);
		return 0;
	}
	if (dt->unit == NPY_UNIT_GENERIC)
		return text_fail(t, "datetime64 without a unit holds only NaT");
	r = iso_scan(s, s + n, &f);
	if (r == ISO_OK)
		r = iso_units(&f, dt->unit, &v);
	if (r == ISO_OK && dt->unit_mult != 1) {
		if (v % dt->unit_mult)
			r = ISO_INEXACT;
		v /= dt->unit_mult;
	}
	if (r == ISO_OK && v == INT64_MIN)
		r = ISO_RANGE;
	if (r == ISO_BAD)
		return text_fail_bad(t, s, n, dt);
	if (r == ISO_RANGE)
		return text_fail_tok(t, s, n, dt, "out of range for");
	if (r == ISO_INEXACT)
		return text_fail_tok(t, s, n, dt,
				     "is not a whole number of units of");
	text_st64(dst, (uint64_t)v, dt->swapped);
	return 0;
}

int text_conv_timedelta(struct tp *t, const char *s, size_t n,
			unsigned char *dst, const struct npy_dtype *dt)
{
	bool neg;
	uint64_t mag;
	int r;

	if (eq_nocase(s, n, "nat")) {
		text_st64(dst, (uint64_t)INT64_MIN, dt->swapped);
		return 0;
	}
	r = text_scan_int(s, n, &neg, &mag);
	if (r == NUM_BAD)
		return text_fail_bad(t, s, n, dt);
	if (r == NUM_SPECIAL || mag > (1ull << 63) || (!neg && mag == (1ull << 63)))
		return text_fail_tok(t, s, n, dt, "out of range for");
	text_st64(dst, neg ? 0 - mag : mag, dt->swapped);
	return 0;
}
