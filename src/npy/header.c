/* header.c - read .npy headers (versions 1.0, 2.0, 3.0) into struct
 * npy_header; copy and release them.
 *
 * Invariants: every parser accepts arbitrary bytes and fails with -EINVAL
 * and a message, never reads past len.  Versions 1.0 and 2.0 are latin-1,
 * 3.0 is UTF-8, and all text kept in a header (descr, dict, names) is
 * UTF-8.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "npy_internal.h"

const char npy_magic[NPY_MAGIC_LEN] = "\x93NUMPY";

void npy_header_release(struct npy_header *hdr)
{
	npy_dtype_release(&hdr->dtype);
	free(hdr->descr);
	free(hdr->dict);
	memset(hdr, 0, sizeof(*hdr));
}

int npy_header_copy(struct npy_header *dst, const struct npy_header *src)
{
	*dst = *src;
	memset(&dst->dtype, 0, sizeof(dst->dtype));
	dst->descr = NULL;
	dst->dict = NULL;
	if (npy_dtype_copy(&dst->dtype, &src->dtype) ||
	    (src->descr && !(dst->descr = strdup(src->descr))) ||
	    (src->dict && !(dst->dict = strdup(src->dict)))) {
		npy_header_release(dst);
		return -ENOMEM;
	}
	return 0;
}

/* count and data_len from shape and itemsize; -EINVAL on overflow. */
int npy_header_set_count(struct npy_header *hdr)
{
	uint64_t count = 1;
	bool zero = false;
	int i;

	for (i = 0; i < hdr->ndim; i++) {
		if (hdr->shape[i] > INT64_MAX)
			return -EINVAL;
		if (!hdr->shape[i])
			zero = true;
		else if (count > INT64_MAX / hdr->shape[i])
			count = UINT64_MAX;	/* overflow, unless empty */
		else
			count *= hdr->shape[i];
	}
	if (zero)
		count = 0;
	if (count > INT64_MAX ||
	    (hdr->dtype.itemsize && count > INT64_MAX / hdr->dtype.itemsize))
		return -EINVAL;
	hdr->count = count;
	hdr->data_len = count * hdr->dtype.itemsize;
	return 0;
}

/* Copy text to a new UTF-8 string, reading it as latin-1 if asked. */
static char *text_dup(const unsigned char *s, size_t len, bool latin1)
{
	struct buf b = BUF_INIT;
	size_t i;

	if (!latin1) {
		if (buf_add(&b, s, len))
			return NULL;
	} else {
		for (i = 0; i < len; i++) {
			if (npy_utf8_put(&b, s[i])) {
				buf_release(&b);
				return NULL;
			}
		}
	}
	return buf_detach(&b, NULL);
}


/* Fill hdr from a parsed dict literal (hdr zeroed; on error the caller
 * releases it). */
static int header_from_lit(struct lp *p, const struct lit *d,
			   struct npy_header *hdr)
{
	static const char *const keys[] = { "descr", "fortran_order", "shape" };
	const struct lit *vals[3] = { NULL, NULL, NULL }, *k, *v;
	char q[MSG_QUOTE_SIZE];
	size_t i, j;
	int ret;

	if (d->type != LIT_DICT)
		return npy_lp_fail(p, d->start, "expected a dict");
	for (i = 0; i < d->n; i += 2) {
		k = &d->kids[i];
		if (k->type != LIT_STR)
			return npy_lp_fail(p, k->start, "expected a string key");
		for (j = 0; j < 3 && strcmp(k->str, keys[j]); j++)
			;
		if (j == 3)
			return npy_lp_fail(p, k->start, "unexpected key '%s'",
					   npy_msg_quote(q, k->str, k->slen));
		if (vals[j])
			return npy_lp_fail(p, k->start, "duplicate key '%s'", keys[j]);
		vals[j] = &d->kids[i + 1];
	}
	for (j = 0; j < 3; j++)
		if (!vals[j])
			return npy_lp_fail(p, d->end - 1, "missing key '%s'", keys[j]);

	p->ctx = "fortran_order";
	v = vals[1];
	if (v->type != LIT_TRUE && v->type != LIT_FALSE)
		return npy_lp_fail(p, v->start, "expected True or False");
	hdr->fortran_order = v->type == LIT_TRUE;

	p->ctx = "shape";
	v = vals[2];
	if (v->type != LIT_TUPLE)
		return npy_lp_fail(p, v->start, "expected a tuple");
	if (v->n > NPY_MAXDIMS)
		return npy_lp_fail(p, v->start, "too many dimensions (%zu)", v->n);
	for (i = 0; i < v->n; i++) {
		k = &v->kids[i];
		if (k->type != LIT_INT)
			return npy_lp_fail(p, k->start, "expected an integer");
		if (k->neg && (k->mag || k->big))
			return npy_lp_fail(p, k->start, "negative dimension");
		if (k->big) {
			npz_err_set(p->err, "shape overflow");
			return -EINVAL;
		}
		hdr->shape[i] = k->mag;
	}
	hdr->ndim = (int)v->n;

	p->ctx = "descr";
	ret = npy_dtype_from_lit(p, vals[0], &hdr->dtype);
	p->ctx = NULL;
	if (ret)
		return ret;
	if (npy_header_set_count(hdr)) {
		npz_err_set(p->err, "shape overflow");
		return -EINVAL;
	}
	hdr->descr = text_dup(p->s + vals[0]->start, vals[0]->end - vals[0]->start,
			      p->latin1);
	hdr->dict = text_dup(p->s + d->start, d->end - d->start, p->latin1);
	if (!hdr->descr || !hdr->dict)
		return -ENOMEM;
	return 0;
}

static int parse_dict(struct lp *p, struct npy_header *hdr)
{
	struct lit d;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	npy_lp_skip_ws(p);
	if (p->pos >= p->len || p->s[p->pos] != '{')
		return npy_lp_fail(p, p->pos, "expected '{'");
	ret = npy_lp_parse(p, &d);
	if (ret)
		return ret;
	ret = header_from_lit(p, &d, hdr);
	npy_lit_free(&d);
	if (ret)
		npy_header_release(hdr);
	return ret;
}

int npy_header_parse_dict(const char *dict, size_t len, struct npy_header *hdr,
			  struct npz_err *err)
{
	struct lp p = { .s = (const unsigned char *)dict, .len = len, .err = err };

	return parse_dict(&p, hdr);
}

int npy_header_size(const void *data, size_t len, size_t *total,
		    struct npz_err *err)
{
	const unsigned char *s = data;
	size_t prefix, hlen;

	if (len && memcmp(s, npy_magic, len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN)) {
		npz_err_set(err, "bad magic");
		return -EINVAL;
	}
	if (len < NPY_MAGIC_LEN + 2) {
		npz_err_set(err, "truncated magic (%zu bytes)", len);
		return -EINVAL;
	}
	if ((s[6] != 1 && s[6] != 2 && s[6] != 3) || s[7] != 0) {
		npz_err_set(err, "unsupported version %u.%u", s[6], s[7]);
		return -EINVAL;
	}
	prefix = s[6] == 1 ? 10 : 12;
	if (len < prefix) {
		npz_err_set(err, "truncated header length (%zu bytes)", len);
		return -EINVAL;
	}
	hlen = (size_t)s[8] | (size_t)s[9] << 8;
	if (prefix == 12)
		hlen |= (size_t)s[10] << 16 | (size_t)s[11] << 24;
	if (hlen > NPY_HEADER_MAX) {
		npz_err_set(err, "header length %zu too large", hlen);
		return -EINVAL;
	}
	if (len < NPY_PREFIX_MAX && prefix + hlen > len) {
		npz_err_set(err, "header length %zu past end of file (%zu bytes)",
			    hlen, len);
		return -EINVAL;
	}
	*total = prefix + hlen;
	return 0;
}

int npy_header_parse(const void *data, size_t len, struct npy_header *hdr,
		     struct npz_err *err)
{
	const unsigned char *s = data;
	struct lp p = { .err = err };
	size_t total;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	ret = npy_header_size(data, len, &total, err);
	if (ret)
		return ret;
	if (total > len) {
		npz_err_set(err, "header length %zu past end of file (%zu bytes)",
			    total - (s[6] == 1 ? 10 : 12), len);
		return -EINVAL;
	}
	p.base = s[6] == 1 ? 10 : 12;
	p.s = s + p.base;
	p.len = total - p.base;
	p.latin1 = s[6] < 3;
	p.no_long = !p.latin1;
	if (!p.latin1) {
		/* 3.0 is UTF-8 throughout, padding included */
		size_t i, n;
		uint32_t c;

		for (i = 0; i < p.len; i += n) {
			n = npy_utf8_get(p.s + i, p.len - i, &c);
			if (!n) {
				npz_err_set(err, "invalid UTF-8 at byte %zu", p.base + i);
				return -EINVAL;
			}
		}
	}
	ret = parse_dict(&p, hdr);
	if (ret)
		return ret;
	hdr->major = s[6];
	hdr->minor = 0;
	hdr->header_len = total;
	return 0;
}

int npy_check_data_len(const struct npy_header *hdr, uint64_t size,
		       bool exact, struct npz_err *err)
{
	uint64_t have = size - hdr->header_len;

	if (size < hdr->header_len) {
		npz_err_set(err, "%llu bytes end inside the %zu-byte header",
			    (unsigned long long)size, hdr->header_len);
		return -EINVAL;
	}
	if (npy_dtype_has_object(&hdr->dtype) || have == hdr->data_len ||
	    (!exact && have > hdr->data_len))
		return 0;
	npz_err_set(err, "data length %llu does not match the header (%llu bytes for shape and dtype)",
		    (unsigned long long)have, (unsigned long long)hdr->data_len);
	return -EINVAL;
}
