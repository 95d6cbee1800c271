/* reader.c - reading member data: stored members by pread() at their data
 * offset (found from the local header on first use), deflated ones through
 * inflate.c; zero-copy spans; detection of an archive rewritten in place
 * by another program (every read fails from then on). */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zip_internal.h"

/* pread until len bytes or end of file.  Returns bytes read or -errno. */
ssize_t ar_pread_full(int fd, void *buf, size_t len, uint64_t off)
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

/* Is the file behind a->fd still the one indexed (same size and mtime)?
 * Another program may rewrite it in place (np.savez truncates and
 * rewrites): our offsets then point into other bytes, so every read of it
 * fails from then on.  One fstat per call; call it after reading.
 * Returns 0 or -EIO (logged once). */
int ar_file_unchanged(struct archive *a)
{
	struct stat sb;

	if (atomic_load(&a->rewritten))
		return -EIO;
	if (fstat(a->fd, &sb) == 0 && sb.st_size == a->st.st_size &&
	    sb.st_mtim.tv_sec == a->st.st_mtim.tv_sec &&
	    sb.st_mtim.tv_nsec == a->st.st_mtim.tv_nsec)
		return 0;
	if (!atomic_exchange(&a->rewritten, true))
		npz_log("%s: the archive was rewritten in place by another "
			"program since it was opened: its members cannot be "
			"read any more (EIO) until it is mounted again",
			a->path);
	return -EIO;
}

bool archive_intact(struct archive *a)
{
	return ar_file_unchanged(a) == 0;
}

/* Record that m is damaged and say why.  Returns -EIO. */
int ar_member_fail(struct member *m, int fault, struct npz_err *err)
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
int64_t ar_member_data_off(struct archive *a, struct member *m,
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
		return ar_member_fail(m, FAULT_NONE, err);
	if (m->flags & 1)
		return ar_member_fail(m, FAULT_ENCRYPTED, err);
	if (need > sizeof(stackbuf)) {
		h = malloc(need);
		if (!h)
			return -ENOMEM;
	}
	n = ar_pread_full(a->fd, h, need, m->lh_off);
	if (n >= 0 && ar_file_unchanged(a)) {
		ret = -EIO;
		npz_err_set(err, "member %s: the archive changed on disk",
			    m->pub.name);
	} else if (n < 0) {
		ret = (int)n;
		npz_err_set(err, "member %s: %s", m->pub.name, strerror(-ret));
	} else if ((size_t)n < need || get32(h) != SIG_LOCAL ||
		   get16(h + 26) != m->raw_len ||
		   memcmp(h + 30, m->raw_name, m->raw_len) != 0) {
		ret = ar_member_fail(m, FAULT_LOCAL_HEADER, err);
	} else {
		off = m->lh_off + 30 + m->raw_len + get16(h + 28);
		if (off > a->file_size || m->pub.comp_size > a->file_size - off)
			ret = ar_member_fail(m, FAULT_PAST_EOF, err);
		else
			atomic_store_explicit(&m->data_off, off,
					      memory_order_release);
	}
	if (h != stackbuf)
		free(h);
	return ret ? ret : (int64_t)off;
}

int archive_member_span(struct archive *a, size_t i, uint64_t off,
			size_t len, int *fd, uint64_t *pos, size_t *n,
			struct npz_err *err)
{
	struct member *m;
	int64_t data_off;

	if (i >= a->count)
		return -EINVAL;
	m = &a->m[i];
	*n = 0;
	*fd = a->fd;
	*pos = 0;
	if (off >= m->pub.size)
		return 0;
	if (len > m->pub.size - off)
		len = (size_t)(m->pub.size - off);
	/* Only stored members: cached inflated bytes may be evicted before
	 * the caller is done with the span. */
	if (m->pub.method != ARCHIVE_STORE)
		return -EAGAIN;
	data_off = ar_member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	if (ar_file_unchanged(a))
		return -EIO;
	*pos = (uint64_t)data_off + off;
	*n = len;
	return 0;
}

ssize_t archive_member_read(struct archive *a, size_t i, void *buf,
			    size_t len, uint64_t off, struct npz_err *err)
{
	struct member *m;
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

	switch (m->pub.method) {
	case ARCHIVE_STORE:
		data_off = ar_member_data_off(a, m, err);
		if (data_off < 0)
			return (ssize_t)data_off;
		n = ar_pread_full(a->fd, buf, len, (uint64_t)data_off + off);
		break;
	case ARCHIVE_DEFLATE:
		ret = ar_deflated_read(a, i, buf, len, off, err);
		if (ret)
			return ret;
		n = (ssize_t)len;
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
	/* after reading: bytes read before a rewrite was seen are not
	 * returned either (cached ones included, for one rule) */
	if (ar_file_unchanged(a))
		return -EIO;
	return n;
}

const char *archive_path(const struct archive *a)
{
	return a->path;
}

time_t archive_mtime(const struct archive *a)
{
	return a->st.st_mtime;
}

void archive_identity(const struct archive *a, struct stat *st)
{
	*st = a->st;
}

int archive_fstat(const struct archive *a, struct stat *st)
{
	return fstat(a->fd, st) ? -errno : 0;
}
