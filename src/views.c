/* views.c - the table of view kinds (include/views.h).
 *  Invariant: every kind's parse(format(a), base = a) gives a back. */
#include <errno.h>
#include <string.h>

#include "csv.h"
#include "views.h"

static const struct view_kind kinds[VIEW_KINDS] = {
	[VIEW_TXT] = { .name = "txt", .label = "text", .suffix = ".txt",
		       .visible = text_viewable, .size_bound = text_size_bound,
		       .format = text_format, .parse = text_parse },
	[VIEW_CSV] = { .name = "csv", .label = "CSV", .suffix = ".csv",
		       .visible = csv_viewable, .size_bound = csv_size_bound,
		       .format = csv_format, .parse = csv_parse },
	/* TODO(png): the PNG codec (include/pngview.h, src/image/) is not in
	 * this table yet.  To plug it in: #include "pngview.h", and here
	 *   [VIEW_PNG] = { .name = "png", .label = "PNG", .suffix = ".png",
	 *		    .visible = png_visible, .read_only = png_read_only,
	 *		    .size_bound = png_size_bound, .format = png_format,
	 *		    .parse = png_parse_view },
	 * with png_visible(h) = png_view_kind(h) != PNG_VIEW_NONE,
	 * png_read_only(h) = png_view_kind(h) == PNG_VIEW_HEATMAP and
	 * png_parse_view passing its arguments on to png_parse (which takes
	 * const void *).  Until then views=png is accepted and shows no
	 * .png files (names[] below). */
};

/* Names -o views= accepts, built in or not. */
static const char *const names[VIEW_KINDS] = { "txt", "csv", "png" };

const struct view_kind *view_kind(enum view_id k)
{
	return k < VIEW_KINDS && kinds[k].name ? &kinds[k] : NULL;
}

int views_parse(const char *list, unsigned *mask, struct npz_err *err)
{
	const char *p = list;

	*mask = 0;
	while (*p) {
		size_t n = strcspn(p, ",:");
		unsigned k;

		for (k = 0; k < VIEW_KINDS; k++)
			if (strlen(names[k]) == n && !memcmp(p, names[k], n))
				break;
		if (n && k == VIEW_KINDS) {
			npz_err_set(err, "views=%s: unknown view '%.*s' (expected txt, csv or png)",
				    list, (int)n, p);
			return -EINVAL;
		}
		if (n)
			*mask |= 1u << k;
		p += n + (p[n] != '\0');
	}
	return 0;
}
