/* test_png.c - unit tests of the PNG view (src/image/): which arrays have
 * one, round trips of every exact kind and layout (C and Fortran order,
 * both byte orders, 1x1, wide, tall, several bands), rendered PNGs decoded
 * by libpng's own reader as the oracle, PNGs written by libpng in every
 * lossless equivalent (palette, low-bit gray, tRNS, alpha, interlaced)
 * parsed, heatmap values (monotonic, NaN/inf, constant, every dtype), every
 * parse error, and callback errors passed through. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "pngview.h"
#include "test.h"
#include "test_io.h"

/* Test hooks of src/image/ (image_internal.h, defined in rows.c). */
extern size_t image_band_bytes;
extern size_t image_block_bytes;

/* ---- harness ------------------------------------------------------------- */

struct outbuf {
	int begins, fail_begin, fail_write;
	uint64_t len;
	unsigned char *data, *seen;
	int twice, outside;
};

static int out_begin(void *ctx, const struct npy_header *h)
{
	struct outbuf *o = ctx;

	o->begins++;
	if (o->fail_begin)
		return -EDQUOT;
	o->len = h->data_len;
	o->data = calloc(1, h->data_len + 1);
	o->seen = calloc(1, h->data_len + 1);
	return o->data && o->seen ? 0 : -ENOMEM;
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct outbuf *o = ctx;

	if (o->fail_write)
		return -EROFS;
	if (!o->data || off > o->len || len > o->len - off) {
		o->outside++;
		return -EFAULT;
	}
	memcpy(o->data + off, buf, len);
	for (size_t i = 0; i < len; i++)
		o->twice += o->seen[off + i]++ != 0;
	return 0;
}

static bool out_complete(const struct outbuf *o)
{
	if (o->begins != 1 || o->twice || o->outside)
		return false;
	for (uint64_t i = 0; i < o->len; i++)
		if (!o->seen[i])
			return false;
	return true;
}

static void out_release(struct outbuf *o)
{
	free(o->data);
	free(o->seen);
	memset(o, 0, sizeof(*o));
}

static int header_of(const char *dict, struct npy_header *h)
{
	struct npz_err err = { { 0 } };
	int ret = npy_header_parse_dict(dict, strlen(dict), h, &err);

	if (ret)
		printf("bad test header %s: %s\n", dict, err.msg);
	return ret;
}

static void make_header(struct npy_header *h, const char *descr, bool fortran,
			const char *shape)
{
	char dict[256];

	snprintf(dict, sizeof(dict),
		 "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
		 fortran ? "True" : "False", shape);
	if (header_of(dict, h))
		abort();
}

/* Render; the PNG (buf), or ret set. */
static int render(const struct npy_header *h, const void *data,
		  struct buf *png, struct npz_err *err)
{
	struct test_mem m = { data, h->data_len, 0, 0 };
	struct text_src src = { test_mem_read, &m };
	struct test_sinkbuf s = { BUF_INIT, 0, 0, 0 };
	struct text_sink sink = { test_sink_write, &s };
	int ret = png_format(h, &src, &sink, err);

	if (!ret && s.max_chunk > 65536)
		ret = -E2BIG;
	if (!ret && s.b.len > png_size_bound(h))
		ret = -EOVERFLOW;
	*png = s.b;
	return ret;
}

static int parse(const struct buf *png, const struct npy_header *base,
		 struct outbuf *o, struct npz_err *err)
{
	struct text_out out = { out_begin, out_write_at, o };
	struct npy_header h;
	int ret;

	memset(o, 0, sizeof(*o));
	ret = png_parse(png->data, png->len, base, &h, &out, err);
	if (!ret) {
		if (h.data_len != base->data_len ||
		    h.fortran_order != base->fortran_order ||
		    h.dtype.order != base->dtype.order)
			ret = -EPROTO;
		npy_header_release(&h);
	}
	return ret;
}

/* ---- an independent decoder: libpng's low-level reader ------------------- */

struct rd {
	const unsigned char *p;
	size_t len, pos;
};

static void rd_read(png_structp png, png_bytep b, size_t n)
{
	struct rd *r = png_get_io_ptr(png);

	if (n > r->len - r->pos)
		png_error(png, "eof");
	memcpy(b, r->p + r->pos, n);
	r->pos += n;
}

static void quiet(png_structp png, png_const_charp m)
{
	(void)png;
	(void)m;
}

/* Decode to raw rows exactly as stored (16-bit big-endian): malloc'ed
 * w*h*channels*bytes, or NULL. */
static unsigned char *oracle_decode(const struct buf *b, uint32_t *w,
				    uint32_t *h, int *depth, int *ctype)
{
	struct rd r = { (const unsigned char *)b->data, b->len, 0 };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL,
						 NULL, quiet);
	png_infop info = png_create_info_struct(png);
	unsigned char *volatile img = NULL;

	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		free(img);
		return NULL;
	}
	png_set_read_fn(png, &r, rd_read);
	png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
	png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
	*w = png_get_image_width(png, info);
	*h = png_get_image_height(png, info);
	*depth = png_get_bit_depth(png, info);
	*ctype = png_get_color_type(png, info);
	size_t rb = png_get_rowbytes(png, info);
	png_bytepp rows = png_get_rows(png, info);
	img = malloc(rb * *h + 1);
	for (uint32_t y = 0; y < *h; y++)
		memcpy(img + y * rb, rows[y], rb);
	png_destroy_read_struct(&png, &info, NULL);
	return img;
}

/* ---- an independent encoder: libpng's writer ----------------------------- */

static void wr_write(png_structp png, png_bytep d, size_t n)
{
	buf_add(png_get_io_ptr(png), d, n);
}

static void wr_flush(png_structp png)
{
	(void)png;
}

struct pngspec {
	uint32_t w, h;
	int depth, ctype, interlace;
	const unsigned char *rows;	/* packed rows as PNG stores them */
	const png_color *plte;
	int nplte;
	const unsigned char *trns;	/* palette alpha */
	int ntrns;
	const png_color_16 *trns_color;	/* gray/RGB key */
};

static struct buf make_png(const struct pngspec *s)
{
	struct buf out = BUF_INIT;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
						  NULL, quiet);
	png_infop info = png_create_info_struct(png);

	if (setjmp(png_jmpbuf(png))) {
		printf("make_png failed\n");
		abort();
	}
	png_set_write_fn(png, &out, wr_write, wr_flush);
	png_set_IHDR(png, info, s->w, s->h, s->depth, s->ctype, s->interlace,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (s->plte)
		png_set_PLTE(png, info, s->plte, s->nplte);
	if (s->trns || s->trns_color)
		png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
	png_write_info(png, info);
	size_t rb = png_get_rowbytes(png, info);
	int passes = png_set_interlace_handling(png);
	for (int p = 0; p < passes; p++)
		for (uint32_t y = 0; y < s->h; y++)
			png_write_row(png, s->rows + y * rb);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return out;
}

/* ---- which arrays have a view -------------------------------------------- */

static enum png_view kind_of(const char *descr, bool f, const char *shape)
{
	struct npy_header h;
	enum png_view k;

	make_header(&h, descr, f, shape);
	k = png_view_kind(&h);
	if (k == PNG_VIEW_NONE && png_size_bound(&h) != UINT64_MAX)
		k = (enum png_view)99;
	npy_header_release(&h);
	return k;
}

static void test_kinds(void)
{
	test_cond("u1 (H,W) exact", kind_of("|u1", false, "(3, 4)") == PNG_VIEW_EXACT);
	test_cond("u1 (H,W) F exact", kind_of("|u1", true, "(3, 4)") == PNG_VIEW_EXACT);
	test_cond("<u2 exact", kind_of("<u2", false, "(3, 4)") == PNG_VIEW_EXACT);
	test_cond(">u2 exact", kind_of(">u2", false, "(3, 4)") == PNG_VIEW_EXACT);
	test_cond("RGB exact", kind_of("|u1", false, "(3, 4, 3)") == PNG_VIEW_EXACT);
	test_cond("RGBA exact", kind_of("|u1", true, "(3, 4, 4)") == PNG_VIEW_EXACT);
	test_cond("(H,W,2) none", kind_of("|u1", false, "(3, 4, 2)") == PNG_VIEW_NONE);
	test_cond("(H,W,1) none", kind_of("|u1", false, "(3, 4, 1)") == PNG_VIEW_NONE);
	test_cond("u2 RGB none", kind_of("<u2", false, "(3, 4, 3)") == PNG_VIEW_NONE);
	test_cond("f4 RGB none", kind_of("<f4", false, "(3, 4, 3)") == PNG_VIEW_NONE);
	static const char *const heat[] = {
		"|b1", "|i1", "<i2", ">i4", "<i8", "<u4", ">u8", "<f2", "<f4",
		">f8", "<f16", ">f16",
	};
	for (size_t i = 0; i < sizeof(heat) / sizeof(heat[0]); i++)
		test_cond(heat[i], kind_of(heat[i], false, "(2, 2)") == PNG_VIEW_HEATMAP);
	static const char *const none[] = {
		"<c8", "<c16", "<U3", "|S4", "|V8", "<M8[s]", "<m8[ns]", "|O",
	};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		test_cond(none[i], kind_of(none[i], false, "(2, 2)") == PNG_VIEW_NONE);
	{
		struct npy_header h;

		header_of("{'descr': [('a', '<f8')], 'fortran_order': False, "
			  "'shape': (2, 2), }", &h);
		test_cond("record none", png_view_kind(&h) == PNG_VIEW_NONE);
		npy_header_release(&h);
	}
	test_cond("1-d none", kind_of("|u1", false, "(5,)") == PNG_VIEW_NONE);
	test_cond("0-d none", kind_of("<f8", false, "()") == PNG_VIEW_NONE);
	test_cond("4-d none", kind_of("|u1", false, "(2, 2, 3, 1)") == PNG_VIEW_NONE);
	test_cond("3-d f8 none", kind_of("<f8", false, "(2, 2, 2)") == PNG_VIEW_NONE);
	test_cond("(0,5) none", kind_of("|u1", false, "(0, 5)") == PNG_VIEW_NONE);
	test_cond("(5,0) none", kind_of("<f8", false, "(5, 0)") == PNG_VIEW_NONE);
	test_cond("(1,2^31) none", kind_of("|u1", false, "(1, 2147483648)") == PNG_VIEW_NONE);
	test_cond("(2^31,1) none", kind_of("|u1", false, "(2147483648, 1)") == PNG_VIEW_NONE);
	test_cond("(2^31-1,1) exact", kind_of("|u1", false, "(2147483647, 1)") == PNG_VIEW_EXACT);
	test_cond("64 MiB row exact", kind_of("|u1", false, "(2, 67108864)") == PNG_VIEW_EXACT);
	test_cond("64 MiB+ row none", kind_of("|u1", false, "(2, 67108865)") == PNG_VIEW_NONE);
	test_cond("f8 input row over", kind_of("<f8", false, "(2, 8388609)") == PNG_VIEW_NONE);
	test_cond("RGBA row over", kind_of("|u1", false, "(2, 16777217, 4)") == PNG_VIEW_NONE);
}

/* ---- exact round trips --------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Logical element (i, j, c) of an exact view's test array: random, kept
 * in a C-order table; data is laid out in the header's order. */
struct arr {
	struct npy_header h;
	uint32_t H, W, C;
	size_t bps;
	unsigned char *logical;	/* C order, PNG's sample bytes (BE 16-bit) */
	unsigned char *data;	/* the array's bytes */
};

static void arr_make(struct arr *a, const char *descr, bool f, uint32_t H,
		     uint32_t W, uint32_t C)
{
	char shape[64];
	size_t n;

	if (C > 1)
		snprintf(shape, sizeof(shape), "(%u, %u, %u)", H, W, C);
	else
		snprintf(shape, sizeof(shape), "(%u, %u)", H, W);
	make_header(&a->h, descr, f, shape);
	a->H = H;
	a->W = W;
	a->C = C;
	a->bps = a->h.dtype.itemsize;
	n = (size_t)H * W * C;
	a->logical = malloc(n * a->bps + 1);
	a->data = malloc(n * a->bps + 1);
	for (size_t i = 0; i < n * a->bps; i++)
		a->logical[i] = (unsigned char)rnd();
	for (uint32_t i = 0; i < H; i++)
		for (uint32_t j = 0; j < W; j++)
			for (uint32_t c = 0; c < C; c++) {
				size_t l = ((size_t)i * W + j) * C + c;
				size_t d = f ? i + (size_t)H * (j + (size_t)W * c) : l;
				unsigned char *dp = a->data + d * a->bps;
				const unsigned char *lp = a->logical + l * a->bps;

				if (a->bps == 2 && a->h.dtype.order == '<') {
					dp[0] = lp[1];
					dp[1] = lp[0];
				} else {
					memcpy(dp, lp, a->bps);
				}
			}
}

static void arr_free(struct arr *a)
{
	npy_header_release(&a->h);
	free(a->logical);
	free(a->data);
}

static void round_trip(const char *descr, bool f, uint32_t H, uint32_t W,
		       uint32_t C)
{
	struct arr a;
	struct buf png;
	struct npz_err err = { { 0 } };
	struct outbuf o;
	char what[160];
	uint32_t w = 0, h = 0;
	int depth = 0, ctype = -1, ret;
	static const int ctypes[] = { 0, PNG_COLOR_TYPE_GRAY, 0,
				      PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA };

	arr_make(&a, descr, f, H, W, C);
	snprintf(what, sizeof(what), "%s %s (%u, %u, %u)", descr,
		 f ? "F" : "C", H, W, C);
	ret = render(&a.h, a.data, &png, &err);
	test_cond(what, ret == 0);
	if (ret) {
		printf("  render: %d %s\n", ret, err.msg);
		goto out;
	}
	/* libpng's reader sees the logical image */
	unsigned char *img = oracle_decode(&png, &w, &h, &depth, &ctype);
	test_cond(what, img && w == W && h == H && depth == (int)(8 * a.bps) &&
		  ctype == ctypes[C] &&
		  !memcmp(img, a.logical, (size_t)H * W * C * a.bps));
	free(img);
	/* and it parses back to the same bytes */
	ret = parse(&png, &a.h, &o, &err);
	test_cond(what, ret == 0 && out_complete(&o) &&
		  !memcmp(o.data, a.data, a.h.data_len));
	if (ret)
		printf("  parse: %d %s\n", ret, err.msg);
	out_release(&o);
out:
	buf_release(&png);
	arr_free(&a);
}

static void test_round_trips(void)
{
	static const char *const descrs[] = { "|u1", "<u2", ">u2" };

	for (int f = 0; f < 2; f++) {
		for (size_t d = 0; d < 3; d++) {
			round_trip(descrs[d], f, 5, 7, 1);
			round_trip(descrs[d], f, 1, 1, 1);
			round_trip(descrs[d], f, 1, 3000, 1);
			round_trip(descrs[d], f, 3000, 1, 1);
			round_trip(descrs[d], f, 64, 48, 1);
		}
		for (uint32_t c = 3; c <= 4; c++) {
			round_trip("|u1", f, 5, 7, c);
			round_trip("|u1", f, 1, 1, c);
			round_trip("|u1", f, 1, 777, c);
			round_trip("|u1", f, 777, 1, c);
			round_trip("|u1", f, 33, 65, c);
		}
	}
	/* many blocks and bands: a few rows (or one) at a time */
	image_band_bytes = 100;
	image_block_bytes = 100;
	round_trip("|u1", true, 37, 11, 1);
	round_trip("<u2", true, 37, 11, 1);
	round_trip("|u1", true, 37, 11, 3);
	round_trip("|u1", true, 9, 200, 4);
	round_trip("|u1", false, 37, 11, 4);
	round_trip(">u2", false, 37, 60, 1);
	image_band_bytes = 8u << 20;
	image_block_bytes = 1u << 20;
}

/* ---- heatmaps ------------------------------------------------------------ */

/* Render hdr's heatmap; the pixels (H*W, malloc'ed) or NULL. */
static unsigned char *heat_pixels(const struct npy_header *h, const void *data)
{
	struct buf png;
	struct npz_err err = { { 0 } };
	uint32_t w, hh;
	int depth, ctype;
	unsigned char *img = NULL;
	int ret = render(h, data, &png, &err);

	if (ret) {
		printf("  heatmap render: %d %s\n", ret, err.msg);
	} else {
		img = oracle_decode(&png, &w, &hh, &depth, &ctype);
		if (img && (w != h->shape[1] || hh != h->shape[0] ||
			    depth != 8 || ctype != PNG_COLOR_TYPE_GRAY)) {
			free(img);
			img = NULL;
		}
	}
	buf_release(&png);
	return img;
}

static unsigned char *heat_f8(const double *v, uint32_t H, uint32_t W)
{
	struct npy_header h;
	char shape[48];
	unsigned char *px;

	snprintf(shape, sizeof(shape), "(%u, %u)", H, W);
	make_header(&h, "<f8", false, shape);
	px = heat_pixels(&h, v);
	npy_header_release(&h);
	return px;
}

static void test_heat_rules(void)
{
	double v[] = { -INFINITY, 0, 1, 2, NAN, INFINITY, 0.5, 2, -NAN };
	unsigned char want[] = { 0, 0, 128, 255, 0, 255, 64, 255, 0 };
	unsigned char *px = heat_f8(v, 3, 3);

	test_cond("heat: nan/inf/scale", px && !memcmp(px, want, 9));
	free(px);

	double flat[] = { 7, 7, NAN, INFINITY, -INFINITY, 7 };
	unsigned char wflat[] = { 0, 0, 0, 255, 0, 0 };
	px = heat_f8(flat, 2, 3);
	test_cond("heat: constant", px && !memcmp(px, wflat, 6));
	free(px);

	double none[] = { NAN, NAN, INFINITY, -INFINITY };
	unsigned char wnone[] = { 0, 0, 255, 0 };
	px = heat_f8(none, 1, 4);
	test_cond("heat: no finite values", px && !memcmp(px, wnone, 4));
	free(px);

	double huge[] = { -DBL_MAX, 0, DBL_MAX, -DBL_MAX / 2 };
	unsigned char whuge[] = { 0, 128, 255, 64 };
	px = heat_f8(huge, 2, 2);
	test_cond("heat: range over DBL_MAX", px && !memcmp(px, whuge, 4));
	free(px);

	double tiny[] = { 0, 4.9406564584124654e-324, 2 * 4.9406564584124654e-324,
			  4 * 4.9406564584124654e-324 };
	unsigned char wtiny[] = { 0, 64, 128, 255 };
	px = heat_f8(tiny, 1, 4);
	test_cond("heat: subnormal range", px && !memcmp(px, wtiny, 4));
	free(px);

	/* monotonic over random values, with ties, NaN and inf */
	enum { N = 4096 };
	double *r = malloc(N * sizeof(double));
	for (int i = 0; i < N; i++) {
		uint64_t x = rnd();

		r[i] = x % 97 == 0 ? NAN : x % 89 == 0 ? INFINITY :
		       x % 83 == 0 ? -INFINITY :
		       ldexp((double)(int64_t)(x >> 11) / 9007199254740992.0,
			     (int)(x % 40) - 20);
		if (i % 7 == 0 && i)
			r[i] = r[i - 1];
	}
	px = heat_f8(r, 64, 64);
	int bad = !px, lo_seen = 0, hi_seen = 0;
	double lo = INFINITY, hi = -INFINITY;
	for (int i = 0; i < N; i++)
		if (isfinite(r[i])) {
			lo = fmin(lo, r[i]);
			hi = fmax(hi, r[i]);
		}
	for (int i = 0; px && i < N; i++) {
		if (isnan(r[i]) && px[i] != 0)
			bad++;
		if (r[i] == lo)
			lo_seen += px[i] == 0;
		if (r[i] == hi)
			hi_seen += px[i] == 255;
		for (int j = 0; j < N; j += 13)
			if (!isnan(r[i]) && !isnan(r[j]) && r[i] < r[j] &&
			    px[i] > px[j])
				bad++;
		/* and close to the linear scale */
		if (isfinite(r[i]) &&
		    fabs(px[i] - (r[i] - lo) / (hi - lo) * 255) > 0.5 + 1e-9)
			bad++;
	}
	test_cond("heat: monotonic and linear", !bad && lo_seen && hi_seen);
	free(px);
	free(r);
}

/* one dtype: values given as doubles, stored in that dtype */
static void heat_dtype_case(const char *descr, bool f, const void *data,
			    uint32_t H, uint32_t W, const unsigned char *want)
{
	struct npy_header h;
	char shape[48], what[64];
	unsigned char *px;

	snprintf(shape, sizeof(shape), "(%u, %u)", H, W);
	snprintf(what, sizeof(what), "heat %s %s", descr, f ? "F" : "C");
	make_header(&h, descr, f, shape);
	px = heat_pixels(&h, data);
	test_cond(what, px && !memcmp(px, want, (size_t)H * W));
	if (px && memcmp(px, want, (size_t)H * W)) {
		for (size_t i = 0; i < (size_t)H * W; i++)
			printf(" %u/%u", px[i], want[i]);
		printf("\n");
	}
	free(px);
	npy_header_release(&h);
}

static void test_heat_dtypes(void)
{
	unsigned char b1[] = { 0, 1, 1, 0 }, wb1[] = { 0, 255, 255, 0 };
	heat_dtype_case("|b1", false, b1, 2, 2, wb1);

	int8_t i1[] = { -128, 127, 0, -1 };
	unsigned char wi1[] = { 0, 255, 128, 127 };
	heat_dtype_case("|i1", false, i1, 2, 2, wi1);

	int16_t i2be[] = { (int16_t)0x0080 /* -32768 */, (int16_t)0xff7f /* 32767 */ };
	unsigned char wi2[] = { 0, 255 };
	heat_dtype_case(">i2", false, i2be, 1, 2, wi2);

	uint64_t u8[] = { 0, UINT64_MAX, UINT64_MAX / 2, 1 };
	unsigned char wu8[] = { 0, 255, 128, 0 };
	heat_dtype_case("<u8", false, u8, 2, 2, wu8);

	int64_t i8[] = { INT64_MIN, INT64_MAX, 0, -1 };
	unsigned char wi8[] = { 0, 255, 128, 128 };
	heat_dtype_case("<i8", false, i8, 2, 2, wi8);

	uint32_t u4[] = { 10, 20, 30, 40, 50, 60 };
	/* F order (2, 3): logical [[10, 30, 50], [20, 40, 60]] */
	unsigned char wu4f[] = { 0, 102, 204, 51, 153, 255 };
	heat_dtype_case("<u4", true, u4, 2, 3, wu4f);

	/* f2: 0, 1, 2, -inf, nan, 0.5 */
	uint16_t f2[] = { 0x0000, 0x3c00, 0x4000, 0xfc00, 0x7e00, 0x3800 };
	unsigned char wf2[] = { 0, 128, 255, 0, 0, 64 };
	heat_dtype_case("<f2", false, f2, 2, 3, wf2);

	float f4be[4];
	float f4[] = { 1.0f, -1.0f, 3.0f, NAN };
	for (int i = 0; i < 4; i++) {
		uint32_t u;
		memcpy(&u, &f4[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&f4be[i], &u, 4);
	}
	unsigned char wf4[] = { 128, 0, 255, 0 };
	heat_dtype_case(">f4", false, f4be, 2, 2, wf4);

	/* x87 long double: 2^13000 is beyond double, and still scaled */
	unsigned char f16[4][16], f16be[4][16];
	long double ld[4] = { -ldexpl(1, 13000), 0, ldexpl(1, 13000),
			      ldexpl(1, 12999) };
	memset(f16, 0, sizeof(f16));
	for (int i = 0; i < 4; i++) {
		memcpy(f16[i], &ld[i], 10);
		for (int j = 0; j < 16; j++)
			f16be[i][j] = f16[i][15 - j];
	}
	unsigned char wld[] = { 0, 128, 255, 191 };
	heat_dtype_case("<f16", false, f16, 2, 2, wld);
	heat_dtype_case(">f16", false, f16be, 2, 2, wld);

	/* F-order heatmap across bands */
	enum { H = 29, W = 13 };
	double fd[H * W];
	unsigned char wfd[H * W];
	for (int i = 0; i < H; i++)
		for (int j = 0; j < W; j++) {
			int v = i * W + j;
			fd[i + H * j] = v;
			wfd[v] = (unsigned char)((double)v / (H * W - 1) * 255 + 0.5);
		}
	image_band_bytes = 200;
	image_block_bytes = 200;
	heat_dtype_case("<f8", true, fd, H, W, wfd);
	image_band_bytes = 8u << 20;
	image_block_bytes = 1u << 20;
	heat_dtype_case("<f8", true, fd, H, W, wfd);
}

/* ---- lossless equivalents editors write ---------------------------------- */

static void expect_parse(const char *what, const struct buf *png,
			 const char *descr, const char *shape,
			 const unsigned char *want)
{
	struct npy_header h;
	struct outbuf o;
	struct npz_err err = { { 0 } };
	int ret;

	make_header(&h, descr, false, shape);
	ret = parse(png, &h, &o, &err);
	test_cond(what, ret == 0 && out_complete(&o) &&
		  !memcmp(o.data, want, h.data_len));
	if (ret)
		printf("  %s: %d %s\n", what, ret, err.msg);
	out_release(&o);
	npy_header_release(&h);
}

static void expect_fail(const char *what, const struct buf *png,
			const char *descr, const char *shape, const char *msg)
{
	struct npy_header h;
	struct outbuf o;
	struct npz_err err = { { 0 } };
	int ret;

	make_header(&h, descr, false, shape);
	ret = parse(png, &h, &o, &err);
	test_cond(what, ret == -EINVAL && strstr(err.msg, msg));
	if (ret != -EINVAL || !strstr(err.msg, msg))
		printf("  %s: %d '%s', want '%s'\n", what, ret, err.msg, msg);
	out_release(&o);
	npy_header_release(&h);
}

static void test_equivalents(void)
{
	/* palette (2 bits) for RGB and for RGBA */
	png_color plte[3] = { { 10, 20, 30 }, { 255, 0, 0 }, { 7, 7, 7 } };
	unsigned char idx[2] = { 0x19, 0x80 };	/* 0 1 2 1 | 2 0 0 0 */
	struct pngspec s = { 4, 2, 2, PNG_COLOR_TYPE_PALETTE, 0, idx, plte, 3,
			     NULL, 0, NULL };
	struct buf png = make_png(&s);
	unsigned char rgb[] = { 10, 20, 30, 255, 0, 0, 7, 7, 7, 255, 0, 0,
				7, 7, 7, 10, 20, 30, 10, 20, 30, 10, 20, 30 };
	expect_parse("palette -> RGB", &png, "|u1", "(2, 4, 3)", rgb);
	unsigned char rgba[32];
	for (int i = 0; i < 8; i++) {
		memcpy(rgba + 4 * i, rgb + 3 * i, 3);
		rgba[4 * i + 3] = 255;
	}
	expect_parse("palette -> RGBA", &png, "|u1", "(2, 4, 4)", rgba);
	expect_fail("palette colours -> gray", &png, "|u1", "(2, 4)",
		    "pixel (row 0, column 0) is not gray (10, 20, 30)");
	buf_release(&png);

	/* palette with tRNS: RGBA yes, RGB no */
	unsigned char ptrns[3] = { 255, 128, 255 };
	s.trns = ptrns;
	s.ntrns = 3;
	png = make_png(&s);
	rgba[4 * 1 + 3] = 128;
	rgba[4 * 3 + 3] = 128;
	expect_parse("palette+tRNS -> RGBA", &png, "|u1", "(2, 4, 4)", rgba);
	expect_fail("palette+tRNS -> RGB", &png, "|u1", "(2, 4, 3)",
		    "pixel (row 0, column 1) has alpha 128");
	buf_release(&png);

	/* gray palette for a gray array */
	png_color gplte[2] = { { 0, 0, 0 }, { 200, 200, 200 } };
	unsigned char gidx[2] = { 0x60, 0x90 };	/* 1 bit: 0110 0000, 1001 0000 */
	struct pngspec gs = { 4, 2, 1, PNG_COLOR_TYPE_PALETTE, 0, gidx, gplte, 2,
			      NULL, 0, NULL };
	png = make_png(&gs);
	unsigned char gray[] = { 0, 200, 200, 0, 200, 0, 0, 200 };
	expect_parse("gray palette -> gray", &png, "|u1", "(2, 4)", gray);
	buf_release(&png);

	/* 1-, 2- and 4-bit gray, scaled as PNG defines */
	gs.ctype = PNG_COLOR_TYPE_GRAY;
	gs.plte = NULL;
	png = make_png(&gs);
	unsigned char g1[] = { 0, 255, 255, 0, 255, 0, 0, 255 };
	expect_parse("1-bit gray", &png, "|u1", "(2, 4)", g1);
	buf_release(&png);
	unsigned char g4rows[4] = { 0x0f, 0x5a, 0x12, 0x34 };
	struct pngspec g4 = { 4, 2, 4, PNG_COLOR_TYPE_GRAY, 0, g4rows, NULL, 0,
			      NULL, 0, NULL };
	png = make_png(&g4);
	unsigned char w4[] = { 0, 255, 85, 170, 17, 34, 51, 68 };
	expect_parse("4-bit gray", &png, "|u1", "(2, 4)", w4);
	buf_release(&png);

	/* RGB whose pixels are gray, for a gray array; and not */
	unsigned char grgb[] = { 1, 1, 1, 2, 2, 2, 3, 3, 3, 9, 9, 9 };
	struct pngspec rs = { 2, 2, 8, PNG_COLOR_TYPE_RGB, 0, grgb, NULL, 0,
			      NULL, 0, NULL };
	png = make_png(&rs);
	unsigned char wg[] = { 1, 2, 3, 9 };
	expect_parse("gray RGB -> gray", &png, "|u1", "(2, 2)", wg);
	unsigned char wa[16] = { 1, 1, 1, 255, 2, 2, 2, 255, 3, 3, 3, 255, 9, 9, 9, 255 };
	expect_parse("RGB -> RGBA", &png, "|u1", "(2, 2, 4)", wa);
	buf_release(&png);
	grgb[10] = 8;
	png = make_png(&rs);
	expect_fail("RGB not gray", &png, "|u1", "(2, 2)",
		    "pixel (row 1, column 1) is not gray (9, 8, 9)");
	buf_release(&png);

	/* RGBA all opaque for RGB; one translucent pixel refused */
	unsigned char rgba8[] = { 1, 2, 3, 255, 4, 5, 6, 255 };
	struct pngspec as = { 2, 1, 8, PNG_COLOR_TYPE_RGBA, 0, rgba8, NULL, 0,
			      NULL, 0, NULL };
	png = make_png(&as);
	unsigned char w3[] = { 1, 2, 3, 4, 5, 6 };
	expect_parse("opaque RGBA -> RGB", &png, "|u1", "(1, 2, 3)", w3);
	buf_release(&png);
	rgba8[7] = 254;
	png = make_png(&as);
	expect_fail("RGBA -> RGB", &png, "|u1", "(1, 2, 3)",
		    "pixel (row 0, column 1) has alpha 254");
	buf_release(&png);

	/* gray+alpha, 16-bit, for uint16 */
	unsigned char ga16[] = { 0x12, 0x34, 0xff, 0xff, 0xab, 0xcd, 0xff, 0xff };
	struct pngspec ga = { 2, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga16, NULL, 0,
			      NULL, 0, NULL };
	png = make_png(&ga);
	unsigned char wle[] = { 0x34, 0x12, 0xcd, 0xab };
	unsigned char wbe[] = { 0x12, 0x34, 0xab, 0xcd };
	expect_parse("opaque GA16 -> <u2", &png, "<u2", "(1, 2)", wle);
	expect_parse("opaque GA16 -> >u2", &png, ">u2", "(1, 2)", wbe);
	buf_release(&png);
	ga16[7] = 0xfe;
	png = make_png(&ga);
	expect_fail("GA16 alpha", &png, "<u2", "(1, 2)",
		    "pixel (row 0, column 1) has alpha 65534");
	buf_release(&png);

	/* gray with a tRNS key: pixels of that value are transparent */
	unsigned char gk[] = { 5, 6 };
	png_color_16 key = { 0, 0, 0, 0, 6 };
	struct pngspec ks = { 2, 1, 8, PNG_COLOR_TYPE_GRAY, 0, gk, NULL, 0,
			      NULL, 0, &key };
	png = make_png(&ks);
	expect_fail("gray tRNS key", &png, "|u1", "(1, 2)",
		    "pixel (row 0, column 1) has alpha 0");
	key.gray = 7;
	buf_release(&png);
	png = make_png(&ks);
	expect_parse("gray tRNS key unused", &png, "|u1", "(1, 2)", gk);
	buf_release(&png);

	/* interlaced, every kind, odd sizes (Adam7 passes partly empty) */
	static const int kinds[][3] = {	/* depth, ctype, channels */
		{ 8, PNG_COLOR_TYPE_GRAY, 1 }, { 16, PNG_COLOR_TYPE_GRAY, 1 },
		{ 8, PNG_COLOR_TYPE_RGB, 3 }, { 8, PNG_COLOR_TYPE_RGBA, 4 },
		{ 8, PNG_COLOR_TYPE_GRAY_ALPHA, 2 },
	};
	static const uint32_t sizes[][2] = { { 1, 1 }, { 3, 2 }, { 13, 17 }, { 64, 9 } };
	for (size_t k = 0; k < 5; k++)
		for (size_t z = 0; z < 4; z++) {
			uint32_t W = sizes[z][0], H = sizes[z][1];
			int depth = kinds[k][0], ch = kinds[k][2];
			size_t n = (size_t)W * H * ch * depth / 8;
			unsigned char *rows = malloc(n), *want = malloc(n);
			char shape[48], what[64];
			const char *descr = depth == 16 ? ">u2" : "|u1";

			for (size_t i = 0; i < n; i++)
				rows[i] = (unsigned char)rnd();
			if (ch == 2)	/* gray+alpha, opaque: to gray */
				for (size_t i = 0; i < (size_t)W * H; i++) {
					rows[2 * i + 1] = 255;
					want[i] = rows[2 * i];
				}
			else
				memcpy(want, rows, n);
			struct pngspec is = { W, H, depth, kinds[k][1],
					      PNG_INTERLACE_ADAM7, rows, NULL, 0,
					      NULL, 0, NULL };
			png = make_png(&is);
			if (ch == 1 || ch == 2)
				snprintf(shape, sizeof(shape), "(%u, %u)", H, W);
			else
				snprintf(shape, sizeof(shape), "(%u, %u, %d)", H, W, ch);
			snprintf(what, sizeof(what), "interlaced %d-bit type %d %ux%u",
				 depth, kinds[k][1], W, H);
			expect_parse(what, &png, descr, shape, want);
			buf_release(&png);
			free(rows);
			free(want);
		}
}

/* ---- errors -------------------------------------------------------------- */

/* A valid 8-bit gray PNG of (H, W) = (3, 4), values 0..11. */
static struct buf gray34(void)
{
	unsigned char px[12];
	for (int i = 0; i < 12; i++)
		px[i] = (unsigned char)i;
	struct pngspec s = { 4, 3, 8, PNG_COLOR_TYPE_GRAY, 0, px, NULL, 0, NULL, 0, NULL };
	return make_png(&s);
}

/* offset of the chunk of that type in b, or 0 */
static size_t chunk_at(const struct buf *b, const char *type)
{
	for (size_t off = 8; off + 12 <= b->len;) {
		const unsigned char *p = (const unsigned char *)b->data + off;
		uint32_t len = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];

		if (!memcmp(p + 4, type, 4))
			return off;
		off += 12 + (size_t)len;
	}
	return 0;
}

static void test_errors(void)
{
	struct buf png = gray34(), bad = BUF_INIT;
	unsigned char want[12];

	for (int i = 0; i < 12; i++)
		want[i] = (unsigned char)i;
	expect_parse("gray34", &png, "|u1", "(3, 4)", want);
	expect_fail("width", &png, "|u1", "(3, 5)", "PNG: width 4, the array has 5 columns");
	expect_fail("height", &png, "|u1", "(2, 4)", "PNG: height 3, the array has 2 rows");
	expect_fail("depth 8 for u2", &png, "<u2", "(3, 4)",
		    "PNG: 8-bit grayscale, the array needs 16-bit grayscale");
	unsigned char want3[36];
	for (int i = 0; i < 36; i++)
		want3[i] = (unsigned char)(i / 3);
	expect_parse("gray for RGB", &png, "|u1", "(3, 4, 3)", want3);
	expect_fail("no exact view", &png, "<f8", "(3, 4)", "no editable PNG view");
	expect_fail("no exact view", &png, "|u1", "(3, 4, 2)", "no editable PNG view");

	unsigned char px16[24] = { 0 };
	struct pngspec s16 = { 4, 3, 16, PNG_COLOR_TYPE_GRAY, 0, px16, NULL, 0, NULL, 0, NULL };
	struct buf p16 = make_png(&s16);
	expect_fail("depth 16 for u1", &p16, "|u1", "(3, 4)",
		    "PNG: 16-bit grayscale, the array needs 8-bit grayscale");
	buf_release(&p16);
	unsigned char rgb16[6 * 12] = { 0 };
	struct pngspec r16 = { 4, 3, 16, PNG_COLOR_TYPE_RGB, 0, rgb16, NULL, 0, NULL, 0, NULL };
	p16 = make_png(&r16);
	expect_fail("RGB16 for RGB", &p16, "|u1", "(3, 4, 3)",
		    "PNG: 16-bit RGB, the array needs 8-bit RGB");
	buf_release(&p16);

	/* empty, not a PNG, a signature alone */
	struct buf e = BUF_INIT;
	expect_fail("empty", &e, "|u1", "(3, 4)", "PNG: the file is empty");
	buf_add(&e, "GIF89a\0\0\0\0\0\0", 12);
	expect_fail("not a PNG", &e, "|u1", "(3, 4)", "not a PNG file");
	buf_reset(&e);
	buf_add(&e, png.data, 5);
	expect_fail("5 bytes", &e, "|u1", "(3, 4)", "not a PNG file");
	buf_release(&e);

	/* truncated everywhere */
	int trunc_ok = 0;
	for (size_t n = 8; n < png.len; n++) {
		struct npy_header h;
		struct outbuf o;
		struct npz_err err = { { 0 } };
		struct buf t = { png.data, n, 0 };

		make_header(&h, "|u1", false, "(3, 4)");
		trunc_ok += parse(&t, &h, &o, &err) == -EINVAL && err.msg[0] &&
			    !strncmp(err.msg, "PNG: ", 5);
		out_release(&o);
		npy_header_release(&h);
	}
	test_cond("truncated at every byte", trunc_ok == (int)(png.len - 8));
	buf_add(&bad, png.data, chunk_at(&png, "IEND"));
	expect_fail("no IEND", &bad, "|u1", "(3, 4)", "truncated");
	buf_reset(&bad);

	/* bad CRCs: IHDR, IDAT (data and CRC); a flipped byte in zlib data */
	size_t ihdr = chunk_at(&png, "IHDR"), idat = chunk_at(&png, "IDAT");
	test_cond("chunks found", ihdr == 8 && idat > ihdr);
	buf_add(&bad, png.data, png.len);
	bad.data[ihdr + 8 + 3] ^= 1;	/* width's low byte */
	expect_fail("IHDR CRC", &bad, "|u1", "(3, 4)", "CRC error");
	memcpy(bad.data, png.data, png.len);
	bad.data[idat + 8 + 4] ^= 0x10;
	expect_fail("IDAT data", &bad, "|u1", "(3, 4)", "PNG: damaged: IDAT: ");
	memcpy(bad.data, png.data, png.len);
	uint32_t ilen = (uint32_t)(unsigned char)bad.data[idat] << 24 |
			(unsigned char)bad.data[idat + 1] << 16 |
			(unsigned char)bad.data[idat + 2] << 8 |
			(unsigned char)bad.data[idat + 3];
	bad.data[idat + 8 + ilen] ^= 0xff;	/* the CRC itself */
	expect_fail("IDAT CRC bytes", &bad, "|u1", "(3, 4)", "CRC error");
	buf_release(&bad);

	/* random damage: never a crash, never a success with wrong data */
	int odd = 0;
	for (int i = 0; i < 3000; i++) {
		struct npy_header h;
		struct outbuf o;
		struct npz_err err = { { 0 } };
		struct buf d = BUF_INIT;
		int ret;

		buf_add(&d, png.data, png.len);
		for (int k = 0; k < 1 + i % 3; k++)
			d.data[8 + rnd() % (d.len - 8)] ^= (char)(1 + rnd() % 255);
		make_header(&h, "|u1", false, "(3, 4)");
		ret = parse(&d, &h, &o, &err);
		if (ret ? ret != -EINVAL || !err.msg[0]
			: !out_complete(&o) || memcmp(o.data, want, 12))
			odd++;
		out_release(&o);
		npy_header_release(&h);
		buf_release(&d);
	}
	test_cond("random damage: EINVAL or the same data", !odd);
	buf_release(&png);
}

static void test_callbacks(void)
{
	struct arr a;
	struct buf png;
	struct npz_err err = { { 0 } };
	struct outbuf o;
	int ret;

	arr_make(&a, "|u1", false, 300, 500, 3);
	/* src fails: every read in turn */
	for (int k = 1; k <= 3; k++) {
		struct test_mem m = { a.data, a.h.data_len, k, 0 };
		struct text_src src = { test_mem_read, &m };
		struct test_sinkbuf s = { BUF_INIT, 0, 0, 0 };
		struct text_sink sink = { test_sink_write, &s };

		test_cond("src error", png_format(&a.h, &src, &sink, &err) == -EIO ||
				       m.reads < k);
		buf_release(&s.b);
	}
	/* sink fails: first and a later write */
	for (int k = 1; k <= 2; k++) {
		struct test_mem m = { a.data, a.h.data_len, 0, 0 };
		struct text_src src = { test_mem_read, &m };
		struct test_sinkbuf s = { BUF_INIT, 0, k, 0 };
		struct text_sink sink = { test_sink_write, &s };

		test_cond("sink error", png_format(&a.h, &src, &sink, &err) == -ENOSPC);
		buf_release(&s.b);
	}
	/* heatmap: src fails in either pass */
	{
		struct npy_header h;
		double v[600];

		for (int i = 0; i < 600; i++)
			v[i] = i;
		make_header(&h, "<f8", false, "(20, 30)");
		for (int k = 1; k <= 2; k++) {
			struct test_mem m = { (unsigned char *)v, sizeof(v), k, 0 };
			struct text_src src = { test_mem_read, &m };
			struct test_sinkbuf s = { BUF_INIT, 0, 0, 0 };
			struct text_sink sink = { test_sink_write, &s };

			test_cond("heat src error",
				  png_format(&h, &src, &sink, &err) == -EIO);
			buf_release(&s.b);
		}
		struct test_mem m = { (unsigned char *)v, sizeof(v), 0, 0 };
		struct text_src src = { test_mem_read, &m };
		struct test_sinkbuf s = { BUF_INIT, 0, 0, 0 };
		struct text_sink sink = { test_sink_write, &s };
		npy_header_release(&h);
		make_header(&h, "<c16", false, "(2, 2)");
		err.msg[0] = 0;
		test_cond("no view: EINVAL",
			  png_format(&h, &src, &sink, &err) == -EINVAL && err.msg[0]);
		npy_header_release(&h);
	}
	ret = render(&a.h, a.data, &png, &err);
	test_cond("render", !ret);
	{
		struct text_out out = { out_begin, out_write_at, &o };
		struct npy_header h;

		memset(&o, 0, sizeof(o));
		o.fail_begin = 1;
		test_cond("begin error", png_parse(png.data, png.len, &a.h, &h,
						   &out, &err) == -EDQUOT);
		out_release(&o);
		o.fail_write = 1;
		test_cond("write_at error", png_parse(png.data, png.len, &a.h, &h,
						      &out, &err) == -EROFS);
		out_release(&o);
	}
	buf_release(&png);
	arr_free(&a);
}

/* ---- files for the Pillow check (tests/unit/png_pillow.py) --------------- */

static void write_file(const char *dir, const char *name, const void *p,
		       size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		printf("cannot write %s\n", path);
		exit(2);
	}
	fclose(f);
}

/* test_png render DIR NAME.npy...: write NAME.png beside each, the npy's
 * data rendered; test_png parse DIR NAME.png...: decode NAME.png into the
 * array of NAME.npy, written to NAME.out.npy. */
static int tool(int argc, char **argv)
{
	bool rend = !strcmp(argv[1], "render");
	int status = 0;

	for (int i = 3; i < argc; i++) {
		char path[4096];
		size_t len, plen;
		struct npy_header h;
		struct npz_err err = { { 0 } };
		struct buf png = BUF_INIT, hb = BUF_INIT;
		unsigned char *npy, *p = NULL;
		int ret;

		snprintf(path, sizeof(path), "%s/%s.npy", argv[2], argv[i]);
		npy = test_slurp(path, &len);
		if (!npy || npy_header_parse(npy, len, &h, &err)) {
			printf("%s: %s\n", path, err.msg);
			return 2;
		}
		snprintf(path, sizeof(path), "%s.png", argv[i]);
		if (rend) {
			ret = render(&h, npy + h.header_len, &png, &err);
			if (!ret)
				write_file(argv[2], path, png.data, png.len);
		} else {
			struct outbuf o;
			char full[8200];

			snprintf(full, sizeof(full), "%s/%s", argv[2], path);
			p = test_slurp(full, &plen);
			png.data = (char *)p;
			png.len = p ? plen : 0;
			ret = p ? parse(&png, &h, &o, &err) : -ENOENT;
			if (!ret && !out_complete(&o))
				ret = -EPROTO;
			if (!ret) {
				npy_header_format(&h, &hb);
				buf_add(&hb, o.data, o.len);
				snprintf(path, sizeof(path), "%s.out.npy", argv[i]);
				write_file(argv[2], path, hb.data, hb.len);
			}
			out_release(&o);
			png.data = buf_empty_;
			png.cap = 0;
		}
		if (ret) {
			printf("%s %s: %d %s\n", argv[1], argv[i], ret, err.msg);
			status = 1;
		}
		free(p);
		buf_release(&png);
		buf_release(&hb);
		npy_header_release(&h);
		free(npy);
	}
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && (!strcmp(argv[1], "render") || !strcmp(argv[1], "parse")))
		return tool(argc, argv);
	test_kinds();
	test_round_trips();
	test_heat_rules();
	test_heat_dtypes();
	test_equivalents();
	test_errors();
	test_callbacks();
	return test_report();
}
