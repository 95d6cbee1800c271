/* parse_internal.h - what the files of the text parser share: the parser
 * state, character classes, token and number scanners, and the passes.
 *
 * Not part of any public interface; see parse.c for how the pieces fit.
 */
#ifndef NPZFS_TEXT_PARSE_INTERNAL_H
#define NPZFS_TEXT_PARSE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text.h"
#include "text_internal.h"

#define TOK_MSG 40		/* quote at most this much of a token */
#define FAST_ITEM_MAX 4096	/* larger elements take the general path */

/* ---- characters ---- */

enum { CH_OTHER, CH_QUOTE, CH_WS, CH_NL };	/* < CH_WS: inside a token */

static const unsigned char ch_class[256] = {
	[' '] = CH_WS, ['\t'] = CH_WS, ['\r'] = CH_WS, ['\v'] = CH_WS,
	['\f'] = CH_WS, ['\n'] = CH_NL, ['"'] = CH_QUOTE,
};

static inline bool is_ws(char c)
{
	return ch_class[(unsigned char)c] == CH_WS;
}

static inline bool is_digit(char c)
{
	return (unsigned)(c - '0') < 10;
}

/* s[0..n) equals the lower-case word, ignoring ASCII case. */
static inline bool eq_nocase(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n && word[i]; i++)
		if ((s[i] | 0x20) != word[i])
			return false;
	return i == n && !word[i];
}

/* ---- parser state ---- */

struct tp;
typedef int (*conv_fn)(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, const struct npy_dtype *dt);

struct col {
	conv_fn conv;
	const struct npy_dtype *dt;
	size_t offset;
};

struct tp {
	const char *text;
	size_t len;
	struct npz_err *err;
	size_t lineno;		/* current line, 1-based */
	size_t colno;		/* CSV: current field, 1-based; 0: none */

	/* layout from the first pass */
	size_t body;		/* offset of the first line after the header */
	size_t body_lineno;
	uint64_t nvalues;	/* tokens in data lines */
	uint64_t nlines;	/* data lines */
	uint64_t nblocks;
	uint64_t block_lines;	/* data lines per block (of the first) */
	size_t ragged_block;	/* first line of a block of another size */
	uint64_t ragged_rows;	/* its number of rows */
	uint64_t line_values;	/* tokens per data line */

	/* conversion */
	const struct npy_dtype *dt;
	size_t isz;
	struct col *cols;	/* one per token of a record, or one */
	size_t ncols;
	bool record;

	/* output */
	const struct text_out *out;
	bool out_threads;	/* begin() said write_at() is thread-safe */
	const struct npy_header *hdr;
	unsigned char *cbuf;	/* C-order elements */
	size_t cap;		/* elements cbuf holds */
	size_t n;		/* elements in cbuf */
	uint64_t done;		/* elements written before cbuf */
	/* Fortran order */
	bool fortran;
	uint64_t rest;		/* elements per first-axis index */
	unsigned char *fbuf;
	unsigned char *ebuf;	/* per-element fallback */
};

/* Line kinds */
enum { L_BLANK, L_COMMENT, L_SEP, L_DATA };

enum { NUM_OK, NUM_BAD, NUM_SPECIAL };

/* A decimal float token split up: sign, up to 19 significant digits,
 * exponent; trunc if nonzero digits were dropped. */
struct decnum {
	bool neg, trunc;
	uint64_t w;
	int exp10;
	double special;		/* nan / inf when NUM_SPECIAL */
};

/* What the first pass infers when there is no dtype. */
enum infer { INF_NONE, INF_BOOL, INF_INT, INF_FLOAT, INF_COMPLEX, INF_STR };

struct inferred {
	enum infer kind;
	size_t maxlen;		/* strings: longest, in characters */
	size_t maxnum;		/* longest number token, in case strings follow */
	bool all_bytes;		/* every string token was b"..." */
};

/* ---- the fast path's state (fast.c), owned by text_parse() ---- */

struct chunk {
	size_t start, end;	/* text offsets; start is a line start */
	uint64_t first;		/* index of its first value */
	uint64_t values;	/* tokens in data lines */
	uint64_t newlines;
	size_t lineno;		/* line number of start */
};

#define FAST_MAX_THREADS 8	/* threads of the fast path, at most */

/* A helper's hand-off: one full block for the calling thread to write. */
struct fast_slot {
	int full;		/* atomic, changed under lock */
	const unsigned char *buf;
	size_t len;
	uint64_t off;
	unsigned char *back;	/* a written block, back to the helper */
};

struct fast {
	struct tp *t;
	struct chunk *ch;
	size_t nch;
	int pass;		/* 1: count, 2: convert */
	uint64_t line_values;	/* tokens of the first data line */
	bool quoted;		/* pass 1 met a quote: not for this path */
	int nthreads;		/* workers of this pass: the caller + helpers */

	pthread_mutex_t lock;
	pthread_cond_t cv;
	size_t next;		/* next chunk to take */
	size_t fail;		/* lowest chunk with an error, nch if none */
	bool stop;		/* give up: quote seen, or a write failed */
	int helpers_running;
	struct fast_slot slot[FAST_MAX_THREADS];	/* [i]: helper i's */
};

/* ---- messages and tokens (token.c) ---- */

/* Set t->err to "line N: MSG"; returns -EINVAL. */
__attribute__((format(printf, 2, 3)))
int text_fail(struct tp *t, const char *fmt, ...);

/* Quote a token for a message: printable ASCII, at most TOK_MSG bytes, into
 * out (TOK_MSG + 4 bytes).  Returns out. */
const char *text_quote_tok(const char *s, size_t n, char *out);

/* "line N: 'TOKEN' WHY DTYPE"; returns -EINVAL. */
int text_fail_tok(struct tp *t, const char *s, size_t n,
		  const struct npy_dtype *dt, const char *why);

/* "line N: bad value 'TOKEN' (expected DTYPE)"; returns -EINVAL. */
int text_fail_bad(struct tp *t, const char *s, size_t n,
		  const struct npy_dtype *dt);

/* End of the token starting at p (not whitespace, not newline), or NULL
 * with a message for an unterminated string or garbage after one. */
const char *text_tok_end(struct tp *t, const char *p, const char *e);

/* The kind (L_BLANK, L_COMMENT, L_SEP, L_DATA) of the line [p, e). */
int text_line_kind(const char *p, const char *e);

/* ---- numbers (decimal.c) ---- */

/* man * 10^exp10 correctly rounded to a double (text_eisel_lemire) or a
 * float (text_eisel_lemire32), subnormals, 0 and infinity included, or
 * false when undecided (the caller falls back to strtod / strtof). */
bool text_eisel_lemire(uint64_t man, int exp10, bool neg, double *out);
bool text_eisel_lemire32(uint64_t man, int exp10, bool neg, float *out);

/* Split a decimal float token; NUM_OK, NUM_BAD or NUM_SPECIAL (nan/inf). */
int text_scan_float(const char *s, size_t n, struct decnum *d);

/* The token as a C string: in small (size bytes) when it fits, else
 * malloc'd (free it if it is not small); NULL when out of memory. */
char *text_tok_cstr(const char *s, size_t n, char *small, size_t size);

/* The nearest double to the decimal token in *out.  Returns NUM_OK,
 * NUM_SPECIAL (nan/inf spelled out) or NUM_BAD. */
int text_to_double(const char *s, size_t n, double *out);

/* The nearest float to the decimal token in *out, correctly rounded from
 * the decimal itself (never through a double); returns as text_to_double(). */
int text_to_float(const char *s, size_t n, float *out);

/* ---- scalar converters (parse_scalar.c, parse_datetime.c) ---- */

/* Decimal integer with optional sign into magnitude + sign.
 * Returns NUM_OK, NUM_BAD, or NUM_SPECIAL for a magnitude >= 2^64. */
int text_scan_int(const char *s, size_t n, bool *neg, uint64_t *mag);

/* Complex "a+bj", "a-bj", "bj", "a" (optionally in parentheses): the
 * length of the real part and the imaginary part; false if malformed. */
bool text_split_complex(const char *s, size_t n, size_t *re_n,
			const char **im, size_t *im_n);

/* Walk the characters of a string token (quotes and escapes resolved),
 * calling put(ctx, value) for each.  bytes: the target is S (\u refused,
 * non-ASCII raw bytes kept as bytes); else U (raw UTF-8 decoded).
 * Returns 0 or -EINVAL with a message, or put's error. */
int text_walk_string(struct tp *t, const char *s, size_t n, bool bytes,
		     int (*put)(void *ctx, uint32_t c), void *ctx);

/* The converter for a scalar dtype, NULL for none (object, record). */
conv_fn text_conv_for(const struct npy_dtype *dt);

/* conv_fn of datetime64 and timedelta64 (parse_datetime.c). */
int text_conv_datetime(struct tp *t, const char *s, size_t n,
		       unsigned char *dst, const struct npy_dtype *dt);
int text_conv_timedelta(struct tp *t, const char *s, size_t n,
			unsigned char *dst, const struct npy_dtype *dt);

/* The columns of dt into t (t->dt, isz, record, cols, ncols): one per
 * leaf of a record, else one.  0, -ENOMEM, or -EINVAL (too many). */
int text_setup_cols(struct tp *t, const struct npy_dtype *dt);

/* ---- the passes ---- */

/* Pass 1 (parse_layout.c): lines, values per line and blocks of the body
 * into t; with inf, also infer a dtype.  0 or -EINVAL with a message. */
int text_scan_layout(struct tp *t, struct inferred *inf);

/* The shape from ref (may be NULL) and the layout in t; 0 or -EINVAL. */
int text_decide_shape(struct tp *t, const struct npy_header *ref,
		      int *ndim, uint64_t *shape);

/* Output (parse.c): buffers for t->hdr; write what cbuf holds. */
int text_out_setup(struct tp *t);
int text_out_flush(struct tp *t);
/* The next element's slot in cbuf (flushed first when full; zeroed for a
 * record, whose padding reads back as zeros): 0 and *elem, or -errno. */
int text_out_next(struct tp *t, unsigned char **elem);

/* Pass 2, the general path (parse.c): convert every value and write it. */
int text_convert(struct tp *t);

/* The fast path (fast.c).  Pass 1: *count values and *ok, or !*ok if the
 * body is not for the fast path (quotes, no values). */
void text_fast_count(struct fast *f, bool *ok, uint64_t *count);

/* Pass 2.  Returns 0 or the error of the general path's text_convert(). */
int text_fast_convert(struct fast *f);

#endif
