/* csv_parse.c - read a CSV view back into an array (include/csv.h):
 * fields by RFC 4180, values by the text view's converters
 * (parse_scalar.c), output and Fortran order by parse.c's.
 *
 * Invariant: csv_parse(csv_format(a), base = a) == a, byte for byte (the
 * exceptions of format.c).
 *
 * Two passes: the first checks the fields (quotes, the number per record,
 * the header row of a structured array) and counts the records; the
 * second converts.  Errors name the 1-based line where the field starts
 * and, where there is one, its 1-based column.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "parse_internal.h"

/* One field as it stands in the text. */
struct field {
	const char *s;		/* its bytes, quotes included */
	size_t n;
	bool quoted;		/* "..." */
	bool dquote;		/* quoted, with a "" inside */
	bool last;		/* its record ends after it */
};

struct csv {
	struct tp t;		/* text, err, lineno/colno for messages, output */
	const char *p, *end;	/* the scan */
	size_t line;		/* line of p */
	size_t nfields;		/* fields per record */
	char **names;		/* structured: the header row expected */
	size_t nnames;
	struct buf scratch;	/* a field with "" inside, unescaped */
};

/* At a record's start: skip empty lines.  False at the end of the text. */
static bool record_start(struct csv *c)
{
	while (c->p < c->end) {
		if (*c->p == '\n') {
			c->p++;
		} else if (*c->p == '\r' && c->p + 1 < c->end &&
			   c->p[1] == '\n') {
			c->p += 2;
		} else {
			return true;
		}
		c->line++;
	}
	return false;
}

static int fail_at(struct csv *c, size_t line, size_t col, const char *why)
{
	c->t.lineno = line;
	c->t.colno = col;
	return text_fail(&c->t, "%s", why);
}

/* The field at c->p, column col of its record, into *f; c->p moves past
 * its separator.  0 or -EINVAL naming line and column. */
static int next_field(struct csv *c, size_t col, struct field *f)
{
	const char *p = c->p, *e = c->end;
	size_t line0 = c->line;

	f->quoted = f->dquote = false;
	f->s = p;
	if (p < e && *p == '"') {
		const char *q = p + 1;

		for (;;) {
			const char *x = memchr(q, '"', (size_t)(e - q));

			if (!x)
				return fail_at(c, line0, col, "unterminated quoted field");
			for (const char *y = q;
			     (y = memchr(y, '\n', (size_t)(x - y))); y++)
				c->line++;
			if (x + 1 < e && x[1] == '"') {
				f->dquote = true;
				q = x + 2;
				continue;
			}
			q = x + 1;
			break;
		}
		f->quoted = true;
		f->n = (size_t)(q - p);
		p = q;
		if (p + 1 < e && p[0] == '\r' && p[1] == '\n')
			p++;
		if (p < e && *p != ',' && *p != '\n')
			return fail_at(c, c->line, col, "text after a closing quote (a quote inside a quoted field is written \"\")");
	} else {
		while (p < e && *p != ',' && *p != '\n')
			p++;
		f->n = (size_t)(p - f->s);
		if (p < e && *p == '\n' && f->n && p[-1] == '\r')
			f->n--;
	}
	f->last = p >= e || *p == '\n';
	if (p < e) {
		if (*p == '\n')
			c->line++;
		p++;
	}
	c->p = p;
	return 0;
}

/* A field's value: quotes removed, "" made ", and with `trim` spaces and
 * tabs around it dropped.  0 or -ENOMEM. */
static int field_value(struct csv *c, const struct field *f, bool trim,
		       const char **s, size_t *n)
{
	const char *p = f->s, *e = f->s + f->n;

	if (f->quoted) {
		p++;
		e--;
	}
	if (f->dquote) {
		buf_reset(&c->scratch);
		for (; p < e; p++) {
			if (*p == '"')
				p++;
			if (buf_addch(&c->scratch, *p))
				return -ENOMEM;
		}
		p = c->scratch.data;
		e = p + c->scratch.len;
	}
	while (trim && p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (trim && e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*s = p;
	*n = (size_t)(e - p);
	return 0;
}

/* conv_fn of U and S columns: the raw characters (U: strict UTF-8). */
static int conv_raw_str(struct tp *t, const char *s, size_t n,
			unsigned char *dst, const struct npy_dtype *dt)
{
	size_t units = 0, cap;

	if (dt->kind == NPY_BYTES) {
		if (n > dt->itemsize)
			return text_fail_tok(t, s, n, dt, "too long for");
		memcpy(dst, s, n);
		memset(dst + n, 0, dt->itemsize - n);
		return 0;
	}
	cap = dt->itemsize / 4;
	for (size_t i = 0; i < n; units++) {
		uint32_t cp;
		size_t k = npy_utf8_get((const unsigned char *)s + i, n - i, &cp);

		if (!k)
			return text_fail_tok(t, s, n, dt, "is not valid UTF-8 for");
		if (units == cap)
			return text_fail_tok(t, s, n, dt, "too long for");
		text_st32(dst + 4 * units, cp, dt->swapped);
		i += k;
	}
	memset(dst + 4 * units, 0, dt->itemsize - 4 * units);
	return 0;
}

/* Collect the header row's expected names. */
static int add_name(void *ctx, const char *name, size_t len)
{
	struct csv *c = ctx;
	char *s;

	if (c->nfields == c->nnames)
		return -EINVAL;
	s = strndup(name, len);
	if (!s)
		return -ENOMEM;
	c->names[c->nfields++] = s;
	return 0;
}

/* The header row of a structured array: base's column names, in order. */
static int check_names(struct csv *c)
{
	size_t line = c->line;
	struct field f = { .last = false };
	int ret;

	for (size_t k = 0; !f.last; k++) {
		const char *s;
		size_t n;
		char q[TOK_MSG + 4], msg[2 * TOK_MSG + 96];

		ret = next_field(c, k + 1, &f);
		if (!ret && k >= c->nfields)
			return fail_at(c, line, k + 1, "more fields in the header row than the array has columns");
		if (!ret)
			ret = field_value(c, &f, false, &s, &n);
		if (ret)
			return ret;
		if (n != strlen(c->names[k]) || memcmp(s, c->names[k], n)) {
			snprintf(msg, sizeof(msg), "header '%s' is not the column name '%.*s' (the first row names the columns)",
				 text_quote_tok(s, n, q), TOK_MSG, c->names[k]);
			return fail_at(c, line, k + 1, msg);
		}
		if (f.last && k + 1 < c->nfields)
			return fail_at(c, line, 0, "fewer fields in the header row than the array has columns");
	}
	return 0;
}

/* Pass 1: check every record's fields; count the records. */
static int scan_layout(struct csv *c, uint64_t *rows)
{
	struct field f;
	int ret;

	c->p = c->t.text;
	c->line = 1;
	*rows = 0;
	if (c->names && record_start(c)) {
		ret = check_names(c);
		if (ret)
			return ret;
	}
	while (record_start(c)) {
		size_t line = c->line, k = 0;
		char msg[96];

		do {
			ret = next_field(c, k + 1, &f);
			if (ret)
				return ret;
			if (++k > c->nfields) {
				snprintf(msg, sizeof(msg), "more than %zu fields (every row has %zu)",
					 c->nfields, c->nfields);
				return fail_at(c, line, k, msg);
			}
		} while (!f.last);
		if (k < c->nfields) {
			snprintf(msg, sizeof(msg), "%zu field%s, expected %zu (every row has %zu)",
				 k, k == 1 ? "" : "s", c->nfields, c->nfields);
			return fail_at(c, line, 0, msg);
		}
		(*rows)++;
	}
	return 0;
}

/* Pass 2: convert every field into the output. */
static int convert(struct csv *c)
{
	struct tp *t = &c->t;
	unsigned char *elem = NULL;
	struct field f;
	int ret;

	c->p = t->text;
	c->line = 1;
	if (c->names && record_start(c)) {
		do {	/* the header row, checked */
			ret = next_field(c, 1, &f);
		} while (!ret && !f.last);
	}
	while (record_start(c)) {
		f.last = false;
		for (size_t k = 0; !f.last; k++) {
			const struct col *col = &t->cols[t->record ? k : 0];
			size_t line = c->line, n;
			const char *s;

			if (!t->record || !k) {
				if (t->n == t->cap) {
					ret = text_out_flush(t);
					if (ret)
						return ret;
				}
				elem = t->cbuf + t->n * t->isz;
				if (t->record)
					memset(elem, 0, t->isz);
			}
			ret = next_field(c, k + 1, &f);
			if (!ret)
				ret = field_value(c, &f, col->conv != conv_raw_str,
						  &s, &n);
			if (ret)
				return ret;
			t->lineno = line;
			t->colno = k + 1;
			ret = col->conv(t, s, n, elem + col->offset, col->dt);
			if (ret)
				return ret;
			if (!t->record)
				t->n++;
		}
		if (t->record)
			t->n++;
	}
	return text_out_flush(t);
}

/* The columns of dt, strings read raw. */
static int setup_cols(struct csv *c, const struct npy_dtype *dt)
{
	int ret;

	free(c->t.cols);
	c->t.cols = NULL;
	ret = text_setup_cols(&c->t, dt);
	for (size_t i = 0; !ret && i < c->t.ncols; i++)
		if (c->t.cols[i].dt->kind == NPY_STR ||
		    c->t.cols[i].dt->kind == NPY_BYTES)
			c->t.cols[i].conv = conv_raw_str;
	return ret;
}

/* Columns, header names and fields per record from base. */
static int setup(struct csv *c, const struct npy_header *base)
{
	const struct npy_dtype *dt = &base->dtype;
	int ret = setup_cols(c, dt);

	if (ret)
		return ret;
	if (!c->t.record) {
		c->nfields = base->ndim == 2 ? (size_t)base->shape[1] : 1;
		return 0;
	}
	c->names = calloc(c->t.ncols, sizeof(*c->names));
	if (!c->names)
		return -ENOMEM;
	c->nnames = c->t.ncols;
	return text_column_names(dt, add_name, c);
}

int csv_parse(const char *text, size_t len, const struct npy_header *base,
	      struct npy_header *hdr, const struct text_out *out,
	      struct npz_err *err)
{
	struct csv c = { .t = { .text = len ? text : "", .len = len,
				.err = err, .out = out } };
	uint64_t shape[2], rows;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	c.end = c.t.text + len;
	buf_init(&c.scratch);
	if (!base) {
		npz_err_set(err, "a CSV file holds no dtype: write a new array as NAME.npy or NAME.txt (the CSV view of an array takes its dtype)");
		return -EINVAL;
	}
	if (!csv_viewable(base)) {
		npz_err_set(err, "the array has no CSV view (only 1-d and 2-d arrays and 1-d structured arrays have one)");
		return -EINVAL;
	}
	ret = setup(&c, base);
	if (!ret)
		ret = scan_layout(&c, &rows);
	if (!ret) {
		shape[0] = rows;
		shape[1] = base->ndim == 2 ? base->shape[1] : 0;
		ret = npy_header_init(hdr, &base->dtype, base->ndim, shape,
				      base->fortran_order);
		if (ret == -EINVAL)
			npz_err_set(err, "array too large");
	}
	if (!ret) {
		/* the columns pointed into base: point them into hdr */
		ret = setup_cols(&c, &hdr->dtype);
	}
	if (!ret) {
		c.t.hdr = hdr;
		ret = text_out_setup(&c.t);
	}
	if (!ret)
		ret = out->begin(out->ctx, hdr);
	if (!ret)
		ret = convert(&c);
	for (size_t i = 0; i < c.nnames; i++)
		free(c.names[i]);
	free(c.names);
	free(c.t.cols);
	free(c.t.cbuf);
	free(c.t.fbuf);
	buf_release(&c.scratch);
	if (ret)
		npy_header_release(hdr);
	return ret;
}
