/* convert.c - validate written .npy bytes; parse a written view into .npy. */
#include <errno.h>
#include <stdlib.h>

#include "buf.h"
#include "convert.h"
#include "text.h"
#include "views.h"

/* Read exactly n bytes at off of w: 0, or -EIO when w is shorter. */
static int read_exact(struct wbuf *w, void *p, size_t n, uint64_t off)
{
	ssize_t r = wbuf_pread(w, p, n, off);

	if (r < 0)
		return (int)r;
	return (size_t)r == n ? 0 : -EIO;
}

/* Reads only the header and the last byte: a copy-on-write wbuf over a
 * 4 GiB member is checked without being copied in. */
int convert_check_npy(struct wbuf *w, struct npz_err *err)
{
	unsigned char prefix[NPY_PREFIX_MAX];
	struct npy_header hdr;
	size_t total, plen;
	char *p, last;
	int ret;

	if (w->size == 0) {
		npz_err_set(err, "empty file is not a .npy");
		return -EINVAL;
	}
	plen = w->size < sizeof(prefix) ? (size_t)w->size : sizeof(prefix);
	ret = read_exact(w, prefix, plen, 0);
	if (!ret)
		ret = npy_header_size(prefix, plen, &total, err);
	if (ret)
		return ret;
	if (total > w->size) {
		npz_err_set(err, "header length %zu past end of file (%llu bytes)",
			    total, (unsigned long long)w->size);
		return -EINVAL;
	}
	p = malloc(total);
	if (!p)
		return -ENOMEM;
	ret = read_exact(w, p, total, 0);
	if (!ret)
		ret = read_exact(w, &last, 1, w->size - 1);
	if (!ret)
		ret = npy_header_parse(p, total, &hdr, err);
	free(p);
	if (ret)
		return ret;
	if (npy_dtype_has_object(&hdr.dtype)) {
		/* numpy pickles object arrays: the data length says nothing.
		 * Kept as opaque bytes, never unpickled; a pickle stream
		 * ends with the STOP opcode '.' */
		if (w->size == total || last != '.') {
			npz_err_set(err, "object array: data is not a pickle (no STOP opcode at its end)");
			ret = -EINVAL;
		}
	} else {
		ret = npy_check_data_len(&hdr, w->size, true, err);
	}
	npy_header_release(&hdr);
	return ret;
}

struct npy_out {
	struct wbuf *out;
	uint64_t data_off;	/* header length */
};

static int out_begin(void *ctx, const struct npy_header *hdr)
{
	struct npy_out *o = ctx;
	struct buf b = BUF_INIT;
	int ret = npy_header_format(hdr, &b);

	if (!ret)
		ret = wbuf_pwrite(o->out, b.data, b.len, 0);
	o->data_off = b.len;
	if (!ret)	/* the full size at once: no zero-filled holes later */
		ret = wbuf_truncate(o->out, b.len + hdr->data_len);
	buf_release(&b);
	return ret;
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct npy_out *o = ctx;

	return wbuf_pwrite(o->out, buf, len, o->data_off + off);
}

int convert_view_to_npy(const struct view_kind *k, struct wbuf *text,
			const struct npy_header *base, struct wbuf *out,
			struct npz_err *err)
{
	struct npy_out o = { out, 0 };
	struct text_out to = { out_begin, out_write_at, &o };
	struct npy_header hdr;
	const char *p;
	int ret;

	ret = wbuf_map(text, &p);
	if (ret)
		return ret;
	ret = k->parse(p, (size_t)text->size, base, &hdr, &to, err);
	if (!ret)
		npy_header_release(&hdr);
	return ret;
}
