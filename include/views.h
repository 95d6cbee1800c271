/* views.h - the kinds of view an array NAME.npy can have beside it
 * (-o views=txt,csv,png): their names and suffixes, which arrays have
 * them, their size bounds, and their codecs (render, parse back) with the
 * callbacks of text.h.  The mount (src/mount/) knows views only through
 * this table; adding a kind is an entry in src/views.c.
 * Pure data and functions: reentrant. */
#ifndef NPZFS_VIEWS_H
#define NPZFS_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "npy.h"
#include "text.h"

enum view_id { VIEW_TXT, VIEW_CSV, VIEW_PNG, VIEW_KINDS };

#define VIEWS_DEFAULT (1u << VIEW_TXT)

struct view_kind {
	const char *name;	/* in -o views= ("csv") */
	const char *label;	/* in messages: "the CSV view" */
	const char *suffix;	/* ".csv": four bytes, like ".npy" */
	/* Does hdr's array have this view? */
	bool (*visible)(const struct npy_header *hdr);
	/* Is the view of hdr's array read-only (mode 0444, writes fail with
	 * EACCES)?  NULL: never. */
	bool (*read_only)(const struct npy_header *hdr);
	/* An upper bound on the rendered size: ls -l renders a view to learn
	 * its size only when this is small (TREE_STAT_TEXT_MAX). */
	uint64_t (*size_bound)(const struct npy_header *hdr);
	/* Render from the start to the end (the mount never asks for a
	 * window: it cuts windows out of the stream), like text_format. */
	int (*format)(const struct npy_header *hdr, const struct text_src *src,
		      const struct text_sink *sink, struct npz_err *err);
	/* Parse written bytes back, like text_parse; base is the array the
	 * view shows (NULL for a new file). */
	int (*parse)(const char *data, size_t len,
		     const struct npy_header *base, struct npy_header *hdr,
		     const struct text_out *out, struct npz_err *err);
};

/* Kind k (< VIEW_KINDS), or NULL when it is not built in. */
const struct view_kind *view_kind(enum view_id k);

/* Parse a list of view names ("txt,csv"; ':' separates too; "" is none)
 * into a mask of 1 << VIEW_*.  Returns 0, or -EINVAL with a message naming
 * the unknown name. */
int views_parse(const char *list, unsigned *mask, struct npz_err *err);

#endif
