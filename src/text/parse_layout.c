/* parse_layout.c - pass 1 of the general path: the layout of the body
 * (lines, values per line, blank-line separated blocks), the inferred dtype
 * when there is none, and the shape.
 *
 * Invariant: layout errors (ragged rows, blocks of other sizes) are found
 * before any value is converted, so they win over value errors.
 */
#include <errno.h>
#include <string.h>

#include "parse_internal.h"

static int count_char(void *ctx, uint32_t c)
{
	(void)c;
	(*(size_t *)ctx)++;
	return 0;
}

/* Numbers seen before the first string need their length too. */
static size_t bare_len(const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += ((unsigned char)s[i] & 0xc0) != 0x80;
	return len;
}

static int infer_token(struct tp *t, const char *s, size_t n,
		       struct inferred *inf)
{
	enum infer k;
	struct decnum d;
	bool neg;
	uint64_t mag;
	size_t re_n, im_n;
	const char *im;

	if ((n == 4 && !memcmp(s, "True", 4)) || (n == 5 && !memcmp(s, "False", 5)))
		k = INF_BOOL;
	else if (text_scan_int(s, n, &neg, &mag) == NUM_OK &&
		 (neg ? mag <= (1ull << 63) : mag < (1ull << 63)))
		k = INF_INT;
	else if (text_scan_float(s, n, &d) != NUM_BAD)
		k = INF_FLOAT;
	else if (text_split_complex(s, n, &re_n, &im, &im_n) && im &&
		 !(im_n == 1 && (*im == '+' || *im == '-')) &&
		 text_scan_float(im, im_n, &d) != NUM_BAD &&
		 (!re_n || text_scan_float(s + (n >= 2 && s[0] == '(' && s[n - 1] == ')'),
					   re_n, &d) != NUM_BAD))
		k = INF_COMPLEX;
	else
		k = INF_STR;
	if (k != INF_STR) {
		size_t bl = bare_len(s, n);

		if (bl > inf->maxnum)
			inf->maxnum = bl;
	}
	if (k != INF_STR && inf->kind == INF_STR) {
		/* numbers among strings are strings */
		k = INF_STR;
	}
	if (k == INF_STR) {
		size_t len = 0;
		bool is_bytes = n >= 3 && s[0] == 'b' && s[1] == '"';
		int ret = text_walk_string(t, s, n, false, count_char, &len);

		if (ret)
			return ret;
		if (inf->kind != INF_STR) {
			inf->all_bytes = true;
			inf->kind = INF_STR;
		}
		inf->all_bytes &= is_bytes;
		if (len > inf->maxlen)
			inf->maxlen = len;
		return 0;
	}
	if (k > inf->kind)
		inf->kind = k;
	return 0;
}

/* ---- pass 1: layout ------------------------------------------------------ */

/* Blocks of different sizes are only an error when the shape needs them. */
static void end_block(struct tp *t, uint64_t rows, size_t first_line)
{
	if (t->nblocks == 1)
		t->block_lines = rows;
	else if (rows != t->block_lines && !t->ragged_block) {
		t->ragged_block = first_line;
		t->ragged_rows = rows;
	}
}

int text_scan_layout(struct tp *t, struct inferred *inf)
{
	const char *p = t->text + t->body, *end = t->text + t->len;
	uint64_t cur = 0;	/* lines in the current block */
	size_t block_start = 0;
	bool in_block = false, first_line = true;
	int ret;

	t->lineno = t->body_lineno;
	for (; p < end; t->lineno++) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *next;
		int kind;

		if (!e)
			e = end;
		next = e < end ? e + 1 : end;
		kind = text_line_kind(p, e);
		if (kind == L_COMMENT) {
			p = next;
			continue;
		}
		if (kind != L_DATA) {
			if (in_block)
				end_block(t, cur, block_start);
			in_block = false;
			p = next;
			continue;
		}
		if (!in_block) {
			in_block = true;
			t->nblocks++;
			cur = 0;
			block_start = t->lineno;
		}
		cur++;
		t->nlines++;

		/* tokens */
		uint64_t ntok = 0;
		const char *q = p;
		for (;;) {
			while (q < e && is_ws(*q))
				q++;
			if (q >= e)
				break;
			const char *te = text_tok_end(t, q, e);
			if (!te)
				return -EINVAL;
			if (inf) {
				ret = infer_token(t, q, (size_t)(te - q), inf);
				if (ret)
					return ret;
			}
			ntok++;
			q = te;
		}
		if (t->record) {
			if (ntok != t->ncols)
				return text_fail(t, "expected %zu values, found %llu",
						 t->ncols, (unsigned long long)ntok);
		} else if (first_line) {
			t->line_values = ntok;
		} else if (ntok != t->line_values) {
			return text_fail(t, "expected %llu values, found %llu (ragged rows)",
					 (unsigned long long)t->line_values,
					 (unsigned long long)ntok);
		}
		first_line = false;
		t->nvalues += ntok;
		p = next;
	}
	if (in_block)
		end_block(t, cur, block_start);
	if (inf && inf->kind == INF_STR && inf->maxnum > inf->maxlen)
		inf->maxlen = inf->maxnum;
	return 0;
}

/* ---- shape --------------------------------------------------------------- */

static int ragged_blocks(struct tp *t)
{
	t->lineno = t->ragged_block;
	return text_fail(t, "block has %llu rows, expected %llu",
			 (unsigned long long)t->ragged_rows,
			 (unsigned long long)t->block_lines);
}

/* The shape: ref's (the header line's, else base's) when its count matches,
 * else from the layout, keeping ref's number of dimensions where it can.
 * Blank-line separated blocks count only for 0-d/new arrays and ndim >= 3. */
int text_decide_shape(struct tp *t, const struct npy_header *ref,
		      int *ndim, uint64_t *shape)
{
	uint64_t N = t->record ? t->nlines : t->nvalues;
	uint64_t B = t->nblocks, L = t->block_lines, T = t->line_values;
	uint64_t lines = t->nlines;
	int d = ref ? ref->ndim : -1, i;

	if (t->record && !t->ncols && ref)
		N = ref->count;		/* records without columns: lines are empty */
	if (ref && ref->count == N) {
		*ndim = ref->ndim;
		memcpy(shape, ref->shape, sizeof(uint64_t) * (size_t)ref->ndim);
		return 0;
	}
	if (t->record) {
		*ndim = 1;
		shape[0] = N;
		return 0;
	}
	if (!N) {
		*ndim = d >= 1 ? d : 1;
		if (d >= 1)
			memcpy(shape, ref->shape, sizeof(uint64_t) * (size_t)d);
		shape[0] = 0;
		return 0;
	}
	if (d == 1 || d == 2 || B <= 1) {
		/* rows are all the data lines, whatever blank lines say */
		if (d >= 3) {
			*ndim = d;
			for (i = 0; i < d - 2; i++)
				shape[i] = 1;
			shape[d - 2] = lines;
			shape[d - 1] = T;
		} else if (d != 2 && (lines == 1 || T == 1)) {
			*ndim = 1;
			shape[0] = N;
		} else {
			*ndim = 2;
			shape[0] = lines;
			shape[1] = T;
		}
		return 0;
	}
	if (t->ragged_block)
		return ragged_blocks(t);
	if (d <= 3) {
		*ndim = 3;
		shape[0] = B;
		shape[1] = L;
		shape[2] = T;
		return 0;
	}
	/* keep the leading dimensions when they still multiply to B */
	uint64_t prod = 1;
	for (i = 0; i < d - 2; i++)
		prod = ref->shape[i] && prod <= UINT64_MAX / ref->shape[i] ?
		       prod * ref->shape[i] : 0;
	*ndim = d;
	for (i = 0; i < d - 2; i++)
		shape[i] = prod == B ? ref->shape[i] : (i ? 1 : B);
	shape[d - 2] = L;
	shape[d - 1] = T;
	return 0;
}
