/* parse.c - read a text view back into an array: the entry, the output
 * and the general path's second pass.
 *
 * Invariant: text_parse(text_format(a)) == a, byte for byte (see the
 * exceptions listed in format.c: NaN payloads, bool bytes other than
 * 0/1, long double padding, structured padding).
 *
 * Two passes over the text: the first finds the layout (lines, values per
 * line, blank-line separated blocks) and, without a dtype, infers one; the
 * second converts values into ~1 MiB blocks handed to out->write_at (or, for
 * Fortran order, bands of up to 32 MiB transposed in memory).  Every error
 * names the 1-based line of the text.  Floats are read exactly, float32
 * rounded once from the decimal (Clinger's fast path, Eisel-Lemire,
 * strtod/strtof in the C locale when Eisel-Lemire cannot decide) and
 * must fit the precision: "1e39" is refused for float32, not made inf.
 *
 * The usual case, an edited view whose element count still matches its
 * header, takes a fast path (see "fast path" below): a first pass that only
 * counts tokens with SIMD, and a second that converts chunks of the text on
 * every online CPU (at most 8).  It gives the same results and the same
 * errors as the general path, which the unit tests and the fuzzer check
 * against it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

#define OUT_BLOCK (1u << 20)	/* C-order write block */

/* ---- output -------------------------------------------------------------- */

static int flush_band(struct tp *t);

int text_out_flush(struct tp *t)
{
	int ret = 0;

	if (!t->n)
		return 0;
	if (t->fortran) {
		ret = flush_band(t);
	} else if (t->isz) {
		ret = t->out->write_at(t->out->ctx, t->cbuf, t->n * t->isz,
				       t->done * t->isz);
	}
	t->done += t->n;
	t->n = 0;
	return ret;
}

int text_out_next(struct tp *t, unsigned char **elem)
{
	if (t->n == t->cap) {
		int ret = text_out_flush(t);

		if (ret)
			return ret;
	}
	*elem = t->cbuf + t->n * t->isz;
	if (t->record)
		memset(*elem, 0, t->isz);
	return 0;
}

/* Write the C-order elements in cbuf (whole first-axis indices, or one
 * element in the fallback) at their Fortran offsets. */
static int flush_band(struct tp *t)
{
	const struct npy_header *h = t->hdr;
	size_t isz = t->isz;
	uint64_t idx[NPY_MAXDIMS];
	int nd = h->ndim, j, ret = 0;

	if (!isz)
		return 0;
	if (!t->fbuf) {
		/* fallback: single elements at their F offset */
		for (size_t e = 0; e < t->n && !ret; e++) {
			uint64_t c = t->done + e, off = 0, stride = 1;

			for (j = nd - 1; j >= 0; j--) {
				idx[j] = c % h->shape[j];
				c /= h->shape[j];
			}
			for (j = 0; j < nd; j++) {
				off += idx[j] * stride;
				stride *= h->shape[j];
			}
			ret = t->out->write_at(t->out->ctx, t->cbuf + e * isz, isz,
					       off * isz);
		}
		return ret;
	}
	uint64_t d0 = h->shape[0], a = t->done / t->rest;
	size_t k = t->n / t->rest;

	text_band_transpose(h, isz, k, t->rest, t->fbuf, t->cbuf, false);
	if (k == d0)
		return t->out->write_at(t->out->ctx, t->fbuf, k * t->rest * isz, 0);
	for (uint64_t r = 0; r < t->rest && !ret; r++)
		ret = t->out->write_at(t->out->ctx, t->fbuf + r * k * isz, k * isz,
				       (a + r * d0) * isz);
	return ret;
}

int text_out_setup(struct tp *t)
{
	const struct npy_header *h = t->hdr;
	size_t isz = t->isz ? t->isz : 1;

	t->fortran = h->fortran_order && h->ndim >= 2 && h->count > 0;
	if (t->fortran) {
		t->rest = h->count / h->shape[0];
		if (t->isz && t->rest <= text_band_bytes / t->isz) {
			uint64_t band = text_band_bytes / (t->isz * t->rest);

			if (band > h->shape[0])
				band = h->shape[0];
			t->cap = (size_t)(band * t->rest);
			t->fbuf = malloc(t->cap * isz);
			if (!t->fbuf)
				return -ENOMEM;
		} else {
			t->cap = OUT_BLOCK / isz ? OUT_BLOCK / isz : 1;
		}
	} else {
		t->cap = OUT_BLOCK / isz ? OUT_BLOCK / isz : 1;
	}
	if (t->cap > h->count)
		t->cap = h->count ? (size_t)h->count : 1;
	t->cbuf = malloc(t->cap * isz);
	return t->cbuf ? 0 : -ENOMEM;
}

/* ---- pass 2: values ------------------------------------------------------ */

int text_convert(struct tp *t)
{
	const char *p = t->text + t->body, *end = t->text + t->len;
	size_t col = 0, ncols = t->ncols;
	const struct col *cols = t->cols;
	unsigned char *elem = NULL;
	int ret;

	if (!t->record && !t->nvalues)
		return 0;
	t->lineno = t->body_lineno;
	for (; p < end; t->lineno++) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *next;

		if (!e)
			e = end;
		next = e < end ? e + 1 : end;
		if (text_line_kind(p, e) != L_DATA) {
			p = next;
			continue;
		}
		for (const char *q = p;;) {
			while (q < e && is_ws(*q))
				q++;
			if (q >= e)
				break;
			const char *te = text_tok_end(t, q, e);

			if (!te)
				return -EINVAL;
			if (!col) {
				ret = text_out_next(t, &elem);
				if (ret)
					return ret;
			}
			ret = cols[col].conv(t, q, (size_t)(te - q),
					     elem + cols[col].offset, cols[col].dt);
			if (ret)
				return ret;
			if (++col == ncols) {
				col = 0;
				t->n++;
			}
			q = te;
		}
		p = next;
	}
	return text_out_flush(t);
}

/* ---- entry --------------------------------------------------------------- */

static int make_dtype(const char *str, struct npy_dtype *dt)
{
	return npy_dtype_parse_str(str, strlen(str), dt, NULL) ? -EINVAL : 0;
}

int text_setup_cols(struct tp *t, const struct npy_dtype *dt)
{
	struct text_leaf *leaves = NULL;
	size_t n, i;
	int ret;

	t->dt = dt;
	t->isz = dt->itemsize;
	t->record = dt->kind == NPY_RECORD;
	if (!t->record) {
		t->cols = calloc(1, sizeof(*t->cols));
		if (!t->cols)
			return -ENOMEM;
		t->cols[0].conv = text_conv_for(dt);
		t->cols[0].dt = dt;
		t->ncols = 1;
		return 0;
	}
	ret = text_leaves(dt, &leaves, &n);
	if (ret) {
		if (ret == -EINVAL)
			npz_err_set(t->err, "too many columns");
		return ret;
	}
	t->cols = calloc(n ? n : 1, sizeof(*t->cols));
	if (!t->cols) {
		free(leaves);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		t->cols[i].conv = text_conv_for(leaves[i].dt);
		t->cols[i].dt = leaves[i].dt;
		t->cols[i].offset = leaves[i].offset;
	}
	t->ncols = n;
	free(leaves);
	return 0;
}

/* Fill major/minor/header_len as npy_header_format() decides them. */
static int header_sizes(struct npy_header *h)
{
	struct buf b = BUF_INIT;
	int ret = npy_header_format(h, &b);

	if (!ret) {
		h->major = (unsigned char)b.data[6];
		h->minor = 0;
		h->header_len = b.len;
	}
	buf_release(&b);
	return ret;
}

/* Line 1, when it is "# {...}": the header dict into *hl (*have set), and
 * the body after it.  0, or -EINVAL with a message naming line 1. */
static int header_line(struct tp *t, struct npy_header *hl, bool *have)
{
	const char *text = t->text;
	size_t len = t->len;
	const char *e = memchr(text, '\n', len);
	const char *p = text, *le = e ? e : text + len;
	int ret;

	while (p < le && is_ws(*p))
		p++;
	if (p < le && *p == '#') {
		for (p++; p < le && is_ws(*p); p++)
			;
		if (p < le && *p == '{') {
			while (le > p && is_ws(le[-1]))
				le--;
			ret = npy_header_parse_dict(p, (size_t)(le - p), hl, t->err);
			if (ret) {
				npz_err_prefix(t->err, "line 1: bad header");
				return ret;
			}
			*have = true;
			t->body = e ? (size_t)(e - text) + 1 : len;
			t->body_lineno = 2;
		}
	}
	return 0;
}

/* No dtype anywhere: a first scan with classification decides one, the
 * narrowest that holds every value.  0 or -EINVAL with a message. */
static int infer_dtype(const struct tp *t, struct npy_dtype *dt)
{
	struct inferred inf = { INF_NONE, 0, 0, false };
	struct tp s = *t;
	char str[32];
	int ret;

	s.ncols = 1;
	ret = text_scan_layout(&s, &inf);
	if (ret)
		return ret;
	switch (inf.kind) {
	case INF_BOOL: strcpy(str, "|b1"); break;
	case INF_INT: strcpy(str, "<i8"); break;
	case INF_NONE:
	case INF_FLOAT: strcpy(str, "<f8"); break;
	case INF_COMPLEX: strcpy(str, "<c16"); break;
	default:
		snprintf(str, sizeof(str), inf.all_bytes ? "|S%zu" : "<U%zu",
			 inf.maxlen ? inf.maxlen : 1);
		break;
	}
	ret = make_dtype(str, dt);
	if (ret)
		npz_err_set(t->err, "strings too long");
	return ret;
}

/* The values (lines, for records) must fill hdr's shape exactly.
 * 0 or -EINVAL with a message. */
static int check_fill(const struct tp *t, const struct npy_header *hdr)
{
	uint64_t have = t->record ? t->nlines : t->nvalues;

	if (t->record && !t->ncols) {
		have = hdr->count;
		if (hdr->data_len > TEXT_MAX_ITEMSIZE) {
			npz_err_set(t->err, "array too large");
			return -EINVAL;
		}
	}
	if (have != hdr->count) {
		npz_err_set(t->err, "%llu values do not fill shape of %llu",
			    (unsigned long long)have,
			    (unsigned long long)hdr->count);
		return -EINVAL;
	}
	return 0;
}

/* Longer than a screen on purpose: the order of its steps is the order in
 * which errors are reported, which the fast path must reproduce (see
 * out_release), and one cleanup label covers them all. */
/* One text_parse() call: the parser, its fast path, and what the dtype
 * and shape were decided from. */
struct job {
	struct tp t;
	struct fast f;
	struct npy_header hl;		/* from the header line */
	struct npy_dtype inferred;
	const struct npy_header *ref;	/* the header line's, else base */
	bool have_hl;
	bool counted;	/* the fast path counted: no quotes, the chunks
			   know their first values */
	bool fast;	/* and the count is ref's: no general layout scan */
};

/* The dtype: the header line's, else base's, else inferred from the
 * values; the columns set up for it. */
static int job_dtype(struct job *j, const struct npy_header *base,
		     const struct npy_dtype **dt)
{
	int ret = header_line(&j->t, &j->hl, &j->have_hl);

	if (ret)
		return ret;
	j->ref = j->have_hl ? &j->hl : base;
	if (j->ref) {
		*dt = &j->ref->dtype;
	} else {
		ret = infer_dtype(&j->t, &j->inferred);
		if (ret)
			return ret;
		*dt = &j->inferred;
	}
	ret = text_check_dtype(*dt, 0, j->t.err);
	return ret ? ret : text_setup_cols(&j->t, *dt);
}

/* The layout: counted by the fast path when it can, else scanned. */
static int job_layout(struct job *j)
{
	struct tp *t = &j->t;

	if (text_parse_fast && !t->record && t->isz &&
	    t->isz <= FAST_ITEM_MAX && t->cols[0].conv) {
		uint64_t n = 0;

		text_fast_count(&j->f, &j->counted, &n);
		j->fast = j->counted && j->ref && n == j->ref->count &&
			  !(j->have_hl && j->hl.fortran_order && j->hl.ndim >= 2);
		if (j->fast)
			t->nvalues = n;
	}
	return j->fast ? 0 : text_scan_layout(t, NULL);
}

/* The new header: the header line's when its shape is the one decided,
 * else built; the columns set up again for it. */
static int job_header(struct job *j, const struct npy_dtype *dt,
		      struct npy_header *hdr)
{
	uint64_t shape[NPY_MAXDIMS];
	int ndim = 0, ret = text_decide_shape(&j->t, j->ref, &ndim, shape);

	if (ret)
		return ret;
	if (j->have_hl && ndim == j->hl.ndim &&
	    !memcmp(shape, j->hl.shape, sizeof(uint64_t) * (size_t)ndim)) {
		*hdr = j->hl;
		memset(&j->hl, 0, sizeof(j->hl));
		ret = header_sizes(hdr);
	} else {
		ret = npy_header_init(hdr, dt, ndim, shape,
				      j->have_hl && j->hl.fortran_order);
		if (ret == -EINVAL)
			npz_err_set(j->t.err, "array too large");
	}
	if (ret)
		return ret;
	/* the columns pointed into hl, which may have moved into hdr */
	free(j->t.cols);
	j->t.cols = NULL;
	ret = text_setup_cols(&j->t, &hdr->dtype);
	return ret ? ret : check_fill(&j->t, hdr);
}

/* Records without columns (padding only): all zeros. */
static int zero_records(struct tp *t, const struct npy_header *hdr)
{
	int ret = 0;

	memset(t->cbuf, 0, t->cap * (t->isz ? t->isz : 1));
	while (t->isz && t->done < hdr->count && !ret) {
		t->n = hdr->count - t->done < t->cap ?
		       (size_t)(hdr->count - t->done) : t->cap;
		ret = text_out_flush(t);
	}
	return ret;
}

/* Convert every value into out, hdr decided. */
static int job_convert(struct job *j, struct npy_header *hdr,
		       const struct text_out *out)
{
	struct tp *t = &j->t;
	int ret = 0;

	t->hdr = hdr;
	/* the fast conversion writes C order only */
	j->counted = j->counted && !(hdr->fortran_order && hdr->ndim >= 2);
	if (!j->counted)
		ret = text_out_setup(t);
	if (!ret)
		ret = out->begin(out->ctx, hdr);
	if (ret < 0)
		return ret;
	t->out_threads = ret > 0;
	if (j->counted)
		return text_fast_convert(&j->f);
	if (t->record && !t->ncols)
		return zero_records(t, hdr);
	return text_convert(t);
}

/* The fast path failed: the general path's first pass would have failed
 * first, with its own message. */
static int job_fast_failed(struct job *j, int ret)
{
	struct tp s = { .text = j->t.text, .len = j->t.len, .err = j->t.err,
			.body = j->t.body, .body_lineno = j->t.body_lineno,
			.ncols = 1 };

	return text_scan_layout(&s, NULL) ? -EINVAL : ret;
}

int text_parse(const char *text, size_t len, const struct npy_header *base,
	       struct npy_header *hdr, const struct text_out *out,
	       struct npz_err *err)
{
	struct job j = {
		.t = { .text = len ? text : "", .len = len, .err = err,
		       .out = out, .body_lineno = 1 },
		.f = { .lock = PTHREAD_MUTEX_INITIALIZER,
		       .cv = PTHREAD_COND_INITIALIZER },
	};	/* (an empty file may come as NULL) */
	const struct npy_dtype *dt = NULL;
	int ret;

	j.f.t = &j.t;
	memset(hdr, 0, sizeof(*hdr));
	ret = job_dtype(&j, base, &dt);
	if (!ret)
		ret = job_layout(&j);
	if (!ret)
		ret = job_header(&j, dt, hdr);
	if (!ret)
		ret = job_convert(&j, hdr, out);
	if (ret && j.fast)
		ret = job_fast_failed(&j, ret);
	free(j.f.ch);
	free(j.t.cols);
	free(j.t.cbuf);
	free(j.t.fbuf);
	npy_header_release(&j.hl);
	npy_dtype_release(&j.inferred);
	if (ret)
		npy_header_release(hdr);
	return ret;
}
