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

/* ISO 8601 as numpy writes it, into the dtype's unit (exactly).  Longer
 * than a screen on purpose: the field scan and the per-unit checks share
 * the bad / range / inexact exits, each with its own message. */
int text_conv_datetime(struct tp *t, const char *s, size_t n,
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
		return text_fail(t, "datetime64 without a unit holds only NaT");
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
	return text_fail_bad(t, s, n, dt);
range:
	return text_fail_tok(t, s, n, dt, "out of range for");
inexact:
	return text_fail_tok(t, s, n, dt, "is not a whole number of units of");
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
