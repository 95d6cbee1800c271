/* index.c - open an archive: find and parse the central directory (zip64
 * aware), cross-check it against libzip's listing, build the member table
 * and the name hash; close or retire an archive; look members up.
 *  Invariant: the member table never changes after archive_open(). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "zip_internal.h"

/* One entry of the central directory as parsed by us. */
struct cd_entry {
	const unsigned char *name;
	uint16_t name_len;
	uint16_t flags;
	uint16_t method;
	uint32_t crc;
	uint64_t comp_size;
	uint64_t size;
	uint64_t lh_off;
	size_t cd_pos;		/* the entry's offset in the central directory */
	size_t cd_len;		/* and length */
};

/* The one place libzip error codes become -errno. */
int ar_zip_error_to_errno(zip_error_t *ze)
{
	switch (zip_error_code_zip(ze)) {
	case ZIP_ER_OK:
		return 0;
	case ZIP_ER_OPEN:
	case ZIP_ER_READ:
	case ZIP_ER_SEEK:
	case ZIP_ER_TELL:
	case ZIP_ER_WRITE:
	case ZIP_ER_TMPOPEN:
	case ZIP_ER_RENAME:
	case ZIP_ER_CLOSE:
	case ZIP_ER_REMOVE:
		if (zip_error_system_type(ze) == ZIP_ET_SYS &&
		    zip_error_code_system(ze) > 0)
			return -zip_error_code_system(ze);
		return -EIO;
	case ZIP_ER_NOENT:
		return -ENOENT;
	case ZIP_ER_EXISTS:
		return -EEXIST;
	case ZIP_ER_MEMORY:
		return -ENOMEM;
	case ZIP_ER_NOZIP:
	case ZIP_ER_INCONS:
	case ZIP_ER_MULTIDISK:
	case ZIP_ER_EOF:
	case ZIP_ER_INVAL:
		return -EINVAL;
	case ZIP_ER_RDONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* zip64: a locator right before the EOCD at eocd points at the zip64 end
 * of central directory record, whose fields then replace the EOCD's, and
 * *cd_end becomes the record's offset.  No locator: nothing changes.
 * Returns 0 or -EINVAL (bad record) with a message. */
static int read_eocd64(struct archive *a, uint64_t eocd, uint64_t *cd_off,
		       uint64_t *cd_size, uint64_t *entries, uint64_t *cd_end,
		       struct npz_err *err)
{
	unsigned char loc[20], rec[56];
	uint64_t rec_off;

	if (eocd < 20 || ar_pread_full(a->fd, loc, 20, eocd - 20) != 20 ||
	    get32(loc) != SIG_EOCD64_LOC)
		return 0;
	rec_off = get64(loc + 8);
	if (rec_off > eocd - 20 || eocd - 20 - rec_off < 56 ||
	    ar_pread_full(a->fd, rec, 56, rec_off) != 56 ||
	    get32(rec) != SIG_EOCD64) {
		npz_err_set(err, "damaged archive: bad zip64 end of "
			    "central directory");
		return -EINVAL;
	}
	*entries = get64(rec + 32);
	*cd_size = get64(rec + 40);
	*cd_off = get64(rec + 48);
	*cd_end = rec_off;
	return 0;
}

/* Find the end of central directory.  Fills the CD's offset, size and
 * entry count.  Returns 0 or -EINVAL/-EIO with a message. */
int ar_find_cdir(struct archive *a, uint64_t *cd_off, uint64_t *cd_size,
		 uint64_t *entries, struct npz_err *err)
{
	unsigned char *tail, head[4];
	size_t tail_len, i;
	uint64_t eocd = 0, cd_end;
	bool found = false;
	ssize_t n;
	int ret = 0;

	if (a->file_size == 0) {
		npz_err_set(err, "not a zip archive (empty file)");
		return -EINVAL;
	}
	tail_len = a->file_size < 22 + 65535 ? (size_t)a->file_size : 22 + 65535;
	tail = malloc(tail_len);
	if (!tail)
		return -ENOMEM;
	n = ar_pread_full(a->fd, tail, tail_len, a->file_size - tail_len);
	if (n != (ssize_t)tail_len) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "read error: %s", strerror(-ret));
		goto out_free_tail;
	}
	for (i = tail_len >= 22 ? tail_len - 22 + 1 : 0; i-- > 0;) {
		if (get32(tail + i) == SIG_EOCD &&
		    i + 22 + get16(tail + i + 20) <= tail_len) {
			found = true;
			break;
		}
	}
	if (!found) {
		n = ar_pread_full(a->fd, head, 4, 0);
		if (n == 4 && get32(head) == SIG_LOCAL)
			npz_err_set(err, "damaged archive: end of central "
				    "directory not found (truncated file?)");
		else
			npz_err_set(err, "not a zip archive");
		ret = -EINVAL;
		goto out_free_tail;
	}
	eocd = a->file_size - tail_len + i;
	if (get16(tail + i + 4) != 0 || get16(tail + i + 6) != 0) {
		npz_err_set(err, "multi-disk zip archives are not supported");
		ret = -EINVAL;
		goto out_free_tail;
	}
	*entries = get16(tail + i + 10);
	*cd_size = get32(tail + i + 12);
	*cd_off = get32(tail + i + 16);
	cd_end = eocd;

	ret = read_eocd64(a, eocd, cd_off, cd_size, entries, &cd_end, err);
	if (ret)
		goto out_free_tail;
	if (*cd_off > cd_end || *cd_size > cd_end - *cd_off) {
		npz_err_set(err, "damaged archive: central directory past "
			    "end of file");
		ret = -EINVAL;
	} else if (*entries > *cd_size / 46) {
		npz_err_set(err, "damaged archive: %llu entries cannot fit "
			    "in a %llu-byte central directory",
			    (unsigned long long)*entries,
			    (unsigned long long)*cd_size);
		ret = -EINVAL;
	}
out_free_tail:
	free(tail);
	return ret;
}

/* Parse one central header at p (avail bytes left).  Returns its length,
 * or 0 if it is damaged (message in err). */
static size_t parse_central(const unsigned char *p, size_t avail, size_t idx,
			    struct cd_entry *e, struct npz_err *err)
{
	size_t len, extra_len, comment_len;
	const unsigned char *x, *xend;
	uint32_t comp32, size32, off32;

	if (avail < 46 || get32(p) != SIG_CENTRAL) {
		npz_err_set(err, "damaged archive: bad central directory "
			    "entry %zu", idx);
		return 0;
	}
	e->flags = get16(p + 8);
	e->method = get16(p + 10);
	e->crc = get32(p + 16);
	comp32 = get32(p + 20);
	size32 = get32(p + 24);
	e->name_len = get16(p + 28);
	extra_len = get16(p + 30);
	comment_len = get16(p + 32);
	off32 = get32(p + 42);
	len = 46 + e->name_len + extra_len + comment_len;
	if (len > avail) {
		npz_err_set(err, "damaged archive: central directory entry "
			    "%zu past its end", idx);
		return 0;
	}
	e->name = p + 46;
	e->comp_size = comp32;
	e->size = size32;
	e->lh_off = off32;

	/* zip64 extended information: only the fields that overflowed. */
	x = p + 46 + e->name_len;
	xend = x + extra_len;
	while (xend - x >= 4) {
		uint16_t id = get16(x), sz = get16(x + 2);
		const unsigned char *f = x + 4, *fend = f + sz;

		if (sz > xend - f)
			break;
		if (id == 0x0001) {
			if (size32 == 0xffffffffu && fend - f >= 8) {
				e->size = get64(f);
				f += 8;
			}
			if (comp32 == 0xffffffffu && fend - f >= 8) {
				e->comp_size = get64(f);
				f += 8;
			}
			if (off32 == 0xffffffffu && fend - f >= 8)
				e->lh_off = get64(f);
			break;
		}
		x = fend;
	}
	return len;
}

/* libzip's raw name of an entry against the central directory's bytes:
 * equal, except that libzip shows a NUL byte as a space (or may stop at
 * the first one). */
static bool name_matches(const char *raw, const struct cd_entry *e)
{
	size_t len = strlen(raw), k;

	if (len > e->name_len || (len < e->name_len && e->name[len] != 0))
		return false;
	for (k = 0; k < len; k++)
		if ((unsigned char)raw[k] != e->name[k] &&
		    !(e->name[k] == 0 && raw[k] == ' '))
			return false;
	return true;
}

/* Cross-check entry i of our parse against libzip's listing and fill
 * the public fields.  Returns 0 or -EINVAL. */
static int check_entry(struct archive *a, size_t i, const struct cd_entry *e,
		       zip_stat_t *st, struct npz_err *err)
{
	const char *raw;

	zip_stat_init(st);
	if (zip_stat_index(a->zip, i, 0, st) < 0) {
		npz_err_set(err, "damaged archive: entry %zu: %s", i,
			    zip_strerror(a->zip));
		return -EINVAL;
	}
	raw = zip_get_name(a->zip, i, ZIP_FL_ENC_RAW);
	if (!raw || !name_matches(raw, e)) {
		npz_err_set(err, "damaged archive: entry %zu: name differs "
			    "from libzip's", i);
		return -EINVAL;
	}
	if (!(st->valid & ZIP_STAT_NAME) || !(st->valid & ZIP_STAT_SIZE) ||
	    st->size != e->size || st->comp_size != e->comp_size ||
	    st->comp_method != e->method || st->crc != e->crc) {
		npz_err_set(err, "damaged archive: entry %zu (%s): sizes "
			    "differ from libzip's", i, raw);
		return -EINVAL;
	}
	if (e->method == ARCHIVE_STORE && e->size != e->comp_size) {
		npz_err_set(err, "damaged archive: entry %zu (%s): stored "
			    "with %llu bytes for %llu", i, raw,
			    (unsigned long long)e->comp_size,
			    (unsigned long long)e->size);
		return -EINVAL;
	}
	if (e->lh_off > a->file_size || a->file_size - e->lh_off < 30 ||
	    e->comp_size > a->file_size) {
		npz_err_set(err, "damaged archive: central directory entry "
			    "%zu past end of file", i);
		return -EINVAL;
	}
	return 0;
}

static int build_index(struct archive *a)
{
	size_t cap = 16, i;

	while (cap < 2 * a->count)
		cap <<= 1;
	a->index = calloc(cap, sizeof(*a->index));
	if (!a->index)
		return -ENOMEM;
	a->index_mask = cap - 1;
	/* A later duplicate replaces an earlier one, as in Python's zipfile. */
	for (i = 0; i < a->count; i++) {
		size_t h = (size_t)fnv1a(a->m[i].pub.name) & a->index_mask;

		if (a->m[i].pub.nul_name)	/* not found by its cut name */
			continue;
		while (a->index[h] &&
		       strcmp(a->m[a->index[h] - 1].pub.name,
			      a->m[i].pub.name) != 0)
			h = (h + 1) & a->index_mask;
		a->index[h] = (uint32_t)(i + 1);
	}
	return 0;
}

/* Read and parse the central directory: *cd holds its bytes, *ents its
 * *entries entries (whose names point into *cd).  Returns 0, or -errno
 * with a message; either way the caller frees *cd and *ents. */
static int read_central(struct archive *a, unsigned char **cd,
			struct cd_entry **ents, uint64_t *entries,
			struct npz_err *err)
{
	uint64_t cd_off, cd_size;
	size_t i, pos = 0;
	ssize_t n;
	int ret;

	ret = ar_find_cdir(a, &cd_off, &cd_size, entries, err);
	a->cd_off = cd_off;
	a->cd_size = cd_size;
	if (ret)
		return ret;
	if (*entries >= UINT32_MAX || cd_size > SIZE_MAX) {
		npz_err_set(err, "damaged archive: too many entries");
		return -EINVAL;
	}
	*cd = malloc(cd_size ? (size_t)cd_size : 1);
	*ents = calloc(*entries ? (size_t)*entries : 1, sizeof(**ents));
	if (!*cd || !*ents)
		return -ENOMEM;
	n = ar_pread_full(a->fd, *cd, (size_t)cd_size, cd_off);
	if (n != (ssize_t)cd_size) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "read error: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < *entries; i++) {
		size_t len = parse_central(*cd + pos, (size_t)cd_size - pos, i,
					   &(*ents)[i], err);
		if (!len)
			return -EINVAL;
		(*ents)[i].cd_pos = pos;
		(*ents)[i].cd_len = len;
		pos += len;
	}
	return 0;
}

/* Fill member i from entry e, checked against libzip's listing (zip_lock
 * held): its raw name goes to *np (moved past it), a deflated member gets
 * the cache region at *base (moved past it).  Returns 0 or -errno. */
static int fill_member(struct archive *a, size_t i, const struct cd_entry *e,
		       char **np, uint64_t *base, struct npz_err *err)
{
	struct member *m = &a->m[i];
	zip_stat_t st;
	size_t sl;
	int ret;

	ret = check_entry(a, i, e, &st, err);
	if (ret)
		return ret;
	pthread_mutex_init(&m->lock, NULL);
	m->a = a;
	memcpy(*np, e->name, e->name_len);
	(*np)[e->name_len] = '\0';
	m->raw_name = *np;
	m->raw_len = e->name_len;
	*np += e->name_len + 1;
	sl = strlen(st.name);
	if (sl == e->name_len && memcmp(st.name, e->name, sl) == 0) {
		m->pub.name = m->raw_name;
	} else {
		char *u = strdup(st.name);	/* rare: non-UTF-8 names */

		if (!u)
			return -ENOMEM;
		m->pub.name = u;
	}
	m->pub.nul_name = memchr(e->name, 0, e->name_len) != NULL;
	m->pub.size = e->size;
	m->pub.comp_size = e->comp_size;
	m->pub.method = e->method;
	m->pub.crc = e->crc;
	m->pub.mtime = (st.valid & ZIP_STAT_MTIME) ? st.mtime : 0;
	m->flags = e->flags;
	m->lh_off = e->lh_off;
	m->cd_pos = e->cd_pos;
	m->cd_len = e->cd_len;
	if (e->method == ARCHIVE_DEFLATE) {
		if (*base > INT64_MAX - 8192 ||
		    e->size > INT64_MAX - 8192 - *base) {
			npz_err_set(err, "damaged archive: member "
				    "sizes too large");
			return -EINVAL;
		}
		/* whole blocks each: punching one frees it all */
		m->base = *base;
		*base += (e->size + 4095) & ~(uint64_t)4095;
	}
	return 0;
}

/* Read the central directory, check it against libzip and build the
 * member table, names and index. */
static int load_members(struct archive *a, struct npz_err *err)
{
	uint64_t entries, base = 0;
	struct cd_entry *ents = NULL;
	unsigned char *cd = NULL;
	size_t i, names_len = 0;
	zip_int64_t zn;
	char *np;
	int ret;

	ret = read_central(a, &cd, &ents, &entries, err);
	if (ret)
		goto out_free;

	pthread_mutex_lock(&a->zip_lock);
	zn = zip_get_num_entries(a->zip, 0);
	if (zn < 0 || (uint64_t)zn != entries) {
		npz_err_set(err, "damaged archive: %llu entries in the central "
			    "directory, libzip sees %lld",
			    (unsigned long long)entries, (long long)zn);
		ret = -EINVAL;
		goto out_unlock;
	}
	a->count = (size_t)entries;
	a->m = calloc(a->count ? a->count : 1, sizeof(*a->m));
	if (!a->m) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	for (i = 0; i < a->count; i++)
		names_len += 2 * ((size_t)ents[i].name_len + 1);
	/* the UTF-8 name can be longer than the raw one (CP437 guess) */
	a->names = malloc(names_len + 1);
	if (!a->names) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	np = a->names;
	for (i = 0; i < a->count; i++) {
		ret = fill_member(a, i, &ents[i], &np, &base, err);
		if (ret)
			goto out_unlock;
	}
	pthread_mutex_unlock(&a->zip_lock);

	ret = build_index(a);
	goto out_free;

out_unlock:
	pthread_mutex_unlock(&a->zip_lock);
out_free:
	free(ents);
	free(cd);
	return ret;
}

/* Open a->zip over a descriptor of its own on a->fd's file.  Returns 0, or
 * -errno with a message (for a damaged archive, what our own parse of the
 * central directory says when libzip finds no zip). */
static int open_libzip(struct archive *a, struct npz_err *err)
{
	zip_error_t ze;
	int zfd, zerr = 0, ret;

	/* libzip gets its own descriptor of the same open file. */
	zfd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
	if (zfd < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		return ret;
	}
	a->zip = zip_fdopen(zfd, 0, &zerr);
	if (!a->zip) {
		close(zfd);
		zip_error_init_with_code(&ze, zerr);
		ret = ar_zip_error_to_errno(&ze);
		if (zerr == ZIP_ER_NOZIP) {
			/* our own parse tells truncated from not-a-zip */
			if (ar_find_cdir(a, &(uint64_t){0}, &(uint64_t){0},
					 &(uint64_t){0}, err) == 0)
				npz_err_set(err, "damaged archive: "
					    "central directory unreadable");
		} else if (ret == -EINVAL) {
			npz_err_set(err, "damaged archive: %s",
				    zip_error_strerror(&ze));
		} else {
			npz_err_set(err, "%s", zip_error_strerror(&ze));
		}
		zip_error_fini(&ze);
		return ret;
	}
	return 0;
}

/* A new archive with nothing open yet (fd -1): archive_close() frees it. */
static struct archive *archive_new(void)
{
	struct archive *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->fd = -1;
	a->cache_fd = -1;
	pthread_mutex_init(&a->zip_lock, NULL);
	pthread_mutex_init(&a->cache_open_lock, NULL);
	pthread_mutex_init(&a->pool_lock, NULL);
	ar_pool_init(a);
	return a;
}

/* Index the file open as a->fd: record its identity (fstat: device, inode,
 * size, mtime, mode, owner), check it with libzip, build the member table.
 * Returns 0 or -errno with a message. */
static int index_file(struct archive *a, struct npz_err *err)
{
	struct stat sb;
	int ret;

	if (fstat(a->fd, &sb) < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		return ret;
	}
	if (S_ISDIR(sb.st_mode)) {
		npz_err_set(err, "%s", strerror(EISDIR));
		return -EISDIR;
	}
	if (!S_ISREG(sb.st_mode)) {
		npz_err_set(err, "not a regular file");
		return -EINVAL;
	}
	a->st = sb;
	a->file_size = (uint64_t)sb.st_size;
	if (a->file_size == 0) {
		npz_err_set(err, "not a zip archive (empty file)");
		return -EINVAL;
	}
	ret = open_libzip(a, err);
	if (!ret)
		ret = load_members(a, err);
	if (ret)
		return ret;
	/* libzip's listing only cross-checked ours: don't keep a second
	 * member table (about 200 bytes a member) for the archive's life */
	pthread_mutex_lock(&a->zip_lock);
	zip_discard(a->zip);
	a->zip = NULL;
	pthread_mutex_unlock(&a->zip_lock);
	return 0;
}

/* Index a, whose a->fd and a->path were set unless ret (-errno) says
 * why not.  Returns 0 and *out = a, or -errno with a message and a freed. */
static int open_finish(struct archive *a, int ret, struct archive **out,
		       struct npz_err *err)
{
	if (ret)
		npz_err_set(err, "%s", strerror(-ret));
	else
		ret = index_file(a, err);
	if (ret) {
		archive_close(a);
		return ret;
	}
	*out = a;
	return 0;
}

/* archive_open(), with path already resolved (`resolved`) or not. */
static int open_path(const char *path, bool resolved, struct archive **out,
		     struct npz_err *err)
{
	struct archive *a = archive_new();
	int ret = 0;

	if (!a)
		return -ENOMEM;
	a->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (a->fd < 0)
		ret = -errno;
	/* realpath() costs one readlink() per component: once per mount */
	else if (!(a->path = resolved ? strdup(path) : realpath(path, NULL)))
		ret = -errno;
	return open_finish(a, ret, out, err);
}

int archive_open(const char *path, struct archive **out, struct npz_err *err)
{
	return open_path(path, false, out, err);
}

int archive_open_resolved(const char *path, struct archive **out,
			  struct npz_err *err)
{
	return open_path(path, true, out, err);
}

int ar_open_fd(int fd, const char *path, struct archive **out,
	       struct npz_err *err)
{
	struct archive *a = archive_new();
	int ret = 0;

	if (!a)
		return -ENOMEM;
	a->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (a->fd < 0)
		ret = -errno;
	else if (!(a->path = strdup(path)))
		ret = -ENOMEM;
	return open_finish(a, ret, out, err);
}

/* Free everything but the descriptors and the path. */
static void free_tables(struct archive *a)
{
	size_t i;

	ar_pool_release(a);
	if (a->m) {
		for (i = 0; i < a->count && a->m[i].raw_name; i++) {
			ar_sozip_release(&a->m[i]);
			if (a->m[i].pub.name &&
			    a->m[i].pub.name != a->m[i].raw_name)
				free((char *)a->m[i].pub.name);
			pthread_mutex_destroy(&a->m[i].lock);
		}
	}
	free(a->m);
	free(a->names);
	free(a->index);
	a->m = NULL;
	a->names = NULL;
	a->index = NULL;
	a->count = 0;
	pthread_mutex_lock(&a->zip_lock);
	if (a->zip)
		zip_discard(a->zip);
	a->zip = NULL;
	pthread_mutex_unlock(&a->zip_lock);
}

void archive_retire(struct archive *a)
{
	if (!a)
		return;
	free_tables(a);
	/* no span points into the cache (archive_member_span): its bytes
	 * can go now, out of the budget and off the disk */
	if (a->cache_fd >= 0)
		close(a->cache_fd);
	a->cache_fd = -1;
}

void archive_close(struct archive *a)
{
	if (!a)
		return;
	free_tables(a);
	if (a->cache_fd >= 0)
		close(a->cache_fd);
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	pthread_mutex_destroy(&a->zip_lock);
	pthread_mutex_destroy(&a->pool_lock);
	pthread_mutex_destroy(&a->cache_open_lock);
	free(a);
}

size_t archive_count(const struct archive *a)
{
	return a->count;
}

const struct archive_member *archive_member(const struct archive *a, size_t i)
{
	return i < a->count ? &a->m[i].pub : NULL;
}

int archive_find(const struct archive *a, const char *name, size_t *idx)
{
	size_t h = (size_t)fnv1a(name) & a->index_mask;

	for (; a->index[h]; h = (h + 1) & a->index_mask) {
		if (strcmp(a->m[a->index[h] - 1].pub.name, name) == 0) {
			*idx = a->index[h] - 1;
			return 0;
		}
	}
	return -ENOENT;
}

const char *archive_method_name(uint16_t method)
{
	static _Thread_local char other[24];

	switch (method) {
	case ARCHIVE_STORE:
		return "stored";
	case ARCHIVE_DEFLATE:
		return "deflated";
	default:
		snprintf(other, sizeof(other), "method %u", method);
		return other;
	}
}
