/* heat.c - the heatmap's scale: values of real dtypes to 8-bit gray.
 *
 * Invariant: monotonic.  Every value goes through double (long double for
 * f12/f16, whose range double lacks), and pixel = (x*s - lo*s) * k + 1/2
 * truncated, clamped to 0..255, with k = 255 / (hi*s - lo*s) and s = 1, or
 * 1/2 when hi - lo overflows, or 2^600 (2^8000) when k would: each step is
 * a correctly rounded operation with a positive constant, which is
 * monotonic, so x <= y gives pixel(x) <= pixel(y); lo gives 0, hi 255.
 * NaN and -inf give 0, +inf 255; finite values all equal (or none): 0.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define PIECE 1024	/* elements converted at a time */

bool heat_dtype(const struct npy_dtype *dt)
{
	size_t n = dt->itemsize;

	switch (dt->kind) {
	case NPY_BOOL:
		return n == 1;
	case NPY_INT:
	case NPY_UINT:
		return n == 1 || n == 2 || n == 4 || n == 8;
	case NPY_FLOAT:
		return n == 2 || n == 4 || n == 8 || n == 12 || n == 16;
	default:
		return false;
	}
}

static bool is_wide(const struct npy_dtype *dt)
{
	return dt->kind == NPY_FLOAT && dt->itemsize > 8;
}

static double half_value(uint16_t h)
{
	int e = (h >> 10) & 0x1f;
	unsigned m = h & 0x3ff;
	double v;

	if (e == 0)
		v = ldexp(m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(m | 0x400, e - 25);
	return h & 0x8000 ? -v : v;
}

/* An x87 80-bit extended value (the first 10 of itemsize bytes, little
 * endian once swapped).  Encodings the x87 refuses (unnormals, pseudo-NaN
 * and pseudo-infinity) are NaN. */
static long double x87_value(const unsigned char *p, size_t isz, bool swapped)
{
	unsigned char b[16];
	uint64_t m = 0;
	unsigned se;
	int e;
	long double v;

	for (size_t i = 0; i < isz; i++)
		b[i] = swapped ? p[isz - 1 - i] : p[i];
	for (int i = 7; i >= 0; i--)
		m = m << 8 | b[i];
	se = b[8] | (unsigned)b[9] << 8;
	e = se & 0x7fff;
	if (e == 0x7fff)
		v = m == (uint64_t)1 << 63 ? INFINITY : NAN;
	else if (e == 0)
		v = ldexpl((long double)m, 1 - 16383 - 63);
	else if (!(m >> 63))
		v = NAN;
	else
		v = ldexpl((long double)m, e - 16383 - 63);
	return se & 0x8000 ? -v : v;
}

#define LOAD(T, UT, SWAP) do { \
	for (size_t i = 0; i < n; i++) { \
		UT u; \
		T x; \
		memcpy(&u, p + i * sizeof(UT), sizeof(UT)); \
		if (sw) \
			u = SWAP(u); \
		memcpy(&x, &u, sizeof(x)); \
		v[i] = (double)x; \
	} \
} while (0)
#define NOSWAP(u) (u)

/* n elements of a real dtype but f12/f16 to doubles */
static void load(const struct npy_dtype *dt, const unsigned char *p, size_t n,
		 double *v)
{
	bool sw = dt->swapped;
	size_t isz = dt->itemsize;

	if (dt->kind == NPY_BOOL) {
		for (size_t i = 0; i < n; i++)
			v[i] = p[i] != 0;
	} else if (dt->kind == NPY_INT) {
		if (isz == 1)
			LOAD(int8_t, uint8_t, NOSWAP);
		else if (isz == 2)
			LOAD(int16_t, uint16_t, __builtin_bswap16);
		else if (isz == 4)
			LOAD(int32_t, uint32_t, __builtin_bswap32);
		else
			LOAD(int64_t, uint64_t, __builtin_bswap64);
	} else if (dt->kind == NPY_UINT) {
		if (isz == 1)
			LOAD(uint8_t, uint8_t, NOSWAP);
		else if (isz == 2)
			LOAD(uint16_t, uint16_t, __builtin_bswap16);
		else if (isz == 4)
			LOAD(uint32_t, uint32_t, __builtin_bswap32);
		else
			LOAD(uint64_t, uint64_t, __builtin_bswap64);
	} else if (isz == 2) {
		for (size_t i = 0; i < n; i++) {
			uint16_t u;

			memcpy(&u, p + 2 * i, 2);
			v[i] = half_value(sw ? __builtin_bswap16(u) : u);
		}
	} else if (isz == 4) {
		LOAD(float, uint32_t, __builtin_bswap32);
	} else {
		LOAD(double, uint64_t, __builtin_bswap64);
	}
}

static void load_wide(const struct npy_dtype *dt, const unsigned char *p,
		      size_t n, long double *v)
{
	for (size_t i = 0; i < n; i++)
		v[i] = x87_value(p + i * dt->itemsize, dt->itemsize, dt->swapped);
}

struct range {
	long double lo, hi;
	bool any;
};

static void range_add(struct range *r, const double *v, size_t n)
{
	double lo = (double)r->lo, hi = (double)r->hi;
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		double x = v[i];

		if (isfinite(x)) {
			lo = x < lo ? x : lo;
			hi = x > hi ? x : hi;
			any = true;
		}
	}
	if (any) {
		r->lo = lo;
		r->hi = hi;
		r->any = true;
	}
}

static void range_add_wide(struct range *r, const long double *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		long double x = v[i];

		if (isfinite(x)) {
			r->lo = x < r->lo ? x : r->lo;
			r->hi = x > r->hi ? x : r->hi;
			r->any = true;
		}
	}
}

int heat_scan(const struct npy_header *hdr, const struct text_src *src,
	      struct heat *ht)
{
	const struct npy_dtype *dt = &hdr->dtype;
	size_t isz = dt->itemsize, blk = image_block_bytes / isz;
	struct range r = { INFINITY, -INFINITY, false };
	unsigned char *buf;
	long double *v;
	int ret = 0;

	memset(ht, 0, sizeof(*ht));
	ht->wide = is_wide(dt);
	if (!blk)
		blk = 1;
	if (blk > hdr->count)
		blk = (size_t)hdr->count;
	buf = malloc(blk * isz);
	v = malloc(PIECE * sizeof(*v));
	if (!buf || !v) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (uint64_t i = 0; i < hdr->count && !ret; i += blk) {
		size_t n = hdr->count - i < blk ? (size_t)(hdr->count - i) : blk;

		ret = text_src_read(src, buf, (uint64_t)n * isz, i * isz);
		for (size_t j = 0; j < n && !ret; j += PIECE) {
			size_t m = n - j < PIECE ? n - j : PIECE;

			if (ht->wide) {
				load_wide(dt, buf + j * isz, m, v);
				range_add_wide(&r, v, m);
			} else {
				load(dt, buf + j * isz, m, (double *)v);
				range_add(&r, (double *)v, m);
			}
		}
	}
	if (ret)
		goto out_free;
	ht->flat = !r.any || r.lo == r.hi;
	if (ht->flat) {
		ht->s = ht->k = 0;
		ht->s_l = ht->k_l = 0;
	} else if (ht->wide) {
		long double s = !isfinite(r.hi - r.lo) ? 0.5L :
				!isfinite(255 / (r.hi - r.lo)) ? ldexpl(1, 8000) : 1;

		ht->s_l = s;
		ht->lo_s_l = r.lo * s;
		ht->k_l = 255 / (r.hi * s - r.lo * s);
	} else {
		double lo = (double)r.lo, hi = (double)r.hi;
		double s = !isfinite(hi - lo) ? 0.5 :
			   !isfinite(255 / (hi - lo)) ? ldexp(1, 600) : 1;

		ht->s = s;
		ht->lo_s = lo * s;
		ht->k = 255 / (hi * s - lo * s);
	}
out_free:
	free(buf);
	free(v);
	return ret;
}

/* x * s - lo_s, times k: NaN and -inf are 0, +inf 255 (flat: k = 0) */
static inline unsigned char pixel(double x, double s, double lo_s, double k)
{
	double t;

	if (x == INFINITY)
		return 255;
	if (!isfinite(x))
		return 0;
	t = (x * s - lo_s) * k + 0.5;
	return t >= 255 ? 255 : t <= 0 ? 0 : (unsigned char)t;
}

static inline unsigned char pixel_wide(long double x, long double s,
				       long double lo_s, long double k)
{
	long double t;

	if (x == INFINITY)
		return 255;
	if (!isfinite(x))
		return 0;
	t = (x * s - lo_s) * k + 0.5L;
	return t >= 255 ? 255 : t <= 0 ? 0 : (unsigned char)t;
}

void heat_row(const struct heat *ht, const struct npy_dtype *dt,
	      const unsigned char *p, size_t n, unsigned char *px)
{
	union {
		double d[PIECE];
		long double l[PIECE];
	} v;
	size_t isz = dt->itemsize;

	for (size_t j = 0; j < n; j += PIECE) {
		size_t m = n - j < PIECE ? n - j : PIECE;

		if (ht->wide) {
			long double s = ht->s_l, lo_s = ht->lo_s_l, k = ht->k_l;

			load_wide(dt, p + j * isz, m, v.l);
			for (size_t i = 0; i < m; i++)
				px[j + i] = pixel_wide(v.l[i], s, lo_s, k);
		} else {
			double s = ht->s, lo_s = ht->lo_s, k = ht->k;

			load(dt, p + j * isz, m, v.d);
			for (size_t i = 0; i < m; i++)
				px[j + i] = pixel(v.d[i], s, lo_s, k);
		}
	}
}
