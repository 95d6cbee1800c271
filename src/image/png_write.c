/* png_write.c - which arrays have a PNG view, its size bound, and rendering
 * it with libpng one row at a time.
 *
 * Invariant: png_parse(png_format(a)) == a, byte for byte, for every array
 * with an exact view.  Memory: one block or band of rows (rows.c), libpng's
 * few row buffers and zlib's state, and a 64 KiB output buffer; the
 * compression is zlib's Z_RLE with the UP filter (see image_png_level):
 * libpng's default (level 6, adaptive filters) is many times slower.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "image_internal.h"

#define OUT_CAP (64u << 10)	/* sink chunks, and IDAT chunks */

/* Measured with scripts/png-bench.c (4096x4096, CPU time): the UP filter
 * and zlib's Z_RLE (made for PNG data) render a photo-like uint8 image at
 * ~125 MB/s into 7.6 MiB and a float64 heatmap at ~470 MB/s of input,
 * where libpng's default (level 6, adaptive filters) took 13 and 82 MB/s
 * for 8.0 and 4.2 MiB; UP also decodes fastest.  The level does not
 * matter to Z_RLE. */
int image_png_level = 1;
int image_png_filters = PNG_FILTER_UP;
int image_png_strategy = Z_RLE;

void image_png_error(png_structp png, png_const_charp msg)
{
	struct image_perr *pe = png_get_error_ptr(png);

	if (!pe->ret) {
		pe->ret = strcasestr(msg, "memory") ? -ENOMEM : -EINVAL;
		npz_err_set(pe->err, "%s: %s", pe->what, msg);
	}
	png_longjmp(png, 1);
}

void image_png_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static bool two_d_shape(const struct npy_header *hdr)
{
	return hdr->shape[0] >= 1 && hdr->shape[0] <= PNG_UINT_31_MAX &&
	       hdr->shape[1] >= 1 && hdr->shape[1] <= PNG_UINT_31_MAX;
}

enum png_view image_geom_of(const struct npy_header *hdr,
			    struct image_geom *g)
{
	const struct npy_dtype *dt = &hdr->dtype;
	bool u1 = dt->kind == NPY_UINT && dt->itemsize == 1;
	bool u2 = dt->kind == NPY_UINT && dt->itemsize == 2;

	memset(g, 0, sizeof(*g));
	if (hdr->ndim < 2 || hdr->ndim > 3 || !two_d_shape(hdr))
		return PNG_VIEW_NONE;
	g->chans = 1;
	g->depth = 8;
	g->color_type = PNG_COLOR_TYPE_GRAY;
	if (hdr->ndim == 3) {
		if (!u1 || (hdr->shape[2] != 3 && hdr->shape[2] != 4))
			return PNG_VIEW_NONE;
		g->kind = PNG_VIEW_EXACT;
		g->chans = (unsigned)hdr->shape[2];
		g->color_type = g->chans == 3 ? PNG_COLOR_TYPE_RGB
					      : PNG_COLOR_TYPE_RGBA;
	} else if (u1 || u2) {
		g->kind = PNG_VIEW_EXACT;
		g->depth = u2 ? 16 : 8;
		/* PNG's 16-bit samples are big-endian */
		g->swap = u2 && (dt->order == '<' ||
				 (dt->order != '>' &&
				  __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__));
	} else if (heat_dtype(dt)) {
		g->kind = PNG_VIEW_HEATMAP;
	} else {
		return PNG_VIEW_NONE;
	}
	g->h = (uint32_t)hdr->shape[0];
	g->h64 = g->h;
	g->w = (uint32_t)hdr->shape[1];
	g->k = (size_t)g->w * g->chans;
	g->isz = dt->itemsize;
	g->fortran = hdr->fortran_order;
	if ((uint64_t)g->w * g->chans * (g->depth / 8) > PNG_ROW_MAX ||
	    (uint64_t)g->k * g->isz > PNG_ROW_MAX)
		return g->kind = PNG_VIEW_NONE;
	return g->kind;
}

enum png_view png_view_kind(const struct npy_header *hdr)
{
	struct image_geom g;

	return image_geom_of(hdr, &g);
}

uint64_t png_size_bound(const struct npy_header *hdr)
{
	struct image_geom g;
	uint64_t raw, z;

	if (image_geom_of(hdr, &g) == PNG_VIEW_NONE)
		return UINT64_MAX;
	/* filter byte + samples, per row: below 2^31 * 2^26, no overflow */
	raw = g.h64 * (1 + (uint64_t)g.w * g.chans * (g.depth / 8));
	/* zlib's bound for any parameters, plus its 6-byte wrapper */
	z = raw + (raw + 7) / 8 + (raw + 63) / 64 + 5 + 6;
	/* signature, IHDR, IEND; IDAT chunks of at most OUT_CAP bytes */
	return 8 + 25 + 12 + z + 12 * (z / OUT_CAP + 2);
}

struct wctx {
	struct image_perr perr;	/* first: libpng's error pointer */
	png_structp png;
	png_infop info;
	const struct text_sink *sink;
	unsigned char *out;	/* OUT_CAP bytes staged for the sink */
	size_t olen;
	struct image_geom g;
	const struct npy_dtype *dt;
	struct row_reader rr;
	struct heat heat;
	unsigned char *px;	/* heatmap: one row of pixels */
};

static int out_flush(struct wctx *c)
{
	int ret = 0;

	if (c->olen)
		ret = c->sink->write(c->sink->ctx, c->out, c->olen);
	c->olen = 0;
	return ret;
}

static void png_out_write(png_structp png, png_bytep data, size_t len)
{
	struct wctx *c = png_get_io_ptr(png);

	while (len) {
		size_t n = OUT_CAP - c->olen < len ? OUT_CAP - c->olen : len;
		int ret;

		memcpy(c->out + c->olen, data, n);
		c->olen += n;
		data += n;
		len -= n;
		if (c->olen == OUT_CAP && (ret = out_flush(c))) {
			c->perr.ret = ret;
			png_longjmp(png, 1);
		}
	}
}

static void png_out_flush(png_structp png)
{
	(void)png;
}

/* Everything libpng does; its errors longjmp to write_png. */
static int write_rows(struct wctx *c)
{
	png_structp png = c->png;
	const unsigned char *row;
	int ret;

	png_set_write_fn(png, c, png_out_write, png_out_flush);
	png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
	png_set_IHDR(png, c->info, c->g.w, c->g.h, (int)c->g.depth,
		     c->g.color_type, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, image_png_level);
	png_set_compression_strategy(png, image_png_strategy);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, image_png_filters);
	png_set_compression_buffer_size(png, OUT_CAP);
	png_write_info(png, c->info);
	if (c->g.swap)
		png_set_swap(png);
	for (uint32_t y = 0; y < c->g.h; y++) {
		ret = row_reader_next(&c->rr, &row);
		if (ret)
			return ret;
		if (c->px) {
			heat_row(&c->heat, c->dt, row, c->g.w, c->px);
			row = c->px;
		}
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	return 0;
}

/* The setjmp frame: no local changes after it. */
static int write_png(struct wctx *c)
{
	if (setjmp(png_jmpbuf(c->png)))
		return c->perr.ret ? c->perr.ret : -EINVAL;
	return write_rows(c);
}

int png_format(const struct npy_header *hdr, const struct text_src *src,
	       const struct text_sink *sink, struct npz_err *err)
{
	struct wctx c = { .perr = { err, "PNG", 0 }, .sink = sink,
			  .dt = &hdr->dtype };
	int ret;

	if (image_geom_of(hdr, &c.g) == PNG_VIEW_NONE) {
		npz_err_set(err, "no PNG view for this array (a 2-d array of "
			    "numbers, or (H, W, 3|4) uint8, up to %u bytes a row)",
			    PNG_ROW_MAX);
		return -EINVAL;
	}
	if (c.g.kind == PNG_VIEW_HEATMAP) {
		ret = heat_scan(hdr, src, &c.heat);
		if (ret)
			return ret;
		c.px = malloc(c.g.w);
		if (!c.px)
			return -ENOMEM;
	}
	ret = row_reader_init(&c.rr, src, &c.g);
	if (ret)
		goto out_free;
	c.out = malloc(OUT_CAP);
	c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c.perr,
					image_png_error, image_png_warning);
	if (c.png)
		c.info = png_create_info_struct(c.png);
	if (!c.out || !c.info) {
		ret = -ENOMEM;
		goto out_destroy;
	}
	ret = write_png(&c);
	if (!ret)
		ret = out_flush(&c);
out_destroy:
	png_destroy_write_struct(&c.png, &c.info);
	free(c.out);
out_free:
	row_reader_release(&c.rr);
	free(c.px);
	return ret;
}
