/* test_csv.c - unit tests of the CSV view (include/csv.h): rendering of
 * layouts, strings and structured headers, round trips of random bit
 * patterns, what is accepted on input (CRLF, no final newline, blank lines,
 * quotes, spaces), and every parse error with its line and column. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "test.h"

/* ---- harness: an array in memory, the CSV in a buf --------------------- */

struct arr {
	const unsigned char *p;
	size_t len;
};

static int arr_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct arr *a = ctx;

	if (off > a->len || len > a->len - off)
		return -EIO;
	memcpy(buf, a->p + off, len);
	return 0;
}

static int buf_write(void *ctx, const void *p, size_t n)
{
	return n > 65536 ? -E2BIG : buf_add(ctx, p, n);
}

/* The CSV of dict's array over data (NULL on error, message printed). */
static size_t csv_len;	/* of the last csv_of: NUL bytes may be inside */

static char *csv_of(const char *dict, const void *data, int *retp)
{
	struct npz_err err = { "" };
	struct npy_header h;
	struct buf b = BUF_INIT;
	int ret = npy_header_parse_dict(dict, strlen(dict), &h, &err);

	if (!ret) {
		struct arr a = { data, (size_t)h.data_len };
		struct text_src src = { arr_read, &a };
		struct text_sink sink = { buf_write, &b };

		ret = csv_format(&h, &src, &sink, &err);
		if (!ret && b.len > csv_size_bound(&h))
			ret = -EOVERFLOW;
		npy_header_release(&h);
	}
	if (retp)
		*retp = ret;
	if (ret) {
		if (!retp)
			printf("csv_of %s: %d %s\n", dict, ret, err.msg);
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, &csv_len);
}

/* What csv_parse gave: the header and the data. */
struct got {
	struct buf hdr;
	unsigned char *data;
	uint64_t len;
	int fail_write;
	struct npz_err err;
	int ret;
};

static int got_begin(void *ctx, const struct npy_header *h)
{
	struct got *g = ctx;

	g->len = h->data_len;
	g->data = calloc(1, h->data_len + 1);
	return g->data ? npy_header_format(h, &g->hdr) : -ENOMEM;
}

static int got_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct got *g = ctx;

	if (g->fail_write)
		return -ENOSPC;
	if (off > g->len || len > g->len - off)
		return -ERANGE;
	memcpy(g->data + off, buf, len);
	return 0;
}

static void got_release(struct got *g)
{
	buf_release(&g->hdr);
	free(g->data);
}

/* Parse len bytes of text against base dict (NULL: no base) into *g. */
static int parse_len(const char *text, size_t len, const char *base_dict,
		     struct got *g)
{
	struct text_out out = { got_begin, got_write, g };
	struct npy_header base, h;
	bool have = false;

	buf_init(&g->hdr);
	if (base_dict && !npy_header_parse_dict(base_dict, strlen(base_dict),
						&base, NULL))
		have = true;
	g->ret = csv_parse(text, len, have ? &base : NULL, &h, &out,
			   &g->err);
	if (!g->ret)
		npy_header_release(&h);
	if (have)
		npy_header_release(&base);
	return g->ret;
}

static int parse_csv(const char *text, const char *base_dict, struct got *g)
{
	return parse_len(text, strlen(text), base_dict, g);
}

static bool renders(const char *dict, const void *data, const char *want)
{
	char *t = csv_of(dict, data, NULL);
	bool ok = t && !strcmp(t, want);

	if (t && !ok)
		printf("%s renders\n%s\nnot\n%s\n", dict, t, want);
	free(t);
	return ok;
}

/* Render and parse back against the same header: same bytes and header. */
static bool round_trips(const char *dict, const void *data)
{
	struct got g = { .ret = 0 };
	struct npy_header h;
	struct buf want = BUF_INIT;
	char *t = csv_of(dict, data, NULL);
	bool ok = false;
	size_t len;

	if (!t || npy_header_parse_dict(dict, strlen(dict), &h, NULL))
		goto out;
	npy_header_format(&h, &want);
	len = (size_t)h.data_len;
	npy_header_release(&h);
	if (parse_len(t, csv_len, dict, &g))
		printf("%s: parse back: %s\n", dict, g.err.msg);
	ok = !g.ret && g.len == len && !memcmp(g.data, data, len) &&
	     g.hdr.len == want.len && !memcmp(g.hdr.data, want.data, want.len);
	if (!ok)
		printf("%s: round trip differs\n", dict);
	got_release(&g);
out:
	buf_release(&want);
	free(t);
	return ok;
}

/* Parsing text against base fails with -EINVAL and a message holding msg. */
static bool refuses(const char *text, const char *base, const char *msg)
{
	struct got g = { .ret = 0 };
	bool ok = parse_csv(text, base, &g) == -EINVAL &&
		  strstr(g.err.msg, msg);

	if (!ok)
		printf("%s: got %d '%s', want '%s'\n", text, g.ret, g.err.msg, msg);
	got_release(&g);
	return ok;
}

/* Parsing text against base gives the npy header dict `shape` part and
 * data. */
static bool parses(const char *text, const char *base, const char *shape,
		   const void *data, size_t len)
{
	struct got g = { .ret = 0 };
	bool ok = !parse_csv(text, base, &g) && g.len == len &&
		  !memcmp(g.data, data, len) &&
		  memmem(g.hdr.data, g.hdr.len, shape, strlen(shape));

	if (!ok)
		printf("%s: got %d '%s' %s\n", text, g.ret, g.err.msg,
		       g.hdr.len ? g.hdr.data + 10 : "");
	got_release(&g);
	return ok;
}

#define F8 "{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }"
#define D(descr, fo, shape) \
	"{'descr': " descr ", 'fortran_order': " fo ", 'shape': " shape ", }"

/* ---- rendering ----------------------------------------------------------- */

static void test_render(void)
{
	double f[4] = { 0.1, -0.0, 1e300, 0 };
	int32_t i[6] = { 1, -2, 3, 40, 5, 6 };
	uint8_t b[2] = { 1, 0 };
	char s[4][4] = { "a,b", "x\"y", "", "ok" };
	uint32_t u[3][2] = { { 'a', 0 }, { 0xe9, '\n' }, { 0, 0 } };
	unsigned char rec[2][16];
	char name2[] = "{'descr': [('na,me', '<U2'), ('pos', '<i2', (2,))], 'fortran_order': False, 'shape': (1,), }";

	f[3] = 1.0 / 0.0;
	test_cond("1-d float64: one per line, shortest",
		  renders(D("'<f8'", "False", "(4,)"), f,
			  "0.1\n-0.0\n1e+300\ninf\n"));
	test_cond("2-d int32: rows", renders(D("'<i4'", "False", "(2, 3)"), i,
					     "1,-2,3\n40,5,6\n"));
	test_cond("2-d Fortran: logical order",
		  renders(D("'<i4'", "True", "(2, 3)"), i, "1,3,5\n-2,40,6\n"));
	test_cond("(N,1): one per line", renders(D("'<i4'", "False", "(3, 1)"),
						 i, "1\n-2\n3\n"));
	test_cond("bool", renders(D("'|b1'", "False", "(2,)"), b, "True\nFalse\n"));
	test_cond("bytes quoted when needed, empty alone as \"\"",
		  renders(D("'|S4'", "False", "(4,)"), s,
			  "\"a,b\"\n\"x\"\"y\"\n\"\"\nok\n"));
	test_cond("bytes in a row: empty is empty",
		  renders(D("'|S4'", "False", "(2, 2)"), s,
			  "\"a,b\",\"x\"\"y\"\n,ok\n"));
	test_cond("U: raw UTF-8, a newline quoted",
		  renders(D("'<U2'", "False", "(3,)"), u,
			  "a\n\"\xc3\xa9\n\"\n\"\"\n"));
	memset(rec, 0, sizeof(rec));
	rec[0][0] = 'q';
	rec[0][8] = 7;
	rec[0][10] = 0xff;
	rec[0][11] = 0xff;
	test_cond("structured: header row of flattened names, quoted",
		  renders(name2, rec, "\"na,me\",pos[0],pos[1]\nq,7,-1\n"));
	test_cond("empty 2-d keeps nothing", renders(D("'<f8'", "False", "(0, 3)"),
						     f, ""));
	test_cond("datetime, complex",
		  renders(D("'<M8[D]'", "False", "(1,)"), (int64_t[]){ 19753 },
			  "2024-01-31\n") &&
		  renders(D("'<c8'", "False", "(1,)"), (float[]){ 1.5f, -2 },
			  "1.5-2.0j\n"));
}

static void test_viewable(void)
{
	const char *none[] = {
		D("'<f8'", "False", "()"),
		D("'<f8'", "False", "(2, 2, 2)"),
		D("'|O'", "False", "(2,)"),
		D("'<f8'", "False", "(3, 0)"),
		"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2, 2), }",
		"{'descr': [], 'fortran_order': False, 'shape': (2,), }",
	};
	int ret;

	for (size_t k = 0; k < sizeof(none) / sizeof(*none); k++) {
		char *t = csv_of(none[k], "\0\0\0\0\0\0\0\0", &ret);

		test_cond("no CSV view: csv_format refuses", !t && ret == -EINVAL);
		free(t);
	}
	test_cond("no CSV view: no bound",
		  csv_size_bound(&(struct npy_header){ .ndim = 3 }) == UINT64_MAX);
	test_cond("a surrogate in U cannot be shown",
		  !csv_of(D("'<U1'", "False", "(1,)"), (uint32_t[]){ 0xd800 },
			  &ret) && ret == -EINVAL);
}

/* ---- round trips ---------------------------------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_round_trips(void)
{
	static const char *const dicts[] = {
		D("'<f8'", "False", "(64,)"), D("'>f8'", "False", "(8, 8)"),
		D("'<f4'", "True", "(16, 4)"), D("'<f2'", "False", "(64,)"),
		D("'<i8'", "False", "(64,)"), D("'|u1'", "False", "(4, 16)"),
		D("'>i2'", "True", "(8, 8)"), D("'<c16'", "False", "(32,)"),
		D("'<M8[s]'", "False", "(64,)"), D("'<m8[ms]'", "False", "(64,)"),
		D("'|V3'", "False", "(64,)"), D("'|S4'", "False", "(16, 4)"),
		"{'descr': [('a', '<f8'), ('b', '|S3'), ('c', '<i4', (2,))], 'fortran_order': False, 'shape': (16,), }",
	};
	unsigned char data[1024];

	for (int round = 0; round < 20; round++) {
		for (size_t k = 0; k < sizeof(dicts) / sizeof(*dicts); k++) {
			bool fl = strstr(dicts[k], "'<f") || strstr(dicts[k], "'>f") ||
				  strstr(dicts[k], "c16") || strstr(dicts[k], "('a'");

			/* floats: bit 6 of every byte clear, so no exponent is
			 * all ones (NaN payloads do not survive by design) */
			for (size_t i = 0; i < sizeof(data); i++)
				data[i] = (unsigned char)rnd() & (fl ? 0xbf : 0xff);
			test_cond(dicts[k], round_trips(dicts[k], data));
		}
	}
	uint32_t u[4][3] = { { 'a', ',', '"' }, { 0x10ffff, 0, 0 }, { 0 },
			     { ' ', 'x', ' ' } };

	test_cond("U with quotes, commas, spaces, astral",
		  round_trips(D("'<U3'", "False", "(4,)"), u));
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 3; j++)
			u[i][j] = __builtin_bswap32(u[i][j]);
	test_cond("U big-endian", round_trips(D("'>U3'", "False", "(2, 2)"), u));
}

/* ---- input ----------------------------------------------------------------- */

static void test_input(void)
{
	const char *f8_3 = D("'<f8'", "False", "(3,)");
	const char *i4_22 = D("'<i4'", "False", "(2, 2)");
	double f[3] = { 1.5, -2, 0.25 };
	int32_t i[6] = { 1, 2, 3, 4, 5, 6 };
	const char *rec = "{'descr': [('name', '<U3'), ('val', '<f8')], 'fortran_order': False, 'shape': (1,), }";
	struct { uint32_t name[3]; double val; } __attribute__((packed))
		r[2] = { { { 'a', 0, 0 }, 1.5 }, { { 'b', ',', 'c' }, -2 } };

	test_cond("LF", parses("1.5\n-2\n0.25\n", f8_3, "(3,)", f, 24));
	test_cond("CRLF, no final newline",
		  parses("1.5\r\n-2\r\n0.25", f8_3, "(3,)", f, 24));
	test_cond("blank lines skipped", parses("\n1.5\n\n-2\r\n\r\n0.25\n\n",
						f8_3, "(3,)", f, 24));
	test_cond("quoted numbers, spaces around",
		  parses("\"1.5\"\n -2 \n\t0.25\n", f8_3, "(3,)", f, 24));
	test_cond("rows may change", parses("1.5\n-2\n", f8_3, "(2,)", f, 16));
	test_cond("no rows", parses("", f8_3, "(0,)", f, 0));
	test_cond("2-d rows", parses("1,2\n3,4\n5,6\n", i4_22, "(3, 2)", i, 24));
	test_cond("(N,1) stays 2-d", parses("1\n2\n", D("'<i4'", "False", "(5, 1)"),
					   "(2, 1)", i, 8));
	test_cond("Fortran order kept, data in F order",
		  parses("1,3\n2,4\n", D("'<i4'", "True", "(1, 2)"),
			 "'fortran_order': True, 'shape': (2, 2)", i, 16));
	test_cond("structured: header row, quoted string with a comma",
		  parses("name,val\na,1.5\n\"b,c\",-2\n", rec, "(2,)", r,
			 sizeof(r)));
	test_cond("U field with \"\" and a newline",
		  parses("\"x\"\"\ny\"\n", D("'<U4'", "False", "(1,)"), "(1,)",
			 (uint32_t[]){ 'x', '"', '\n', 'y' }, 16));
	test_cond("U spaces kept", parses(" a \n", D("'<U3'", "False", "(1,)"),
					  "(1,)", (uint32_t[]){ ' ', 'a', ' ' }, 12));
	test_cond("S raw bytes", parses("\xff\x01\n", D("'|S2'", "False", "(1,)"),
					"(1,)", "\xff\x01", 2));
	test_cond("empty U as \"\"", parses("\"\"\n", D("'<U1'", "False", "(1,)"),
					"(1,)", (uint32_t[]){ 0 }, 4));
	test_cond("trailing comma: an empty last field",
		  parses("a,\n", D("'|S1'", "False", "(1, 2)"), "(1, 2)", "a\0", 2));
}

static void test_errors(void)
{
	const char *f8_1 = D("'<f8'", "False", "(3,)");
	const char *i4_22 = D("'<i4'", "False", "(2, 2)");
	const char *rec = "{'descr': [('name', '<U3'), ('val', '<f8')], 'fortran_order': False, 'shape': (1,), }";

	test_cond("no base", refuses("1\n", NULL, "CSV file holds no dtype"));
	test_cond("base without a CSV view",
		  refuses("1\n", D("'<f8'", "False", "(1, 1, 1)"), "no CSV view"));
	test_cond("ragged: fewer fields", refuses("1,2\n3\n", i4_22,
						 "line 2: 1 field, expected 2"));
	test_cond("ragged: more fields", refuses("1,2\n3,4,5\n", i4_22,
						"line 2, column 3: more than 2 fields"));
	test_cond("1-d: two fields", refuses("1\n2,3\n", f8_1,
					    "line 2, column 2: more than 1 field"));
	test_cond("bad value names line and column",
		  refuses("1,2\n3,x4\n", i4_22,
			  "line 2, column 2: bad value 'x4' (expected int32)"));
	test_cond("out of range", refuses("1,2\n3,4294967296\n", i4_22,
					  "line 2, column 2:"));
	test_cond("float out of range for float32",
		  refuses("1e39\n", D("'<f4'", "False", "(1,)"), "line 1, column 1:"));
	test_cond("empty numeric field", refuses("1,\n", i4_22,
						 "line 1, column 2: bad value ''"));
	test_cond("unterminated quote", refuses("1\n\"2\n3\n", f8_1,
					       "line 2, column 1: unterminated quoted field"));
	test_cond("text after a closing quote",
		  refuses("\"1\"2\n", f8_1, "line 1, column 1: text after a closing quote"));
	test_cond("line numbers count newlines inside quotes",
		  refuses("\"a\nb\",1.5\nc,x\n", "{'descr': [('name', '<U3'), ('val', '<f8')], 'fortran_order': False, 'shape': (1,), }",
			  "line 1, column 1: header"));
	test_cond("header mismatch", refuses("name,value\na,1\n", rec,
					     "line 1, column 2: header 'value' is not the column name 'val'"));
	test_cond("header missing", refuses("a,1.5\n", rec,
					    "line 1, column 1: header 'a'"));
	test_cond("header: too many", refuses("name,val,x\n", rec,
					      "line 1, column 3: more fields in the header row"));
	test_cond("header: too few", refuses("name\n", rec,
					     "line 1: fewer fields in the header row"));
	test_cond("a row after a multi-line field is numbered right",
		  refuses("name,val\n\"a\nb\",1\nc,x\n", rec,
			  "line 4, column 2: bad value 'x'"));
	test_cond("U too long", refuses("abcd\n", D("'<U3'", "False", "(1,)"),
					"line 1, column 1: 'abcd' too long for U3"));
	test_cond("U invalid UTF-8", refuses("\xff\n", D("'<U3'", "False", "(1,)"),
					     "line 1, column 1: '?' is not valid UTF-8"));
	test_cond("S too long", refuses("abc\n", D("'|S2'", "False", "(1,)"),
					"too long for S2"));
	test_cond("bool", refuses("maybe\n", D("'|b1'", "False", "(1,)"),
				  "line 1, column 1: bad value 'maybe' (expected bool)"));
	test_cond("datetime", refuses("2024-13-01\n", D("'<M8[D]'", "False", "(1,)"),
				      "line 1, column 1:"));
	test_cond("void: hex digits", refuses("0x12\n", D("'|V2'", "False", "(1,)"),
					      "line 1, column 1: bad value '0x12'"));

	struct got g = { .fail_write = 1 };
	test_cond("a write error goes back", parse_csv("1\n", f8_1, &g) == -ENOSPC);
	got_release(&g);
}

/* Test hooks of src/text/ (text_internal.h). */
extern size_t text_csv_block_bytes, text_csv_split_bytes;
extern int text_parse_threads;
extern int text_parse_simd;

/* Parse text against base with the given hooks: the result, its message,
 * header and data into *g.  Two threads or more also scan 64 bytes at a
 * time (AVX2, where the CPU has it); one thread, eight. */
static int parse_with(const char *text, const char *base, int threads,
		      size_t block, size_t split, struct got *g)
{
	int ret;

	text_parse_threads = threads;
	text_parse_simd = threads > 1 ? 2 : 0;
	text_csv_block_bytes = block;
	text_csv_split_bytes = split;
	ret = parse_len(text, strlen(text), base, g);
	text_parse_simd = 2;
	text_parse_threads = 0;
	text_csv_block_bytes = 1u << 20;
	text_csv_split_bytes = 4u << 20;
	return ret;
}

/* Two threads (small blocks, pass 1 split) give what one gives: the same
 * bytes, or the same first error. */
static bool same_on_two_threads(const char *text, const char *base,
				bool valid)
{
	struct got one = { .ret = 0 }, two = { .ret = 0 };
	bool ok;

	parse_with(text, base, 1, 1u << 20, SIZE_MAX, &one);
	parse_with(text, base, 2, 64, 0, &two);
	ok = one.ret == two.ret && !strcmp(one.err.msg, two.err.msg) &&
	     (one.ret == 0) == valid;
	if (ok && !one.ret)	/* (on error what out got is dropped) */
		ok = one.len == two.len &&
		     (!one.len || !memcmp(one.data, two.data, one.len)) &&
		     one.hdr.len == two.hdr.len &&
		     !memcmp(one.hdr.data, two.hdr.data, one.hdr.len);
	if (!ok)
		printf("one thread: %d '%s'; two: %d '%s'\n", one.ret, one.err.msg,
		       two.ret, two.err.msg);
	got_release(&one);
	got_release(&two);
	return ok;
}

/* The scan of a text without quotes (word at a time) against the general
 * one (a quote anywhere takes it): random lines, LF and CRLF, empty lines
 * of both kinds, every alignment. */
static void test_plain_scan(void)
{
	const char *f8 = D("'<f8'", "False", "(1,)");
	const char *pieces[] = { "1.5\n", "\n", "\r\n", "-2\r\n", "3e-3\n",
				 "123456.75\n", "0\n", "\n\n", "7\r\n\r\n" };
	int bad = 0;

	for (int round = 0; round < 300; round++) {
		struct buf b = BUF_INIT, q = BUF_INIT;
		struct got g1 = { .ret = 0 }, g2 = { .ret = 0 };
		int n = (int)(rnd() % 60);

		buf_adds(&q, "\"4\"\n");	/* the general scan: a quote */
		buf_adds(&b, "4\n");
		for (int i = 0; i < n; i++) {
			const char *s = pieces[rnd() % (sizeof(pieces) / sizeof(*pieces))];

			buf_adds(&b, s);
			buf_adds(&q, s);
		}
		if (rnd() % 2) {	/* no final newline */
			buf_adds(&b, "9");
			buf_adds(&q, "9");
		}
		parse_len(b.data, b.len, f8, &g1);
		parse_len(q.data, q.len, f8, &g2);
		if (g1.ret || g2.ret || g1.len != g2.len ||
		    memcmp(g1.data, g2.data, g1.len))
			bad++;
		got_release(&g1);
		got_release(&g2);
		buf_release(&b);
		buf_release(&q);
	}
	test_cond("plain scan agrees with the general one", !bad);
}

static void test_threads(void)
{
	const char *f8 = D("'<f8'", "False", "(1,)");
	const char *i2 = D("'<i2'", "False", "(1, 3)");
	const char *rec = "{'descr': [('name', '<U5'), ('val', '<f8')], 'fortran_order': False, 'shape': (1,), }";
	struct buf b = BUF_INIT;

	for (int i = 0; i < 3000; i++)
		buf_addf(&b, i % 7 ? "%d.%d\n" : "\r\n%d.%de-3\r\n", i, (int)(rnd() % 1000));
	test_cond("f8: two threads", same_on_two_threads(b.data, f8, true));
	buf_reset(&b);
	for (int i = 0; i < 3000; i++)
		buf_addf(&b, "%d,%d,%d\n", i % 100, -i % 50, i % 3);
	test_cond("i2 rows: two threads", same_on_two_threads(b.data, i2, true));
	b.data[b.len - 3000] = 'x';
	test_cond("a bad value late: the same message",
		  same_on_two_threads(b.data, i2, false));
	b.data[b.len - 3000] = '1';
	b.data[b.len - 5000] = '\n';
	test_cond("a ragged row late: the same message",
		  same_on_two_threads(b.data, i2, false));
	buf_reset(&b);
	buf_adds(&b, "name,val\n");
	for (int i = 0; i < 2000; i++)
		buf_addf(&b, i % 5 ? "a%d,%d.5\n" : "\"b,%d\",%d\n", i % 90, i);
	test_cond("structured with quotes: two threads",
		  same_on_two_threads(b.data, rec, true));
	buf_addf(&b, "x,y\n");
	test_cond("structured: the last value bad",
		  same_on_two_threads(b.data, rec, false));
	buf_release(&b);
}

/* One thread scanning 64 bytes at a time (AVX2, where the CPU has it)
 * gives what one scanning eight gives: the same bytes, or the same first
 * error. */
static bool same_wide(const char *text, const char *base, bool valid)
{
	struct got narrow = { .ret = 0 }, wide = { .ret = 0 };
	bool ok;

	text_parse_threads = 1;
	text_parse_simd = 0;
	parse_len(text, strlen(text), base, &narrow);
	text_parse_simd = 2;
	parse_len(text, strlen(text), base, &wide);
	text_parse_threads = 0;
	ok = narrow.ret == wide.ret && !strcmp(narrow.err.msg, wide.err.msg) &&
	     (narrow.ret == 0) == valid;
	if (ok && !narrow.ret)
		ok = narrow.len == wide.len &&
		     !memcmp(narrow.data, wide.data, narrow.len) &&
		     narrow.hdr.len == wide.hdr.len &&
		     !memcmp(narrow.hdr.data, wide.hdr.data, narrow.hdr.len);
	if (!ok)
		printf("8 bytes: %d '%s'; 64: %d '%s'\n", narrow.ret,
		       narrow.err.msg, wide.ret, wide.err.msg);
	got_release(&narrow);
	got_release(&wide);
	return ok;
}

/* The one-field-a-line scan 64 bytes at a time: empty lines anywhere
 * (also where a 64-byte step starts), CR LF line ends, and a quote, a
 * comma or a bad value late. */
static void test_wide_scan(void)
{
	const char *f8 = D("'<f8'", "False", "(1,)");
	struct buf b = BUF_INIT;

	for (int round = 0; round < 40; round++) {
		size_t at;

		buf_reset(&b);
		for (int i = 0; i < 3000; i++) {
			unsigned r = (unsigned)(rnd() % 100);

			buf_addf(&b, r < 5 ? "\n" : r < 7 ? "%d.5\r\n" : "%d.%d\n",
				 i, (int)(rnd() % 1000));
		}
		test_cond("one field a line: 64 bytes at a time",
			  same_wide(b.data, f8, true));
		at = b.len / 2 + rnd() % (b.len / 2);
		if (b.data[at] != '\n') {
			char was = b.data[at];

			b.data[at] = round % 3 ? ',' : '"';
			test_cond("a comma or a quote late: the same message",
				  same_wide(b.data, f8, false));
			b.data[at] = 'x';
			test_cond("a bad value late: the same message",
				  same_wide(b.data, f8, false));
			b.data[at] = was;
		}
	}
	buf_release(&b);
}

int main(void)
{
	test_render();
	test_viewable();
	test_round_trips();
	test_input();
	test_errors();
	test_threads();
	test_plain_scan();
	test_wide_scan();
	return test_report();
}
