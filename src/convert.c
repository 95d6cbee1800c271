/* convert.c - validate written .npy bytes; parse a written view into .npy. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <zlib.h>

#include "buf.h"
#include "convert.h"
#include "crc.h"
#include "io.h"
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

/* The parsed array's .npy.  Small arrays go through wbuf_pwrite() (one
 * thread at a time).  An array of more than WBUF_MEM_MAX bytes goes
 * straight into out's spill file: every parse thread pwrite()s its own
 * blocks.  Either way each block's CRC-32 is taken by the thread that made
 * it, and the blocks' CRCs are combined in order at the end, so the commit
 * knows the CRC without reading the content again (and copies it in the
 * kernel, or makes its file the new archive).  No write-behind queue, no
 * copy to the calling thread. */
struct npy_seg {
	uint64_t off, len;
	uint32_t crc;
};

struct npy_out {
	struct wbuf *out;
	uint64_t data_off;	/* header length */
	int fd;			/* direct: out's spill file, else -1 */
	pthread_mutex_t lock;	/* protects: out (not direct), the below */
	struct npy_seg *seg;	/* the blocks written */
	size_t nseg, cap;
	bool seg_lost;		/* no memory for seg: no CRC */
};

static void seg_add(struct npy_out *o, uint64_t off, uint64_t len, uint32_t crc)
{
	if (o->nseg == o->cap && !o->seg_lost) {
		size_t cap = o->cap ? 2 * o->cap : 256;
		struct npy_seg *p = realloc(o->seg, cap * sizeof(*p));

		if (!p)
			o->seg_lost = true;
		else
			o->seg = p;
		o->cap = p ? cap : o->cap;
	}
	if (!o->seg_lost)
		o->seg[o->nseg++] = (struct npy_seg){ off, len, crc };
}

static int cmp_seg(const void *x, const void *y)
{
	const struct npy_seg *a = x, *b = y;

	return a->off < b->off ? -1 : a->off > b->off;
}

/* The CRC of the whole file from its blocks, if they cover it exactly
 * once. */
static void seg_finish(struct npy_out *o)
{
	uint64_t pos = 0;
	uint32_t crc = 0;

	if (o->seg_lost)
		return;
	qsort(o->seg, o->nseg, sizeof(*o->seg), cmp_seg);
	for (size_t i = 0; i < o->nseg; i++) {
		if (o->seg[i].off != pos)
			return;
		crc = (uint32_t)crc32_combine(crc, o->seg[i].crc, (z_off_t)o->seg[i].len);
		pos += o->seg[i].len;
	}
	if (pos == o->out->size)
		wbuf_set_crc(o->out, crc);
}

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
	if (!ret && o->out->size > WBUF_MEM_MAX) {
		int fd = wbuf_fd(o->out);	/* spilled, queue drained */

		if (fd < 0)
			ret = fd;
		else
			o->fd = fd;
	}
	if (!ret)
		seg_add(o, 0, b.len, crc32_update(0, b.data, b.len));
	buf_release(&b);
	return ret ? ret : 1;	/* write_at() takes any thread */
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct npy_out *o = ctx;
	uint32_t crc;
	int ret;

	crc = crc32_update(0, buf, len);
	if (o->fd < 0) {
		pthread_mutex_lock(&o->lock);
		ret = wbuf_pwrite(o->out, buf, len, o->data_off + off);
		if (!ret)
			seg_add(o, o->data_off + off, len, crc);
		pthread_mutex_unlock(&o->lock);
		return ret;
	}
	ret = io_pwrite_all(o->fd, buf, len, o->data_off + off);
	if (ret)
		return ret;
	if (o->out->wb.writeback)	/* it ends up in the archive */
		sync_file_range(o->fd, (off_t)(o->data_off + off), (off_t)len,
				SYNC_FILE_RANGE_WRITE);
	pthread_mutex_lock(&o->lock);
	seg_add(o, o->data_off + off, len, crc);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

int convert_view_to_npy(const struct view_kind *k, struct wbuf *text,
			const struct npy_header *base, struct wbuf *out,
			struct npz_err *err)
{
	struct npy_out o = { .out = out, .fd = -1,
			     .lock = PTHREAD_MUTEX_INITIALIZER };
	struct text_out to = { out_begin, out_write_at, &o };
	struct npy_header hdr;
	const char *p;
	int ret;

	ret = wbuf_map(text, &p);
	if (ret)
		return ret;
	ret = k->parse(p, (size_t)text->size, base, &hdr, &to, err);
	if (!ret) {
		npy_header_release(&hdr);
		seg_finish(&o);
	}
	free(o.seg);
	return ret;
}
