/* test_commit.c - archive_commit() against numpy and Python's zipfile.
 * Fixtures and checks are run by /usr/bin/python3 (chk.py below): entries
 * are compared field by field and by their raw compressed bytes, values
 * with numpy.  Failure cases use tmpfs mounts (root only; skipped with a
 * note otherwise) and a child that drops to "nobody" for EACCES. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive.h"
#include "test.h"

static char tmpdir[256];

static const char chk_py[] =
"import numpy as np, zipfile, sys, os, time\n"
"def raw(path, info):\n"
"    with open(path, 'rb') as f:\n"
"        f.seek(info.header_offset)\n"
"        h = f.read(30)\n"
"        assert h[:4] == b'PK\\x03\\x04', 'local header'\n"
"        n = int.from_bytes(h[26:28], 'little')\n"
"        e = int.from_bytes(h[28:30], 'little')\n"
"        f.seek(info.header_offset + 30 + n + e)\n"
"        return f.read(info.compress_size)\n"
"def fix(d):\n"
"    rng = np.random.default_rng(7)\n"
"    arrs = dict(a=np.arange(10), b=rng.standard_normal(1000),\n"
"                c=np.arange(50) * 2, small=np.zeros(3))\n"
"    np.savez(d + '/s.npz', **arrs)\n"
"    np.savez_compressed(d + '/c.npz', **arrs)\n"
"    b2 = np.arange(1000) * 0.5\n"
"    np.save(d + '/b2.npy', b2)\n"
"    np.save(d + '/n.npy', np.arange(5000) % 7)\n"
"    ref = dict(arrs); ref['b'] = b2\n"
"    np.savez_compressed(d + '/c_ref.npz', **ref)\n"
"    for k, v in arrs.items():\n"
"        np.save('%s/orig_%s.npy' % (d, k), v)\n"
"    with open(d + '/fill.bin', 'wb') as f:\n"
"        f.write(os.urandom(20 << 20))\n"
"    np.save(d + '/f3.npy', np.round(rng.standard_normal(400000), 3))\n"
"    np.save(d + '/f12.npy', np.round(rng.standard_normal(1600000), 3))\n"
"def main(cmd, *a):\n"
"    if cmd == 'fix':\n"
"        fix(a[0])\n"
"    elif cmd == 'same':\n"
"        old, new = a[0], a[1]\n"
"        with zipfile.ZipFile(old) as zo, zipfile.ZipFile(new) as zn:\n"
"            for pair in a[2:]:\n"
"                on, nn = pair.split(':') if ':' in pair else (pair, pair)\n"
"                io, i2 = zo.getinfo(on), zn.getinfo(nn)\n"
"                for fld in ('compress_type', 'CRC', 'date_time',\n"
"                            'compress_size', 'file_size'):\n"
"                    assert getattr(io, fld) == getattr(i2, fld), (pair, fld,\n"
"                        getattr(io, fld), getattr(i2, fld))\n"
"                assert raw(old, io) == raw(new, i2), (pair, 'raw bytes')\n"
"    elif cmd == 'names':\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            assert z.namelist() == list(a[1:]), z.namelist()\n"
"    elif cmd == 'npy':\n"
"        with np.load(a[0]) as z:\n"
"            x = z[a[1][:-4]]\n"
"        y = np.load(a[2])\n"
"        assert x.dtype == y.dtype and np.array_equal(x, y), a\n"
"    elif cmd == 'ok':\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            assert z.testzip() is None\n"
"            for i in z.infolist():\n"
"                assert i.compress_type in (0, 8)\n"
"        with np.load(a[0]) as z:\n"
"            for k in z.files:\n"
"                z[k]\n"
"    elif cmd == 'entry':\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            i = z.getinfo(a[1])\n"
"            assert i.compress_type == int(a[2]), i.compress_type\n"
"            t = time.localtime(int(a[3]))\n"
"            want = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,\n"
"                    t.tm_sec // 2 * 2)\n"
"            assert i.date_time == want, (i.date_time, want)\n"
"    elif cmd == 'zlevel':\n"
"        import zlib\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            i = z.getinfo(a[1])\n"
"            data = z.read(i)\n"
"        c = zlib.compressobj(int(a[2]), zlib.DEFLATED, -15)\n"
"        assert raw(a[0], i) == c.compress(data) + c.flush(), 'not ours'\n"
"    elif cmd == 'raweq':\n"
"        import zlib\n"
"        with open(a[2], 'rb') as f:\n"
"            want = f.read(int(a[3]))\n"
"        assert len(want) == int(a[3])\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            assert z.testzip() is None\n"
"            i = z.getinfo(a[1])\n"
"            assert i.compress_type == 8 and i.file_size == len(want)\n"
"            assert i.CRC == zlib.crc32(want), 'CRC'\n"
"            assert z.read(i) == want, 'content'\n"
"        d = zlib.decompressobj(-15)\n"
"        got = d.decompress(raw(a[0], i))\n"
"        assert got == want and d.eof and not d.unused_data, 'one stream'\n"
"    elif cmd == 'sozip':\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            i = z.getinfo(a[1])\n"
"        with open(a[0], 'rb') as f:\n"
"            f.seek(i.header_offset)\n"
"            h = f.read(30)\n"
"            f.seek(i.header_offset + 30 + int.from_bytes(h[26:28], 'little')\n"
"                   + int.from_bytes(h[28:30], 'little') + i.compress_size)\n"
"            h = f.read(30 + len(a[1]) + 11)\n"
"        assert h[:4] == b'PK\\x03\\x04', 'no hidden index'\n"
"        assert h[30:] == ('.' + a[1] + '.sozip.idx').encode(), h[30:]\n"
"    elif cmd == 'zclose':\n"
"        import zlib\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            i = z.getinfo(a[1])\n"
"            data = z.read(i)\n"
"        c = zlib.compressobj(int(a[2]), zlib.DEFLATED, -15)\n"
"        one = c.compress(data) + c.flush()\n"
"        assert i.compress_size <= len(one) * float(a[3]), \\\n"
"            (i.compress_size, len(one))\n"
"        assert raw(a[0], i) != one, 'not chunked'\n"
"    elif cmd == 'empty':\n"
"        with np.load(a[0]) as z:\n"
"            assert len(z.files) == 0\n"
"    elif cmd == 'big':\n"
"        n = int(a[2])\n"
"        with np.load(a[0]) as z:\n"
"            x = z[a[1]]\n"
"        assert x.shape == (n,) and x.dtype == np.uint8\n"
"        assert np.array_equal(x[:1000], (np.arange(1000) % 251).astype(np.uint8))\n"
"        assert np.array_equal(x[-1000:], (np.arange(n - 1000, n) % 251).astype(np.uint8))\n"
"        with zipfile.ZipFile(a[0]) as z:\n"
"            assert z.testzip() is None\n"
"    else:\n"
"        raise SystemExit('bad command ' + cmd)\n"
"main(*sys.argv[1:])\n";

/* Run chk.py with the arguments; true if it exits 0. */
static bool chk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool chk(const char *fmt, ...)
{
	char cmd[4096];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/chk.py ", tmpdir);
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	return system(cmd) == 0;
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

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* Copy fixture src to dst (fresh inode). */
static void fresh(const char *src, const char *dst)
{
	run("cp %s/%s %s/%s", tmpdir, src, tmpdir, dst);
}

static int open_ro(const char *name)
{
	char p[512];

	path_of(p, sizeof(p), name);
	return open(p, O_RDONLY | O_CLOEXEC);
}

static size_t idx_of(struct archive *a, const char *name)
{
	size_t i = SIZE_MAX;

	archive_find(a, name, &i);
	return i;
}

static struct archive_change keep(struct archive *a, const char *old,
				  const char *new_name)
{
	struct archive_change c = { .name = new_name ? new_name : old,
				    .from = (ssize_t)idx_of(a, old), .fd = -1 };
	return c;
}

static struct archive_change content(const char *name, int fd,
				     uint16_t method, int level, time_t mtime)
{
	struct archive_change c = { .name = name, .from = -1, .fd = fd,
				    .method = method, .level = level,
				    .mtime = mtime };
	struct stat sb;

	if (fstat(fd, &sb) == 0)
		c.size = (uint64_t)sb.st_size;
	return c;
}

/* True if no temporary file of ours is left in dir. */
static bool no_temp_left(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool ok = true;

	if (!d)
		return false;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".npzfs-"))
			ok = false;
	closedir(d);
	return ok;
}

/* Member `name` of a reads back as the bytes of file `ref`. */
static bool member_is(struct archive *a, const char *name, const char *ref)
{
	char p[512], *want, *got;
	struct stat sb;
	size_t i = idx_of(a, name);
	bool ok;
	int fd;

	path_of(p, sizeof(p), ref);
	fd = open(p, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || i == SIZE_MAX)
		return false;
	want = malloc((size_t)sb.st_size + 1);
	got = malloc((size_t)sb.st_size + 1);
	ok = read(fd, want, (size_t)sb.st_size) == sb.st_size &&
	     archive_member(a, i)->size == (uint64_t)sb.st_size &&
	     archive_member_read(a, i, got, (size_t)sb.st_size, 0, NULL) ==
		     sb.st_size &&
	     memcmp(want, got, (size_t)sb.st_size) == 0;
	close(fd);
	free(want);
	free(got);
	return ok;
}

static void test_stored(void)
{
	char p[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[5];
	struct stat before, after;
	int fb2 = open_ro("b2.npy"), fn = open_ro("n.npy");
	int ret;

	fresh("s.npz", "t1.npz");
	path_of(p, sizeof(p), "t1.npz");
	test_cond("setup: chown/chmod", chown(p, 1234, 5678) == 0 &&
					chmod(p, 0640) == 0);
	stat(p, &before);
	test_cond("open t1", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "a.npy", NULL);
	ch[1] = content("b.npy", fb2, ARCHIVE_STORE, -1, 1700000000);
	ch[2] = keep(a, "c.npy", "c2.npy");
	ch[3] = content("n.npy", fn, ARCHIVE_DEFLATE, -1, 1700000001);
	ch[4] = content("m.npy", fb2, ARCHIVE_STORE, -1, 1700000002);
	ret = archive_commit(a, ch, 5, &b, &err);
	test_cond("stored: commit", ret == 0);
	if (ret) {
		printf("  %d %s\n", ret, err.msg);
		archive_close(a);
		return;
	}
	test_cond("stored: order", chk("names %s a.npy b.npy c2.npy n.npy m.npy", p));
	test_cond("stored: untouched and renamed entries identical",
		  chk("same %s/s.npz %s a.npy c.npy:c2.npy", tmpdir, p));
	test_cond("stored: loads, CRCs ok", chk("ok %s", p));
	test_cond("stored: replaced value", chk("npy %s b.npy %s/b2.npy", p, tmpdir));
	test_cond("stored: added deflated value", chk("npy %s n.npy %s/n.npy", p, tmpdir));
	test_cond("stored: added stored value", chk("npy %s m.npy %s/b2.npy", p, tmpdir));
	test_cond("stored: kept value", chk("npy %s c2.npy %s/orig_c.npy", p, tmpdir));
	test_cond("stored: b entry", chk("entry %s b.npy 0 1700000000", p));
	test_cond("stored: n entry", chk("entry %s n.npy 8 1700000001", p));
	test_cond("stored: m entry", chk("entry %s m.npy 0 1700000002", p));
	stat(p, &after);
	test_cond("stored: new inode", after.st_ino != before.st_ino);
	test_cond("stored: mode kept", (after.st_mode & 07777) == 0640);
	test_cond("stored: owner kept", after.st_uid == 1234 && after.st_gid == 5678);
	test_cond("stored: no temp file", no_temp_left(tmpdir));
	test_cond("stored: old archive reads old b", member_is(a, "b.npy", "orig_b.npy"));
	test_cond("stored: old archive reads old c", member_is(a, "c.npy", "orig_c.npy"));
	test_cond("stored: new archive reads new b", member_is(b, "b.npy", "b2.npy"));
	test_cond("stored: new archive reads n", member_is(b, "n.npy", "n.npy"));
	test_cond("stored: new archive reads c2", member_is(b, "c2.npy", "orig_c.npy"));
	test_cond("stored: new archive count", archive_count(b) == 5);
	test_cond("stored: new archive methods",
		  archive_member(b, 1)->method == ARCHIVE_STORE &&
		  archive_member(b, 3)->method == ARCHIVE_DEFLATE &&
		  archive_member(b, 3)->mtime == 1700000000);
	test_cond("stored: path kept", strcmp(archive_path(b), archive_path(a)) == 0);
	archive_close(a);

	/* a second commit on the new archive: delete everything but one */
	a = b;
	b = NULL;
	ch[0] = keep(a, "n.npy", NULL);
	ret = archive_commit(a, ch, 1, &b, &err);
	test_cond("second commit", ret == 0 && archive_count(b) == 1);
	test_cond("second commit: n untouched",
		  chk("npy %s n.npy %s/n.npy", p, tmpdir));
	archive_close(a);
	archive_close(b);
	close(fb2);
	close(fn);
}

static void test_deflated(void)
{
	char p[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[4];
	int fb2 = open_ro("b2.npy");
	int ret;

	fresh("c.npz", "t2.npz");
	path_of(p, sizeof(p), "t2.npz");
	test_cond("open t2", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "a.npy", NULL);
	ch[1] = content("b.npy", fb2, ARCHIVE_DEFLATE, -1, 315532800);
	ch[2] = keep(a, "c.npy", NULL);
	ch[3] = keep(a, "small.npy", NULL);
	ret = archive_commit(a, ch, 4, &b, &err);
	test_cond("deflated: commit", ret == 0);
	if (ret) {
		printf("  %d %s\n", ret, err.msg);
		archive_close(a);
		return;
	}
	test_cond("deflated: order", chk("names %s a.npy b.npy c.npy small.npy", p));
	test_cond("deflated: untouched identical",
		  chk("same %s/c.npz %s a.npy c.npy small.npy", tmpdir, p));
	/* level -1 deflates exactly like numpy's savez_compressed */
	test_cond("deflated: new b byte-identical to numpy's",
		  chk("same %s/c_ref.npz %s b.npy", tmpdir, p));
	test_cond("deflated: loads", chk("ok %s", p));
	test_cond("deflated: value", chk("npy %s b.npy %s/b2.npy", p, tmpdir));
	test_cond("deflated: old reads old", member_is(a, "b.npy", "orig_b.npy"));
	test_cond("deflated: new reads new", member_is(b, "b.npy", "b2.npy"));
	archive_close(a);
	archive_close(b);

	/* levels 0 and 9, and stored content into a deflated member */
	fresh("c.npz", "t2b.npz");
	path_of(p, sizeof(p), "t2b.npz");
	a = b = NULL;
	test_cond("open t2b", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = content("a.npy", fb2, ARCHIVE_DEFLATE, 0, 1700000000);
	ch[1] = content("b.npy", fb2, ARCHIVE_DEFLATE, 9, 1700000000);
	ch[2] = content("c.npy", fb2, ARCHIVE_STORE, -1, 1700000000);
	ret = archive_commit(a, ch, 3, &b, &err);
	test_cond("levels: commit", ret == 0);
	test_cond("levels: loads", chk("ok %s", p));
	test_cond("levels: values", chk("npy %s a.npy %s/b2.npy", p, tmpdir) &&
		  chk("npy %s b.npy %s/b2.npy", p, tmpdir) &&
		  chk("npy %s c.npy %s/b2.npy", p, tmpdir));
	test_cond("levels: methods", chk("entry %s a.npy 8 1700000000", p) &&
		  chk("entry %s c.npy 0 1700000000", p));
	/* the deflate stream is ours, not libzip's recompression */
	test_cond("levels: raw deflate bytes are zlib's at level 0 and 9",
		  chk("zlevel %s a.npy 0", p) && chk("zlevel %s b.npy 9", p));
	test_cond("levels: level 0 is bigger than level 9", b &&
		  archive_member(b, 0)->comp_size > archive_member(b, 1)->comp_size);
	archive_close(a);
	archive_close(b);
	close(fb2);
}

static void test_renames(void)
{
	char p[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[4];
	int ret;

	/* swap a <-> b, c -> small (small deleted) */
	fresh("s.npz", "t3.npz");
	path_of(p, sizeof(p), "t3.npz");
	test_cond("open t3", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "a.npy", "b.npy");
	ch[1] = keep(a, "b.npy", "a.npy");
	ch[2] = keep(a, "c.npy", "small.npy");
	ret = archive_commit(a, ch, 3, &b, &err);
	test_cond("swap: commit", ret == 0);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("swap: names", chk("names %s b.npy a.npy small.npy", p));
	test_cond("swap: entries identical",
		  chk("same %s/s.npz %s a.npy:b.npy b.npy:a.npy c.npy:small.npy",
		      tmpdir, p));
	test_cond("swap: values", chk("npy %s b.npy %s/orig_a.npy", p, tmpdir) &&
		  chk("npy %s small.npy %s/orig_c.npy", p, tmpdir));
	archive_close(a);
	archive_close(b);

	/* out of order: reversed, and one member twice */
	fresh("c.npz", "t4.npz");
	path_of(p, sizeof(p), "t4.npz");
	a = b = NULL;
	test_cond("open t4", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "small.npy", NULL);
	ch[1] = keep(a, "c.npy", NULL);
	ch[2] = keep(a, "a.npy", NULL);
	ch[3] = keep(a, "a.npy", "a_copy.npy");
	ret = archive_commit(a, ch, 4, &b, &err);
	test_cond("reorder: commit", ret == 0);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("reorder: names", chk("names %s small.npy c.npy a.npy a_copy.npy", p));
	test_cond("reorder: raw copies identical",
		  chk("same %s/c.npz %s small.npy c.npy a.npy a.npy:a_copy.npy",
		      tmpdir, p));
	test_cond("reorder: loads", chk("ok %s", p));
	archive_close(a);
	archive_close(b);

	/* the same list again: nothing to write, the file stays as it is */
	fresh("s.npz", "t4b.npz");
	path_of(p, sizeof(p), "t4b.npz");
	a = b = NULL;
	test_cond("open t4b", archive_open(p, &a, NULL) == 0);
	if (a) {
		struct stat s1, s2;

		stat(p, &s1);
		ch[0] = keep(a, "a.npy", NULL);
		ch[1] = keep(a, "b.npy", NULL);
		ch[2] = keep(a, "c.npy", NULL);
		ch[3] = keep(a, "small.npy", NULL);
		ret = archive_commit(a, ch, 4, &b, &err);
		stat(p, &s2);
		test_cond("identity: commit", ret == 0 && b &&
			  archive_count(b) == 4);
		test_cond("identity: file not rewritten",
			  s1.st_ino == s2.st_ino &&
			  run("cmp -s %s %s/s.npz", p, tmpdir));
		archive_close(a);
		archive_close(b);
	}

	/* nothing left: an empty archive, which opens */
	fresh("s.npz", "t5.npz");
	path_of(p, sizeof(p), "t5.npz");
	a = b = NULL;
	test_cond("open t5", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ret = archive_commit(a, NULL, 0, &b, &err);
	test_cond("empty: commit", ret == 0);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("empty: reopened with 0 members", b && archive_count(b) == 0);
	test_cond("empty: numpy loads it", chk("empty %s", p));
	test_cond("empty: old still reads", member_is(a, "a.npy", "orig_a.npy"));

	/* and members added to the empty archive */
	if (b) {
		struct archive *c = NULL;
		int fn = open_ro("n.npy");

		ch[0] = content("n.npy", fn, ARCHIVE_DEFLATE, 6, 1700000000);
		ret = archive_commit(b, ch, 1, &c, &err);
		test_cond("from empty: commit", ret == 0);
		test_cond("from empty: value", chk("npy %s n.npy %s/n.npy", p, tmpdir));
		archive_close(c);
		close(fn);
	}
	archive_close(a);
	archive_close(b);
}

static void test_bad_lists(void)
{
	char p[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[2];

	fresh("s.npz", "t6.npz");
	path_of(p, sizeof(p), "t6.npz");
	test_cond("open t6", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "a.npy", NULL);
	ch[1] = keep(a, "b.npy", "a.npy");
	test_cond("duplicate name: EINVAL",
		  archive_commit(a, ch, 2, &b, &err) == -EINVAL && !b &&
		  strstr(err.msg, "duplicate"));
	ch[1].from = 99;
	ch[1].name = "z.npy";
	test_cond("from out of range: EINVAL",
		  archive_commit(a, ch, 2, &b, &err) == -EINVAL && !b);
	ch[1] = content("z.npy", 0, 12, -1, 0);
	test_cond("bad method: EINVAL",
		  archive_commit(a, ch, 2, &b, &err) == -EINVAL && !b);
	ch[1].fd = -1;
	ch[1].method = ARCHIVE_STORE;
	test_cond("bad fd: EINVAL",
		  archive_commit(a, ch, 2, &b, &err) == -EINVAL && !b);
	/* content shorter than announced: EIO, nothing written */
	ch[1] = content("z.npy", open_ro("n.npy"), ARCHIVE_DEFLATE, -1, 0);
	ch[1].size += 100;
	test_cond("short content: EIO",
		  archive_commit(a, ch, 2, &b, &err) == -EIO && !b &&
		  strstr(err.msg, "z.npy"));
	close(ch[1].fd);
	test_cond("bad lists: file untouched", run("cmp -s %s %s/s.npz", p, tmpdir));
	test_cond("bad lists: no temp file", no_temp_left(tmpdir));
	archive_close(a);
}

static void test_stale(void)
{
	char p[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[1];
	int ret;

	fresh("s.npz", "t7.npz");
	path_of(p, sizeof(p), "t7.npz");
	test_cond("open t7", archive_open(p, &a, NULL) == 0);
	if (!a)
		return;
	ch[0] = keep(a, "a.npy", NULL);

	/* replaced by another file (rename over it) */
	fresh("c.npz", "t7.tmp");
	run("mv %s/t7.tmp %s", tmpdir, p);
	ret = archive_commit(a, ch, 1, &b, &err);
	test_cond("replaced: ESTALE", ret == -ESTALE && !b &&
		  strstr(err.msg, "replaced"));
	test_cond("replaced: file untouched", run("cmp -s %s %s/c.npz", p, tmpdir));

	/* modified in place */
	archive_close(a);
	a = NULL;
	fresh("s.npz", "t7.npz");
	archive_open(p, &a, NULL);
	run("printf x >> %s", p);
	ret = archive_commit(a, ch, 1, &b, &err);
	test_cond("modified: ESTALE", ret == -ESTALE && !b &&
		  strstr(err.msg, "modified"));

	/* removed */
	archive_close(a);
	a = NULL;
	fresh("s.npz", "t7.npz");
	archive_open(p, &a, NULL);
	unlink(p);
	ret = archive_commit(a, ch, 1, &b, &err);
	test_cond("removed: ESTALE", ret == -ESTALE && !b &&
		  strstr(err.msg, "removed"));
	test_cond("removed: not recreated", access(p, F_OK) < 0);
	test_cond("stale: no temp file", no_temp_left(tmpdir));
	archive_close(a);
}

/* Commit in a directory the user may not write: a child as "nobody". */
static void test_eacces(void)
{
	char dir[512], p[600];
	pid_t pid;
	int status = 0;

	path_of(dir, sizeof(dir), "ro_dir");
	snprintf(p, sizeof(p), "%s/x.npz", dir);
	mkdir(dir, 0755);
	run("cp %s/s.npz %s && chmod 0644 %s && chmod 0555 %s && chmod 0755 %s",
	    tmpdir, p, p, dir, tmpdir);
	pid = fork();
	if (pid == 0) {
		struct archive *a = NULL, *b = NULL;
		struct archive_change ch[1];
		struct npz_err err = { "" };
		int ret;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		if (archive_open(p, &a, &err) < 0)
			_exit(98);
		ch[0] = keep(a, "a.npy", NULL);
		ret = archive_commit(a, ch, 1, &b, &err);
		archive_close(a);
		_exit(ret == -EACCES && !b && strstr(err.msg, "temporary") ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 99) {
		printf("skip: EACCES test needs root to drop privileges\n");
	} else {
		test_cond("read-only dir: EACCES",
			  WIFEXITED(status) && WEXITSTATUS(status) == 0);
		test_cond("read-only dir: untouched",
			  run("cmp -s %s %s/s.npz", p, tmpdir));
		test_cond("read-only dir: no temp file", no_temp_left(dir));
	}
	chmod(dir, 0755);
}

/* A tmpfs of size_mb at tmpdir/name.  Returns false (and says so) when
 * mounting is not possible here. */
static bool mount_tmpfs(const char *name, int size_mb, char *dir, size_t len)
{
	char opts[32];

	path_of(dir, len, name);
	mkdir(dir, 0755);
	snprintf(opts, sizeof(opts), "size=%dm", size_mb);
	if (mount("none", dir, "tmpfs", 0, opts) < 0) {
		printf("skip: cannot mount tmpfs on %s: %s\n", dir,
		       strerror(errno));
		rmdir(dir);
		return false;
	}
	return true;
}

static void unmount_tmpfs(const char *dir)
{
	if (umount2(dir, MNT_DETACH) < 0)
		printf("cannot unmount %s: %s\n", dir, strerror(errno));
	rmdir(dir);
}

static void test_erofs(void)
{
	char dir[512], p[600];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[1];
	int ret;

	if (!mount_tmpfs("rofs", 8, dir, sizeof(dir)))
		return;
	snprintf(p, sizeof(p), "%s/x.npz", dir);
	run("cp %s/s.npz %s", tmpdir, p);
	if (mount("none", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		printf("skip: remount ro: %s\n", strerror(errno));
		unmount_tmpfs(dir);
		return;
	}
	test_cond("erofs: open", archive_open(p, &a, NULL) == 0);
	if (a) {
		ch[0] = keep(a, "a.npy", NULL);
		ret = archive_commit(a, ch, 1, &b, &err);
		test_cond("erofs: EROFS", ret == -EROFS && !b);
		if (ret != -EROFS)
			printf("  %d %s\n", ret, err.msg);
		test_cond("erofs: untouched", run("cmp -s %s %s/s.npz", p, tmpdir));
		archive_close(a);
	}
	unmount_tmpfs(dir);
}

static void test_enospc(void)
{
	char dir[512], p[600];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[2];
	int fd, ret;

	if (!mount_tmpfs("full", 8, dir, sizeof(dir)))
		return;
	snprintf(p, sizeof(p), "%s/x.npz", dir);
	run("cp %s/s.npz %s", tmpdir, p);
	test_cond("enospc: open", archive_open(p, &a, NULL) == 0);
	fd = open_ro("fill.bin");
	if (a) {
		ch[0] = keep(a, "a.npy", NULL);
		ch[1] = content("fill.npy", fd, ARCHIVE_STORE, -1, 0);
		ret = archive_commit(a, ch, 2, &b, &err);
		test_cond("enospc: ENOSPC", ret == -ENOSPC && !b);
		if (ret != -ENOSPC)
			printf("  %d %s\n", ret, err.msg);
		test_cond("enospc: message", strstr(err.msg, "No space"));
		test_cond("enospc: untouched", run("cmp -s %s %s/s.npz", p, tmpdir));
		test_cond("enospc: no temp file", no_temp_left(dir));
		/* deflated: random data does not shrink either */
		ch[1].method = ARCHIVE_DEFLATE;
		ret = archive_commit(a, ch, 2, &b, &err);
		test_cond("enospc deflated: ENOSPC", ret == -ENOSPC && !b);
		test_cond("enospc deflated: no temp file", no_temp_left(dir));
		/* the space of the failed attempts is free again */
		close(fd);
		fd = open_ro("n.npy");
		ch[1] = content("n.npy", fd, ARCHIVE_STORE, -1, 0);
		ret = archive_commit(a, ch, 2, &b, &err);
		test_cond("enospc: a small commit then works", ret == 0 && b);
		test_cond("enospc: and its result loads",
			  chk("npy %s n.npy %s/n.npy", p, tmpdir));
		archive_close(b);
		archive_close(a);
	}
	close(fd);
	unmount_tmpfs(dir);
}

/* Member `name` of a reads back as the first size bytes of file `ref`. */
static bool member_prefix_is(struct archive *a, const char *name,
			     const char *ref, uint64_t size)
{
	char p[512], *want, *got;
	size_t i = idx_of(a, name);
	bool ok;
	int fd;

	path_of(p, sizeof(p), ref);
	fd = open(p, O_RDONLY);
	if (fd < 0 || i == SIZE_MAX) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	want = malloc((size_t)size + 1);
	got = malloc((size_t)size + 1);
	ok = pread(fd, want, (size_t)size, 0) == (ssize_t)size &&
	     archive_member(a, i)->size == size &&
	     archive_member(a, i)->method == ARCHIVE_DEFLATE &&
	     archive_member_read(a, i, got, (size_t)size + 1, 0, NULL) ==
		     (ssize_t)size &&
	     memcmp(want, got, (size_t)size) == 0;
	close(fd);
	free(want);
	free(got);
	return ok;
}

/* Content deflated in chunks on worker threads (archive_tune_deflate). */
static void test_chunked(void)
{
	static const uint64_t sizes[] = {
		0, 1, 10, 65535, 65536, 65537, 4 * 65536, (1u << 20) + 123,
		7 * 65536 - 1,
	};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
	struct archive_deflate_tuning tune = { .chunk = 65536,
					       .min_parallel = 0,
					       .threads = 3 };
	struct archive_change ch[NS + 2];
	char p[512], names[NS][16], ref[512];
	struct archive *a = NULL, *b = NULL;
	struct npz_err err = { "" };
	int f3 = open_ro("f3.npy"), f12 = open_ro("f12.npy");
	struct stat sb;
	size_t i;
	int ret;

	/* 64 KiB chunks, 3 threads (a ring of 6 slots, reused), all sizes */
	archive_tune_deflate(&tune);
	fresh("c.npz", "t9.npz");
	path_of(p, sizeof(p), "t9.npz");
	path_of(ref, sizeof(ref), "f3.npy");
	test_cond("open t9", archive_open(p, &a, NULL) == 0);
	if (!a)
		goto out_close;
	ch[0] = keep(a, "a.npy", NULL);
	ch[1] = content("b.npy", f3, ARCHIVE_DEFLATE, -1, 1700000000);
	for (i = 0; i < NS; i++) {
		snprintf(names[i], sizeof(names[i]), "z%zu", i);
		ch[2 + i] = content(names[i], f3, ARCHIVE_DEFLATE, -1,
				    1700000000);
		ch[2 + i].size = sizes[i];
	}
	ret = archive_commit(a, ch, NS + 2, &b, &err);
	test_cond("chunked: commit", ret == 0 && b);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("chunked: zipfile reads b.npy, CRCs ok",
		  fstat(f3, &sb) == 0 &&
		  chk("raweq %s b.npy %s %lld", p, ref, (long long)sb.st_size));
	test_cond("chunked: 64 KiB chunks, within 5% of one zlib stream",
		  chk("zclose %s b.npy 6 1.05", p));
	test_cond("chunked: multi-chunk .npy loads",
		  chk("npy %s b.npy %s/f3.npy", p, tmpdir));
	test_cond("chunked: untouched identical",
		  chk("same %s/c.npz %s a.npy", tmpdir, p));
	for (i = 0; i < NS; i++) {
		char d[64];

		snprintf(d, sizeof(d), "chunked: %llu bytes, zipfile",
			 (unsigned long long)sizes[i]);
		test_cond(d, chk("raweq %s %s %s %llu", p, names[i], ref,
				 (unsigned long long)sizes[i]));
		snprintf(d, sizeof(d), "chunked: %llu bytes, our reader",
			 (unsigned long long)sizes[i]);
		test_cond(d, b && member_prefix_is(b, names[i], "f3.npy",
						   sizes[i]));
	}
	test_cond("chunked: CRC and sizes in our listing", b &&
		  archive_member(b, idx_of(b, "z0"))->crc == 0 &&
		  archive_member(b, idx_of(b, "z0"))->comp_size == 2 &&
		  fstat(f3, &sb) == 0 &&
		  archive_member(b, idx_of(b, "b.npy"))->size ==
			  (uint64_t)sb.st_size);
	archive_close(a);
	a = b;
	b = NULL;

	/* chunks smaller than the 32 KiB dictionary; 1 thread; levels 0, 9 */
	if (a) {
		tune.chunk = 1000;
		tune.threads = 2;
		archive_tune_deflate(&tune);
		ch[0] = content("small_chunks", f3, ARCHIVE_DEFLATE, -1, 0);
		ch[0].size = 200000;
		ret = archive_commit(a, ch, 1, &b, &err);
		test_cond("1000-byte chunks: commit", ret == 0);
		test_cond("1000-byte chunks: read back",
			  chk("raweq %s small_chunks %s 200000", p, ref));
		archive_close(a);
		a = b;
		b = NULL;
	}
	if (a) {
		tune.chunk = 65536;
		tune.threads = 1;
		archive_tune_deflate(&tune);
		ch[0] = content("t1", f3, ARCHIVE_DEFLATE, -1, 0);
		ch[1] = content("l0", f3, ARCHIVE_DEFLATE, 0, 0);
		ch[2] = content("l9", f3, ARCHIVE_DEFLATE, 9, 0);
		ch[0].size = ch[1].size = ch[2].size = 500000;
		ret = archive_commit(a, ch, 3, &b, &err);
		test_cond("1 thread, levels 0 and 9: commit", ret == 0);
		test_cond("1 thread: read back",
			  chk("raweq %s t1 %s 500000", p, ref));
		test_cond("level 0: read back",
			  chk("raweq %s l0 %s 500000", p, ref));
		test_cond("level 9: read back",
			  chk("raweq %s l9 %s 500000", p, ref));
		test_cond("level 0 bigger than level 9", b &&
			  archive_member(b, 1)->comp_size > 500000 &&
			  archive_member(b, 2)->comp_size < 300000);
		archive_close(a);
		a = b;
		b = NULL;
	}

	/* content shorter than announced, in a later chunk: EIO, untouched */
	if (a) {
		tune.threads = 2;
		archive_tune_deflate(&tune);
		ch[0] = content("short", f3, ARCHIVE_DEFLATE, -1, 0);
		ch[0].size += 100;
		run("cp %s %s/t9.before", p, tmpdir);
		ret = archive_commit(a, ch, 1, &b, &err);
		test_cond("chunked short content: EIO", ret == -EIO && !b &&
			  strstr(err.msg, "short") &&
			  strstr(err.msg, "shorter"));
		test_cond("chunked short content: file untouched",
			  run("cmp -s %s %s/t9.before", p, tmpdir));
		test_cond("chunked short content: no temp file",
			  no_temp_left(tmpdir));
	}
	archive_close(a);
	a = NULL;

	/* the defaults: 1 MiB chunks from 4 MiB on, one stream below (the
	 * libzip rewrite: the copy mode writes SOZip, below) */
	archive_tune_deflate(NULL);
	archive_tune_commit(false);
	fresh("c.npz", "t10.npz");
	path_of(p, sizeof(p), "t10.npz");
	path_of(ref, sizeof(ref), "f12.npy");
	test_cond("open t10", archive_open(p, &a, NULL) == 0);
	if (!a)
		goto out_close;
	ch[0] = content("b.npy", f12, ARCHIVE_DEFLATE, -1, 0);
	ch[1] = content("below", f12, ARCHIVE_DEFLATE, -1, 0);
	ch[1].size = (4u << 20) - 1;
	ch[2] = content("at", f12, ARCHIVE_DEFLATE, -1, 0);
	ch[2].size = 4u << 20;
	ret = archive_commit(a, ch, 3, &b, &err);
	test_cond("default tuning: commit", ret == 0);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("default tuning: 12 MB .npy loads",
		  chk("npy %s b.npy %s/f12.npy", p, tmpdir));
	test_cond("default tuning: one raw stream, CRC",
		  chk("raweq %s b.npy %s %lld", p, ref, (long long)
		      (fstat(f12, &sb) == 0 ? sb.st_size : 0)));
	test_cond("default tuning: within 1% of one zlib stream",
		  chk("zclose %s b.npy 6 1.01", p));
	test_cond("default tuning: below 4 MiB, zlib's own stream",
		  chk("zlevel %s below 6", p));
	test_cond("default tuning: at 4 MiB, chunked",
		  chk("zclose %s at 6 1.01", p) &&
		  chk("raweq %s at %s %u", p, ref, 4u << 20));
	test_cond("default tuning: our reader",
		  b && member_prefix_is(b, "at", "f12.npy", 4u << 20));
	archive_close(a);
	a = b;
	b = NULL;
	archive_tune_commit(true);
	/* the copy mode (no reflink here): the same content, as SOZip */
	if (a) {
		ch[0] = content("b.npy", f12, ARCHIVE_DEFLATE, -1, 0);
		ch[1].name = "below2";
		ch[2].name = "at2";
		ret = archive_commit(a, ch, 3, &b, &err);
		test_cond("copy mode: commit", ret == 0);
		test_cond("copy mode: one raw stream each, CRC",
			  chk("raweq %s below2 %s %u", p, ref, (4u << 20) - 1) &&
			  chk("raweq %s at2 %s %u", p, ref, 4u << 20));
		test_cond("copy mode: SOZip, within 3% of one zlib stream",
			  chk("sozip %s below2", p) && chk("sozip %s at2", p) &&
			  chk("zclose %s at2 6 1.03", p));
		test_cond("copy mode: our reader",
			  b && member_prefix_is(b, "at2", "f12.npy", 4u << 20));
	}
	archive_close(a);
	archive_close(b);
out_close:
	archive_tune_commit(true);
	archive_tune_deflate(NULL);
	close(f3);
	close(f12);
}

/* A 300 MB stored member added, then the archive rewritten around it. */
static void test_big(void)
{
	const size_t n = 300u << 20;
	char p[512], q[512];
	struct archive *a = NULL, *b = NULL, *c = NULL;
	struct npz_err err = { "" };
	struct archive_change ch[2];
	unsigned char *buf;
	size_t i, hl;
	int fd, ret;

	if (getenv("NPZFS_SKIP_BIG")) {
		printf("skip: big member test (NPZFS_SKIP_BIG)\n");
		return;
	}
	/* a .npy of n uint8 (i % 251) */
	path_of(q, sizeof(q), "big.npy");
	fd = open(q, O_RDWR | O_CREAT | O_TRUNC, 0600);
	buf = malloc(1 << 20);
	hl = (size_t)snprintf((char *)buf, 128,
			      "\x93NUMPY\x01%c%c%c{'descr': '|u1', 'fortran_order': "
			      "False, 'shape': (%zu,), }", 0, 0, 0, n);
	memset(buf + hl, ' ', 127 - hl);
	buf[127] = '\n';
	buf[8] = 118;	/* header length 128 - 10 */
	buf[9] = 0;
	test_cond("big: header", write(fd, buf, 128) == 128);
	for (i = 0; i < n; i += 1 << 20) {
		size_t j;

		for (j = 0; j < (1u << 20); j++)
			buf[j] = (unsigned char)((i + j) % 251);
		if (write(fd, buf, 1 << 20) != 1 << 20)
			break;
	}
	free(buf);
	fresh("s.npz", "t8.npz");
	path_of(p, sizeof(p), "t8.npz");
	test_cond("open t8", archive_open(p, &a, NULL) == 0);
	if (!a) {
		close(fd);
		return;
	}
	ch[0] = keep(a, "a.npy", NULL);
	ch[1] = content("big.npy", fd, ARCHIVE_STORE, -1, 1700000000);
	ret = archive_commit(a, ch, 2, &b, &err);
	test_cond("big: commit", ret == 0);
	if (ret)
		printf("  %d %s\n", ret, err.msg);
	test_cond("big: numpy and zipfile read it", chk("big %s big %zu", p, n));
	if (b) {
		/* rename the small one, keep the big one: a raw copy */
		ch[0] = keep(b, "a.npy", "a2.npy");
		ch[1] = keep(b, "big.npy", NULL);
		ret = archive_commit(b, ch, 2, &c, &err);
		test_cond("big: second commit", ret == 0);
		test_cond("big: after copy", chk("big %s big %zu", p, n));
	}
	archive_close(a);
	archive_close(b);
	archive_close(c);
	close(fd);
	unlink(q);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char cmd[600];
	int fd;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_commit.XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "%s/chk.py", tmpdir);
	fd = open(cmd, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, chk_py, sizeof(chk_py) - 1) !=
		      (ssize_t)sizeof(chk_py) - 1) {
		perror("chk.py");
		return 1;
	}
	close(fd);
	if (!chk("fix %s", tmpdir)) {
		test_cond("fixture generation", 0);
		return test_report();
	}

	test_stored();
	test_deflated();
	test_renames();
	test_bad_lists();
	test_stale();
	test_eacces();
	test_erofs();
	test_enospc();
	test_chunked();
	test_big();

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", tmpdir);
	return test_report();
}
