/* verify.c - archive_check_member() and archive_check_layout() for
 * `npzfs --check`: local headers against the central directory, every
 * member's data checksummed in bounded blocks, members' extents. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zip_internal.h"

/* ---- Checking: archive_check_member(), archive_check_layout() ---------
 *
 * For `npzfs --check`: the local headers are read again and compared with
 * the central directory, and every member's data is read and checksummed
 * in bounded blocks (never through the inflate cache, so a check leaves
 * no cache behind and costs no disk space).
 */

#define CHECK_BLOCK (1u << 20)	/* data read / inflated per step */

/* What a local header says. */
struct local_hdr {
	uint16_t flags, method, name_len, extra_len;
	uint32_t crc;
	uint64_t comp_size, size;
	bool have_sizes;	/* sizes known (not placeholders, not bit 3) */
	uint64_t data_off;
};

/* The sizes a local header's zip64 extra field (the extra_len bytes at x)
 * gives for the 0xffffffff placeholders comp32 / size32: both sizes, size
 * first (APPNOTE 4.5.3); only the overflowed ones from a short field.
 * Returns whether the sizes are known now. */
static bool local_zip64_sizes(struct local_hdr *lh, const unsigned char *x,
			      uint32_t comp32, uint32_t size32)
{
	const unsigned char *xend = x + lh->extra_len;
	bool found = false;

	while (xend - x >= 4) {
		uint16_t id = get16(x), sz = get16(x + 2);
		const unsigned char *f = x + 4;

		if (sz > xend - f)
			break;
		if (id == 0x0001) {
			if (sz >= 16) {
				lh->size = get64(f);
				lh->comp_size = get64(f + 8);
				found = true;
			} else if (sz >= 8) {
				if (size32 == 0xffffffffu)
					lh->size = get64(f);
				else
					lh->comp_size = get64(f);
				found = comp32 != 0xffffffffu ||
					size32 != 0xffffffffu;
			}
			break;
		}
		x = f + sz;
	}
	return found;
}

/* Read and parse m's local header.  Returns 0, -EIO (damaged: err says
 * why) or -ENOMEM.  When check_name is set, the name must be m's. */
static int check_read_local(struct archive *a, const struct member *m,
			    struct local_hdr *lh, bool check_name,
			    struct npz_err *err)
{
	unsigned char fixed[30], *var = NULL;
	uint32_t comp32, size32;
	size_t var_len;
	ssize_t n;
	int ret = 0;

	if (m->lh_off > a->file_size || a->file_size - m->lh_off < 30) {
		npz_err_set(err, "local header past end of file");
		return -EIO;
	}
	n = ar_pread_full(a->fd, fixed, 30, m->lh_off);
	if (n != 30) {
		npz_err_set(err, "read error: %s",
			    strerror(n < 0 ? (int)-n : EIO));
		return -EIO;
	}
	if (get32(fixed) != SIG_LOCAL) {
		npz_err_set(err, "bad local header signature at offset %llu",
			    (unsigned long long)m->lh_off);
		return -EIO;
	}
	lh->flags = get16(fixed + 6);
	lh->method = get16(fixed + 8);
	lh->crc = get32(fixed + 14);
	comp32 = get32(fixed + 18);
	size32 = get32(fixed + 22);
	lh->name_len = get16(fixed + 26);
	lh->extra_len = get16(fixed + 28);
	lh->comp_size = comp32;
	lh->size = size32;
	lh->have_sizes = !(lh->flags & 8);
	lh->data_off = m->lh_off + 30 + lh->name_len + lh->extra_len;
	var_len = (size_t)lh->name_len + lh->extra_len;
	if (lh->data_off > a->file_size) {
		npz_err_set(err, "local header name or extra field past end "
			    "of file");
		return -EIO;
	}
	var = malloc(var_len ? var_len : 1);
	if (!var)
		return -ENOMEM;
	n = ar_pread_full(a->fd, var, var_len, m->lh_off + 30);
	if (n != (ssize_t)var_len) {
		npz_err_set(err, "read error: %s",
			    strerror(n < 0 ? (int)-n : EIO));
		ret = -EIO;
		goto out_free_var;
	}
	if (check_name && (lh->name_len != m->raw_len ||
			   memcmp(var, m->raw_name, m->raw_len) != 0)) {
		npz_err_set(err, "local header name \"%.*s\" differs from the "
			    "central directory's", lh->name_len > 64 ? 64 :
			    (int)lh->name_len, (const char *)var);
		ret = -EIO;
		goto out_free_var;
	}
	if (lh->have_sizes && (comp32 == 0xffffffffu || size32 == 0xffffffffu))
		lh->have_sizes = local_zip64_sizes(lh, var + lh->name_len,
						   comp32, size32);
out_free_var:
	free(var);
	return ret;
}

/* Read m's stored data (at data_off) in blocks of at most CHECK_BLOCK:
 * *crc_out is its CRC-32, *out_pos its length.  0, -EIO, -ENOMEM. */
static int check_stored(struct archive *a, const struct member *m,
			uint64_t data_off, uint32_t *crc_out,
			uint64_t *out_pos, struct npz_err *err)
{
	const uint64_t comp = m->pub.comp_size;
	size_t in_cap = comp < CHECK_BLOCK ? (size_t)comp : CHECK_BLOCK;
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	unsigned char *in;
	uint64_t in_pos = 0;
	ssize_t n;
	int ret = 0;

	in = malloc(in_cap ? in_cap : 1);
	if (!in)
		return -ENOMEM;
	while (in_pos < comp) {
		size_t want = comp - in_pos < in_cap ?
			      (size_t)(comp - in_pos) : in_cap;

		n = ar_pread_full(a->fd, in, want, data_off + in_pos);
		if (n != (ssize_t)want) {
			npz_err_set(err, "read error: %s",
				    strerror(n < 0 ? (int)-n : EIO));
			ret = -EIO;
			break;
		}
		crc = crc32_update(crc, in, want);
		in_pos += want;
	}
	*crc_out = crc;
	*out_pos = in_pos;
	free(in);
	return ret;
}

/* Inflate m's deflated data (at data_off), in blocks of at most
 * CHECK_BLOCK in and out: *crc_out is the CRC-32 of what it inflates to,
 * *out_pos its length.  0, -EIO, -ENOMEM. */
static int check_deflated(struct archive *a, const struct member *m,
			  uint64_t data_off, uint32_t *crc_out,
			  uint64_t *out_pos_out, struct npz_err *err)
{
	const uint64_t size = m->pub.size, comp = m->pub.comp_size;
	size_t in_cap = comp < CHECK_BLOCK ? (size_t)comp : CHECK_BLOCK;
	size_t out_cap = size < CHECK_BLOCK ? (size_t)size : CHECK_BLOCK;
	unsigned char *in = NULL, *out = NULL;
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	uint64_t in_pos = 0, out_pos = 0;
	bool end = false;
	z_stream z;
	ssize_t n;
	int ret = 0, zr;

	memset(&z, 0, sizeof(z));
	in = malloc(in_cap ? in_cap : 1);
	out = malloc(out_cap ? out_cap : 1);
	if (!in || !out || inflateInit2(&z, -MAX_WBITS) != Z_OK) {
		ret = -ENOMEM;
		goto out_free;
	}
	while (!end) {
		if (z.avail_in == 0) {
			size_t want = comp - in_pos < in_cap ?
				      (size_t)(comp - in_pos) : in_cap;

			if (want == 0) {
				npz_err_set(err, "deflate data ends early "
					    "(%llu of %llu bytes inflated)",
					    (unsigned long long)out_pos,
					    (unsigned long long)size);
				ret = -EIO;
				break;
			}
			n = ar_pread_full(a->fd, in, want, data_off + in_pos);
			if (n != (ssize_t)want) {
				npz_err_set(err, "read error: %s",
					    strerror(n < 0 ? (int)-n : EIO));
				ret = -EIO;
				break;
			}
			z.next_in = in;
			z.avail_in = (uInt)want;
			in_pos += want;
		}
		z.next_out = out;
		z.avail_out = (uInt)(out_cap ? out_cap : 1);
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END &&
		    !(zr == Z_BUF_ERROR && z.avail_in == 0)) {
			npz_err_set(err, "damaged deflate data: %s",
				    z.msg ? z.msg : "inflate error");
			ret = -EIO;
			break;
		}
		n = (ssize_t)((out_cap ? out_cap : 1) - z.avail_out);
		if ((uint64_t)n > size - out_pos) {
			npz_err_set(err, "inflates to more than its size %llu",
				    (unsigned long long)size);
			ret = -EIO;
			break;
		}
		crc = crc32_update(crc, out, (size_t)n);
		out_pos += (uint64_t)n;
		end = zr == Z_STREAM_END;
	}
	inflateEnd(&z);
	*crc_out = crc;
	*out_pos_out = out_pos;
out_free:
	free(in);
	free(out);
	return ret;
}

/* Checksum m's data: stored bytes read as they are, deflated ones
 * inflated, each in blocks of at most CHECK_BLOCK.  0, -EIO, -ENOMEM. */
static int check_data(struct archive *a, const struct member *m,
		      uint64_t data_off, struct npz_err *err)
{
	const uint64_t size = m->pub.size;
	uint32_t crc;
	uint64_t out_pos;
	int ret;

	if (m->pub.method == ARCHIVE_STORE)
		ret = check_stored(a, m, data_off, &crc, &out_pos, err);
	else
		ret = check_deflated(a, m, data_off, &crc, &out_pos, err);
	if (ret)
		return ret;
	if (out_pos != size) {
		npz_err_set(err, "inflates to %llu bytes, not its size %llu",
			    (unsigned long long)out_pos,
			    (unsigned long long)size);
		ret = -EIO;
	} else if (crc != m->pub.crc) {
		npz_err_set(err, "CRC mismatch (stored 0x%08x, computed 0x%08x)",
			    m->pub.crc, crc);
		ret = -EIO;
	}
	return ret;
}

/* A deflated member with a SOZip index: read it again through the index
 * (every chunk inflated on its own) and check the bytes' CRC.  0 when it
 * has no index record.  Bounded memory (1 MiB blocks). */
static int check_sozip(struct archive *a, struct member *m,
		       struct npz_err *err)
{
	unsigned char *buf;
	uint64_t off = 0;
	uint32_t crc = 0;
	int ret;

	if (!ar_sozip_extent_end(a, m))
		return 0;	/* no index record */
	buf = malloc(CHECK_BLOCK);
	ret = buf ? 0 : -ENOMEM;
	while (!ret && off < m->pub.size) {
		size_t n = m->pub.size - off < CHECK_BLOCK ?
			   (size_t)(m->pub.size - off) : CHECK_BLOCK;

		ret = ar_sozip_read(a, m, buf, n, off, err);
		if (ret == AR_SOZIP_NONE) {
			npz_err_set(err, "SOZip index does not match the data");
			ret = -EIO;
		}
		if (ret)
			break;
		crc = crc32_update(crc, buf, n);
		off += n;
	}
	free(buf);
	if (!ret && crc != m->pub.crc) {
		npz_err_set(err, "SOZip chunks inflate to other bytes (CRC "
			    "0x%08x, stored 0x%08x)", crc, m->pub.crc);
		ret = -EIO;
	}
	return ret;
}

int archive_check_member(struct archive *a, size_t i, struct npz_err *err)
{
	const struct member *m;
	struct local_hdr lh;
	int ret;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	ret = check_read_local(a, m, &lh, true, err);
	if (ret)
		return ret;
	if ((m->flags | lh.flags) & 1) {
		npz_err_set(err, "encrypted members are not supported");
		return -EIO;
	}
	if (lh.method != m->pub.method) {
		npz_err_set(err, "local header method %u differs from the "
			    "central directory's %u", lh.method,
			    m->pub.method);
		return -EIO;
	}
	if (lh.have_sizes && lh.crc != m->pub.crc) {
		npz_err_set(err, "local header CRC 0x%08x differs from the "
			    "central directory's 0x%08x", lh.crc, m->pub.crc);
		return -EIO;
	}
	if (lh.have_sizes && (lh.size != m->pub.size ||
			      lh.comp_size != m->pub.comp_size)) {
		npz_err_set(err, "local header sizes %llu/%llu differ from the "
			    "central directory's %llu/%llu",
			    (unsigned long long)lh.comp_size,
			    (unsigned long long)lh.size,
			    (unsigned long long)m->pub.comp_size,
			    (unsigned long long)m->pub.size);
		return -EIO;
	}
	if (m->pub.comp_size > a->file_size - lh.data_off) {
		npz_err_set(err, "data past end of file (%llu bytes at offset "
			    "%llu, file has %llu)",
			    (unsigned long long)m->pub.comp_size,
			    (unsigned long long)lh.data_off,
			    (unsigned long long)a->file_size);
		return -EIO;
	}
	if (m->pub.method != ARCHIVE_STORE && m->pub.method != ARCHIVE_DEFLATE) {
		npz_err_set(err, "unsupported compression method %u",
			    m->pub.method);
		return -EIO;
	}
	ret = check_data(a, m, lh.data_off, err);
	if (!ret && m->pub.method == ARCHIVE_DEFLATE)
		ret = check_sozip(a, &a->m[i], err);
	return ret;
}

struct extent {
	uint64_t start, end;
	size_t idx;
};

static int cmp_extent(const void *x, const void *y)
{
	const struct extent *p = x, *q = y;

	if (p->start != q->start)
		return p->start < q->start ? -1 : 1;
	return p->idx < q->idx ? -1 : p->idx > q->idx;
}

int archive_check_layout(struct archive *a, archive_report_fn *report,
			 void *ctx, struct npz_err *err)
{
	uint64_t cd_off, cd_size, entries, max_end = 0;
	struct extent *ext;
	size_t i, n = 0, max_idx = 0;
	char msg[NPZ_ERR_MSG_MAX];
	int ret, problems = 0;

	ret = ar_find_cdir(a, &cd_off, &cd_size, &entries, err);
	if (ret)
		return ret;
	ext = malloc((a->count ? a->count : 1) * sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	for (i = 0; i < a->count; i++) {
		const struct member *m = &a->m[i];
		struct local_hdr lh;

		ret = check_read_local(a, m, &lh, false, NULL);
		if (ret == -ENOMEM)
			goto out_free;
		if (ret || m->pub.comp_size > a->file_size - lh.data_off)
			continue;
		ext[n].start = m->lh_off;
		ext[n].end = lh.data_off + m->pub.comp_size;
		ext[n].idx = i;
		n++;
	}
	ret = 0;
	qsort(ext, n, sizeof(*ext), cmp_extent);
	for (i = 0; i < n; i++) {
		const struct extent *e = &ext[i];
		bool bad = false;

		if (i > 0 && e->start < max_end) {
			snprintf(msg, sizeof(msg), "overlaps member %zu (%s): "
				 "bytes %llu-%llu and %llu-%llu",
				 max_idx, a->m[max_idx].pub.name,
				 (unsigned long long)e->start,
				 (unsigned long long)e->end,
				 (unsigned long long)a->m[max_idx].lh_off,
				 (unsigned long long)max_end);
			bad = true;
		} else if (e->end > cd_off) {
			snprintf(msg, sizeof(msg), "data overlaps the central "
				 "directory (ends at %llu, directory starts "
				 "at %llu)", (unsigned long long)e->end,
				 (unsigned long long)cd_off);
			bad = true;
		}
		if (bad) {
			report(ctx, e->idx, msg);
			problems++;
		}
		if (e->end > max_end) {
			max_end = e->end;
			max_idx = e->idx;
		}
	}
out_free:
	free(ext);
	return ret ? ret : problems;
}
