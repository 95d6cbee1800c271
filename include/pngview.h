/* pngview.h - the PNG view of an array (src/image/): render with libpng row
 * by row, and decode an edited PNG back into the array.  Knows nothing of
 * files or archives: data comes from and goes to the text view's callback
 * structs (text.h), so an array never needs to fit in RAM.
 *
 * Which arrays have a PNG view, and what it shows:
 * - exact (editable), both ways byte for byte:
 *     (H, W) uint8          8-bit grayscale
 *     (H, W) uint16         16-bit grayscale (either byte order; PNG stores
 *                           big-endian, a '<u2' array is swapped both ways)
 *     (H, W, 3) uint8       8-bit RGB
 *     (H, W, 4) uint8       8-bit RGBA
 * - heatmap (read-only): any other 2-d array of a real number dtype, that is
 *   bool, signed and unsigned integers of every width, and floats f2 f4 f8
 *   and long double (f12/f16, x87 80-bit).  Not complex, strings, bytes,
 *   void, datetime64, timedelta64, objects or structured dtypes (no view).
 *   Shown as 8-bit grayscale: the finite values scaled linearly from their
 *   minimum (0) to their maximum (255), rounded to nearest; NaN and -inf are
 *   0, +inf is 255; when the finite values are all equal (or there are
 *   none) they are all 0 (+inf stays 255).  bool is 0/1.  The map is
 *   monotonic: a larger value never gets a darker pixel.  Integers wider
 *   than 53 bits are scaled through double (monotonic, not injective).
 * - none: every other array; also any array with an axis of length 0, an
 *   axis over 2^31 - 1 (PNG's limit), or a PNG row (or input row) over
 *   PNG_ROW_MAX bytes.
 *
 * Memory is bounded by a few rows plus one band: C-order arrays are read in
 * blocks of about 1 MiB of whole rows; Fortran-order arrays in bands of
 * whole rows of about 8 MiB (each column's run of the band read
 * contiguously, transposed in memory; a Fortran-order row over 8 MiB is a
 * band alone, so its elements are read one by one).  Output goes to the sink in chunks
 * of at most 64 KiB.  All functions are reentrant; callbacks are called from
 * the calling thread.  libpng's own messages never reach stderr.
 */
#ifndef NPZFS_PNGVIEW_H
#define NPZFS_PNGVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "npy.h"
#include "text.h"

/* The longest PNG row (and input row) a view may have, in bytes. */
#define PNG_ROW_MAX (64u << 20)

enum png_view { PNG_VIEW_NONE, PNG_VIEW_EXACT, PNG_VIEW_HEATMAP };

/* Which PNG view hdr's array has (see above). */
enum png_view png_view_kind(const struct npy_header *hdr);

/* An upper bound on the size in bytes of the PNG png_format() renders for
 * hdr's array, from its shape alone (zlib's worst-case expansion of the
 * rows, chunk overhead); UINT64_MAX when the array has no PNG view. */
uint64_t png_size_bound(const struct npy_header *hdr);

/* Render the PNG view of the array described by hdr whose data src reads
 * (a heatmap reads the data twice: minimum and maximum, then the rows).
 * Non-interlaced, no ancillary chunks, fast compression.  Returns 0, or
 * -errno from a callback (src's or sink's, passed through), -ENOMEM, or
 * -EINVAL with a message when the array has no PNG view. */
int png_format(const struct npy_header *hdr, const struct text_src *src,
	       const struct text_sink *sink, struct npz_err *err);

/* Decode a whole PNG held in memory (it may be an mmap of a file) into an
 * array of base's dtype, shape and order; base must have an exact view.
 * Accepted: the PNG's width and height are base's, its bit depth is 16 for
 * a uint16 array and at most 8 (or a palette) for a uint8 one, and its
 * pixels are exactly the array's kind: the exact colour type, or any other
 * that expands losslessly to RGBA (a palette, gray of 1/2/4 bits scaled as
 * PNG defines, gray as RGB, a tRNS chunk, an opaque alpha added) when
 * every pixel is exactly representable (gray arrays: r == g == b and
 * opaque; RGB arrays: opaque) - what image editors save (an indexed or
 * RGBA image of an RGB array, an RGB image of a gray one).  Interlaced
 * PNGs are decoded whole in memory (the expanded image; non-interlaced
 * ones row by row).  Gamma and colour profiles are ignored: samples are
 * taken as stored.
 * On success *hdr is a copy of base (release it with npy_header_release),
 * out->begin(hdr) ran once and out->write_at covered the data once.
 * Returns 0, or -EINVAL with a message ("PNG: width 5, the array has 3
 * columns", "PNG: damaged: IDAT: CRC error", "PNG: pixel (2, 7) has alpha
 * 128: the array is RGB"), -ENOMEM, or a callback's -errno; on failure
 * *hdr is zeroed and the caller discards what out received. */
int png_parse(const void *data, size_t len, const struct npy_header *base,
	      struct npy_header *hdr, const struct text_out *out,
	      struct npz_err *err);

#endif
