/* test_sozip_edit.c - patches of SOZip members (src/zip/sozip_edit.c):
 * padding blocks of every length inflate to nothing and keep the stream
 * valid; a patch of random pages of a random SOZip member, written anew
 * or in place, is exactly the new content (zlib inflates the whole member
 * to it, its CRC is the content's), and its index is valid: every chunk
 * inflates on its own to its bytes, only the last ending the stream. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../../src/zip/zip_internal.h"
#include "test.h"

static char dir[] = "/tmp/test_sozip_edit.XXXXXX";
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Raw-inflate in[0..len) into out (cap bytes): the bytes produced, or
 * -1 on an error; *ended: the stream's final block was seen; *used: input
 * bytes consumed. */
static long inflate_raw(const unsigned char *in, size_t len,
			unsigned char *out, size_t cap, bool *ended,
			size_t *used)
{
	z_stream z;
	int zr;
	long n;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	do
		zr = inflate(&z, Z_NO_FLUSH);
	while (zr == Z_OK && z.avail_in && z.avail_out);
	n = (zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR) ?
	    (long)(cap - z.avail_out) : -1;
	*ended = zr == Z_STREAM_END;
	*used = len - z.avail_in;
	inflateEnd(&z);
	return n;
}

/* ---- padding ---- */

static void test_padding(void)
{
	static const unsigned char fin[5] = { 1, 0, 0, 0xff, 0xff };
	unsigned char buf[4096 + 64], out[64], data[] = "after the padding";
	bool all = true, reach = true;

	for (size_t n = 0; n < 4096 + 32; n++) {
		bool ok = ar_sozip_pad_ok(n), ended;
		size_t len, used, dlen;
		long got;
		z_stream z;

		if (ok != !((n >= 1 && n <= 4) || n == 8)) {
			reach = false;
			continue;
		}
		if (!ok) {
			reach = reach && ar_sozip_pad(buf, n) == 0;
			continue;
		}
		len = ar_sozip_pad(buf, n);
		reach = reach && len == n;
		/* padding then an empty final block: nothing at all */
		memcpy(buf + len, fin, sizeof(fin));
		got = inflate_raw(buf, len + 5, out, sizeof(out), &ended, &used);
		all = all && got == 0 && ended && used == len + 5;
		/* padding then a deflate stream: exactly its bytes */
		memset(&z, 0, sizeof(z));
		deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
		z.next_in = data;
		z.avail_in = sizeof(data);
		z.next_out = buf + len;
		z.avail_out = 64;
		deflate(&z, Z_FINISH);
		dlen = 64 - z.avail_out;
		deflateEnd(&z);
		got = inflate_raw(buf, len + dlen, out, sizeof(out), &ended, &used);
		all = all && got == (long)sizeof(data) && ended &&
		      used == len + dlen && !memcmp(out, data, sizeof(data));
	}
	test_cond("padding of 1-4 and 8 bytes cannot be made, all others can",
		  reach);
	test_cond("padding of every length inflates to nothing (zlib)", all);
}

/* ---- patches ---- */

struct zbuf {
	unsigned char *p;
	size_t len, cap;
};

static void zb_put(struct zbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* size bytes deflated as deflate.c's SOZip mode does (a sync and a full
 * flush every chunk bytes); chunk offsets but the first into offs. */
static void sozip_deflate(const unsigned char *src, size_t size, size_t chunk,
			  struct zbuf *out, uint64_t *offs, size_t *noffs)
{
	z_stream z;
	size_t pos = 0, start = out->len, cap = compressBound(size) + 1024;
	unsigned char *tmp = malloc(cap);

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	*noffs = 0;
	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		bool last = pos + n == size;

		if (pos)
			offs[(*noffs)++] = out->len - start;
		z.next_in = (unsigned char *)src + pos;
		z.avail_in = (uInt)n;
		z.next_out = tmp;
		z.avail_out = (uInt)cap;
		if (last) {
			deflate(&z, Z_FINISH);
		} else {
			deflate(&z, Z_SYNC_FLUSH);
			deflate(&z, Z_FULL_FLUSH);
		}
		zb_put(out, tmp, cap - z.avail_out);
		pos += n;
	}
	deflateEnd(&z);
	free(tmp);
}

/* Content that deflates to about half: small numbers, runs. */
static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rnd() % 16 + (i / 1000) % 4);
}

/* An archive at path: s.npy (SOZip of content, chunk bytes a chunk),
 * then a stored member.  Returns 0 or -1. */
static int write_archive(const char *path, const unsigned char *content,
			 size_t size, uint32_t chunk)
{
	struct zbuf b = { 0 }, comp = { 0 };
	uint64_t *offs = malloc((size / chunk + 2) * sizeof(*offs));
	size_t noffs, cd_off, idx_len;
	unsigned char h[512], *idx;
	struct zip_entry e[2], ie = { .name = ".s.npy.sozip.idx",
				      .name_len = 16, .needed = 20 };
	int fd, ret;

	sozip_deflate(content, size, chunk, &comp, offs, &noffs);
	memset(e, 0, sizeof(e));
	e[0].name = "s.npy"; e[0].name_len = 5; e[0].needed = 20;
	e[0].method = 8; e[0].crc = crc32_update(0, content, size);
	e[0].comp_size = comp.len; e[0].size = size;
	e[0].pad = (uint16_t)(rnd() % 2 ? 0 : 6 + rnd() % 100);
	zb_put(&b, h, ar_local_header(h, &e[0], false));
	zb_put(&b, comp.p, comp.len);
	idx_len = 32 + noffs * 8;
	idx = calloc(1, idx_len);
	put32(idx, 1);
	put32(idx + 8, chunk);
	put32(idx + 12, 8);
	put64(idx + 16, size);
	put64(idx + 24, comp.len);
	for (size_t k = 0; k < noffs; k++)
		put64(idx + 32 + 8 * k, offs[k]);
	ie.comp_size = ie.size = idx_len;
	ie.crc = crc32_update(0, idx, idx_len);
	zb_put(&b, h, ar_local_header(h, &ie, false));
	zb_put(&b, idx, idx_len);
	e[1].name = "y.txt"; e[1].name_len = 5; e[1].needed = 20;
	e[1].crc = crc32_update(0, "hello", 5); e[1].comp_size = 5;
	e[1].size = 5; e[1].lh_off = b.len;
	zb_put(&b, h, ar_local_header(h, &e[1], false));
	zb_put(&b, "hello", 5);
	cd_off = b.len;
	for (int k = 0; k < 2; k++)
		zb_put(&b, h, ar_central_entry(h, &e[k]));
	{
		unsigned char end[AR_END_MAX];

		zb_put(&b, end, ar_end_records(end, 2, cd_off, b.len - cd_off));
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ret = fd >= 0 && write(fd, b.p, b.len) == (ssize_t)b.len ? 0 : -1;
	if (fd >= 0)
		close(fd);
	free(idx);
	free(offs);
	free(comp.p);
	free(b.p);
	return ret;
}

struct content {
	const unsigned char *p;
	size_t size;
	uint64_t read;		/* bytes read */
};

static ssize_t content_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct content *c = ctx;

	if (off >= c->size)
		return 0;
	if (len > c->size - off)
		len = c->size - off;
	c->read += len;
	memcpy(buf, c->p + off, len);
	return (ssize_t)len;
}

/* The member whose local header is at lh in file fd: its data inflates
 * to want (size bytes) as one stream, its CRC is crc, and the index
 * record after it is valid: every chunk inflates alone to its bytes. */
static bool member_ok(int fd, uint64_t lh, const unsigned char *want,
		      size_t size, uint64_t comp_size, uint32_t crc)
{
	unsigned char h[30], *comp = malloc(comp_size + 1), *out = malloc(size + 1);
	unsigned char *rec = NULL;
	struct sozip_map *x = NULL;
	struct npz_err err = { "" };
	uint64_t data;
	bool ok = false, ended;
	size_t used, rec_len = 1 << 20;
	long got;

	if (pread(fd, h, 30, (off_t)lh) != 30 || get32(h) != SIG_LOCAL)
		goto out;
	data = lh + 30 + get16(h + 26) + get16(h + 28);
	if (get32(h + 14) != crc || crc != crc32_update(0, want, size) ||
	    pread(fd, comp, comp_size, (off_t)data) != (ssize_t)comp_size)
		goto out;
	got = inflate_raw(comp, comp_size, out, size + 1, &ended, &used);
	if (got != (long)size || !ended || used != comp_size ||
	    memcmp(out, want, size))
		goto out;
	rec = malloc(rec_len);
	rec_len = (size_t)pread(fd, rec, rec_len, (off_t)(data + comp_size));
	if (ar_sozip_parse(rec, rec_len, "s.npy", 5, size, comp_size, &x,
			   &err))
		goto out;
	for (uint64_t k = 0; k < x->nchunks; k++) {
		uint64_t us = k * x->chunk_size;
		size_t n = size - us < x->chunk_size ? size - us : x->chunk_size;

		got = inflate_raw(comp + x->off[k], x->off[k + 1] - x->off[k],
				  out, n + 1, &ended, &used);
		if (got != (long)n || memcmp(out, want + us, n) ||
		    ended != (k + 1 == x->nchunks) ||
		    used != x->off[k + 1] - x->off[k])
			goto out;
	}
	ok = true;
out:
	ar_sozip_free(x);
	free(rec);
	free(comp);
	free(out);
	return ok;
}

static int copy_file(const char *from, const char *to)
{
	struct stat st;
	int in = open(from, O_RDONLY), out = open(to, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unsigned char *buf = NULL;
	int ret = -1;

	if (in >= 0 && out >= 0 && !fstat(in, &st) &&
	    (buf = malloc((size_t)st.st_size + 1)) &&
	    read(in, buf, (size_t)st.st_size) == st.st_size &&
	    write(out, buf, (size_t)st.st_size) == st.st_size)
		ret = out;
	free(buf);
	if (in >= 0)
		close(in);
	if (ret < 0 && out >= 0)
		close(out);
	return ret;
}

static void test_patches(void)
{
	static const uint32_t chunks[] = { 4096, 16384, 65536, AR_SOZIP_CHUNK };
	int written = 0, in_place = 0, bad_write = 0, bad_place = 0, none = 0;
	int bad_reads = 0, bad_isal = 0;

	for (int round = 0; round < 40; round++) {
		uint32_t chunk = chunks[round % 4];
		size_t size = chunk + 1 + (size_t)(rnd() % (chunk * 12));
		unsigned char *old = malloc(size), *now = malloc(size);
		struct archive_range *r = calloc(64, sizeof(*r));
		struct content ct = { now, size, 0 };
		struct archive_change c = { .name = "s.npy", .from = -1, .fd = -1,
					    .read = content_read, .read_ctx = &ct,
					    .size = size, .method = ARCHIVE_DEFLATE,
					    .level = -1, .patch = true };
		struct sozip_patch *sp = NULL;
		struct npz_err err = { "" };
		struct archive *a = NULL;
		char path[256], out_path[256];
		size_t nr = 0, idx;
		uint64_t pos, cloned = 0, data_off;
		int fd;

		fill(old, size);
		memcpy(now, old, size);
		snprintf(path, sizeof(path), "%s/a%d.zip", dir, round);
		snprintf(out_path, sizeof(out_path), "%s/o%d", dir, round);
		if (write_archive(path, old, size, chunk) ||
		    archive_open(path, &a, &err) || archive_find(a, "s.npy", &idx)) {
			printf("round %d: %s\n", round, err.msg);
			test_cond("test archive", false);
			goto next;
		}
		/* random pages changed: a byte, a value, or noise */
		for (uint64_t p = 0; p * 4096 < size && nr < 64; p++) {
			uint64_t off = p * 4096, len = size - off < 4096 ? size - off : 4096;

			if (rnd() % 100 >= (round % 3 == 0 ? 30u : 3u))
				continue;
			if (nr && r[nr - 1].off + r[nr - 1].len == off)
				r[nr - 1].len += len;
			else
				r[nr++] = (struct archive_range){ off, len };
			switch (rnd() % 4) {
			case 0:
				for (uint64_t i = 0; i < len; i++)
					now[off + i] = (unsigned char)rnd();
				break;
			default:
				now[off + rnd() % len] ^= (unsigned char)(1 + rnd() % 255);
			}
		}
		if (!nr) {	/* at least the last byte */
			r[nr++] = (struct archive_range){ (size - 1) / 4096 * 4096,
							  size - (size - 1) / 4096 * 4096 };
			now[size - 1] ^= 0x5a;
		}
		c.ranges = r;
		c.nranges = nr;
		c.patch_of = idx;
		data_off = (uint64_t)ar_member_data_off(a, &a->m[idx], &err);
		if (ar_sozip_patch_prepare(a, &c, &sp, &err) || !sp) {
			none++;
			goto next;
		}
		/* only the written ranges are read from the new content */
		{
			uint64_t w = 0;

			for (size_t i = 0; i < nr; i++)
				w += r[i].len;
			bad_reads += ct.read > w;
		}
		/* written anew, at an odd position */
		fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		{
			struct zip_entry e = { .name = "s.npy", .name_len = 5,
					       .made_by = 3 << 8 | 20, .needed = 20 };

			pos = rnd() % 10000;
			if (ar_sozip_patch_write(a, sp, &e, fd, &pos, &cloned) ||
			    !member_ok(fd, e.lh_off, now, size, e.comp_size, e.crc))
				bad_write++;
			written++;
		}
		close(fd);
		/* in place, over a copy of the old file */
		if (ar_sozip_patch_in_place(sp)) {
			struct zip_entry e = { 0 };

			fd = copy_file(path, out_path);
			if (fd < 0 || ar_sozip_patch_apply(sp, &e, time(NULL), fd,
							   data_off, 0) ||
			    !member_ok(fd, 0, now, size, archive_member(a, idx)->comp_size,
				       e.crc))
				bad_place++;
			in_place++;
			if (fd >= 0)
				close(fd);
			/* and through sozip.c's reader (ISA-L), chunk by chunk */
			{
				struct archive *b = NULL;
				unsigned char *got = malloc(size);

				if (archive_open(out_path, &b, &err) ||
				    !archive_member_sozip(b, idx) ||
				    archive_member_read(b, idx, got, size, 0, &err) !=
				    (ssize_t)size || memcmp(got, now, size))
					bad_isal++;
				archive_close(b);
				free(got);
			}
		}
next:
		ar_sozip_patch_free(sp);
		archive_close(a);
		unlink(path);
		unlink(out_path);
		free(old);
		free(now);
		free(r);
	}
	printf("patches: %d written anew, %d in place, %d declined\n", written,
	       in_place, none);
	test_cond("every patch is prepared", none == 0);
	test_cond("patches written anew: the new content, valid index, CRC",
		  written > 0 && bad_write == 0);
	test_cond("patches in place: the new content, valid index, CRC",
		  in_place > 0 && bad_place == 0);
	test_cond("only the written ranges are read", bad_reads == 0);
	test_cond("patches in place read right through the SOZip reader",
		  bad_isal == 0);
}

/* A non-SOZip deflated member or a too-big change is not a patch. */
static void test_declines(void)
{
	size_t size = 300000;
	unsigned char *old = malloc(size);
	struct archive_range r = { 0, size };
	struct content ct = { old, size, 0 };
	struct archive_change c = { .name = "s.npy", .from = -1, .fd = -1,
				    .read = content_read, .read_ctx = &ct,
				    .size = size, .method = ARCHIVE_DEFLATE,
				    .level = -1, .patch = true, .ranges = &r,
				    .nranges = 1 };
	struct sozip_patch *sp = (struct sozip_patch *)1;
	struct npz_err err = { "" };
	struct archive *a = NULL;
	char path[256];
	size_t idx;

	fill(old, size);
	snprintf(path, sizeof(path), "%s/d.zip", dir);
	if (write_archive(path, old, size, 1024) || archive_open(path, &a, &err) ||
	    archive_find(a, "s.npy", &idx)) {
		test_cond("test archive", false);
		free(old);
		return;
	}
	c.patch_of = idx;
	/* 300 KB in 1 KiB chunks: every chunk touched is fine (< 64 MiB) */
	test_cond("a patch of every chunk is prepared",
		  !ar_sozip_patch_prepare(a, &c, &sp, &err) && sp);
	ar_sozip_patch_free(sp);
	c.size = size - 1;
	test_cond("another size: no patch",
		  !ar_sozip_patch_prepare(a, &c, &sp, &err) && !sp);
	c.size = size;
	c.patch_of = idx + 1;
	test_cond("a stored member: no SOZip patch",
		  !ar_sozip_patch_prepare(a, &c, &sp, &err) && !sp);
	archive_close(a);
	unlink(path);
	free(old);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_padding();
	test_patches();
	test_declines();
	rmdir(dir);
	return test_report();
}
