/* csv_format.c - render an array as its CSV view (include/csv.h): the
 * text view's data walk (format.c) with CSV fields and separators.
 *
 * Invariant: csv_parse(csv_format(a), base = a) == a, byte for byte (the
 * exceptions of format.c).  Values are the text view's, but strings are
 * their raw characters, quoted only when a ',', '"', CR or LF is inside.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "format_internal.h"

bool csv_viewable(const struct npy_header *hdr)
{
	const struct npy_dtype *dt = &hdr->dtype;
	struct text_leaf *leaves = NULL;
	size_t n = 0;

	if (!text_viewable(hdr) || hdr->ndim < 1 || hdr->ndim > 2)
		return false;
	if (dt->kind != NPY_RECORD)
		return hdr->ndim == 1 || hdr->shape[1] > 0;
	if (hdr->ndim != 1 || text_leaves(dt, &leaves, &n))
		return false;
	free(leaves);
	return n > 0;
}

/* The text view's bound holds: every CSV value is at most as long as its
 * text (strings: raw UTF-8 with doubled quotes against escapes; bytes: one
 * or two against up to four), the header row at most the "# columns:"
 * line as the bound counts it (4 bytes per name byte), and the text's
 * header dict line is extra. */
uint64_t csv_size_bound(const struct npy_header *hdr)
{
	return csv_viewable(hdr) ? text_size_bound(hdr) : UINT64_MAX;
}

static bool needs_quotes(uint32_t c)
{
	return c == ',' || c == '"' || c == '\n' || c == '\r';
}

/* A U string (trailing NULs dropped) as raw UTF-8, quoted when needed;
 * `alone`: the only field of its record, so empty is written "". */
static int put_ustr(struct fmt *f, const struct npy_dtype *dt,
		    const unsigned char *p, bool alone)
{
	size_t units = dt->itemsize / 4;
	bool sw = dt->swapped, quote = false;
	char *o;

	while (units && !text_ld32(p + 4 * (units - 1), sw))
		units--;
	for (size_t i = 0; i < units; i++) {
		uint32_t c = text_ld32(p + 4 * i, sw);

		if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
			npz_err_set(f->err, "a %s value holds code point U+%04X, which UTF-8 (and so CSV) cannot carry",
				    "U", (unsigned)c);
			return -EINVAL;
		}
		quote = quote || needs_quotes(c);
	}
	quote = quote || (alone && !units);
	if (quote) {
		o = ob_room(&f->ob, 1);
		*o++ = '"';
		ob_end(&f->ob, o);
	}
	for (size_t i = 0; i < units; i++) {
		uint32_t c = text_ld32(p + 4 * i, sw);

		o = ob_room(&f->ob, 5);
		if (c == '"')
			*o++ = '"';
		ob_end(&f->ob, put_utf8(o, c));
	}
	if (quote) {
		o = ob_room(&f->ob, 1);
		*o++ = '"';
		ob_end(&f->ob, o);
	}
	return 0;
}

/* An S value (trailing NULs dropped) as its raw bytes, quoted when
 * needed. */
static void put_bytes(struct fmt *f, const unsigned char *p, size_t n,
		      bool alone)
{
	bool quote = false;
	char *o;

	while (n && !p[n - 1])
		n--;
	for (size_t i = 0; i < n && !quote; i++)
		quote = needs_quotes(p[i]);
	quote = quote || (alone && !n);
	if (quote)
		text_ob_put(&f->ob, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		o = ob_room(&f->ob, 2);
		if (p[i] == '"')
			*o++ = '"';
		*o++ = (char)p[i];
		ob_end(&f->ob, o);
	}
	if (quote)
		text_ob_put(&f->ob, "\"", 1);
}

/* One field, then sep. */
static int put_field(struct fmt *f, const struct npy_dtype *dt,
		     const unsigned char *p, bool alone, char sep)
{
	char *o;
	int ret = 0;

	if (dt->kind == NPY_STR)
		ret = put_ustr(f, dt, p, alone);
	else if (dt->kind == NPY_BYTES)
		put_bytes(f, p, dt->itemsize, alone);
	else if (text_fmt_scalar(&f->ob, dt, p))
		return text_fail_value(f, dt);
	if (ret)
		return ret;
	o = ob_room(&f->ob, 1);
	*o++ = sep;
	ob_end(&f->ob, o);
	return f->ob.ret;
}

static int csv_emit(struct fmt *f, const unsigned char *p, size_t n)
{
	const struct npy_dtype *dt = f->dt;
	size_t isz = f->isz;
	int ret = 0;

	/* the usual case, plain little-endian float64: as fast as the text */
	if (dt->kind == NPY_FLOAT && isz == 8 && !dt->swapped) {
		for (size_t i = 0; i < n; i++, p += 8) {
			char *o = fmt_f64(ob_room(&f->ob, 40),
					  text_ld64(p, false));

			if (++f->col == f->cols) {
				*o++ = '\n';
				f->col = 0;
			} else {
				*o++ = ',';
			}
			ob_end(&f->ob, o);
		}
		return f->ob.ret;
	}
	for (size_t i = 0; i < n && !ret; i++, p += isz) {
		if (f->leaves) {
			for (size_t j = 0; j < f->nleaves && !ret; j++)
				ret = put_field(f, f->leaves[j].dt,
						p + f->leaves[j].offset,
						f->nleaves == 1,
						j + 1 < f->nleaves ? ',' : '\n');
			continue;
		}
		bool last = ++f->col == f->cols;

		if (last)
			f->col = 0;
		ret = put_field(f, dt, p, f->cols == 1, last ? '\n' : ',');
	}
	return ret;
}

/* A name of the header row, after a comma but the first. */
static int put_name(void *ctx, const char *name, size_t len)
{
	struct fmt *f = ctx;
	bool quote = false;
	char *o;

	if (f->col++)
		text_ob_put(&f->ob, ",", 1);
	for (size_t i = 0; i < len && !quote; i++)
		quote = needs_quotes((unsigned char)name[i]);
	if (quote)
		text_ob_put(&f->ob, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		o = ob_room(&f->ob, 2);
		if (name[i] == '"')
			*o++ = '"';
		*o++ = name[i];
		ob_end(&f->ob, o);
	}
	if (quote)
		text_ob_put(&f->ob, "\"", 1);
	return 0;
}

int csv_format(const struct npy_header *hdr, const struct text_src *src,
	       const struct text_sink *sink, struct npz_err *err)
{
	struct fmt f = { .hdr = hdr, .dt = &hdr->dtype, .err = err,
			 .emit = csv_emit };
	int ret;

	if (!csv_viewable(hdr)) {
		npz_err_set(err, "no CSV view: only 1-d and 2-d arrays and 1-d structured arrays have one");
		return -EINVAL;
	}
	f.isz = hdr->dtype.itemsize;
	f.ob.sink = sink;
	f.ob.buf = malloc(OUT_CAP);
	if (!f.ob.buf)
		return -ENOMEM;
	f.cols = hdr->ndim == 2 ? hdr->shape[1] : 1;
	if (hdr->dtype.kind == NPY_RECORD) {
		ret = text_leaves(&hdr->dtype, &f.leaves, &f.nleaves);
		if (!ret)
			ret = text_column_names(&hdr->dtype, put_name, &f);
		if (ret == -EINVAL)
			npz_err_set(err, "too many columns");
		if (ret)
			goto out_free;
		f.col = 0;
		text_ob_put(&f.ob, "\n", 1);
	}
	ret = text_render_body(&f, src);
	if (!ret)
		text_ob_flush(&f.ob);
	if (!ret)
		ret = f.ob.ret;
out_free:
	free(f.leaves);
	free(f.ob.buf);
	return ret;
}
