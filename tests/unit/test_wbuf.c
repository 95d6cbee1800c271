/* test_wbuf.c - written content in memory and spilled; conversions. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "convert.h"
#include "npy.h"
#include "test.h"
#include "views.h"
#include "wbuf.h"

static void test_memory_and_spill(void)
{
	struct wbuf w;
	char out[64];
	char *big = malloc(WBUF_MEM_MAX + 100);
	const char *map;

	wbuf_init(&w);
	test_cond("empty read", wbuf_pread(&w, out, 10, 0) == 0);
	test_cond("write", wbuf_pwrite(&w, "hello", 5, 0) == 0 && w.size == 5);
	test_cond("hole write", wbuf_pwrite(&w, "X", 1, 10) == 0 && w.size == 11);
	test_cond("read back", wbuf_pread(&w, out, 64, 0) == 11 &&
		  !memcmp(out, "hello\0\0\0\0\0X", 11));
	test_cond("in memory", w.fd < 0);
	test_cond("truncate down", wbuf_truncate(&w, 3) == 0 && w.size == 3);
	test_cond("truncate up zero-fills", wbuf_truncate(&w, 6) == 0 &&
		  wbuf_pread(&w, out, 64, 0) == 6 && !memcmp(out, "hel\0\0\0", 6));
	memset(big, 'a', WBUF_MEM_MAX + 100);
	test_cond("big write spills", wbuf_pwrite(&w, big, WBUF_MEM_MAX + 100, 2) == 0 &&
		  w.fd >= 0 && w.size == WBUF_MEM_MAX + 102);
	test_cond("spilled read", wbuf_pread(&w, out, 4, 0) == 4 &&
		  !memcmp(out, "heaa", 4));
	test_cond("spilled tail", wbuf_pread(&w, out, 64, WBUF_MEM_MAX + 100) == 2);
	test_cond("map", wbuf_map(&w, &map) == 0 && map[0] == 'h' &&
		  map[WBUF_MEM_MAX + 101] == 'a');
	test_cond("write after map", wbuf_pwrite(&w, "Z", 1, 0) == 0 &&
		  wbuf_map(&w, &map) == 0 && map[0] == 'Z');
	test_cond("spilled truncate", wbuf_truncate(&w, 1) == 0 && w.size == 1);
	test_cond("fd", wbuf_fd(&w) >= 0);
	test_cond("overflow", wbuf_pwrite(&w, "x", 1, UINT64_MAX) == -EFBIG);
	wbuf_release(&w);
	free(big);

	wbuf_init(&w);
	test_cond("map empty", wbuf_map(&w, &map) == 0 && map != NULL);
	test_cond("fd of memory content", wbuf_pwrite(&w, "ab", 2, 0) == 0 &&
		  wbuf_fd(&w) >= 0 && wbuf_pread(&w, out, 8, 0) == 2);
	wbuf_release(&w);
}

static void put(struct wbuf *w, const char *s)
{
	wbuf_truncate(w, 0);
	wbuf_pwrite(w, s, strlen(s), 0);
}

static void test_convert(void)
{
	struct npz_err err = { "" };
	struct npy_header hdr, base;
	struct wbuf text, out;
	struct buf b = BUF_INIT;
	uint64_t shape[1] = { 3 };
	struct npy_dtype dt;
	const char *p;
	double v[3];

	wbuf_init(&text);
	wbuf_init(&out);
	put(&text, "1.5\n2.5\n-3\n");
	test_cond("text to npy", convert_view_to_npy(view_kind(VIEW_TXT), &text, NULL, &out, &err) == 0);
	test_cond("result is npy", convert_check_npy(&out, &err) == 0);
	wbuf_map(&out, &p);
	test_cond("parse result", npy_header_parse(p, (size_t)out.size, &hdr, &err) == 0 &&
		  hdr.dtype.kind == NPY_FLOAT && hdr.count == 3);
	memcpy(v, p + hdr.header_len, sizeof(v));
	test_cond("values", v[0] == 1.5 && v[1] == 2.5 && v[2] == -3.0);
	npy_header_release(&hdr);

	/* the base array's dtype wins when there is no header line */
	test_cond("dtype parse", npy_dtype_parse_str("|u1", 3, &dt, NULL) == 0);
	test_cond("base", npy_header_init(&base, &dt, 1, shape, false) == 0);
	put(&text, "1\n2\n300\n");
	wbuf_release(&out);
	wbuf_init(&out);
	test_cond("out of range for base", convert_view_to_npy(view_kind(VIEW_TXT), &text, &base, &out, &err) == -EINVAL &&
		  strstr(err.msg, "line 3"));
	npy_header_release(&base);
	npy_dtype_release(&dt);

	put(&text, "1 2\n3\n");
	test_cond("ragged", convert_view_to_npy(view_kind(VIEW_TXT), &text, NULL, &out, &err) == -EINVAL &&
		  strstr(err.msg, "line 2"));

	/* npy checks */
	put(&out, "");
	test_cond("empty npy", convert_check_npy(&out, &err) == -EINVAL);
	put(&out, "garbage that is not npy");
	test_cond("garbage npy", convert_check_npy(&out, &err) == -EINVAL);
	test_cond("dtype parse f8", npy_dtype_parse_str("<f8", 3, &dt, NULL) == 0);
	test_cond("hdr", npy_header_init(&hdr, &dt, 1, shape, false) == 0);
	test_cond("format", npy_header_format(&hdr, &b) == 0);
	wbuf_truncate(&out, 0);
	wbuf_pwrite(&out, b.data, b.len, 0);
	wbuf_pwrite(&out, v, 16, b.len);
	test_cond("short data", convert_check_npy(&out, &err) == -EINVAL &&
		  strstr(err.msg, "data length 16"));
	wbuf_pwrite(&out, v, 24, b.len);
	test_cond("exact data", convert_check_npy(&out, &err) == 0);
	wbuf_pwrite(&out, v, 1, b.len + 24);
	test_cond("long data", convert_check_npy(&out, &err) == -EINVAL);
	npy_header_release(&hdr);
	npy_dtype_release(&dt);
	buf_release(&b);

	/* object arrays (issue 8): pickled data, any length, never read;
	 * what np.save(f, np.array([1, 'a', None], dtype=object)) writes */
	static const char pickle[] = "\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00...b.";
	test_cond("dtype parse O", npy_dtype_parse_str("|O", 2, &dt, NULL) == 0);
	test_cond("hdr O", npy_header_init(&hdr, &dt, 1, shape, false) == 0);
	buf_init(&b);
	test_cond("format O", npy_header_format(&hdr, &b) == 0);
	wbuf_truncate(&out, 0);
	wbuf_pwrite(&out, b.data, b.len, 0);
	wbuf_pwrite(&out, pickle, sizeof(pickle) - 1, b.len);
	test_cond("object npy accepted (data length not checked)",
		  convert_check_npy(&out, &err) == 0);
	wbuf_truncate(&out, b.len);
	test_cond("object npy without data refused",
		  convert_check_npy(&out, &err) == -EINVAL && strstr(err.msg, "object array"));
	wbuf_pwrite(&out, v, 24, b.len);
	test_cond("object npy not ending like a pickle refused",
		  convert_check_npy(&out, &err) == -EINVAL && strstr(err.msg, "not a pickle"));
	npy_header_release(&hdr);
	npy_dtype_release(&dt);
	buf_release(&b);
	wbuf_release(&text);
	wbuf_release(&out);
}

static int puts_seen;

static void count_put(void *ctx)
{
	(void)ctx;
	puts_seen++;
}

/* A base file of len bytes at offset 100 of a temporary file. */
static int base_file(size_t len, unsigned char **model)
{
	FILE *f = tmpfile();
	unsigned char *m = malloc(len + 1);
	int fd;

	for (size_t i = 0; i < len; i++)
		m[i] = (unsigned char)(i * 7 + 3);
	fd = dup(fileno(f));
	if (pwrite(fd, "0123456789", 10, 0) != 10 ||
	    pwrite(fd, m, len, 100) != (ssize_t)len)
		test_cond("base file written", 0);
	fclose(f);
	*model = m;
	return fd;
}

/* The written runs cover every byte that differs from the base (zeros
 * past base_len) and nothing past the size. */
static bool runs_cover(const struct wbuf *w, const unsigned char *base,
		       size_t base_len, const unsigned char *model,
		       size_t size)
{
	unsigned char *covered = calloc(size + 1, 1);
	uint64_t off = 0, len;
	bool ok = true;

	while (wbuf_next_written(w, &off, &len)) {
		if (off + len > size || len == 0)
			ok = false;
		for (uint64_t i = off; i < off + len && i < size; i++)
			covered[i] = 1;
		off += len;
	}
	for (size_t i = 0; i < size; i++)
		if (!covered[i] && model[i] != (i < base_len ? base[i] : 0))
			ok = false;
	free(covered);
	return ok;
}

/* A base read through a callback (a deflated member's content): short
 * reads, from memory. */
struct mem_base {
	const unsigned char *p;
	size_t len;
};

static ssize_t mem_read(void *ctx, void *buf, size_t n, uint64_t pos)
{
	struct mem_base *mb = ctx;

	if (pos >= mb->len)
		return 0;
	if (n > mb->len - pos)
		n = mb->len - pos;
	if (n > 1000)
		n = 1000;
	memcpy(buf, mb->p + pos, n);
	return (ssize_t)n;
}

/* Random writes and truncates of a copy-on-write wbuf against a model;
 * callback: its base is read through a callback, not a descriptor. */
static void test_cow(bool callback)
{
	enum { LEN = 5 * WBUF_PAGE + 123, MAX = 9 * WBUF_PAGE };
	unsigned char *base, model[MAX], got[MAX], chunk[3 * WBUF_PAGE];
	struct wbuf w;
	struct wbuf_base b;
	size_t size = LEN;
	bool same = true;
	int fd = base_file(LEN, &base);

	struct mem_base mb = { base, LEN };

	puts_seen = 0;
	b = (struct wbuf_base){ .fd = fd, .off = 100, .len = LEN,
				.put = count_put };
	if (callback)
		b = (struct wbuf_base){ .fd = -1, .len = LEN, .read = mem_read,
					.ctx = &mb, .put = count_put };
	memcpy(model, base, LEN);
	wbuf_init(&w);
	wbuf_init_cow(&w, &b);
	test_cond("cow shows the base", w.size == LEN && wbuf_is_patch(&w) &&
		  wbuf_pread(&w, got, MAX, 0) == LEN && !memcmp(got, base, LEN));
	test_cond("nothing written", runs_cover(&w, base, LEN, model, LEN) &&
		  w.fd < 0);
	test_cond("one byte", wbuf_pwrite(&w, "Z", 1, 2 * WBUF_PAGE + 5) == 0);
	model[2 * WBUF_PAGE + 5] = 'Z';
	{
		uint64_t off = 0, len = 0;

		test_cond("one page written",
			  wbuf_next_written(&w, &off, &len) &&
			  off == 2 * WBUF_PAGE && len == WBUF_PAGE &&
			  (off += len, !wbuf_next_written(&w, &off, &len)));
	}
	test_cond("still a patch", wbuf_is_patch(&w));
	srand(7);
	for (int round = 0; round < 3000 && same; round++) {
		int op = rand() % 10;

		if (op < 7) {
			size_t n = (size_t)rand() % sizeof(chunk) + 1,
			       off = (size_t)rand() % (MAX - n);

			for (size_t i = 0; i < n; i++)
				chunk[i] = (unsigned char)rand();
			same = wbuf_pwrite(&w, chunk, n, off) == 0;
			if (off > size)
				memset(model + size, 0, off - size);
			memcpy(model + off, chunk, n);
			if (off + n > size)
				size = off + n;
		} else if (op < 9) {
			size_t ns = (size_t)rand() % MAX;

			same = wbuf_truncate(&w, ns) == 0;
			if (ns > size)
				memset(model + size, 0, ns - size);
			size = ns;
		} else {
			size_t off = (size_t)rand() % MAX;
			ssize_t r = wbuf_pread(&w, got, MAX - off, off);

			same = r == (ssize_t)(off < size ? size - off : 0) &&
			       !memcmp(got, model + off, (size_t)r);
			continue;
		}
		same = same && w.size == size &&
		       wbuf_pread(&w, got, MAX, 0) == (ssize_t)size &&
		       !memcmp(got, model, size) &&
		       runs_cover(&w, base, w.base_live, model, size);
	}
	test_cond("random writes and truncates match the model", same);
	test_cond("base kept until released", puts_seen == 0 && w.cow);
	test_cond("flattened by wbuf_fd", wbuf_fd(&w) >= 0 && !w.cow &&
		  puts_seen == 1 && wbuf_pread(&w, got, MAX, 0) ==
		  (ssize_t)size && !memcmp(got, model, size));
	wbuf_release(&w);
	test_cond("plain release puts nothing more", puts_seen == 1);

	/* rebase after a commit: nothing written any more */
	wbuf_init(&w);
	wbuf_init_cow(&w, &b);
	memcpy(model, base, LEN);
	test_cond("write", wbuf_pwrite(&w, "abc", 3, WBUF_PAGE - 1) == 0);
	memcpy(model + WBUF_PAGE - 1, "abc", 3);
	if (pwrite(fd, model, LEN, 20000) != LEN)
		test_cond("second base written", 0);
	b.off = 20000;
	mb.p = model;
	wbuf_rebase(&w, &b, true);
	{
		uint64_t off = 0, len;

		test_cond("rebased: nothing written, same content",
			  puts_seen == 2 && !wbuf_next_written(&w, &off, &len) &&
			  wbuf_is_patch(&w) && wbuf_pread(&w, got, MAX, 0) == LEN &&
			  !memcmp(got, model, LEN));
	}
	test_cond("write after rebase", wbuf_pwrite(&w, "Q", 1, 0) == 0 &&
		  wbuf_pread(&w, got, MAX, 0) == LEN && got[0] == 'Q' &&
		  !memcmp(got + 1, model + 1, LEN - 1));
	wbuf_release(&w);
	test_cond("released puts the base", puts_seen == 3);
	close(fd);
	free(base);
}

int main(void)
{
	test_memory_and_spill();
	test_cow(false);
	test_cow(true);
	test_convert();
	return test_report();
}
