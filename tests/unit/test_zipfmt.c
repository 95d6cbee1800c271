/* test_zipfmt.c - the zip records the cloned commit writes (src/zip/zipfmt.c)
 * read back by Python's zipfile and `unzip -t`: a local header with a forced
 * zip64 extra field (as numpy writes every member), and a member past 4 GiB
 * in a sparse file (zip64 offset in its central entry, zip64 end records);
 * field by field for a central entry whose three values overflow. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../../src/zip/zip_internal.h"
#include "test.h"

static char dir[256];

static const char check_py[] =
	"import sys, zipfile\n"
	"path, want_off = sys.argv[1], int(sys.argv[2])\n"
	"with zipfile.ZipFile(path) as z:\n"
	"    assert z.testzip() is None\n"
	"    infos = z.infolist()\n"
	"    assert infos[-1].header_offset == want_off, infos[-1].header_offset\n"
	"    for i in infos:\n"
	"        assert z.read(i) == b'hello zip64 ' + i.filename.encode(), i\n";

static bool check_zip(const char *path, uint64_t last_off)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/check.py %s %llu && "
		 "unzip -tq %s >/dev/null", dir, path,
		 (unsigned long long)last_off, path);
	return system(cmd) == 0;
}

/* Member `name` ("hello zip64 NAME" stored) at off; its entry in *e. */
static bool put_member(int fd, const char *name, uint64_t off, bool zip64,
		       struct zip_entry *e, unsigned char *buf)
{
	char data[64];
	size_t len = (size_t)snprintf(data, sizeof(data), "hello zip64 %s",
				      name);
	size_t hl;

	memset(e, 0, sizeof(*e));
	e->name = name;
	e->name_len = (uint16_t)strlen(name);
	e->made_by = 3 << 8 | 20;
	e->needed = zip64 ? 45 : 20;
	e->method = ARCHIVE_STORE;
	ar_dos_time(1700000000, &e->time, &e->date);
	e->ext_attr = 0100644u << 16;
	e->crc = (uint32_t)crc32(0, (const unsigned char *)data, (uInt)len);
	e->size = e->comp_size = len;
	e->lh_off = off;
	hl = ar_local_header(buf, e, zip64);
	memcpy(buf + hl, data, len);
	return pwrite(fd, buf, hl + len, (off_t)off) == (ssize_t)(hl + len);
}

/* The central directory of ents[0..n) at off, then the end records. */
static bool put_central(int fd, const struct zip_entry *ents, size_t n,
			uint64_t off, unsigned char *buf)
{
	size_t len = 0, i;

	for (i = 0; i < n; i++)
		len += ar_central_entry(buf + len, &ents[i]);
	len += ar_end_records(buf + len, n, off, len);
	return pwrite(fd, buf, len, (off_t)off) == (ssize_t)len;
}

static void test_forced_local_zip64(void)
{
	unsigned char buf[4096];
	struct zip_entry e[2];
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/local64.zip", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	test_cond("local64: put", fd >= 0 &&
		  put_member(fd, "a.npy", 0, true, &e[0], buf) &&
		  put_member(fd, "b.npy", 100, false, &e[1], buf) &&
		  put_central(fd, e, 2, 200, buf));
	test_cond("local64: header length", ar_local_header_len(&e[0], true) ==
		  30 + 5 + 20);
	ar_local_header(buf, &e[0], true);
	test_cond("local64: placeholders", get32(buf + 18) == 0xffffffffu &&
		  get32(buf + 22) == 0xffffffffu && get16(buf + 28) == 20);
	test_cond("local64: extra", get16(buf + 35) == 1 &&
		  get16(buf + 37) == 16 && get64(buf + 39) == e[0].size &&
		  get64(buf + 47) == e[0].comp_size);
	test_cond("local64: zipfile and unzip read it", check_zip(path, 100));
	if (fd >= 0)
		close(fd);
}

/* Alignment padding: stored data on 64 or 4096 bytes, never a pad of 1-5
 * bytes (too short for an extra field), none for deflated data. */
static void test_pad(void)
{
	struct zip_entry e = { .name = "x.npy", .name_len = 5,
			       .method = ARCHIVE_STORE, .size = 100 };
	unsigned char buf[30 + 5 + 20 + 4096 + 8];
	size_t len;

	e.pad = ar_local_pad(&e, false, 0);
	test_cond("pad: small data on 64", e.pad == 64 - 35 &&
		  ar_local_header_len(&e, false) == 64);
	len = ar_local_header(buf, &e, false);
	test_cond("pad: the extra field", len == 64 && get16(buf + 28) == 29 &&
		  get16(buf + 35) == 0xd935 && get16(buf + 37) == 25 &&
		  get16(buf + 39) == 64 && buf[63] == 0);
	e.size = 1 << 20;
	e.pad = ar_local_pad(&e, true, 4096 - 55 - 3);
	test_cond("pad: big data on 4096, never 1-5 bytes",
		  e.pad == 4096 + 3 && (4096 - 58 + ar_local_header_len(&e, true)) % 4096 == 0);
	len = ar_local_header(buf, &e, true);
	test_cond("pad: after the zip64 extra", get16(buf + 28) == 20 + e.pad &&
		  get16(buf + 35) == 1 && get16(buf + 55) == 0xd935 &&
		  get16(buf + 59) == 4096);
	e.pad = 0;
	test_cond("pad: aligned already", ar_local_pad(&e, true, 4096 - 55) == 0);
	e.method = ARCHIVE_DEFLATE;
	test_cond("pad: none for deflated data", ar_local_pad(&e, false, 1) == 0);
}

static void test_past_4gib(void)
{
	const uint64_t far = 5ull << 30;
	unsigned char buf[4096];
	struct zip_entry e[2];
	char path[512];
	size_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/far.zip", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	test_cond("far: put", fd >= 0 &&
		  put_member(fd, "near", 0, false, &e[0], buf) &&
		  put_member(fd, "far", far, true, &e[1], buf) &&
		  put_central(fd, e, 2, far + 100, buf));
	len = ar_central_entry(buf, &e[1]);
	test_cond("far: central offset in zip64 extra",
		  len == 46 + 3 + 12 && get32(buf + 42) == 0xffffffffu &&
		  get32(buf + 20) == e[1].comp_size &&
		  get16(buf + 30) == 12 && get16(buf + 49) == 1 &&
		  get16(buf + 51) == 8 && get64(buf + 53) == far);
	len = ar_end_records(buf, 2, far + 100, 123);
	test_cond("far: zip64 end records", len == 56 + 20 + 22 &&
		  get32(buf) == SIG_EOCD64 && get64(buf + 48) == far + 100 &&
		  get32(buf + 56) == SIG_EOCD64_LOC &&
		  get64(buf + 64) == far + 223 &&
		  get32(buf + 76) == SIG_EOCD && get32(buf + 92) == 0xffffffffu);
	test_cond("far: zipfile and unzip read it", check_zip(path, far));
	if (fd >= 0)
		close(fd);
	unlink(path);
}

static void test_all_overflow(void)
{
	struct zip_entry e = { .name = "x", .name_len = 1, .needed = 20,
			       .size = 6ull << 30, .comp_size = 5ull << 30,
			       .lh_off = 7ull << 30 };
	unsigned char buf[128];
	size_t len = ar_central_entry(buf, &e);

	test_cond("overflow: length", len == 46 + 1 + 28 &&
		  len == ar_central_len(&e));
	test_cond("overflow: 32-bit fields", get32(buf + 20) == 0xffffffffu &&
		  get32(buf + 24) == 0xffffffffu &&
		  get32(buf + 42) == 0xffffffffu && get16(buf + 6) == 45);
	test_cond("overflow: extra in APPNOTE order", get16(buf + 47) == 1 &&
		  get16(buf + 49) == 24 && get64(buf + 51) == e.size &&
		  get64(buf + 59) == e.comp_size && get64(buf + 67) == e.lh_off);
	test_cond("small: no zip64", !ar_local_needs_zip64(1u << 30) &&
		  ar_local_needs_zip64(0xffffffffull));
}

/* A kept member's central entry moved by the copy mode (ar_central_moved):
 * byte for byte what ar_central_entry() writes for the new offset when the
 * entry had no offset field (a zip64 field inserted, after the sizes, or
 * a new zip64 extra), the zip64 field updated when it had one, the 32-bit
 * field otherwise; a comment and other extra fields kept; and a sparse
 * file with the moved entry past 4 GiB read by zipfile and unzip. */
static void test_moved(void)
{
	const uint64_t far = 5ull << 30;
	struct zip_entry e = { .name = "x", .name_len = 1, .needed = 20,
			       .size = 6ull << 30, .comp_size = 5ull << 30,
			       .lh_off = 100 };
	unsigned char src[256], dst[256], want[256], buf[4096];
	struct zip_entry ents[2];
	size_t len, wlen, got;
	char path[512];
	int fd;

	/* sizes in zip64, offset not: the offset goes after them */
	len = ar_central_entry(src, &e);
	e.lh_off = 7ull << 30;
	wlen = ar_central_entry(want, &e);
	got = ar_central_moved(dst, src, len, e.lh_off);
	test_cond("moved: offset inserted after the zip64 sizes",
		  got == wlen && got == len + 8 && !memcmp(dst, want, wlen));
	/* back below 4 GiB: the zip64 field stays, with the new value */
	got = ar_central_moved(dst, want, wlen, 4096);
	test_cond("moved: zip64 offset field updated in place",
		  got == wlen && get32(dst + 42) == 0xffffffffu &&
		  get64(dst + 67) == 4096 && !memcmp(dst, want, 67));
	/* no zip64 extra: a new one; a comment and another extra kept */
	e.size = e.comp_size = 10;
	e.lh_off = 300;
	len = ar_central_entry(src, &e);
	memcpy(src + len, "\x55\x54\x05\x00\x01\x02\x03\x04\x05", 9);
	memcpy(src + len + 9, "hi", 2);
	put16(src + 30, 9);
	put16(src + 32, 2);
	len += 11;
	got = ar_central_moved(dst, src, len, 300 + 4096);
	test_cond("moved: below 4 GiB, only the 32-bit offset changes",
		  got == len && get32(dst + 42) == 300 + 4096 &&
		  !memcmp(dst, src, 42) &&
		  !memcmp(dst + 46, src + 46, len - 46));
	got = ar_central_moved(dst, src, len, far);
	test_cond("moved: a zip64 extra added after the others",
		  got == len + 12 && get16(dst + 30) == 9 + 12 &&
		  get32(dst + 42) == 0xffffffffu && get16(dst + 6) == 45 &&
		  !memcmp(dst + 47, src + 47, 9) && get16(dst + 56) == 1 &&
		  get16(dst + 58) == 8 && get64(dst + 60) == far &&
		  !memcmp(dst + 68, "hi", 2));
	/* in a real file: near at 0, far at 5 GiB, far's entry made for an
	 * offset of 1000 and moved */
	snprintf(path, sizeof(path), "%s/moved.zip", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	test_cond("moved: put", fd >= 0 &&
		  put_member(fd, "near", 0, false, &ents[0], buf) &&
		  put_member(fd, "far", far, false, &ents[1], buf));
	len = ar_central_entry(buf, &ents[0]);
	ents[1].lh_off = 1000;
	len += ar_central_entry(src, &ents[1]);
	got = ar_central_moved(buf + len - ar_central_len(&ents[1]), src,
			       ar_central_len(&ents[1]), far);
	len += got - ar_central_len(&ents[1]);
	len += ar_end_records(buf + len, 2, far + 100, len);
	test_cond("moved: written", fd >= 0 && got &&
		  pwrite(fd, buf, len, (off_t)(far + 100)) == (ssize_t)len);
	test_cond("moved: zipfile and unzip read it", check_zip(path, far));
	if (fd >= 0)
		close(fd);
	unlink(path);
}

static void test_dos_time(void)
{
	struct tm tm = { .tm_year = 124, .tm_mon = 2, .tm_mday = 9,
			 .tm_hour = 13, .tm_min = 45, .tm_sec = 31,
			 .tm_isdst = -1 };
	uint16_t t, d;

	ar_dos_time(mktime(&tm), &t, &d);
	test_cond("dos time", t == (13 << 11 | 45 << 5 | 15) &&
		  d == (44 << 9 | 3 << 5 | 9));
	ar_dos_time(0, &t, &d);
	test_cond("dos time before 1980", t == 0 && d == (1 << 5 | 1));
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char path[512];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/test_zipfmt.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/check.py", dir);
	f = fopen(path, "w");
	if (!f || fputs(check_py, f) < 0 || fclose(f))
		return 1;
	test_forced_local_zip64();
	test_pad();
	test_past_4gib();
	test_all_overflow();
	test_moved();
	test_dos_time();
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		printf("could not remove %s\n", dir);
	return test_report();
}
