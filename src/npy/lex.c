/* lex.c - a strict parser of Python literals, for header dicts and descrs.
 *
 * Invariants: accepts dict, list, tuple, str, int, True/False/None only;
 * never reads past p->len, never nests deeper than LIT_DEPTH_MAX, and fails
 * with -EINVAL and a message naming the byte ("expected ':' at byte 41").
 * Strings come out as UTF-8 whatever the input encoding (p->latin1).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_internal.h"

void npy_lit_free(struct lit *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		npy_lit_free(&v->kids[i]);
	free(v->kids);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

__attribute__((format(printf, 3, 4)))
int npy_lp_fail(struct lp *p, size_t pos, const char *fmt, ...)
{
	char msg[NPZ_ERR_MSG_MAX], q[MSG_QUOTE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->ctx)
		npz_err_set(p->err, "%s: %s at byte %zu",
			    npy_msg_quote(q, p->ctx, strlen(p->ctx)), msg, p->base + pos);
	else
		npz_err_set(p->err, "%s at byte %zu", msg, p->base + pos);
	return -EINVAL;
}

void npy_lp_skip_ws(struct lp *p)
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

/* One backslash escape (p->pos just past the backslash). */
static int lp_escape(struct lp *p, struct buf *b, size_t at)
{
	uint32_t c = 0;
	int ndig = 0, i, h;
	unsigned char e;

	if (p->pos >= p->len)
		return npy_lp_fail(p, at, "unterminated string");
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
		return npy_lp_fail(p, p->pos - 2, "bad escape in string");
	}
	for (i = 0; i < ndig; i++) {
		if (p->pos >= p->len ||
		    (h = npy_hex_digit((unsigned char)p->s[p->pos])) < 0)
			return npy_lp_fail(p, p->pos, "bad escape in string");
		c = c << 4 | (uint32_t)h;
		p->pos++;
	}
	if (c == 0)
		return npy_lp_fail(p, at, "NUL in string");
	if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return npy_lp_fail(p, at, "bad code point in string");
	return npy_utf8_put(b, c);
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
			ret = npy_lp_fail(p, v->start, "unterminated string");
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
			ret = npy_lp_fail(p, p->pos, "NUL in string");
		} else if (c < 0x80) {
			ret = buf_addch(&b, (char)c);
			p->pos++;
		} else if (p->latin1) {
			ret = npy_utf8_put(&b, c);
			p->pos++;
		} else if ((n = npy_utf8_get(p->s + p->pos, p->len - p->pos, &cp))) {
			ret = buf_add(&b, p->s + p->pos, n);
			p->pos += n;
		} else {
			ret = npy_lp_fail(p, p->pos, "invalid UTF-8");
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
		return npy_lp_fail(p, v->start, "expected a value");
	if (p->s[first] == '0' && (v->mag || v->big))
		return npy_lp_fail(p, first, "bad integer");
	/* Python 2's 3L: numpy filters it out of 1.0/2.0 headers; a text
	 * view's dict line takes it too, since hdr->dict keeps it */
	if (!p->no_long && p->pos < p->len && p->s[p->pos] == 'L')
		p->pos++;
	if (p->pos < p->len && (is_ident_byte(p->s[p->pos]) || p->s[p->pos] == '.'))
		return npy_lp_fail(p, v->start, "expected an integer");
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
	return npy_lp_fail(p, p->pos, "expected a value");
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
		return npy_lp_fail(p, p->pos, "nesting too deep");
	p->pos++;
	for (;;) {
		npy_lp_skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == close)
			break;
		ret = lp_item(p, v);
		if (ret)
			return ret;
		if (v->type == LIT_DICT) {
			npy_lp_skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return npy_lp_fail(p, p->pos, "expected ':'");
			p->pos++;
			key = &v->kids[v->n - 1];
			if (p->depth == 1 && key->type == LIT_STR)
				p->ctx = key->str;
			ret = lp_item(p, v);
			p->ctx = ctx;
			if (ret)
				return ret;
		}
		npy_lp_skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			*comma = true;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close)
			break;
		return npy_lp_fail(p, p->pos, "expected '%c'", close);
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

	npy_lp_skip_ws(p);
	v->start = p->pos;
	if (p->pos >= p->len)
		return npy_lp_fail(p, p->pos, "expected a value");
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
		ret = npy_lp_fail(p, p->pos, "unexpected byte 0x%02x", c);
	} else {
		ret = npy_lp_fail(p, p->pos, "unexpected '%c'", c);
	}
	v->end = p->pos;
	return ret;
}

/* Parse the whole text as one literal, allowing whitespace around it. */
int npy_lp_parse(struct lp *p, struct lit *v)
{
	int ret;

	memset(v, 0, sizeof(*v));
	ret = lp_value(p, v);
	if (!ret) {
		npy_lp_skip_ws(p);
		if (p->pos < p->len) {
			if (p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f)
				ret = npy_lp_fail(p, p->pos, "unexpected '%c' after the value",
						  p->s[p->pos]);
			else
				ret = npy_lp_fail(p, p->pos, "unexpected byte 0x%02x after the value",
						  p->s[p->pos]);
		}
	}
	if (ret)
		npy_lit_free(v);
	return ret;
}
