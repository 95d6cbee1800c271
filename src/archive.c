/* archive.c - the zip archive under the mount: listing, name index, reads.
 *
 * Invariants:
 *  - the member table is built once in archive_open() and never changes; the
 *    central directory is parsed here (zip64 aware) and cross-checked against
 *    libzip's listing, so both agree on count, names and sizes;
 *  - a member's data starts at data_off = local header offset + 30 +
 *    name_len + LOCAL extra_len (read once, on first use, then cached);
 *  - deflated member i owns the region [base_i, base_i + size_i) of one
 *    unlinked sparse cache file; bytes [0, frontier_i) of that region hold
 *    the member's inflated data and never change afterwards.
 *
 * Threads.  protects:
 *  - a->zip_lock: every libzip call on a->zip (after open, only zip_discard);
 *  - m->lock: the inflate progress of member m (its frontier only grows, under
 *    this lock); take before a->pool_lock;
 *  - a->pool_lock: the stream pool (slot owner, busy, tick) and every m->zs;
 *  - m->data_off, m->frontier and m->bad are atomics read without a lock, so
 *    stored reads and reads below the frontier never wait for anybody.
 */
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
#include <zlib.h>

#include "archive.h"

#define ARCHIVE_STREAMS 8		/* live inflate streams kept (LRU) */
#define ARCHIVE_IN_BLOCK (256u << 10)	/* compressed input per pread */
#define ARCHIVE_OUT_BLOCK (256u << 10)	/* inflated output per pwrite */
#define ARCHIVE_READAHEAD (1u << 20)	/* inflate this much past a read */
#define ARCHIVE_SMALL (64u << 10)	/* inflated whole, no pooled stream */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u

#define NO_OWNER SIZE_MAX

/* Why a member was found damaged (m->bad); 0 while it is not. */
enum member_fault {
	FAULT_NONE,
	FAULT_LOCAL_HEADER,
	FAULT_PAST_EOF,
	FAULT_INFLATE,
	FAULT_SIZE,
	FAULT_CRC,
	FAULT_ENCRYPTED,
};

struct inflater {
	z_stream z;
	bool z_ready;		/* inflateInit2 done */
	bool pooled;		/* a pool slot, not a one-shot private stream */
	bool busy;		/* pool_lock: a reader is using it */
	size_t owner;		/* pool_lock: member index or NO_OWNER */
	uint64_t tick;		/* pool_lock: last use, for LRU */
	uint64_t in_pos;	/* compressed bytes read so far */
	uint64_t out_pos;	/* uncompressed bytes produced so far */
	uint32_t crc;		/* CRC-32 of the out_pos bytes */
	unsigned char *in, *out;
	size_t in_cap, out_cap;
};

struct member {
	struct archive_member pub;	/* first: archive_member() returns it */
	const char *raw_name;		/* bytes as in the zip, for the local header */
	uint16_t raw_len;
	uint16_t flags;			/* general purpose bit flags */
	uint64_t lh_off;		/* local header offset */
	uint64_t base;			/* region in the cache file */
	_Atomic uint64_t data_off;	/* 0 until the local header was read */
	_Atomic uint64_t frontier;	/* bytes inflated into the cache */
	_Atomic int bad;		/* enum member_fault */
	pthread_mutex_t lock;		/* inflate progress; before pool_lock */
	struct inflater *zs;		/* pool_lock: pooled stream, or NULL */
};

struct archive {
	int fd;				/* the archive, for pread */
	int cache_fd;			/* inflated data, -1 if nothing deflated */
	uint64_t file_size;
	zip_t *zip;
	pthread_mutex_t zip_lock;	/* every libzip call on zip */
	size_t count;
	struct member *m;
	char *names;			/* all names, NUL-terminated */
	uint32_t *index;		/* hash: member index + 1, 0 = empty */
	size_t index_mask;
	pthread_mutex_t pool_lock;	/* pool, every m->zs; after m->lock */
	struct inflater pool[ARCHIVE_STREAMS];
	uint64_t tick;			/* pool_lock */
};

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
};

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* pread until len bytes or end of file.  Returns bytes read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* The one place libzip error codes become -errno. */
static int zip_error_to_errno(zip_error_t *ze)
{
	switch (zip_error_code_zip(ze)) {
	case ZIP_ER_OK:
		return 0;
	case ZIP_ER_OPEN:
	case ZIP_ER_READ:
	case ZIP_ER_SEEK:
	case ZIP_ER_TELL:
		if (zip_error_system_type(ze) == ZIP_ET_SYS &&
		    zip_error_code_system(ze) > 0)
			return -zip_error_code_system(ze);
		return -EIO;
	case ZIP_ER_NOENT:
		return -ENOENT;
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

/* Find the end of central directory.  Fills the CD's offset, size and
 * entry count.  Returns 0 or -EINVAL/-EIO with a message. */
static int find_cdir(struct archive *a, uint64_t *cd_off, uint64_t *cd_size,
		     uint64_t *entries, struct npz_err *err)
{
	unsigned char *tail, head[4], loc[20], rec[56];
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
	n = pread_full(a->fd, tail, tail_len, a->file_size - tail_len);
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
		n = pread_full(a->fd, head, 4, 0);
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

	/* zip64: locator right before the EOCD, pointing at the record. */
	if (eocd >= 20 && pread_full(a->fd, loc, 20, eocd - 20) == 20 &&
	    get32(loc) == SIG_EOCD64_LOC) {
		uint64_t rec_off = get64(loc + 8);

		if (rec_off > eocd - 20 || eocd - 20 - rec_off < 56 ||
		    pread_full(a->fd, rec, 56, rec_off) != 56 ||
		    get32(rec) != SIG_EOCD64) {
			npz_err_set(err, "damaged archive: bad zip64 end of "
				    "central directory");
			ret = -EINVAL;
			goto out_free_tail;
		}
		*entries = get64(rec + 32);
		*cd_size = get64(rec + 40);
		*cd_off = get64(rec + 48);
		cd_end = rec_off;
	}
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
	if (!raw || strlen(raw) != e->name_len ||
	    memcmp(raw, e->name, e->name_len) != 0) {
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

		while (a->index[h] &&
		       strcmp(a->m[a->index[h] - 1].pub.name,
			      a->m[i].pub.name) != 0)
			h = (h + 1) & a->index_mask;
		a->index[h] = (uint32_t)(i + 1);
	}
	return 0;
}

static int open_cache(struct archive *a, struct npz_err *err)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		dir = "/var/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		a->cache_fd = fd;
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/npzfs-cache-XXXXXX", dir) >=
	    (int)sizeof(path)) {
		npz_err_set(err, "cache directory name too long: %s", dir);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;

		npz_err_set(err, "cannot create a cache file in %s: %s", dir,
			    strerror(-ret));
		return ret;
	}
	unlink(path);
	a->cache_fd = fd;
	return 0;
}

/* Read the central directory, check it against libzip and build the
 * member table, names and index. */
static int load_members(struct archive *a, struct npz_err *err)
{
	uint64_t cd_off, cd_size, entries, base = 0;
	struct cd_entry *ents = NULL;
	unsigned char *cd = NULL;
	size_t i, pos = 0, names_len = 0;
	bool any_deflated = false;
	zip_int64_t zn;
	char *np;
	ssize_t n;
	int ret;

	ret = find_cdir(a, &cd_off, &cd_size, &entries, err);
	if (ret)
		return ret;
	if (entries >= UINT32_MAX || cd_size > SIZE_MAX) {
		npz_err_set(err, "damaged archive: too many entries");
		return -EINVAL;
	}
	cd = malloc(cd_size ? (size_t)cd_size : 1);
	ents = calloc(entries ? (size_t)entries : 1, sizeof(*ents));
	if (!cd || !ents) {
		ret = -ENOMEM;
		goto out_free;
	}
	n = pread_full(a->fd, cd, (size_t)cd_size, cd_off);
	if (n != (ssize_t)cd_size) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "read error: %s", strerror(-ret));
		goto out_free;
	}
	for (i = 0; i < entries; i++) {
		size_t len = parse_central(cd + pos, (size_t)cd_size - pos, i,
					   &ents[i], err);
		if (!len) {
			ret = -EINVAL;
			goto out_free;
		}
		pos += len;
	}

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
		struct member *m = &a->m[i];
		const struct cd_entry *e = &ents[i];
		zip_stat_t st;
		size_t sl;

		ret = check_entry(a, i, e, &st, err);
		if (ret)
			goto out_unlock;
		pthread_mutex_init(&m->lock, NULL);
		memcpy(np, e->name, e->name_len);
		np[e->name_len] = '\0';
		m->raw_name = np;
		m->raw_len = e->name_len;
		np += e->name_len + 1;
		sl = strlen(st.name);
		if (sl == e->name_len && memcmp(st.name, e->name, sl) == 0) {
			m->pub.name = m->raw_name;
		} else {
			char *u = strdup(st.name);	/* rare: non-UTF-8 names */

			if (!u) {
				ret = -ENOMEM;
				goto out_unlock;
			}
			m->pub.name = u;
		}
		m->pub.size = e->size;
		m->pub.comp_size = e->comp_size;
		m->pub.method = e->method;
		m->pub.crc = e->crc;
		m->pub.mtime = (st.valid & ZIP_STAT_MTIME) ? st.mtime : 0;
		m->flags = e->flags;
		m->lh_off = e->lh_off;
		if (e->method == ARCHIVE_DEFLATE) {
			if (e->size > INT64_MAX - base) {
				npz_err_set(err, "damaged archive: member "
					    "sizes too large");
				ret = -EINVAL;
				goto out_unlock;
			}
			m->base = base;
			base += e->size;
			any_deflated = true;
		}
	}
	pthread_mutex_unlock(&a->zip_lock);

	ret = build_index(a);
	if (!ret && any_deflated)
		ret = open_cache(a, err);
	goto out_free;

out_unlock:
	pthread_mutex_unlock(&a->zip_lock);
out_free:
	free(ents);
	free(cd);
	return ret;
}

int archive_open(const char *path, struct archive **out, struct npz_err *err)
{
	struct archive *a;
	struct stat sb;
	zip_error_t ze;
	int zfd, zerr = 0, ret;
	size_t i;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cache_fd = -1;
	pthread_mutex_init(&a->zip_lock, NULL);
	pthread_mutex_init(&a->pool_lock, NULL);
	for (i = 0; i < ARCHIVE_STREAMS; i++) {
		a->pool[i].owner = NO_OWNER;
		a->pool[i].pooled = true;
	}
	a->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (a->fd < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_free;
	}
	if (fstat(a->fd, &sb) < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_close;
	}
	if (S_ISDIR(sb.st_mode)) {
		ret = -EISDIR;
		npz_err_set(err, "%s", strerror(EISDIR));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode)) {
		ret = -EINVAL;
		npz_err_set(err, "not a regular file");
		goto out_close;
	}
	a->file_size = (uint64_t)sb.st_size;
	if (a->file_size == 0) {
		ret = -EINVAL;
		npz_err_set(err, "not a zip archive (empty file)");
		goto out_close;
	}

	/* libzip gets its own descriptor of the same open file. */
	zfd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
	if (zfd < 0) {
		ret = -errno;
		npz_err_set(err, "%s", strerror(-ret));
		goto out_close;
	}
	a->zip = zip_fdopen(zfd, 0, &zerr);
	if (!a->zip) {
		close(zfd);
		zip_error_init_with_code(&ze, zerr);
		ret = zip_error_to_errno(&ze);
		if (zerr == ZIP_ER_NOZIP) {
			/* our own parse tells truncated from not-a-zip */
			if (find_cdir(a, &(uint64_t){0}, &(uint64_t){0},
				      &(uint64_t){0}, err) == 0)
				npz_err_set(err, "not a zip archive");
		} else if (ret == -EINVAL) {
			npz_err_set(err, "damaged archive: %s",
				    zip_error_strerror(&ze));
		} else {
			npz_err_set(err, "%s", zip_error_strerror(&ze));
		}
		zip_error_fini(&ze);
		goto out_close;
	}
	ret = load_members(a, err);
	if (ret)
		goto out_close;
	*out = a;
	return 0;

out_close:
	archive_close(a);
	return ret;
out_free:
	pthread_mutex_destroy(&a->zip_lock);
	pthread_mutex_destroy(&a->pool_lock);
	free(a);
	return ret;
}

static void inflater_free_buffers(struct inflater *s)
{
	if (s->z_ready)
		inflateEnd(&s->z);
	s->z_ready = false;
	free(s->in);
	free(s->out);
	s->in = s->out = NULL;
}

void archive_close(struct archive *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < ARCHIVE_STREAMS; i++)
		inflater_free_buffers(&a->pool[i]);
	if (a->m) {
		for (i = 0; i < a->count && a->m[i].raw_name; i++) {
			if (a->m[i].pub.name &&
			    a->m[i].pub.name != a->m[i].raw_name)
				free((char *)a->m[i].pub.name);
			pthread_mutex_destroy(&a->m[i].lock);
		}
	}
	free(a->m);
	free(a->names);
	free(a->index);
	pthread_mutex_lock(&a->zip_lock);
	if (a->zip)
		zip_discard(a->zip);
	pthread_mutex_unlock(&a->zip_lock);
	if (a->cache_fd >= 0)
		close(a->cache_fd);
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->zip_lock);
	pthread_mutex_destroy(&a->pool_lock);
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

/* Record that m is damaged and say why.  Returns -EIO. */
static int member_fail(struct member *m, int fault, struct npz_err *err)
{
	int expected = FAULT_NONE;

	atomic_compare_exchange_strong(&m->bad, &expected, fault);
	switch (atomic_load(&m->bad)) {
	case FAULT_LOCAL_HEADER:
		npz_err_set(err, "member %s: bad local header", m->pub.name);
		break;
	case FAULT_PAST_EOF:
		npz_err_set(err, "member %s: data past end of archive",
			    m->pub.name);
		break;
	case FAULT_SIZE:
		npz_err_set(err, "member %s: inflated size differs from %llu",
			    m->pub.name, (unsigned long long)m->pub.size);
		break;
	case FAULT_CRC:
		npz_err_set(err, "member %s: CRC mismatch", m->pub.name);
		break;
	case FAULT_ENCRYPTED:
		npz_err_set(err, "member %s: encrypted members are not "
			    "supported", m->pub.name);
		break;
	default:
		npz_err_set(err, "member %s: damaged deflate data",
			    m->pub.name);
		break;
	}
	return -EIO;
}

/* Offset of m's data in the archive, from its local header (read once).
 * Returns the offset (> 0) or -errno. */
static int64_t member_data_off(struct archive *a, struct member *m,
			       struct npz_err *err)
{
	uint64_t off = atomic_load_explicit(&m->data_off, memory_order_acquire);
	unsigned char stackbuf[30 + 256], *h = stackbuf;
	size_t need = 30 + (size_t)m->raw_len;
	ssize_t n;
	int ret = 0;

	if (off)
		return (int64_t)off;
	if (atomic_load(&m->bad))
		return member_fail(m, FAULT_NONE, err);
	if (m->flags & 1)
		return member_fail(m, FAULT_ENCRYPTED, err);
	if (need > sizeof(stackbuf)) {
		h = malloc(need);
		if (!h)
			return -ENOMEM;
	}
	n = pread_full(a->fd, h, need, m->lh_off);
	if (n < 0) {
		ret = (int)n;
		npz_err_set(err, "member %s: %s", m->pub.name, strerror(-ret));
	} else if ((size_t)n < need || get32(h) != SIG_LOCAL ||
		   get16(h + 26) != m->raw_len ||
		   memcmp(h + 30, m->raw_name, m->raw_len) != 0) {
		ret = member_fail(m, FAULT_LOCAL_HEADER, err);
	} else {
		off = m->lh_off + 30 + m->raw_len + get16(h + 28);
		if (off > a->file_size || m->pub.comp_size > a->file_size - off)
			ret = member_fail(m, FAULT_PAST_EOF, err);
		else
			atomic_store_explicit(&m->data_off, off,
					      memory_order_release);
	}
	if (h != stackbuf)
		free(h);
	return ret ? ret : (int64_t)off;
}

/* Get a stream for member idx: its live pooled one, a free or least
 * recently used idle pool slot (reset), or a one-shot private stream for
 * small members and when every slot is busy.  Returns NULL on ENOMEM. */
static struct inflater *stream_get(struct archive *a, size_t idx)
{
	struct member *m = &a->m[idx];
	struct inflater *s = NULL, *victim = NULL;
	size_t i;

	if (m->pub.size > ARCHIVE_SMALL) {
		pthread_mutex_lock(&a->pool_lock);
		if (m->zs) {
			s = m->zs;
		} else {
			for (i = 0; i < ARCHIVE_STREAMS; i++) {
				struct inflater *p = &a->pool[i];

				if (p->busy)
					continue;
				if (!victim || p->owner == NO_OWNER ||
				    (victim->owner != NO_OWNER &&
				     p->tick < victim->tick))
					victim = p;
				if (p->owner == NO_OWNER)
					break;
			}
			s = victim;
			if (s) {
				if (s->owner != NO_OWNER)
					a->m[s->owner].zs = NULL;
				s->owner = idx;
				m->zs = s;
				s->in_pos = s->out_pos = 0;
				s->crc = crc32(0, NULL, 0);
				s->z.avail_in = 0;
				if (s->z_ready)
					inflateReset(&s->z);
			}
		}
		if (s) {
			s->busy = true;
			s->tick = ++a->tick;
		}
		pthread_mutex_unlock(&a->pool_lock);
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->owner = idx;
		s->crc = crc32(0, NULL, 0);
	}
	if (!s->in) {
		s->in_cap = ARCHIVE_IN_BLOCK;
		s->out_cap = ARCHIVE_OUT_BLOCK;
		if (!s->pooled) {
			if (m->pub.comp_size < s->in_cap)
				s->in_cap = m->pub.comp_size ? m->pub.comp_size : 1;
			if (m->pub.size < s->out_cap)
				s->out_cap = m->pub.size ? m->pub.size : 1;
		}
		s->in = malloc(s->in_cap);
		s->out = malloc(s->out_cap);
	}
	if (s->in && s->out && !s->z_ready &&
	    inflateInit2(&s->z, -MAX_WBITS) == Z_OK)
		s->z_ready = true;
	if (!s->in || !s->out || !s->z_ready) {
		if (s->pooled) {
			/* keep the slot, without its buffers */
			inflater_free_buffers(s);
			pthread_mutex_lock(&a->pool_lock);
			s->busy = false;
			s->owner = NO_OWNER;
			m->zs = NULL;
			pthread_mutex_unlock(&a->pool_lock);
		} else {
			inflater_free_buffers(s);
			free(s);
		}
		return NULL;
	}
	return s;
}

/* Give s back; done: the member is finished (or failed), drop the stream. */
static void stream_put(struct archive *a, struct inflater *s, bool done)
{
	if (!s->pooled) {
		inflater_free_buffers(s);
		free(s);
		return;
	}
	pthread_mutex_lock(&a->pool_lock);
	s->busy = false;
	if (done) {
		a->m[s->owner].zs = NULL;
		s->owner = NO_OWNER;
	}
	pthread_mutex_unlock(&a->pool_lock);
}

/* Inflate member idx into the cache until its frontier reaches target (or
 * the end of the member).  Called with m->lock held.  Returns 0 or -errno. */
static int member_inflate(struct archive *a, size_t idx, uint64_t target,
			  struct npz_err *err)
{
	struct member *m = &a->m[idx];
	struct inflater *s;
	int64_t data_off;
	bool done = false;
	int ret = 0;

	if (atomic_load(&m->frontier) >= target)
		return 0;
	if (atomic_load(&m->bad))
		return member_fail(m, FAULT_NONE, err);
	data_off = member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	s = stream_get(a, idx);
	if (!s)
		return -ENOMEM;

	while (!done && (s->out_pos < target || s->out_pos >= m->pub.size)) {
		uint64_t fr = atomic_load(&m->frontier);
		size_t produced;
		int zr;

		if (s->z.avail_in == 0) {
			size_t want = s->in_cap;
			ssize_t n;

			if (s->in_pos >= m->pub.comp_size) {
				ret = member_fail(m, FAULT_INFLATE, err);
				break;
			}
			if (m->pub.comp_size - s->in_pos < want)
				want = (size_t)(m->pub.comp_size - s->in_pos);
			n = pread_full(a->fd, s->in, want,
				       (uint64_t)data_off + s->in_pos);
			if (n != (ssize_t)want) {
				ret = n < 0 ? (int)n : -EIO;
				npz_err_set(err, "member %s: read error: %s",
					    m->pub.name, strerror(-ret));
				break;
			}
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)want;
			s->in_pos += want;
		}
		s->z.next_out = s->out;
		s->z.avail_out = (uInt)s->out_cap;
		zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END &&
		    !(zr == Z_BUF_ERROR && s->z.avail_in == 0)) {
			ret = member_fail(m, FAULT_INFLATE, err);
			if (s->z.msg)
				npz_err_set(err, "member %s: damaged deflate "
					    "data: %s", m->pub.name, s->z.msg);
			break;
		}
		produced = s->out_cap - s->z.avail_out;
		if (produced > m->pub.size - s->out_pos) {
			ret = member_fail(m, FAULT_SIZE, err);
			break;
		}
		if (produced)
			s->crc = (uint32_t)crc32_z(s->crc, s->out, produced);
		if (zr == Z_STREAM_END) {
			done = true;
			if (s->out_pos + produced != m->pub.size) {
				ret = member_fail(m, FAULT_SIZE, err);
				break;
			}
			if (s->crc != m->pub.crc) {
				ret = member_fail(m, FAULT_CRC, err);
				break;
			}
		}
		if (s->out_pos + produced > fr) {
			size_t skip = fr > s->out_pos ? (size_t)(fr - s->out_pos) : 0;

			ret = pwrite_full(a->cache_fd, s->out + skip,
					  produced - skip,
					  m->base + s->out_pos + skip);
			if (ret) {
				npz_err_set(err, "cache file: %s",
					    strerror(-ret));
				s->out_pos += produced;
				break;
			}
			atomic_store_explicit(&m->frontier,
					      s->out_pos + produced,
					      memory_order_release);
		}
		s->out_pos += produced;
	}
	/* A write error desynchronises the frontier: restart next time. */
	stream_put(a, s, done || ret);
	return ret;
}

ssize_t archive_member_read(struct archive *a, size_t i, void *buf,
			    size_t len, uint64_t off, struct npz_err *err)
{
	struct member *m;
	uint64_t end, target;
	int64_t data_off;
	ssize_t n;
	int ret;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	if (off >= m->pub.size)
		return 0;
	if (len > m->pub.size - off)
		len = (size_t)(m->pub.size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0)
		return 0;
	end = off + len;

	switch (m->pub.method) {
	case ARCHIVE_STORE:
		data_off = member_data_off(a, m, err);
		if (data_off < 0)
			return (ssize_t)data_off;
		n = pread_full(a->fd, buf, len, (uint64_t)data_off + off);
		break;
	case ARCHIVE_DEFLATE:
		if (atomic_load(&m->bad))
			return member_fail(m, FAULT_NONE, err);
		if (atomic_load_explicit(&m->frontier,
					 memory_order_acquire) < end) {
			if (m->pub.size <= ARCHIVE_SMALL ||
			    m->pub.size - end <= ARCHIVE_READAHEAD)
				target = m->pub.size;
			else
				target = end + ARCHIVE_READAHEAD;
			pthread_mutex_lock(&m->lock);
			ret = member_inflate(a, i, target, err);
			pthread_mutex_unlock(&m->lock);
			if (ret)
				return ret;
		}
		n = pread_full(a->cache_fd, buf, len, m->base + off);
		break;
	default:
		npz_err_set(err, "member %s: unsupported compression %s",
			    m->pub.name, archive_method_name(m->pub.method));
		return -EIO;
	}
	if (n < 0) {
		npz_err_set(err, "member %s: %s", m->pub.name,
			    strerror((int)-n));
		return n;
	}
	if ((size_t)n < len) {
		npz_err_set(err, "member %s: unexpected end of file",
			    m->pub.name);
		return -EIO;
	}
	return n;
}
