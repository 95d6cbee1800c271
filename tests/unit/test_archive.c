/* test_archive.c - the zip layer (src/zip/) against archives written by
 * numpy and zipfile.
 * Fixtures are made at run time by /usr/bin/python3 in a temporary directory,
 * together with the expected bytes of every member (written by zipfile). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "test.h"

static char tmpdir[256];

static const char fixture_py[] =
"import numpy as np, zipfile, os, sys, shutil\n"
"d = sys.argv[1]\n"
"rng = np.random.default_rng(1)\n"
"arrs = dict(a=np.arange(10), big=np.round(rng.standard_normal(500000), 3),\n"
"            empty=np.zeros(0), rnd=rng.integers(0, 256, 2 << 20, dtype=np.uint8),\n"
"            small=np.round(rng.standard_normal(8000), 2),\n"
"            edge=np.zeros(65536 // 8 - 16))\n"
"for k in range(10):\n"
"    arrs['m%d' % k] = np.round(rng.standard_normal(200000), 2)\n"
"def add_extra(path, method):\n"
"    with zipfile.ZipFile(path, 'a', compression=method) as z:\n"
"        z.writestr('dir/sub.npy', b'\\x93NUMPY sub member')\n"
"        z.writestr('notes.txt', b'hello\\n' * 1000)\n"
"np.savez(d + '/s.npz', **arrs)\n"
"add_extra(d + '/s.npz', zipfile.ZIP_STORED)\n"
"np.savez_compressed(d + '/c.npz', **arrs)\n"
"add_extra(d + '/c.npz', zipfile.ZIP_DEFLATED)\n"
"# zip64 in the central directory too: lower the limit zipfile checks\n"
"zipfile.ZIP64_LIMIT = 1000\n"
"with zipfile.ZipFile(d + '/z64.npz', 'w', zipfile.ZIP_DEFLATED) as z:\n"
"    for k in ('a', 'big', 'small', 'empty'):\n"
"        with z.open(k + '.npy', 'w', force_zip64=True) as f:\n"
"            np.lib.format.write_array(f, arrs[k])\n"
"zipfile.ZIP64_LIMIT = (1 << 31) - 1\n"
"for name in ('s', 'c', 'z64'):\n"
"    with zipfile.ZipFile('%s/%s.npz' % (d, name)) as z, \\\n"
"         open('%s/%s.list' % (d, name), 'w') as lst:\n"
"        for i, info in enumerate(z.infolist()):\n"
"            lst.write('%s\\t%d\\t%d\\t%d\\t%d\\n' % (info.filename, info.file_size,\n"
"                      info.compress_size, info.compress_type, info.CRC))\n"
"            with open('%s/%s.%d' % (d, name, i), 'wb') as f:\n"
"                f.write(z.read(info))\n"
"open(d + '/empty.npz', 'wb').close()\n"
"with open(d + '/random.npz', 'wb') as f:\n"
"    f.write(rng.integers(0, 256, 10000, dtype=np.uint8).tobytes())\n"
"raw = open(d + '/s.npz', 'rb').read()\n"
"open(d + '/trunc.npz', 'wb').write(raw[:-100])\n"
"def patch(src, dst, member, fn):\n"
"    b = bytearray(open(src, 'rb').read())\n"
"    with zipfile.ZipFile(src) as z:\n"
"        info = z.getinfo(member)\n"
"        fn(b, info)\n"
"    open(dst, 'wb').write(bytes(b))\n"
"def data_off(b, info):\n"
"    h = info.header_offset\n"
"    n = int.from_bytes(b[h + 26:h + 28], 'little')\n"
"    e = int.from_bytes(b[h + 28:h + 30], 'little')\n"
"    return h + 30 + n + e\n"
"def badsig(b, info):\n"
"    b[info.header_offset] = ord('X')\n"
"patch(d + '/c.npz', d + '/badsig.npz', 'small.npy', badsig)\n"
"patch(d + '/s.npz', d + '/badsig_s.npz', 'a.npy', badsig)\n"
"def baddata(b, info):\n"
"    o = data_off(b, info) + info.compress_size // 2\n"
"    b[o:o + 4096] = b'\\xff' * 4096\n"
"patch(d + '/c.npz', d + '/baddata.npz', 'big.npy', baddata)\n"
"def badcrc(b, info):\n"
"    c = (info.CRC ^ 1).to_bytes(4, 'little')\n"
"    b[info.header_offset + 14:info.header_offset + 18] = c\n"
"    p = 0\n"
"    while True:\n"
"        p = b.find(b'PK\\x01\\x02', p)\n"
"        n = int.from_bytes(b[p + 28:p + 30], 'little')\n"
"        if bytes(b[p + 46:p + 46 + n]) == info.filename.encode():\n"
"            b[p + 16:p + 20] = c\n"
"            break\n"
"        p += 4\n"
"patch(d + '/c.npz', d + '/badcrc.npz', 'small.npy', badcrc)\n"
"patch(d + '/c.npz', d + '/badcrc_big.npz', 'big.npy', badcrc)\n"
"def flip(b, info):\n"
"    b[data_off(b, info) + info.compress_size // 2] ^= 4\n"
"patch(d + '/s.npz', d + '/flip_s.npz', 'a.npy', flip)\n"
"def lname(b, info):\n"
"    b[info.header_offset + 30] = ord('q')\n"
"patch(d + '/s.npz', d + '/lname.npz', 'small.npy', lname)\n"
"def lmethod(b, info):\n"
"    b[info.header_offset + 8] = 8\n"
"patch(d + '/s.npz', d + '/lmethod.npz', 'small.npy', lmethod)\n"
"def lsize(b, info):\n"
"    b[info.header_offset + 22] ^= 1\n"
"patch(d + '/s.npz', d + '/lsize.npz', 'small.npy', lsize)\n"
"p = raw.index(b'PK\\x01\\x02')\n"
"open(d + '/badcd.npz', 'wb').write(raw[:p] + b'XX' + raw[p + 2:])\n";

struct ref {
	char name[256];
	uint64_t size, comp_size;
	unsigned method;
	uint32_t crc;
	unsigned char *data;
};

struct refset {
	struct ref r[64];
	size_t n;
};

static char *path_of(const char *name)
{
	static char p[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

static void load_refs(const char *base, struct refset *rs)
{
	char line[512], file[64];
	FILE *f;

	snprintf(file, sizeof(file), "%s.list", base);
	f = fopen(path_of(file), "r");
	rs->n = 0;
	if (!f)
		return;
	while (rs->n < 64 && fgets(line, sizeof(line), f)) {
		struct ref *r = &rs->r[rs->n];
		unsigned long long s, c;
		size_t len;

		if (sscanf(line, "%255[^\t]\t%llu\t%llu\t%u\t%u", r->name, &s, &c,
			   &r->method, &r->crc) != 5)
			break;
		r->size = s;
		r->comp_size = c;
		snprintf(file, sizeof(file), "%s.%zu", base, rs->n);
		r->data = test_slurp(path_of(file), &len);
		if (!r->data || len != r->size)
			break;
		rs->n++;
	}
	fclose(f);
}

static void free_refs(struct refset *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->r[i].data);
	rs->n = 0;
}

static const struct ref *ref_find(const struct refset *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].name, name) == 0)
			return &rs->r[i];
	return NULL;
}

/* Read all of member idx in chunks of `chunk`; true if it equals ref. */
static bool read_all_matches(struct archive *a, size_t idx, const struct ref *r,
			     size_t chunk)
{
	unsigned char *buf = malloc(chunk);
	uint64_t off = 0;
	bool ok = buf != NULL;

	while (ok) {
		ssize_t n = archive_member_read(a, idx, buf, chunk, off, NULL);

		if (n < 0 || (n == 0 && off != r->size)) {
			ok = false;
			break;
		}
		if (n == 0)
			break;
		if (memcmp(buf, r->data + off, (size_t)n) != 0)
			ok = false;
		off += (uint64_t)n;
	}
	free(buf);
	return ok && off == r->size;
}

static bool read_at_matches(struct archive *a, size_t idx, const struct ref *r,
			    uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	size_t want = off >= r->size ? 0 :
		      (r->size - off < len ? (size_t)(r->size - off) : len);
	ssize_t n = archive_member_read(a, idx, buf, len, off, NULL);
	bool ok = n == (ssize_t)want &&
		  (want == 0 || memcmp(buf, r->data + off, want) == 0);

	free(buf);
	return ok;
}

static void test_listing(const char *base, uint16_t expect_method)
{
	struct refset rs;
	struct archive *a = NULL;
	struct npz_err err = { "" };
	char descr[128];
	bool ok = true, methods_ok = true;
	size_t i, idx;
	int ret;

	load_refs(base, &rs);
	snprintf(descr, sizeof(descr), "%s: fixtures loaded", base);
	test_cond(descr, rs.n >= 4);
	snprintf(descr, sizeof(descr), "%s.npz: opens", base);
	ret = archive_open(path_of(strcat(strcpy((char[64]){0}, base), ".npz")),
			   &a, &err);
	test_cond(descr, ret == 0 && a);
	if (ret) {
		printf("  %s\n", err.msg);
		free_refs(&rs);
		return;
	}
	snprintf(descr, sizeof(descr), "%s: count", base);
	test_cond(descr, archive_count(a) == rs.n);
	for (i = 0; i < rs.n && i < archive_count(a); i++) {
		const struct archive_member *m = archive_member(a, i);
		const struct ref *r = &rs.r[i];

		if (strcmp(m->name, r->name) || m->size != r->size ||
		    m->comp_size != r->comp_size || m->method != r->method ||
		    m->crc != r->crc)
			ok = false;
		if (strstr(m->name, ".npy") && m->method != expect_method)
			methods_ok = false;
		if (archive_find(a, r->name, &idx) != 0 || idx != i)
			ok = false;
	}
	snprintf(descr, sizeof(descr), "%s: names, sizes, methods, crcs, find",
		 base);
	test_cond(descr, ok);
	snprintf(descr, sizeof(descr), "%s: members use the expected method",
		 base);
	test_cond(descr, methods_ok);
	test_cond("find: missing name", archive_find(a, "nope.npy", &idx) == -ENOENT);
	test_cond("find: prefix of a name", archive_find(a, "dir", &idx) == -ENOENT);
	test_cond("member: out of range", archive_member(a, rs.n) == NULL);

	/* Whole members in odd-sized chunks. */
	ok = true;
	for (i = 0; i < rs.n; i++)
		if (!read_all_matches(a, i, &rs.r[i], 4093))
			ok = false;
	snprintf(descr, sizeof(descr), "%s: every member reads back in "
		 "4093-byte chunks", base);
	test_cond(descr, ok);
	archive_close(a);

	/* Fresh open: big reads, reads past the end. */
	ret = archive_open(path_of(strcat(strcpy((char[64]){0}, base), ".npz")),
			   &a, &err);
	test_cond("reopens", ret == 0);
	if (ret) {
		free_refs(&rs);
		return;
	}
	ok = true;
	for (i = 0; i < rs.n; i++)
		if (!read_all_matches(a, i, &rs.r[i], 1 << 20))
			ok = false;
	snprintf(descr, sizeof(descr), "%s: every member in 1 MiB chunks", base);
	test_cond(descr, ok);
	ok = true;
	for (i = 0; i < rs.n; i++) {
		const struct ref *r = &rs.r[i];

		if (!read_at_matches(a, i, r, r->size, 100) ||
		    !read_at_matches(a, i, r, r->size + 12345, 100) ||
		    !read_at_matches(a, i, r, UINT64_MAX - 10, 100) ||
		    (r->size && !read_at_matches(a, i, r, r->size - 1, 100)))
			ok = false;
	}
	snprintf(descr, sizeof(descr), "%s: reads at and past the end", base);
	test_cond(descr, ok);
	test_cond("read: index out of range",
		  archive_member_read(a, rs.n, (char[4]){0}, 4, 0, NULL) == -EINVAL);
	archive_close(a);
	free_refs(&rs);
}

/* Random reads in a fresh archive: past the frontier, backwards, below it. */
static void test_random(const char *base)
{
	struct refset rs;
	struct archive *a = NULL;
	const struct ref *r;
	size_t idx;
	bool ok = true;
	char descr[128];
	unsigned seed = 7;

	load_refs(base, &rs);
	r = ref_find(&rs, "big.npy");
	if (!r || archive_open(path_of(strcat(strcpy((char[64]){0}, base), ".npz")),
			       &a, NULL) != 0) {
		test_cond("random: setup", 0);
		free_refs(&rs);
		return;
	}
	archive_find(a, "big.npy", &idx);
	/* Far past the frontier first, then backwards. */
	ok &= read_at_matches(a, idx, r, r->size - 5000, 4096);
	for (uint64_t off = r->size; off > 70000; off -= 70001)
		ok &= read_at_matches(a, idx, r, off - 70000, 777);
	snprintf(descr, sizeof(descr), "%s: reads far ahead, then backwards",
		 base);
	test_cond(descr, ok);
	archive_close(a);

	archive_open(path_of(strcat(strcpy((char[64]){0}, base), ".npz")), &a,
		     NULL);
	ok = true;
	for (int k = 0; k < 300; k++) {
		uint64_t off = (uint64_t)rand_r(&seed) % (r->size + 1000);
		size_t len = (size_t)rand_r(&seed) % 20000;

		ok &= read_at_matches(a, idx, r, off, len);
	}
	snprintf(descr, sizeof(descr), "%s: 300 random reads", base);
	test_cond(descr, ok);
	archive_close(a);

	/* More large members than live streams, read round robin: evicted
	 * streams restart from the start of their member. */
	archive_open(path_of(strcat(strcpy((char[64]){0}, base), ".npz")), &a,
		     NULL);
	ok = true;
	for (uint64_t off = 0; off < 1700000; off += 150001) {
		for (int k = 0; k < 10; k++) {
			char name[16];

			snprintf(name, sizeof(name), "m%d.npy", k);
			r = ref_find(&rs, name);
			ok &= r && archive_find(a, name, &idx) == 0 &&
			      read_at_matches(a, idx, r, off, 4096);
		}
	}
	snprintf(descr, sizeof(descr), "%s: round robin over 10 members", base);
	test_cond(descr, ok);
	archive_close(a);
	free_refs(&rs);
}

/* Read [off, off + len) into a buffer with guard bytes on both sides: the
 * data matches ref and nothing outside the range was written. */
static bool read_guarded(struct archive *a, size_t idx, const struct ref *r,
			 uint64_t off, size_t len)
{
	enum { G = 64 };
	unsigned char *buf = malloc(len + 2 * G);
	size_t want = off >= r->size ? 0 :
		      (r->size - off < len ? (size_t)(r->size - off) : len);
	ssize_t n;
	bool ok = buf != NULL;

	if (!ok)
		return false;
	memset(buf, 0xa5, len + 2 * G);
	n = archive_member_read(a, idx, buf + G, len, off, NULL);
	ok = n == (ssize_t)want &&
	     (want == 0 || memcmp(buf + G, r->data + off, want) == 0);
	for (size_t k = 0; k < G; k++)
		ok &= buf[k] == 0xa5 && buf[G + len + k] == 0xa5;
	for (size_t k = want; k < len; k++)
		ok &= buf[G + k] == 0xa5;
	free(buf);
	return ok;
}

/* Deflated reads inflate straight into the caller's buffer: sequential
 * reads of every size, reads half in the cache and half new, and the
 * cache serving all of it afterwards. */
static void test_direct(void)
{
	static const size_t sizes[] = { 1, 4096, 131072, 1u << 20, 777 };
	struct refset rs;
	struct archive *a = NULL;
	const struct ref *r;
	size_t idx;
	bool ok;
	unsigned seed = 11;

	load_refs("c", &rs);
	r = ref_find(&rs, "big.npy");
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char descr[96];
		uint64_t off = 0;

		if (!r || archive_open(path_of("c.npz"), &a, NULL) != 0) {
			test_cond("direct: setup", 0);
			break;
		}
		archive_find(a, "big.npy", &idx);
		ok = true;
		/* 1-byte reads: only the first 300 KB */
		while (off < (sizes[k] == 1 ? 300000 : r->size) && ok) {
			ok = read_guarded(a, idx, r, off, sizes[k]);
			off += sizes[k];
		}
		snprintf(descr, sizeof(descr), "direct: sequential %zu-byte "
			 "reads, guard bytes intact", sizes[k]);
		test_cond(descr, ok);
		archive_close(a);
		a = NULL;
	}

	/* half cached, half new: every read starts inside what the
	 * previous one inflated and ends well past it */
	if (r && archive_open(path_of("c.npz"), &a, NULL) == 0) {
		archive_find(a, "big.npy", &idx);
		ok = true;
		for (uint64_t off = 0; off < r->size && ok; off += 150001)
			ok = read_guarded(a, idx, r, off, 300000);
		test_cond("direct: reads straddling the inflated part", ok);
		for (int k = 0; k < 200 && ok; k++) {
			uint64_t o = (uint64_t)rand_r(&seed) % (r->size + 10);

			ok = read_guarded(a, idx, r, o,
					  (size_t)rand_r(&seed) % 300000);
		}
		test_cond("direct: then random reads from the cache", ok);
		test_cond("direct: whole member in one read",
			  read_guarded(a, idx, r, 0, (size_t)r->size + 100));
		archive_close(a);
	}

	/* a read far ahead, then the range before it in one read */
	if (r && archive_open(path_of("c.npz"), &a, NULL) == 0) {
		archive_find(a, "big.npy", &idx);
		ok = read_guarded(a, idx, r, r->size / 2, 10000) &&
		     read_guarded(a, idx, r, 1000, (size_t)r->size - 2000);
		test_cond("direct: far ahead, then a read across it", ok);
		archive_close(a);
	}
	free_refs(&rs);
}

struct thr {
	struct archive *a;
	const struct ref *r;
	size_t idx;
	unsigned seed;
	bool ok;
};

static void *thr_main(void *p)
{
	struct thr *t = p;

	t->ok = true;
	for (int k = 0; k < 200; k++) {
		uint64_t off = (uint64_t)rand_r(&t->seed) % (t->r->size + 1);
		size_t len = (size_t)rand_r(&t->seed) % 70000;

		t->ok &= read_at_matches(t->a, t->idx, t->r, off, len);
	}
	t->ok &= read_all_matches(t->a, t->idx, t->r, 65536);
	return NULL;
}

/* Round 0: 4 threads on one member; round 1: 4 different members; round 2:
 * 10 threads on 10 members, more than the live streams kept. */
static void test_threads(const char *base)
{
	static const char *names[4] = { "big.npy", "rnd.npy", "m3.npy", "m7.npy" };
	static const int nthreads[3] = { 4, 4, 10 };
	static const char *what[3] = { "4 threads, same member",
		"4 threads, different members", "10 threads, 10 members" };
	struct refset rs;
	struct archive *a;
	struct thr t[10];
	pthread_t th[10];
	char descr[128], name[16];
	bool ok;

	load_refs(base, &rs);
	for (int round = 0; round < 3; round++) {
		if (archive_open(path_of(strcat(strcpy((char[64]){0}, base),
						".npz")), &a, NULL)) {
			test_cond("threads: open", 0);
			break;
		}
		ok = true;
		for (int k = 0; k < nthreads[round]; k++) {
			const char *n = round == 0 ? "big.npy" :
					round == 1 ? names[k] : name;

			snprintf(name, sizeof(name), "m%d.npy", k);
			t[k].a = a;
			t[k].r = ref_find(&rs, n);
			t[k].seed = (unsigned)k * 31 + 1;
			ok &= t[k].r && archive_find(a, n, &t[k].idx) == 0;
			pthread_create(&th[k], NULL, thr_main, &t[k]);
		}
		for (int k = 0; k < nthreads[round]; k++) {
			pthread_join(th[k], NULL);
			ok &= t[k].ok;
		}
		snprintf(descr, sizeof(descr), "%s: %s", base, what[round]);
		test_cond(descr, ok);
		archive_close(a);
	}
	free_refs(&rs);
}

static void test_open_errors(void)
{
	struct archive *a = NULL;
	struct npz_err err = { "" };
	int ret;

	ret = archive_open(path_of("missing.npz"), &a, &err);
	test_cond("missing file: -ENOENT", ret == -ENOENT);
	test_cond("missing file: message", strstr(err.msg, "No such file"));

	ret = archive_open(path_of("empty.npz"), &a, &err);
	test_cond("empty file: -EINVAL", ret == -EINVAL);
	test_cond("empty file: message", strstr(err.msg, "not a zip archive"));

	ret = archive_open(path_of("random.npz"), &a, &err);
	test_cond("random bytes: -EINVAL", ret == -EINVAL);
	test_cond("random bytes: message",
		  strcmp(err.msg, "not a zip archive") == 0);

	ret = archive_open(path_of("trunc.npz"), &a, &err);
	test_cond("truncated: -EINVAL", ret == -EINVAL);
	test_cond("truncated: message",
		  strncmp(err.msg, "damaged archive: ", 17) == 0);

	ret = archive_open(path_of("badcd.npz"), &a, &err);
	test_cond("bad central directory signature: -EINVAL", ret == -EINVAL);
	test_cond("bad central directory signature: damaged, not 'not a zip'",
		  strncmp(err.msg, "damaged archive: ", 17) == 0);

	ret = archive_open(tmpdir, &a, &err);
	test_cond("directory: -EISDIR", ret == -EISDIR);

	archive_close(NULL);
	test_cond("method names",
		  strcmp(archive_method_name(0), "stored") == 0 &&
		  strcmp(archive_method_name(8), "deflated") == 0 &&
		  strcmp(archive_method_name(12), "method 12") == 0);
}

/* Open file, read member name fully; returns the last result and err. */
static ssize_t read_member(const char *file, const char *name,
			   struct npz_err *err, bool *other_ok)
{
	struct archive *a;
	unsigned char buf[65536];
	uint64_t off = 0;
	ssize_t n = 0;
	size_t idx;

	if (archive_open(path_of(file), &a, err))
		return -9999;
	if (archive_find(a, name, &idx)) {
		archive_close(a);
		return -9998;
	}
	while ((n = archive_member_read(a, idx, buf, sizeof(buf), off, err)) > 0)
		off += (uint64_t)n;
	if (n < 0) {
		struct npz_err err2;

		/* fails again the same way */
		ssize_t m = archive_member_read(a, idx, buf, 10, 0, &err2);

		if (m != n || strcmp(err2.msg, err->msg) != 0)
			n = -7777;
	}
	if (other_ok) {
		/* the other members are fine */
		*other_ok = archive_find(a, "a.npy", &idx) == 0 &&
			    archive_member_read(a, idx, buf, 16, 0, NULL) == 16;
	}
	archive_close(a);
	return n;
}

static void test_read_errors(void)
{
	struct npz_err err = { "" };
	bool other_ok = false;
	ssize_t n;

	n = read_member("badsig.npz", "small.npy", &err, &other_ok);
	test_cond("bad local header (deflated): -EIO", n == -EIO);
	test_cond("bad local header: message",
		  strcmp(err.msg, "member small.npy: bad local header") == 0);
	test_cond("bad local header: other members read", other_ok);

	n = read_member("badsig_s.npz", "a.npy", &err, NULL);
	test_cond("bad local header (stored): -EIO", n == -EIO);

	n = read_member("baddata.npz", "big.npy", &err, &other_ok);
	test_cond("corrupted deflate data: -EIO", n == -EIO);
	test_cond("corrupted deflate data: message",
		  strstr(err.msg, "member big.npy: ") == err.msg);
	test_cond("corrupted deflate data: other members read", other_ok);

	n = read_member("badcrc.npz", "small.npy", &err, NULL);
	test_cond("CRC mismatch (small member): -EIO", n == -EIO);
	test_cond("CRC mismatch: message",
		  strcmp(err.msg, "member small.npy: CRC mismatch") == 0);

	n = read_member("badcrc_big.npz", "big.npy", &err, NULL);
	test_cond("CRC mismatch (big member): -EIO", n == -EIO);
}

/* Check member name of file: its return value, err in *err. */
static int check_one(const char *file, const char *name, struct npz_err *err)
{
	struct archive *a;
	size_t idx;
	int ret;

	if (archive_open(path_of(file), &a, err))
		return -9999;
	if (archive_find(a, name, &idx)) {
		archive_close(a);
		return -9998;
	}
	err->msg[0] = '\0';
	ret = archive_check_member(a, idx, err);
	archive_close(a);
	return ret;
}

static void count_report(void *ctx, size_t i, const char *msg)
{
	(void)i;
	(void)msg;
	++*(int *)ctx;
}

static void test_check(void)
{
	static const char *sound[] = { "s.npz", "c.npz", "z64.npz" };
	struct npz_err err = { "" };
	struct archive *a;
	int ret, reports;

	for (size_t k = 0; k < 3; k++) {
		bool opened = archive_open(path_of(sound[k]), &a, &err) == 0;
		bool ok = opened;
		char descr[96];

		for (size_t i = 0; ok && i < archive_count(a); i++)
			ok = archive_check_member(a, i, &err) == 0;
		reports = 0;
		ok = ok && archive_check_layout(a, count_report, &reports,
						&err) == 0 && reports == 0;
		snprintf(descr, sizeof(descr), "check: every member of %s is "
			 "sound, layout too", sound[k]);
		test_cond(descr, ok);
		if (ok && k == 1) {
			/* the inflate cache was not used */
			size_t idx, n;
			uint64_t pos;
			int fd;

			archive_find(a, "big.npy", &idx);
			test_cond("check: leaves the inflate cache alone",
				  archive_member_span(a, idx, 0, 100, &fd, &pos,
						      &n, NULL) == -EAGAIN);
			test_cond("check: index out of range",
				  archive_check_member(a, archive_count(a),
						       &err) == -EINVAL);
		}
		if (opened)
			archive_close(a);
	}

	ret = check_one("flip_s.npz", "a.npy", &err);
	test_cond("check: flipped byte in a stored member: -EIO", ret == -EIO);
	test_cond("check: flipped byte: message",
		  strncmp(err.msg, "CRC mismatch (stored 0x", 23) == 0);
	ret = check_one("flip_s.npz", "small.npy", &err);
	test_cond("check: the other members are sound", ret == 0);

	ret = check_one("badsig.npz", "small.npy", &err);
	test_cond("check: bad local signature", ret == -EIO &&
		  strncmp(err.msg, "bad local header signature", 26) == 0);
	ret = check_one("baddata.npz", "big.npy", &err);
	test_cond("check: damaged deflate data", ret == -EIO && err.msg[0]);
	ret = check_one("badcrc.npz", "small.npy", &err);
	test_cond("check: CRC mismatch (deflated)", ret == -EIO &&
		  strncmp(err.msg, "CRC mismatch (stored 0x", 23) == 0);
	ret = check_one("lname.npz", "small.npy", &err);
	test_cond("check: local name differs", ret == -EIO &&
		  strcmp(err.msg, "local header name \"qmall.npy\" differs "
			 "from the central directory's") == 0);
	ret = check_one("lmethod.npz", "small.npy", &err);
	test_cond("check: local method differs", ret == -EIO &&
		  strcmp(err.msg, "local header method 8 differs from the "
			 "central directory's 0") == 0);
	ret = check_one("lsize.npz", "small.npy", &err);
	test_cond("check: local size differs", ret == -EIO &&
		  strncmp(err.msg, "local header sizes ", 19) == 0);
}

int main(void)
{
	char cmd[1024];
	int fd;

	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_archive.XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "%s/fixtures.py", tmpdir);
	fd = open(cmd, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, fixture_py, sizeof(fixture_py) - 1) !=
		      (ssize_t)sizeof(fixture_py) - 1) {
		perror("fixtures.py");
		return 1;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/fixtures.py %s",
		 tmpdir, tmpdir);
	if (system(cmd) != 0) {
		test_cond("fixture generation", 0);
		return test_report();
	}

	test_listing("s", ARCHIVE_STORE);
	test_listing("c", ARCHIVE_DEFLATE);
	test_listing("z64", ARCHIVE_DEFLATE);
	test_random("s");
	test_random("c");
	test_direct();
	test_threads("s");
	test_threads("c");
	test_open_errors();
	test_read_errors();
	test_check();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", tmpdir);
	return test_report();
}
