/* scripts/png-bench.c - speed and size of the PNG view's rendering (and
 * parsing) at zlib levels, PNG filters and zlib strategies (issue 13: "PNG
 * compression at libpng's default is slow").
 *
 * Not part of the build (`make` does not know it).  Build it by hand after
 * `make`:
 *
 *   cc -O2 -Iinclude -Isrc/image $(pkg-config --cflags libpng) \
 *      scripts/png-bench.c build/libnpzfs.a $(pkg-config --libs libpng zlib) \
 *      -lm -lpthread -o /tmp/png-bench
 *
 * Run:  /tmp/png-bench [-n SIDE] [-r REPS] [LEVEL:FILTER:STRATEGY ...]
 *
 *   SIDE       image side, default 4096 (SIDE x SIDE arrays)
 *   REPS       timed runs per configuration, default 3 (the best is kept)
 *   FILTER     none, sub, up, avg, paeth or all (libpng's adaptive choice)
 *   STRATEGY   default, filtered, rle
 *   default    a few configurations, the view's choice (1:up:rle) first
 *
 * Arrays: "photo" uint8 (a smooth field plus +-4 noise, like a photograph),
 * "noise" uint8 (uniform random: incompressible), "smooth" float64 heatmap
 * (a smooth field plus small noise), "random" float64 heatmap (uniform).
 * MB/s is input array bytes over the process's CPU time (one thread);
 * parse is png_parse of the rendered PNG into memory.
 *
 * 2026-12-03, 2 cores under load 5.5 (CPU time):
 *   1:up:rle (chosen)  photo u1 127 MB/s 7.6 MiB, parse 180 MB/s;
 *                      noise u1 138 MB/s; smooth f8 heatmap 470 MB/s 3.9 MiB;
 *                      random f8 heatmap 614 MB/s
 *   6:all:default      photo u1  13 MB/s 8.0 MiB; smooth f8 82 MB/s 4.2 MiB
 *   1:up:default       photo u1  95 MB/s 9.0 MiB; smooth f8 482 MB/s 5.0 MiB
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "image_internal.h"

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct mem {
	const unsigned char *p;
	size_t len;
};

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

static int sink_write(void *ctx, const void *p, size_t n)
{
	return buf_add(ctx, p, n);
}

static int out_begin(void *ctx, const struct npy_header *h)
{
	(void)ctx;
	(void)h;
	return 0;
}

static int out_write_at(void *ctx, const void *buf, size_t len, uint64_t off)
{
	memcpy((unsigned char *)ctx + off, buf, len);
	return 0;
}

static uint64_t rs = 88172645463325252ull;

static double urand(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (rs >> 11) / 9007199254740992.0;
}

struct input {
	const char *name;
	struct npy_header h;
	unsigned char *data;
};

static void make_inputs(struct input *in, int side)
{
	size_t n = (size_t)side * side;
	char dict[160];

	snprintf(dict, sizeof(dict), "{'descr': '|u1', 'fortran_order': False, "
		 "'shape': (%d, %d), }", side, side);
	for (int k = 0; k < 2; k++) {
		npy_header_parse_dict(dict, strlen(dict), &in[k].h, NULL);
		in[k].data = malloc(n);
	}
	snprintf(dict, sizeof(dict), "{'descr': '<f8', 'fortran_order': False, "
		 "'shape': (%d, %d), }", side, side);
	for (int k = 2; k < 4; k++) {
		npy_header_parse_dict(dict, strlen(dict), &in[k].h, NULL);
		in[k].data = malloc(n * 8);
	}
	in[0].name = "photo u1";
	in[1].name = "noise u1";
	in[2].name = "smooth f8";
	in[3].name = "random f8";
	for (int i = 0; i < side; i++)
		for (int j = 0; j < side; j++) {
			size_t e = (size_t)i * side + j;
			double f = 128 + 60 * sin(i / 300.0) * cos(j / 200.0) +
				   30 * sin((i + j) / 90.0);
			double v = f + (urand() * 8 - 4);
			double d[2] = { f / 100 + 0.01 * urand(), urand() };

			in[0].data[e] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
			in[1].data[e] = (unsigned char)(urand() * 256);
			memcpy(in[2].data + 8 * e, &d[0], 8);
			memcpy(in[3].data + 8 * e, &d[1], 8);
		}
}

static int filter_of(const char *s)
{
	static const char *const names[] = { "none", "sub", "up", "avg", "paeth", "all" };
	static const int vals[] = { PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP,
				    PNG_FILTER_AVG, PNG_FILTER_PAETH, PNG_ALL_FILTERS };

	for (int i = 0; i < 6; i++)
		if (!strcmp(s, names[i]))
			return vals[i];
	return -1;
}

static int strategy_of(const char *s)
{
	return !strcmp(s, "filtered") ? Z_FILTERED : !strcmp(s, "rle") ? Z_RLE
		: Z_DEFAULT_STRATEGY;
}

static void run(struct input *in, const char *conf, int reps)
{
	char lv[16], fl[16], st[16];

	if (sscanf(conf, "%15[^:]:%15[^:]:%15s", lv, fl, st) != 3 || filter_of(fl) < 0) {
		fprintf(stderr, "bad configuration %s\n", conf);
		exit(2);
	}
	image_png_level = atoi(lv);
	image_png_filters = filter_of(fl);
	image_png_strategy = strategy_of(st);
	for (int k = 0; k < 4; k++) {
		struct mem m = { in[k].data, in[k].h.data_len };
		struct text_src src = { mem_read, &m };
		double best = 1e99, pbest = 1e99;
		size_t size = 0;

		for (int r = 0; r < reps; r++) {
			struct buf png = BUF_INIT;
			struct text_sink sink = { sink_write, &png };
			double t = cpu_now();

			if (png_format(&in[k].h, &src, &sink, NULL)) {
				fprintf(stderr, "render failed\n");
				exit(1);
			}
			t = cpu_now() - t;
			best = t < best ? t : best;
			size = png.len;
			if (k < 2) {
				unsigned char *o = malloc(in[k].h.data_len);
				struct text_out out = { out_begin, out_write_at, o };
				struct npy_header h;

				t = cpu_now();
				if (png_parse(png.data, png.len, &in[k].h, &h, &out, NULL) ||
				    memcmp(o, in[k].data, in[k].h.data_len)) {
					fprintf(stderr, "parse failed\n");
					exit(1);
				}
				t = cpu_now() - t;
				pbest = t < pbest ? t : pbest;
				npy_header_release(&h);
				free(o);
			}
			buf_release(&png);
		}
		printf("| %s | %s | %.0f | %.1f | %s |\n", conf, in[k].name,
		       in[k].h.data_len / best / 1e6, size / 1048576.0,
		       k < 2 ? (snprintf(lv, sizeof(lv), "%.0f",
					 in[k].h.data_len / pbest / 1e6), lv) : "-");
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = {
		"1:up:rle", "1:avg:rle", "1:up:default", "1:sub:default",
		"3:up:default", "6:all:default", "6:all:filtered",
	};
	struct input in[4];
	int side = 4096, reps = 3, i = 1;
	double load[1] = { 0 };

	for (; i < argc && argv[i][0] == '-'; i += 2) {
		if (i + 1 >= argc)
			return 2;
		if (!strcmp(argv[i], "-n"))
			side = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-r"))
			reps = atoi(argv[i + 1]);
	}
	make_inputs(in, side);
	getloadavg(load, 1);
	printf("%dx%d, best of %d, load %.2f\n\n", side, side, reps, load[0]);
	printf("| level:filter:strategy | array | render MB/s | PNG MiB | parse MB/s |\n");
	printf("|---|---|---|---|---|\n");
	if (i < argc)
		for (; i < argc; i++)
			run(in, argv[i], reps);
	else
		for (size_t k = 0; k < sizeof(defaults) / sizeof(defaults[0]); k++)
			run(in, defaults[k], reps);
	return 0;
}
