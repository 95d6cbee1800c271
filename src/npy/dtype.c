/* dtype.c - the dtype model: type strings and descr lists to struct
 * npy_dtype, copy and release.
 *
 * Invariant: a parsed record has its fields in order, without overlaps,
 * padding entries ('', '|V4') folded into offsets, and no name used twice.
 * Assumes a little-endian host: '=' and '|' read as '<'.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "npy_internal.h"

static const char *const unit_names[] = {
	"", "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
};

const char *npy_unit_name(enum npy_unit unit)
{
	if ((unsigned)unit >= sizeof(unit_names) / sizeof(unit_names[0]))
		return "";
	return unit_names[unit];
}

static void field_release(struct npy_field *f)
{
	free(f->name);
	free(f->title);
	free(f->shape);
	npy_dtype_release(&f->type);
}

void npy_dtype_release(struct npy_dtype *dt)
{
	size_t i;

	for (i = 0; i < dt->nfields; i++)
		field_release(&dt->fields[i]);
	free(dt->fields);
	memset(dt, 0, sizeof(*dt));
}

int npy_dtype_copy(struct npy_dtype *dst, const struct npy_dtype *src)
{
	struct npy_field *f;
	const struct npy_field *s;
	size_t i;

	*dst = *src;
	dst->nfields = 0;
	dst->fields = NULL;
	if (!src->nfields)
		return 0;
	dst->fields = calloc(src->nfields, sizeof(*dst->fields));
	if (!dst->fields)
		goto out_nomem;
	for (i = 0; i < src->nfields; i++) {
		s = &src->fields[i];
		f = &dst->fields[i];
		dst->nfields++;
		*f = *s;
		f->name = NULL;
		f->title = NULL;
		f->shape = NULL;
		memset(&f->type, 0, sizeof(f->type));
		if (npy_dtype_copy(&f->type, &s->type))
			goto out_nomem;
		f->name = strdup(s->name ? s->name : "");
		if (!f->name)
			goto out_nomem;
		if (s->title && !(f->title = strdup(s->title)))
			goto out_nomem;
		if (s->ndim > 0) {
			f->shape = malloc((size_t)s->ndim * sizeof(*f->shape));
			if (!f->shape)
				goto out_nomem;
			memcpy(f->shape, s->shape, (size_t)s->ndim * sizeof(*f->shape));
		}
	}
	return 0;

out_nomem:
	npy_dtype_release(dst);
	return -ENOMEM;
}

bool npy_dtype_has_object(const struct npy_dtype *dt)
{
	size_t i;

	if (dt->kind == NPY_OBJECT)
		return true;
	for (i = 0; i < dt->nfields; i++)
		if (npy_dtype_has_object(&dt->fields[i].type))
			return true;
	return false;
}

static int parse_unit(const char *s, size_t len, struct npy_dtype *dt)
{
	size_t i = 0, u;
	int64_t mult = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		mult = mult * 10 + (s[i++] - '0');
		if (mult > INT32_MAX)
			return -EINVAL;
	}
	if (i > 0 && mult == 0)
		return -EINVAL;
	if (len - i == 7 && !memcmp(s + i, "generic", 7) && i == 0) {
		dt->unit = NPY_UNIT_GENERIC;
		dt->unit_mult = 1;
		return 0;
	}
	for (u = 1; u < sizeof(unit_names) / sizeof(unit_names[0]); u++) {
		if (strlen(unit_names[u]) == len - i &&
		    !memcmp(s + i, unit_names[u], len - i)) {
			dt->unit = (enum npy_unit)u;
			dt->unit_mult = i ? mult : 1;
			return 0;
		}
	}
	return -EINVAL;
}

/* Type codes and their sizes: a bit mask, or FLEXIBLE (any size, "S3"), or
 * ONLY_8 (8, which may be left out: "O", "M8[ns]"). */
#define FLEXIBLE 0
#define ONLY_8 1
#define SZ(n) (1ull << (n))
static const struct {
	char c;
	enum npy_kind kind;
	uint64_t sizes;
} type_codes[] = {
	{ 'b', NPY_BOOL, SZ(1) },
	{ 'i', NPY_INT, SZ(1) | SZ(2) | SZ(4) | SZ(8) },
	{ 'u', NPY_UINT, SZ(1) | SZ(2) | SZ(4) | SZ(8) },
	{ 'f', NPY_FLOAT, SZ(2) | SZ(4) | SZ(8) | SZ(12) | SZ(16) },
	{ 'c', NPY_COMPLEX, SZ(8) | SZ(16) | SZ(24) | SZ(32) },
	{ 'S', NPY_BYTES, FLEXIBLE },
	{ 'U', NPY_STR, FLEXIBLE },
	{ 'V', NPY_VOID, FLEXIBLE },
	{ 'O', NPY_OBJECT, ONLY_8 },
	{ 'M', NPY_DATETIME, ONLY_8 },
	{ 'm', NPY_TIMEDELTA, ONLY_8 },
};
#undef SZ

int npy_dtype_parse_str(const char *s, size_t len, struct npy_dtype *dt,
			struct npz_err *err)
{
	struct npy_dtype d = { 0 };
	size_t i = 0, size = 0, close, k;
	bool has_size = false, ok;
	char order = '<', kind;
	char q[MSG_QUOTE_SIZE];

	memset(dt, 0, sizeof(*dt));
	if (i < len && strchr("<>|=", s[i]) && s[i])
		order = s[i++];
	if (i >= len)
		goto out_unknown;
	kind = s[i++];
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (size > (SIZE_MAX / 4 - 9) / 10)
			goto out_unknown;
		size = size * 10 + (size_t)(s[i++] - '0');
		has_size = true;
	}
	for (k = 0; k < sizeof(type_codes) / sizeof(type_codes[0]); k++)
		if (type_codes[k].c == kind)
			break;
	if (k == sizeof(type_codes) / sizeof(type_codes[0]))
		goto out_unknown;
	d.kind = type_codes[k].kind;
	d.unit_mult = 1;
	if (type_codes[k].sizes == FLEXIBLE)
		ok = has_size;
	else if (type_codes[k].sizes == ONLY_8)
		ok = !has_size || size == 8;
	else
		ok = size < 64 && (type_codes[k].sizes >> size & 1);
	if (type_codes[k].sizes == ONLY_8)
		size = 8;
	if (d.kind == NPY_STR)
		size *= 4;
	if (!ok || (!has_size && i < len))
		goto out_unknown;
	if (i < len && s[i] == '[' &&
	    (d.kind == NPY_DATETIME || d.kind == NPY_TIMEDELTA)) {
		for (close = i + 1; close < len && s[close] != ']'; close++)
			;
		if (close + 1 != len || parse_unit(s + i + 1, close - i - 1, &d)) {
			npz_err_set(err, "bad datetime unit '%s'", npy_msg_quote(q, s, len));
			return -EINVAL;
		}
		i = len;
	}
	if (i != len)
		goto out_unknown;
	d.itemsize = size;
	if (d.kind == NPY_BOOL || d.kind == NPY_BYTES || d.kind == NPY_VOID ||
	    d.kind == NPY_OBJECT || size == 1)
		d.order = '|';
	else
		d.order = order == '>' ? '>' : '<';
	d.swapped = d.order == '>';
	*dt = d;
	return 0;

out_unknown:
	npz_err_set(err, "unknown dtype '%s'", npy_msg_quote(q, s, len));
	return -EINVAL;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reject a name used twice as a field name or title. */
static int check_names(struct lp *p, const struct lit *v,
		       const struct npy_dtype *dt)
{
	const char **names, *dup = NULL;
	char q[MSG_QUOTE_SIZE];
	size_t i, n = 0;

	names = malloc(2 * dt->nfields * sizeof(*names) + 1);
	if (!names)
		return -ENOMEM;
	for (i = 0; i < dt->nfields; i++) {
		names[n++] = dt->fields[i].name;
		if (dt->fields[i].title)
			names[n++] = dt->fields[i].title;
	}
	qsort(names, n, sizeof(*names), str_cmp);
	for (i = 1; i < n && !dup; i++)
		if (!strcmp(names[i - 1], names[i]))
			dup = names[i];
	if (dup)
		npy_lp_fail(p, v->start, "duplicate field name '%s'",
			    npy_msg_quote(q, dup, strlen(dup)));
	free(names);
	return dup ? -EINVAL : 0;
}

static int subshape_from_lit(struct lp *p, const struct lit *v,
			     struct npy_field *f)
{
	const struct lit *dims = v->type == LIT_TUPLE ? v->kids : v;
	size_t i, n = v->type == LIT_TUPLE ? v->n : 1;

	if (v->type != LIT_TUPLE && v->type != LIT_INT)
		return npy_lp_fail(p, v->start, "expected a subarray shape");
	if (n > NPY_MAXDIMS)
		return npy_lp_fail(p, v->start, "too many dimensions");
	f->count = 1;
	if (!n)
		return 0;
	f->shape = calloc(n, sizeof(*f->shape));
	if (!f->shape)
		return -ENOMEM;
	f->ndim = (int)n;
	for (i = 0; i < n; i++) {
		if (dims[i].type != LIT_INT)
			return npy_lp_fail(p, dims[i].start, "expected an integer");
		if (dims[i].neg && (dims[i].mag || dims[i].big))
			return npy_lp_fail(p, dims[i].start, "negative dimension");
		if (dims[i].big || dims[i].mag > INT64_MAX ||
		    (dims[i].mag && f->count > INT64_MAX / dims[i].mag))
			return npy_lp_fail(p, dims[i].start, "shape overflow");
		f->shape[i] = dims[i].mag;
		f->count *= dims[i].mag;
	}
	return 0;
}

static int record_from_lit(struct lp *p, const struct lit *v,
			   struct npy_dtype *dt)
{
	const struct lit *t, *name, *title;
	struct npy_field *f;
	size_t i, offset = 0, size;
	int ret;

	dt->kind = NPY_RECORD;
	dt->order = '|';
	dt->unit_mult = 1;
	if (v->n) {
		dt->fields = calloc(v->n, sizeof(*dt->fields));
		if (!dt->fields)
			return -ENOMEM;
	}
	for (i = 0; i < v->n; i++) {
		t = &v->kids[i];
		if (t->type != LIT_TUPLE || t->n < 2 || t->n > 3)
			return npy_lp_fail(p, t->start, "expected a (name, format) tuple");
		name = &t->kids[0];
		title = NULL;
		if (name->type == LIT_TUPLE && name->n == 2 &&
		    name->kids[0].type == LIT_STR) {
			title = &name->kids[0];
			name = &name->kids[1];
		}
		if (name->type != LIT_STR)
			return npy_lp_fail(p, name->start, "expected a field name");
		f = &dt->fields[dt->nfields];
		memset(f, 0, sizeof(*f));
		ret = npy_dtype_from_lit(p, &t->kids[1], &f->type);
		if (!ret && t->n == 3)
			ret = subshape_from_lit(p, &t->kids[2], f);
		else
			f->count = 1;
		if (!ret && f->type.itemsize && f->count > SIZE_MAX / f->type.itemsize)
			ret = npy_lp_fail(p, t->start, "record too large");
		if (ret) {
			field_release(f);
			return ret;
		}
		size = f->type.itemsize * f->count;
		if (size > SIZE_MAX - offset) {
			field_release(f);
			return npy_lp_fail(p, t->start, "record too large");
		}
		if (!name->slen && !title && f->type.kind == NPY_VOID) {
			/* ('', '|V4'): padding, as numpy writes for gaps */
			field_release(f);
			offset += size;
			continue;
		}
		if (!name->slen) {
			field_release(f);
			return npy_lp_fail(p, name->start, "empty field name");
		}
		f->name = strdup(name->str);
		f->title = title ? strdup(title->str) : NULL;
		f->offset = offset;
		dt->nfields++;
		if (!f->name || (title && !f->title))
			return -ENOMEM;
		offset += size;
	}
	dt->itemsize = offset;
	return check_names(p, v, dt);
}

int npy_dtype_from_lit(struct lp *p, const struct lit *v, struct npy_dtype *dt)
{
	int ret;

	memset(dt, 0, sizeof(*dt));
	if (v->type == LIT_STR) {
		return npy_dtype_parse_str(v->str, v->slen, dt, p->err);
	}
	if (v->type != LIT_LIST)
		return npy_lp_fail(p, v->start, "expected a type string or a list");
	ret = record_from_lit(p, v, dt);
	if (ret)
		npy_dtype_release(dt);
	return ret;
}

int npy_dtype_parse(const char *text, size_t len, struct npy_dtype *dt,
		    struct npz_err *err)
{
	struct lp p = { .s = (const unsigned char *)text, .len = len, .err = err };
	struct lit v;
	int ret;

	memset(dt, 0, sizeof(*dt));
	ret = npy_lp_parse(&p, &v);
	if (ret)
		return ret;
	ret = npy_dtype_from_lit(&p, &v, dt);
	npy_lit_free(&v);
	return ret;
}
