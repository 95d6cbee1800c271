/* commit.c - archive_commit(): check the change list, take the commit lock,
 * write the new archive ourselves (clone.c: a clone of the old file edited
 * where it changed, or a copy of it written from scratch), or else (-o
 * commit=rewrite, or nothing changed) turn the list into libzip edits of
 * the current archive (untouched members keep their entries and bytes) and
 * let libzip write it through writer.c's source; all open the new archive
 * from the file they wrote before renaming it into place (writer.c). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "zip_internal.h"

static int cmp_name_ptr(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Check the change list.  Returns 0 or -EINVAL/-ENOMEM with a message. */
static int check_changes(struct archive *a,
			 const struct archive_change *ch, size_t n,
			 struct npz_err *err)
{
	const char **names;
	size_t i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		const struct archive_change *c = &ch[i];

		if (!c->name || !*c->name || strlen(c->name) > UINT16_MAX) {
			npz_err_set(err, "change %zu: bad member name", i);
			return -EINVAL;
		}
		if (c->from >= 0 && (size_t)c->from >= a->count) {
			npz_err_set(err, "member %s: no member %zd to copy",
				    c->name, c->from);
			return -EINVAL;
		}
		if (c->patch && (c->from != -1 || c->patch_of >= a->count ||
				 a->m[c->patch_of].pub.method != c->method ||
				 a->m[c->patch_of].pub.size != c->size ||
				 (c->method != ARCHIVE_STORE &&
				  !archive_member_sozip(a, c->patch_of)) ||
				 (c->nranges && !c->ranges))) {
			npz_err_set(err, "member %s: bad patch", c->name);
			return -EINVAL;
		}
		if (c->from < -1 ||
		    (c->from == -1 && ((c->fd < 0 && !c->read) ||
				       (c->method != ARCHIVE_STORE &&
					c->method != ARCHIVE_DEFLATE) ||
				       c->level < -1 || c->level > 9))) {
			npz_err_set(err, "member %s: bad content, method or "
				    "level", c->name);
			return -EINVAL;
		}
	}
	if (n < 2)
		return 0;
	names = malloc(n * sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		names[i] = ch[i].name;
	qsort(names, n, sizeof(*names), cmp_name_ptr);
	for (i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			npz_err_set(err, "duplicate member name %s", names[i]);
			ret = -EINVAL;
			break;
		}
	}
	free(names);
	return ret;
}

/* How change k reaches the new archive. */
enum change_kind {
	CK_KEEP,	/* old entry kept in place (maybe renamed) */
	CK_REPLACE,	/* old entry of the same name, new content, in place */
	CK_COPY,	/* raw copy of an old member as a new entry */
	CK_ADD,		/* new entry, new content */
};

/* A name for a renamed entry between the two rename passes: in neither
 * the archive nor the change list. */
static int temp_member_name(zip_t *za, const struct archive_change *ch,
			    size_t n, char *buf, size_t len)
{
	static _Atomic unsigned long seq;
	size_t i;

	for (;;) {
		snprintf(buf, len, ".npzfs-rename-%lu", ++seq);
		if (zip_name_locate(za, buf, 0) >= 0)
			continue;
		for (i = 0; i < n && strcmp(ch[i].name, buf) != 0; i++)
			;
		if (i == n)
			return 0;
	}
}

/* Set method, level and mtime of entry idx for new content c. */
static int set_new_entry(zip_t *za, zip_uint64_t idx,
			 const struct archive_change *c)
{
	/* our deflate source hands libzip compressed data: the entry's
	 * method must say deflate so that libzip does not touch it */
	if (zip_set_file_compression(za, idx, c->method == ARCHIVE_DEFLATE ?
				     ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) < 0)
		return -1;
	return zip_file_set_mtime(za, idx, c->mtime, 0);
}

/* Decide how each change reaches the new archive (kind[k]): keep an old
 * entry where the list's order allows it; the rest is appended, in order.
 * claim[i] is the change that keeps old entry i, or -1 (entry deleted). */
static void plan_changes(const struct archive *a,
			 const struct archive_change *ch, size_t n,
			 ssize_t *claim, bool *wanted, unsigned char *kind)
{
	ssize_t last = -1;
	bool appending = false;
	size_t i, k, idx;

	for (i = 0; i < a->count; i++)
		claim[i] = -1;
	for (k = 0; k < n; k++)
		if (ch[k].from >= 0)
			wanted[ch[k].from] = true;

	for (k = 0; k < n; k++) {
		const struct archive_change *c = &ch[k];

		if (c->from >= 0) {
			if (!appending && claim[c->from] < 0 && c->from > last) {
				claim[c->from] = (ssize_t)k;
				last = c->from;
				kind[k] = CK_KEEP;
			} else {
				kind[k] = CK_COPY;
				appending = true;
			}
		} else if (!appending && archive_find(a, c->name, &idx) == 0 &&
			   !wanted[idx] && claim[idx] < 0 &&
			   (ssize_t)idx > last) {
			claim[idx] = (ssize_t)k;
			last = (ssize_t)idx;
			kind[k] = CK_REPLACE;
		} else {
			kind[k] = CK_ADD;
			appending = true;
		}
	}
}

/* Rename the kept entries whose name changes, in two passes (through
 * temporary names kept in tmp_names[k]), so that swaps and a->b over a
 * deleted b never collide.  Returns 0 or -1 (libzip's error in za, or
 * ENOMEM in *oom). */
static int rename_kept(const struct archive *a, zip_t *za,
		       const struct archive_change *ch, size_t n,
		       const unsigned char *kind, char **tmp_names, bool *oom)
{
	size_t k;

	for (k = 0; k < n; k++) {
		char buf[64];

		if (kind[k] != CK_KEEP ||
		    strcmp(ch[k].name, a->m[ch[k].from].pub.name) == 0)
			continue;
		temp_member_name(za, ch, n, buf, sizeof(buf));
		tmp_names[k] = strdup(buf);
		if (!tmp_names[k]) {
			*oom = true;
			return -1;
		}
		if (zip_file_rename(za, (zip_uint64_t)ch[k].from, buf, 0) < 0)
			return -1;
	}
	for (k = 0; k < n; k++)
		if (tmp_names[k] && zip_file_rename(za,
			(zip_uint64_t)ch[k].from, ch[k].name, 0) < 0)
			return -1;
	return 0;
}

/* Give the new entry ni, a raw copy of old member c->from, the old
 * entry's attributes, method and mtime. */
static int copy_entry_attributes(const struct archive *a, zip_t *za,
				 const struct archive_change *c,
				 zip_int64_t ni)
{
	const struct archive_member *m = &a->m[c->from].pub;
	zip_uint8_t opsys;
	zip_uint32_t attr;

	if (zip_file_get_external_attributes(za, (zip_uint64_t)c->from,
					     ZIP_FL_UNCHANGED, &opsys,
					     &attr) < 0 ||
	    zip_file_set_external_attributes(za, (zip_uint64_t)ni, 0, opsys,
					     attr) < 0 ||
	    zip_set_file_compression(za, (zip_uint64_t)ni, m->method, 0) < 0 ||
	    zip_file_set_mtime(za, (zip_uint64_t)ni, m->mtime, 0) < 0)
		return -1;
	return 0;
}

/* Put change c (kind CK_REPLACE, CK_COPY or CK_ADD) into za.  Returns 0
 * or -1 (libzip's error in za, or ENOMEM in *oom). */
static int put_change(struct archive *a, zip_t *za, struct file_src *s,
		      const struct archive_change *c, unsigned char kind,
		      bool *oom)
{
	zip_source_t *src;
	zip_int64_t ni;
	size_t idx;

	if (kind == CK_COPY)
		src = zip_source_zip(za, za, (zip_uint64_t)c->from,
				     ZIP_FL_COMPRESSED |
				     ZIP_FL_UNCHANGED, 0, -1);
	else
		src = ar_content_source(c, s);
	if (!src) {
		if (kind != CK_COPY)
			*oom = true;
		return -1;
	}
	if (kind == CK_REPLACE) {
		archive_find(a, c->name, &idx);
		if (zip_file_replace(za, idx, src, 0) < 0) {
			zip_source_free(src);
			return -1;
		}
		return set_new_entry(za, idx, c) < 0 ? -1 : 0;
	}
	ni = zip_file_add(za, c->name, src, 0);
	if (ni < 0) {
		zip_source_free(src);
		return -1;
	}
	if (kind == CK_COPY)
		return copy_entry_attributes(a, za, c, ni);
	if (zip_file_set_external_attributes(za, (zip_uint64_t)ni, 0,
					     ZIP_OPSYS_UNIX,
					     (zip_uint32_t)(S_IFREG | 0644)
						     << 16) < 0 ||
	    set_new_entry(za, (zip_uint64_t)ni, c) < 0)
		return -1;
	return 0;
}

/* Turn the change list into libzip calls on za (opened on the current
 * archive).  Returns 0 or -1 (libzip's error in za, or -ENOMEM in *oom). */
static int apply_changes(struct archive *a, zip_t *za, struct file_src *s,
			 const struct archive_change *ch, size_t n, bool *oom)
{
	ssize_t *claim = malloc((a->count ? a->count : 1) * sizeof(*claim));
	bool *wanted = calloc(a->count ? a->count : 1, sizeof(*wanted));
	unsigned char *kind = malloc(n ? n : 1);
	char **tmp_names = calloc(n ? n : 1, sizeof(*tmp_names));
	size_t i, k;
	int ret = -1;

	*oom = !claim || !wanted || !kind || !tmp_names;
	if (*oom)
		goto out_free;
	plan_changes(a, ch, n, claim, wanted, kind);

	/* Raw copies are set up first, from the archive as it is. */
	for (i = 0; i < a->count; i++)
		if (claim[i] < 0 && zip_delete(za, i) < 0)
			goto out_free;
	if (rename_kept(a, za, ch, n, kind, tmp_names, oom) < 0)
		goto out_free;
	for (k = 0; k < n; k++)
		if (kind[k] != CK_KEEP &&
		    put_change(a, za, s, &ch[k], kind[k], oom) < 0)
			goto out_free;
	ret = 0;
out_free:
	if (tmp_names)
		for (k = 0; k < n; k++)
			free(tmp_names[k]);
	free(tmp_names);
	free(kind);
	free(wanted);
	free(claim);
	return ret;
}

/* Take the commit lock of a's file and check that the file is still the one
 * a opened.  Returns 0 and *lfd, the lock's descriptor (-1: no lock file
 * can be made there), or -errno (-ESTALE: the file changed) with a message
 * and no lock held. */
static int commit_lock(struct archive *a, int *lfd_out, struct npz_err *err)
{
	char msg[NPZ_ERR_MSG_MAX] = "";
	int ret, lfd;

	lfd = ar_lock_take(a->path, true);
	if (lfd < -1) {
		npz_err_set(err, "%s: cannot take the commit lock: %s", a->path,
			    strerror(-lfd));
		return lfd;
	}
	ret = ar_check_same_file(a, msg, sizeof(msg));
	if (!ret && ar_file_unchanged(a))
		ret = -ESTALE;
	if (ret) {
		npz_err_set(err, "%s", msg[0] ? msg : "archive was rewritten "
			    "in place by another program");
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	*lfd_out = lfd;
	return 0;
}

/* Write the new archive through s: libzip opens the current one, the
 * changes are applied, zip_close() writes, fsyncs and renames (writer.c).
 * Returns 0 or -errno with a message. */
static int commit_write(struct archive *a, struct file_src *s,
			const struct archive_change *changes, size_t n,
			struct npz_err *err)
{
	zip_source_t *src;
	zip_error_t ze;
	zip_t *za;
	bool oom = false;
	int ret;

	zip_error_init(&ze);
	src = ar_fsrc_source(s, &ze);
	if (!src)
		return -ENOMEM;
	za = zip_open_from_source(src, 0, &ze);
	if (!za) {
		zip_source_free(src);
		ret = s->fail_errno ? -s->fail_errno : ar_zip_error_to_errno(&ze);
		npz_err_set(err, "%s: %s", a->path,
			    s->fail_errno ? s->msg : zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return ret;
	}
	zip_error_fini(&ze);
	if ((uint64_t)zip_get_num_entries(za, 0) != a->count) {
		zip_discard(za);
		npz_err_set(err, "%s: archive was modified by another program",
			    a->path);
		return -ESTALE;
	}
	if (apply_changes(a, za, s, changes, n, &oom) < 0) {
		ret = oom ? -ENOMEM : ar_zip_error_to_errno(zip_get_error(za));
		npz_err_set(err, "%s", oom ? strerror(ENOMEM) : zip_strerror(za));
		zip_discard(za);
		return ret;
	}
	if (zip_close(za) < 0) {
		if (s->fail_errno) {
			ret = -s->fail_errno;
			npz_err_set(err, "%s", s->msg);
		} else {
			ret = ar_zip_error_to_errno(zip_get_error(za));
			npz_err_set(err, "writing %s: %s", a->path,
				    zip_strerror(za));
		}
		if (ret == 0)
			ret = -EIO;
		zip_discard(za);
		return ret;
	}
	return 0;
}

int archive_commit(struct archive *a, const struct archive_change *changes,
		   size_t n, struct archive **out, struct npz_err *err)
{
	struct archive *nar = NULL;
	struct file_src s;
	int ret, lfd;

	ret = check_changes(a, changes, n, err);
	if (ret)
		return ret;
	/* lock, check, write, fsync, open the new file, rename, unlock */
	ret = commit_lock(a, &lfd, err);
	if (ret)
		return ret;
	ret = ar_fsrc_init(&s, a);
	if (!ret)
		ret = ar_clone_commit(a, changes, n, &s);
	if (ret < 0)
		npz_err_set(err, "%s", s.msg[0] ? s.msg : strerror(-ret));
	if (ret == AR_CLONE_DECLINED)
		ret = commit_write(a, &s, changes, n, err);
	if (!ret)
		nar = ar_fsrc_take_new(&s);
	/* nothing changed, so libzip wrote nothing: the file is a's, as
	 * commit_lock() checked under the lock */
	if (!ret && !nar)
		ret = ar_open_fd(a->fd, a->path, &nar, err);
	if (!ret)
		*out = nar;
	ar_fsrc_release(&s);	/* no temporary file survives a failure */
	if (lfd >= 0)
		close(lfd);
	return ret;
}
