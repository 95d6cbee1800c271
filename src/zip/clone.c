/* clone.c - archive_commit() written by us, in one of two modes.
 *
 * Clone (reflink filesystems: XFS, btrfs): the new archive starts as a clone
 * of the old file (FICLONE shares every block, whatever the size); members
 * kept under their name stay where they are, byte for byte, entry and all;
 * changed, new and renamed members are appended after the last kept byte
 * (a local header, then the data), except patches (a stored member edited
 * in place: only the changed ranges are written, at their place, and the
 * CRC is updated from them alone); the bytes of removed and replaced
 * members and of the old central directory are punched out (blocks freed,
 * zeros read back); a new central directory, in the change list's order,
 * and the end records end the file.
 *
 * Copy (where FICLONE is not supported: ext4, tmpfs; and for compaction):
 * the new file is written from scratch in the change list's order; a kept
 * member's bytes (local header, data, data descriptor, hidden SOZip index
 * record) are copied as they are by copy_file_range() (in the kernel) to
 * their new place, the local header of stored data rewritten only to keep
 * the data aligned (an alignment extra field, as appended members get);
 * patches are written over the copy; other members are written as the
 * clone mode appends them; the kept members' central entries are copied
 * with only their local header offset changed.
 *
 * Temporary file, fsync, owner and mode, open-before-rename, rename and
 * rollback are writer.c's.
 *  Invariants: only the complete, fsynced temporary file is renamed over
 *  the archive; a new file that would hold more than CLONE_MAX_DEAD_PCT %
 *  dead bytes (holes) is not cloned but copied (compaction). */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "zip_internal.h"

/* Compaction: more dead bytes than this share of the new file, and the
 * commit copies the archive instead of cloning it. */
#define CLONE_MAX_DEAD_PCT 25
/* A member with a data descriptor (flag bit 3) keeps this many bytes after
 * its data (the descriptor's longest form). */
#define DD_SLACK 24
#define COPY_BUF (256u << 10)	/* the pread/pwrite fallback of a copy */
#define COPY_STEP (1u << 30)	/* bytes per copy_file_range() call */
#define PATCH_BLOCK (1u << 20)	/* bytes of a patch read at a time */
/* The file is to be written by copy (compaction due, or no reflink). */
#define PLAN_COPY 2

enum { CLONE_UNKNOWN, CLONE_YES, CLONE_NO };
static _Atomic int clone_support;	/* learnt at the first commit */
static _Atomic bool clone_allowed = true;	/* archive_tune_commit() */

void archive_tune_commit(bool clone)
{
	atomic_store(&clone_allowed, clone);
}

struct extent {
	uint64_t start, end;
};

struct plan {
	struct archive *a;
	const struct archive_change *ch;
	size_t n;
	ssize_t *keep;		/* old member change k keeps in place, or -1 */
	bool *patched;		/* change k patches its kept member */
	struct sozip_patch **sozip;	/* change k's SOZip patch, or NULL */
	struct extent *ext;	/* the bytes of the member change k keeps */
	struct extent *live;	/* the kept members' bytes, by start */
	size_t nlive;
	uint64_t append;	/* end of the last kept byte */
	uint64_t dead;		/* bytes before append outside live */
	struct zip_entry *ents;	/* entries of the changes not kept */
	unsigned char *cd;	/* the old central directory */
	unsigned char *hdr;	/* a local header being written */
	bool copy;		/* copy mode: the file is written from scratch */
	uint64_t *lh;		/* copy mode: new local header and data offsets */
	uint64_t *data;		/*   of the member change k keeps */
};
/* p->hdr's size: an old local header, or a new one with its padding. */
#define HDR_MAX (30 + 2 * UINT16_MAX + 20 + AR_ALIGN_BIG + AR_PAD_MIN)

static int plan_fail(struct file_src *s, int ret, const char *msg)
{
	ar_fsrc_fail(s, ZIP_ER_READ, -ret, "%s: %s", s->a->path, msg);
	return ret;
}

static int cmp_extent(const void *x, const void *y)
{
	const struct extent *e = x, *f = y;

	return e->start < f->start ? -1 : e->start > f->start;
}

/* Bytes of m's data descriptor at pos (before the central directory):
 * with or without its signature, 32- or 64-bit sizes, recognised by the
 * sizes it holds; DD_SLACK (or up to the central directory) when it is
 * not recognised. */
static uint64_t descriptor_len(struct archive *a, const struct member *m,
			       uint64_t pos)
{
	static const unsigned char forms[] = { 16, 24, 12, 20 };
	uint64_t room = a->cd_off - pos;
	unsigned char d[24];
	size_t k;

	if (ar_pread_full(a->fd, d, sizeof(d), pos) != (ssize_t)sizeof(d))
		return room < DD_SLACK ? room : DD_SLACK;
	for (k = 0; k < sizeof(forms); k++) {
		const unsigned char *f = d + (k < 2 ? 8 : 4);
		bool sig = get32(d) == SIG_DESCRIPTOR,
		     wide = forms[k] == 24 || forms[k] == 20;

		if ((k < 2) != sig || forms[k] > room)
			continue;
		if (wide ? get64(f) == m->pub.comp_size &&
			   get64(f + 8) == m->pub.size
			 : get32(f) == (uint32_t)m->pub.comp_size &&
			   get32(f + 4) == (uint32_t)m->pub.size)
			return forms[k];
	}
	return room < DD_SLACK ? room : DD_SLACK;
}

/* The bytes member m occupies: local header to the end of its data (and
 * of its data descriptor, and of the hidden SOZip index record that
 * follows, so that the index travels with its member).  Returns 0 or
 * -errno (message in s). */
static int member_extent(struct archive *a, struct member *m,
			 struct extent *e, struct file_src *s)
{
	struct npz_err err = { "" };
	int64_t off = ar_member_data_off(a, m, &err);
	uint64_t sozip_end;

	if (off < 0)
		return plan_fail(s, (int)off, err.msg);
	e->start = m->lh_off;
	e->end = (uint64_t)off + m->pub.comp_size;
	if ((m->flags & 8) && e->end <= a->cd_off)
		e->end += descriptor_len(a, m, e->end);
	sozip_end = ar_sozip_extent_end(a, m);
	if (sozip_end > e->end && sozip_end <= a->cd_off)
		e->end = sozip_end;
	return 0;
}

/* Can patch c be written in place, into the member it patches?  Only
 * under the same name, and not when a data descriptor holds the CRC. */
static bool patch_in_place(const struct archive *a,
			   const struct archive_change *c)
{
	const struct member *m;

	if (c->from >= 0 || !c->patch)
		return false;
	m = &a->m[c->patch_of];
	return !(m->flags & 8) && !strcmp(c->name, m->pub.name);
}

/* Patch k of a SOZip member: prepared here (sozip_edit.c); kept in place
 * when its compressed size stays.  Returns 1 (in place), 0 or -errno. */
static int sozip_plan(struct plan *p, size_t k, struct file_src *s)
{
	const struct archive_change *c = &p->ch[k];
	struct npz_err err = { "" };
	int ret;

	if (c->from >= 0 || !c->patch ||
	    p->a->m[c->patch_of].pub.method != ARCHIVE_DEFLATE)
		return 0;
	ret = ar_sozip_patch_prepare(p->a, c, &p->sozip[k], &err);
	if (ret)
		return plan_fail(s, ret, err.msg[0] ? err.msg : strerror(-ret));
	return p->sozip[k] && ar_sozip_patch_in_place(p->sozip[k]) &&
	       patch_in_place(p->a, c);
}

/* Which changes keep their old member in place, those members' extents,
 * where appending starts and how many bytes before it are dead. */
static int plan_keep(struct plan *p, struct file_src *s)
{
	uint64_t cur = 0;
	size_t k;
	int ret;

	for (k = 0; k < p->n; k++) {
		const struct archive_change *c = &p->ch[k];
		size_t idx;

		p->keep[k] = -1;
		ret = sozip_plan(p, k, s);
		if (ret < 0)
			return ret;
		if (c->from >= 0 && !strcmp(c->name, p->a->m[c->from].pub.name))
			idx = (size_t)c->from;
		else if (ret || (patch_in_place(p->a, c) &&
				 p->a->m[c->patch_of].pub.method == ARCHIVE_STORE))
			idx = c->patch_of;
		else
			continue;
		ret = member_extent(p->a, &p->a->m[idx], &p->ext[k], s);
		if (ret)
			return ret;
		p->live[p->nlive++] = p->ext[k];
		p->keep[k] = (ssize_t)idx;
		p->patched[k] = c->from < 0;
	}
	qsort(p->live, p->nlive, sizeof(*p->live), cmp_extent);
	for (k = 0; k < p->nlive; k++) {
		if (p->live[k].start > cur)
			p->dead += p->live[k].start - cur;
		if (p->live[k].end > cur)
			cur = p->live[k].end;
	}
	p->append = cur;
	return 0;
}

/* The new file's size, about (deflated content counted uncompressed). */
static uint64_t plan_new_size(const struct plan *p)
{
	uint64_t size = p->append + AR_END_MAX;
	size_t k;

	for (k = 0; k < p->n; k++) {
		const struct archive_change *c = &p->ch[k];

		if (p->keep[k] >= 0) {
			size += p->a->m[p->keep[k]].cd_len;
			continue;
		}
		size += 46 + 28 + 30 + 20 + 2 * strlen(c->name);
		size += c->from >= 0 ? p->a->m[c->from].pub.comp_size
				     : c->size;
	}
	return size;
}

/* Should this commit clone?  0; AR_CLONE_DECLINED: nothing changes
 * (libzip writes nothing); PLAN_COPY: compaction is due (copy). */
static int plan_decide(const struct plan *p)
{
	uint64_t size = plan_new_size(p);
	size_t k;

	for (k = 0; k < p->n && p->keep[k] == (ssize_t)k && !p->patched[k];
	     k++)
		;
	if (k == p->n && p->n == p->a->count)
		return AR_CLONE_DECLINED;
	if (p->dead > size / 100 * CLONE_MAX_DEAD_PCT) {
		npz_log("%s: compaction: %llu of %llu bytes would be dead; the "
			"commit copies the archive", p->a->path,
			(unsigned long long)p->dead, (unsigned long long)size);
		return PLAN_COPY;
	}
	return 0;
}

static void plan_release(struct plan *p)
{
	for (size_t k = 0; p->sozip && k < p->n; k++)
		ar_sozip_patch_free(p->sozip[k]);
	free(p->sozip);
	free(p->data);
	free(p->lh);
	free(p->hdr);
	free(p->cd);
	free(p->ext);
	free(p->ents);
	free(p->live);
	free(p->patched);
	free(p->keep);
}

/* Set p up: the old central directory read, the kept members found. */
static int plan_init(struct plan *p, struct archive *a,
		     const struct archive_change *ch, size_t n,
		     struct file_src *s)
{
	ssize_t got;

	memset(p, 0, sizeof(*p));
	p->a = a;
	p->ch = ch;
	p->n = n;
	p->keep = malloc((n ? n : 1) * sizeof(*p->keep));
	p->patched = calloc(n ? n : 1, sizeof(*p->patched));
	p->sozip = calloc(n ? n : 1, sizeof(*p->sozip));
	p->live = malloc((n ? n : 1) * sizeof(*p->live));
	p->ents = calloc(n ? n : 1, sizeof(*p->ents));
	p->ext = calloc(n ? n : 1, sizeof(*p->ext));
	p->lh = calloc(n ? n : 1, sizeof(*p->lh));
	p->data = calloc(n ? n : 1, sizeof(*p->data));
	p->cd = malloc(a->cd_size ? (size_t)a->cd_size : 1);
	p->hdr = malloc(HDR_MAX);
	if (!p->keep || !p->patched || !p->sozip || !p->live || !p->ents ||
	    !p->cd || !p->hdr || !p->ext || !p->lh || !p->data)
		return plan_fail(s, -ENOMEM, strerror(ENOMEM));
	got = ar_pread_full(a->fd, p->cd, (size_t)a->cd_size, a->cd_off);
	if (got >= 0 && (uint64_t)got != a->cd_size)
		got = -EIO;
	if (got < 0)
		return plan_fail(s, (int)got, "reading the central directory");
	return plan_keep(p, s);
}

/* Punch out every byte of the clone outside the kept members. */
static int punch_dead(const struct plan *p, struct file_src *s)
{
	uint64_t cur = 0, end;
	size_t k;

	for (k = 0; k <= p->nlive; k++) {
		end = k < p->nlive ? p->live[k].start : p->a->file_size;
		if (end > cur &&
		    fallocate(s->tmp_fd, FALLOC_FL_PUNCH_HOLE |
			      FALLOC_FL_KEEP_SIZE, (off_t)cur,
			      (off_t)(end - cur)) < 0)
			return -errno;
		if (k < p->nlive && p->live[k].end > cur)
			cur = p->live[k].end;
	}
	return 0;
}

/* np.load() tells a zip by its first four bytes, "PK\3\4": when the
 * first member was removed, the file starts with an empty local header
 * (no name, no data) that no central entry points to. */
static int mark_start(const struct plan *p, struct file_src *s)
{
	static const unsigned char stub[30] = { 'P', 'K', 3, 4, 20 };

	if (!p->nlive || p->live[0].start < sizeof(stub))
		return 0;	/* a kept member, or new ones, start the file */
	return io_pwrite_all(s->tmp_fd, stub, sizeof(stub), 0);
}

static bool clone_unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOTTY || e == EXDEV || e == EINVAL ||
	       e == ENOSYS;
}

/* Note (once per process) how commits are written. */
static void learn_support(int e)
{
	int was = CLONE_UNKNOWN;

	if (!atomic_compare_exchange_strong(&clone_support, &was,
					    e ? CLONE_NO : CLONE_YES))
		return;
	if (e)
		npz_log("commits copy the archive (no reflink here: %s)",
			strerror(e));
	else
		npz_log("commits clone the archive (reflink)");
}

/* The temporary file as a clone of a's file, dead bytes punched out.
 * Returns 0, PLAN_COPY (the filesystem cannot clone: no temporary file
 * left) or -errno. */
static int clone_file(const struct plan *p, struct file_src *s)
{
	int ret, e;

	ret = ar_fsrc_begin(s);
	if (ret)
		return ret;
	e = ioctl(s->tmp_fd, FICLONE, p->a->fd) < 0 ? errno : 0;
	if (!e || clone_unsupported(e))
		learn_support(e);
	if (!e)
		e = -punch_dead(p, s);
	if (!e)
		e = -mark_start(p, s);
	if (e && clone_unsupported(e)) {
		ar_fsrc_rollback(s);
		return PLAN_COPY;
	}
	if (e) {
		ar_fsrc_fail(s, ZIP_ER_WRITE, e, "cloning %s into %s: %s",
			     p->a->path, s->tmp_path, strerror(e));
		return -e;
	}
	return 0;
}

/* Copy len bytes of in at in_off to out at out_off: in the kernel when it
 * can, else through a buffer.  Returns 0 or -errno. */
static int copy_range(int in, uint64_t in_off, int out, uint64_t out_off,
		      uint64_t len)
{
	unsigned char *buf = NULL;
	int ret = 0;

	while (len && !ret) {
		size_t step = len < COPY_STEP ? (size_t)len : COPY_STEP;
		loff_t io = (loff_t)in_off, oo = (loff_t)out_off;
		ssize_t n = -1;

		if (!buf) {
			n = copy_file_range(in, &io, out, &oo, step, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && !clone_unsupported(errno))
				ret = -errno;
			else if (n < 0 && !(buf = malloc(COPY_BUF)))
				ret = -ENOMEM;
			if (ret)
				break;
		}
		if (buf) {
			n = ar_pread_full(in, buf, step < COPY_BUF ? step
							: COPY_BUF, in_off);
			if (n < 0)
				ret = (int)n;
			else if (n > 0)
				ret = io_pwrite_all(out, buf, (size_t)n,
						    out_off);
		}
		if (n == 0)
			ret = -EIO;	/* the file shrank */
		if (ret)
			break;
		in_off += (uint64_t)n;
		out_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	free(buf);
	return ret;
}

/* Clone stored content c (from its file, spilled on this filesystem) into
 * the new file at data, block-aligned, the last partial block copied, and
 * compute its CRC.  Returns 0, 1 (cannot clone: nothing written, copy it),
 * or -errno. */
static int clone_content(const struct archive_change *c, struct file_src *s,
			 uint64_t data, uint32_t *crc)
{
	struct file_clone_range r = { .src_fd = c->fd, .dest_offset = data };
	uint64_t whole = c->size / AR_ALIGN_BIG * AR_ALIGN_BIG, off = 0;
	unsigned char *buf;
	int ret;

	if (c->method != ARCHIVE_STORE || c->read || c->size < AR_ALIGN_BIG_MIN ||
	    data % AR_ALIGN_BIG)
		return 1;
	r.src_length = whole;
	if (ioctl(s->tmp_fd, FICLONERANGE, &r) < 0)
		return 1;
	ret = copy_range(c->fd, whole, s->tmp_fd, data + whole,
			 c->size - whole);
	*crc = c->crc;
	if (ret || c->crc_known)
		return ret;
	*crc = 0;
	buf = malloc(PATCH_BLOCK);
	if (!buf)
		ret = -ENOMEM;
	while (!ret && off < c->size) {
		ssize_t n = ar_pread_full(c->fd, buf, PATCH_BLOCK, off);

		if (n <= 0) {
			ret = n < 0 ? (int)n : -EIO;
			break;
		}
		*crc = crc32_update(*crc, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	return ret;
}

bool archive_spill_near(const struct archive *a)
{
	const char *slash = strrchr(a->path, '/');
	char *dir = slash == a->path ? strdup("/")
				     : strndup(a->path, (size_t)(slash - a->path));
	int x = -1, y = -1;
	bool ok = false;

	if (dir && io_set_archive_dir(dir))
		npz_log("out of memory: commits copy new content");
	if (dir && atomic_load(&clone_allowed)) {
		x = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		y = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		ok = x >= 0 && y >= 0 && ioctl(y, FICLONE, x) == 0 &&
		     io_set_spill_dir(dir) == 0;
	}
	if (x >= 0)
		close(x);
	if (y >= 0)
		close(y);
	free(dir);
	return ok;
}

static bool ascii_name(const char *name)
{
	for (; *name; name++)
		if ((unsigned char)*name >= 0x80)
			return false;
	return true;
}

/* The entry of change c, not kept in place: from its old entry (a
 * rename or a copy) or new content.  Sizes and CRC of new content come
 * once it is written. */
static void entry_init(const struct plan *p, const struct archive_change *c,
		       struct zip_entry *e)
{
	size_t len = strlen(c->name);

	e->name = c->name;
	e->name_len = (uint16_t)len;
	e->flags = ascii_name(c->name) ? 0 : 0x800;
	if (c->from >= 0) {
		const struct member *m = &p->a->m[c->from];
		const unsigned char *o = p->cd + m->cd_pos;

		e->made_by = get16(o + 4);
		e->needed = get16(o + 6);
		/* data descriptor not copied; UTF-8 flag for the new name */
		e->flags |= get16(o + 8) & ~0x0808;
		e->method = m->pub.method;
		e->time = get16(o + 12);
		e->date = get16(o + 14);
		e->ext_attr = get32(o + 38);
		e->crc = m->pub.crc;
		e->comp_size = m->pub.comp_size;
		e->size = m->pub.size;
		return;
	}
	e->made_by = 3 << 8 | 20;	/* Unix, zip 2.0 */
	e->needed = 20;
	e->method = c->method;
	ar_dos_time(c->mtime, &e->time, &e->date);
	e->ext_attr = (uint32_t)(S_IFREG | 0644) << 16;
	e->size = c->size;
}

/* The hidden SOZip index of entry e (deflated, written in chunks) at *pos,
 * right after its data (moved past it): a local header named
 * "DIR/.NAME.sozip.idx", no central entry; a 32-byte header, then the
 * offsets as uint64.  Returns 0 or -errno. */
static int write_sozip_index(struct plan *p, const struct zip_entry *e,
			     const struct sozip_index *idx,
			     struct file_src *s, uint64_t *pos)
{
	struct zip_entry ie = { .made_by = e->made_by, .needed = 20,
				.flags = e->flags & 0x800, .time = e->time,
				.date = e->date };
	unsigned char *buf = NULL;
	char *name;
	size_t hlen, len;
	int ret;

	if (e->name_len + 11u > UINT16_MAX)
		return 0;	/* no room for the name: no index */
	name = malloc(e->name_len + 11u);
	ret = name ? ar_sozip_index_data(e->size, e->comp_size, idx, &buf,
					 &len) : -ENOMEM;
	if (ret) {
		free(name);
		return plan_fail(s, ret, strerror(-ret));
	}
	ie.name = name;
	ie.name_len = (uint16_t)ar_sozip_index_name(e->name, e->name_len, name);
	ie.comp_size = ie.size = len;
	ie.crc = crc32_update(0, buf, len);
	hlen = ar_local_header(p->hdr, &ie, false);
	ret = io_pwrite_all(s->tmp_fd, p->hdr, hlen, *pos);
	if (!ret)
		ret = io_pwrite_all(s->tmp_fd, buf, len, *pos + hlen);
	free(buf);
	free(name);
	if (ret)
		return plan_fail(s, ret, strerror(-ret));
	*pos += hlen + len;
	return 0;
}

/* Append change k's member at *pos (moved past it). */
static int write_member(struct plan *p, size_t k, struct file_src *s,
			uint64_t *pos)
{
	const struct archive_change *c = &p->ch[k];
	struct zip_entry *e = &p->ents[k];
	struct sozip_index idx = { NULL, 0, 0, true };
	struct npz_err err = { "" };
	uint64_t data;
	int64_t from;
	bool zip64;
	int ret;

	entry_init(p, c, e);
	e->lh_off = *pos;
	if (p->sozip[k]) {	/* a SOZip patch that changed its size */
		uint64_t cloned = 0;

		ret = ar_sozip_patch_write(p->a, p->sozip[k], e, s->tmp_fd,
					   pos, &cloned);
		return ret ? plan_fail(s, ret, strerror(-ret)) : 0;
	}
	zip64 = c->from >= 0 ? e->size >= 0xffffffffu ||
			       e->comp_size >= 0xffffffffu
			     : ar_local_needs_zip64(c->size);
	if (zip64 && e->needed < 45)
		e->needed = 45;
	e->pad = ar_local_pad(e, zip64, *pos);
	data = *pos + ar_local_header_len(e, zip64);
	if (c->from >= 0) {
		from = ar_member_data_off(p->a, &p->a->m[c->from], &err);
		ret = from < 0 ? (int)from
			       : copy_range(p->a->fd, (uint64_t)from,
					    s->tmp_fd, data, e->comp_size);
		if (ret)
			return plan_fail(s, ret, err.msg[0] ? err.msg :
					 strerror(-ret));
	} else {
		ret = clone_content(c, s, data, &e->crc);
		if (ret == 1 && c->method == ARCHIVE_STORE && !c->read &&
		    c->crc_known) {
			/* no clone, but the CRC is known: copy in the kernel,
			 * without reading the content into memory */
			ret = copy_range(c->fd, 0, s->tmp_fd, data, c->size);
			e->crc = c->crc;
		}
		if (ret == 0)
			e->comp_size = c->size;
		else if (ret < 0)
			return plan_fail(s, ret, strerror(-ret));
		else
			ret = ar_content_write(c, s, s->tmp_fd, data,
					       &e->comp_size, &e->crc, &idx);
		if (ret) {
			free(idx.offs);
			return ret;
		}
		if (!zip64 && e->comp_size >= 0xffffffffu)
			return plan_fail(s, -EFBIG, "deflated member too big");
	}
	ret = io_pwrite_all(s->tmp_fd, p->hdr, ar_local_header(p->hdr, e,
							       zip64), *pos);
	if (ret) {
		free(idx.offs);
		return plan_fail(s, ret, strerror(-ret));
	}
	*pos = data + e->comp_size;
	if (!idx.lost && e->size > AR_SOZIP_CHUNK &&
	    idx.n == (e->size - 1) / AR_SOZIP_CHUNK)
		ret = write_sozip_index(p, e, &idx, s, pos);
	free(idx.offs);
	return ret;
}

/* Write the changed ranges of patch k into its kept member, at their
 * place (in the clone, or in the member's copy), and compute the member's
 * new CRC from them alone: for equal
 * lengths, crc(new) ^ crc(old) depends only on old ^ new, so each changed
 * block adds crc(old block) ^ crc(new block) shifted over the bytes after
 * it (crc32_combine with zeros).  The local header gets the CRC and the
 * new time (the central entry: write_central).  O(changed bytes). */
static int apply_patch(struct plan *p, size_t k, struct file_src *s)
{
	const struct archive_change *c = &p->ch[k];
	struct member *m = &p->a->m[p->keep[k]];
	struct zip_entry *e = &p->ents[k];
	struct npz_err err = { "" };
	unsigned char *old = malloc(PATCH_BLOCK), *now = malloc(PATCH_BLOCK);
	int64_t data = ar_member_data_off(p->a, m, &err);
	/* where the member is in the new file: in place, or copied */
	uint64_t to = p->copy ? p->data[k] : (uint64_t)data;
	uint64_t to_lh = p->copy ? p->lh[k] : m->lh_off;
	uint32_t crc = m->pub.crc;
	unsigned char lh[8];
	int ret = data < 0 ? (int)data : !old || !now ? -ENOMEM : 0;

	if (p->sozip[k]) {	/* a SOZip patch of the same size */
		free(old);
		free(now);
		if (!ret)
			ret = ar_sozip_patch_apply(p->sozip[k], e, c->mtime,
						   s->tmp_fd, to, to_lh);
		return ret ? plan_fail(s, ret, strerror(-ret)) : 0;
	}

	for (size_t r = 0; !ret && r < c->nranges; r++) {
		uint64_t pos = c->ranges[r].off, end = pos + c->ranges[r].len;

		if (end > c->size || end < pos)
			ret = -EINVAL;
		while (!ret && pos < end) {
			size_t n = end - pos < PATCH_BLOCK ? (size_t)(end - pos)
							   : PATCH_BLOCK;
			ssize_t a = ar_pread_full(p->a->fd, old, n,
						  (uint64_t)data + pos);
			ssize_t b = ar_content_pread(c, now, n, pos);

			ret = a < 0 ? (int)a : b < 0 ? (int)b :
			      (size_t)a != n || (size_t)b != n ? -EIO : 0;
			if (ret)
				break;
			crc ^= (uint32_t)crc32_combine(crc32_update(0, old, n) ^
						       crc32_update(0, now, n), 0,
						       (z_off_t)(c->size - pos - n));
			ret = io_pwrite_all(s->tmp_fd, now, n, to + pos);
			pos += n;
		}
	}
	free(old);
	free(now);
	if (ret)
		return plan_fail(s, ret, err.msg[0] ? err.msg : strerror(-ret));
	e->crc = crc;
	ar_dos_time(c->mtime, &e->time, &e->date);
	put16(lh, e->time);
	put16(lh + 2, e->date);
	put32(lh + 4, crc);
	ret = io_pwrite_all(s->tmp_fd, lh, sizeof(lh), to_lh + 10);
	return ret ? plan_fail(s, ret, strerror(-ret)) : 0;
}

/* ---- copy mode ---- */

/* Copy len bytes of a's file at from to the new file at to (copy mode).
 * No writeback is started on the way (sync_file_range() every 32 MiB made
 * a 2 GiB commit on ext4 a third slower than leaving it all to the fsync).
 * Returns 0 or -errno (message in s). */
static int copy_out(const struct plan *p, struct file_src *s, uint64_t from,
		    uint64_t to, uint64_t len)
{
	int ret = copy_range(p->a->fd, from, s->tmp_fd, to, len);

	return ret ? plan_fail(s, ret, strerror(-ret)) : 0;
}

/* The local header of kept stored member m (hlen bytes, read into p->hdr)
 * for its new place pos: the same, but with an alignment extra field
 * (replacing any) sized so that the data starts on AR_ALIGN_BIG bytes
 * (AR_ALIGN_BIG_MIN or more) or AR_ALIGN_SMALL, as ar_local_pad() aligns
 * appended members.  Returns the new header's length in p->hdr, 0 when the
 * old one is to be copied as it is (its data lands aligned already, or its
 * extra field cannot be taken apart or has no room), or -errno. */
static int64_t realign_header(struct plan *p, const struct member *m,
			      uint64_t hlen, uint64_t pos)
{
	uint32_t align = m->pub.size >= AR_ALIGN_BIG_MIN ? AR_ALIGN_BIG
							 : AR_ALIGN_SMALL;
	unsigned char *h = p->hdr, *x, *xend, *out;
	uint32_t pad;
	ssize_t got;

	if ((pos + hlen) % align == 0 || hlen < 30 || hlen > HDR_MAX)
		return 0;
	got = ar_pread_full(p->a->fd, h, (size_t)hlen, m->lh_off);
	if (got < 0)
		return got;
	if ((uint64_t)got != hlen || get32(h) != SIG_LOCAL ||
	    30 + (uint64_t)get16(h + 26) + get16(h + 28) != hlen)
		return 0;
	/* the extra field without its alignment fields, in place */
	out = x = h + 30 + get16(h + 26);
	xend = h + hlen;
	while (x < xend) {
		uint16_t id, sz;

		if (xend - x < 4)
			return 0;
		id = get16(x);
		sz = get16(x + 2);
		if (sz > xend - x - 4)
			return 0;
		if (id != AR_PAD_ID) {
			memmove(out, x, 4u + sz);
			out += 4u + sz;
		}
		x += 4u + sz;
	}
	pad = (uint32_t)((align - (pos + (uint64_t)(out - h)) % align) % align);
	while (pad && pad < AR_PAD_MIN)
		pad += align;
	if ((size_t)(out - h) - 30 - get16(h + 26) + pad > UINT16_MAX)
		return 0;
	if (pad) {
		put16(out, AR_PAD_ID);
		put16(out + 2, (uint16_t)(pad - 4));
		put16(out + 4, (uint16_t)align);
		memset(out + 6, 0, pad - AR_PAD_MIN);
		out += pad;
	}
	put16(h + 28, (uint16_t)(out - h - 30 - get16(h + 26)));
	return out - h;
}

/* Copy the member change k keeps to *pos (moved past it): its bytes as
 * they are (local header, data, data descriptor, SOZip index record),
 * stored data kept aligned (realign_header()); records where its local
 * header and data went.  Returns 0 or -errno (message in s). */
static int copy_kept(struct plan *p, size_t k, struct file_src *s,
		     uint64_t *pos)
{
	struct member *m = &p->a->m[p->keep[k]];
	const struct extent *x = &p->ext[k];
	struct npz_err err = { "" };
	int64_t data = ar_member_data_off(p->a, m, &err), hlen = 0;
	int ret;

	if (data < 0)
		return plan_fail(s, (int)data, err.msg[0] ? err.msg :
				 strerror((int)-data));
	if (m->pub.method == ARCHIVE_STORE)
		hlen = realign_header(p, m, (uint64_t)data - x->start, *pos);
	if (hlen < 0)
		return plan_fail(s, (int)hlen, strerror((int)-hlen));
	if (hlen) {
		ret = io_pwrite_all(s->tmp_fd, p->hdr, (size_t)hlen, *pos);
		if (ret)
			return plan_fail(s, ret, strerror(-ret));
	} else {
		hlen = data - (int64_t)x->start;
		ret = copy_out(p, s, x->start, *pos, (uint64_t)hlen);
		if (ret)
			return ret;
	}
	p->lh[k] = *pos;
	p->data[k] = *pos + (uint64_t)hlen;
	ret = copy_out(p, s, (uint64_t)data, p->data[k],
		       x->end - (uint64_t)data);
	if (ret)
		return ret;
	*pos = p->data[k] + (x->end - (uint64_t)data);
	return 0;
}

/* The temporary file written from scratch: every change in order, kept
 * members copied (patches written over their copy), the others written;
 * *pos: where the central directory goes.  Returns 0 or -errno. */
/* Set when a filesystem said no to FALLOC_FL_INSERT_RANGE: no adoption
 * is tried again. */
static _Atomic bool adopt_unsupported;

/* The change whose content file a copying commit may make the new
 * archive (archive_change.adopt), or -1. */
static ssize_t adoptable(const struct plan *p)
{
	if (atomic_load(&adopt_unsupported))
		return -1;
	for (size_t k = 0; k < p->n; k++) {
		const struct archive_change *c = &p->ch[k];

		if (p->keep[k] < 0 && c->from == -1 && c->adopt &&
		    c->fd >= 0 && !c->read && !c->patch &&
		    c->method == ARCHIVE_STORE && c->crc_known &&
		    c->size >= AR_ALIGN_BIG_MIN)
			return (ssize_t)k;
	}
	return -1;
}

/* Make change k's content file the temporary file, its member first: the
 * content moved up in place by one block (no data copied; the kernel
 * writes it out first, which the fsync would have waited for anyway), its
 * local header, padded to that block, before it.  Returns 0 with *pos past
 * the data; 1: not done, nothing changed or left behind (write the file
 * from scratch); or -errno (the content may have moved: the caller throws
 * it away; the rollback removes the temporary file). */
static int adopt_member(struct plan *p, size_t k, struct file_src *s,
			uint64_t *pos)
{
	const struct archive_change *c = &p->ch[k];
	struct zip_entry *e = &p->ents[k];
	bool zip64 = ar_local_needs_zip64(c->size);
	struct stat st;
	int ret;

	entry_init(p, c, e);
	e->lh_off = 0;
	if (zip64 && e->needed < 45)
		e->needed = 45;
	e->pad = ar_local_pad(e, zip64, 0);
	if (ar_local_header_len(e, zip64) != AR_ALIGN_BIG ||
	    fstat(c->fd, &st) < 0 || st.st_nlink ||
	    (uint64_t)st.st_size != c->size)
		return 1;
	if (ar_fsrc_adopt(s, c->fd))
		return 1;	/* another filesystem, ... */
	if (fallocate(s->tmp_fd, FALLOC_FL_INSERT_RANGE, 0, AR_ALIGN_BIG) < 0) {
		int err = errno;

		if (err == EOPNOTSUPP &&
		    !atomic_exchange(&adopt_unsupported, true))
			npz_log("commits copy new content (no "
				"FALLOC_FL_INSERT_RANGE here)");
		if (err != EOPNOTSUPP && err != EINVAL)	/* ENOSPC, EIO, ... */
			return plan_fail(s, -err, strerror(err));
		ar_fsrc_rollback(s);	/* checked before anything moved */
		return 1;
	}
	e->crc = c->crc;
	e->comp_size = c->size;
	ret = io_pwrite_all(s->tmp_fd, p->hdr, ar_local_header(p->hdr, e,
							       zip64), 0);
	if (ret)
		return plan_fail(s, ret, strerror(-ret));
	*pos = AR_ALIGN_BIG + c->size;
	return 0;
}

static int copy_file(struct plan *p, struct file_src *s, uint64_t *pos)
{
	ssize_t adopted = adoptable(p);
	size_t k;
	int ret = 1;

	p->copy = true;
	if (adopted >= 0)
		ret = adopt_member(p, (size_t)adopted, s, pos);
	if (ret == 1) {
		adopted = -1;
		ret = ar_fsrc_begin(s);
		*pos = 0;
	}
	for (k = 0; !ret && k < p->n; k++) {
		if ((ssize_t)k == adopted)
			continue;
		if (p->keep[k] < 0) {
			ret = write_member(p, k, s, pos);
			continue;
		}
		ret = copy_kept(p, k, s, pos);
		if (!ret && p->patched[k])
			ret = apply_patch(p, k, s);
	}
	return ret;
}

/* The central directory and end records at pos; the file ends there. */
static int write_central(const struct plan *p, struct file_src *s,
			 uint64_t pos)
{
	size_t len = AR_END_MAX, k, x;
	unsigned char *buf, *q;
	int ret;

	for (k = 0; k < p->n; k++)
		len += p->keep[k] >= 0 ? p->a->m[p->keep[k]].cd_len + 12
				       : ar_central_len(&p->ents[k]);
	buf = malloc(len);
	if (!buf)
		return plan_fail(s, -ENOMEM, strerror(ENOMEM));
	for (q = buf, k = 0; k < p->n; k++) {
		const struct member *m = &p->a->m[p->keep[k] >= 0 ?
						  p->keep[k] : 0];

		if (p->keep[k] < 0) {
			q += ar_central_entry(q, &p->ents[k]);
			continue;
		}
		if (p->copy) {
			x = ar_central_moved(q, p->cd + m->cd_pos, m->cd_len,
					  p->lh[k]);
		} else {
			memcpy(q, p->cd + m->cd_pos, m->cd_len);
			x = m->cd_len;
		}
		if (!x) {
			free(buf);
			return plan_fail(s, -EFBIG, "no room for a zip64 field");
		}
		if (p->patched[k]) {
			put16(q + 12, p->ents[k].time);
			put16(q + 14, p->ents[k].date);
			put32(q + 16, p->ents[k].crc);
		}
		q += x;
	}
	q += ar_end_records(q, p->n, pos, (uint64_t)(q - buf));
	ret = io_pwrite_all(s->tmp_fd, buf, (size_t)(q - buf), pos);
	if (!ret && ftruncate(s->tmp_fd, (off_t)(pos + (uint64_t)(q - buf))))
		ret = -errno;
	free(buf);
	return ret ? plan_fail(s, ret, strerror(-ret)) : 0;
}

/* Note (once per process) that commits go through libzip. */
static void note_rewrite(void)
{
	static _Atomic bool told;

	if (!atomic_exchange(&told, true))
		npz_log("commits rewrite the archive through libzip "
			"(-o commit=rewrite)");
}

int ar_clone_commit(struct archive *a, const struct archive_change *changes,
		    size_t n, struct file_src *s)
{
	uint64_t pos;
	struct plan p;
	size_t k;
	int ret;

	if (!atomic_load(&clone_allowed)) {
		note_rewrite();
		return AR_CLONE_DECLINED;
	}
	ret = plan_init(&p, a, changes, n, s);
	if (!ret)
		ret = plan_decide(&p);
	/* clone where the filesystem can, unless compaction is due */
	if (!ret && atomic_load(&clone_support) != CLONE_NO)
		ret = clone_file(&p, s);	/* PLAN_COPY: cannot clone */
	else if (!ret)
		ret = PLAN_COPY;
	if (ret == PLAN_COPY) {
		ret = copy_file(&p, s, &pos);
	} else {
		pos = p.append;
		for (k = 0; !ret && k < n; k++)
			if (p.keep[k] < 0)
				ret = write_member(&p, k, s, &pos);
			else if (p.patched[k])
				ret = apply_patch(&p, k, s);
	}
	if (!ret)
		ret = write_central(&p, s, pos);
	if (!ret)
		ret = ar_fsrc_finish(s);
	if (ret)
		ar_fsrc_rollback(s);	/* no temporary file survives */
	plan_release(&p);
	return ret;
}
