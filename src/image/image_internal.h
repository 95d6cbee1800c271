/* image_internal.h - shared inside src/image/: the view's geometry, rows of
 * an array in C order through bounded blocks and bands (rows.c), the
 * heatmap's scaling (heat.c), and libpng's error hooks (png_write.c). */
#ifndef NPZFS_IMAGE_INTERNAL_H
#define NPZFS_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <png.h>

#include "pngview.h"

/* Tunables, variables so that tests and benchmarks can change them:
 * Fortran-order band size in bytes (8 MiB), C-order read block (1 MiB),
 * zlib level and PNG filters of rendered views. */
extern size_t image_band_bytes;
extern size_t image_block_bytes;
extern int image_png_level;
extern int image_png_filters;
extern int image_png_strategy;

/* The PNG an array is shown as. */
struct image_geom {
	enum png_view kind;
	uint32_t h, w;
	unsigned chans;		/* PNG samples per pixel: 1, 3 or 4 */
	unsigned depth;		/* PNG bits per sample: 8 or 16 */
	int color_type;		/* PNG_COLOR_TYPE_GRAY, _RGB or _RGBA */
	bool swap;		/* uint16 stored little-endian (PNG: big) */
	bool fortran;		/* the array is in Fortran order */
	size_t k;		/* array elements per image row */
	size_t isz;		/* array itemsize */
	uint64_t h64;		/* h, for offsets */
};

/* Fill g for hdr's array; returns its kind (g is only meaningful when it
 * is not PNG_VIEW_NONE). */
enum png_view image_geom_of(const struct npy_header *hdr,
			    struct image_geom *g);

/* libpng's error pointer: the message goes to err ("<what>: <libpng's
 * message>") unless a callback set one first; ret is the result. */
struct image_perr {
	struct npz_err *err;
	const char *what;
	int ret;
};
void image_png_error(png_structp png, png_const_charp msg);
void image_png_warning(png_structp png, png_const_charp msg);


/* The array's rows in C order (k elements of isz bytes each), read in
 * blocks of whole rows (C order) or bands transposed in memory (Fortran
 * order). */
struct row_reader {
	const struct text_src *src;
	const struct image_geom *g;
	size_t rowbytes;	/* k * isz */
	size_t rows;		/* rows per block or band */
	unsigned char *band;	/* rows x rowbytes, C order */
	unsigned char *tbuf;	/* Fortran: the band as read (NULL for C) */
	uint64_t r0, next;	/* first row in band, next row handed out */
	size_t have;		/* rows in band */
};
int row_reader_init(struct row_reader *rr, const struct text_src *src,
		    const struct image_geom *g);
/* Point *row at the next row.  Returns 0 or src's -errno. */
int row_reader_next(struct row_reader *rr, const unsigned char **row);
void row_reader_release(struct row_reader *rr);

/* The inverse: rows in C order are stored through out->write_at at the
 * array's offsets (Fortran order: each band transposed first). */
struct row_writer {
	const struct text_out *out;
	const struct image_geom *g;
	size_t rowbytes, rows;
	unsigned char *band, *tbuf;
	uint64_t r0;
	size_t have;
};
int row_writer_init(struct row_writer *rw, const struct text_out *out,
		    const struct image_geom *g);
/* Where the next row goes (rowbytes bytes). */
static inline unsigned char *row_writer_slot(struct row_writer *rw)
{
	return rw->band + rw->have * rw->rowbytes;
}
/* The slot is filled; stores the band when it is full or the last row
 * came.  Returns 0 or out's -errno. */
int row_writer_commit(struct row_writer *rw);
void row_writer_release(struct row_writer *rw);

/* Heatmap scaling: the finite range of the array (pass 1), then pixels. */
struct heat {
	bool wide;		/* long double (f12/f16): the _l fields */
	bool flat;		/* finite values all equal, or none: k = 0 */
	double s, lo_s, k;	/* pixel = (x*s - lo_s) * k, rounded */
	long double s_l, lo_s_l, k_l;
};
/* Scan the data for the range.  Returns 0, -ENOMEM or src's -errno. */
int heat_scan(const struct npy_header *hdr, const struct text_src *src,
	      struct heat *ht);
/* n elements of dtype dt at p to n pixels. */
void heat_row(const struct heat *ht, const struct npy_dtype *dt,
	      const unsigned char *p, size_t n, unsigned char *px);
/* Does dtype dt get a heatmap (a real number dtype)? */
bool heat_dtype(const struct npy_dtype *dt);

#endif
