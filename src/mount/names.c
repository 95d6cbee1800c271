/* names.c - the name rules of the mount: member names to paths, array
 * names (NAME.npy and its views NAME.txt, NAME.csv, ...), editor backups.  Pure string functions.
 *  Invariant: name_member_path() never yields a ".." component. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mount_internal.h"

/* The last component of path ("/a/b" -> "b"). */
const char *name_base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Member name -> "/a/b" in out, without empty or "." components.
 * -EINVAL for ".." components or an empty result. */
int name_member_path(const char *name, struct buf *out, bool *is_dir)
{
	const char *p = name;
	int ret;

	buf_reset(out);
	*is_dir = name[0] && name[strlen(name) - 1] == '/';
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 2 && !memcmp(p, "..", 2))
			return -EINVAL;
		if (n && !(n == 1 && p[0] == '.')) {
			ret = buf_addch(out, '/');
			if (!ret)
				ret = buf_add(out, p, n);
			if (ret)
				return ret;
		}
		p += n + (e != NULL);
	}
	return out->len ? 0 : (*is_dir ? 0 : -EINVAL);
}

bool name_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !memcmp(s + n - m, suffix, m) && s[n - m - 1] != '/';
}

/* NAME_NPY for NAME.npy, view kind k for NAME.SUFFIX of a kind in views,
 * NAME_OTHER for other names. */
int name_array_kind(const char *path, unsigned views)
{
	if (name_ends_with(path, ".npy"))
		return NAME_NPY;
	for (int k = 0; k < VIEW_KINDS; k++)
		if ((views >> k & 1) && view_kind(k) &&
		    name_ends_with(path, view_kind(k)->suffix))
			return k;
	return NAME_OTHER;
}

/* The member name for a mount path: without the leading '/'. */
const char *name_member(const char *path)
{
	return path + 1;
}

/* "/d/x.txt" (any view suffix) or "/d/x.npy" -> member name "d/x.npy"
 * (heap). */
char *name_array_member(const char *path)
{
	char *m = strdup(name_member(path));

	if (m)
		memcpy(m + strlen(m) - 4, ".npy", 4);
	return m;
}

bool name_is_backup(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' || (n && name[n - 1] == '~');
}
