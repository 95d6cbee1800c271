/* test_cache.c - the disk budget: sizes, charges, LRU eviction, busy items,
 * and inflated members of an archive staying within the budget. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "archive.h"
#include "cache.h"
#include "test.h"

struct thing {
	struct cache_item ci;
	bool busy;
	int evicted;
};

static bool thing_evict(struct cache_item *it)
{
	struct thing *t = (struct thing *)it;

	if (t->busy)
		return false;
	t->evicted++;
	return true;
}

static void test_parse_size(void)
{
	uint64_t v = 0;

	test_cond("1G", !cache_parse_size("1G", &v) && v == 1ull << 30);
	test_cond("256M", !cache_parse_size("256M", &v) && v == 256ull << 20);
	test_cond("512k", !cache_parse_size("512k", &v) && v == 512ull << 10);
	test_cond("2GiB", !cache_parse_size("2GiB", &v) && v == 2ull << 30);
	test_cond("1T", !cache_parse_size("1T", &v) && v == 1ull << 40);
	test_cond("12345", !cache_parse_size("12345", &v) && v == 12345);
	test_cond("100B", !cache_parse_size("100B", &v) && v == 100);
	test_cond("empty", cache_parse_size("", &v) == -EINVAL);
	test_cond("lots", cache_parse_size("lots", &v) == -EINVAL);
	test_cond("-1", cache_parse_size("-1", &v) == -EINVAL);
	test_cond("1X", cache_parse_size("1X", &v) == -EINVAL);
	test_cond("1GG", cache_parse_size("1GG", &v) == -EINVAL);
	test_cond("overflow", cache_parse_size("99999999999T", &v) == -EINVAL);
	test_cond("huge", cache_parse_size("99999999999999999999999", &v) == -EINVAL);
}

static void test_lru(void)
{
	struct thing a = { .ci.evict = thing_evict }, b = a, c = a, d = a;
	struct npz_err err = { "" };

	test_cond("setup", !cache_setup(NULL, 100, &err));
	test_cond("setup: missing dir", cache_setup("/nonexistent/x", 100, &err) == -ENOENT &&
		  strstr(err.msg, "/nonexistent/x"));
	test_cond("charge a", !cache_charge(&a.ci, 40) && cache_used() == 40);
	test_cond("charge b", !cache_charge(&b.ci, 40) && cache_used() == 80);
	cache_touch(&a.ci);	/* b is now the least recently used */
	test_cond("charge c evicts b", !cache_charge(&c.ci, 40) && b.evicted == 1 &&
		  !a.evicted && cache_used() == 80 && !b.ci.listed);
	a.busy = true;		/* a is the oldest now, but busy: c goes */
	test_cond("busy a skipped", !cache_charge(&d.ci, 30) && !a.evicted &&
		  c.evicted == 1 && cache_used() == 70);
	test_cond("too big alone", cache_charge(&d.ci, 71) == -ENOSPC &&
		  d.ci.bytes == 30 && cache_used() == 70);
	d.busy = true;
	test_cond("only busy left", cache_charge(&b.ci, 60) == -ENOSPC && cache_used() == 70 &&
		  !b.ci.listed);
	cache_release(&d.ci, 10);
	test_cond("release", d.ci.bytes == 20 && cache_used() == 60);
	cache_drop(&a.ci);
	cache_drop(&d.ci);
	cache_drop(&d.ci);	/* twice: a no-op */
	test_cond("drop", cache_used() == 0 && !a.ci.listed && !d.ci.listed);
}

/* An archive of n deflated members of size bytes each (all zeros but a
 * byte per member), written by hand with zlib. */
static int write_archive(const char *path, int n, size_t size)
{
	unsigned char *data = calloc(1, size), *comp;
	uLongf clen;
	FILE *f = fopen(path, "wb");
	unsigned char cd[4096];
	size_t cdlen = 0;
	uint32_t off = 0;

	if (!f || !data)
		return -1;
	comp = malloc(compressBound(size));
	for (int i = 0; i < n; i++) {
		unsigned char lh[30 + 8], ce[46 + 8];
		char name[9];
		z_stream z;
		uint32_t crc;

		data[i] = (unsigned char)(i + 1);
		crc = (uint32_t)crc32(0, data, (uInt)size);
		memset(&z, 0, sizeof(z));
		deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
		z.next_in = data;
		z.avail_in = (uInt)size;
		z.next_out = comp;
		z.avail_out = (uInt)compressBound(size);
		deflate(&z, Z_FINISH);
		clen = z.total_out;
		deflateEnd(&z);
		snprintf(name, sizeof(name), "m%d.bin", i);
		memset(lh, 0, sizeof(lh));
		memset(ce, 0, sizeof(ce));
		memcpy(lh, "PK\3\4\24\0\0\0\10\0", 10);
		memcpy(lh + 14, &crc, 4);
		memcpy(lh + 18, &(uint32_t){ (uint32_t)clen }, 4);
		memcpy(lh + 22, &(uint32_t){ (uint32_t)size }, 4);
		lh[26] = 6;
		memcpy(lh + 30, name, 6);
		memcpy(ce, "PK\1\2\24\0\24\0\0\0\10\0", 12);
		memcpy(ce + 16, &crc, 4);
		memcpy(ce + 20, &(uint32_t){ (uint32_t)clen }, 4);
		memcpy(ce + 24, &(uint32_t){ (uint32_t)size }, 4);
		ce[28] = 6;
		memcpy(ce + 42, &off, 4);
		memcpy(ce + 46, name, 6);
		memcpy(cd + cdlen, ce, 52);
		cdlen += 52;
		fwrite(lh, 1, 36, f);
		fwrite(comp, 1, clen, f);
		off += 36 + (uint32_t)clen;
		data[i] = 0;
	}
	fwrite(cd, 1, cdlen, f);
	{
		unsigned char e[22] = { 'P', 'K', 5, 6 };

		e[8] = e[10] = (unsigned char)n;
		memcpy(e + 12, &(uint32_t){ (uint32_t)cdlen }, 4);
		memcpy(e + 16, &off, 4);
		fwrite(e, 1, 22, f);
	}
	fclose(f);
	free(comp);
	free(data);
	return 0;
}

static void test_archive_budget(void)
{
	char path[] = "/tmp/npzfs-test-cache-XXXXXX";
	struct npz_err err = { "" };
	struct archive *a = NULL;
	size_t size = 1 << 20;
	unsigned char *buf = malloc(size);
	int fd = mkstemp(path), ok = 1;

	close(fd);
	test_cond("budget: archive written", !write_archive(path, 5, size));
	test_cond("budget: 2.5 MiB", !cache_setup(NULL, 5 * size / 2, &err));
	test_cond("budget: open", !archive_open(path, &a, &err));
	if (!a) {
		free(buf);
		return;
	}
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < 5; i++) {
			ssize_t n = archive_member_read(a, i, buf, size, 0, &err);

			ok &= n == (ssize_t)size && buf[i] == i + 1 &&
			      (i == 0 || buf[0] == 0);
			ok &= cache_used() <= 5 * size / 2;
		}
	test_cond("budget: every member right, used within the budget", ok);
	test_cond("budget: something cached", cache_used() > 0);
	/* a member bigger than the budget streams: right, never charged */
	test_cond("budget: tiny", !cache_setup(NULL, size / 2, &err));
	ok = 1;
	for (size_t i = 0; i < 5; i++) {
		ssize_t n = archive_member_read(a, i, buf, 4096, size - 4096, &err);

		ok &= n == 4096 && buf[4095] == 0;
		n = archive_member_read(a, i, buf, 4096, 0, &err);
		ok &= n == 4096 && buf[i] == i + 1;
	}
	test_cond("budget: streamed reads right", ok);
	archive_close(a);
	test_cond("budget: all given back at close", cache_used() == 0);
	unlink(path);
	free(buf);
	cache_setup(NULL, CACHE_DEFAULT_SIZE, &err);
}

int main(void)
{
	test_parse_size();
	test_lru();
	test_archive_budget();
	return test_report();
}
