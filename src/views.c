/* views.c - the table of view kinds (include/views.h).
 *  Invariant: every kind's parse(format(a), base = a) gives a back. */
#include <errno.h>
#include <string.h>

#include "csv.h"
#include "pngview.h"
#include "views.h"

/* The PNG view (include/pngview.h): exact images are editable, other
 * real 2-d arrays are read-only heatmaps. */
static bool png_visible(const struct npy_header *hdr)
{
	return png_view_kind(hdr) != PNG_VIEW_NONE;
}

static bool png_read_only(const struct npy_header *hdr)
{
	return png_view_kind(hdr) == PNG_VIEW_HEATMAP;
}

/* A PNG holds no dtype: only an array's exact view parses back. */
static int png_parse_view(const char *data, size_t len,
			  const struct npy_header *base,
			  struct npy_header *hdr, const struct text_out *out,
			  struct npz_err *err)
{
	if (!base || png_view_kind(base) != PNG_VIEW_EXACT) {
		npz_err_set(err, "a PNG file can only replace the PNG view of an existing uint8 or uint16 image array");
		return -EINVAL;
	}
	return png_parse(data, len, base, hdr, out, err);
}

static const struct view_kind kinds[VIEW_KINDS] = {
	[VIEW_TXT] = { .name = "txt", .label = "text", .suffix = ".txt",
		       .visible = text_viewable, .size_bound = text_size_bound,
		       .format = text_format, .parse = text_parse },
	[VIEW_CSV] = { .name = "csv", .label = "CSV", .suffix = ".csv",
		       .visible = csv_viewable, .size_bound = csv_size_bound,
		       .format = csv_format, .parse = csv_parse },
	[VIEW_PNG] = { .name = "png", .label = "PNG", .suffix = ".png",
		       .visible = png_visible, .read_only = png_read_only,
		       .size_bound = png_size_bound, .format = png_format,
		       .parse = png_parse_view },
};

/* Names -o views= accepts. */
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
