/* convert.h - turn written content into a member's bytes: check a .npy,
 * or parse a view (text, CSV) into a .npy.  Knows nothing of the tree or zip.
 * Reentrant; the caller owns every wbuf passed in. */
#ifndef NPZFS_CONVERT_H
#define NPZFS_CONVERT_H

#include "err.h"
#include "npy.h"
#include "wbuf.h"

/* Check that w holds a valid .npy whose data length matches its header.
 * An object array (an 'O' anywhere in its dtype: numpy pickles its data)
 * only needs a non-empty data part ending like a pickle (STOP opcode '.');
 * it is never unpickled.  Returns 0, or -EINVAL with a one-line reason in
 * err. */
int convert_check_npy(struct wbuf *w, struct npz_err *err);

/* Parse the view of kind k in `text` (the dtype and shape rules of its
 * parse: text_parse, csv_parse; base is the array being replaced, or NULL)
 * and write the complete .npy into `out` (initialised, empty).  Returns 0,
 * or -EINVAL with "line N: ..." in err, or -ENOMEM / -ENOSPC; on failure
 * out's content is unspecified. */
struct view_kind;
int convert_view_to_npy(const struct view_kind *k, struct wbuf *text,
			const struct npy_header *base, struct wbuf *out,
			struct npz_err *err);

#endif
