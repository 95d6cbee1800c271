/* test_patch.c - archive_commit() with content read through a callback
 * (archive_change.read), patches of stored members (patch, patch_of,
 * ranges), the CRC arithmetic the clone path patches with
 * (crc32_combine over the bytes after a changed block), crc32_update()
 * against zlib, and wbuf's running CRC.
 *
 * Fixtures are written with libzip from bytes made here; results are read
 * back with archive_open() and checked byte by byte, by CRC (zlib's
 * crc32_z) and by archive_check_member(), and by Python's zipfile
 * (testzip) as an independent reader.  The rewrite path (libzip) runs in
 * the temporary directory (ext4 here: no reflink).  The clone path runs on
 * a small reflink XFS image, loop-mounted for the test and always
 * unmounted (root only; skipped with a note otherwise), in a child
 * process: a process learns at its first commit whether it can clone, and
 * a crash there must not leave the image mounted. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "archive.h"
#include "crc.h"
#include "test.h"
#include "wbuf.h"

#define MTIME_OLD ((time_t)1600000000)	/* even: DOS times are 2 s */
#define MTIME_NEW ((time_t)1700000000)
#define MTIME_NEW2 ((time_t)1700000100)

static char tmpdir[256];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rnd() >> 56);
}

/* zlib's CRC-32, the oracle (not our crc32_update). */
static uint32_t zcrc(const void *p, size_t n)
{
	return (uint32_t)crc32_z(0, p, n);
}

static bool run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0;
}

/* ---- CRC arithmetic ------------------------------------------------- */

/* crc32_update() is zlib's crc32_z() for every length, alignment and
 * starting CRC (the carry-less path from 64 bytes on, the tail by zlib). */
static void test_crc_update(void)
{
	enum { MAX = (1u << 20) + 200 };
	unsigned char *buf = malloc(MAX);
	bool same = true;
	char d[128];

	fill_random(buf, MAX);
	for (int round = 0; round < 4000 && same; round++) {
		size_t align = rnd() % 64, len;
		uint32_t init = round % 3 ? (uint32_t)rnd() : 0;

		if (round < 300)
			len = (size_t)round;
		else
			len = rnd() % (round % 50 ? 5000 : MAX - 64);
		if (crc32_update(init, buf + align, len) !=
		    (uint32_t)crc32_z(init, buf + align, len)) {
			snprintf(d, sizeof(d), "crc32_update(0x%08x, buf+%zu, %zu)",
				 init, align, len);
			test_cond(d, 0);
			same = false;
		}
	}
	test_cond("crc32_update == crc32_z: random lengths, alignments, seeds",
		  same);
	/* split anywhere: continuing a CRC gives the CRC of the whole */
	same = true;
	for (int round = 0; round < 500 && same; round++) {
		size_t len = rnd() % 20000, cut = len ? rnd() % len : 0;

		same = crc32_update(crc32_update(0, buf, cut), buf + cut,
				    len - cut) == zcrc(buf, len);
	}
	test_cond("crc32_update continued over a split == whole", same);
	test_cond("crc32_update of nothing", crc32_update(0, buf, 0) == 0 &&
		  crc32_update(0x12345678, buf, 0) == 0x12345678 &&
		  crc32_update(0x12345678, NULL, 0) ==
		  (uint32_t)crc32_z(0x12345678, NULL, 0));
	test_cond("crc32_update of \"123456789\" is 0xcbf43926",
		  crc32_update(0, "123456789", 9) == 0xcbf43926u);
	free(buf);
}

/* The formula apply_patch() (src/zip/clone.c) updates a member's CRC with:
 * for each changed block [o, o + l) of a buffer of size bytes,
 * crc ^= crc32_combine(crc(old block) ^ crc(new block), 0, size - o - l). */
static uint32_t patched_crc(uint32_t crc, const unsigned char *old,
			    const unsigned char *now, uint64_t size,
			    uint64_t o, uint64_t l)
{
	return crc ^ (uint32_t)crc32_combine(crc32_update(0, old + o, (size_t)l) ^
					     crc32_update(0, now + o, (size_t)l),
					     0, (z_off_t)(size - o - l));
}

static void test_crc_patch_formula(void)
{
	static const size_t sizes[] = {
		1, 2, 15, 63, 64, 65, 100, 4095, 4096, 4097, 8193, 65536,
		100000, (1u << 20) + 3, 3u << 20,
	};
	size_t max = 3u << 20;
	unsigned char *old = malloc(max), *now = malloc(max);
	bool same = true;
	char d[160];

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t size = sizes[s];

		for (int round = 0; round < 12; round++) {
			uint32_t crc;
			uint64_t pos = 0;
			int nseg = 0;

			fill_random(old, size);
			memcpy(now, old, size);
			crc = zcrc(old, size);
			/* sorted disjoint segments; round 0: the whole
			 * buffer; round 1: first and last byte */
			while (pos < size) {
				uint64_t o, l;

				if (round == 0) {
					o = 0;
					l = size;
				} else if (round == 1) {
					o = nseg == 0 ? 0 : size - 1;
					l = 1;
					if (nseg == 1 && size == 1)
						break;
				} else {
					o = pos + rnd() % (size - pos);
					l = 1 + rnd() % (size - o);
					if (l > 70000)
						l = 1 + rnd() % 70000;
				}
				if (o < pos)
					break;
				for (uint64_t i = o; i < o + l; i++)
					now[i] ^= (unsigned char)(1 + rnd() % 255);
				crc = patched_crc(crc, old, now, size, o, l);
				pos = o + l + 1;
				if (++nseg == (round == 1 ? 2 : 6))
					break;
			}
			if (crc != zcrc(now, size)) {
				snprintf(d, sizeof(d), "patch CRC formula: size "
					 "%zu round %d (%d segments): got "
					 "0x%08x want 0x%08x", size, round,
					 nseg, crc, zcrc(now, size));
				test_cond(d, 0);
				same = false;
			}
		}
	}
	test_cond("patch CRC formula == CRC of the new buffer", same);
	free(old);
	free(now);
}

/* apply_patch() shifts by the bytes after a block, which exceed 4 GiB in
 * a big member: z_off_t must be 64-bit there.  crc32_combine(x, 0, n)
 * shifts x over n zero bytes; shifting over 5 GiB at once must equal five
 * shifts of 1 GiB (each fits 31 bits).  With a 32-bit z_off_t, 5 << 30
 * would wrap to 1 << 30 and differ.  The shift itself is checked against
 * real zeros first: crc(A || zeros) == shift(crc(A)) ^ crc(zeros). */
static void test_crc_64bit(void)
{
	enum { Z = 3u << 20, A = 1000 };
	unsigned char *buf = calloc(1, A + Z);
	uint64_t five = 5ull << 30;
	uint32_t x, chain, once;
	bool ok = true;

	test_cond("z_off_t is 64-bit", sizeof(z_off_t) == 8);
	fill_random(buf, A);
	x = zcrc(buf, A);
	test_cond("crc32_combine(x, 0, n) shifts x over n zeros",
		  (uint32_t)crc32_combine(x, 0, Z) ==
		  (zcrc(buf, A + Z) ^ zcrc(buf + A, Z)));
	for (int round = 0; round < 20 && ok; round++) {
		x = (uint32_t)rnd();
		chain = x;
		for (int i = 0; i < 5; i++)
			chain = (uint32_t)crc32_combine(chain, 0,
							(z_off_t)1 << 30);
		once = (uint32_t)crc32_combine(x, 0, (z_off_t)five);
		ok = chain == once &&
		     once != (uint32_t)crc32_combine(x, 0, (z_off_t)1 << 30);
	}
	test_cond("crc32_combine(x, 0, 5 GiB) == five 1 GiB shifts (64-bit "
		  "z_off_t)", ok);
	/* and the patch formula across it: a block 5 GiB + 7 before the end */
	{
		unsigned char o[16], n[16];
		uint32_t d, step;

		fill_random(o, sizeof(o));
		fill_random(n, sizeof(n));
		d = zcrc(o, sizeof(o)) ^ zcrc(n, sizeof(n));
		step = (uint32_t)crc32_combine(d, 0, 7);
		for (int i = 0; i < 5; i++)
			step = (uint32_t)crc32_combine(step, 0, (z_off_t)1 << 30);
		test_cond("patch delta shifted over 5 GiB + 7 bytes",
			  (uint32_t)crc32_combine(d, 0, (z_off_t)(five + 7)) ==
			  step);
	}
	free(buf);
}

/* ---- wbuf's running CRC --------------------------------------------- */

/* wbuf_crc() of w: true and the CRC of content[0, size)? */
static bool crc_is(const struct wbuf *w, const unsigned char *content,
		   uint64_t size)
{
	uint32_t c = 0xdeadbeef;

	return wbuf_crc(w, &c) && w->size == size &&
	       c == zcrc(content, (size_t)size);
}

static bool crc_lost(const struct wbuf *w)
{
	uint32_t c;

	return !wbuf_crc(w, &c);
}

/* Content of w equals content[0, size)? */
static bool wbuf_is(struct wbuf *w, const unsigned char *content,
		    uint64_t size)
{
	unsigned char *got = malloc((size_t)size + 1);
	bool ok = wbuf_pread(w, got, (size_t)size + 1, 0) == (ssize_t)size &&
		  !memcmp(got, content, (size_t)size);

	free(got);
	return ok;
}

/* Write content[0, total) in random chunks from 0; true if wbuf_crc()
 * was right after every write. */
static bool write_in_order(struct wbuf *w, const unsigned char *content,
			   uint64_t total, size_t max_chunk, bool *was_mem,
			   bool *now_spilled)
{
	uint64_t off = 0;
	uint32_t want = 0, got;
	bool ok = true;

	*was_mem = w->fd < 0;
	while (off < total && ok) {
		size_t n = 1 + (size_t)(rnd() % max_chunk);

		if (n > total - off)
			n = (size_t)(total - off);
		ok = wbuf_pwrite(w, content + off, n, off) == 0;
		want = (uint32_t)crc32_z(want, content + off, n);
		off += n;
		got = ~want;
		ok = ok && wbuf_crc(w, &got) && got == want && w->size == off;
		if (off < WBUF_MEM_MAX && w->fd >= 0)
			*was_mem = false;
	}
	*now_spilled = w->fd >= 0;
	return ok;
}

static void test_wbuf_crc(void)
{
	const uint64_t total = WBUF_MEM_MAX + 300000;
	unsigned char *data = malloc(total), *model = malloc(total + 70000);
	bool mem, spilled, ok;
	struct wbuf w;
	uint32_t c = 1;
	uint64_t size;

	fill_random(data, total);
	wbuf_init(&w);
	test_cond("wbuf crc: empty is CRC 0", wbuf_crc(&w, &c) && c == 0);

	/* in order from 0, in memory, then across the spill switch */
	ok = write_in_order(&w, data, total, 70000, &mem, &spilled);
	test_cond("wbuf crc: right after every in-order write", ok);
	test_cond("wbuf crc: the writes went from memory to the spill file",
		  mem && spilled);
	test_cond("wbuf crc: content", wbuf_is(&w, data, total));

	/* a first write of WBUF_SPILL_NOW bytes goes to the spill file */
	wbuf_release(&w);
	wbuf_init(&w);
	ok = wbuf_pwrite(&w, data, WBUF_SPILL_NOW, 0) == 0 && w.fd >= 0 &&
	     crc_is(&w, data, WBUF_SPILL_NOW);
	test_cond("wbuf crc: a big first write spills at once", ok &&
		  wbuf_is(&w, data, WBUF_SPILL_NOW));

	/* one write straddling WBUF_MEM_MAX (after smaller ones in memory) */
	wbuf_release(&w);
	wbuf_init(&w);
	ok = wbuf_pwrite(&w, data, 1000, 0) == 0 &&
	     wbuf_pwrite(&w, data + 1000, WBUF_MEM_MAX - 2000, 1000) == 0 &&
	     crc_is(&w, data, WBUF_MEM_MAX - 1000) && w.fd < 0;
	ok = ok && wbuf_pwrite(&w, data + WBUF_MEM_MAX - 1000, 5000,
			       WBUF_MEM_MAX - 1000) == 0 && w.fd >= 0;
	test_cond("wbuf crc: one write across the spill switch",
		  ok && crc_is(&w, data, WBUF_MEM_MAX + 4000));
	ok = wbuf_pwrite(&w, data + WBUF_MEM_MAX + 4000, 1,
			 WBUF_MEM_MAX + 4000) == 0;
	test_cond("wbuf crc: spilled, one more byte",
		  ok && crc_is(&w, data, WBUF_MEM_MAX + 4001));

	/* out of order: overwrite inside (different bytes) */
	ok = wbuf_pwrite(&w, "xyz", 3, 100) == 0;
	test_cond("wbuf crc: lost after an overwrite (spilled)",
		  ok && crc_lost(&w));
	ok = wbuf_pwrite(&w, data, 10, w.size) == 0;
	test_cond("wbuf crc: still lost after appending again",
		  ok && crc_lost(&w));

	/* truncate to 0 and rewrite, spilled file kept */
	test_cond("wbuf crc: truncate to 0 gives it back",
		  wbuf_truncate(&w, 0) == 0 && crc_is(&w, data, 0));
	ok = write_in_order(&w, data, total, 300000, &mem, &spilled);
	test_cond("wbuf crc: rewritten in order after truncate to 0 (spilled)",
		  ok && spilled && crc_is(&w, data, total) &&
		  wbuf_is(&w, data, total));

	/* truncate to a non-zero size, smaller and larger */
	test_cond("wbuf crc: lost after truncate down (spilled)",
		  wbuf_truncate(&w, total - 1000) == 0 && crc_lost(&w));
	wbuf_release(&w);
	wbuf_init(&w);
	ok = wbuf_pwrite(&w, data, 5000, 0) == 0 && crc_is(&w, data, 5000);
	test_cond("wbuf crc: lost after truncate down (memory)",
		  ok && wbuf_truncate(&w, 4999) == 0 && crc_lost(&w));
	test_cond("wbuf crc: truncate to 0, rewrite (memory)",
		  wbuf_truncate(&w, 0) == 0 &&
		  wbuf_pwrite(&w, data, 3000, 0) == 0 &&
		  wbuf_pwrite(&w, data + 3000, 2000, 3000) == 0 &&
		  crc_is(&w, data, 5000));
	test_cond("wbuf crc: lost after truncate up (zeros not followed)",
		  wbuf_truncate(&w, 10000) == 0 && crc_lost(&w));
	test_cond("wbuf crc: truncate to 0 again",
		  wbuf_truncate(&w, 0) == 0 && crc_is(&w, data, 0));
	/* down and back up to the size it had: zeros where data was */
	ok = wbuf_pwrite(&w, data, 5000, 0) == 0 && crc_is(&w, data, 5000) &&
	     wbuf_truncate(&w, 4000) == 0 && wbuf_truncate(&w, 5000) == 0;
	test_cond("wbuf crc: lost after truncate down and up to the old size",
		  ok && crc_lost(&w));
	wbuf_truncate(&w, 0);

	/* a hole write, and a rewrite from 0 without truncating */
	ok = wbuf_pwrite(&w, data, 5000, 0) == 0 &&
	     wbuf_pwrite(&w, data, 10, 6000) == 0;
	test_cond("wbuf crc: lost after a write past the end (hole)",
		  ok && crc_lost(&w));
	wbuf_truncate(&w, 0);
	ok = wbuf_pwrite(&w, data, 5000, 0) == 0 &&
	     wbuf_pwrite(&w, data, 5000, 0) == 0;
	test_cond("wbuf crc: lost after writing from 0 again (no truncate)",
		  ok && crc_lost(&w));
	/* truncating to the size it has changes nothing: a CRC it still
	 * reports must be the content's */
	wbuf_truncate(&w, 0);
	ok = wbuf_pwrite(&w, data, 5000, 0) == 0 &&
	     wbuf_truncate(&w, 5000) == 0;
	test_cond("wbuf crc: truncate to the same size: right or lost",
		  ok && (crc_lost(&w) || crc_is(&w, data, 5000)));
	wbuf_release(&w);

	/* random operations against a model of the flag */
	wbuf_init(&w);
	size = 0;
	ok = true;
	{
		bool kept = true;

		for (int round = 0; round < 3000 && ok; round++) {
			unsigned op = (unsigned)(rnd() % 10);
			size_t n = 1 + (size_t)(rnd() % 3000);
			uint64_t off = size;

			if (op < 6) {		/* append */
				fill_random(model + size, n);
				ok = wbuf_pwrite(&w, model + size, n, size) == 0;
				size += n;
			} else if (op == 6) {	/* overwrite or hole */
				off = rnd() % (size + 100);
				if (off == size)
					off = size + 1;
				if (off > size)
					memset(model + size, 0, (size_t)(off - size));
				fill_random(model + off, n);
				ok = wbuf_pwrite(&w, model + off, n, off) == 0;
				if (off + n > size)
					size = off + n;
				kept = false;
			} else if (op == 7) {	/* truncate, not 0, not same */
				uint64_t ns = 1 + rnd() % (size + 100);

				if (ns == size)
					ns++;
				if (ns > size)
					memset(model + size, 0, (size_t)(ns - size));
				ok = wbuf_truncate(&w, ns) == 0;
				size = ns;
				kept = false;
			} else if (op == 8) {	/* truncate to 0 */
				ok = wbuf_truncate(&w, 0) == 0;
				size = 0;
				kept = true;
			} else if (size > 60000) {	/* keep it small */
				ok = wbuf_truncate(&w, 0) == 0;
				size = 0;
				kept = true;
			}
			ok = ok && w.size == size && wbuf_is(&w, model, size) &&
			     (kept ? crc_is(&w, model, size) : crc_lost(&w));
		}
	}
	test_cond("wbuf crc: random writes and truncates match the model", ok);
	wbuf_release(&w);

	/* a copy-on-write wbuf was not written from its start */
	{
		FILE *f = tmpfile();
		struct wbuf_base b = { .fd = fileno(f), .off = 0, .len = 100 };

		if (fwrite(data, 1, 100, f) != 100 || fflush(f))
			test_cond("cow base written", 0);
		wbuf_init(&w);
		wbuf_init_cow(&w, &b);
		test_cond("wbuf crc: none for a copy-on-write wbuf",
			  crc_lost(&w));
		test_cond("wbuf crc: none after writing it either",
			  wbuf_pwrite(&w, "a", 1, 100) == 0 && crc_lost(&w));
		wbuf_release(&w);
		fclose(f);
	}
	free(model);
	free(data);
}

/* ---- fixtures ------------------------------------------------------- */

#define FX_MAX 8

/* An archive's expected members, in order. */
struct fx {
	size_t n;
	const char *name[FX_MAX];
	unsigned char *data[FX_MAX];
	size_t len[FX_MAX];
	uint16_t method[FX_MAX];
	time_t mtime[FX_MAX];
};

static void fx_add(struct fx *f, const char *name, size_t len,
		   uint16_t method)
{
	size_t i = f->n++;

	f->name[i] = name;
	f->len[i] = len;
	f->method[i] = method;
	f->mtime[i] = MTIME_OLD;
	f->data[i] = malloc(len ? len : 1);
	if (method == ARCHIVE_DEFLATE) {	/* compressible */
		for (size_t j = 0; j < len; j++)
			f->data[i][j] = (unsigned char)("numpy zip "[j % 10] +
							(j / 4096) % 7);
		for (size_t j = 0; j < len; j += 997)
			f->data[i][j] = (unsigned char)rnd();
	} else {
		fill_random(f->data[i], len);
	}
}

static void fx_release(struct fx *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->data[i]);
	f->n = 0;
}

/* A deep copy. */
static void fx_copy(struct fx *dst, const struct fx *src)
{
	*dst = *src;
	for (size_t i = 0; i < src->n; i++) {
		dst->data[i] = malloc(src->len[i] ? src->len[i] : 1);
		memcpy(dst->data[i], src->data[i], src->len[i]);
	}
}

/* The standard fixture: small stored, 300 KiB stored, deflated, 3 MiB
 * stored, small stored. */
enum { M_HEAD, M_BIG, M_Z, M_MB, M_TAIL, M_COUNT };

static void fx_standard(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_add(f, "head.bin", 1000, ARCHIVE_STORE);
	fx_add(f, "big.bin", 300u << 10, ARCHIVE_STORE);
	fx_add(f, "z.bin", 50000, ARCHIVE_DEFLATE);
	fx_add(f, "mb.bin", (3u << 20) + 17, ARCHIVE_STORE);
	fx_add(f, "tail.bin", 5000, ARCHIVE_STORE);
}

/* Write f as a zip at path with libzip.  True on success. */
static bool make_zip(const char *path, const struct fx *f)
{
	zip_t *za;
	int e;

	unlink(path);
	za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &e);
	if (!za)
		return false;
	for (size_t i = 0; i < f->n; i++) {
		zip_source_t *src = zip_source_buffer(za, f->data[i],
						      f->len[i], 0);
		zip_int64_t idx = src ? zip_file_add(za, f->name[i], src, 0) : -1;

		if (idx < 0 ||
		    zip_set_file_compression(za, (zip_uint64_t)idx,
					     f->method[i] == ARCHIVE_DEFLATE ?
					     ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) < 0 ||
		    zip_file_set_mtime(za, (zip_uint64_t)idx, f->mtime[i], 0) < 0) {
			zip_discard(za);
			return false;
		}
	}
	return zip_close(za) == 0;
}

/* Does a hold exactly f's members (name, method, size, every byte, CRC as
 * zlib computes it, sound by archive_check_member, mtime)?  Each problem
 * is reported as a failed check naming tag and the member. */
static void check_archive(struct archive *a, const struct fx *f,
			  const char *tag)
{
	char d[512];
	bool count_ok = a && archive_count(a) == f->n;

	snprintf(d, sizeof(d), "%s: %zu members", tag, f->n);
	test_cond(d, count_ok);
	if (!count_ok)
		return;
	for (size_t i = 0; i < f->n; i++) {
		const struct archive_member *m = archive_member(a, i);
		unsigned char *got = malloc(f->len[i] + 1);
		struct npz_err err = { "" };
		uint32_t want = zcrc(f->data[i], f->len[i]);
		ssize_t r;
		int cm;

		snprintf(d, sizeof(d), "%s: %s name, method, size", tag,
			 f->name[i]);
		test_cond(d, !strcmp(m->name, f->name[i]) &&
			  m->method == f->method[i] && m->size == f->len[i]);
		r = archive_member_read(a, i, got, f->len[i] + 1, 0, NULL);
		snprintf(d, sizeof(d), "%s: %s every byte", tag, f->name[i]);
		test_cond(d, r == (ssize_t)f->len[i] &&
			  !memcmp(got, f->data[i], f->len[i]));
		if (r == (ssize_t)f->len[i] && memcmp(got, f->data[i], f->len[i])) {
			size_t j = 0;

			while (got[j] == f->data[i][j])
				j++;
			printf("  first difference at byte %zu: got 0x%02x want "
			       "0x%02x\n", j, got[j], f->data[i][j]);
		}
		snprintf(d, sizeof(d), "%s: %s CRC (got 0x%08x, want 0x%08x)",
			 tag, f->name[i], m->crc, want);
		test_cond(d, m->crc == want);
		cm = archive_check_member(a, i, &err);
		snprintf(d, sizeof(d), "%s: %s archive_check_member (%d %s)", tag,
			 f->name[i], cm, err.msg);
		test_cond(d, cm == 0);
		snprintf(d, sizeof(d), "%s: %s mtime (got %lld, want %lld)", tag,
			 f->name[i], (long long)m->mtime, (long long)f->mtime[i]);
		test_cond(d, m->mtime == f->mtime[i]);
		free(got);
	}
}

/* check_archive() on the archive at path opened anew, and Python's
 * zipfile reads every member with a good CRC. */
static void check_file(const char *path, const struct fx *f, const char *tag)
{
	struct archive *c = NULL;
	struct npz_err err = { "" };
	char d[512];
	int ret = archive_open(path, &c, &err);

	snprintf(d, sizeof(d), "%s: reopens (%d %s)", tag, ret, err.msg);
	test_cond(d, ret == 0);
	if (c)
		check_archive(c, f, tag);
	archive_close(c);
	snprintf(d, sizeof(d), "%s: Python's zipfile testzip()", tag);
	test_cond(d, run("/usr/bin/python3 -c 'import zipfile, sys; "
			 "sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() "
			 "is not None)' %s", path));
}

/* ---- content through a read callback ------------------------------- */

/* Content served from memory, recording which bytes were read, how many
 * times, and from which threads. */
struct src {
	const unsigned char *data;
	uint64_t size;		/* bytes there are (0 at or past) */
	size_t max_call;	/* short reads: at most this per call (0: any) */
	uint64_t fail_at;	/* a read reaching this offset gets -EIO */
	pthread_t caller;	/* the thread that commits */
	pthread_mutex_t lock;
	unsigned char *seen;	/* lock: per byte, times read (saturating) */
	uint64_t bytes;		/* lock: bytes handed out */
	uint64_t calls;		/* lock */
	uint64_t off_thread;	/* lock: calls from another thread */
	uint64_t bad;		/* lock: calls with len 0 or past the end */
};

static void src_init(struct src *s, const unsigned char *data, uint64_t size)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->size = size;
	s->fail_at = UINT64_MAX;
	s->caller = pthread_self();
	pthread_mutex_init(&s->lock, NULL);
	s->seen = calloc(1, (size_t)size + 1);
}

static void src_reset(struct src *s)
{
	pthread_mutex_lock(&s->lock);
	memset(s->seen, 0, (size_t)s->size + 1);
	s->bytes = s->calls = s->off_thread = s->bad = 0;
	pthread_mutex_unlock(&s->lock);
}

static void src_release(struct src *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->seen);
}

static ssize_t src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct src *s = ctx;
	size_t n = 0;

	if (off < s->size)
		n = s->size - off < len ? (size_t)(s->size - off) : len;
	if (s->max_call && n > s->max_call)
		n = s->max_call;
	pthread_mutex_lock(&s->lock);
	s->calls++;
	if (!pthread_equal(pthread_self(), s->caller))
		s->off_thread++;
	if (len == 0 || off >= s->size)
		s->bad++;
	for (size_t i = 0; i < n; i++)
		if (s->seen[off + i] < 255)
			s->seen[off + i]++;
	s->bytes += n;
	pthread_mutex_unlock(&s->lock);
	if (n && off + n > s->fail_at)
		return -EIO;
	memcpy(buf, s->data + off, n);
	return (ssize_t)n;
}

/* Every byte of s was read at least once. */
static bool src_read_all(struct src *s)
{
	for (uint64_t i = 0; i < s->size; i++)
		if (!s->seen[i])
			return false;
	return true;
}

/* Only the bytes of ranges were read, each exactly once. */
static bool src_read_only(struct src *s, const struct archive_range *r,
			  size_t nr)
{
	uint64_t want = 0, i = 0;

	for (size_t k = 0; k < nr; k++) {
		for (; i < r[k].off; i++)
			if (s->seen[i])
				return false;
		for (; i < r[k].off + r[k].len; i++)
			if (s->seen[i] != 1)
				return false;
		want += r[k].len;
	}
	for (; i < s->size; i++)
		if (s->seen[i])
			return false;
	return s->bytes == want;
}

static struct archive_change keep(size_t i, const char *name)
{
	struct archive_change c = { .name = name, .from = (ssize_t)i,
				    .fd = -1 };
	return c;
}

/* Change: content of s, stored, patching member `of` in ranges r. */
static struct archive_change patch(const char *name, struct src *s,
				   size_t of, const struct archive_range *r,
				   size_t nr, time_t mtime)
{
	struct archive_change c = {
		.name = name, .from = -1, .fd = -1, .read = src_read,
		.read_ctx = s, .size = s->size, .method = ARCHIVE_STORE,
		.level = -1, .mtime = mtime, .patch = true, .patch_of = of,
		.ranges = r, .nranges = nr,
	};
	return c;
}

/* New content of member `i` of f: its bytes changed in ranges r (every
 * byte there different from before). */
static void change_ranges(struct fx *f, size_t i,
			  const struct archive_range *r, size_t nr)
{
	for (size_t k = 0; k < nr; k++)
		for (uint64_t j = r[k].off; j < r[k].off + r[k].len; j++)
			f->data[i][j] ^= (unsigned char)(1 + rnd() % 255);
}

/* The data offset of member i (stored) in a's file, or UINT64_MAX. */
static uint64_t data_pos(struct archive *a, size_t i)
{
	uint64_t pos;
	size_t n;
	int fd;

	if (archive_member_span(a, i, 0, 1, &fd, &pos, &n, NULL) != 0)
		return UINT64_MAX;
	return pos;
}

/* The archive file's descriptor (of a's spans). */
static int archive_fd(struct archive *a)
{
	uint64_t pos;
	size_t n;
	int fd = -1;

	for (size_t i = 0; i < archive_count(a); i++)
		if (archive_member_span(a, i, 0, 1, &fd, &pos, &n, NULL) == 0)
			return fd;
	return -1;
}

static bool same_file_bytes(const char *x, const char *y)
{
	return run("cmp -s %s %s", x, y);
}

static bool no_temp_left(const char *dir)
{
	return !run("ls -a %s | grep -q npzfs-", dir);
}

/* Can files in dir be cloned (FICLONE)? */
static bool can_clone(const char *dir)
{
	int x = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int y = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	bool ok = x >= 0 && y >= 0 && ioctl(y, FICLONE, x) == 0;

	if (x >= 0)
		close(x);
	if (y >= 0)
		close(y);
	return ok;
}

/* Are all bytes [off, off + len) of fd in shared (reflinked) extents? */
static bool all_shared(int fd, uint64_t off, uint64_t len)
{
	enum { NEXT = 64 };
	size_t sz = sizeof(struct fiemap) + NEXT * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(sz);
	uint64_t cur = off, end = off + len;
	bool ok = fm != NULL;

	while (ok && cur < end) {
		memset(fm, 0, sz);
		fm->fm_start = cur;
		fm->fm_length = end - cur;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = NEXT;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0 || !fm->fm_mapped_extents) {
			ok = false;
			break;
		}
		for (unsigned i = 0; ok && i < fm->fm_mapped_extents && cur < end;
		     i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			if (e->fe_logical > cur ||
			    !(e->fe_flags & FIEMAP_EXTENT_SHARED))
				ok = false;
			else if (e->fe_logical + e->fe_length > cur)
				cur = e->fe_logical + e->fe_length;
		}
	}
	free(fm);
	return ok;
}

/* ---- patches -------------------------------------------------------- */

/* Patch commits on dir/patch.zip, one after the other: two members
 * patched in one commit (first and last byte, ranges across 4096-byte
 * pages and across the clone path's 1 MiB blocks); nranges == 0 (only the
 * mtime changes); a patch under another name (added); a patch in place
 * while the old bytes are copied under another name.  mode "clone":
 * patches in place must take the clone path (only the ranges read, the
 * member kept where it was); "copy": only the ranges read, written over
 * the member's copy, its data aligned; "rewrite" (libzip): all content
 * read. */
static void test_patches(const char *dir, const char *mode)
{
	bool clone = !strcmp(mode, "clone"), copy = !strcmp(mode, "copy");
	static const struct archive_range rb[] = {
		{ 0, 1 }, { 4090, 20 }, { 8190, 10 }, { 100000, 5000 },
		{ (300u << 10) - 1, 1 },
	};
	static const struct archive_range rm[] = {
		{ 0, 4096 }, { 1048000, 1572864 }, { (3u << 20) + 16, 1 },
	};
	static const struct archive_range rn[] = { { 200000, 3 } };
	const char *path_tag = mode;
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[M_COUNT + 1];
	struct fx f0, f1, f2, f3, f4;
	struct src sb, sm;
	char p[512], d[512];
	uint64_t pos_big = 0, pos_mb = 0;
	int ret;

	snprintf(p, sizeof(p), "%s/patch.zip", dir);
	fx_standard(&f0);
	test_cond("patch fixture written", make_zip(p, &f0));
	check_file(p, &f0, "fixture");
	ret = archive_open(p, &a, &err);
	test_cond("patch: open", ret == 0);
	if (ret) {
		fx_release(&f0);
		return;
	}
	pos_big = data_pos(a, M_BIG);
	pos_mb = data_pos(a, M_MB);

	/* 1: big.bin and mb.bin patched, the others kept */
	fx_copy(&f1, &f0);
	change_ranges(&f1, M_BIG, rb, 5);
	change_ranges(&f1, M_MB, rm, 3);
	f1.mtime[M_BIG] = f1.mtime[M_MB] = MTIME_NEW;
	src_init(&sb, f1.data[M_BIG], f1.len[M_BIG]);
	src_init(&sm, f1.data[M_MB], f1.len[M_MB]);
	ch[M_HEAD] = keep(M_HEAD, "head.bin");
	ch[M_BIG] = patch("big.bin", &sb, M_BIG, rb, 5, MTIME_NEW);
	ch[M_Z] = keep(M_Z, "z.bin");
	ch[M_MB] = patch("mb.bin", &sm, M_MB, rm, 3, MTIME_NEW);
	ch[M_MB].crc_known = true;	/* a right one: changes nothing */
	ch[M_MB].crc = zcrc(f1.data[M_MB], f1.len[M_MB]);
	ch[M_TAIL] = keep(M_TAIL, "tail.bin");
	ret = archive_commit(a, ch, M_COUNT, &b, &err);
	snprintf(d, sizeof(d), "%s patch: commit (%d %s)", path_tag, ret,
		 err.msg);
	test_cond(d, ret == 0 && b);
	if (clone) {
		snprintf(d, sizeof(d), "%s patch: only the ranges read "
			 "(big.bin: %llu bytes, mb.bin: %llu bytes)", path_tag,
			 (unsigned long long)sb.bytes,
			 (unsigned long long)sm.bytes);
		test_cond(d, src_read_only(&sb, rb, 5) &&
			  src_read_only(&sm, rm, 3));
		test_cond("clone patch: members kept in place", b &&
			  data_pos(b, M_BIG) == pos_big &&
			  data_pos(b, M_MB) == pos_mb);
		/* the 4 KiB block of the file at big.bin's byte 50000 is
		 * the old file's (cloned, unchanged); the one at 102000 was
		 * written */
		if (b) {
			int fd = archive_fd(b);
			uint64_t at = (pos_big + 50000) / 4096 * 4096;
			uint64_t wr = (pos_big + 102000) / 4096 * 4096;

			test_cond("clone patch: unchanged blocks still shared",
				  all_shared(fd, at, 4096) &&
				  all_shared(fd, (pos_mb + (2600u << 10)) /
					     4096 * 4096, 4096));
			test_cond("clone patch: changed blocks written",
				  !all_shared(fd, wr, 4096));
		}
	} else if (copy) {
		snprintf(d, sizeof(d), "copy patch: only the ranges read "
			 "(big.bin: %llu bytes, mb.bin: %llu bytes)",
			 (unsigned long long)sb.bytes,
			 (unsigned long long)sm.bytes);
		test_cond(d, src_read_only(&sb, rb, 5) &&
			  src_read_only(&sm, rm, 3));
		test_cond("copy patch: data of 64 KiB or more on 4096 bytes, "
			  "the rest on 64", b &&
			  data_pos(b, M_BIG) % 4096 == 0 &&
			  data_pos(b, M_MB) % 4096 == 0 &&
			  data_pos(b, M_HEAD) % 64 == 0 &&
			  data_pos(b, M_TAIL) % 64 == 0);
	} else {
		snprintf(d, sizeof(d), "%s patch: all content read (big.bin: "
			 "%llu bytes, mb.bin: %llu bytes)", path_tag,
			 (unsigned long long)sb.bytes,
			 (unsigned long long)sm.bytes);
		test_cond(d, src_read_all(&sb) && src_read_all(&sm));
	}
	test_cond("patch: no read of nothing or past the end",
		  sb.bad == 0 && sm.bad == 0);
	snprintf(d, sizeof(d), "%s patch: new archive", path_tag);
	if (b)
		check_archive(b, &f1, d);
	snprintf(d, sizeof(d), "%s patch: reopened", path_tag);
	check_file(p, &f1, d);
	snprintf(d, sizeof(d), "%s patch: old archive reads old bytes", path_tag);
	check_archive(a, &f0, d);
	test_cond("patch: no temporary file left", no_temp_left(dir));
	archive_close(a);
	a = b;
	b = NULL;

	/* 2: nranges == 0 (and ranges NULL): same bytes, new mtime */
	fx_copy(&f2, &f1);
	f2.mtime[M_BIG] = MTIME_NEW2;
	src_reset(&sb);
	for (size_t i = 0; i < M_COUNT; i++)
		ch[i] = keep(i, f1.name[i]);
	ch[M_BIG] = patch("big.bin", &sb, M_BIG, NULL, 0, MTIME_NEW2);
	ret = a ? archive_commit(a, ch, M_COUNT, &b, &err) : -1;
	snprintf(d, sizeof(d), "%s nranges 0: commit (%d %s)", path_tag, ret,
		 err.msg);
	test_cond(d, ret == 0 && b);
	if (clone) {
		test_cond("clone nranges 0: nothing read, kept in place",
			  sb.calls == 0 && b && data_pos(b, M_BIG) == pos_big);
	} else if (copy) {
		test_cond("copy nranges 0: nothing read", sb.calls == 0);
	} else {
		test_cond("rewrite nranges 0: all content read",
			  src_read_all(&sb));
	}
	snprintf(d, sizeof(d), "%s nranges 0: new archive", path_tag);
	if (b)
		check_archive(b, &f2, d);
	snprintf(d, sizeof(d), "%s nranges 0: reopened", path_tag);
	check_file(p, &f2, d);
	snprintf(d, sizeof(d), "%s nranges 0: CRC unchanged", path_tag);
	test_cond(d, b && a && archive_member(b, M_BIG)->crc ==
		  archive_member(a, M_BIG)->crc);
	archive_close(a);
	a = b;
	b = NULL;

	/* 3: a patch of big.bin under another name, added after the others
	 * (not in place: all content read); big.bin kept as it is */
	fx_copy(&f3, &f2);
	f3.n = M_COUNT + 1;
	f3.name[M_COUNT] = "big2.bin";
	f3.len[M_COUNT] = f2.len[M_BIG];
	f3.data[M_COUNT] = malloc(f2.len[M_BIG]);
	memcpy(f3.data[M_COUNT], f2.data[M_BIG], f2.len[M_BIG]);
	change_ranges(&f3, M_COUNT, rn, 1);
	f3.method[M_COUNT] = ARCHIVE_STORE;
	f3.mtime[M_COUNT] = MTIME_NEW;
	src_release(&sb);
	src_init(&sb, f3.data[M_COUNT], f3.len[M_COUNT]);
	for (size_t i = 0; i < M_COUNT; i++)
		ch[i] = keep(i, f2.name[i]);
	ch[M_COUNT] = patch("big2.bin", &sb, M_BIG, rn, 1, MTIME_NEW);
	ret = a ? archive_commit(a, ch, M_COUNT + 1, &b, &err) : -1;
	snprintf(d, sizeof(d), "%s renamed patch: commit (%d %s)", path_tag,
		 ret, err.msg);
	test_cond(d, ret == 0 && b);
	snprintf(d, sizeof(d), "%s renamed patch: all content read", path_tag);
	test_cond(d, src_read_all(&sb));
	snprintf(d, sizeof(d), "%s renamed patch: new archive", path_tag);
	if (b)
		check_archive(b, &f3, d);
	snprintf(d, sizeof(d), "%s renamed patch: reopened", path_tag);
	check_file(p, &f3, d);
	if (clone && b)
		test_cond("clone renamed patch: big.bin kept in place",
			  data_pos(b, M_BIG) == pos_big);
	archive_close(a);
	a = b;
	b = NULL;

	/* 4: big.bin patched in place while a copy of its old bytes is
	 * added under another name (cp big.bin old.bin, then an edit) */
	fx_copy(&f4, &f3);
	free(f4.data[M_COUNT]);
	f4.name[M_COUNT] = "old.bin";
	f4.data[M_COUNT] = malloc(f3.len[M_BIG]);
	memcpy(f4.data[M_COUNT], f3.data[M_BIG], f3.len[M_BIG]);
	f4.len[M_COUNT] = f3.len[M_BIG];
	f4.mtime[M_COUNT] = f3.mtime[M_BIG];
	change_ranges(&f4, M_BIG, rb + 1, 2);
	f4.mtime[M_BIG] = MTIME_NEW;
	src_release(&sb);
	src_init(&sb, f4.data[M_BIG], f4.len[M_BIG]);
	for (size_t i = 0; i < M_COUNT; i++)
		ch[i] = keep(i, f3.name[i]);
	ch[M_BIG] = patch("big.bin", &sb, M_BIG, rb + 1, 2, MTIME_NEW);
	ch[M_COUNT] = keep(M_BIG, "old.bin");
	ret = a ? archive_commit(a, ch, M_COUNT + 1, &b, &err) : -1;
	snprintf(d, sizeof(d), "%s patch and copy: commit (%d %s)", path_tag,
		 ret, err.msg);
	test_cond(d, ret == 0 && b);
	if (clone)
		test_cond("clone patch and copy: only the ranges read, in place",
			  src_read_only(&sb, rb + 1, 2) && b &&
			  data_pos(b, M_BIG) == pos_big);
	if (copy)
		test_cond("copy patch and copy: only the ranges read",
			  src_read_only(&sb, rb + 1, 2));
	snprintf(d, sizeof(d), "%s patch and copy: new archive", path_tag);
	if (b)
		check_archive(b, &f4, d);
	snprintf(d, sizeof(d), "%s patch and copy: reopened", path_tag);
	check_file(p, &f4, d);
	archive_close(a);
	archive_close(b);
	test_cond("patch: no temporary file left at the end", no_temp_left(dir));

	src_release(&sb);
	src_release(&sm);
	fx_release(&f0);
	fx_release(&f1);
	fx_release(&f2);
	fx_release(&f3);
	fx_release(&f4);
	unlink(p);
}

/* Bad patches are refused by the change list check: -EINVAL, nothing
 * written, *out not set. */
static void test_bad_patches(const char *dir)
{
	static const struct archive_range r[] = { { 10, 10 } };
	struct archive *a = NULL, *b;
	struct npz_err err;
	struct archive_change ch[M_COUNT];
	struct fx f;
	struct src s;
	char p[512], copy[600], d[512];
	struct {
		const char *what;
		ssize_t from;
		size_t of;
		int64_t dsize;
		uint16_t method;
		bool null_ranges;
	} cases[] = {
		{ "patch_of == count", -1, M_COUNT, 0, ARCHIVE_STORE, false },
		{ "patch_of huge", -1, SIZE_MAX, 0, ARCHIVE_STORE, false },
		{ "size + 1", -1, M_BIG, 1, ARCHIVE_STORE, false },
		{ "size - 1", -1, M_BIG, -1, ARCHIVE_STORE, false },
		{ "method deflate", -1, M_BIG, 0, ARCHIVE_DEFLATE, false },
		{ "patch_of a deflated member", -1, M_Z, 0, ARCHIVE_STORE, false },
		{ "from >= 0", M_HEAD, M_BIG, 0, ARCHIVE_STORE, false },
		{ "nranges 1, ranges NULL", -1, M_BIG, 0, ARCHIVE_STORE, true },
		{ NULL, -1, M_BIG, 0, ARCHIVE_STORE, false },	/* sound */
	};

	snprintf(p, sizeof(p), "%s/bad.zip", dir);
	snprintf(copy, sizeof(copy), "%s/bad.orig", dir);
	fx_standard(&f);
	test_cond("bad patch fixture", make_zip(p, &f) &&
		  run("cp %s %s", p, copy));
	if (archive_open(p, &a, NULL) != 0) {
		test_cond("bad patch: open", 0);
		fx_release(&f);
		return;
	}
	src_init(&s, f.data[M_BIG], f.len[M_BIG]);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int ret;

		for (size_t i = 0; i < M_COUNT; i++)
			ch[i] = keep(i, f.name[i]);
		ch[M_BIG] = patch("big.bin", &s, cases[k].of, r, 1, MTIME_OLD);
		ch[M_BIG].from = cases[k].from;
		ch[M_BIG].method = cases[k].method;
		if (cases[k].of == M_Z)
			ch[M_BIG].size = f.len[M_Z];
		ch[M_BIG].size = (uint64_t)((int64_t)ch[M_BIG].size +
					    cases[k].dsize);
		if (cases[k].null_ranges)
			ch[M_BIG].ranges = NULL;
		b = (struct archive *)&b;	/* must stay */
		memset(&err, 0, sizeof(err));
		ret = archive_commit(a, ch, M_COUNT, &b, &err);
		if (!cases[k].what) {
			test_cond("bad patch: the sound one commits",
				  ret == 0 && b != (struct archive *)&b);
			if (!ret) {
				check_archive(b, &f, "bad patch: sound one");
				archive_close(b);
			}
			break;
		}
		snprintf(d, sizeof(d), "bad patch: %s: -EINVAL (got %d, %s)",
			 cases[k].what, ret, err.msg);
		test_cond(d, ret == -EINVAL && strstr(err.msg, "big.bin"));
		snprintf(d, sizeof(d), "bad patch: %s: nothing written",
			 cases[k].what);
		test_cond(d, b == (struct archive *)&b && s.calls == 0 &&
			  same_file_bytes(p, copy) && no_temp_left(dir));
		if (ret == 0 && b != (struct archive *)&b) {
			archive_close(b);	/* and a is stale now */
			break;
		}
	}
	src_release(&s);
	archive_close(a);
	fx_release(&f);
	unlink(copy);
	unlink(p);
}

/* ---- content through the callback: deflate, errors ------------------ */

/* Deflated content of 4 MiB or more through read: the parallel workers
 * call it from their threads; the member has exactly the content. */
static void test_deflate_read(const char *dir)
{
	const size_t big = (6u << 20) + 12345, small = 100000;
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[3];
	struct fx f, g;
	struct src s, t;
	unsigned char *content = malloc(big);
	char p[512], d[512];
	int ret;

	/* half random, half compressible, in 64 KiB stripes */
	fill_random(content, big);
	for (size_t i = 0; i < big; i++)
		if ((i >> 16) & 1)
			content[i] = (unsigned char)(i % 61);
	memset(&f, 0, sizeof(f));
	fx_add(&f, "head.bin", 1000, ARCHIVE_STORE);
	fx_add(&f, "old.bin", 20000, ARCHIVE_DEFLATE);
	snprintf(p, sizeof(p), "%s/deflate.zip", dir);
	test_cond("deflate fixture", make_zip(p, &f));
	if (archive_open(p, &a, NULL) != 0) {
		test_cond("deflate: open", 0);
		goto out;
	}
	for (int round = 0; round < 3; round++) {
		struct archive_deflate_tuning tune = {
			.chunk = round == 2 ? 300000 : 0,
			.min_parallel = 4u << 20, .threads = 4,
		};
		const char *how = round == 0 ? "default tuning" :
				  round == 1 ? "4 threads" :
				  "300000-byte chunks, short reads";

		archive_tune_deflate(round ? &tune : NULL);
		src_init(&s, content, big);
		src_init(&t, content + 777, small);
		if (round == 2)
			s.max_call = t.max_call = 7777;
		ch[0] = keep(0, "head.bin");
		ch[1] = (struct archive_change){
			.name = "old.bin", .from = -1, .fd = -1,
			.read = src_read, .read_ctx = &s, .size = big,
			.method = ARCHIVE_DEFLATE, .level = -1,
			.mtime = MTIME_NEW,
		};
		ch[2] = ch[1];
		ch[2].name = "small.bin";
		ch[2].read_ctx = &t;
		ch[2].size = small;
		ch[2].level = round == 1 ? 9 : 1;
		ret = archive_commit(a, ch, 3, &b, &err);
		snprintf(d, sizeof(d), "deflate read, %s: commit (%d %s)", how,
			 ret, err.msg);
		test_cond(d, ret == 0 && b);
		snprintf(d, sizeof(d), "deflate read, %s: read from worker "
			 "threads (%llu of %llu calls)", how,
			 (unsigned long long)s.off_thread,
			 (unsigned long long)s.calls);
		test_cond(d, s.off_thread > 0);
		snprintf(d, sizeof(d), "deflate read, %s: every byte read", how);
		test_cond(d, src_read_all(&s) && src_read_all(&t) &&
			  s.bad == 0 && t.bad == 0);
		fx_copy(&g, &f);
		free(g.data[1]);
		g.data[1] = content;
		g.len[1] = big;
		g.mtime[1] = MTIME_NEW;
		g.name[2] = "small.bin";
		g.data[2] = content + 777;
		g.len[2] = small;
		g.method[2] = ARCHIVE_DEFLATE;
		g.mtime[2] = MTIME_NEW;
		g.n = 3;
		snprintf(d, sizeof(d), "deflate read, %s", how);
		if (b)
			check_archive(b, &g, d);
		check_file(p, &g, d);
		test_cond("deflate read: compressed smaller than content", b &&
			  archive_member(b, 1)->comp_size < big * 3 / 4 &&
			  archive_member(b, 1)->method == ARCHIVE_DEFLATE);
		free(g.data[0]);	/* data[1], data[2] are content's */
		src_release(&s);
		src_release(&t);
		archive_close(a);
		a = b;
		b = NULL;
		if (!a)
			break;
	}
	archive_tune_deflate(NULL);
	archive_close(a);
out:
	free(content);
	fx_release(&f);
	unlink(p);
}

/* A read that fails, or content shorter than its size, fails the commit
 * with -EIO; the file stays as it was and no temporary file is left. */
static void test_read_errors(const char *dir, const char *mode)
{
	const size_t big = (5u << 20) + 3;
	struct archive *a = NULL, *b;
	struct npz_err err;
	struct archive_change ch[M_COUNT];
	static const struct archive_range r[] = { { 1000, 200000 } };
	unsigned char *content = malloc(big);
	struct fx f, g;
	struct src s;
	char p[512], copy[600], d[512];
	int ret;

	fill_random(content, big);
	snprintf(p, sizeof(p), "%s/err.zip", dir);
	snprintf(copy, sizeof(copy), "%s/err.orig", dir);
	fx_standard(&f);
	test_cond("read errors fixture", make_zip(p, &f) &&
		  run("cp %s %s", p, copy));
	if (archive_open(p, &a, NULL) != 0) {
		test_cond("read errors: open", 0);
		goto out;
	}
	for (int k = 0; k < 5; k++) {
		const char *what[] = {
			"stored new content, read fails",
			"deflated in parallel, read fails in a later chunk",
			"deflated, content ends early",
			"patch, read fails inside a range",
			"patch, content ends inside a range",
		};

		for (size_t i = 0; i < M_COUNT; i++)
			ch[i] = keep(i, f.name[i]);
		if (k < 3) {
			src_init(&s, content, big);
			ch[M_TAIL] = (struct archive_change){
				.name = "new.bin", .from = -1, .fd = -1,
				.read = src_read, .read_ctx = &s, .size = big,
				.method = k ? ARCHIVE_DEFLATE : ARCHIVE_STORE,
				.level = -1, .mtime = MTIME_NEW,
			};
			if (k == 2)
				s.size = big - 100;
			else
				s.fail_at = k ? (3u << 20) + 5 : 100000;
		} else {
			memcpy(content, f.data[M_BIG], f.len[M_BIG]);
			src_init(&s, content, f.len[M_BIG]);
			ch[M_BIG] = patch("big.bin", &s, M_BIG, r, 1, MTIME_NEW);
			if (k == 3)
				s.fail_at = 150000;
			else
				s.size = 150000;
		}
		b = (struct archive *)&b;
		memset(&err, 0, sizeof(err));
		ret = archive_commit(a, ch, M_COUNT, &b, &err);
		snprintf(d, sizeof(d), "%s read error: %s: -EIO (got %d, %s)",
			 mode, what[k], ret, err.msg);
		test_cond(d, ret == -EIO);
		snprintf(d, sizeof(d), "%s read error: %s: nothing written",
			 mode, what[k]);
		test_cond(d, b == (struct archive *)&b &&
			  same_file_bytes(p, copy) && no_temp_left(dir));
		if (ret == 0 && b != (struct archive *)&b)
			archive_close(b);
		src_release(&s);
	}
	/* and the archive is still sound and can be committed */
	check_archive(a, &f, "read errors: archive afterwards");
	fx_copy(&g, &f);
	change_ranges(&g, M_BIG, r, 1);
	g.mtime[M_BIG] = MTIME_NEW;
	src_init(&s, g.data[M_BIG], g.len[M_BIG]);
	for (size_t i = 0; i < M_COUNT; i++)
		ch[i] = keep(i, f.name[i]);
	ch[M_BIG] = patch("big.bin", &s, M_BIG, r, 1, MTIME_NEW);
	b = NULL;
	ret = archive_commit(a, ch, M_COUNT, &b, &err);
	snprintf(d, sizeof(d), "%s read errors: then a good commit (%d %s)",
		 mode, ret, err.msg);
	test_cond(d, ret == 0 && b);
	if (b)
		check_archive(b, &g, "read errors: after the good commit");
	check_file(p, &g, "read errors: after the good commit, reopened");
	archive_close(b);
	src_release(&s);
	fx_release(&g);
	archive_close(a);
out:
	fx_release(&f);
	free(content);
	unlink(copy);
	unlink(p);
}

/* ---- the clone path on reflink XFS ---------------------------------- */

/* Stored content from a file on the same reflink filesystem is cloned in
 * (FICLONERANGE), with and without a known CRC. */
static void test_clone_content(const char *dir)
{
	const size_t len = 200000 + 123;
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[3];
	struct fx f, g;
	char p[512], q[512], d[512];
	unsigned char *content = malloc(len);
	int fd, ret;

	fill_random(content, len);
	snprintf(q, sizeof(q), "%s/content.bin", dir);
	fd = open(q, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	test_cond("clone content: file", fd >= 0 &&
		  pwrite(fd, content, len, 0) == (ssize_t)len && fsync(fd) == 0);
	memset(&f, 0, sizeof(f));
	fx_add(&f, "head.bin", 1000, ARCHIVE_STORE);
	fx_add(&f, "pad.bin", 2u << 20, ARCHIVE_STORE);
	snprintf(p, sizeof(p), "%s/content.zip", dir);
	test_cond("clone content fixture", make_zip(p, &f));
	if (fd < 0 || archive_open(p, &a, NULL) != 0) {
		test_cond("clone content: open", 0);
		goto out;
	}
	for (int known = 0; known < 2; known++) {
		ch[0] = keep(0, "head.bin");
		ch[1] = keep(1, "pad.bin");
		ch[2] = (struct archive_change){
			.name = known ? "known.bin" : "unknown.bin",
			.from = -1, .fd = fd, .size = len,
			.method = ARCHIVE_STORE, .level = -1,
			.mtime = MTIME_NEW, .crc_known = known,
			.crc = known ? zcrc(content, len) : 0x1234,
		};
		ret = archive_commit(a, ch, 3, &b, &err);
		snprintf(d, sizeof(d), "clone content, crc_known %d: commit "
			 "(%d %s)", known, ret, err.msg);
		test_cond(d, ret == 0 && b);
		fx_copy(&g, &f);
		g.name[2] = ch[2].name;
		g.data[2] = content;
		g.len[2] = len;
		g.method[2] = ARCHIVE_STORE;
		g.mtime[2] = MTIME_NEW;
		g.n = 3;
		snprintf(d, sizeof(d), "clone content, crc_known %d", known);
		if (b)
			check_archive(b, &g, d);
		check_file(p, &g, d);
		if (b) {
			uint64_t pos = data_pos(b, 2);

			snprintf(d, sizeof(d), "clone content, crc_known %d: "
				 "cloned (4 KiB-aligned, blocks shared)", known);
			test_cond(d, pos % 4096 == 0 &&
				  all_shared(archive_fd(b), pos, len / 4096 * 4096));
			test_cond("clone content: kept member still shared",
				  all_shared(archive_fd(b),
					     (data_pos(b, 1) + 4095) / 4096 * 4096,
					     1u << 20));
		}
		free(g.data[0]);
		free(g.data[1]);
		archive_close(a);
		a = b;
		b = NULL;
		if (!a)
			break;
	}
	archive_close(a);
out:
	if (fd >= 0)
		close(fd);
	fx_release(&f);
	free(content);
	unlink(q);
	unlink(p);
}

/* A patch of a member with a data descriptor (written by zipfile to a
 * pipe): not in place; appended whole, the old bytes dropped. */
static void test_clone_data_descriptor(const char *dir, bool clone)
{
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[3];
	static const struct archive_range r[] = { { 0, 1 }, { 5000, 10 } };
	struct fx f, g;
	struct src s;
	char p[512], d[512], f0[512], f1[512], f2[512];
	int ret;

	memset(&f, 0, sizeof(f));
	fx_add(&f, "dd.bin", 300u << 10, ARCHIVE_STORE);
	fx_add(&f, "pad.bin", 2u << 20, ARCHIVE_STORE);
	fx_add(&f, "end.bin", 100, ARCHIVE_STORE);
	snprintf(p, sizeof(p), "%s/dd.zip", dir);
	for (size_t i = 0; i < 3; i++) {
		char *fp = i == 0 ? f0 : i == 1 ? f1 : f2;
		FILE *o;

		snprintf(fp, 512, "%s/%s", dir, f.name[i]);
		o = fopen(fp, "wb");
		if (!o || fwrite(f.data[i], 1, f.len[i], o) != f.len[i])
			test_cond("dd fixture member", 0);
		if (o)
			fclose(o);
	}
	/* zipfile's mtime is the file's: set it */
	test_cond("dd fixture: zipfile to a pipe",
		  run("touch -d @%lld %s %s %s && cd %s && /usr/bin/python3 -c "
		      "'import zipfile, sys\n"
		      "z = zipfile.ZipFile(sys.stdout.buffer, \"w\")\n"
		      "for n in sys.argv[1:]: z.write(n)\n"
		      "z.close()' dd.bin pad.bin end.bin | cat > %s",
		      (long long)MTIME_OLD, f0, f1, f2, dir, p));
	unlink(f0);
	unlink(f1);
	unlink(f2);
	test_cond("dd fixture: has data descriptors",
		  run("/usr/bin/python3 -c 'import zipfile, sys; sys.exit(not "
		      "all(i.flag_bits & 8 for i in zipfile.ZipFile(sys.argv[1])"
		      ".infolist()))' %s", p));
	check_file(p, &f, "dd fixture");
	if (archive_open(p, &a, NULL) != 0) {
		test_cond("dd: open", 0);
		fx_release(&f);
		return;
	}
	fx_copy(&g, &f);
	change_ranges(&g, 0, r, 2);
	g.mtime[0] = MTIME_NEW;
	src_init(&s, g.data[0], g.len[0]);
	ch[0] = patch("dd.bin", &s, 0, r, 2, MTIME_NEW);
	ch[1] = keep(1, "pad.bin");
	ch[2] = keep(2, "end.bin");
	ret = archive_commit(a, ch, 3, &b, &err);
	snprintf(d, sizeof(d), "%s dd patch: commit (%d %s)",
		 clone ? "clone" : "rewrite", ret, err.msg);
	test_cond(d, ret == 0 && b);
	test_cond("dd patch: whole content read (not in place)",
		  src_read_all(&s));
	if (b)
		check_archive(b, &g, clone ? "clone dd patch" : "rewrite dd patch");
	check_file(p, &g, clone ? "clone dd patch, reopened" :
		   "rewrite dd patch, reopened");
	if (clone && b)
		test_cond("clone dd patch: a clone (kept pad.bin shared, in place)",
			  data_pos(b, 1) == data_pos(a, 1) &&
			  all_shared(archive_fd(b),
				     (data_pos(b, 1) + 4095) / 4096 * 4096,
				     1u << 20));
	src_release(&s);
	archive_close(a);
	archive_close(b);
	fx_release(&f);
	fx_release(&g);
	unlink(p);
}

/* A reflink XFS on a 600 MiB sparse image in tmpdir, loop-mounted on
 * dir; false (with a note) when that is not possible here. */
static bool xfs_mount(char *dir, size_t len, char *img, size_t ilen)
{
	snprintf(img, ilen, "%s/xfs.img", tmpdir);
	snprintf(dir, len, "%s/xfs", tmpdir);
	if (geteuid() != 0) {
		printf("skip: clone path tests need root (loop-mounted XFS)\n");
		return false;
	}
	if (!run("truncate -s 600M %s && mkfs.xfs -q -m reflink=1 %s "
		 ">/dev/null 2>&1", img, img)) {
		printf("skip: cannot make a reflink XFS (mkfs.xfs)\n");
		unlink(img);
		return false;
	}
	mkdir(dir, 0755);
	if (!run("mount -o loop %s %s 2>/dev/null", img, dir)) {
		printf("skip: cannot loop-mount the XFS image\n");
		rmdir(dir);
		unlink(img);
		return false;
	}
	if (!can_clone(dir)) {
		printf("skip: the XFS image cannot clone\n");
		run("umount %s || umount -l %s", dir, dir);
		rmdir(dir);
		unlink(img);
		return false;
	}
	return true;
}

static void xfs_unmount(const char *dir, const char *img)
{
	if (!run("umount %s", dir)) {
		printf("umount %s failed: detaching it lazily\n", dir);
		run("umount -l %s", dir);
	}
	rmdir(dir);
	unlink(img);
}

/* The clone path tests run in a child, so that the image is unmounted
 * whatever happens to them (a crash, a sanitizer report); the child hands
 * its counts back through a pipe. */
static void test_clone_path(void)
{
	char dir[300], img[300];
	int counts[2] = { 0, 0 }, pfd[2], status = 0;
	pid_t pid;

	if (!xfs_mount(dir, sizeof(dir), img, sizeof(img)))
		return;
	fflush(stdout);
	if (pipe(pfd) < 0 || (pid = fork()) < 0) {
		test_cond("clone: pipe and fork", 0);
		xfs_unmount(dir, img);
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		test_passed_ = test_failed_ = 0;	/* the parent has those */
		archive_tune_commit(true);
		test_patches(dir, "clone");
		test_clone_content(dir);
		test_clone_data_descriptor(dir, true);
		test_deflate_read(dir);
		test_read_errors(dir, "clone");
		test_bad_patches(dir);
		test_cond("clone: no temporary file left", no_temp_left(dir));
		counts[0] = test_passed_;
		counts[1] = test_failed_;
		if (write(pfd[1], counts, sizeof(counts)) != sizeof(counts))
			exit(3);
		fflush(stdout);
		exit(0);	/* exit(), not _exit(): LeakSanitizer runs */
	}
	close(pfd[1]);
	if (read(pfd[0], counts, sizeof(counts)) != sizeof(counts))
		counts[0] = counts[1] = 0;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	test_passed_ += counts[0];
	test_failed_ += counts[1];
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("clone path child: %s %d\n", WIFSIGNALED(status) ?
		       "killed by signal" : "exit status",
		       WIFSIGNALED(status) ? WTERMSIG(status)
					   : WEXITSTATUS(status));
		test_cond("clone path tests ran to the end", 0);
	}
	xfs_unmount(dir, img);
}

static void test_rewrite_path(void)
{
	char dir[300];
	bool cloning = can_clone(tmpdir);

	snprintf(dir, sizeof(dir), "%s/rw", tmpdir);
	mkdir(dir, 0755);
	/* the copy mode, where the temporary dir cannot clone */
	if (!cloning) {
		test_patches(dir, "copy");
		test_read_errors(dir, "copy");
	}
	/* the rewrite path, whatever the filesystem of the temporary dir */
	archive_tune_commit(false);
	test_patches(dir, "rewrite");
	test_clone_data_descriptor(dir, false);
	test_bad_patches(dir);
	test_deflate_read(dir);
	test_read_errors(dir, "rewrite");
	test_cond("rewrite: no temporary file left", no_temp_left(dir));
	archive_tune_commit(true);
	rmdir(dir);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char cmd[600];

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_patch.XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_crc_update();
	test_crc_patch_formula();
	test_crc_64bit();
	/* the clone path forks: before any thread is started here (wbuf's
	 * write-behind starts one for the whole process) */
	test_clone_path();
	test_wbuf_crc();
	test_rewrite_path();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", tmpdir);
	return test_report();
}
