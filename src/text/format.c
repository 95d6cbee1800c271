/* format.c - render an array as its text view: layout, header lines, and
 * reading the data (C order in blocks, Fortran order in bands).
 *
 * Invariant: text_parse(text_format(a)) == a, byte for byte, for every
 * dtype but object.  Exceptions, by design: every NaN renders as "nan", so
 * a NaN's sign and payload bits come back as the default quiet NaN of the
 * precision; bool bytes other than 0/1 come back as 1; the 6 (or 2) unused
 * bytes of an x87 long double (f16/f12) and non-canonical x87 encodings come
 * back as zeros / the canonical value; padding bytes of structured dtypes
 * come back as zeros.
 *
 * Floats are printed as the shortest decimal that reads back to the same
 * value (Schubfach for float16/32/64, snprintf/strtold search for long
 * double), in Python repr style.  Output goes to the sink in chunks of at
 * most 64 KiB; data is read in blocks of about 1 MiB (C order), or in bands
 * of up to 32 MiB transposed in memory (Fortran order).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format_internal.h"

#define IN_BLOCK (1u << 20)	/* C-order read block */

/* ---- layout -------------------------------------------------------------- */


static void slice_header(struct fmt *f)
{
	const struct npy_header *h = f->hdr;
	uint64_t idx[NPY_MAXDIMS], s = f->nslice++;
	char line[NPY_MAXDIMS * 24 + 16], *o = line;
	int d;

	for (d = h->ndim - 3; d >= 0; d--) {
		idx[d] = s % h->shape[d];
		s /= h->shape[d];
	}
	if (f->nslice > 1)
		*o++ = '\n';
	o = put_str(o, "# [", 3);
	for (d = 0; d <= h->ndim - 3; d++) {
		o = fmt_u64(o, idx[d]);
		o = put_str(o, ", ", 2);
	}
	o = put_str(o, ":, :]\n", 6);
	text_ob_put(&f->ob, line, (size_t)(o - line));
}

int text_fail_value(struct fmt *f, const struct npy_dtype *dt)
{
	char name[48];

	text_dtype_name(dt, name, sizeof(name));
	npz_err_set(f->err, "a %s value cannot be shown as text", name);
	return -EINVAL;
}

/* Render n consecutive elements (C order) stored at p. */
static int text_emit(struct fmt *f, const unsigned char *p, size_t n)
{
	const struct npy_dtype *dt = f->dt;
	size_t isz = f->isz;
	char *o;
	int ret;

	/* Fast path: plain little-endian float64, any layout. */
	if (dt->kind == NPY_FLOAT && isz == 8 && !dt->swapped) {
		for (size_t i = 0; i < n; i++, p += 8) {
			if (f->slice && !f->in_slice)
				slice_header(f);
			o = fmt_f64(ob_room(&f->ob, 40), text_ld64(p, false));
			if (++f->col == f->cols) {
				*o++ = '\n';
				f->col = 0;
			} else {
				*o++ = ' ';
			}
			ob_end(&f->ob, o);
			if (f->slice && ++f->in_slice == f->slice)
				f->in_slice = 0;
		}
		return f->ob.ret;
	}

	for (size_t i = 0; i < n; i++, p += isz) {
		if (f->leaves) {
			for (size_t j = 0; j < f->nleaves; j++) {
				const struct text_leaf *l = &f->leaves[j];

				ret = text_fmt_scalar(&f->ob, l->dt, p + l->offset);
				if (ret)
					return text_fail_value(f, l->dt);
				o = ob_room(&f->ob, 1);
				*o++ = j + 1 < f->nleaves ? ' ' : '\n';
				ob_end(&f->ob, o);
			}
			if (!f->nleaves) {
				o = ob_room(&f->ob, 1);
				*o++ = '\n';
				ob_end(&f->ob, o);
			}
			continue;
		}
		if (f->slice && !f->in_slice)
			slice_header(f);
		if (is_fixed(dt->kind)) {
			o = text_fmt_fixed(ob_room(&f->ob, ELEM_MAX + 1), dt, p);
			if (!o)
				return text_fail_value(f, dt);
		} else {
			text_fmt_scalar(&f->ob, dt, p);
			o = ob_room(&f->ob, 1);
		}
		if (++f->col == f->cols) {
			*o++ = '\n';
			f->col = 0;
		} else {
			*o++ = ' ';
		}
		ob_end(&f->ob, o);
		if (f->slice && ++f->in_slice == f->slice)
			f->in_slice = 0;
	}
	return f->ob.ret;
}

int text_src_read(const struct text_src *src, void *buf, uint64_t len,
		  uint64_t off)
{
	unsigned char *p = buf;

	while (len) {
		size_t n = len > (8u << 20) ? (8u << 20) : (size_t)len;
		int ret = src->read(src->ctx, p, n, off);

		if (ret)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int render_c(struct fmt *f, const struct text_src *src)
{
	uint64_t count = f->hdr->count, i;
	size_t isz = f->isz, blk;
	unsigned char *buf;
	int ret = 0;

	if (!isz) {
		static const unsigned char none[1];

		for (i = 0; i < count && !ret; i++)
			ret = f->emit(f, none, 1);
		return ret;
	}
	blk = isz >= IN_BLOCK ? 1 : IN_BLOCK / isz;
	if (blk > count)
		blk = (size_t)count;
	buf = malloc(blk * isz);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < count && !ret; i += blk) {
		size_t n = count - i < blk ? (size_t)(count - i) : blk;

		ret = text_src_read(src, buf, (uint64_t)n * isz, i * isz);
		if (!ret)
			ret = f->emit(f, buf, n);
	}
	free(buf);
	return ret;
}

/* Fortran order with huge slices: one element at a time, by logical
 * index. */
static int render_f_each(struct fmt *f, const struct text_src *src)
{
	const struct npy_header *h = f->hdr;
	uint64_t idx[NPY_MAXDIMS], fs[NPY_MAXDIMS];
	size_t isz = f->isz;
	int nd = h->ndim, ret = 0, j;
	unsigned char *e = malloc(isz);
	uint64_t off = 0, i;

	if (!e)
		return -ENOMEM;
	fs[0] = 1;
	for (j = 1; j < nd; j++)
		fs[j] = fs[j - 1] * h->shape[j - 1];
	memset(idx, 0, sizeof(idx));
	for (i = 0; i < h->count && !ret; i++) {
		ret = src->read(src->ctx, e, isz, off * isz);
		if (!ret)
			ret = f->emit(f, e, 1);
		for (j = nd - 1; j >= 0; j--) {
			off += fs[j];
			if (++idx[j] < h->shape[j])
				break;
			off -= fs[j] * h->shape[j];
			idx[j] = 0;
		}
	}
	free(e);
	return ret;
}

/* Fortran order, ndim >= 2: bands of whole first-axis indices are read
 * (runs contiguous in the file) and transposed to C order in memory. */
static int render_f(struct fmt *f, const struct text_src *src)
{
	const struct npy_header *h = f->hdr;
	uint64_t d0 = h->shape[0], rest = h->count / d0, a;
	size_t isz = f->isz, k, band;
	unsigned char *fb = NULL, *cb = NULL;
	int ret = 0;

	if (!isz)
		return render_c(f, src);
	if (rest > text_band_bytes / isz)
		return render_f_each(f, src);
	band = text_band_bytes / (isz * (size_t)rest);
	if (band > d0)
		band = (size_t)d0;
	fb = malloc(band * rest * isz);
	cb = malloc(band * rest * isz);
	if (!fb || !cb) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (a = 0; a < d0 && !ret; a += k) {
		k = d0 - a < band ? (size_t)(d0 - a) : band;
		if (k == d0) {
			ret = text_src_read(src, fb, h->data_len, 0);
		} else {
			for (uint64_t r = 0; r < rest && !ret; r++)
				ret = src->read(src->ctx, fb + r * k * isz, k * isz,
						(a + r * d0) * isz);
		}
		if (ret)
			break;
		text_band_transpose(h, isz, k, rest, fb, cb, true);
		ret = f->emit(f, cb, k * rest);
	}
out_free:
	free(fb);
	free(cb);
	return ret;
}

int text_render_body(struct fmt *f, const struct text_src *src)
{
	if (!f->hdr->count)
		return 0;
	if (f->hdr->fortran_order && f->hdr->ndim >= 2)
		return render_f(f, src);
	return render_c(f, src);
}

/* The header dict as read, or built when hdr has none. */
static int dict_line(const struct npy_header *hdr, struct buf *b)
{
	return hdr->dict ? buf_adds(b, hdr->dict)
			 : npy_header_format_dict(hdr, b);
}

static int column_names(const struct npy_dtype *dt, struct buf *prefix,
			int (*put)(void *ctx, const char *name, size_t len),
			void *ctx, size_t *n)
{
	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *fl = &dt->fields[i];
		size_t plen = prefix->len;
		uint64_t idx[NPY_MAXDIMS] = { 0 };
		int ret = 0;

		/* a comment line: control characters in names as \xNN */
		for (const char *c = fl->name; *c && !ret; c++) {
			unsigned char ch = (unsigned char)*c;

			if (ch < 0x20 || ch == 0x7f)
				ret = buf_addf(prefix, "\\x%02x", ch);
			else
				ret = buf_addch(prefix, (char)ch);
		}

		for (uint64_t e = 0; e < fl->count && !ret; e++) {
			size_t blen = prefix->len;

			if (fl->ndim > 0) {
				ret = buf_addch(prefix, '[');
				for (int d = 0; d < fl->ndim && !ret; d++)
					ret = buf_addf(prefix, d ? ",%llu" : "%llu",
						       (unsigned long long)idx[d]);
				if (!ret)
					ret = buf_addch(prefix, ']');
				for (int d = fl->ndim - 1; d >= 0; d--) {
					if (++idx[d] < fl->shape[d])
						break;
					idx[d] = 0;
				}
			}
			if (ret)
				break;
			if (fl->type.kind == NPY_RECORD) {
				ret = buf_addch(prefix, '.');
				if (!ret)
					ret = column_names(&fl->type, prefix, put,
							   ctx, n);
			} else {
				if (*n >= TEXT_MAX_LEAVES)
					ret = -EINVAL;
				else
					ret = put(ctx, prefix->data, prefix->len);
				(*n)++;
			}
			prefix->len = blen;
			prefix->data[blen] = '\0';
		}
		prefix->len = plen;
		prefix->data[plen] = '\0';
		if (ret)
			return ret;
	}
	return 0;
}

int text_column_names(const struct npy_dtype *dt,
		      int (*put)(void *ctx, const char *name, size_t len),
		      void *ctx)
{
	struct buf prefix = BUF_INIT;
	size_t n = 0;
	int ret = column_names(dt, &prefix, put, ctx, &n);

	buf_release(&prefix);
	return ret;
}

/* A name of the "# columns:" line, after a space. */
static int put_column(void *ctx, const char *name, size_t len)
{
	int ret = buf_addch(ctx, ' ');

	return ret ? ret : buf_add(ctx, name, len);
}

static int header_lines(struct fmt *f)
{
	struct buf b = BUF_INIT;
	int ret;

	ret = buf_adds(&b, "# ");
	if (!ret)
		ret = dict_line(f->hdr, &b);
	/* a newline can only be whitespace between tokens of the dict (npy
	 * refuses it inside strings): keep the dict on one line */
	for (size_t i = 2; i < b.len; i++)
		if (b.data[i] == '\n')
			b.data[i] = ' ';
	if (!ret)
		ret = buf_addch(&b, '\n');
	if (!ret && f->dt->kind == NPY_RECORD) {
		ret = buf_adds(&b, "# columns:");
		if (!ret)
			ret = text_column_names(f->dt, put_column, &b);
		if (!ret)
			ret = buf_addch(&b, '\n');
	}
	if (!ret)
		text_ob_put(&f->ob, b.data, b.len);
	buf_release(&b);
	return ret;
}

int text_format(const struct npy_header *hdr, const struct text_src *src,
		const struct text_sink *sink, struct npz_err *err)
{
	struct fmt f = { .hdr = hdr, .dt = &hdr->dtype, .err = err,
			 .emit = text_emit };
	int ret;

	ret = text_check_dtype(&hdr->dtype, hdr->count, err);
	if (ret)
		return ret;
	f.isz = hdr->dtype.itemsize;
	f.ob.sink = sink;
	f.ob.buf = malloc(OUT_CAP);
	if (!f.ob.buf)
		return -ENOMEM;
	if (hdr->dtype.kind == NPY_RECORD) {
		ret = text_leaves(&hdr->dtype, &f.leaves, &f.nleaves);
		if (ret == -EINVAL)
			npz_err_set(err, "too many columns");
		if (ret)
			goto out_free;
		if (!f.leaves)	/* no columns: still one (empty) line per record */
			f.leaves = malloc(1);
		if (!f.leaves) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	f.cols = hdr->ndim >= 2 ? hdr->shape[hdr->ndim - 1] : 1;
	if (hdr->ndim >= 3)
		f.slice = hdr->shape[hdr->ndim - 2] * hdr->shape[hdr->ndim - 1];
	ret = header_lines(&f);
	if (ret)
		goto out_free;
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
