/* buf.h - growable byte buffer (after git's strbuf).
 *
 * Invariants: data is never NULL and always NUL-terminated at data[len]
 * (the terminator is not counted in len), so a buf can be used as a C string.
 * Not thread-safe; a buf belongs to one owner at a time.
 */
#ifndef NPZFS_BUF_H
#define NPZFS_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;	/* 0 while data points at the shared empty string */
};

extern char buf_empty_[];
#define BUF_INIT { buf_empty_, 0, 0 }

void buf_init(struct buf *b);
/* Free the memory and re-initialise b to empty. */
void buf_release(struct buf *b);
/* Make room for `extra` more bytes.  Returns 0 or -ENOMEM (b unchanged). */
int buf_grow(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Set len to 0, keeping the memory. */
void buf_reset(struct buf *b);
/* Hand the memory to the caller (free() it); b becomes empty.  Returns
 * NULL only if b was empty and a 1-byte allocation failed. */
char *buf_detach(struct buf *b, size_t *len);

#endif
