/* test_zran.c - deflated members numpy wrote (one deflate stream): ISA-L
 * snapshots of the inflate state (access points), reads at random offsets
 * of members bigger than a tiny budget, damaged members.
 * Fixtures are made at run time by /usr/bin/python3 (numpy's
 * savez_compressed; zipfile writes the expected bytes). */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/zip/zip_internal.h"
#include "test.h"

#define MiB (1u << 20)
#define LIMIT (4u * MiB)

static char tmpdir[256];

static const char fixture_py[] =
"import numpy as np, zipfile, sys\n"
"d = sys.argv[1]\n"
"rng = np.random.default_rng(3)\n"
"arrs = dict(r=rng.random(1500000),\n"
"            c=np.round(rng.standard_normal(3000000), 2).astype('f4'),\n"
"            z=np.zeros(5000000, 'u1'), s=np.arange(1000))\n"
"np.savez_compressed(d + '/a.npz', **arrs)\n"
"raw = open(d + '/a.npz', 'rb').read()\n"
"with zipfile.ZipFile(d + '/a.npz') as z, open(d + '/list', 'w') as lst:\n"
"    for info in z.infolist():\n"
"        h = info.header_offset\n"
"        off = h + 30 + int.from_bytes(raw[h + 26:h + 28], 'little') + \\\n"
"              int.from_bytes(raw[h + 28:h + 30], 'little')\n"
"        lst.write('%s %d %d %d\\n' % (info.filename, off, info.compress_size,\n"
"                                    info.file_size))\n"
"        open(d + '/' + info.filename, 'wb').write(z.read(info))\n"
"        if info.filename == 'c.npy':\n"
"            bad = bytearray(raw)\n"
"            m = off + info.compress_size * 2 // 3\n"
"            bad[m:m + 512] = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()\n"
"            open(d + '/damaged.npz', 'wb').write(bytes(bad))\n"
"            bad = bytearray(raw)\n"
"            bad[off + info.compress_size - 300:off + info.compress_size] = bytes(300)\n"
"            open(d + '/truncated.npz', 'wb').write(bytes(bad))\n"
"            bad = bytearray(raw)\n"
"            c = (info.CRC ^ 0x100).to_bytes(4, 'little')\n"
"            bad[h + 14:h + 18] = c\n"
"            p = raw.find(b'PK\\x01\\x02')\n"
"            while p >= 0:\n"
"                if int.from_bytes(raw[p + 42:p + 46], 'little') == h:\n"
"                    bad[p + 16:p + 20] = c\n"
"                p = raw.find(b'PK\\x01\\x02', p + 4)\n"
"            open(d + '/badcrc.npz', 'wb').write(bytes(bad))\n";

struct ref {
	char name[16];
	uint64_t off, comp, size;
	unsigned char *data;
};

static struct ref refs[8];
static size_t nrefs;

static char *path_of(const char *name)
{
	static char p[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

static bool load_refs(void)
{
	FILE *f = fopen(path_of("list"), "r");
	struct ref r;
	unsigned long long o, c, s;

	if (!f)
		return false;
	while (nrefs < 8 && fscanf(f, "%15s %llu %llu %llu", r.name, &o, &c,
				   &s) == 4) {
		size_t len;

		r.off = o;
		r.comp = c;
		r.size = s;
		r.data = test_slurp(path_of(r.name), &len);
		if (!r.data || len != r.size)
			return false;
		refs[nrefs++] = r;
	}
	fclose(f);
	return nrefs == 4;
}

static const struct ref *ref_of(const char *name)
{
	for (size_t i = 0; i < nrefs; i++)
		if (!strcmp(refs[i].name, name))
			return &refs[i];
	return NULL;
}

/* Snapshots taken at random places of a streaming inflate (random input
 * pieces, random output buffers) restore, in another state struct with
 * other buffers, to the same bytes as a full inflate. */
static void test_snapshots(const unsigned char *arc, const struct ref *r)
{
	enum { NSNAP = 60 };
	const unsigned char *in = arc + r->off;
	struct inflate_state *st = malloc(sizeof(*st)), *t = malloc(sizeof(*t));
	unsigned char *snap[NSNAP], *buf = malloc(MiB), *o = malloc(2 * MiB);
	uint64_t sout[NSNAP], sin[NSNAP], pos = 0, fed = 0;
	size_t slen[NSNAP], maxlen = 0;
	unsigned seed = 11;
	int ns = 0, bad = 0, zr;
	char descr[128];
	bool stream_ok = true;

	isal_inflate_init(st);
	st->crc_flag = ISAL_GZIP_NO_HDR;
	st->avail_in = 0;
	while (st->block_state != ISAL_BLOCK_FINISH) {
		size_t cap = 1 + (size_t)rand_r(&seed) % (MiB / 2);
		unsigned char *dst;

		if (st->avail_in == 0 && fed < r->comp) {
			size_t k = 1 + (size_t)rand_r(&seed) % 70000;

			if (k > r->comp - fed)
				k = r->comp - fed;
			st->next_in = (uint8_t *)in + fed;
			st->avail_in = (uint32_t)k;
			fed += k;
		}
		dst = buf + (size_t)rand_r(&seed) % (MiB - cap + 1);
		st->next_out = dst;
		st->avail_out = (uint32_t)cap;
		zr = isal_inflate(st);
		if (zr < 0 || pos + (cap - st->avail_out) > r->size) {
			stream_ok = false;
			break;
		}
		if (memcmp(dst, r->data + pos, cap - st->avail_out))
			stream_ok = false;
		pos += cap - st->avail_out;
		if (ns < NSNAP && rand_r(&seed) % 3 == 0 &&
		    st->block_state != ISAL_BLOCK_FINISH) {
			slen[ns] = ar_zran_snapshot(st, NULL);
			snap[ns] = malloc(slen[ns]);
			if (ar_zran_snapshot(st, snap[ns]) != slen[ns])
				stream_ok = false;
			if (slen[ns] > maxlen)
				maxlen = slen[ns];
			sout[ns] = pos;
			sin[ns] = fed - st->avail_in;
			ns++;
		}
	}
	snprintf(descr, sizeof(descr), "%s: streaming inflate right, CRC %s",
		 r->name, st->crc == crc32(0, r->data, (uInt)r->size) ?
		 "right" : "WRONG");
	test_cond(descr, stream_ok && pos == r->size &&
		  st->crc == crc32(0, r->data, (uInt)r->size));
	for (int i = 0; i < ns; i++) {
		uint64_t f = sin[i], p = sout[i];
		size_t want = r->size - p < 2 * MiB ? (size_t)(r->size - p) :
			      2 * MiB, done = 0;

		memset(t, 0xa5, sizeof(*t));
		ar_zran_restore(t, snap[i], slen[i]);
		t->avail_in = 0;
		while (done < want) {
			size_t cap = 1 + (size_t)rand_r(&seed) % 300000;

			if (t->avail_in == 0 && f < r->comp) {
				size_t k = 1 + (size_t)rand_r(&seed) % 100000;

				if (k > r->comp - f)
					k = r->comp - f;
				t->next_in = (uint8_t *)in + f;
				t->avail_in = (uint32_t)k;
				f += k;
			}
			if (cap > want - done)
				cap = want - done;
			t->next_out = o + done;
			t->avail_out = (uint32_t)cap;
			if (isal_inflate(t) < 0)
				break;
			done += cap - t->avail_out;
			if (t->block_state == ISAL_BLOCK_FINISH)
				break;
		}
		if (done != want || memcmp(o, r->data + p, want))
			bad++;
		free(snap[i]);
	}
	snprintf(descr, sizeof(descr), "%s: %d snapshots restore to the same "
		 "bytes (largest %zu bytes)", r->name, ns, maxlen);
	test_cond(descr, ns >= 5 && bad == 0 && maxlen <= AR_SNAP_MAX);
	free(st);
	free(t);
	free(buf);
	free(o);
}

static bool read_ok(struct archive *a, size_t idx, const struct ref *r,
		    uint64_t off, size_t len)
{
	unsigned char *b = malloc(len ? len : 1);
	ssize_t want = off >= r->size ? 0 :
		       (ssize_t)(r->size - off < len ? r->size - off : len);
	ssize_t n = archive_member_read(a, idx, b, len, off, NULL);
	bool ok = n == want && (!n || !memcmp(b, r->data + off, (size_t)n));

	free(b);
	return ok;
}

/* Bytes the archive's cache file holds on disk. */
static uint64_t disk_used(struct archive *a)
{
	struct stat sb;

	if (a->cache_fd < 0 || fstat(a->cache_fd, &sb))
		return 0;
	return (uint64_t)sb.st_blocks * 512;
}

struct thr {
	struct archive *a;
	unsigned seed;
	bool ok;
};

static void *thr_main(void *p)
{
	struct thr *t = p;
	const char *names[] = { "r.npy", "c.npy" };

	t->ok = true;
	for (int k = 0; k < 60; k++) {
		const struct ref *r = ref_of(names[k % 2]);
		size_t idx;
		uint64_t off = (uint64_t)rand_r(&t->seed) % r->size;

		archive_find(t->a, r->name, &idx);
		t->ok &= read_ok(t->a, idx, r, off, 1 + (size_t)rand_r(&t->seed) % 200000);
		t->ok &= cache_used() <= LIMIT;
	}
	return NULL;
}

/* Members bigger than the budget: a sequential read takes points, random
 * reads are right, the budget and the disk stay within the limit. */
static void test_reads(bool readahead)
{
	struct archive *a = NULL;
	const struct ref *r;
	size_t idx;
	unsigned seed = readahead ? 5 : 6;
	bool ok = true, within = true;
	uint64_t peak = 0;
	char descr[128];
	const char *mode = readahead ? "read-ahead" : "no read-ahead";

	ar_zran_set_readahead(readahead);
	test_cond("open", archive_open(path_of("a.npz"), &a, NULL) == 0);
	if (!a)
		return;
	for (size_t k = 0; k < nrefs; k++) {
		r = &refs[k];
		archive_find(a, r->name, &idx);
		/* sequential, in FUSE's 128 KiB pieces */
		for (uint64_t off = 0; off < r->size; off += 128 << 10) {
			ok &= read_ok(a, idx, r, off, 128 << 10);
			within &= cache_used() <= LIMIT &&
				  disk_used(a) <= LIMIT;
		}
	}
	snprintf(descr, sizeof(descr), "%s: sequential reads right", mode);
	test_cond(descr, ok);
	r = ref_of("r.npy");
	archive_find(a, r->name, &idx);
	snprintf(descr, sizeof(descr), "%s: %zu access points in r.npy (span "
		 "%llu)", mode, ar_zran_points(a, idx),
		 (unsigned long long)ar_zran_span(r->size, LIMIT));
	test_cond(descr, ar_zran_points(a, idx) >= r->size /
		  ar_zran_span(r->size, LIMIT) - 1);
	for (int k = 0; k < 300; k++) {
		const struct ref *q = &refs[(size_t)rand_r(&seed) % nrefs];
		uint64_t off = (uint64_t)rand_r(&seed) % (q->size + 100);
		size_t len = (size_t)rand_r(&seed) % (k % 10 ? 5000 : 700000);

		archive_find(a, q->name, &idx);
		ok &= read_ok(a, idx, q, off, len);
		if (disk_used(a) > peak)
			peak = disk_used(a);
		within &= cache_used() <= LIMIT && disk_used(a) <= LIMIT;
	}
	snprintf(descr, sizeof(descr), "%s: 300 random reads right", mode);
	test_cond(descr, ok);
	snprintf(descr, sizeof(descr), "%s: budget and disk within %u bytes "
		 "(disk peak %llu)", mode, LIMIT, (unsigned long long)peak);
	test_cond(descr, within && peak > 0);
	{
		struct thr t[4];
		pthread_t tid[4];

		for (int k = 0; k < 4; k++) {
			t[k].a = a;
			t[k].seed = (unsigned)k + (readahead ? 10 : 20);
			pthread_create(&tid[k], NULL, thr_main, &t[k]);
		}
		for (int k = 0; k < 4; k++) {
			pthread_join(tid[k], NULL);
			ok &= t[k].ok;
		}
		snprintf(descr, sizeof(descr), "%s: random reads from 4 "
			 "threads right, within the budget", mode);
		test_cond(descr, ok);
	}
	archive_close(a);
	test_cond("nothing charged once closed", cache_used() == 0);
	ar_zran_set_readahead(true);
}

/* A sequential reader whose requests arrive two at a time, the second
 * first (as FUSE sends 512 KiB reads), of a member bigger than half the
 * budget: right bytes, and nothing cached (only random reads are).  The
 * read-ahead thread is off: whether its inflating races a reader onto a
 * block (and so caches it) depends on timing, which a test cannot hold
 * still; the caching rule is the reader's. */
static void test_pairs(void)
{
	struct archive *a = NULL;
	const struct ref *r = ref_of("r.npy");
	const size_t piece = 512 << 10;
	size_t idx;
	bool ok = true;

	if (archive_open(path_of("a.npz"), &a, NULL) != 0) {
		test_cond("pairs: open", 0);
		return;
	}
	archive_find(a, r->name, &idx);
	ar_zran_set_readahead(false);
	for (uint64_t off = 0; off < r->size; off += 2 * piece) {
		ok &= read_ok(a, idx, r, off + piece, piece);
		ok &= read_ok(a, idx, r, off, piece);
	}
	ar_zran_set_readahead(true);
	test_cond("pairs: right bytes", ok);
	test_cond("pairs: a sequential read caches no block",
		  atomic_load(&a->m[idx].cached) == 0);
	ok = read_ok(a, idx, r, r->size / 3, 4096);
	test_cond("pairs: a random read then caches its block",
		  ok && atomic_load(&a->m[idx].cached) > 0);
	archive_close(a);
}

/* A damaged member gives EIO (no crash), first in the middle, then from
 * the start; the other members still read. */
static void test_damaged(const char *file, const char *what, bool seq)
{
	struct archive *a = NULL;
	const struct ref *r = ref_of("c.npy"), *s = ref_of("s.npy");
	unsigned char *b = malloc(r->size);
	size_t idx;
	ssize_t n = 0;
	char descr[128];

	if (archive_open(path_of(file), &a, NULL) != 0) {
		test_cond("open damaged", 0);
		free(b);
		return;
	}
	archive_find(a, "c.npy", &idx);
	if (!seq) {
		n = archive_member_read(a, idx, b, 4096, r->size - 5000, NULL);
		snprintf(descr, sizeof(descr), "%s: read near the end: EIO",
			 what);
		test_cond(descr, n == -EIO);
	}
	for (uint64_t off = 0; off < r->size; off += 128 << 10) {
		n = archive_member_read(a, idx, b, 128 << 10, off, NULL);
		if (n < 0)
			break;
	}
	snprintf(descr, sizeof(descr), "%s: sequential read: EIO", what);
	test_cond(descr, n == -EIO);
	n = archive_member_read(a, idx, b, 100, 0, NULL);
	snprintf(descr, sizeof(descr), "%s: later reads: EIO", what);
	test_cond(descr, n == -EIO);
	archive_find(a, "s.npy", &idx);
	snprintf(descr, sizeof(descr), "%s: other members read", what);
	test_cond(descr, read_ok(a, idx, s, 0, s->size));
	archive_close(a);
	free(b);
}

int main(void)
{
	char cmd[1024];
	size_t alen;
	unsigned char *arc;
	int ret;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_zran.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	{
		FILE *f = fopen(path_of("fixture.py"), "w");

		fputs(fixture_py, f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s",
		 path_of("fixture.py"), tmpdir);
	if (system(cmd) != 0 || !load_refs()) {
		fprintf(stderr, "fixture failed\n");
		return 1;
	}
	test_cond("cache setup", cache_setup(tmpdir, LIMIT, NULL) == 0);
	arc = test_slurp(path_of("a.npz"), &alen);
	test_snapshots(arc, ref_of("r.npy"));
	test_snapshots(arc, ref_of("c.npy"));
	test_snapshots(arc, ref_of("z.npy"));
	free(arc);
	test_cond("span: 1 GiB in 64 MiB: 256-300 points",
		  (1ull << 30) / ar_zran_span(1ull << 30, 64ull << 20) >= 256 &&
		  (1ull << 30) / ar_zran_span(1ull << 30, 64ull << 20) <= 300);
	test_cond("span: at least 1 MiB",
		  ar_zran_span(4 << 20, 1ull << 30) >= MiB);
	test_reads(true);
	test_reads(false);
	test_pairs();
	test_damaged("damaged.npz", "damaged data", false);
	test_damaged("truncated.npz", "zeroed end", false);
	test_damaged("badcrc.npz", "wrong CRC", true);
	ret = test_report();
	for (size_t i = 0; i < nrefs; i++)
		free(refs[i].data);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return ret;
}
