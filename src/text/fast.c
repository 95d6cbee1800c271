/* fast.c - the fast path of text_parse(): values in a known shape.
 *
 * Invariant: the same results and the same errors as the general path
 * (parse_layout.c and text_convert()), which the unit tests and the
 * fuzzer check against it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "fast_double.h"

/* ---- fast path: values in a known shape -----------------------------------
 *
 * Most texts written back are an edited view: a header line whose element
 * count still matches the body, then whitespace-separated values without
 * quotes.  For those the first pass only counts tokens and newlines (32
 * bytes at a time with AVX2, else 16 with SSE2, else one) and the second
 * converts values as it meets them, float64 inline (fast_double), without
 * finding lines first.  The body is cut into chunks of about
 * text_parse_chunk_bytes that begin at line starts, so that each chunk's
 * first value index and line number come from the counts before it; each
 * pass works chunk by chunk, on as many threads as there are online CPUs
 * (at most FAST_MAX_THREADS).  Helper threads call `out` only when its
 * begin() said write_at() is thread-safe (then every thread writes its own
 * blocks); else callbacks stay on the calling thread: each helper hands
 * its blocks to the calling thread through its own slot, and the calling
 * thread writes them.
 *
 * When the count is not the reference's (or there is none: a new array),
 * the general layout scan still decides the shape, but the conversion is
 * this one whenever the body has no quotes and the result is in C order.
 *
 * Errors are those of the general path, always: each chunk stops at its
 * first error and the lowest chunk's wins (the first in the text), and as
 * the general first pass reports layout errors (ragged rows) before any
 * value, any error after skipping that scan is followed by it, and its
 * message, if it has one, wins.
 */

size_t text_parse_chunk_bytes = 1u << 20;
int text_parse_threads;
bool text_parse_fast = true;
int text_parse_simd = 2;

#define FAST_BLOCK (256u << 10)	/* output bytes per block */

struct fast;

struct worker {
	struct fast *f;
	struct tp t;		/* own lineno and err, for the converters */
	struct npz_err err;
	int id;			/* 0: the calling thread, else a helper */
	bool helper;
	unsigned char *buf, *spare;	/* output blocks of `cap` elements */
	size_t n, cap;		/* elements in buf */
	uint64_t first;		/* element index of buf[0] */
	int ret;		/* first conversion error ... */
	size_t err_chunk;	/* ... in this chunk */
	int cb_ret;		/* out->write_at failed */
};

/* ---- pass 1: count ---- */

/* Tokens in the data lines of [p, e) by lines, with comment lines left
 * out (as scan_layout sees them); for chunks holding a '#'. */
static void count_lines(const char *p, const char *e, struct chunk *c)
{
	c->values = c->newlines = 0;
	while (p < e) {
		const char *le = memchr(p, '\n', (size_t)(e - p));

		if (!le)
			le = e;
		if (text_line_kind(p, le) == L_DATA) {
			bool in = false;

			for (const char *q = p; q < le; q++) {
				bool tk = ch_class[(unsigned char)*q] < CH_WS;

				c->values += tk && !in;
				in = tk;
			}
		}
		if (le < e)
			c->newlines++;
		p = le < e ? le + 1 : e;
	}
}

/* Token starts and newlines of [p, e) byte by byte, after a token byte if
 * `in`, added to c; true if there is a '"' or a '#'. */
static bool count_bytes(const char *p, const char *e, bool in, struct chunk *c)
{
	bool special = false;

	for (; p < e; p++) {
		int k = ch_class[(unsigned char)*p];
		bool tk = k < CH_WS;

		c->values += tk && !in;
		in = tk;
		c->newlines += k == CH_NL;
		special |= k == CH_QUOTE || *p == '#';
	}
	return special;
}

/* 64 bytes as masks (bit i: byte i): ws whitespace, nl newlines. */
static inline void count_masks(struct chunk *c, uint64_t ws, uint64_t nl,
			       uint64_t *carry)
{
	uint64_t tok = ~ws;

	c->values += (uint64_t)__builtin_popcountll(tok & ~(tok << 1 | *carry));
	c->newlines += (uint64_t)__builtin_popcountll(nl);
	*carry = tok >> 63;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define COUNT_AVX2 1
/* count_plain() 32 bytes at a time, for CPUs with AVX2. */
__attribute__((target("avx2,popcnt")))
static bool count_avx2(const char *p, const char *e, struct chunk *c)
{
	const __m256i c9 = _mm256_set1_epi8(9), c4 = _mm256_set1_epi8(4);
	const __m256i sp = _mm256_set1_epi8(' '), lf = _mm256_set1_epi8('\n');
	const __m256i dq = _mm256_set1_epi8('"'), hash = _mm256_set1_epi8('#');
	__m256i spec = _mm256_setzero_si256();
	uint64_t carry = 0;

	for (; e - p >= 64; p += 64) {
		uint64_t ws = 0, nl = 0;

		for (int i = 0; i < 2; i++) {
			__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * i));
			__m256i y = _mm256_sub_epi8(x, c9);
			/* 9..13 (\t \n \v \f \r) or ' ' */
			__m256i w = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(y, c4), y),
						    _mm256_cmpeq_epi8(x, sp));

			ws |= (uint64_t)(uint32_t)_mm256_movemask_epi8(w) << (32 * i);
			nl |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, lf))
			      << (32 * i);
			spec = _mm256_or_si256(spec, _mm256_or_si256(_mm256_cmpeq_epi8(x, dq),
								     _mm256_cmpeq_epi8(x, hash)));
		}
		count_masks(c, ws, nl, &carry);
	}
	return count_bytes(p, e, carry, c) || !_mm256_testz_si256(spec, spec);
}
#endif

bool text_simd_avx2(void)
{
#ifdef COUNT_AVX2
	static int avx2 = -1;	/* benign race: every thread finds the same */
	int have = __atomic_load_n(&avx2, __ATOMIC_RELAXED);

	if (have < 0) {
		have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
		__atomic_store_n(&avx2, have, __ATOMIC_RELAXED);
	}
	return have && text_parse_simd >= 2;
#else
	return false;
#endif
}

/* Token starts and newlines of [p, e) into c; true if there is a '"' or a
 * '#' (then the counts are those of plain words, without quoted strings
 * or comment lines). */
static bool count_plain(const char *p, const char *e, struct chunk *c)
{
	uint64_t carry = 0;

	c->values = c->newlines = 0;
#ifdef COUNT_AVX2
	if (text_simd_avx2())
		return count_avx2(p, e, c);
#endif
#ifdef __SSE2__
	if (text_parse_simd < 1)
		return count_bytes(p, e, false, c);

	const __m128i c9 = _mm_set1_epi8(9), c4 = _mm_set1_epi8(4);
	const __m128i sp = _mm_set1_epi8(' '), lf = _mm_set1_epi8('\n');
	const __m128i dq = _mm_set1_epi8('"'), hash = _mm_set1_epi8('#');
	__m128i spec = _mm_setzero_si128();

	for (; e - p >= 64; p += 64) {
		uint64_t ws = 0, nl = 0;

		for (int i = 0; i < 4; i++) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
			__m128i y = _mm_sub_epi8(x, c9);
			__m128i w = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(y, c4), y),
						 _mm_cmpeq_epi8(x, sp));

			ws |= (uint64_t)(unsigned)_mm_movemask_epi8(w) << (16 * i);
			nl |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, lf))
			      << (16 * i);
			spec = _mm_or_si128(spec, _mm_or_si128(_mm_cmpeq_epi8(x, dq),
							       _mm_cmpeq_epi8(x, hash)));
		}
		count_masks(c, ws, nl, &carry);
	}
	return count_bytes(p, e, carry, c) || _mm_movemask_epi8(spec);
#else
	return count_bytes(p, e, carry, c);
#endif
}

/* Count chunk c; false if it has a quote. */
static bool count_chunk(const struct tp *t, struct chunk *c)
{
	const char *p = t->text + c->start, *e = t->text + c->end;

	if (!count_plain(p, e, c))
		return true;
	if (memchr(p, '"', (size_t)(e - p)))
		return false;
	count_lines(p, e, c);	/* comment lines */
	return true;
}

/* ---- pass 2: convert ---- */

static void slot_wait(struct fast *f)
{
	pthread_cond_wait(&f->cv, &f->lock);
}

/* Write the helpers' blocks that are ready (calling thread). */
static void serve_helpers(struct fast *f, struct worker *w)
{
	const struct text_out *out = f->t->out;

	for (int i = 1; i < f->nthreads; i++) {
		struct fast_slot *sl = &f->slot[i];

		if (!__atomic_load_n(&sl->full, __ATOMIC_ACQUIRE))
			continue;
		pthread_mutex_lock(&f->lock);
		while (sl->full) {
			const unsigned char *b = sl->buf;
			size_t len = sl->len;
			uint64_t off = sl->off;
			int ret = 0;

			pthread_mutex_unlock(&f->lock);
			if (!w->cb_ret)
				ret = out->write_at(out->ctx, b, len, off);
			pthread_mutex_lock(&f->lock);
			if (ret) {
				w->cb_ret = ret;
				f->stop = true;
			}
			sl->back = (unsigned char *)b;
			__atomic_store_n(&sl->full, 0, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&f->cv);
		}
		pthread_mutex_unlock(&f->lock);
	}
}

/* Is a helper's block waiting?  (f->lock held) */
static bool any_slot_full(const struct fast *f)
{
	for (int i = 1; i < f->nthreads; i++)
		if (f->slot[i].full)
			return true;
	return false;
}

/* Hand the block on: write it (calling thread) or pass it to the calling
 * thread (helper).  Returns 0 or -errno. */
static int worker_flush(struct worker *w)
{
	struct fast *f = w->f;
	size_t isz = f->t->isz;
	int ret = 0;

	if (!w->n)
		return 0;
	if (!w->helper || f->t->out_threads) {
		const struct text_out *out = f->t->out;

		ret = out->write_at(out->ctx, w->buf, w->n * isz, w->first * isz);
		if (ret) {
			w->cb_ret = ret;
			pthread_mutex_lock(&f->lock);
			f->stop = true;
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->lock);
		}
		if (!w->helper)
			serve_helpers(f, w);
	} else {
		struct fast_slot *sl = &f->slot[w->id];

		pthread_mutex_lock(&f->lock);
		while (sl->full && !f->stop)
			slot_wait(f);
		if (f->stop) {
			ret = -ECANCELED;
		} else {
			if (sl->back) {
				w->spare = sl->back;
				sl->back = NULL;
			}
			sl->buf = w->buf;
			sl->len = w->n * isz;
			sl->off = w->first * isz;
			__atomic_store_n(&sl->full, 1, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&f->cv);
			w->buf = w->spare;
			w->spare = NULL;
		}
		pthread_mutex_unlock(&f->lock);
	}
	w->first += w->n;
	w->n = 0;
	return ret;
}

/* Convert the values of chunk c; `native`: the dtype is native float64
 * (8) or float32 (4), else 0 (a constant, so that each caller gets its own
 * copy of the loop).  Returns 0, a converter's error (message in w->err),
 * or a write error (w->cb_ret). */
static inline __attribute__((always_inline))
int convert_chunk_as(struct worker *w, const struct chunk *c, int native)
{
	const struct tp *t = w->f->t;
	const char *p = t->text + c->start, *end = t->text + c->end;
	const struct col *col = &t->cols[0];
	const struct npy_dtype *dt = col->dt;
	size_t isz = t->isz, lineno = c->lineno;
	uint64_t want = w->f->line_values, ntok = 0;
	unsigned char *dst = w->buf, *full = w->buf + w->cap * isz;
	int ret;

	w->first = c->first;
	for (;;) {
		const char *te;

		for (; p < end; p++) {
			int k = ch_class[(unsigned char)*p];

			if (k < CH_WS)
				break;
			if (k == CH_NL) {
				if (ntok && ntok != want)
					goto ragged;
				ntok = 0;
				lineno++;
			}
		}
		if (p >= end)
			break;
		if (!ntok && *p == '#') {	/* comment line */
			te = memchr(p, '\n', (size_t)(end - p));
			p = te ? te : end;
			continue;
		}
		if (dst == full) {
			w->n = w->cap;
			ret = worker_flush(w);
			if (ret)
				return ret;
			dst = w->buf;
			full = w->buf + w->cap * isz;
		}
		if (native == 8) {
			double d;

			te = fast_double(p, end, &d);
			if (te) {
				memcpy(dst, &d, 8);
				goto next;
			}
		} else if (native == 4) {
			float x;

			te = fast_float32(p, end, &x);
			if (te) {
				memcpy(dst, &x, 4);
				goto next;
			}
		}
		for (te = p; te < end && ch_class[(unsigned char)*te] < CH_WS; te++)
			;
		w->t.lineno = lineno;
		ret = col->conv(&w->t, p, (size_t)(te - p), dst, dt);
		if (ret)
			return ret;
next:
		dst += isz;
		ntok++;
		p = te;
	}
	if (ntok && ntok != want)
		goto ragged;
	w->n = (size_t)(dst - w->buf) / isz;
	return worker_flush(w);
ragged:
	w->t.lineno = lineno;
	return text_fail(&w->t, "expected %llu values, found %llu (ragged rows)",
			 (unsigned long long)want, (unsigned long long)ntok);
}

static int convert_chunk(struct worker *w, const struct chunk *c)
{
	const struct npy_dtype *dt = w->f->t->cols[0].dt;

	if (dt->kind == NPY_FLOAT && dt->itemsize == 8 && !dt->swapped)
		return convert_chunk_as(w, c, 8);
	if (dt->kind == NPY_FLOAT && dt->itemsize == 4 && !dt->swapped)
		return convert_chunk_as(w, c, 4);
	return convert_chunk_as(w, c, 0);
}

/* ---- both passes ---- */

/* Take chunks and work on them until there are none left. */
static void run_pass(struct worker *w)
{
	struct fast *f = w->f;

	for (;;) {
		size_t i;
		int ret;

		pthread_mutex_lock(&f->lock);
		i = f->next;
		if (f->stop || i >= f->nch || i > f->fail)
			i = f->nch;
		else
			f->next++;
		pthread_mutex_unlock(&f->lock);
		if (i == f->nch)
			break;
		if (f->pass == 1) {
			if (!count_chunk(f->t, &f->ch[i])) {
				pthread_mutex_lock(&f->lock);
				f->quoted = f->stop = true;
				pthread_mutex_unlock(&f->lock);
				break;
			}
			continue;
		}
		ret = convert_chunk(w, &f->ch[i]);
		if (w->cb_ret || ret == -ECANCELED)
			break;
		if (ret) {
			w->ret = ret;
			w->err_chunk = i;
			w->n = 0;
			pthread_mutex_lock(&f->lock);
			if (i < f->fail)
				f->fail = i;
			pthread_mutex_unlock(&f->lock);
			break;
		}
	}
	if (w->helper) {
		pthread_mutex_lock(&f->lock);
		f->helpers_running--;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->lock);
	} else if (f->pass == 2) {
		/* the helpers' last blocks */
		pthread_mutex_lock(&f->lock);
		while (f->helpers_running || any_slot_full(f)) {
			if (any_slot_full(f)) {
				pthread_mutex_unlock(&f->lock);
				serve_helpers(f, w);
				pthread_mutex_lock(&f->lock);
			} else {
				slot_wait(f);
			}
		}
		pthread_mutex_unlock(&f->lock);
	}
}

static void *helper_main(void *arg)
{
	run_pass(arg);
	return NULL;
}

/* Threads for a pass over f's chunks: text_parse_threads, or the online
 * CPUs; at most FAST_MAX_THREADS and the number of chunks. */
static int pass_threads(const struct fast *f)
{
	int n = text_parse_threads;

	if (n <= 0) {
		static int cpus;	/* benign race: every thread finds the same */
		int c = __atomic_load_n(&cpus, __ATOMIC_RELAXED);

		if (!c) {
			long k = sysconf(_SC_NPROCESSORS_ONLN);

			c = k < 1 ? 1 : k > FAST_MAX_THREADS ? FAST_MAX_THREADS : (int)k;
			__atomic_store_n(&cpus, c, __ATOMIC_RELAXED);
		}
		n = c;
	}
	if (n > FAST_MAX_THREADS)
		n = FAST_MAX_THREADS;
	if ((size_t)n > f->nch)
		n = f->nch ? (int)f->nch : 1;
	return n;
}

/* Run f->pass over all chunks with the workers (w[0]: the calling thread;
 * w[1..]: helpers, as many as can start). */
static void run_all(struct fast *f, struct worker *w)
{
	pthread_t th[FAST_MAX_THREADS];
	int n = f->nthreads, started = 1;

	f->next = 0;
	f->stop = false;
	f->helpers_running = n - 1;
	for (int i = 1; i < n; i++) {
		if (pthread_create(&th[i], NULL, helper_main, &w[i]))
			break;
		started++;
	}
	if (started < n) {
		pthread_mutex_lock(&f->lock);
		f->helpers_running -= n - started;
		pthread_mutex_unlock(&f->lock);
	}
	run_pass(&w[0]);
	for (int i = 1; i < started; i++)
		pthread_join(th[i], NULL);
}

static void worker_init(struct worker *w, struct fast *f, int id)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
	w->t = *f->t;
	w->t.err = &w->err;
	w->id = id;
	w->helper = id > 0;
}

/* Cut the body into chunks at line starts. */
static int make_chunks(struct fast *f)
{
	const struct tp *t = f->t;
	size_t pos = t->body, len = t->len;
	size_t step = text_parse_chunk_bytes ? text_parse_chunk_bytes : 1;

	f->ch = calloc((len - pos) / step + 1, sizeof(*f->ch));
	if (!f->ch)
		return -ENOMEM;
	while (pos < len) {
		struct chunk *c = &f->ch[f->nch++];
		const char *nl = NULL;

		c->start = pos;
		if (len - pos > step)
			nl = memchr(t->text + pos + step - 1, '\n', len - pos - step + 1);
		pos = nl ? (size_t)(nl - t->text) + 1 : len;
		c->end = pos;
	}
	return 0;
}

/* Pass 1: *count values and *ok, or !*ok if the body is not for the fast
 * path (quotes, no values).  Fills in the chunks' first value and line. */
void text_fast_count(struct fast *f, bool *ok, uint64_t *count)
{
	struct tp *t = f->t;
	struct worker w[FAST_MAX_THREADS];
	uint64_t n = 0;
	size_t line = t->body_lineno;

	*ok = false;
	if (make_chunks(f))
		return;		/* no memory: the general path */
	f->pass = 1;
	f->fail = f->nch;
	f->nthreads = pass_threads(f);
	for (int i = 0; i < f->nthreads; i++)
		worker_init(&w[i], f, i);
	run_all(f, w);
	if (f->quoted)
		return;
	for (size_t i = 0; i < f->nch; i++) {
		f->ch[i].first = n;
		f->ch[i].lineno = line;
		n += f->ch[i].values;
		line += f->ch[i].newlines;
	}
	*count = n;
	if (!n)
		return;
	/* tokens of the first data line */
	for (const char *p = t->text + t->body, *end = t->text + t->len; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));

		if (!e)
			e = end;
		if (text_line_kind(p, e) == L_DATA) {
			struct chunk c;

			count_plain(p, e, &c);
			f->line_values = c.values;
			break;
		}
		p = e < end ? e + 1 : end;
	}
	*ok = true;
}

/* Pass 2.  Returns 0 or the error of the general path's text_convert(). */
int text_fast_convert(struct fast *f)
{
	struct tp *t = f->t;
	struct worker w[FAST_MAX_THREADS];
	size_t cap = FAST_BLOCK / t->isz ? FAST_BLOCK / t->isz : 1;
	int ret = 0, n;

	f->pass = 2;
	f->fail = f->nch;
	n = f->nthreads = pass_threads(f);
	for (int i = 0; i < n; i++) {
		worker_init(&w[i], f, i);
		w[i].cap = cap;
		w[i].buf = malloc(cap * t->isz);
		if (!w[i].buf)
			ret = -ENOMEM;
		if (i && !t->out_threads) {
			w[i].spare = malloc(cap * t->isz);
			if (!w[i].spare)
				ret = -ENOMEM;
		}
	}
	if (!ret) {
		run_all(f, w);
		for (int i = 0; i < n && !ret; i++)
			ret = w[i].cb_ret;	/* a write failed */
		if (!ret) {
			struct worker *e = NULL;

			for (int i = 0; i < n; i++)
				if (w[i].ret && (!e || w[i].err_chunk < e->err_chunk))
					e = &w[i];
			if (e) {
				ret = e->ret;
				if (t->err)
					*t->err = e->err;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		free(w[i].buf);
		free(w[i].spare);
		free(f->slot[i].back);
		f->slot[i].back = NULL;
	}
	return ret;
}
