/* npy.c - .npy headers and dtypes: read what numpy wrote, write what it writes.
 *
 * Invariants: npy_header_format() of a header numpy wrote gives back numpy's
 * bytes; every parser accepts arbitrary bytes and fails with -EINVAL and a
 * message, never reads past len, and never recurses deeper than LIT_DEPTH_MAX.
 * The header dict is read by a strict Python-literal parser (dict, list,
 * tuple, str, int, True/False/None); versions 1.0 and 2.0 are latin-1, 3.0 is
 * UTF-8, and all text kept in a header (descr, dict, names) is UTF-8.
 * Assumes a little-endian host: '=' and '|' read as '<'.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "npy.c assumes a little-endian host");

#define LIT_DEPTH_MAX 32	/* nesting of dicts, lists and tuples */
#define ARRAY_ALIGN 64		/* numpy's format.ARRAY_ALIGN */
#define GROWTH_AXIS_MAX_DIGITS 21
#define MSG_STR_MAX 40		/* quote at most this many characters of input */
#define MSG_QUOTE_SIZE (4 * MSG_STR_MAX + 4)

static const char npy_magic[NPY_MAGIC_LEN] = "\x93NUMPY";

/* ---- UTF-8 --------------------------------------------------------------- */

size_t npy_utf8_get(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c;
	size_t n, i;

	if (!len)
		return 0;
	c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		n = 2;
		c &= 0x1f;
	} else if (c < 0xf0) {
		n = 3;
		c &= 0x0f;
	} else if (c < 0xf5) {
		n = 4;
		c &= 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static int utf8_put(struct buf *b, uint32_t c)
{
	char s[4];
	size_t n;

	if (c < 0x80) {
		s[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		s[0] = (char)(0xc0 | c >> 6);
		s[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		s[0] = (char)(0xe0 | c >> 12);
		s[1] = (char)(0x80 | (c >> 6 & 0x3f));
		s[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		s[0] = (char)(0xf0 | c >> 18);
		s[1] = (char)(0x80 | (c >> 12 & 0x3f));
		s[2] = (char)(0x80 | (c >> 6 & 0x3f));
		s[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return buf_add(b, s, n);
}

/* Copy text to a new UTF-8 string, reading it as latin-1 if asked. */
static char *text_dup(const unsigned char *s, size_t len, bool latin1)
{
	struct buf b = BUF_INIT;
	size_t i;

	if (!latin1) {
		if (buf_add(&b, s, len))
			return NULL;
	} else {
		for (i = 0; i < len; i++) {
			if (utf8_put(&b, s[i])) {
				buf_release(&b);
				return NULL;
			}
		}
	}
	return buf_detach(&b, NULL);
}

static bool py_printable(uint32_t c);

/* Input text made safe for a message: printable UTF-8 kept, other bytes as
 * \xNN, cut after MSG_STR_MAX characters with "...".  Returns tmp. */
static const char *msg_quote(char tmp[MSG_QUOTE_SIZE], const char *str,
			     size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, o = 0, n, nchar = 0;
	uint32_t c;

	while (i < len) {
		if (nchar++ == MSG_STR_MAX) {
			memcpy(tmp + o, "...", 3);
			o += 3;
			break;
		}
		n = npy_utf8_get(s + i, len - i, &c);
		if (n && c >= 0x20 && c != 0x7f && (c < 0x80 || py_printable(c))) {
			memcpy(tmp + o, s + i, n);
			o += n;
			i += n;
		} else {
			o += (size_t)snprintf(tmp + o, 5, "\\x%02x", s[i++]);
		}
	}
	tmp[o] = '\0';
	return tmp;
}

/* ---- Python literals ------------------------------------------------------ */

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

static void lit_free(struct lit *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		lit_free(&v->kids[i]);
	free(v->kids);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

__attribute__((format(printf, 3, 4)))
static int lp_fail(struct lp *p, size_t pos, const char *fmt, ...)
{
	char msg[NPZ_ERR_MSG_MAX], q[MSG_QUOTE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->ctx)
		npz_err_set(p->err, "%s: %s at byte %zu",
			    msg_quote(q, p->ctx, strlen(p->ctx)), msg, p->base + pos);
	else
		npz_err_set(p->err, "%s at byte %zu", msg, p->base + pos);
	return -EINVAL;
}

static void lp_skip_ws(struct lp *p)
{
	while (p->pos < p->len && strchr(" \t\n\r\f", p->s[p->pos]) &&
	       p->s[p->pos])
		p->pos++;
}

static bool is_ident_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One backslash escape (p->pos just past the backslash). */
static int lp_escape(struct lp *p, struct buf *b, size_t at)
{
	uint32_t c = 0;
	int ndig = 0, i, h;
	unsigned char e;

	if (p->pos >= p->len)
		return lp_fail(p, at, "unterminated string");
	e = p->s[p->pos++];
	switch (e) {
	case '\n': return 0;
	case '\\': case '\'': case '"': c = e; break;
	case 'a': c = 7; break;
	case 'b': c = 8; break;
	case 'f': c = 12; break;
	case 'n': c = 10; break;
	case 'r': c = 13; break;
	case 't': c = 9; break;
	case 'v': c = 11; break;
	case 'x': ndig = 2; break;
	case 'u': ndig = 4; break;
	case 'U': ndig = 8; break;
	default:
		if (e >= '0' && e <= '7') {
			c = e - '0';
			for (i = 0; i < 2 && p->pos < p->len &&
			     p->s[p->pos] >= '0' && p->s[p->pos] <= '7'; i++)
				c = c * 8 + (p->s[p->pos++] - '0');
			break;
		}
		return lp_fail(p, p->pos - 2, "bad escape in string");
	}
	for (i = 0; i < ndig; i++) {
		if (p->pos >= p->len || (h = hexval(p->s[p->pos])) < 0)
			return lp_fail(p, p->pos, "bad escape in string");
		c = c << 4 | (uint32_t)h;
		p->pos++;
	}
	if (c == 0)
		return lp_fail(p, at, "NUL in string");
	if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return lp_fail(p, at, "bad code point in string");
	return utf8_put(b, c);
}

static int lp_string(struct lp *p, struct lit *v)
{
	struct buf b = BUF_INIT;
	unsigned char q, c;
	uint32_t cp;
	size_t n;
	int ret;

	if (p->s[p->pos] == 'u' || p->s[p->pos] == 'U')
		p->pos++;
	q = p->s[p->pos++];
	for (;;) {
		if (p->pos >= p->len || p->s[p->pos] == '\n' || p->s[p->pos] == '\r') {
			ret = lp_fail(p, v->start, "unterminated string");
			goto out_release;
		}
		c = p->s[p->pos];
		if (c == q) {
			p->pos++;
			break;
		}
		if (c == '\\') {
			p->pos++;
			ret = lp_escape(p, &b, p->pos - 1);
		} else if (c == 0) {
			ret = lp_fail(p, p->pos, "NUL in string");
		} else if (c < 0x80) {
			ret = buf_addch(&b, (char)c);
			p->pos++;
		} else if (p->latin1) {
			ret = utf8_put(&b, c);
			p->pos++;
		} else if ((n = npy_utf8_get(p->s + p->pos, p->len - p->pos, &cp))) {
			ret = buf_add(&b, p->s + p->pos, n);
			p->pos += n;
		} else {
			ret = lp_fail(p, p->pos, "invalid UTF-8");
		}
		if (ret)
			goto out_release;
	}
	v->type = LIT_STR;
	v->str = buf_detach(&b, &v->slen);
	return v->str ? 0 : -ENOMEM;

out_release:
	buf_release(&b);
	return ret;
}

static int lp_int(struct lp *p, struct lit *v)
{
	size_t first;
	unsigned d;

	v->type = LIT_INT;
	if (p->s[p->pos] == '-' || p->s[p->pos] == '+')
		v->neg = p->s[p->pos++] == '-';
	first = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		d = p->s[p->pos] - '0';
		if (v->mag > (UINT64_MAX - d) / 10)
			v->big = true;
		else
			v->mag = v->mag * 10 + d;
		p->pos++;
	}
	if (p->pos == first)
		return lp_fail(p, v->start, "expected a value");
	if (p->s[first] == '0' && (v->mag || v->big))
		return lp_fail(p, first, "bad integer");
	/* Python 2's 3L: numpy filters it out of 1.0/2.0 headers; a text
	 * view's dict line takes it too, since hdr->dict keeps it */
	if (!p->no_long && p->pos < p->len && p->s[p->pos] == 'L')
		p->pos++;
	if (p->pos < p->len && (is_ident_byte(p->s[p->pos]) || p->s[p->pos] == '.'))
		return lp_fail(p, v->start, "expected an integer");
	return 0;
}

static int lp_word(struct lp *p, struct lit *v)
{
	static const struct { const char *w; enum lit_type t; } words[] = {
		{ "True", LIT_TRUE }, { "False", LIT_FALSE }, { "None", LIT_NONE },
	};
	size_t i, n;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		n = strlen(words[i].w);
		if (p->len - p->pos >= n && !memcmp(p->s + p->pos, words[i].w, n) &&
		    (p->len - p->pos == n || !is_ident_byte(p->s[p->pos + n]))) {
			v->type = words[i].t;
			p->pos += n;
			return 0;
		}
	}
	return lp_fail(p, p->pos, "expected a value");
}

static int lp_value(struct lp *p, struct lit *v);

/* Make room for one more kid and return it, zeroed and counted. */
static struct lit *lit_push(struct lit *v)
{
	struct lit *k;
	size_t cap;

	if (v->n == v->cap) {
		cap = v->cap ? v->cap * 2 : 4;
		k = realloc(v->kids, cap * sizeof(*k));
		if (!k)
			return NULL;
		v->kids = k;
		v->cap = cap;
	}
	k = &v->kids[v->n++];
	memset(k, 0, sizeof(*k));
	return k;
}

static int lp_item(struct lp *p, struct lit *v)
{
	struct lit *k = lit_push(v);

	return k ? lp_value(p, k) : -ENOMEM;
}

/* Dict, list or tuple; p->pos is at the opening bracket.  *comma tells
 * whether any comma was read, to tell "(5,)" from a parenthesised "(5)". */
static int lp_container(struct lp *p, struct lit *v, bool *comma)
{
	unsigned char open = p->s[p->pos], close;
	const char *ctx = p->ctx;
	struct lit *key;
	int ret;

	close = open == '{' ? '}' : open == '[' ? ']' : ')';
	v->type = open == '{' ? LIT_DICT : open == '[' ? LIT_LIST : LIT_TUPLE;
	*comma = false;
	if (++p->depth > LIT_DEPTH_MAX)
		return lp_fail(p, p->pos, "nesting too deep");
	p->pos++;
	for (;;) {
		lp_skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == close)
			break;
		ret = lp_item(p, v);
		if (ret)
			return ret;
		if (v->type == LIT_DICT) {
			lp_skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return lp_fail(p, p->pos, "expected ':'");
			p->pos++;
			key = &v->kids[v->n - 1];
			if (p->depth == 1 && key->type == LIT_STR)
				p->ctx = key->str;
			ret = lp_item(p, v);
			p->ctx = ctx;
			if (ret)
				return ret;
		}
		lp_skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			*comma = true;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close)
			break;
		return lp_fail(p, p->pos, "expected '%c'", close);
	}
	p->pos++;
	p->depth--;
	return 0;
}

static int lp_value(struct lp *p, struct lit *v)
{
	struct lit inner;
	unsigned char c;
	bool comma;
	int ret;

	lp_skip_ws(p);
	v->start = p->pos;
	if (p->pos >= p->len)
		return lp_fail(p, p->pos, "expected a value");
	c = p->s[p->pos];
	if (c == '{' || c == '[' || c == '(') {
		ret = lp_container(p, v, &comma);
		if (!ret && c == '(' && v->n == 1 && !comma) {
			inner = v->kids[0];
			free(v->kids);
			*v = inner;
			return 0;
		}
	} else if (c == '\'' || c == '"' ||
		   ((c == 'u' || c == 'U') && p->pos + 1 < p->len &&
		    (p->s[p->pos + 1] == '\'' || p->s[p->pos + 1] == '"'))) {
		ret = lp_string(p, v);
	} else if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
		ret = lp_int(p, v);
	} else if (c == 'T' || c == 'F' || c == 'N') {
		ret = lp_word(p, v);
	} else if (c < 0x20 || c >= 0x7f) {
		ret = lp_fail(p, p->pos, "unexpected byte 0x%02x", c);
	} else {
		ret = lp_fail(p, p->pos, "unexpected '%c'", c);
	}
	v->end = p->pos;
	return ret;
}

/* Parse the whole text as one literal, allowing whitespace around it. */
static int lp_parse(struct lp *p, struct lit *v)
{
	int ret;

	memset(v, 0, sizeof(*v));
	ret = lp_value(p, v);
	if (!ret) {
		lp_skip_ws(p);
		if (p->pos < p->len) {
			if (p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f)
				ret = lp_fail(p, p->pos, "unexpected '%c' after the value",
					      p->s[p->pos]);
			else
				ret = lp_fail(p, p->pos, "unexpected byte 0x%02x after the value",
					      p->s[p->pos]);
		}
	}
	if (ret)
		lit_free(v);
	return ret;
}

/* ---- dtypes --------------------------------------------------------------- */

static const char *const unit_names[] = {
	"", "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
};

const char *npy_unit_name(enum npy_unit unit)
{
	if ((unsigned)unit >= sizeof(unit_names) / sizeof(unit_names[0]))
		return "";
	return unit_names[unit];
}

static void field_release(struct npy_field *f)
{
	free(f->name);
	free(f->title);
	free(f->shape);
	npy_dtype_release(&f->type);
}

void npy_dtype_release(struct npy_dtype *dt)
{
	size_t i;

	for (i = 0; i < dt->nfields; i++)
		field_release(&dt->fields[i]);
	free(dt->fields);
	memset(dt, 0, sizeof(*dt));
}

int npy_dtype_copy(struct npy_dtype *dst, const struct npy_dtype *src)
{
	struct npy_field *f;
	const struct npy_field *s;
	size_t i;

	*dst = *src;
	dst->nfields = 0;
	dst->fields = NULL;
	if (!src->nfields)
		return 0;
	dst->fields = calloc(src->nfields, sizeof(*dst->fields));
	if (!dst->fields)
		goto out_nomem;
	for (i = 0; i < src->nfields; i++) {
		s = &src->fields[i];
		f = &dst->fields[i];
		dst->nfields++;
		*f = *s;
		f->name = NULL;
		f->title = NULL;
		f->shape = NULL;
		memset(&f->type, 0, sizeof(f->type));
		if (npy_dtype_copy(&f->type, &s->type))
			goto out_nomem;
		f->name = strdup(s->name ? s->name : "");
		if (!f->name)
			goto out_nomem;
		if (s->title && !(f->title = strdup(s->title)))
			goto out_nomem;
		if (s->ndim > 0) {
			f->shape = malloc((size_t)s->ndim * sizeof(*f->shape));
			if (!f->shape)
				goto out_nomem;
			memcpy(f->shape, s->shape, (size_t)s->ndim * sizeof(*f->shape));
		}
	}
	return 0;

out_nomem:
	npy_dtype_release(dst);
	return -ENOMEM;
}

bool npy_dtype_has_object(const struct npy_dtype *dt)
{
	size_t i;

	if (dt->kind == NPY_OBJECT)
		return true;
	for (i = 0; i < dt->nfields; i++)
		if (npy_dtype_has_object(&dt->fields[i].type))
			return true;
	return false;
}

static int parse_unit(const char *s, size_t len, struct npy_dtype *dt)
{
	size_t i = 0, u;
	int64_t mult = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		mult = mult * 10 + (s[i++] - '0');
		if (mult > INT32_MAX)
			return -EINVAL;
	}
	if (i > 0 && mult == 0)
		return -EINVAL;
	if (len - i == 7 && !memcmp(s + i, "generic", 7) && i == 0) {
		dt->unit = NPY_UNIT_GENERIC;
		dt->unit_mult = 1;
		return 0;
	}
	for (u = 1; u < sizeof(unit_names) / sizeof(unit_names[0]); u++) {
		if (strlen(unit_names[u]) == len - i &&
		    !memcmp(s + i, unit_names[u], len - i)) {
			dt->unit = (enum npy_unit)u;
			dt->unit_mult = i ? mult : 1;
			return 0;
		}
	}
	return -EINVAL;
}

/* Type codes and their sizes: a bit mask, or FLEXIBLE (any size, "S3"), or
 * ONLY_8 (8, which may be left out: "O", "M8[ns]"). */
#define FLEXIBLE 0
#define ONLY_8 1
#define SZ(n) (1ull << (n))
static const struct {
	char c;
	enum npy_kind kind;
	uint64_t sizes;
} type_codes[] = {
	{ 'b', NPY_BOOL, SZ(1) },
	{ 'i', NPY_INT, SZ(1) | SZ(2) | SZ(4) | SZ(8) },
	{ 'u', NPY_UINT, SZ(1) | SZ(2) | SZ(4) | SZ(8) },
	{ 'f', NPY_FLOAT, SZ(2) | SZ(4) | SZ(8) | SZ(12) | SZ(16) },
	{ 'c', NPY_COMPLEX, SZ(8) | SZ(16) | SZ(24) | SZ(32) },
	{ 'S', NPY_BYTES, FLEXIBLE },
	{ 'U', NPY_STR, FLEXIBLE },
	{ 'V', NPY_VOID, FLEXIBLE },
	{ 'O', NPY_OBJECT, ONLY_8 },
	{ 'M', NPY_DATETIME, ONLY_8 },
	{ 'm', NPY_TIMEDELTA, ONLY_8 },
};
#undef SZ

int npy_dtype_parse_str(const char *s, size_t len, struct npy_dtype *dt,
			struct npz_err *err)
{
	struct npy_dtype d = { 0 };
	size_t i = 0, size = 0, close, k;
	bool has_size = false, ok;
	char order = '<', kind;
	char q[MSG_QUOTE_SIZE];

	memset(dt, 0, sizeof(*dt));
	if (i < len && strchr("<>|=", s[i]) && s[i])
		order = s[i++];
	if (i >= len)
		goto out_unknown;
	kind = s[i++];
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (size > (SIZE_MAX / 4 - 9) / 10)
			goto out_unknown;
		size = size * 10 + (size_t)(s[i++] - '0');
		has_size = true;
	}
	for (k = 0; k < sizeof(type_codes) / sizeof(type_codes[0]); k++)
		if (type_codes[k].c == kind)
			break;
	if (k == sizeof(type_codes) / sizeof(type_codes[0]))
		goto out_unknown;
	d.kind = type_codes[k].kind;
	d.unit_mult = 1;
	if (type_codes[k].sizes == FLEXIBLE)
		ok = has_size;
	else if (type_codes[k].sizes == ONLY_8)
		ok = !has_size || size == 8;
	else
		ok = size < 64 && (type_codes[k].sizes >> size & 1);
	if (type_codes[k].sizes == ONLY_8)
		size = 8;
	if (d.kind == NPY_STR)
		size *= 4;
	if (!ok || (!has_size && i < len))
		goto out_unknown;
	if (i < len && s[i] == '[' &&
	    (d.kind == NPY_DATETIME || d.kind == NPY_TIMEDELTA)) {
		for (close = i + 1; close < len && s[close] != ']'; close++)
			;
		if (close + 1 != len || parse_unit(s + i + 1, close - i - 1, &d)) {
			npz_err_set(err, "bad datetime unit '%s'", msg_quote(q, s, len));
			return -EINVAL;
		}
		i = len;
	}
	if (i != len)
		goto out_unknown;
	d.itemsize = size;
	if (d.kind == NPY_BOOL || d.kind == NPY_BYTES || d.kind == NPY_VOID ||
	    d.kind == NPY_OBJECT || size == 1)
		d.order = '|';
	else
		d.order = order == '>' ? '>' : '<';
	d.swapped = d.order == '>';
	*dt = d;
	return 0;

out_unknown:
	npz_err_set(err, "unknown dtype '%s'", msg_quote(q, s, len));
	return -EINVAL;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reject a name used twice as a field name or title. */
static int check_names(struct lp *p, const struct lit *v,
		       const struct npy_dtype *dt)
{
	const char **names, *dup = NULL;
	char q[MSG_QUOTE_SIZE];
	size_t i, n = 0;

	names = malloc(2 * dt->nfields * sizeof(*names) + 1);
	if (!names)
		return -ENOMEM;
	for (i = 0; i < dt->nfields; i++) {
		names[n++] = dt->fields[i].name;
		if (dt->fields[i].title)
			names[n++] = dt->fields[i].title;
	}
	qsort(names, n, sizeof(*names), str_cmp);
	for (i = 1; i < n && !dup; i++)
		if (!strcmp(names[i - 1], names[i]))
			dup = names[i];
	if (dup)
		lp_fail(p, v->start, "duplicate field name '%s'",
			msg_quote(q, dup, strlen(dup)));
	free(names);
	return dup ? -EINVAL : 0;
}

static int dtype_from_lit(struct lp *p, const struct lit *v, struct npy_dtype *dt);

/* Shape of a subarray field: an int or a tuple of ints. */
static int subshape_from_lit(struct lp *p, const struct lit *v,
			     struct npy_field *f)
{
	const struct lit *dims = v->type == LIT_TUPLE ? v->kids : v;
	size_t i, n = v->type == LIT_TUPLE ? v->n : 1;

	if (v->type != LIT_TUPLE && v->type != LIT_INT)
		return lp_fail(p, v->start, "expected a subarray shape");
	if (n > NPY_MAXDIMS)
		return lp_fail(p, v->start, "too many dimensions");
	f->count = 1;
	if (!n)
		return 0;
	f->shape = calloc(n, sizeof(*f->shape));
	if (!f->shape)
		return -ENOMEM;
	f->ndim = (int)n;
	for (i = 0; i < n; i++) {
		if (dims[i].type != LIT_INT)
			return lp_fail(p, dims[i].start, "expected an integer");
		if (dims[i].neg && (dims[i].mag || dims[i].big))
			return lp_fail(p, dims[i].start, "negative dimension");
		if (dims[i].big || dims[i].mag > INT64_MAX ||
		    (dims[i].mag && f->count > INT64_MAX / dims[i].mag))
			return lp_fail(p, dims[i].start, "shape overflow");
		f->shape[i] = dims[i].mag;
		f->count *= dims[i].mag;
	}
	return 0;
}

static int record_from_lit(struct lp *p, const struct lit *v,
			   struct npy_dtype *dt)
{
	const struct lit *t, *name, *title;
	struct npy_field *f;
	size_t i, offset = 0, size;
	int ret;

	dt->kind = NPY_RECORD;
	dt->order = '|';
	dt->unit_mult = 1;
	if (v->n) {
		dt->fields = calloc(v->n, sizeof(*dt->fields));
		if (!dt->fields)
			return -ENOMEM;
	}
	for (i = 0; i < v->n; i++) {
		t = &v->kids[i];
		if (t->type != LIT_TUPLE || t->n < 2 || t->n > 3)
			return lp_fail(p, t->start, "expected a (name, format) tuple");
		name = &t->kids[0];
		title = NULL;
		if (name->type == LIT_TUPLE && name->n == 2 &&
		    name->kids[0].type == LIT_STR) {
			title = &name->kids[0];
			name = &name->kids[1];
		}
		if (name->type != LIT_STR)
			return lp_fail(p, name->start, "expected a field name");
		f = &dt->fields[dt->nfields];
		memset(f, 0, sizeof(*f));
		ret = dtype_from_lit(p, &t->kids[1], &f->type);
		if (!ret && t->n == 3)
			ret = subshape_from_lit(p, &t->kids[2], f);
		else
			f->count = 1;
		if (!ret && f->type.itemsize && f->count > SIZE_MAX / f->type.itemsize)
			ret = lp_fail(p, t->start, "record too large");
		if (ret) {
			field_release(f);
			return ret;
		}
		size = f->type.itemsize * f->count;
		if (size > SIZE_MAX - offset) {
			field_release(f);
			return lp_fail(p, t->start, "record too large");
		}
		if (!name->slen && !title && f->type.kind == NPY_VOID) {
			/* ('', '|V4'): padding, as numpy writes for gaps */
			field_release(f);
			offset += size;
			continue;
		}
		if (!name->slen) {
			field_release(f);
			return lp_fail(p, name->start, "empty field name");
		}
		f->name = strdup(name->str);
		f->title = title ? strdup(title->str) : NULL;
		f->offset = offset;
		dt->nfields++;
		if (!f->name || (title && !f->title))
			return -ENOMEM;
		offset += size;
	}
	dt->itemsize = offset;
	return check_names(p, v, dt);
}

static int dtype_from_lit(struct lp *p, const struct lit *v, struct npy_dtype *dt)
{
	int ret;

	memset(dt, 0, sizeof(*dt));
	if (v->type == LIT_STR) {
		return npy_dtype_parse_str(v->str, v->slen, dt, p->err);
	}
	if (v->type != LIT_LIST)
		return lp_fail(p, v->start, "expected a type string or a list");
	ret = record_from_lit(p, v, dt);
	if (ret)
		npy_dtype_release(dt);
	return ret;
}

int npy_dtype_parse(const char *text, size_t len, struct npy_dtype *dt,
		    struct npz_err *err)
{
	struct lp p = { .s = (const unsigned char *)text, .len = len, .err = err };
	struct lit v;
	int ret;

	memset(dt, 0, sizeof(*dt));
	ret = lp_parse(&p, &v);
	if (ret)
		return ret;
	ret = dtype_from_lit(&p, &v, dt);
	lit_free(&v);
	return ret;
}

/* ---- formatting ----------------------------------------------------------- */

/* Non-ASCII code points that Python 3.11's str.isprintable() rejects (so
 * repr() escapes them): generated from unicodedata 14.0. */
static const uint32_t unprintable[][2] = {
	{0x80, 0xa0}, {0xad, 0xad}, {0x378, 0x379}, {0x380, 0x383}, {0x38b, 0x38b},
	{0x38d, 0x38d}, {0x3a2, 0x3a2}, {0x530, 0x530}, {0x557, 0x558},
	{0x58b, 0x58c}, {0x590, 0x590}, {0x5c8, 0x5cf}, {0x5eb, 0x5ee},
	{0x5f5, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd}, {0x70e, 0x70f},
	{0x74b, 0x74c}, {0x7b2, 0x7bf}, {0x7fb, 0x7fc}, {0x82e, 0x82f},
	{0x83f, 0x83f}, {0x85c, 0x85d}, {0x85f, 0x85f}, {0x86b, 0x86f},
	{0x88f, 0x897}, {0x8e2, 0x8e2}, {0x984, 0x984}, {0x98d, 0x98e},
	{0x991, 0x992}, {0x9a9, 0x9a9}, {0x9b1, 0x9b1}, {0x9b3, 0x9b5},
	{0x9ba, 0x9bb}, {0x9c5, 0x9c6}, {0x9c9, 0x9ca}, {0x9cf, 0x9d6},
	{0x9d8, 0x9db}, {0x9de, 0x9de}, {0x9e4, 0x9e5}, {0x9ff, 0xa00},
	{0xa04, 0xa04}, {0xa0b, 0xa0e}, {0xa11, 0xa12}, {0xa29, 0xa29},
	{0xa31, 0xa31}, {0xa34, 0xa34}, {0xa37, 0xa37}, {0xa3a, 0xa3b},
	{0xa3d, 0xa3d}, {0xa43, 0xa46}, {0xa49, 0xa4a}, {0xa4e, 0xa50},
	{0xa52, 0xa58}, {0xa5d, 0xa5d}, {0xa5f, 0xa65}, {0xa77, 0xa80},
	{0xa84, 0xa84}, {0xa8e, 0xa8e}, {0xa92, 0xa92}, {0xaa9, 0xaa9},
	{0xab1, 0xab1}, {0xab4, 0xab4}, {0xaba, 0xabb}, {0xac6, 0xac6},
	{0xaca, 0xaca}, {0xace, 0xacf}, {0xad1, 0xadf}, {0xae4, 0xae5},
	{0xaf2, 0xaf8}, {0xb00, 0xb00}, {0xb04, 0xb04}, {0xb0d, 0xb0e},
	{0xb11, 0xb12}, {0xb29, 0xb29}, {0xb31, 0xb31}, {0xb34, 0xb34},
	{0xb3a, 0xb3b}, {0xb45, 0xb46}, {0xb49, 0xb4a}, {0xb4e, 0xb54},
	{0xb58, 0xb5b}, {0xb5e, 0xb5e}, {0xb64, 0xb65}, {0xb78, 0xb81},
	{0xb84, 0xb84}, {0xb8b, 0xb8d}, {0xb91, 0xb91}, {0xb96, 0xb98},
	{0xb9b, 0xb9b}, {0xb9d, 0xb9d}, {0xba0, 0xba2}, {0xba5, 0xba7},
	{0xbab, 0xbad}, {0xbba, 0xbbd}, {0xbc3, 0xbc5}, {0xbc9, 0xbc9},
	{0xbce, 0xbcf}, {0xbd1, 0xbd6}, {0xbd8, 0xbe5}, {0xbfb, 0xbff},
	{0xc0d, 0xc0d}, {0xc11, 0xc11}, {0xc29, 0xc29}, {0xc3a, 0xc3b},
	{0xc45, 0xc45}, {0xc49, 0xc49}, {0xc4e, 0xc54}, {0xc57, 0xc57},
	{0xc5b, 0xc5c}, {0xc5e, 0xc5f}, {0xc64, 0xc65}, {0xc70, 0xc76},
	{0xc8d, 0xc8d}, {0xc91, 0xc91}, {0xca9, 0xca9}, {0xcb4, 0xcb4},
	{0xcba, 0xcbb}, {0xcc5, 0xcc5}, {0xcc9, 0xcc9}, {0xcce, 0xcd4},
	{0xcd7, 0xcdc}, {0xcdf, 0xcdf}, {0xce4, 0xce5}, {0xcf0, 0xcf0},
	{0xcf3, 0xcff}, {0xd0d, 0xd0d}, {0xd11, 0xd11}, {0xd45, 0xd45},
	{0xd49, 0xd49}, {0xd50, 0xd53}, {0xd64, 0xd65}, {0xd80, 0xd80},
	{0xd84, 0xd84}, {0xd97, 0xd99}, {0xdb2, 0xdb2}, {0xdbc, 0xdbc},
	{0xdbe, 0xdbf}, {0xdc7, 0xdc9}, {0xdcb, 0xdce}, {0xdd5, 0xdd5},
	{0xdd7, 0xdd7}, {0xde0, 0xde5}, {0xdf0, 0xdf1}, {0xdf5, 0xe00},
	{0xe3b, 0xe3e}, {0xe5c, 0xe80}, {0xe83, 0xe83}, {0xe85, 0xe85},
	{0xe8b, 0xe8b}, {0xea4, 0xea4}, {0xea6, 0xea6}, {0xebe, 0xebf},
	{0xec5, 0xec5}, {0xec7, 0xec7}, {0xece, 0xecf}, {0xeda, 0xedb},
	{0xee0, 0xeff}, {0xf48, 0xf48}, {0xf6d, 0xf70}, {0xf98, 0xf98},
	{0xfbd, 0xfbd}, {0xfcd, 0xfcd}, {0xfdb, 0xfff}, {0x10c6, 0x10c6},
	{0x10c8, 0x10cc}, {0x10ce, 0x10cf}, {0x1249, 0x1249}, {0x124e, 0x124f},
	{0x1257, 0x1257}, {0x1259, 0x1259}, {0x125e, 0x125f}, {0x1289, 0x1289},
	{0x128e, 0x128f}, {0x12b1, 0x12b1}, {0x12b6, 0x12b7}, {0x12bf, 0x12bf},
	{0x12c1, 0x12c1}, {0x12c6, 0x12c7}, {0x12d7, 0x12d7}, {0x1311, 0x1311},
	{0x1316, 0x1317}, {0x135b, 0x135c}, {0x137d, 0x137f}, {0x139a, 0x139f},
	{0x13f6, 0x13f7}, {0x13fe, 0x13ff}, {0x1680, 0x1680}, {0x169d, 0x169f},
	{0x16f9, 0x16ff}, {0x1716, 0x171e}, {0x1737, 0x173f}, {0x1754, 0x175f},
	{0x176d, 0x176d}, {0x1771, 0x1771}, {0x1774, 0x177f}, {0x17de, 0x17df},
	{0x17ea, 0x17ef}, {0x17fa, 0x17ff}, {0x180e, 0x180e}, {0x181a, 0x181f},
	{0x1879, 0x187f}, {0x18ab, 0x18af}, {0x18f6, 0x18ff}, {0x191f, 0x191f},
	{0x192c, 0x192f}, {0x193c, 0x193f}, {0x1941, 0x1943}, {0x196e, 0x196f},
	{0x1975, 0x197f}, {0x19ac, 0x19af}, {0x19ca, 0x19cf}, {0x19db, 0x19dd},
	{0x1a1c, 0x1a1d}, {0x1a5f, 0x1a5f}, {0x1a7d, 0x1a7e}, {0x1a8a, 0x1a8f},
	{0x1a9a, 0x1a9f}, {0x1aae, 0x1aaf}, {0x1acf, 0x1aff}, {0x1b4d, 0x1b4f},
	{0x1b7f, 0x1b7f}, {0x1bf4, 0x1bfb}, {0x1c38, 0x1c3a}, {0x1c4a, 0x1c4c},
	{0x1c89, 0x1c8f}, {0x1cbb, 0x1cbc}, {0x1cc8, 0x1ccf}, {0x1cfb, 0x1cff},
	{0x1f16, 0x1f17}, {0x1f1e, 0x1f1f}, {0x1f46, 0x1f47}, {0x1f4e, 0x1f4f},
	{0x1f58, 0x1f58}, {0x1f5a, 0x1f5a}, {0x1f5c, 0x1f5c}, {0x1f5e, 0x1f5e},
	{0x1f7e, 0x1f7f}, {0x1fb5, 0x1fb5}, {0x1fc5, 0x1fc5}, {0x1fd4, 0x1fd5},
	{0x1fdc, 0x1fdc}, {0x1ff0, 0x1ff1}, {0x1ff5, 0x1ff5}, {0x1fff, 0x200f},
	{0x2028, 0x202f}, {0x205f, 0x206f}, {0x2072, 0x2073}, {0x208f, 0x208f},
	{0x209d, 0x209f}, {0x20c1, 0x20cf}, {0x20f1, 0x20ff}, {0x218c, 0x218f},
	{0x2427, 0x243f}, {0x244b, 0x245f}, {0x2b74, 0x2b75}, {0x2b96, 0x2b96},
	{0x2cf4, 0x2cf8}, {0x2d26, 0x2d26}, {0x2d28, 0x2d2c}, {0x2d2e, 0x2d2f},
	{0x2d68, 0x2d6e}, {0x2d71, 0x2d7e}, {0x2d97, 0x2d9f}, {0x2da7, 0x2da7},
	{0x2daf, 0x2daf}, {0x2db7, 0x2db7}, {0x2dbf, 0x2dbf}, {0x2dc7, 0x2dc7},
	{0x2dcf, 0x2dcf}, {0x2dd7, 0x2dd7}, {0x2ddf, 0x2ddf}, {0x2e5e, 0x2e7f},
	{0x2e9a, 0x2e9a}, {0x2ef4, 0x2eff}, {0x2fd6, 0x2fef}, {0x2ffc, 0x3000},
	{0x3040, 0x3040}, {0x3097, 0x3098}, {0x3100, 0x3104}, {0x3130, 0x3130},
	{0x318f, 0x318f}, {0x31e4, 0x31ef}, {0x321f, 0x321f}, {0xa48d, 0xa48f},
	{0xa4c7, 0xa4cf}, {0xa62c, 0xa63f}, {0xa6f8, 0xa6ff}, {0xa7cb, 0xa7cf},
	{0xa7d2, 0xa7d2}, {0xa7d4, 0xa7d4}, {0xa7da, 0xa7f1}, {0xa82d, 0xa82f},
	{0xa83a, 0xa83f}, {0xa878, 0xa87f}, {0xa8c6, 0xa8cd}, {0xa8da, 0xa8df},
	{0xa954, 0xa95e}, {0xa97d, 0xa97f}, {0xa9ce, 0xa9ce}, {0xa9da, 0xa9dd},
	{0xa9ff, 0xa9ff}, {0xaa37, 0xaa3f}, {0xaa4e, 0xaa4f}, {0xaa5a, 0xaa5b},
	{0xaac3, 0xaada}, {0xaaf7, 0xab00}, {0xab07, 0xab08}, {0xab0f, 0xab10},
	{0xab17, 0xab1f}, {0xab27, 0xab27}, {0xab2f, 0xab2f}, {0xab6c, 0xab6f},
	{0xabee, 0xabef}, {0xabfa, 0xabff}, {0xd7a4, 0xd7af}, {0xd7c7, 0xd7ca},
	{0xd7fc, 0xf8ff}, {0xfa6e, 0xfa6f}, {0xfada, 0xfaff}, {0xfb07, 0xfb12},
	{0xfb18, 0xfb1c}, {0xfb37, 0xfb37}, {0xfb3d, 0xfb3d}, {0xfb3f, 0xfb3f},
	{0xfb42, 0xfb42}, {0xfb45, 0xfb45}, {0xfbc3, 0xfbd2}, {0xfd90, 0xfd91},
	{0xfdc8, 0xfdce}, {0xfdd0, 0xfdef}, {0xfe1a, 0xfe1f}, {0xfe53, 0xfe53},
	{0xfe67, 0xfe67}, {0xfe6c, 0xfe6f}, {0xfe75, 0xfe75}, {0xfefd, 0xff00},
	{0xffbf, 0xffc1}, {0xffc8, 0xffc9}, {0xffd0, 0xffd1}, {0xffd8, 0xffd9},
	{0xffdd, 0xffdf}, {0xffe7, 0xffe7}, {0xffef, 0xfffb}, {0xfffe, 0xffff},
	{0x1000c, 0x1000c}, {0x10027, 0x10027}, {0x1003b, 0x1003b},
	{0x1003e, 0x1003e}, {0x1004e, 0x1004f}, {0x1005e, 0x1007f},
	{0x100fb, 0x100ff}, {0x10103, 0x10106}, {0x10134, 0x10136},
	{0x1018f, 0x1018f}, {0x1019d, 0x1019f}, {0x101a1, 0x101cf},
	{0x101fe, 0x1027f}, {0x1029d, 0x1029f}, {0x102d1, 0x102df},
	{0x102fc, 0x102ff}, {0x10324, 0x1032c}, {0x1034b, 0x1034f},
	{0x1037b, 0x1037f}, {0x1039e, 0x1039e}, {0x103c4, 0x103c7},
	{0x103d6, 0x103ff}, {0x1049e, 0x1049f}, {0x104aa, 0x104af},
	{0x104d4, 0x104d7}, {0x104fc, 0x104ff}, {0x10528, 0x1052f},
	{0x10564, 0x1056e}, {0x1057b, 0x1057b}, {0x1058b, 0x1058b},
	{0x10593, 0x10593}, {0x10596, 0x10596}, {0x105a2, 0x105a2},
	{0x105b2, 0x105b2}, {0x105ba, 0x105ba}, {0x105bd, 0x105ff},
	{0x10737, 0x1073f}, {0x10756, 0x1075f}, {0x10768, 0x1077f},
	{0x10786, 0x10786}, {0x107b1, 0x107b1}, {0x107bb, 0x107ff},
	{0x10806, 0x10807}, {0x10809, 0x10809}, {0x10836, 0x10836},
	{0x10839, 0x1083b}, {0x1083d, 0x1083e}, {0x10856, 0x10856},
	{0x1089f, 0x108a6}, {0x108b0, 0x108df}, {0x108f3, 0x108f3},
	{0x108f6, 0x108fa}, {0x1091c, 0x1091e}, {0x1093a, 0x1093e},
	{0x10940, 0x1097f}, {0x109b8, 0x109bb}, {0x109d0, 0x109d1},
	{0x10a04, 0x10a04}, {0x10a07, 0x10a0b}, {0x10a14, 0x10a14},
	{0x10a18, 0x10a18}, {0x10a36, 0x10a37}, {0x10a3b, 0x10a3e},
	{0x10a49, 0x10a4f}, {0x10a59, 0x10a5f}, {0x10aa0, 0x10abf},
	{0x10ae7, 0x10aea}, {0x10af7, 0x10aff}, {0x10b36, 0x10b38},
	{0x10b56, 0x10b57}, {0x10b73, 0x10b77}, {0x10b92, 0x10b98},
	{0x10b9d, 0x10ba8}, {0x10bb0, 0x10bff}, {0x10c49, 0x10c7f},
	{0x10cb3, 0x10cbf}, {0x10cf3, 0x10cf9}, {0x10d28, 0x10d2f},
	{0x10d3a, 0x10e5f}, {0x10e7f, 0x10e7f}, {0x10eaa, 0x10eaa},
	{0x10eae, 0x10eaf}, {0x10eb2, 0x10eff}, {0x10f28, 0x10f2f},
	{0x10f5a, 0x10f6f}, {0x10f8a, 0x10faf}, {0x10fcc, 0x10fdf},
	{0x10ff7, 0x10fff}, {0x1104e, 0x11051}, {0x11076, 0x1107e},
	{0x110bd, 0x110bd}, {0x110c3, 0x110cf}, {0x110e9, 0x110ef},
	{0x110fa, 0x110ff}, {0x11135, 0x11135}, {0x11148, 0x1114f},
	{0x11177, 0x1117f}, {0x111e0, 0x111e0}, {0x111f5, 0x111ff},
	{0x11212, 0x11212}, {0x1123f, 0x1127f}, {0x11287, 0x11287},
	{0x11289, 0x11289}, {0x1128e, 0x1128e}, {0x1129e, 0x1129e},
	{0x112aa, 0x112af}, {0x112eb, 0x112ef}, {0x112fa, 0x112ff},
	{0x11304, 0x11304}, {0x1130d, 0x1130e}, {0x11311, 0x11312},
	{0x11329, 0x11329}, {0x11331, 0x11331}, {0x11334, 0x11334},
	{0x1133a, 0x1133a}, {0x11345, 0x11346}, {0x11349, 0x1134a},
	{0x1134e, 0x1134f}, {0x11351, 0x11356}, {0x11358, 0x1135c},
	{0x11364, 0x11365}, {0x1136d, 0x1136f}, {0x11375, 0x113ff},
	{0x1145c, 0x1145c}, {0x11462, 0x1147f}, {0x114c8, 0x114cf},
	{0x114da, 0x1157f}, {0x115b6, 0x115b7}, {0x115de, 0x115ff},
	{0x11645, 0x1164f}, {0x1165a, 0x1165f}, {0x1166d, 0x1167f},
	{0x116ba, 0x116bf}, {0x116ca, 0x116ff}, {0x1171b, 0x1171c},
	{0x1172c, 0x1172f}, {0x11747, 0x117ff}, {0x1183c, 0x1189f},
	{0x118f3, 0x118fe}, {0x11907, 0x11908}, {0x1190a, 0x1190b},
	{0x11914, 0x11914}, {0x11917, 0x11917}, {0x11936, 0x11936},
	{0x11939, 0x1193a}, {0x11947, 0x1194f}, {0x1195a, 0x1199f},
	{0x119a8, 0x119a9}, {0x119d8, 0x119d9}, {0x119e5, 0x119ff},
	{0x11a48, 0x11a4f}, {0x11aa3, 0x11aaf}, {0x11af9, 0x11bff},
	{0x11c09, 0x11c09}, {0x11c37, 0x11c37}, {0x11c46, 0x11c4f},
	{0x11c6d, 0x11c6f}, {0x11c90, 0x11c91}, {0x11ca8, 0x11ca8},
	{0x11cb7, 0x11cff}, {0x11d07, 0x11d07}, {0x11d0a, 0x11d0a},
	{0x11d37, 0x11d39}, {0x11d3b, 0x11d3b}, {0x11d3e, 0x11d3e},
	{0x11d48, 0x11d4f}, {0x11d5a, 0x11d5f}, {0x11d66, 0x11d66},
	{0x11d69, 0x11d69}, {0x11d8f, 0x11d8f}, {0x11d92, 0x11d92},
	{0x11d99, 0x11d9f}, {0x11daa, 0x11edf}, {0x11ef9, 0x11faf},
	{0x11fb1, 0x11fbf}, {0x11ff2, 0x11ffe}, {0x1239a, 0x123ff},
	{0x1246f, 0x1246f}, {0x12475, 0x1247f}, {0x12544, 0x12f8f},
	{0x12ff3, 0x12fff}, {0x1342f, 0x143ff}, {0x14647, 0x167ff},
	{0x16a39, 0x16a3f}, {0x16a5f, 0x16a5f}, {0x16a6a, 0x16a6d},
	{0x16abf, 0x16abf}, {0x16aca, 0x16acf}, {0x16aee, 0x16aef},
	{0x16af6, 0x16aff}, {0x16b46, 0x16b4f}, {0x16b5a, 0x16b5a},
	{0x16b62, 0x16b62}, {0x16b78, 0x16b7c}, {0x16b90, 0x16e3f},
	{0x16e9b, 0x16eff}, {0x16f4b, 0x16f4e}, {0x16f88, 0x16f8e},
	{0x16fa0, 0x16fdf}, {0x16fe5, 0x16fef}, {0x16ff2, 0x16fff},
	{0x187f8, 0x187ff}, {0x18cd6, 0x18cff}, {0x18d09, 0x1afef},
	{0x1aff4, 0x1aff4}, {0x1affc, 0x1affc}, {0x1afff, 0x1afff},
	{0x1b123, 0x1b14f}, {0x1b153, 0x1b163}, {0x1b168, 0x1b16f},
	{0x1b2fc, 0x1bbff}, {0x1bc6b, 0x1bc6f}, {0x1bc7d, 0x1bc7f},
	{0x1bc89, 0x1bc8f}, {0x1bc9a, 0x1bc9b}, {0x1bca0, 0x1ceff},
	{0x1cf2e, 0x1cf2f}, {0x1cf47, 0x1cf4f}, {0x1cfc4, 0x1cfff},
	{0x1d0f6, 0x1d0ff}, {0x1d127, 0x1d128}, {0x1d173, 0x1d17a},
	{0x1d1eb, 0x1d1ff}, {0x1d246, 0x1d2df}, {0x1d2f4, 0x1d2ff},
	{0x1d357, 0x1d35f}, {0x1d379, 0x1d3ff}, {0x1d455, 0x1d455},
	{0x1d49d, 0x1d49d}, {0x1d4a0, 0x1d4a1}, {0x1d4a3, 0x1d4a4},
	{0x1d4a7, 0x1d4a8}, {0x1d4ad, 0x1d4ad}, {0x1d4ba, 0x1d4ba},
	{0x1d4bc, 0x1d4bc}, {0x1d4c4, 0x1d4c4}, {0x1d506, 0x1d506},
	{0x1d50b, 0x1d50c}, {0x1d515, 0x1d515}, {0x1d51d, 0x1d51d},
	{0x1d53a, 0x1d53a}, {0x1d53f, 0x1d53f}, {0x1d545, 0x1d545},
	{0x1d547, 0x1d549}, {0x1d551, 0x1d551}, {0x1d6a6, 0x1d6a7},
	{0x1d7cc, 0x1d7cd}, {0x1da8c, 0x1da9a}, {0x1daa0, 0x1daa0},
	{0x1dab0, 0x1deff}, {0x1df1f, 0x1dfff}, {0x1e007, 0x1e007},
	{0x1e019, 0x1e01a}, {0x1e022, 0x1e022}, {0x1e025, 0x1e025},
	{0x1e02b, 0x1e0ff}, {0x1e12d, 0x1e12f}, {0x1e13e, 0x1e13f},
	{0x1e14a, 0x1e14d}, {0x1e150, 0x1e28f}, {0x1e2af, 0x1e2bf},
	{0x1e2fa, 0x1e2fe}, {0x1e300, 0x1e7df}, {0x1e7e7, 0x1e7e7},
	{0x1e7ec, 0x1e7ec}, {0x1e7ef, 0x1e7ef}, {0x1e7ff, 0x1e7ff},
	{0x1e8c5, 0x1e8c6}, {0x1e8d7, 0x1e8ff}, {0x1e94c, 0x1e94f},
	{0x1e95a, 0x1e95d}, {0x1e960, 0x1ec70}, {0x1ecb5, 0x1ed00},
	{0x1ed3e, 0x1edff}, {0x1ee04, 0x1ee04}, {0x1ee20, 0x1ee20},
	{0x1ee23, 0x1ee23}, {0x1ee25, 0x1ee26}, {0x1ee28, 0x1ee28},
	{0x1ee33, 0x1ee33}, {0x1ee38, 0x1ee38}, {0x1ee3a, 0x1ee3a},
	{0x1ee3c, 0x1ee41}, {0x1ee43, 0x1ee46}, {0x1ee48, 0x1ee48},
	{0x1ee4a, 0x1ee4a}, {0x1ee4c, 0x1ee4c}, {0x1ee50, 0x1ee50},
	{0x1ee53, 0x1ee53}, {0x1ee55, 0x1ee56}, {0x1ee58, 0x1ee58},
	{0x1ee5a, 0x1ee5a}, {0x1ee5c, 0x1ee5c}, {0x1ee5e, 0x1ee5e},
	{0x1ee60, 0x1ee60}, {0x1ee63, 0x1ee63}, {0x1ee65, 0x1ee66},
	{0x1ee6b, 0x1ee6b}, {0x1ee73, 0x1ee73}, {0x1ee78, 0x1ee78},
	{0x1ee7d, 0x1ee7d}, {0x1ee7f, 0x1ee7f}, {0x1ee8a, 0x1ee8a},
	{0x1ee9c, 0x1eea0}, {0x1eea4, 0x1eea4}, {0x1eeaa, 0x1eeaa},
	{0x1eebc, 0x1eeef}, {0x1eef2, 0x1efff}, {0x1f02c, 0x1f02f},
	{0x1f094, 0x1f09f}, {0x1f0af, 0x1f0b0}, {0x1f0c0, 0x1f0c0},
	{0x1f0d0, 0x1f0d0}, {0x1f0f6, 0x1f0ff}, {0x1f1ae, 0x1f1e5},
	{0x1f203, 0x1f20f}, {0x1f23c, 0x1f23f}, {0x1f249, 0x1f24f},
	{0x1f252, 0x1f25f}, {0x1f266, 0x1f2ff}, {0x1f6d8, 0x1f6dc},
	{0x1f6ed, 0x1f6ef}, {0x1f6fd, 0x1f6ff}, {0x1f774, 0x1f77f},
	{0x1f7d9, 0x1f7df}, {0x1f7ec, 0x1f7ef}, {0x1f7f1, 0x1f7ff},
	{0x1f80c, 0x1f80f}, {0x1f848, 0x1f84f}, {0x1f85a, 0x1f85f},
	{0x1f888, 0x1f88f}, {0x1f8ae, 0x1f8af}, {0x1f8b2, 0x1f8ff},
	{0x1fa54, 0x1fa5f}, {0x1fa6e, 0x1fa6f}, {0x1fa75, 0x1fa77},
	{0x1fa7d, 0x1fa7f}, {0x1fa87, 0x1fa8f}, {0x1faad, 0x1faaf},
	{0x1fabb, 0x1fabf}, {0x1fac6, 0x1facf}, {0x1fada, 0x1fadf},
	{0x1fae8, 0x1faef}, {0x1faf7, 0x1faff}, {0x1fb93, 0x1fb93},
	{0x1fbcb, 0x1fbef}, {0x1fbfa, 0x1ffff}, {0x2a6e0, 0x2a6ff},
	{0x2b739, 0x2b73f}, {0x2b81e, 0x2b81f}, {0x2cea2, 0x2ceaf},
	{0x2ebe1, 0x2f7ff}, {0x2fa1e, 0x2ffff}, {0x3134b, 0xe00ff},
	{0xe01f0, 0x10ffff},
};
static const size_t n_unprintable = sizeof(unprintable) / sizeof(unprintable[0]);

/* Python's str.isprintable() for one non-ASCII code point (Python 3.11). */
static bool py_printable(uint32_t c)
{
	size_t lo = 0, hi = n_unprintable, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (c < unprintable[mid][0])
			hi = mid;
		else if (c > unprintable[mid][1])
			lo = mid + 1;
		else
			return false;
	}
	return true;
}

/* Append repr(s) for a UTF-8 string s, as Python 3 writes it. */
static int py_repr_str(const char *str, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), i, n;
	char q = '\'';
	uint32_t c;
	int ret = 0;

	if (strchr(str, '\'') && !strchr(str, '"'))
		q = '"';
	ret = buf_addch(out, q);
	for (i = 0; i < len && !ret; i += n) {
		n = npy_utf8_get(s + i, len - i, &c);
		if (!n)
			return -EINVAL;
		if (c == (uint32_t)q || c == '\\')
			ret = buf_addf(out, "\\%c", (char)c);
		else if (c == '\t')
			ret = buf_adds(out, "\\t");
		else if (c == '\n')
			ret = buf_adds(out, "\\n");
		else if (c == '\r')
			ret = buf_adds(out, "\\r");
		else if (c < 0x20 || c == 0x7f)
			ret = buf_addf(out, "\\x%02x", (unsigned)c);
		else if (c < 0x7f || py_printable(c))
			ret = buf_add(out, s + i, n);
		else if (c <= 0xff)
			ret = buf_addf(out, "\\x%02x", (unsigned)c);
		else if (c <= 0xffff)
			ret = buf_addf(out, "\\u%04x", (unsigned)c);
		else
			ret = buf_addf(out, "\\U%08x", (unsigned)c);
	}
	return ret ? ret : buf_addch(out, q);
}

int npy_shape_format(int ndim, const uint64_t *shape, struct buf *out)
{
	int i, ret;

	ret = buf_addch(out, '(');
	for (i = 0; i < ndim && !ret; i++)
		ret = buf_addf(out, i ? ", %llu" : "%llu", (unsigned long long)shape[i]);
	if (!ret && ndim == 1)
		ret = buf_addch(out, ',');
	return ret ? ret : buf_addch(out, ')');
}

/* The type string without quotes: "<f8", "|S3", "<M8[10s]". */
static int format_typestr(const struct npy_dtype *dt, struct buf *out)
{
	static const char kinds[] = {
		[NPY_BOOL] = 'b', [NPY_INT] = 'i', [NPY_UINT] = 'u',
		[NPY_FLOAT] = 'f', [NPY_COMPLEX] = 'c', [NPY_BYTES] = 'S',
		[NPY_STR] = 'U', [NPY_VOID] = 'V', [NPY_DATETIME] = 'M',
		[NPY_TIMEDELTA] = 'm', [NPY_OBJECT] = 'O',
	};
	char order = dt->order;
	int ret;

	if ((unsigned)dt->kind >= sizeof(kinds) || !kinds[dt->kind])
		return -EINVAL;
	if (dt->kind == NPY_BOOL || dt->kind == NPY_BYTES || dt->kind == NPY_VOID ||
	    dt->kind == NPY_OBJECT || dt->itemsize == 1)
		order = '|';
	else if (order != '>')
		order = '<';
	if (dt->kind == NPY_OBJECT)
		return buf_adds(out, "|O");
	ret = buf_addf(out, "%c%c%zu", order, kinds[dt->kind],
		       dt->kind == NPY_STR ? dt->itemsize / 4 : dt->itemsize);
	if (ret || (dt->kind != NPY_DATETIME && dt->kind != NPY_TIMEDELTA) ||
	    dt->unit == NPY_UNIT_GENERIC)
		return ret;
	if (dt->unit_mult != 1)
		return buf_addf(out, "[%lld%s]", (long long)dt->unit_mult,
				npy_unit_name(dt->unit));
	return buf_addf(out, "[%s]", npy_unit_name(dt->unit));
}

int npy_dtype_format(const struct npy_dtype *dt, struct buf *out)
{
	const struct npy_field *f;
	size_t i, at = 0;
	int ret = 0;
	bool first = true;

	if (dt->kind != NPY_RECORD) {
		ret = buf_addch(out, '\'');
		if (!ret)
			ret = format_typestr(dt, out);
		return ret ? ret : buf_addch(out, '\'');
	}
	ret = buf_addch(out, '[');
	for (i = 0; i <= dt->nfields && !ret; i++) {
		f = i < dt->nfields ? &dt->fields[i] : NULL;
		if (f && f->offset < at)
			return -EINVAL;	/* overlapping or unordered fields */
		if ((f ? f->offset : dt->itemsize) > at) {
			ret = buf_addf(out, "%s('', '|V%zu')", first ? "" : ", ",
				       (f ? f->offset : dt->itemsize) - at);
			first = false;
		}
		if (ret || !f)
			break;
		ret = buf_adds(out, first ? "(" : ", (");
		first = false;
		if (!ret && f->title) {
			ret = buf_addch(out, '(');
			if (!ret)
				ret = py_repr_str(f->title, out);
			if (!ret)
				ret = buf_adds(out, ", ");
		}
		if (!ret)
			ret = py_repr_str(f->name ? f->name : "", out);
		if (!ret && f->title)
			ret = buf_addch(out, ')');
		if (!ret)
			ret = buf_adds(out, ", ");
		if (!ret)
			ret = npy_dtype_format(&f->type, out);
		if (!ret && f->ndim > 0) {
			ret = buf_adds(out, ", ");
			if (!ret)
				ret = npy_shape_format(f->ndim, f->shape, out);
		}
		if (!ret)
			ret = buf_addch(out, ')');
		at = f->offset + f->type.itemsize * (f->ndim > 0 ? f->count : 1);
	}
	return ret ? ret : buf_addch(out, ']');
}

/* ---- headers -------------------------------------------------------------- */

void npy_header_release(struct npy_header *hdr)
{
	npy_dtype_release(&hdr->dtype);
	free(hdr->descr);
	free(hdr->dict);
	memset(hdr, 0, sizeof(*hdr));
}

int npy_header_copy(struct npy_header *dst, const struct npy_header *src)
{
	*dst = *src;
	memset(&dst->dtype, 0, sizeof(dst->dtype));
	dst->descr = NULL;
	dst->dict = NULL;
	if (npy_dtype_copy(&dst->dtype, &src->dtype) ||
	    (src->descr && !(dst->descr = strdup(src->descr))) ||
	    (src->dict && !(dst->dict = strdup(src->dict)))) {
		npy_header_release(dst);
		return -ENOMEM;
	}
	return 0;
}

/* count and data_len from shape and itemsize; -EINVAL on overflow. */
static int header_sizes(struct npy_header *hdr)
{
	uint64_t count = 1;
	bool zero = false;
	int i;

	for (i = 0; i < hdr->ndim; i++) {
		if (hdr->shape[i] > INT64_MAX)
			return -EINVAL;
		if (!hdr->shape[i])
			zero = true;
		else if (count > INT64_MAX / hdr->shape[i])
			count = UINT64_MAX;	/* overflow, unless empty */
		else
			count *= hdr->shape[i];
	}
	if (zero)
		count = 0;
	if (count > INT64_MAX ||
	    (hdr->dtype.itemsize && count > INT64_MAX / hdr->dtype.itemsize))
		return -EINVAL;
	hdr->count = count;
	hdr->data_len = count * hdr->dtype.itemsize;
	return 0;
}

/* Fill hdr from a parsed dict literal (hdr zeroed; on error the caller
 * releases it). */
static int header_from_lit(struct lp *p, const struct lit *d,
			   struct npy_header *hdr)
{
	static const char *const keys[] = { "descr", "fortran_order", "shape" };
	const struct lit *vals[3] = { NULL, NULL, NULL }, *k, *v;
	char q[MSG_QUOTE_SIZE];
	size_t i, j;
	int ret;

	if (d->type != LIT_DICT)
		return lp_fail(p, d->start, "expected a dict");
	for (i = 0; i < d->n; i += 2) {
		k = &d->kids[i];
		if (k->type != LIT_STR)
			return lp_fail(p, k->start, "expected a string key");
		for (j = 0; j < 3 && strcmp(k->str, keys[j]); j++)
			;
		if (j == 3)
			return lp_fail(p, k->start, "unexpected key '%s'",
				       msg_quote(q, k->str, k->slen));
		if (vals[j])
			return lp_fail(p, k->start, "duplicate key '%s'", keys[j]);
		vals[j] = &d->kids[i + 1];
	}
	for (j = 0; j < 3; j++)
		if (!vals[j])
			return lp_fail(p, d->end - 1, "missing key '%s'", keys[j]);

	p->ctx = "fortran_order";
	v = vals[1];
	if (v->type != LIT_TRUE && v->type != LIT_FALSE)
		return lp_fail(p, v->start, "expected True or False");
	hdr->fortran_order = v->type == LIT_TRUE;

	p->ctx = "shape";
	v = vals[2];
	if (v->type != LIT_TUPLE)
		return lp_fail(p, v->start, "expected a tuple");
	if (v->n > NPY_MAXDIMS)
		return lp_fail(p, v->start, "too many dimensions (%zu)", v->n);
	for (i = 0; i < v->n; i++) {
		k = &v->kids[i];
		if (k->type != LIT_INT)
			return lp_fail(p, k->start, "expected an integer");
		if (k->neg && (k->mag || k->big))
			return lp_fail(p, k->start, "negative dimension");
		if (k->big) {
			npz_err_set(p->err, "shape overflow");
			return -EINVAL;
		}
		hdr->shape[i] = k->mag;
	}
	hdr->ndim = (int)v->n;

	p->ctx = "descr";
	ret = dtype_from_lit(p, vals[0], &hdr->dtype);
	p->ctx = NULL;
	if (ret)
		return ret;
	if (header_sizes(hdr)) {
		npz_err_set(p->err, "shape overflow");
		return -EINVAL;
	}
	hdr->descr = text_dup(p->s + vals[0]->start, vals[0]->end - vals[0]->start,
			      p->latin1);
	hdr->dict = text_dup(p->s + d->start, d->end - d->start, p->latin1);
	if (!hdr->descr || !hdr->dict)
		return -ENOMEM;
	return 0;
}

static int parse_dict(struct lp *p, struct npy_header *hdr)
{
	struct lit d;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	lp_skip_ws(p);
	if (p->pos >= p->len || p->s[p->pos] != '{')
		return lp_fail(p, p->pos, "expected '{'");
	ret = lp_parse(p, &d);
	if (ret)
		return ret;
	ret = header_from_lit(p, &d, hdr);
	lit_free(&d);
	if (ret)
		npy_header_release(hdr);
	return ret;
}

int npy_header_parse_dict(const char *dict, size_t len, struct npy_header *hdr,
			  struct npz_err *err)
{
	struct lp p = { .s = (const unsigned char *)dict, .len = len, .err = err };

	return parse_dict(&p, hdr);
}

int npy_header_size(const void *data, size_t len, size_t *total,
		    struct npz_err *err)
{
	const unsigned char *s = data;
	size_t prefix, hlen;

	if (len && memcmp(s, npy_magic, len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN)) {
		npz_err_set(err, "bad magic");
		return -EINVAL;
	}
	if (len < NPY_MAGIC_LEN + 2) {
		npz_err_set(err, "truncated magic (%zu bytes)", len);
		return -EINVAL;
	}
	if ((s[6] != 1 && s[6] != 2 && s[6] != 3) || s[7] != 0) {
		npz_err_set(err, "unsupported version %u.%u", s[6], s[7]);
		return -EINVAL;
	}
	prefix = s[6] == 1 ? 10 : 12;
	if (len < prefix) {
		npz_err_set(err, "truncated header length (%zu bytes)", len);
		return -EINVAL;
	}
	hlen = (size_t)s[8] | (size_t)s[9] << 8;
	if (prefix == 12)
		hlen |= (size_t)s[10] << 16 | (size_t)s[11] << 24;
	if (hlen > NPY_HEADER_MAX) {
		npz_err_set(err, "header length %zu too large", hlen);
		return -EINVAL;
	}
	if (len < NPY_PREFIX_MAX && prefix + hlen > len) {
		npz_err_set(err, "header length %zu past end of file (%zu bytes)",
			    hlen, len);
		return -EINVAL;
	}
	*total = prefix + hlen;
	return 0;
}

int npy_header_parse(const void *data, size_t len, struct npy_header *hdr,
		     struct npz_err *err)
{
	const unsigned char *s = data;
	struct lp p = { .err = err };
	size_t total;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	ret = npy_header_size(data, len, &total, err);
	if (ret)
		return ret;
	if (total > len) {
		npz_err_set(err, "header length %zu past end of file (%zu bytes)",
			    total - (s[6] == 1 ? 10 : 12), len);
		return -EINVAL;
	}
	p.base = s[6] == 1 ? 10 : 12;
	p.s = s + p.base;
	p.len = total - p.base;
	p.latin1 = s[6] < 3;
	p.no_long = !p.latin1;
	if (!p.latin1) {
		/* 3.0 is UTF-8 throughout, padding included */
		size_t i, n;
		uint32_t c;

		for (i = 0; i < p.len; i += n) {
			n = npy_utf8_get(p.s + i, p.len - i, &c);
			if (!n) {
				npz_err_set(err, "invalid UTF-8 at byte %zu", p.base + i);
				return -EINVAL;
			}
		}
	}
	ret = parse_dict(&p, hdr);
	if (ret)
		return ret;
	hdr->major = s[6];
	hdr->minor = 0;
	hdr->header_len = total;
	return 0;
}

/* "{'descr': D, 'fortran_order': F, 'shape': S, }" as numpy writes it. */
static int format_dict(const struct npy_header *hdr, struct buf *out)
{
	int ret;

	ret = buf_adds(out, "{'descr': ");
	if (!ret && hdr->descr)
		ret = buf_adds(out, hdr->descr);
	else if (!ret)
		ret = npy_dtype_format(&hdr->dtype, out);
	if (!ret)
		ret = buf_addf(out, ", 'fortran_order': %s, 'shape': ",
			       hdr->fortran_order ? "True" : "False");
	if (!ret)
		ret = npy_shape_format(hdr->ndim, hdr->shape, out);
	return ret ? ret : buf_adds(out, ", }");
}

int npy_header_format(const struct npy_header *hdr, struct buf *out)
{
	struct buf d = BUF_INIT, enc = BUF_INIT;
	const unsigned char *s;
	size_t i, n, hlen, pad, prefix, spaces = 0;
	uint64_t grow;
	bool latin1 = true;
	uint32_t c;
	int ret, major;

	if (hdr->ndim < 0 || hdr->ndim > NPY_MAXDIMS)
		return -EINVAL;
	ret = format_dict(hdr, &d);
	if (ret)
		goto out_release;
	if (hdr->ndim > 0) {
		grow = hdr->shape[hdr->fortran_order ? hdr->ndim - 1 : 0];
		for (spaces = GROWTH_AXIS_MAX_DIGITS - 1; grow >= 10; grow /= 10)
			spaces--;
	}
	s = (const unsigned char *)d.data;
	for (i = 0; i < d.len && !ret; i += n) {
		n = npy_utf8_get(s + i, d.len - i, &c);
		if (!n || !c)
			ret = -EINVAL;
		else if (c > 0xff)
			latin1 = false;
		else
			ret = buf_addch(&enc, (char)c);
	}
	if (ret)
		goto out_release;
	if (!latin1) {
		buf_reset(&enc);
		ret = buf_add(&enc, d.data, d.len);
		if (ret)
			goto out_release;
	}
	hlen = enc.len + spaces + 1;
	major = latin1 ? 1 : 3;
	prefix = major == 1 ? 10 : 12;
	pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
	if (major == 1 && hlen + pad > 0xffff) {
		major = 2;
		prefix = 12;
		pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
	}
	if (hlen + pad > 0xffffffffu) {
		ret = -EINVAL;
		goto out_release;
	}
	n = hlen + pad;
	ret = buf_grow(out, prefix + n);
	if (ret)
		goto out_release;
	buf_add(out, npy_magic, NPY_MAGIC_LEN);
	buf_addch(out, (char)major);
	buf_addch(out, 0);
	buf_addch(out, (char)(n & 0xff));
	buf_addch(out, (char)(n >> 8 & 0xff));
	if (prefix == 12) {
		buf_addch(out, (char)(n >> 16 & 0xff));
		buf_addch(out, (char)(n >> 24 & 0xff));
	}
	buf_add(out, enc.data, enc.len);
	for (i = 0; i < spaces + pad; i++)
		buf_addch(out, ' ');
	buf_addch(out, '\n');

out_release:
	buf_release(&d);
	buf_release(&enc);
	return ret;
}

int npy_header_init(struct npy_header *hdr, const struct npy_dtype *dt,
		    int ndim, const uint64_t *shape, bool fortran_order)
{
	struct buf b = BUF_INIT;
	int ret;

	memset(hdr, 0, sizeof(*hdr));
	if (ndim < 0 || ndim > NPY_MAXDIMS)
		return -EINVAL;
	ret = npy_dtype_copy(&hdr->dtype, dt);
	if (ret)
		return ret;
	hdr->ndim = ndim;
	if (ndim)
		memcpy(hdr->shape, shape, (size_t)ndim * sizeof(*shape));
	hdr->fortran_order = fortran_order;
	ret = header_sizes(hdr);
	if (ret)
		goto out_release;
	ret = npy_dtype_format(dt, &b);
	if (ret)
		goto out_release;
	hdr->descr = buf_detach(&b, NULL);
	ret = hdr->descr ? format_dict(hdr, &b) : -ENOMEM;
	if (ret)
		goto out_release;
	hdr->dict = buf_detach(&b, NULL);
	ret = hdr->dict ? npy_header_format(hdr, &b) : -ENOMEM;
	if (ret)
		goto out_release;
	hdr->major = (unsigned char)b.data[6];
	hdr->minor = 0;
	hdr->header_len = b.len;
	buf_release(&b);
	return 0;

out_release:
	buf_release(&b);
	npy_header_release(hdr);
	return ret;
}
