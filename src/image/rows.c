/* rows.c - an array's image rows in C order, with bounded memory.
 *
 * C order: a row is contiguous; rows are read (written) in blocks of about
 * image_block_bytes.  Fortran order: element (i, j, c) of an (H, W, C)
 * array is at i + H*(j + W*c), so the elements of one image row are H apart.
 * A band of R whole rows is read as W*C runs of R contiguous elements (one
 * per (j, c)) and transposed in memory; R is chosen so that the band takes
 * about image_band_bytes (one run per band when the whole array fits).
 * Writing does the same backwards.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

size_t image_band_bytes = 8u << 20;
size_t image_block_bytes = 1u << 20;

#define TILE 32

static inline void copy_elem(unsigned char *d, const unsigned char *s,
			     size_t isz)
{
	switch (isz) {
	case 1:
		*d = *s;
		break;
	case 2:
		memcpy(d, s, 2);
		break;
	case 4:
		memcpy(d, s, 4);
		break;
	case 8:
		memcpy(d, s, 8);
		break;
	default:
		memcpy(d, s, isz);
	}
}

/* Between runs and rows: run element (s, r) is f[(s*R + r)], with run
 * s = j + W*c; row element (r, j*C + c) is c_[r*K + j*C + c].  to_c picks
 * the direction.  Tiled over (j, r) for the caches. */
static void band_transpose(const struct image_geom *g, size_t R,
			   unsigned char *f, unsigned char *cb, bool to_c)
{
	size_t isz = g->isz, C = g->chans, W = g->w, K = g->k;

	for (size_t c = 0; c < C; c++)
		for (size_t j0 = 0; j0 < W; j0 += TILE)
			for (size_t r0 = 0; r0 < R; r0 += TILE) {
				size_t j1 = j0 + TILE < W ? j0 + TILE : W;
				size_t r1 = r0 + TILE < R ? r0 + TILE : R;

				for (size_t j = j0; j < j1; j++) {
					unsigned char *fp = f + ((c * W + j) * R + r0) * isz;
					unsigned char *cp = cb + (r0 * K + j * C + c) * isz;

					for (size_t r = r0; r < r1; r++) {
						if (to_c)
							copy_elem(cp, fp, isz);
						else
							copy_elem(fp, cp, isz);
						fp += isz;
						cp += K * isz;
					}
				}
			}
}

/* Fortran order is C order when at most one axis is longer than 1. */
static bool needs_transpose(const struct image_geom *g)
{
	return g->fortran && (g->h > 1) + (g->w > 1) + (g->chans > 1) >= 2;
}

/* rows per block or band, and the buffers */
static int band_alloc(const struct image_geom *g, size_t *rowbytes,
		      size_t *rows, unsigned char **band, unsigned char **tbuf)
{
	size_t rb = g->k * g->isz;
	bool t = needs_transpose(g);
	size_t want = t ? image_band_bytes : image_block_bytes;
	size_t r = rb >= want ? 1 : want / rb;

	if (r > g->h)
		r = g->h;
	*rowbytes = rb;
	*rows = r;
	*band = malloc(r * rb);
	*tbuf = t ? malloc(r * rb) : NULL;
	if (!*band || (t && !*tbuf)) {
		free(*band);
		free(*tbuf);
		*band = *tbuf = NULL;
		return -ENOMEM;
	}
	return 0;
}

int row_reader_init(struct row_reader *rr, const struct text_src *src,
		    const struct image_geom *g)
{
	memset(rr, 0, sizeof(*rr));
	rr->src = src;
	rr->g = g;
	return band_alloc(g, &rr->rowbytes, &rr->rows, &rr->band, &rr->tbuf);
}

static int read_band(struct row_reader *rr)
{
	const struct image_geom *g = rr->g;
	uint64_t r0 = rr->r0 + rr->have;
	size_t R = g->h - r0 < rr->rows ? (size_t)(g->h - r0) : rr->rows;
	size_t isz = g->isz;
	int ret = 0;

	rr->r0 = r0;
	rr->have = 0;
	if (!rr->tbuf) {	/* C order, or as good as */
		ret = text_src_read(rr->src, rr->band, (uint64_t)R * rr->rowbytes,
				     r0 * rr->rowbytes);
	} else if (R == g->h) {	/* the whole array: one read */
		ret = text_src_read(rr->src, rr->tbuf, (uint64_t)R * rr->rowbytes, 0);
		if (!ret)
			band_transpose(g, R, rr->tbuf, rr->band, true);
	} else {
		for (size_t s = 0; s < g->k && !ret; s++)
			ret = rr->src->read(rr->src->ctx, rr->tbuf + s * R * isz,
					    R * isz, (s * g->h64 + r0) * isz);
		if (!ret)
			band_transpose(g, R, rr->tbuf, rr->band, true);
	}
	if (!ret)
		rr->have = R;
	return ret;
}

int row_reader_next(struct row_reader *rr, const unsigned char **row)
{
	int ret;

	if (rr->next >= rr->r0 + rr->have) {
		ret = read_band(rr);
		if (ret)
			return ret;
	}
	*row = rr->band + (rr->next - rr->r0) * rr->rowbytes;
	rr->next++;
	return 0;
}

void row_reader_release(struct row_reader *rr)
{
	free(rr->band);
	free(rr->tbuf);
	memset(rr, 0, sizeof(*rr));
}

int row_writer_init(struct row_writer *rw, const struct text_out *out,
		    const struct image_geom *g)
{
	memset(rw, 0, sizeof(*rw));
	rw->out = out;
	rw->g = g;
	return band_alloc(g, &rw->rowbytes, &rw->rows, &rw->band, &rw->tbuf);
}

int row_writer_commit(struct row_writer *rw)
{
	const struct image_geom *g = rw->g;
	const struct text_out *out = rw->out;
	size_t R, isz = g->isz;
	int ret = 0;

	if (++rw->have < rw->rows && rw->r0 + rw->have < g->h)
		return 0;
	R = rw->have;
	if (!rw->tbuf) {
		ret = out->write_at(out->ctx, rw->band, R * rw->rowbytes,
				    rw->r0 * rw->rowbytes);
	} else {
		band_transpose(g, R, rw->tbuf, rw->band, false);
		if (R == g->h)
			ret = out->write_at(out->ctx, rw->tbuf, R * rw->rowbytes, 0);
		for (size_t s = 0; s < g->k && !ret && R < g->h; s++)
			ret = out->write_at(out->ctx, rw->tbuf + s * R * isz,
					    R * isz, (s * g->h64 + rw->r0) * isz);
	}
	rw->r0 += R;
	rw->have = 0;
	return ret;
}

void row_writer_release(struct row_writer *rw)
{
	free(rw->band);
	free(rw->tbuf);
	memset(rw, 0, sizeof(*rw));
}
