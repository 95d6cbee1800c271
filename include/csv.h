/* csv.h - the CSV view of an array (RFC 4180): render (src/text/csv_format.c)
 * and read back (src/text/csv_parse.c), with the callbacks of text.h.
 *
 * Which arrays: 1-d and 2-d arrays of scalars (a 2-d one with at least one
 * column) and 1-d structured arrays with at least one column; no objects.
 * Layout: fields separated by ',', records ended by LF.  Plain arrays have
 * no header row: one element per line (1-d) or one row per line (2-d).
 * Structured arrays start with a header row of the flattened column names
 * of the text view's "# columns:" line ("name,val,pos[0],pos[1]").
 * Values are the text view's (shortest round-trip floats, True/False,
 * 1.5+2.0j, ISO datetimes, 0x hex for void), but strings are their raw
 * characters (U as UTF-8, S as raw bytes), quoted only when they hold a
 * ',', '"', CR or LF ('"' doubled); a record of one empty string is "".
 *
 * Invariant: csv_parse(csv_format(a), base = a) == a, byte for byte (the
 * text view's exceptions: NaN payloads, bool bytes other than 0/1, long
 * double padding, structured padding).
 * Reentrant; callbacks are called from the calling thread.
 */
#ifndef NPZFS_CSV_H
#define NPZFS_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "npy.h"
#include "text.h"

/* True if the array has a CSV view (see above). */
bool csv_viewable(const struct npy_header *hdr);

/* An upper bound on the size of the CSV view of hdr's array (UINT64_MAX
 * when it does not fit or there is no view). */
uint64_t csv_size_bound(const struct npy_header *hdr);

/* Render the CSV view of hdr's array whose data src reads, to sink in
 * chunks of at most 64 KiB.  Returns 0, a callback's -errno, or -EINVAL
 * with a message (no CSV view; a U string holding a code point UTF-8
 * cannot carry: a surrogate or one past U+10FFFF). */
int csv_format(const struct npy_header *hdr, const struct text_src *src,
	       const struct text_sink *sink, struct npz_err *err);

/* Parse a whole CSV view held in memory (it may be an mmap of a file).
 * The dtype and the number of dimensions are base's (required: there is
 * nothing else to take them from), the number of rows is the text's, a
 * 2-d array keeps base's number of columns, Fortran order is kept.  LF and
 * CRLF line ends are accepted, a missing final newline too; empty lines
 * are skipped.  Fields may be quoted; spaces around a non-string value are
 * ignored.  Structured: the header row must name base's columns.
 * Returns 0 after out->begin + writes, or -EINVAL with a message naming
 * the line and column ("line 3, column 2: bad value 'x' (expected
 * float64)", "line 4: 3 fields, expected 2"), -ENOMEM, or a callback's
 * -errno.  On any error the caller discards what out received. */
int csv_parse(const char *text, size_t len, const struct npy_header *base,
	      struct npy_header *hdr, const struct text_out *out,
	      struct npz_err *err);

#endif
