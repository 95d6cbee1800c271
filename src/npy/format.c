/* format.c - write headers and descrs byte-identical to numpy (1.24's
 * np.save): the dict, the version, 64-byte alignment with numpy's
 * growth-axis spaces.
 *
 * Invariant: npy_header_format() of a header numpy wrote gives back
 * numpy's bytes.
 */
#include <errno.h>
#include <string.h>

#include "npy_internal.h"

#define ARRAY_ALIGN 64		/* numpy's format.ARRAY_ALIGN */
#define GROWTH_AXIS_MAX_DIGITS 21

/* Append repr(s) for a UTF-8 string s, as Python 3 writes it. */
static int py_repr_str(const char *str, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), i, n;
	char q = '\'';
	uint32_t c;
	int ret = 0;

	if (strchr(str, '\'') && !strchr(str, '"'))
		q = '"';
	ret = buf_addch(out, q);
	for (i = 0; i < len && !ret; i += n) {
		n = npy_utf8_get(s + i, len - i, &c);
		if (!n)
			return -EINVAL;
		if (c == (uint32_t)q || c == '\\')
			ret = buf_addf(out, "\\%c", (char)c);
		else if (c == '\t')
			ret = buf_adds(out, "\\t");
		else if (c == '\n')
			ret = buf_adds(out, "\\n");
		else if (c == '\r')
			ret = buf_adds(out, "\\r");
		else if (c < 0x20 || c == 0x7f)
			ret = buf_addf(out, "\\x%02x", (unsigned)c);
		else if (c < 0x7f || npy_py_printable(c))
			ret = buf_add(out, s + i, n);
		else if (c <= 0xff)
			ret = buf_addf(out, "\\x%02x", (unsigned)c);
		else if (c <= 0xffff)
			ret = buf_addf(out, "\\u%04x", (unsigned)c);
		else
			ret = buf_addf(out, "\\U%08x", (unsigned)c);
	}
	return ret ? ret : buf_addch(out, q);
}

int npy_shape_format(int ndim, const uint64_t *shape, struct buf *out)
{
	int i, ret;

	ret = buf_addch(out, '(');
	for (i = 0; i < ndim && !ret; i++)
		ret = buf_addf(out, i ? ", %llu" : "%llu", (unsigned long long)shape[i]);
	if (!ret && ndim == 1)
		ret = buf_addch(out, ',');
	return ret ? ret : buf_addch(out, ')');
}

/* The type string without quotes: "<f8", "|S3", "<M8[10s]". */
static int format_typestr(const struct npy_dtype *dt, struct buf *out)
{
	static const char kinds[] = {
		[NPY_BOOL] = 'b', [NPY_INT] = 'i', [NPY_UINT] = 'u',
		[NPY_FLOAT] = 'f', [NPY_COMPLEX] = 'c', [NPY_BYTES] = 'S',
		[NPY_STR] = 'U', [NPY_VOID] = 'V', [NPY_DATETIME] = 'M',
		[NPY_TIMEDELTA] = 'm', [NPY_OBJECT] = 'O',
	};
	char order = dt->order;
	int ret;

	if ((unsigned)dt->kind >= sizeof(kinds) || !kinds[dt->kind])
		return -EINVAL;
	if (dt->kind == NPY_BOOL || dt->kind == NPY_BYTES || dt->kind == NPY_VOID ||
	    dt->kind == NPY_OBJECT || dt->itemsize == 1)
		order = '|';
	else if (order != '>')
		order = '<';
	if (dt->kind == NPY_OBJECT)
		return buf_adds(out, "|O");
	ret = buf_addf(out, "%c%c%zu", order, kinds[dt->kind],
		       dt->kind == NPY_STR ? dt->itemsize / 4 : dt->itemsize);
	if (ret || (dt->kind != NPY_DATETIME && dt->kind != NPY_TIMEDELTA) ||
	    dt->unit == NPY_UNIT_GENERIC)
		return ret;
	if (dt->unit_mult != 1)
		return buf_addf(out, "[%lld%s]", (long long)dt->unit_mult,
				npy_unit_name(dt->unit));
	return buf_addf(out, "[%s]", npy_unit_name(dt->unit));
}

int npy_dtype_format(const struct npy_dtype *dt, struct buf *out)
{
	const struct npy_field *f;
	size_t i, at = 0;
	int ret = 0;
	bool first = true;

	if (dt->kind != NPY_RECORD) {
		ret = buf_addch(out, '\'');
		if (!ret)
			ret = format_typestr(dt, out);
		return ret ? ret : buf_addch(out, '\'');
	}
	ret = buf_addch(out, '[');
	for (i = 0; i <= dt->nfields && !ret; i++) {
		f = i < dt->nfields ? &dt->fields[i] : NULL;
		if (f && f->offset < at)
			return -EINVAL;	/* overlapping or unordered fields */
		if ((f ? f->offset : dt->itemsize) > at) {
			ret = buf_addf(out, "%s('', '|V%zu')", first ? "" : ", ",
				       (f ? f->offset : dt->itemsize) - at);
			first = false;
		}
		if (ret || !f)
			break;
		ret = buf_adds(out, first ? "(" : ", (");
		first = false;
		if (!ret && f->title) {
			ret = buf_addch(out, '(');
			if (!ret)
				ret = py_repr_str(f->title, out);
			if (!ret)
				ret = buf_adds(out, ", ");
		}
		if (!ret)
			ret = py_repr_str(f->name ? f->name : "", out);
		if (!ret && f->title)
			ret = buf_addch(out, ')');
		if (!ret)
			ret = buf_adds(out, ", ");
		if (!ret)
			ret = npy_dtype_format(&f->type, out);
		if (!ret && f->ndim > 0) {
			ret = buf_adds(out, ", ");
			if (!ret)
				ret = npy_shape_format(f->ndim, f->shape, out);
		}
		if (!ret)
			ret = buf_addch(out, ')');
		at = f->offset + f->type.itemsize * (f->ndim > 0 ? f->count : 1);
	}
	return ret ? ret : buf_addch(out, ']');
}

/* "{'descr': D, 'fortran_order': F, 'shape': S, }" as numpy writes it. */
int npy_header_format_dict(const struct npy_header *hdr, struct buf *out)
{
	int ret;

	ret = buf_adds(out, "{'descr': ");
	if (!ret && hdr->descr)
		ret = buf_adds(out, hdr->descr);
	else if (!ret)
		ret = npy_dtype_format(&hdr->dtype, out);
	if (!ret)
		ret = buf_addf(out, ", 'fortran_order': %s, 'shape': ",
			       hdr->fortran_order ? "True" : "False");
	if (!ret)
		ret = npy_shape_format(hdr->ndim, hdr->shape, out);
	return ret ? ret : buf_adds(out, ", }");
}

int npy_header_format(const struct npy_header *hdr, struct buf *out)
{
	struct buf d = BUF_INIT, enc = BUF_INIT;
	const unsigned char *s;
	size_t i, n, hlen, pad, prefix, spaces = 0;
	uint64_t grow;
	bool latin1 = true;
	uint32_t c;
	int ret, major;

	if (hdr->ndim < 0 || hdr->ndim > NPY_MAXDIMS)
		return -EINVAL;
	ret = npy_header_format_dict(hdr, &d);
	if (ret)
		goto out_release;
	if (hdr->ndim > 0) {
		grow = hdr->shape[hdr->fortran_order ? hdr->ndim - 1 : 0];
		for (spaces = GROWTH_AXIS_MAX_DIGITS - 1; grow >= 10; grow /= 10)
			spaces--;
	}
	s = (const unsigned char *)d.data;
	for (i = 0; i < d.len && !ret; i += n) {
		n = npy_utf8_get(s + i, d.len - i, &c);
		if (!n || !c)
			ret = -EINVAL;
		else if (c > 0xff)
			latin1 = false;
		else
			ret = buf_addch(&enc, (char)c);
	}
	if (ret)
		goto out_release;
	if (!latin1) {
		buf_reset(&enc);
		ret = buf_add(&enc, d.data, d.len);
		if (ret)
			goto out_release;
	}
	hlen = enc.len + spaces + 1;
	major = latin1 ? 1 : 3;
	prefix = major == 1 ? 10 : 12;
	pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
	if (major == 1 && hlen + pad > 0xffff) {
		major = 2;
		prefix = 12;
		pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
	}
	if (hlen + pad > 0xffffffffu) {
		ret = -EINVAL;
		goto out_release;
	}
	n = hlen + pad;
	ret = buf_grow(out, prefix + n);
	if (ret)
		goto out_release;
	buf_add(out, npy_magic, NPY_MAGIC_LEN);
	buf_addch(out, (char)major);
	buf_addch(out, 0);
	buf_addch(out, (char)(n & 0xff));
	buf_addch(out, (char)(n >> 8 & 0xff));
	if (prefix == 12) {
		buf_addch(out, (char)(n >> 16 & 0xff));
		buf_addch(out, (char)(n >> 24 & 0xff));
	}
	buf_add(out, enc.data, enc.len);
	for (i = 0; i < spaces + pad; i++)
		buf_addch(out, ' ');
	buf_addch(out, '\n');

out_release:
	buf_release(&d);
	buf_release(&enc);
	return ret;
}

int npy_header_init(struct npy_header *hdr, const struct npy_dtype *dt,
		    int ndim, const uint64_t *shape, bool fortran_order)
{
	struct buf b = BUF_INIT;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	if (ndim < 0 || ndim > NPY_MAXDIMS)
		return -EINVAL;
	ret = npy_dtype_copy(&hdr->dtype, dt);
	if (ret)
		return ret;
	hdr->ndim = ndim;
	if (ndim)
		memcpy(hdr->shape, shape, (size_t)ndim * sizeof(*shape));
	hdr->fortran_order = fortran_order;
	ret = npy_header_set_count(hdr);
	if (ret)
		goto out_release;
	ret = npy_dtype_format(dt, &b);
	if (ret)
		goto out_release;
	hdr->descr = buf_detach(&b, NULL);
	ret = hdr->descr ? npy_header_format_dict(hdr, &b) : -ENOMEM;
	if (ret)
		goto out_release;
	hdr->dict = buf_detach(&b, NULL);
	ret = hdr->dict ? npy_header_format(hdr, &b) : -ENOMEM;
	if (ret)
		goto out_release;
	hdr->major = (unsigned char)b.data[6];
	hdr->minor = 0;
	hdr->header_len = b.len;
	buf_release(&b);
	return 0;

out_release:
	buf_release(&b);
	npy_header_release(hdr);
	return ret;
}
