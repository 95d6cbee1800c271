/* test_sozip.c - SOZip members (src/zip/sozip.c): the index parser's every
 * error path on hand-made records (a damaged index is user input), then
 * reads through archive_member_read() of an archive written here with zlib
 * (full flush every chunk): random ranges equal the content, reads from
 * several threads at once, and a damaged index falls back to the ordinary
 * path with the right bytes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../../src/zip/zip_internal.h"
#include "test.h"

/* ---- records by hand ---- */

struct rec_spec {
	const char *idx_name;
	uint16_t flags, method;
	uint32_t version, skip, chunk, osz;
	uint64_t size, comp;		/* in the index header */
	const uint64_t *offs;
	size_t noffs;
	int crc_delta;			/* added to the right CRC */
	int size_delta;			/* added to the local header's usize */
};

/* The record of s into p; returns its length. */
static size_t rec_make(unsigned char *p, const struct rec_spec *s)
{
	size_t nlen = strlen(s->idx_name), dlen = 32 + s->skip + s->noffs * s->osz;
	unsigned char *d = p + 30 + nlen;

	memset(p, 0, 30 + nlen + dlen);
	put32(p, SIG_LOCAL);
	put16(p + 4, 20);
	put16(p + 6, s->flags);
	put16(p + 8, s->method);
	put32(p + 18, (uint32_t)dlen);
	put32(p + 22, (uint32_t)dlen + (uint32_t)s->size_delta);
	put16(p + 26, (uint16_t)nlen);
	memcpy(p + 30, s->idx_name, nlen);
	put32(d, s->version);
	put32(d + 4, s->skip);
	put32(d + 8, s->chunk);
	put32(d + 12, s->osz);
	put64(d + 16, s->size);
	put64(d + 24, s->comp);
	for (size_t k = 0; k < s->noffs; k++) {
		if (s->osz == 4)
			put32(d + 32 + s->skip + k * 4, (uint32_t)s->offs[k]);
		else
			put64(d + 32 + s->skip + k * 8, s->offs[k]);
	}
	put32(p + 14, crc32_update(0, d, dlen) + (uint32_t)s->crc_delta);
	return 30 + nlen + dlen;
}

static const uint64_t offs3[] = { 100, 200, 300 };

static struct rec_spec good_spec(void)
{
	struct rec_spec s = {
		.idx_name = "dir/.x.npy.sozip.idx", .version = 1,
		.chunk = 4096, .osz = 8, .size = 4 * 4096 - 5, .comp = 400,
		.offs = offs3, .noffs = 3,
	};
	return s;
}

static int parse_spec(const struct rec_spec *s, uint64_t size, uint64_t comp,
		      struct sozip_map **x, struct npz_err *err)
{
	static unsigned char rec[4096];
	size_t len = rec_make(rec, s);

	err->msg[0] = '\0';
	*x = NULL;
	return ar_sozip_parse(rec, len, "dir/x.npy", 9, size, comp, x, err);
}

/* s must be rejected (-EINVAL with a message). */
static void expect_bad(const char *descr, const struct rec_spec *s)
{
	struct sozip_map *x;
	struct npz_err err;
	int ret = parse_spec(s, 4 * 4096 - 5, 400, &x, &err);

	test_cond(descr, ret == -EINVAL && err.msg[0] && !x);
	if (ret != -EINVAL)
		printf("  %s: ret %d (%s)\n", descr, ret, err.msg);
}

static void test_parse(void)
{
	struct rec_spec s = good_spec();
	struct sozip_map *x;
	struct npz_err err;
	unsigned char rec[4096];
	size_t len;
	int ret;

	ret = parse_spec(&s, s.size, s.comp, &x, &err);
	test_cond("good index", ret == 0 && x && x->chunk_size == 4096 &&
		  x->nchunks == 4 && x->off[0] == 0 && x->off[1] == 100 &&
		  x->off[3] == 300 && x->off[4] == 400);
	ar_sozip_free(x);

	s.osz = 4;
	s.skip = 16;
	ret = parse_spec(&s, s.size, s.comp, &x, &err);
	test_cond("good index, 4-byte offsets, skip_bytes", ret == 0 && x &&
		  x->off[2] == 200);
	ar_sozip_free(x);

	/* not this member's index: silently none */
	s = good_spec();
	s.idx_name = "dir/.y.npy.sozip.idx";
	test_cond("other name", parse_spec(&s, s.size, s.comp, &x, &err) == -ENOENT);
	s.idx_name = ".x.npy.sozip.idx";
	test_cond("directory left out", parse_spec(&s, s.size, s.comp, &x, &err) == -ENOENT);
	s.idx_name = "dir/x.npy.sozip.idx";
	test_cond("no dot", parse_spec(&s, s.size, s.comp, &x, &err) == -ENOENT);
	s = good_spec();
	len = rec_make(rec, &s);
	rec[0] = 'X';
	test_cond("no signature",
		  ar_sozip_parse(rec, len, "dir/x.npy", 9, s.size, s.comp, &x,
				 &err) == -ENOENT);
	s.idx_name = ".top.npy.sozip.idx";
	len = rec_make(rec, &s);
	test_cond("name without a directory",
		  ar_sozip_parse(rec, len, "top.npy", 7, s.size, s.comp, &x,
				 &err) == 0);
	ar_sozip_free(x);

	/* every prefix of a good record: never a crash, never accepted */
	s = good_spec();
	len = rec_make(rec, &s);
	for (size_t k = 0; k < len; k++) {
		unsigned char *cut = malloc(k ? k : 1);

		memcpy(cut, rec, k);
		ret = ar_sozip_parse(cut, k, "dir/x.npy", 9, s.size, s.comp, &x,
				     &err);
		free(cut);
		if (ret != -ENOENT && ret != -EINVAL) {
			test_cond("truncated record refused", 0);
			break;
		}
	}
	test_cond("truncated records refused", 1);

	s = good_spec(); s.flags = 1; expect_bad("encrypted", &s);
	s = good_spec(); s.flags = 8; expect_bad("data descriptor", &s);
	s = good_spec(); s.method = 8; expect_bad("deflated index", &s);
	s = good_spec(); s.size_delta = 1; expect_bad("sizes differ", &s);
	s = good_spec(); s.crc_delta = 1; expect_bad("CRC mismatch", &s);
	s = good_spec(); s.version = 2; expect_bad("version 2", &s);
	s = good_spec(); s.size += 1; expect_bad("uncompressed size", &s);
	s = good_spec(); s.comp -= 1; expect_bad("compressed size", &s);
	s = good_spec(); s.chunk = 512; expect_bad("chunk below 1 KiB", &s);
	s = good_spec(); s.chunk = 0; expect_bad("chunk 0", &s);
	s = good_spec(); s.chunk = 0x80000000u; expect_bad("chunk 2 GiB", &s);
	s = good_spec(); s.osz = 2; expect_bad("offset size 2", &s);
	s = good_spec(); s.osz = 0; expect_bad("offset size 0", &s);
	s = good_spec(); s.noffs = 2; expect_bad("too few offsets", &s);
	{
		static const uint64_t four[] = { 100, 200, 300, 350 };

		s = good_spec(); s.offs = four; s.noffs = 4;
		expect_bad("too many offsets", &s);
	}
	{
		static const uint64_t dup[] = { 100, 100, 300 };
		static const uint64_t down[] = { 200, 100, 300 };
		static const uint64_t zero[] = { 0, 100, 300 };
		static const uint64_t past[] = { 100, 200, 400 };
		static const uint64_t huge[] = { 100, 200, UINT64_MAX };

		s = good_spec(); s.offs = dup; expect_bad("equal offsets", &s);
		s = good_spec(); s.offs = down; expect_bad("decreasing offsets", &s);
		s = good_spec(); s.offs = zero; expect_bad("offset 0", &s);
		s = good_spec(); s.offs = past; expect_bad("offset at comp_size", &s);
		s = good_spec(); s.offs = huge; expect_bad("offset 2^64-1", &s);
	}
	/* header fields checked before the offsets */
	s = good_spec(); s.noffs = 0; s.skip = 0;
	{
		unsigned char *p = rec;

		len = rec_make(p, &s);
		/* index data of 31 bytes: shorter than its header */
		put32(p + 18, 31);
		put32(p + 22, 31);
		put32(p + 14, crc32_update(0, p + 30 + strlen(s.idx_name), 31));
		ret = ar_sozip_parse(p, len - 1, "dir/x.npy", 9, s.size, s.comp,
				     &x, &err);
		test_cond("index shorter than its header", ret == -EINVAL);
	}
	s = good_spec(); s.skip = 8;
	len = rec_make(rec, &s);
	put32(rec + 30 + strlen(s.idx_name) + 4, 1000);	/* skip past end */
	put32(rec + 14, crc32_update(0, rec + 30 + strlen(s.idx_name),
				     len - 30 - strlen(s.idx_name)));
	ret = ar_sozip_parse(rec, len, "dir/x.npy", 9, s.size, s.comp, &x, &err);
	test_cond("skip_bytes past the end", ret == -EINVAL);
	s = good_spec();
	len = rec_make(rec, &s);
	ret = ar_sozip_parse(rec, len - 1, "dir/x.npy", 9, s.size, s.comp, &x,
			     &err);
	test_cond("record shorter than its sizes", ret == -EINVAL);

	/* one chunk only: not SOZip */
	s = good_spec(); s.size = 4096; s.noffs = 0;
	ret = parse_spec(&s, 4096, 400, &x, &err);
	test_cond("member of one chunk", ret == -EINVAL);

	/* size a multiple of the chunk: one extra (empty) chunk is fine */
	{
		static const uint64_t four[] = { 100, 200, 300, 390 };

		s = good_spec(); s.size = 4 * 4096; s.offs = four; s.noffs = 4;
		ret = parse_spec(&s, s.size, s.comp, &x, &err);
		test_cond("extra empty chunk", ret == 0 && x && x->nchunks == 4 &&
			  x->off[4] == 400);
		ar_sozip_free(x);
		s.noffs = 3;
		ret = parse_spec(&s, s.size, s.comp, &x, &err);
		test_cond("exact count, multiple", ret == 0 && x);
		ar_sozip_free(x);
	}
}

/* ---- an archive written here ---- */

static char dir[] = "/tmp/test_sozip.XXXXXX";

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

/* content deflated with a full flush every chunk bytes: into *out, the
 * chunk offsets (but the first) into offs */
static void sozip_deflate(const unsigned char *src, size_t size, size_t chunk,
			  struct zbuf *out, uint64_t *offs, size_t *noffs)
{
	z_stream z;
	unsigned char tmp[1 << 16];
	size_t pos = 0, start = out->len;

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	*noffs = 0;
	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		int flush = pos + n == size ? Z_FINISH : Z_FULL_FLUSH;

		if (pos)
			offs[(*noffs)++] = out->len - start;
		z.next_in = (unsigned char *)src + pos;
		z.avail_in = (uInt)n;
		do {
			z.next_out = tmp;
			z.avail_out = sizeof(tmp);
			deflate(&z, flush);
			zb_put(out, tmp, sizeof(tmp) - z.avail_out);
		} while (z.avail_out == 0 || z.avail_in);
		pos += n;
	}
	deflateEnd(&z);
}

#define CONTENT (300 * 1000 + 123)
#define CHUNK 4096

static unsigned char *content;

/* x.npy (SOZip, CHUNK), plus a stored member after it; damage: 0 none,
 * 1 the offsets shifted by one byte (a valid-looking index that does not
 * match the data), 2 the index's CRC wrong, 3 chunk 10's deflate data
 * damaged (the index right). */
static char *write_archive(const char *name, int damage)
{
	struct zbuf b = { 0 }, comp = { 0 };
	uint64_t *offs = malloc((CONTENT / CHUNK + 2) * sizeof(*offs));
	size_t noffs, cd_off, idx_len;
	unsigned char h[64], *idx;
	uint32_t crc = crc32_update(0, content, CONTENT);
	struct zip_entry e[2];
	char *path = malloc(256);
	int fd;

	sozip_deflate(content, CONTENT, CHUNK, &comp, offs, &noffs);
	if (damage == 3)
		memset(comp.p + offs[9] + 20, 0xff, 16);
	memset(e, 0, sizeof(e));
	e[0].name = "x.npy"; e[0].name_len = 5; e[0].needed = 20;
	e[0].method = 8; e[0].crc = crc; e[0].comp_size = comp.len;
	e[0].size = CONTENT; e[0].lh_off = 0;
	zb_put(&b, h, ar_local_header(h, &e[0], false));
	zb_put(&b, comp.p, comp.len);
	/* the index record */
	idx_len = 32 + noffs * 8;
	idx = calloc(1, idx_len);
	put32(idx, 1);
	put32(idx + 8, CHUNK);
	put32(idx + 12, 8);
	put64(idx + 16, CONTENT);
	put64(idx + 24, comp.len);
	for (size_t k = 0; k < noffs; k++)
		put64(idx + 32 + 8 * k, offs[k] + (damage == 1));
	{
		struct zip_entry ie = { .name = ".x.npy.sozip.idx", .name_len = 16,
					.needed = 20, .comp_size = idx_len,
					.size = idx_len };

		ie.crc = crc32_update(0, idx, idx_len) + (damage == 2);
		zb_put(&b, h, ar_local_header(h, &ie, false));
		zb_put(&b, idx, idx_len);
	}
	e[1].name = "y.txt"; e[1].name_len = 5; e[1].needed = 20;
	e[1].crc = crc32_update(0, "hello", 5); e[1].comp_size = 5;
	e[1].size = 5; e[1].lh_off = b.len;
	zb_put(&b, h, ar_local_header(h, &e[1], false));
	zb_put(&b, "hello", 5);
	cd_off = b.len;
	for (int k = 0; k < 2; k++) {
		unsigned char c[128];

		zb_put(&b, c, ar_central_entry(c, &e[k]));
	}
	{
		unsigned char end[AR_END_MAX];

		zb_put(&b, end, ar_end_records(end, 2, cd_off, b.len - cd_off));
	}
	snprintf(path, 256, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, b.p, b.len) != (ssize_t)b.len)
		abort();
	close(fd);
	free(idx);
	free(offs);
	free(comp.p);
	free(b.p);
	return path;
}

static bool range_ok(struct archive *a, size_t i, uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	struct npz_err err = { "" };
	ssize_t n = archive_member_read(a, i, buf, len, off, &err);
	size_t want = off >= CONTENT ? 0 : CONTENT - off < len ?
		      CONTENT - off : len;
	bool ok = n == (ssize_t)want &&
		  (want == 0 || memcmp(buf, content + off, want) == 0);

	if (!ok)
		printf("  read %zu at %llu: %zd (%s)\n", len,
		       (unsigned long long)off, n, err.msg);
	free(buf);
	return ok;
}

struct thr {
	struct archive *a;
	unsigned seed;
	bool ok;
};

static void *thr_main(void *p)
{
	struct thr *t = p;

	t->ok = true;
	for (int k = 0; k < 300 && t->ok; k++) {
		uint64_t off = (uint64_t)rand_r(&t->seed) % CONTENT;
		size_t len = 1 + (size_t)rand_r(&t->seed) % (3 * CHUNK);

		t->ok = range_ok(t->a, 0, off, len);
	}
	return NULL;
}

static void test_reads(void)
{
	char *path = write_archive("good.zip", 0);
	struct archive *a;
	struct npz_err err = { "" };
	struct member *m;
	bool ok = true;

	test_cond("open", archive_open(path, &a, &err) == 0);
	m = &a->m[0];
	/* chunk boundaries, the last partial chunk, ranges over chunks */
	static const uint64_t offs[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1,
					 5 * CHUNK - 3, CONTENT - CHUNK,
					 CONTENT / CHUNK * CHUNK - 1,
					 CONTENT / CHUNK * CHUNK, CONTENT - 1 };
	static const size_t lens[] = { 1, 100, CHUNK, CHUNK + 1, 3 * CHUNK + 7,
				       CONTENT };

	for (size_t i = 0; i < sizeof(offs) / sizeof(*offs); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(*lens); j++)
			ok = ok && range_ok(a, 0, offs[i], lens[j]);
	test_cond("reads at boundaries", ok);
	{
		/* 128 KiB-style reads: each chunk inflated once, its other
		 * parts served from the chunk kept */
		uint64_t hits = ar_sozip_tail_hits(), off;
		size_t piece = CHUNK / 3 + 1;

		for (off = 0; ok && off < CONTENT; off += piece)
			ok = range_ok(a, 0, off, piece);
		test_cond("reads in thirds of a chunk", ok);
		test_cond("kept chunks serve the other parts",
			  ar_sozip_tail_hits() - hits >= CONTENT / CHUNK);
	}
	test_cond("index found", atomic_load(&m->sz) &&
		  atomic_load(&m->sz)->nchunks == (CONTENT + CHUNK - 1) / CHUNK &&
		  !atomic_load(&m->sz)->broken);
	test_cond("no cache file", a->cache_fd < 0 &&
		  atomic_load(&m->frontier) == 0);
	test_cond("index right before y.txt",
		  atomic_load(&m->sz)->rec_end == a->m[1].lh_off);
	test_cond("extent end", ar_sozip_extent_end(a, m) == a->m[1].lh_off);
	test_cond("stored member: no index",
		  ar_sozip_extent_end(a, &a->m[1]) == 0);
	{
		struct thr t[4];
		pthread_t tid[4];

		for (int k = 0; k < 4; k++) {
			t[k].a = a;
			t[k].seed = (unsigned)k + 1;
			pthread_create(&tid[k], NULL, thr_main, &t[k]);
		}
		for (int k = 0; k < 4; k++) {
			pthread_join(tid[k], NULL);
			ok = ok && t[k].ok;
		}
		test_cond("reads from 4 threads", ok);
	}
	test_cond("check", archive_check_member(a, 0, &err) == 0);
	archive_close(a);
	free(path);

	/* offsets that look right but do not match: dropped, bytes right */
	path = write_archive("shifted.zip", 1);
	test_cond("open shifted", archive_open(path, &a, &err) == 0);
	m = &a->m[0];
	test_cond("shifted: read", range_ok(a, 0, 7 * CHUNK + 5, 2 * CHUNK));
	test_cond("shifted: index dropped", atomic_load(&m->sz) &&
		  atomic_load(&m->sz)->broken);
	test_cond("shifted: read again", range_ok(a, 0, 3, CONTENT));
	test_cond("shifted: the index stays in the extent",
		  ar_sozip_extent_end(a, m) == a->m[1].lh_off);
	archive_close(a);
	free(path);

	/* an index with a bad CRC: not used at all */
	path = write_archive("badcrc.zip", 2);
	test_cond("open badcrc", archive_open(path, &a, &err) == 0);
	m = &a->m[0];
	test_cond("badcrc: read", range_ok(a, 0, CONTENT - 100, 100));
	test_cond("badcrc: no index", ar_sozip_extent_end(a, m) == 0);
	test_cond("badcrc: cached the usual way",
		  atomic_load(&m->frontier) > 0);
	archive_close(a);
	free(path);
}

/* ---- multi-chunk reads through the inflate pool ---- */

struct big_thr {
	struct archive *a;
	unsigned seed;
	bool ok;
};

static void *big_main(void *p)
{
	struct big_thr *t = p;

	t->ok = true;
	for (int k = 0; k < 200 && t->ok; k++) {
		uint64_t off = (uint64_t)rand_r(&t->seed) % CONTENT;
		size_t len = 1 + (size_t)rand_r(&t->seed) % (16 * CHUNK);

		t->ok = range_ok(t->a, 0, off, len);
	}
	return NULL;
}

/* ar_sozip_read of [off, off + len) with the pool on or off: its result,
 * the bytes into buf */
static int sozip_read_mode(struct archive *a, bool parallel, unsigned char *buf,
			   size_t len, uint64_t off)
{
	struct npz_err err = { "" };
	int ret;

	ar_sozip_set_parallel(parallel);
	ret = ar_sozip_read(a, &a->m[0], buf, len, off, &err);
	ar_sozip_set_parallel(true);
	return ret;
}

static void test_pool(void)
{
	char *path = write_archive("pool.zip", 0);
	struct archive *a;
	struct npz_err err = { "" };
	bool ok = true;
	unsigned char *p1 = malloc(CONTENT), *p2 = malloc(CONTENT);
	static const uint64_t offs[] = { 0, 1, CHUNK - 1, 3 * CHUNK + 17,
					 CONTENT - 5 * CHUNK - 3 };
	static const size_t lens[] = { CHUNK + 1, 2 * CHUNK, 4 * CHUNK - 9,
				       4 * CHUNK, 16 * CHUNK + 5 };

	test_cond("pool: open", archive_open(path, &a, &err) == 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(*offs); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(*lens); j++) {
			size_t len = lens[j];

			if (offs[i] + len > CONTENT)
				len = (size_t)(CONTENT - offs[i]);
			memset(p1, 1, len);
			memset(p2, 2, len);
			ok = ok && sozip_read_mode(a, true, p1, len, offs[i]) == 0 &&
			     sozip_read_mode(a, false, p2, len, offs[i]) == 0 &&
			     memcmp(p1, p2, len) == 0 &&
			     memcmp(p1, content + offs[i], len) == 0;
		}
	test_cond("pool: multi-chunk reads equal the serial ones", ok);
	ok = sozip_read_mode(a, true, p1, CONTENT, 0) == 0 &&
	     memcmp(p1, content, CONTENT) == 0;
	test_cond("pool: the whole member in one read", ok);
	{
		struct big_thr t[8];
		pthread_t tid[8];

		for (int k = 0; k < 8; k++) {
			t[k].a = a;
			t[k].seed = (unsigned)k + 11;
			pthread_create(&tid[k], NULL, big_main, &t[k]);
		}
		for (int k = 0; k < 8; k++) {
			pthread_join(tid[k], NULL);
			ok = ok && t[k].ok;
		}
		test_cond("pool: big reads from 8 threads", ok);
	}
	test_cond("pool: index kept", !atomic_load(&a->m[0].sz)->broken);
	archive_close(a);
	free(path);

	/* chunk 10 damaged: a read of chunks 8..12 falls back, in both modes,
	 * as a read of chunks 0..3 (before) does not */
	path = write_archive("damaged.zip", 3);
	for (int mode = 0; mode < 2; mode++) {
		struct member *m;
		int r;

		test_cond("damaged: open", archive_open(path, &a, &err) == 0);
		m = &a->m[0];
		r = sozip_read_mode(a, mode, p1, 4 * CHUNK, 0);
		test_cond("damaged: chunks 0..3 read",
			  r == 0 && memcmp(p1, content, 4 * CHUNK) == 0 &&
			  !atomic_load(&m->sz)->broken);
		r = sozip_read_mode(a, mode, p1, 5 * CHUNK - 6, 8 * CHUNK + 3);
		test_cond(mode ? "damaged: parallel read falls back"
			       : "damaged: serial read falls back",
			  r == AR_SOZIP_NONE && atomic_load(&m->sz)->broken);
		r = sozip_read_mode(a, mode, p1, 2 * CHUNK, 0);
		test_cond("damaged: later reads fall back too",
			  r == AR_SOZIP_NONE);
		/* the ordinary path: the deflate data is damaged */
		test_cond("damaged: read fails",
			  archive_member_read(a, 0, p1, 5 * CHUNK, 8 * CHUNK,
					      &err) < 0);
		archive_close(a);
	}
	free(path);
	free(p1);
	free(p2);
}

int main(void)
{
	unsigned seed = 7;

	test_parse();
	if (!mkdtemp(dir))
		return 1;
	setenv("TMPDIR", dir, 1);
	content = malloc(CONTENT);
	/* compressible, not trivially */
	for (size_t k = 0; k < CONTENT; k++)
		content[k] = (unsigned char)(k % 251 < 40 ? (size_t)rand_r(&seed) :
					     k / 1000);
	test_reads();
	test_pool();
	free(content);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("cannot remove %s\n", dir);
	}
	return test_report();
}
