/* token.c - tokens and lines of a text view, and the messages that name
 * them.
 *
 * Invariant: every message names the 1-based line of the text and quotes
 * at most TOK_MSG bytes of input, printable ASCII only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "parse_internal.h"

int text_fail(struct tp *t, const char *fmt, ...)
{
	char msg[NPZ_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->colno)
		npz_err_set(t->err, "line %zu, column %zu: %s", t->lineno,
			    t->colno, msg);
	else
		npz_err_set(t->err, "line %zu: %s", t->lineno, msg);
	return -EINVAL;
}

/* Quote a token for a message: printable ASCII, at most TOK_MSG bytes. */
const char *text_quote_tok(const char *s, size_t n, char *out)
{
	size_t i, m = n > TOK_MSG ? TOK_MSG : n;

	for (i = 0; i < m; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > m) {
		memcpy(out + m, "...", 3);
		m += 3;
	}
	out[m] = '\0';
	return out;
}

int text_fail_tok(struct tp *t, const char *s, size_t n,
		  const struct npy_dtype *dt, const char *why)
{
	char q[TOK_MSG + 4], name[48];

	text_dtype_name(dt, name, sizeof(name));
	return text_fail(t, "'%s' %s %s", text_quote_tok(s, n, q), why, name);
}

int text_fail_bad(struct tp *t, const char *s, size_t n,
		  const struct npy_dtype *dt)
{
	char q[TOK_MSG + 4], name[48];

	text_dtype_name(dt, name, sizeof(name));
	return text_fail(t, "bad value '%s' (expected %s)", text_quote_tok(s, n, q), name);
}

/* End of the token starting at p (not whitespace, not newline), or NULL
 * with a message for an unterminated string or garbage after one. */
const char *text_tok_end(struct tp *t, const char *p, const char *e)
{
	const char *q = p;

	if (*q == 'b' && q + 1 < e && q[1] == '"')
		q++;
	if (*q == '"') {
		for (q++; q < e && *q != '"' && *q != '\n'; q++)
			if (*q == '\\' && q + 1 < e && q[1] != '\n')
				q++;
		if (q >= e || *q != '"') {
			text_fail(t, "unterminated string");
			return NULL;
		}
		q++;
		if (q < e && ch_class[(unsigned char)*q] < CH_WS) {
			char m[TOK_MSG + 4];

			text_fail(t, "unexpected '%s' after a string",
				  text_quote_tok(q, 1, m));
			return NULL;
		}
		return q;
	}
	while (q < e && ch_class[(unsigned char)*q] < CH_WS)
		q++;
	return q;	/* bare: up to whitespace, quotes included */
}


int text_line_kind(const char *p, const char *e)
{
	while (p < e && is_ws(*p))
		p++;
	if (p == e)
		return L_BLANK;
	if (*p != '#')
		return L_DATA;
	for (p++; p < e && is_ws(*p); p++)
		;
	return p < e && *p == '[' ? L_SEP : L_COMMENT;
}
