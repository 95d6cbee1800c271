/* npy_internal.h - what the files of src/npy/ share, and nothing else uses.
 *
 * The Python-literal tree that lex.c builds and dtype.c / header.c read,
 * the UTF-8 and message helpers, and the pieces of a header that both
 * header.c (parse) and format.c (write) need.
 */
#ifndef NPZFS_NPY_INTERNAL_H
#define NPZFS_NPY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "npy.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "src/npy/ assumes a little-endian host");

#define LIT_DEPTH_MAX 32	/* nesting of dicts, lists and tuples */
#define MSG_STR_MAX 40		/* quote at most this many characters of input */
#define MSG_QUOTE_SIZE (4 * MSG_STR_MAX + 4)

/* "\x93NUMPY", the first bytes of every .npy file (header.c). */
extern const char npy_magic[NPY_MAGIC_LEN];

/* ---- UTF-8 and messages (utf8.c, printable.c) ---- */

/* Append code point c (at most U+10FFFF) to b as UTF-8; 0 or -ENOMEM. */
int npy_utf8_put(struct buf *b, uint32_t c);

/* Python's str.isprintable() for one non-ASCII code point (Python 3.11). */
bool npy_py_printable(uint32_t c);

/* Input text made safe for a message: printable UTF-8 kept, other bytes as
 * \xNN, cut after MSG_STR_MAX characters with "...".  Returns tmp. */
const char *npy_msg_quote(char tmp[MSG_QUOTE_SIZE], const char *str,
			  size_t len);

/* ---- Python literals (lex.c) ---- */

enum lit_type {
	LIT_DICT, LIT_LIST, LIT_TUPLE, LIT_STR, LIT_INT, LIT_TRUE, LIT_FALSE,
	LIT_NONE,
};

struct lit {
	enum lit_type type;
	size_t start, end;	/* byte range in the parsed text */
	char *str;		/* LIT_STR: decoded UTF-8, NUL-terminated */
	size_t slen;
	bool neg, big;		/* LIT_INT: sign; magnitude past UINT64_MAX */
	uint64_t mag;		/* LIT_INT: magnitude */
	size_t n, cap;		/* containers: kids (a dict has 2 per item) */
	struct lit *kids;
};

struct lp {
	const unsigned char *s;
	size_t len, pos;
	size_t base;		/* added to positions in messages */
	bool latin1;		/* versions 1.0/2.0: one byte, one character */
	bool no_long;		/* version 3.0: no Python 2 '3L' */
	const char *ctx;	/* top-level key whose value is being read */
	int depth;
	struct npz_err *err;
};

/* Free what v owns (kids, string) and zero it. */
void npy_lit_free(struct lit *v);

/* Set p->err to "CTX: MSG at byte N" (N = p->base + pos); returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
int npy_lp_fail(struct lp *p, size_t pos, const char *fmt, ...);

/* Skip Python whitespace at p->pos. */
void npy_lp_skip_ws(struct lp *p);

/* Parse the whole text as one literal into *v, whitespace around it
 * allowed.  Returns 0, or -EINVAL / -ENOMEM with v owning nothing. */
int npy_lp_parse(struct lp *p, struct lit *v);

/* ---- dtypes and headers (dtype.c, header.c, format.c) ---- */

/* A dtype from a descr literal: a type string or a list of fields.
 * Returns 0 or -EINVAL / -ENOMEM; on failure *dt owns nothing. */
int npy_dtype_from_lit(struct lp *p, const struct lit *v, struct npy_dtype *dt);

/* count and data_len from shape and itemsize; -EINVAL on overflow. */
int npy_header_set_count(struct npy_header *hdr);

#endif
