/* csv_parse.c - read a CSV view back into an array (include/csv.h):
 * fields by RFC 4180, values by the text view's converters
 * (parse_scalar.c), output and Fortran order by parse.c's.
 *
 * Invariant: csv_parse(csv_format(a), base = a) == a, byte for byte (the
 * exceptions of format.c).
 *
 * Two passes: the first checks the fields (quotes, the number per record,
 * the header row of a structured array), counts the records and marks
 * where blocks of them start; the second converts.  A text without quotes
 * is checked by counting newlines and commas eight bytes at a time (64
 * with AVX2 for one field a line; big ones on two threads); C-order output
 * is converted block by block on two threads (each writes its own blocks
 * when the output takes writes from any thread), plain float64 through
 * fast_double().  Whatever the path, the
 * result and the first error are the same (the unit tests and the fuzzer
 * compare one thread with two).  Errors name the 1-based line where the
 * field starts and, where there is one, its 1-based column.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"
#include "fast_double.h"
#include "parse_internal.h"

/* Test hooks (text_internal.h): bytes of output per block of pass 2; the
 * smallest body whose pass 1 runs on two threads. */
size_t text_csv_block_bytes = 1u << 20;
size_t text_csv_split_bytes = 4u << 20;

/* One field as it stands in the text. */
struct field {
	const char *s;		/* its bytes, quotes included */
	size_t n;
	bool quoted;		/* "..." */
	bool dquote;		/* quoted, with a "" inside */
	bool last;		/* its record ends after it */
};

struct csv {
	struct tp t;		/* text, err, lineno/colno for messages, output */
	const char *p, *end;	/* the scan */
	size_t line;		/* line of p */
	size_t nfields;		/* fields per record */
	bool f64;		/* plain native float64: fast_double() first */
	char **names;		/* structured: the header row expected */
	size_t nnames;
	/* pass 1: where every block of rb records starts (for pass 2 on two
	 * threads) */
	uint64_t rb;
	struct mark { size_t off, line; uint64_t rec; } *marks;
	size_t nmarks, marks_cap;
	uint64_t next_mark;	/* the record the next block starts at */
	struct buf scratch;	/* a field with "" inside, unescaped */
};

/* At a record's start: skip empty lines.  False at the end of the text. */
static bool record_start(struct csv *c)
{
	while (c->p < c->end) {
		if (*c->p == '\n') {
			c->p++;
		} else if (*c->p == '\r' && c->p + 1 < c->end &&
			   c->p[1] == '\n') {
			c->p += 2;
		} else {
			return true;
		}
		c->line++;
	}
	return false;
}

/* The first ',' or '\n' from p on, or e: eight bytes at a time (the
 * lowest byte a zero-byte test flags is exact). */
static inline const char *find_sep(const char *p, const char *e)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (e - p >= 8) {
		uint64_t v, a, b, z;

		memcpy(&v, p, 8);
		a = v ^ (ones * ',');
		b = v ^ (ones * '\n');
		z = (((a - ones) & ~a) | ((b - ones) & ~b)) & highs;
		if (z)
			return p + (__builtin_ctzll(z) >> 3);
		p += 8;
	}
	while (p < e && *p != ',' && *p != '\n')
		p++;
	return p;
}

static int fail_at(struct csv *c, size_t line, size_t col, const char *why)
{
	c->t.lineno = line;
	c->t.colno = col;
	return text_fail(&c->t, "%s", why);
}

/* The field at c->p, column col of its record, into *f; c->p moves past
 * its separator.  0 or -EINVAL naming line and column. */
static int next_field(struct csv *c, size_t col, struct field *f)
{
	const char *p = c->p, *e = c->end;
	size_t line0 = c->line;

	f->quoted = f->dquote = false;
	f->s = p;
	if (p < e && *p == '"') {
		const char *q = p + 1;

		for (;;) {
			const char *x = memchr(q, '"', (size_t)(e - q));

			if (!x)
				return fail_at(c, line0, col, "unterminated quoted field");
			for (const char *y = q;
			     (y = memchr(y, '\n', (size_t)(x - y))); y++)
				c->line++;
			if (x + 1 < e && x[1] == '"') {
				f->dquote = true;
				q = x + 2;
				continue;
			}
			q = x + 1;
			break;
		}
		f->quoted = true;
		f->n = (size_t)(q - p);
		p = q;
		if (p + 1 < e && p[0] == '\r' && p[1] == '\n')
			p++;
		if (p < e && *p != ',' && *p != '\n')
			return fail_at(c, c->line, col, "text after a closing quote (a quote inside a quoted field is written \"\")");
	} else {
		p = find_sep(p, e);
		f->n = (size_t)(p - f->s);
		if (p < e && *p == '\n' && f->n && p[-1] == '\r')
			f->n--;
	}
	f->last = p >= e || *p == '\n';
	if (p < e) {
		if (*p == '\n')
			c->line++;
		p++;
	}
	c->p = p;
	return 0;
}

/* A field's value: quotes removed, "" made ", and with `trim` spaces and
 * tabs around it dropped.  0 or -ENOMEM. */
static int field_value(struct csv *c, const struct field *f, bool trim,
		       const char **s, size_t *n)
{
	const char *p = f->s, *e = f->s + f->n;

	if (f->quoted) {
		p++;
		e--;
	}
	if (f->dquote) {
		buf_reset(&c->scratch);
		for (; p < e; p++) {
			if (*p == '"')
				p++;
			if (buf_addch(&c->scratch, *p))
				return -ENOMEM;
		}
		p = c->scratch.data;
		e = p + c->scratch.len;
	}
	while (trim && p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (trim && e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*s = p;
	*n = (size_t)(e - p);
	return 0;
}

/* conv_fn of U and S columns: the raw characters (U: strict UTF-8). */
static int conv_raw_str(struct tp *t, const char *s, size_t n,
			unsigned char *dst, const struct npy_dtype *dt)
{
	size_t units = 0, cap;

	if (dt->kind == NPY_BYTES) {
		if (n > dt->itemsize)
			return text_fail_tok(t, s, n, dt, "too long for");
		memcpy(dst, s, n);
		memset(dst + n, 0, dt->itemsize - n);
		return 0;
	}
	cap = dt->itemsize / 4;
	for (size_t i = 0; i < n; units++) {
		uint32_t cp;
		size_t k = npy_utf8_get((const unsigned char *)s + i, n - i, &cp);

		if (!k)
			return text_fail_tok(t, s, n, dt, "is not valid UTF-8 for");
		if (units == cap)
			return text_fail_tok(t, s, n, dt, "too long for");
		text_st32(dst + 4 * units, cp, dt->swapped);
		i += k;
	}
	memset(dst + 4 * units, 0, dt->itemsize - 4 * units);
	return 0;
}

/* Collect the header row's expected names. */
static int add_name(void *ctx, const char *name, size_t len)
{
	struct csv *c = ctx;
	char *s;

	if (c->nfields == c->nnames)
		return -EINVAL;
	s = strndup(name, len);
	if (!s)
		return -ENOMEM;
	c->names[c->nfields++] = s;
	return 0;
}

/* The header row of a structured array: base's column names, in order. */
static int check_names(struct csv *c)
{
	size_t line = c->line;
	struct field f = { .last = false };
	int ret;

	for (size_t k = 0; !f.last; k++) {
		const char *s;
		size_t n;
		char q[TOK_MSG + 4], msg[2 * TOK_MSG + 96];

		ret = next_field(c, k + 1, &f);
		if (!ret && k >= c->nfields)
			return fail_at(c, line, k + 1, "more fields in the header row than the array has columns");
		if (!ret)
			ret = field_value(c, &f, false, &s, &n);
		if (ret)
			return ret;
		if (n != strlen(c->names[k]) || memcmp(s, c->names[k], n)) {
			snprintf(msg, sizeof(msg), "header '%s' is not the column name '%.*s' (the first row names the columns)",
				 text_quote_tok(s, n, q), TOK_MSG, c->names[k]);
			return fail_at(c, line, k + 1, msg);
		}
		if (f.last && k + 1 < c->nfields)
			return fail_at(c, line, 0, "fewer fields in the header row than the array has columns");
	}
	return 0;
}

/* Remember where record rec, at c->p, starts: a block begins there. */
static int add_mark(struct csv *c, uint64_t rec)
{
	if (c->nmarks == c->marks_cap) {
		size_t cap = c->marks_cap ? 2 * c->marks_cap : 64;
		struct mark *m = realloc(c->marks, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		c->marks = m;
		c->marks_cap = cap;
	}
	c->marks[c->nmarks++] = (struct mark){ (size_t)(c->p - c->t.text),
					       c->line, rec };
	c->next_mark = rec + c->rb;
	return 0;
}

/* The bytes of v equal to c, as their top bits (exact: no borrow). */
static inline uint64_t bytes_eq(uint64_t v, unsigned char c)
{
	const uint64_t lows = 0x7f7f7f7f7f7f7f7full;
	uint64_t x = v ^ (0x0101010101010101ull * c);

	return ~(((x & lows) + lows) | x | lows);
}

/* How many bytes bytes_eq() flagged in m. */
static inline size_t count_flags(uint64_t m)
{
	return (size_t)(((m >> 7) * 0x0101010101010101ull) >> 56);
}

/* A line [ls, le) of scan_plain with `commas` commas (nl: a newline ends
 * it): 0, 1 (another number of fields) or -ENOMEM. */
static int plain_line(struct csv *c, const char *ls, const char *le,
		      size_t commas, bool nl, uint64_t *rows)
{
	int ret = 0;

	if (le == ls || (nl && le == ls + 1 && *ls == '\r')) {
		/* an empty line */
	} else if (commas + 1 != c->nfields) {
		return 1;
	} else {
		if (*rows == c->next_mark) {	/* (no division a line) */
			c->p = ls;
			ret = add_mark(c, *rows);
		}
		(*rows)++;
	}
	c->line += nl;
	return ret;
}


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CSV_AVX2 1
/* scan_plain()'s one-field-a-line step for 64 bytes at once: true when it
 * took them (no quote, comma or CR in them, a newline, no block starting
 * in them), with *rows, c->line and *ls moved on as eight of its 8-byte
 * steps would; else false and nothing moved. */
__attribute__((target("avx2,popcnt")))
static bool lines64_avx2(struct csv *c, const char *p, const char **ls,
			 uint64_t *rows)
{
	const __m256i lf = _mm256_set1_epi8('\n'), dq = _mm256_set1_epi8('"');
	const __m256i cm = _mm256_set1_epi8(','), cr = _mm256_set1_epi8('\r');
	uint64_t nl = 0, bad = 0;
	const char *first;
	unsigned n;

	for (int i = 0; i < 2; i++) {
		__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * i));
		__m256i b = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x, dq),
							    _mm256_cmpeq_epi8(x, cm)),
					    _mm256_cmpeq_epi8(x, cr));

		nl |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, lf))
		      << (32 * i);
		bad |= (uint64_t)(uint32_t)_mm256_movemask_epi8(b) << (32 * i);
	}
	if (bad || !nl || *rows + 64 >= c->next_mark)
		return false;
	first = p + __builtin_ctzll(nl);
	if (first == p && first != *ls && first[-1] == '\r')
		return false;	/* the line before ends in CR LF */
	n = (unsigned)__builtin_popcountll(nl);
	/* a newline right after another, or at the line's start: empty */
	*rows += n - (unsigned)__builtin_popcountll(nl & (nl << 1)) -
		 (first == *ls);
	c->line += n;
	*ls = p + (63 - __builtin_clzll(nl)) + 1;
	return true;
}
#endif

/* Two threads for the passes (text_parse_threads: 0, when there are two
 * CPUs). */
static bool two_threads(void)
{
	return text_parse_threads == 0 ? sysconf(_SC_NPROCESSORS_ONLN) > 1
				       : text_parse_threads > 1;
}

/* Pass 1 over a text without quotes (no field holds a newline or a
 * comma): the records are the non-empty lines, each with nfields - 1
 * commas; newlines and commas are found eight bytes at a time.  Returns
 * 0, -ENOMEM, or 1 when a line has another number of fields or there is a
 * quote after all (the general scan then does the work, and says what is
 * wrong). */
static int scan_plain(struct csv *c, uint64_t *rows)
{
	const char *p = c->p, *e = c->end, *ls = p;
	size_t commas = 0;
	int ret;
#ifdef CSV_AVX2
	bool wide = c->nfields == 1 && text_simd_avx2();
	const char *retry = p;	/* where a 64-byte step is tried again */
#endif

	for (; e - p >= 8; p += 8) {
		const char *first;
		uint64_t v, nl, cm;

#ifdef CSV_AVX2
		if (wide && p >= retry && e - p >= 64) {
			if (lines64_avx2(c, p, &ls, rows)) {
				p += 56;
				continue;
			}
			retry = p + 64;
		}
#endif
		memcpy(&v, p, 8);
		if (bytes_eq(v, '"'))
			return 1;	/* a quote after all */
		nl = bytes_eq(v, '\n');
		cm = bytes_eq(v, ',');
		if (c->nfields == 1 && cm)
			return 1;
		first = nl ? p + (__builtin_ctzll(nl) >> 3) : NULL;
		if (c->nfields == 1 && nl && *rows + 8 < c->next_mark &&
		    !bytes_eq(v, '\r') && (first == ls || first[-1] != '\r')) {
			/* one field a line, LF only, no block starts here:
			 * the word's lines at once; an empty one is a newline
			 * right after its line's start */
			size_t n = count_flags(nl);

			*rows += n - count_flags(nl & (nl << 8)) - (first == ls);
			c->line += n;
			ls = p + ((63 - __builtin_clzll(nl)) >> 3) + 1;
			continue;
		}
		for (; nl; nl &= nl - 1) {
			uint64_t below = (nl & (0 - nl)) - 1;
			const char *le = p + (__builtin_ctzll(nl) >> 3);

			commas += count_flags(cm & below);
			cm &= ~below;
			ret = plain_line(c, ls, le, commas, true, rows);
			if (ret)
				return ret;
			ls = le + 1;
			commas = 0;
		}
		commas += count_flags(cm);
	}
	for (; p < e; p++) {
		if (*p == '"') {
			return 1;
		} else if (*p == ',') {
			commas++;
		} else if (*p == '\n') {
			ret = plain_line(c, ls, p, commas, true, rows);
			if (ret)
				return ret;
			ls = p + 1;
			commas = 0;
		}
	}
	return plain_line(c, ls, e, commas, false, rows);
}

/* scan_plain of the second half of the body on a helper thread. */
struct half {
	struct csv w;		/* its scan: marks and lines its own */
	uint64_t rows;
	int ret;
};

static void *half_main(void *arg)
{
	struct half *h = arg;

	h->ret = scan_plain(&h->w, &h->rows);
	return NULL;
}

/* scan_plain on two threads for a big body: the second half (from a line
 * start) on a helper, its marks then moved after the first half's (record
 * numbers and lines counted on).  Same results. */
static int scan_plain2(struct csv *c, uint64_t *rows)
{
	const char *mid = c->p + (size_t)(c->end - c->p) / 2;
	struct half h = { .w = *c };
	pthread_t helper;
	size_t n;
	int ret;

	mid = memchr(mid, '\n', (size_t)(c->end - mid));
	if (!mid || ++mid == c->end)
		return scan_plain(c, rows);
	h.w.p = mid;
	h.w.line = 0;
	h.w.marks = NULL;
	h.w.nmarks = h.w.marks_cap = 0;
	h.w.next_mark = 0;
	if (pthread_create(&helper, NULL, half_main, &h))
		return scan_plain(c, rows);
	c->end = mid;
	ret = scan_plain(c, rows);
	c->end = h.w.end;
	pthread_join(helper, NULL);
	if (!ret)
		ret = h.ret;
	n = h.w.nmarks;
	if (!ret && c->nmarks + n > c->marks_cap) {
		struct mark *m = realloc(c->marks, (c->nmarks + n) * sizeof(*m));

		if (m) {
			c->marks = m;
			c->marks_cap = c->nmarks + n;
		} else {
			ret = -ENOMEM;
		}
	}
	for (size_t i = 0; !ret && i < n; i++) {
		struct mark m = h.w.marks[i];

		m.rec += *rows;
		m.line += c->line;
		c->marks[c->nmarks++] = m;
	}
	*rows += h.rows;
	c->line += h.w.line;
	free(h.w.marks);
	return ret;
}

/* Pass 1: check every record's fields; count the records. */
static int scan_layout(struct csv *c, uint64_t *rows)
{
	struct field f;
	const char *body;
	size_t body_line;
	int ret;

	c->p = c->t.text;
	c->line = 1;
	*rows = 0;
	c->next_mark = 0;
	if (c->names && record_start(c)) {
		ret = check_names(c);
		if (ret)
			return ret;
	}
	body = c->p;
	body_line = c->line;
	ret = (size_t)(c->end - body) >= text_csv_split_bytes && two_threads() ?
	      scan_plain2(c, rows) : scan_plain(c, rows);
	if (ret <= 0)
		return ret;
	c->p = body;	/* a quote or a ragged row: the general scan */
	c->line = body_line;
	c->nmarks = 0;
	c->next_mark = 0;
	*rows = 0;
	while (record_start(c)) {
		size_t line = c->line, k = 0;
		char msg[96];

		if (*rows == c->next_mark) {
			ret = add_mark(c, *rows);
			if (ret)
				return ret;
		}

		do {
			ret = next_field(c, k + 1, &f);
			if (ret)
				return ret;
			if (++k > c->nfields) {
				snprintf(msg, sizeof(msg), "more than %zu fields (every row has %zu)",
					 c->nfields, c->nfields);
				return fail_at(c, line, k, msg);
			}
		} while (!f.last);
		if (k < c->nfields) {
			snprintf(msg, sizeof(msg), "%zu field%s, expected %zu (every row has %zu)",
				 k, k == 1 ? "" : "s", c->nfields, c->nfields);
			return fail_at(c, line, 0, msg);
		}
		(*rows)++;
	}
	return 0;
}

/* A plain float64 field at c->p that fast_double() takes whole (no quote,
 * no space): stored at elem, c->p moved past it.  False: nothing done
 * (the general path decides, with the same value or a message). */
static inline bool fast_f64(struct csv *c, unsigned char *elem,
			    struct field *f)
{
	const char *p = c->p, *e = c->end, *fe, *te;
	double d;

	if (c->nfields == 1) {
		/* one field a line: fast_double() finds its end itself */
		te = fast_double(p, e, &d);
		if (!te || te == p)
			return false;
		fe = te < e && *te == '\r' && te + 1 < e ? te + 1 : te;
		if (fe < e && *fe != '\n')
			return false;
	} else {
		fe = find_sep(p, e);
		te = fe < e && *fe == '\n' && fe > p && fe[-1] == '\r' ? fe - 1
									: fe;
		if (te == p || fast_double(p, te, &d) != te)
			return false;
	}
	memcpy(elem, &d, 8);
	f->last = fe >= e || *fe == '\n';
	if (fe < e) {
		c->line += *fe == '\n';
		fe++;
	}
	c->p = fe;
	return true;
}

/* The field at c->p, column k (0-based) of its record, into elem (the
 * element, or the record for a structured array); *f says if it ended the
 * record.  The general path: out of line, convert_one() tries first. */
static __attribute__((noinline))
int convert_field(struct csv *c, size_t k, unsigned char *elem,
		  struct field *f)
{
	struct tp *t = &c->t;
	const struct col *col = &t->cols[t->record ? k : 0];
	size_t line = c->line, n;
	const char *s;
	int ret = next_field(c, k + 1, f);

	if (!ret)
		ret = field_value(c, f, col->conv != conv_raw_str, &s, &n);
	if (ret)
		return ret;
	t->lineno = line;
	t->colno = k + 1;
	return col->conv(t, s, n, elem + col->offset, col->dt);
}

/* convert_field(), a plain float64 first taken by fast_f64() inline. */
static inline int convert_one(struct csv *c, size_t k, unsigned char *elem,
			      struct field *f)
{
	if (c->f64 && fast_f64(c, elem, f))
		return 0;
	return convert_field(c, k, elem, f);
}

/* Skip the header row of a structured array (checked in pass 1). */
static void skip_names(struct csv *c)
{
	struct field f = { .last = false };

	c->p = c->t.text;
	c->line = 1;
	if (c->names && record_start(c))
		while (!f.last && !next_field(c, 1, &f))
			;
}

/* Pass 2 on one thread: convert every field into the output through
 * parse.c's buffer (C order in blocks, Fortran order in bands). */
static int convert(struct csv *c)
{
	struct tp *t = &c->t;
	unsigned char *elem = NULL;
	struct field f;
	int ret;

	skip_names(c);
	while (record_start(c)) {
		f.last = false;
		for (size_t k = 0; !f.last; k++) {
			if (!t->record || !k) {
				ret = text_out_next(t, &elem);
				if (ret)
					return ret;
			}
			ret = convert_one(c, k, elem, &f);
			if (ret)
				return ret;
			if (!t->record)
				t->n++;
		}
		if (t->record)
			t->n++;
	}
	return text_out_flush(t);
}

/* ---- pass 2 on two threads (C order) -------------------------------------
 * Blocks of rb records start where pass 1 marked them: each is converted on
 * its own into a buffer, by the calling thread or a helper, and written by
 * the calling thread (callbacks stay on it).  The error reported is the
 * first in the text: that of the lowest block that failed (every block
 * below a failed one is taken, and finished, before anyone stops). */

struct par {
	struct csv *c;
	uint64_t rows;
	size_t esz;		/* bytes per record */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	size_t next;		/* the next block to take */
	size_t fail;		/* the lowest failed block; nmarks if none */
	int fail_ret;
	struct npz_err fail_err;
	bool stop;
	/* the helper's converted block, for the caller to write */
	unsigned char *slot;
	size_t slot_block;
	bool slot_full, helper_done;
	bool slot_busy;		/* the caller is writing the slot's block */
};

static bool take_block(struct par *P, size_t *b)
{
	bool ok;

	pthread_mutex_lock(&P->lock);
	ok = !P->stop && P->next < P->c->nmarks;
	if (ok)
		*b = P->next++;
	pthread_mutex_unlock(&P->lock);
	return ok;
}

static void block_failed(struct par *P, size_t b, int ret,
			 const struct npz_err *err)
{
	pthread_mutex_lock(&P->lock);
	if (b < P->fail) {
		P->fail = b;
		P->fail_ret = ret;
		P->fail_err = *err;
	}
	P->stop = true;
	pthread_cond_broadcast(&P->cv);
	pthread_mutex_unlock(&P->lock);
}

/* Records in block b (at most rb). */
static uint64_t records_of(const struct par *P, size_t b)
{
	const struct csv *c = P->c;

	return (b + 1 < c->nmarks ? c->marks[b + 1].rec : P->rows) -
	       c->marks[b].rec;
}

/* Convert block b into buf, with w: a copy of the parser for this
 * thread. */
static int convert_block(struct par *P, struct csv *w, size_t b,
			 unsigned char *buf)
{
	uint64_t n = records_of(P, b);
	struct tp *t = &w->t;
	int ret = 0;

	w->p = t->text + w->marks[b].off;
	w->line = w->marks[b].line;
	for (uint64_t i = 0; i < n && !ret; i++) {
		unsigned char *rec = buf + i * P->esz;
		struct field f = { .last = false };

		record_start(w);
		if (t->record)
			memset(rec, 0, t->isz);
		for (size_t k = 0; !f.last && !ret; k++)
			ret = convert_one(w, k, t->record ? rec : rec + k * t->isz,
					  &f);
	}
	return ret;
}

/* A thread's copy of the parser: its own message and scratch. */
static void worker_init(struct csv *w, const struct csv *c,
			struct npz_err *err)
{
	*w = *c;
	w->t.err = err;
	buf_init(&w->scratch);
}

static int write_block(struct par *P, size_t b, const unsigned char *buf);

static void *helper_main(void *arg)
{
	struct par *P = arg;
	struct npz_err err = { "" };
	unsigned char *bufs[2];
	struct csv w;
	int cur = 0;
	size_t b;

	worker_init(&w, P->c, &err);
	bufs[0] = malloc(P->c->rb * P->esz);
	bufs[1] = malloc(P->c->rb * P->esz);
	while (bufs[0] && bufs[1] && take_block(P, &b)) {
		int ret = convert_block(P, &w, b, bufs[cur]);

		if (!ret && P->c->t.out_threads) {	/* its own writes */
			ret = write_block(P, b, bufs[cur]);
			if (!ret)
				continue;
			err.msg[0] = '\0';
		}
		if (ret) {
			block_failed(P, b, ret, &err);
			break;
		}
		pthread_mutex_lock(&P->lock);
		while (P->slot_full && !P->stop)
			pthread_cond_wait(&P->cv, &P->lock);
		if (!P->stop) {
			P->slot = bufs[cur];
			P->slot_block = b;
			P->slot_full = true;
			pthread_cond_broadcast(&P->cv);
		}
		pthread_mutex_unlock(&P->lock);
		cur ^= 1;
	}
	if (!bufs[0] || !bufs[1])
		block_failed(P, 0, -ENOMEM, &err);
	pthread_mutex_lock(&P->lock);
	P->helper_done = true;
	pthread_cond_broadcast(&P->cv);
	/* the caller writes it; a block failed meanwhile (stop) ends that,
	 * but not a write already under way: its buffer is ours */
	while (P->slot_busy || (P->slot_full && !P->stop))
		pthread_cond_wait(&P->cv, &P->lock);
	pthread_mutex_unlock(&P->lock);
	free(bufs[0]);
	free(bufs[1]);
	buf_release(&w.scratch);
	return NULL;
}

static int write_block(struct par *P, size_t b, const unsigned char *buf)
{
	const struct text_out *out = P->c->t.out;

	return out->write_at(out->ctx, buf, records_of(P, b) * P->esz,
			     P->c->marks[b].rec * P->esz);
}

/* The caller: write the helper's block if one waits (wait: until one
 * does, or the helper is done).  Returns false when there is nothing more
 * to write. */
static bool write_slot(struct par *P, bool wait)
{
	unsigned char *buf;
	size_t b;
	int ret;

	pthread_mutex_lock(&P->lock);
	while (wait && !P->slot_full && !P->helper_done)
		pthread_cond_wait(&P->cv, &P->lock);
	if (!P->slot_full || P->stop) {
		pthread_mutex_unlock(&P->lock);
		return false;
	}
	buf = P->slot;
	b = P->slot_block;
	P->slot_busy = true;
	pthread_mutex_unlock(&P->lock);
	ret = write_block(P, b, buf);
	if (ret) {
		struct npz_err none = { "" };

		block_failed(P, b, ret, &none);
	}
	pthread_mutex_lock(&P->lock);
	P->slot_full = P->slot_busy = false;
	pthread_cond_broadcast(&P->cv);
	pthread_mutex_unlock(&P->lock);
	return !ret;
}

static int convert_parallel(struct csv *c, uint64_t rows)
{
	struct par P = { .c = c, .rows = rows, .fail = c->nmarks,
			 .lock = PTHREAD_MUTEX_INITIALIZER,
			 .cv = PTHREAD_COND_INITIALIZER };
	struct npz_err err = { "" };
	unsigned char *buf;
	pthread_t helper;
	bool helped;
	struct csv w;
	size_t b;

	P.esz = c->t.isz * (c->t.record ? 1 : c->nfields);
	buf = malloc(c->rb * P.esz);
	if (!buf)
		return -ENOMEM;
	worker_init(&w, c, &err);
	helped = !pthread_create(&helper, NULL, helper_main, &P);
	if (!helped)
		P.helper_done = true;	/* alone, then */
	while (take_block(&P, &b)) {
		int ret = convert_block(&P, &w, b, buf);

		if (!ret)
			ret = write_block(&P, b, buf);
		if (ret) {
			block_failed(&P, b, ret, &err);
			break;
		}
		write_slot(&P, false);
	}
	while (write_slot(&P, true))
		;
	if (helped)
		pthread_join(helper, NULL);
	free(buf);
	buf_release(&w.scratch);
	if (P.fail < c->nmarks && c->t.err)
		*c->t.err = P.fail_err;
	return P.fail < c->nmarks ? P.fail_ret : 0;
}

/* The columns of dt, strings read raw. */
static int setup_cols(struct csv *c, const struct npy_dtype *dt)
{
	int ret;

	free(c->t.cols);
	c->t.cols = NULL;
	ret = text_setup_cols(&c->t, dt);
	for (size_t i = 0; !ret && i < c->t.ncols; i++)
		if (c->t.cols[i].dt->kind == NPY_STR ||
		    c->t.cols[i].dt->kind == NPY_BYTES)
			c->t.cols[i].conv = conv_raw_str;
	return ret;
}

/* Records of esz bytes per block of pass 2: at least one. */
static uint64_t block_records(size_t esz)
{
	return esz && text_csv_block_bytes / esz ? text_csv_block_bytes / esz : 1;
}

/* Columns, header names and fields per record from base. */
static int setup(struct csv *c, const struct npy_header *base)
{
	const struct npy_dtype *dt = &base->dtype;
	int ret = setup_cols(c, dt);

	if (ret)
		return ret;
	if (!c->t.record) {
		c->f64 = dt->kind == NPY_FLOAT && dt->itemsize == 8 &&
			 !dt->swapped;
		c->nfields = base->ndim == 2 ? (size_t)base->shape[1] : 1;
		c->rb = block_records(c->t.isz * c->nfields);
		return 0;
	}
	c->rb = block_records(c->t.isz);
	c->names = calloc(c->t.ncols, sizeof(*c->names));
	if (!c->names)
		return -ENOMEM;
	c->nnames = c->t.ncols;
	return text_column_names(dt, add_name, c);
}

int csv_parse(const char *text, size_t len, const struct npy_header *base,
	      struct npy_header *hdr, const struct text_out *out,
	      struct npz_err *err)
{
	struct csv c = { .t = { .text = len ? text : "", .len = len,
				.err = err, .out = out } };
	uint64_t shape[2], rows;
	bool par;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	c.end = c.t.text + len;
	buf_init(&c.scratch);
	if (!base) {
		npz_err_set(err, "a CSV file holds no dtype: write a new array as NAME.npy or NAME.txt (the CSV view of an array takes its dtype)");
		return -EINVAL;
	}
	if (!csv_viewable(base)) {
		npz_err_set(err, "the array has no CSV view (only 1-d and 2-d arrays and 1-d structured arrays have one)");
		return -EINVAL;
	}
	ret = setup(&c, base);
	if (!ret)
		ret = scan_layout(&c, &rows);
	if (!ret) {
		shape[0] = rows;
		shape[1] = base->ndim == 2 ? base->shape[1] : 0;
		ret = npy_header_init(hdr, &base->dtype, base->ndim, shape,
				      base->fortran_order);
		if (ret == -EINVAL)
			npz_err_set(err, "array too large");
	}
	if (!ret) {
		/* the columns pointed into base: point them into hdr */
		ret = setup_cols(&c, &hdr->dtype);
	}
	/* two threads for C order, when there is work for both */
	par = !ret && c.nmarks > 1 && c.t.isz &&
	      !(hdr->fortran_order && hdr->ndim >= 2) && two_threads();
	if (!ret && !par) {
		c.t.hdr = hdr;
		ret = text_out_setup(&c.t);
	}
	if (!ret)
		ret = out->begin(out->ctx, hdr);
	if (ret > 0) {		/* write_at may run on any thread */
		c.t.out_threads = true;
		ret = 0;
	}
	if (!ret)
		ret = par ? convert_parallel(&c, rows) : convert(&c);
	for (size_t i = 0; i < c.nnames; i++)
		free(c.names[i]);
	free(c.names);
	free(c.marks);
	free(c.t.cols);
	free(c.t.cbuf);
	free(c.t.fbuf);
	buf_release(&c.scratch);
	if (ret)
		npy_header_release(hdr);
	return ret;
}
