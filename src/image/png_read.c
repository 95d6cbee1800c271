/* png_read.c - decode an edited PNG view back into its array.
 *
 * Strict: the PNG's width, height and bit depth class (16 for uint16, at
 * most 8 for uint8) must be the array's, and every pixel, once expanded
 * losslessly (palette, low-bit gray, tRNS, gray as RGB, alpha), must be
 * exactly one of the array's kind (gray: r == g == b and opaque; RGB:
 * opaque); the first pixel that is not is named in the message.  The
 * file's own colour type and depth, without tRNS, are decoded straight
 * into the rows; anything else is expanded to RGBA by libpng and checked.
 * Damage (bad CRC of a critical chunk, truncation, bad zlib data, no IEND)
 * is -EINVAL with libpng's message; nothing is written to stderr.
 * Interlaced PNGs are decoded whole in memory before the rows go out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define CHUNK_MAX (8u << 20)	/* largest ancillary chunk libpng may keep */

struct rctx {
	struct image_perr perr;	/* first: libpng's error pointer */
	png_structp png;
	png_infop info;
	const unsigned char *data;
	size_t len, pos;
	struct image_geom g;	/* the array's */
	const struct text_out *out;
	const struct npy_header *hdr;
	struct row_writer rw;
	bool expanded;		/* rows are RGBA, to be checked */
	size_t rowbytes;	/* of a decoded row */
	unsigned char *row;	/* expanded: one decoded row */
	unsigned char *img;	/* interlaced: the whole decoded image */
};

static void png_in_read(png_structp png, png_bytep buf, size_t n)
{
	struct rctx *c = png_get_io_ptr(png);

	if (n > c->len - c->pos) {
		c->perr.ret = -EINVAL;
		npz_err_set(c->perr.err, "PNG: truncated: the file ends at "
			    "byte %zu", c->len);
		png_longjmp(png, 1);
	}
	memcpy(buf, c->data + c->pos, n);
	c->pos += n;
}

static int fail(struct rctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(struct rctx *c, const char *fmt, ...)
{
	char msg[NPZ_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	npz_err_set(c->perr.err, "PNG: %s", msg);
	return -EINVAL;
}

static const char *color_name(int ctype)
{
	switch (ctype) {
	case PNG_COLOR_TYPE_GRAY:
		return "grayscale";
	case PNG_COLOR_TYPE_GRAY_ALPHA:
		return "grayscale+alpha";
	case PNG_COLOR_TYPE_PALETTE:
		return "palette";
	case PNG_COLOR_TYPE_RGB:
		return "RGB";
	default:
		return "RGBA";
	}
}

static unsigned sample(const unsigned char *p, size_t bps, bool swap)
{
	return bps == 1 ? p[0] : swap ? p[0] | p[1] << 8 : p[0] << 8 | p[1];
}

/* An expanded RGBA row to the array's row: exact, or an error naming the
 * first pixel that is not. */
static int project(struct rctx *c, const unsigned char *s, unsigned char *d,
		   uint32_t y)
{
	const struct image_geom *g = &c->g;
	size_t bps = g->depth / 8, C = g->chans;
	static const unsigned char opaque[2] = { 0xff, 0xff };

	for (uint32_t x = 0; x < g->w; x++, s += 4 * bps, d += C * bps) {
		if (C < 4 && memcmp(s + 3 * bps, opaque, bps))
			return fail(c, "pixel (row %u, column %u) has alpha %u: "
				    "the array is %s without alpha", y, x,
				    sample(s + 3 * bps, bps, g->swap),
				    C == 1 ? "grayscale" : "RGB");
		if (C == 1 && (memcmp(s, s + bps, bps) ||
			       memcmp(s, s + 2 * bps, bps)))
			return fail(c, "pixel (row %u, column %u) is not gray "
				    "(%u, %u, %u): the array is grayscale", y, x,
				    sample(s, bps, g->swap),
				    sample(s + bps, bps, g->swap),
				    sample(s + 2 * bps, bps, g->swap));
		memcpy(d, s, C * bps);
	}
	return 0;
}

/* IHDR against the array; sets up libpng's transforms. */
static int check_header(struct rctx *c)
{
	png_structp png = c->png;
	const struct image_geom *g = &c->g;
	png_uint_32 w, h;
	int depth, ctype, interlace;
	bool trns;

	png_get_IHDR(png, c->info, &w, &h, &depth, &ctype, &interlace, NULL,
		     NULL);
	if (w != g->w)
		return fail(c, "width %u, the array has %u columns", w, g->w);
	if (h != g->h)
		return fail(c, "height %u, the array has %u rows", h, g->h);
	if ((depth == 16) != (g->depth == 16))
		return fail(c, "%d-bit %s, the array needs %u-bit %s", depth,
			    color_name(ctype), g->depth,
			    color_name(g->color_type));
	trns = png_get_valid(png, c->info, PNG_INFO_tRNS);
	c->expanded = ctype != g->color_type || depth != (int)g->depth || trns;
	if (c->expanded) {
		png_set_expand(png);
		png_set_gray_to_rgb(png);
		if (!(ctype & PNG_COLOR_MASK_ALPHA) && !trns)
			png_set_filler(png, 0xffff, PNG_FILLER_AFTER);
	}
	if (g->swap)
		png_set_swap(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, c->info);
	c->rowbytes = png_get_rowbytes(png, c->info);
	if (c->rowbytes != (size_t)g->w * (c->expanded ? 4 : g->chans) *
			   (g->depth / 8))
		return fail(c, "%d-bit %s decodes to %zu bytes a row", depth,
			    color_name(ctype), c->rowbytes);
	if (interlace != PNG_INTERLACE_NONE) {
		if ((uint64_t)h * c->rowbytes > SIZE_MAX)
			return -ENOMEM;
		c->img = malloc((size_t)h * c->rowbytes);
		if (!c->img)
			return -ENOMEM;
	} else if (c->expanded) {
		c->row = malloc(c->rowbytes);
		if (!c->row)
			return -ENOMEM;
	}
	return 0;
}

/* Everything libpng does; its errors longjmp to read_png. */
static int read_rows(struct rctx *c)
{
	png_structp png = c->png;
	int ret, passes;

	png_set_read_fn(png, c, png_in_read);
	png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
	png_set_chunk_malloc_max(png, CHUNK_MAX);
	png_read_info(png, c->info);
	ret = check_header(c);
	if (!ret)
		ret = row_writer_init(&c->rw, c->out, &c->g);
	if (!ret)
		ret = c->out->begin(c->out->ctx, c->hdr);
	if (ret > 0)		/* write_at may run on any thread: fine */
		ret = 0;
	if (ret)
		return ret;
	passes = c->img ? png_set_interlace_handling(png) : 1;
	for (int p = 0; p < passes && c->img; p++)
		for (uint32_t y = 0; y < c->g.h; y++)
			png_read_row(png, c->img + y * c->rowbytes, NULL);
	for (uint32_t y = 0; y < c->g.h; y++) {
		unsigned char *d = row_writer_slot(&c->rw);
		unsigned char *s = c->img ? c->img + y * c->rowbytes
					 : c->expanded ? c->row : d;

		if (!c->img)
			png_read_row(png, s, NULL);
		if (c->expanded)
			ret = project(c, s, d, y);
		else if (s != d)
			memcpy(d, s, c->rowbytes);
		if (!ret)
			ret = row_writer_commit(&c->rw);
		if (ret)
			return ret;
	}
	png_read_end(png, NULL);
	return 0;
}

/* The setjmp frame: no local changes after it. */
static int read_png(struct rctx *c)
{
	if (setjmp(png_jmpbuf(c->png)))
		return c->perr.ret ? c->perr.ret : -EINVAL;
	return read_rows(c);
}

int png_parse(const void *data, size_t len, const struct npy_header *base,
	      struct npy_header *hdr, const struct text_out *out,
	      struct npz_err *err)
{
	struct rctx c = { .perr = { err, "PNG: damaged", 0 }, .data = data,
			  .len = len, .out = out, .hdr = hdr };
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	if (image_geom_of(base, &c.g) != PNG_VIEW_EXACT) {
		npz_err_set(err, "PNG: this array has no editable PNG view");
		return -EINVAL;
	}
	if (!len) {
		npz_err_set(err, "PNG: the file is empty");
		return -EINVAL;
	}
	if (len < 8 || png_sig_cmp(data, 0, 8)) {
		npz_err_set(err, "PNG: not a PNG file (no PNG signature)");
		return -EINVAL;
	}
	ret = npy_header_copy(hdr, base);
	if (ret)
		return ret;
	c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c.perr,
				       image_png_error, image_png_warning);
	if (c.png)
		c.info = png_create_info_struct(c.png);
	if (!c.info)
		ret = -ENOMEM;
	else
		ret = read_png(&c);
	png_destroy_read_struct(&c.png, &c.info, NULL);
	row_writer_release(&c.rw);
	free(c.row);
	free(c.img);
	if (ret)
		npy_header_release(hdr);
	return ret;
}
