/* dtype.c - dtypes as the text view sees them: which have a view, their
 * names in messages, their leaf columns, the size bound of a view; and what
 * rendering and parsing share (the C locale, the Fortran band size).
 *
 * Invariant: text_check_dtype() accepts exactly the dtypes that
 * text_format() renders and text_parse() reads.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "text_internal.h"

size_t text_band_bytes = 32u << 20;

void text_band_transpose(const struct npy_header *h, size_t isz, size_t k,
			 uint64_t rest, unsigned char *fb, unsigned char *cb,
			 bool to_c)
{
	uint64_t idx[NPY_MAXDIMS], fs[NPY_MAXDIMS];
	int nd = h->ndim, j;

	fs[1] = 1;
	for (j = 2; j < nd; j++)
		fs[j] = fs[j - 1] * h->shape[j - 1];
	for (size_t i0 = 0; i0 < k; i0++) {
		unsigned char *c = cb + i0 * rest * isz;
		uint64_t r = 0;

		memset(idx, 0, sizeof(idx));
		for (uint64_t n = 0; n < rest; n++, c += isz) {
			unsigned char *f = fb + (r * k + i0) * isz;

			memcpy(to_c ? c : f, to_c ? f : c, isz);
			for (j = nd - 1; j >= 1; j--) {	/* next C index */
				r += fs[j];
				if (++idx[j] < h->shape[j])
					break;
				r -= fs[j] * h->shape[j];
				idx[j] = 0;
			}
		}
	}
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
	c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

locale_t text_c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_init);
	return c_locale_obj ? c_locale_obj : LC_GLOBAL_LOCALE;
}

static int add_leaves(const struct npy_dtype *dt, size_t base,
		      struct text_leaf **v, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *f = &dt->fields[i];
		for (uint64_t j = 0; j < f->count; j++) {
			size_t off = base + f->offset + (size_t)j * f->type.itemsize;
			int ret;

			if (f->type.kind == NPY_RECORD) {
				ret = add_leaves(&f->type, off, v, n, cap);
				if (ret)
					return ret;
				continue;
			}
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 16;
				struct text_leaf *nv;

				if (*n >= TEXT_MAX_LEAVES)
					return -EINVAL;
				nv = realloc(*v, nc * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				*v = nv;
				*cap = nc;
			}
			(*v)[*n].dt = &f->type;
			(*v)[*n].offset = off;
			(*n)++;
		}
	}
	return 0;
}

int text_leaves(const struct npy_dtype *dt, struct text_leaf **leaves,
		size_t *n)
{
	size_t cap = 0;
	int ret;

	*leaves = NULL;
	*n = 0;
	ret = add_leaves(dt, 0, leaves, n, &cap);
	if (ret) {
		free(*leaves);
		*leaves = NULL;
		*n = 0;
	}
	return ret;
}

void text_dtype_name(const struct npy_dtype *dt, char *out, size_t size)
{
	static const char *const units[] = { "", "Y", "M", "W", "D", "h", "m",
		"s", "ms", "us", "ns", "ps", "fs", "as" };
	const char *u = (unsigned)dt->unit < sizeof(units) / sizeof(units[0]) ?
			units[dt->unit] : "?";
	size_t bits = dt->itemsize * 8;

	switch (dt->kind) {
	case NPY_BOOL: snprintf(out, size, "bool"); break;
	case NPY_INT: snprintf(out, size, "int%zu", bits); break;
	case NPY_UINT: snprintf(out, size, "uint%zu", bits); break;
	case NPY_FLOAT: snprintf(out, size, "float%zu", bits); break;
	case NPY_COMPLEX: snprintf(out, size, "complex%zu", bits); break;
	case NPY_BYTES: snprintf(out, size, "S%zu", dt->itemsize); break;
	case NPY_STR: snprintf(out, size, "U%zu", dt->itemsize / 4); break;
	case NPY_VOID: snprintf(out, size, "V%zu", dt->itemsize); break;
	case NPY_DATETIME:
	case NPY_TIMEDELTA:
		if (dt->unit == NPY_UNIT_GENERIC)
			snprintf(out, size, "%s",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64");
		else if (dt->unit_mult != 1)
			snprintf(out, size, "%s[%" PRId64 "%s]",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64",
				 dt->unit_mult, u);
		else
			snprintf(out, size, "%s[%s]",
				 dt->kind == NPY_DATETIME ? "datetime64" : "timedelta64", u);
		break;
	case NPY_OBJECT: snprintf(out, size, "object"); break;
	default: snprintf(out, size, "record"); break;
	}
}

bool text_scalar_ok(const struct npy_dtype *dt)
{
	size_t s = dt->itemsize;

	switch (dt->kind) {
	case NPY_BOOL: return s == 1;
	case NPY_INT:
	case NPY_UINT: return s == 1 || s == 2 || s == 4 || s == 8;
	case NPY_FLOAT: return s == 2 || s == 4 || s == 8 ||
			((s == 12 || s == 16) && LDBL_MANT_DIG == 64);
	case NPY_COMPLEX: return s == 8 || s == 16 ||
			  ((s == 24 || s == 32) && LDBL_MANT_DIG == 64);
	case NPY_BYTES:
	case NPY_VOID: return true;
	case NPY_STR: return s % 4 == 0;
	case NPY_DATETIME:
	case NPY_TIMEDELTA: return s == 8;
	default: return false;
	}
}

static int check_scalars(const struct npy_dtype *dt, struct npz_err *err)
{
	char name[48];

	if (dt->kind == NPY_RECORD) {
		for (size_t i = 0; i < dt->nfields; i++) {
			int ret = check_scalars(&dt->fields[i].type, err);

			if (ret)
				return ret;
		}
		return 0;
	}
	if (!text_scalar_ok(dt)) {
		text_dtype_name(dt, name, sizeof(name));
		npz_err_set(err, "unsupported dtype %s", name);
		return -EINVAL;
	}
	return 0;
}

int text_check_dtype(const struct npy_dtype *dt, uint64_t count,
		     struct npz_err *err)
{
	if (npy_dtype_has_object(dt)) {
		npz_err_set(err, "object arrays have no text view");
		return -EINVAL;
	}
	if (dt->itemsize > TEXT_MAX_ITEMSIZE) {
		npz_err_set(err, "elements of %zu bytes have no text view",
			    dt->itemsize);
		return -EINVAL;
	}
	if (!dt->itemsize && count > TEXT_MAX_EMPTY_COUNT) {
		npz_err_set(err, "too many elements of size 0");
		return -EINVAL;
	}
	return check_scalars(dt, err);
}


/* ---- Size bound ---------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The widest text of one element of dt, its separator included. */
static uint64_t elem_bound(const struct npy_dtype *dt)
{
	uint64_t w = 0;

	switch (dt->kind) {
	case NPY_BOOL:
		return 6;			/* "False " */
	case NPY_INT:
	case NPY_UINT:
		return dt->itemsize <= 1 ? 5 : dt->itemsize <= 2 ? 7 :
		       dt->itemsize <= 4 ? 12 : 21;
	case NPY_FLOAT:				/* "-2.2250738585072014e-308" */
		return dt->itemsize <= 2 ? 11 : dt->itemsize <= 4 ? 17 :
		       dt->itemsize <= 8 ? 26 : 48;
	case NPY_COMPLEX:
		return dt->itemsize <= 8 ? 34 : dt->itemsize <= 16 ? 52 : 96;
	case NPY_BYTES:				/* b"\xNN..." */
		return sat_add(4, sat_mul(dt->itemsize, 4));
	case NPY_STR:				/* "\U0010ffff..." */
		return sat_add(3, sat_mul(dt->itemsize / 4, 10));
	case NPY_VOID:
		return sat_add(3, sat_mul(dt->itemsize, 2));
	case NPY_DATETIME:
		return 48;
	case NPY_TIMEDELTA:
		return 21;
	case NPY_RECORD:
		for (size_t i = 0; i < dt->nfields; i++)
			w = sat_add(w, sat_mul(dt->fields[i].count,
					       elem_bound(&dt->fields[i].type)));
		return w ? w : 1;
	default:
		return UINT64_MAX;
	}
}

/* The widest "# columns:" line of a record dtype, names under a prefix of
 * plen bytes. */
static uint64_t columns_bound(const struct npy_dtype *dt, uint64_t plen)
{
	uint64_t w = 0;

	for (size_t i = 0; i < dt->nfields; i++) {
		const struct npy_field *fl = &dt->fields[i];
		uint64_t name = sat_add(plen, sat_add(4 * strlen(fl->name),
					(uint64_t)fl->ndim * 21 + 2));

		w = sat_add(w, sat_mul(fl->count, fl->type.kind == NPY_RECORD ?
				       columns_bound(&fl->type, name + 1) :
				       name + 1));
	}
	return w;
}

uint64_t text_size_bound(const struct npy_header *hdr)
{
	uint64_t b, slices = 0, dict;

	dict = hdr->dict ? strlen(hdr->dict) : hdr->header_len + 128;
	b = sat_add(dict, 4);
	if (hdr->dtype.kind == NPY_RECORD)
		b = sat_add(b, sat_add(12, columns_bound(&hdr->dtype, 0)));
	b = sat_add(b, sat_mul(hdr->count, elem_bound(&hdr->dtype)));
	if (hdr->ndim >= 3 && hdr->shape[hdr->ndim - 1] &&
	    hdr->shape[hdr->ndim - 2])
		slices = hdr->count / (hdr->shape[hdr->ndim - 1] *
				       hdr->shape[hdr->ndim - 2]);
	return sat_add(b, sat_mul(slices, (uint64_t)hdr->ndim * 22 + 8));
}

bool text_viewable(const struct npy_header *hdr)
{
	return !text_check_dtype(&hdr->dtype, hdr->count, NULL);
}
