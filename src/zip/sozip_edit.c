/* sozip_edit.c - patches of SOZip members: an edit of a few pages of a
 * deflated member written in independent chunks recompresses only the
 * chunks those pages touch (O(change)), whatever the member's size.
 *
 * A touched chunk is deflated anew on its own, as deflate.c's SOZip mode
 * writes one (raw deflate, no dictionary, a sync then a full flush; the
 * last chunk ends the stream), after padding: empty deflate blocks, which inflate to nothing (an empty stored
 * block is 5 bytes when it starts on a byte; k empty fixed-Huffman blocks
 * before it make ceil((10k + 3) / 8) + 4 bytes; so every length from 5 up
 * but 8 is reachable).  The padding makes each new chunk exactly as long
 * as the old one when it can (the old one shrank by 0 or at least 5
 * bytes), else longer by a multiple of 4096:
 *  - no chunk grew: the compressed size and every chunk's offset stay, so
 *    the member is patched where it lies (the touched chunks written over
 *    the old ones, the CRC in its headers); the index does not change;
 *  - some grew: the member is written anew (after the kept ones), its data
 *    starting at the old data's offset modulo 4096, so that every
 *    untouched run of chunks stays congruent modulo the block size and is
 *    cloned (FICLONERANGE, its partial first and last blocks copied), or
 *    copied where the filesystem cannot clone; a new index follows.
 * The first level tried is the change's (the mount's level); when the new
 * chunk does not fit the old one, a few other levels and strategies are
 * tried before growing.
 *
 * CRC: for equal lengths crc(new) ^ crc(old) depends only on old ^ new
 * (clone.c's apply_patch), so each touched chunk adds crc(old chunk) ^
 * crc(new chunk) shifted over the bytes after it; the old chunk is
 * inflated from the old member (it is read anyway: the new chunk is the
 * old one with the written pages laid over).
 *
 * Threads: the touched chunks are prepared on the caller's thread and, for
 * two or more, on up to PREP_THREADS - 1 more (at most the online CPUs;
 * all signals blocked), gone when ar_sozip_patch_prepare() returns; each
 * takes the next chunk from an atomic counter and writes only its own
 * patch_chunk.
 *  Invariants: every chunk of the result inflates on its own to exactly
 *  its bytes of the new content, only the last ends the stream, and the
 *  whole is one valid deflate stream for ordinary readers. */
#include <errno.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "zip_internal.h"

#define BLOCK 4096u			/* congruence of cloned runs */
#define PATCH_MAX_BYTES (64u << 20)	/* content of touched chunks, most */
#define COPY_BUF (1u << 20)
#define INDEX_HDR 32u
#define STORED_EMPTY 5u			/* an empty stored block */
#define MANY_CHUNKS 16			/* more touched chunks: fewer tries */
#define PREP_THREADS 8			/* threads deflating touched chunks */

struct patch_chunk {
	uint64_t k;			/* the chunk */
	unsigned char *data;		/* its new compressed bytes */
	size_t len;
	uint32_t crc_delta;		/* crc(old) ^ crc(new), shifted */
};

struct sozip_patch {
	size_t member;			/* patch_of */
	const struct sozip_map *x;	/* its index (the old archive's) */
	uint64_t data_off;		/* its data in the old file */
	uint64_t size, comp_size;	/* the new member's */
	uint32_t crc;
	struct patch_chunk *ch;		/* touched chunks, in order */
	size_t n;
	bool in_place;			/* no chunk changed its length */
};

/* ---- padding -------------------------------------------------------- */

/* Bytes of k empty fixed-Huffman blocks and an empty stored block. */
static size_t group_len(unsigned k)
{
	return (10 * k + 3 + 7) / 8 + 4;
}

/* k empty fixed blocks (BFINAL 0, BTYPE 01, end-of-block code 0000000:
 * 10 bits each), then an empty stored block (BFINAL 0, BTYPE 00, to the
 * byte, LEN 0, NLEN 0xffff), at a byte boundary.  Returns its length. */
static size_t group_put(unsigned char *p, unsigned k)
{
	size_t head = (10 * k + 3 + 7) / 8;

	memset(p, 0, head);
	for (unsigned i = 0; i < k; i++)	/* BTYPE's low bit */
		p[(10 * i + 1) / 8] |= (unsigned char)(1u << ((10 * i + 1) % 8));
	p[head] = p[head + 1] = 0;
	p[head + 2] = p[head + 3] = 0xff;
	return head + 4;
}

bool ar_sozip_pad_ok(size_t n)
{
	return n == 0 || (n >= STORED_EMPTY && n != 8);
}

size_t ar_sozip_pad(unsigned char *p, size_t n)
{
	size_t done = 0;

	if (!ar_sozip_pad_ok(n))
		return 0;
	while (n - done >= 15)
		done += group_put(p + done, 0);
	if (n - done == 13) {
		done += group_put(p + done, 1);
		done += group_put(p + done, 2);
	}
	for (unsigned k = 0; k < 8 && done < n; k++)
		if (group_len(k) == n - done)
			done += group_put(p + done, k);
	return done;
}

/* ---- preparing: the touched chunks deflated anew -------------------- */

/* Deflate in[0..len) on its own into out (room for compressBound + 64),
 * as deflate.c's SOZip mode writes a chunk: a sync then a full flush
 * (not last), or the end of the stream (last).  Returns the length or
 * -errno. */
static ssize_t chunk_deflate(const unsigned char *in, size_t len, bool last,
			     int level, int strategy, unsigned char *out,
			     size_t cap)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	/* what deflate.c and zipfile use: raw, window 15, memLevel 8 */
	if (deflateInit2(&z, level, Z_DEFLATED, -MAX_WBITS, 8, strategy) != Z_OK)
		return -ENOMEM;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (last) {
		zr = deflate(&z, Z_FINISH);
		zr = zr == Z_STREAM_END ? Z_OK : Z_BUF_ERROR;
	} else {
		zr = deflate(&z, Z_SYNC_FLUSH);
		if (zr == Z_OK && z.avail_in == 0 && z.avail_out)
			zr = deflate(&z, Z_FULL_FLUSH);
	}
	if (zr != Z_OK || z.avail_in || !z.avail_out) {
		deflateEnd(&z);
		return -EIO;
	}
	deflateEnd(&z);
	return (ssize_t)(cap - z.avail_out);
}

/* The padding before a body of `body` bytes so that the chunk is old
 * bytes long, or longer by a multiple of BLOCK (when it grew, or shrank
 * by 1 to 4 or 8 bytes). */
static uint64_t pad_for(uint64_t old, uint64_t body)
{
	uint64_t d = body <= old ? old - body
				 : (BLOCK - (body - old) % BLOCK) % BLOCK;

	while (!ar_sozip_pad_ok((size_t)d))
		d += BLOCK;
	return d;
}

/* Encode the new content of a chunk (in, len bytes; its old compressed
 * length old_len) into pc: padding, then the deflated bytes.  The
 * change's level first; when that does not fit the old length but comes
 * close (within an eighth), other levels and strategies, max_tries
 * encodings in all (for a chunk of a few bytes, fixed codes may be what
 * fits).  Returns 0 or -errno. */
static int chunk_encode(const unsigned char *in, size_t len, bool last,
			uint64_t old_len, int level, size_t max_tries,
			struct patch_chunk *pc)
{
	/* the change's level, then the fast ones (greedy matching: levels
	 * 1-4, 5-20 times faster than 6-9, and on numeric data often
	 * smaller), then the slow ones */
	static const struct { int level, strategy; } tries[] = {
		{ -2, Z_DEFAULT_STRATEGY }, { 4, Z_DEFAULT_STRATEGY },
		{ 3, Z_DEFAULT_STRATEGY }, { 2, Z_DEFAULT_STRATEGY },
		{ -2, Z_RLE }, { 4, Z_FIXED }, { -2, Z_HUFFMAN_ONLY },
		{ 1, Z_DEFAULT_STRATEGY }, { 9, Z_DEFAULT_STRATEGY },
		{ -2, Z_FILTERED }, { 8, Z_DEFAULT_STRATEGY },
		{ 7, Z_DEFAULT_STRATEGY }, { 5, Z_DEFAULT_STRATEGY },
		{ 9, Z_FILTERED }, { 9, Z_FIXED },
	};
	size_t cap = (size_t)compressBound((uLong)len) + 64;
	unsigned char *body = malloc(cap), *best = NULL;
	uint64_t best_total = UINT64_MAX;
	size_t best_body = 0, t;
	int ret = body ? 0 : -ENOMEM;

	if (max_tries > sizeof(tries) / sizeof(tries[0]))
		max_tries = sizeof(tries) / sizeof(tries[0]);
	for (t = 0; !ret && t < max_tries; t++) {
		int lv = tries[t].level == -2 ? level : tries[t].level;
		ssize_t n;
		uint64_t total;

		if (t && lv == level && tries[t].strategy == Z_DEFAULT_STRATEGY)
			continue;
		/* far too big (new content deflates worse): other levels
		 * will not make up for it */
		if (t && best_body > old_len + old_len / 8 + 64)
			break;
		n = chunk_deflate(in, len, last, lv, tries[t].strategy, body,
				  cap);
		if (n < 0) {
			ret = (int)n;
			break;
		}
		total = (uint64_t)n + pad_for(old_len, (uint64_t)n);
		if (total < best_total) {
			unsigned char *keep = best ? best : malloc(cap);

			if (!keep) {
				ret = -ENOMEM;
				break;
			}
			memcpy(keep, body, (size_t)n);
			best = keep;
			best_body = (size_t)n;
			best_total = total;
		}
		if (best_total == old_len)
			break;
	}
	free(body);
	if (ret) {
		free(best);
		return ret;
	}
	pc->data = malloc((size_t)best_total);
	if (!pc->data) {
		free(best);
		return -ENOMEM;
	}
	pc->len = (size_t)best_total;
	ar_sozip_pad(pc->data, (size_t)(best_total - best_body));
	memcpy(pc->data + (best_total - best_body), best, best_body);
	free(best);
	return 0;
}

void ar_sozip_patch_free(struct sozip_patch *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->n; i++)
		free(sp->ch[i].data);
	free(sp->ch);
	free(sp);
}

/* The touched chunks of c (x: its index) into sp->ch.  Returns 0, 1 (too
 * many: not worth a patch) or -ENOMEM. */
static int touched_chunks(const struct archive_change *c,
			  const struct sozip_map *x, struct sozip_patch *sp)
{
	uint64_t cs = x->chunk_size, prev = UINT64_MAX, count = 0;

	for (int pass = 0; pass < 2; pass++) {
		prev = UINT64_MAX;
		count = 0;
		for (size_t r = 0; r < c->nranges; r++) {
			const struct archive_range *g = &c->ranges[r];

			if (!g->len)
				continue;
			for (uint64_t k = g->off / cs;
			     k <= (g->off + g->len - 1) / cs; k++) {
				if (k == prev)
					continue;
				if (pass)
					sp->ch[count].k = k;
				count++;
				prev = k;
			}
		}
		if (pass)
			break;
		if (count * cs > PATCH_MAX_BYTES)
			return 1;
		sp->ch = calloc(count ? count : 1, sizeof(*sp->ch));
		if (!sp->ch)
			return -ENOMEM;
	}
	sp->n = (size_t)count;
	return 0;
}

/* Lay c's written ranges over buf, chunk bytes [us, us + len).  0/-errno. */
static int overlay(const struct archive_change *c, unsigned char *buf,
		   uint64_t us, size_t len)
{
	for (size_t r = 0; r < c->nranges; r++) {
		uint64_t a = c->ranges[r].off, b = a + c->ranges[r].len;
		ssize_t n;

		if (b <= us || a >= us + len)
			continue;
		if (a < us)
			a = us;
		if (b > us + len)
			b = us + len;
		n = ar_content_pread(c, buf + (a - us), (size_t)(b - a), a);
		if (n < 0)
			return (int)n;
		if ((uint64_t)n != b - a)
			return -EIO;
	}
	return 0;
}

/* The chunks of a patch being prepared, shared by its worker threads. */
struct prep {
	struct archive *a;
	const struct archive_change *c;
	struct sozip_patch *sp;
	int level;
	size_t max_tries;
	_Atomic size_t next;		/* the next chunk to take */
	pthread_mutex_t lock;		/* ret, err */
	int ret;			/* the first failure */
	struct npz_err *err;
};

/* Chunk i of pr: the old chunk inflated, the written ranges laid over,
 * its CRC delta, deflated anew.  Returns 0 or -errno (err set). */
static int prep_chunk(struct prep *pr, size_t i, unsigned char *old,
		      unsigned char *now, struct npz_err *err)
{
	struct sozip_patch *sp = pr->sp;
	const struct sozip_map *x = sp->x;
	struct patch_chunk *pc = &sp->ch[i];
	uint64_t us = pc->k * x->chunk_size;
	size_t len = sp->size - us < x->chunk_size ? (size_t)(sp->size - us)
						   : x->chunk_size;
	ssize_t got = archive_member_read(pr->a, sp->member, old, len, us, err);
	int ret;

	if (got >= 0 && (size_t)got != len)
		got = -EIO;
	if (got < 0)
		return (int)got;
	memcpy(now, old, len);
	ret = overlay(pr->c, now, us, len);
	if (ret) {
		npz_err_set(err, "member %s: reading its new content: %s",
			    pr->c->name, strerror(-ret));
		return ret;
	}
	pc->crc_delta = (uint32_t)crc32_combine(crc32_update(0, old, len) ^
						crc32_update(0, now, len), 0,
						(z_off_t)(sp->size - us - len));
	ret = chunk_encode(now, len, pc->k + 1 == x->nchunks,
			   x->off[pc->k + 1] - x->off[pc->k], pr->level,
			   pr->max_tries, pc);
	if (ret)
		npz_err_set(err, "member %s: deflating a chunk: %s",
			    pr->c->name, strerror(-ret));
	return ret;
}

/* Take chunks until none is left or one failed. */
static void *prep_worker(void *arg)
{
	struct prep *pr = arg;
	size_t cs = pr->sp->x->chunk_size, i;
	unsigned char *old = malloc(cs), *now = malloc(cs);
	struct npz_err err = { "" };
	int ret = old && now ? 0 : -ENOMEM;

	while (!ret && (i = atomic_fetch_add(&pr->next, 1)) < pr->sp->n) {
		pthread_mutex_lock(&pr->lock);
		ret = pr->ret;		/* another failed: stop */
		pthread_mutex_unlock(&pr->lock);
		if (!ret)
			ret = prep_chunk(pr, i, old, now, &err);
	}
	pthread_mutex_lock(&pr->lock);
	if (ret && !pr->ret) {
		pr->ret = ret;
		if (pr->err && err.msg[0])
			*pr->err = err;
	}
	pthread_mutex_unlock(&pr->lock);
	free(old);
	free(now);
	return NULL;
}

/* Prepare every chunk of pr: on this thread and, for two chunks or more,
 * on up to PREP_THREADS - 1 more (all signals blocked).  0 or -errno. */
static int prep_run(struct prep *pr)
{
	pthread_t th[PREP_THREADS];
	size_t want = pr->sp->n < PREP_THREADS ? pr->sp->n : PREP_THREADS;
	size_t started = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t all, old;

	if (cpus > 0 && want > (size_t)cpus)
		want = (size_t)cpus;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; started + 1 < want; started++)
		if (pthread_create(&th[started], NULL, prep_worker, pr))
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	prep_worker(pr);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return pr->ret;
}

int ar_sozip_patch_prepare(struct archive *a, const struct archive_change *c,
			   struct sozip_patch **out, struct npz_err *err)
{
	struct member *m;
	const struct sozip_map *x;
	struct sozip_patch *sp;
	struct prep pr;
	int64_t data_off;
	int64_t growth = 0;
	int ret;

	*out = NULL;
	if (!c->patch || c->from >= 0 || c->patch_of >= a->count)
		return 0;
	m = &a->m[c->patch_of];
	if (m->pub.method != ARCHIVE_DEFLATE || c->method != ARCHIVE_DEFLATE ||
	    m->pub.size != c->size || !(x = ar_sozip_map(a, m)))
		return 0;
	data_off = ar_member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->member = c->patch_of;
	sp->x = x;
	sp->data_off = (uint64_t)data_off;
	sp->size = m->pub.size;
	sp->crc = m->pub.crc;
	ret = touched_chunks(c, x, sp);
	if (ret) {
		ar_sozip_patch_free(sp);
		return ret < 0 ? ret : 0;
	}
	pr = (struct prep){ .a = a, .c = c, .sp = sp, .err = err,
			    .level = c->level < 0 ? Z_DEFAULT_COMPRESSION
						  : c->level,
			    .max_tries = sp->n > MANY_CHUNKS ? 4 : SIZE_MAX };
	atomic_init(&pr.next, 0);
	pthread_mutex_init(&pr.lock, NULL);
	ret = prep_run(&pr);
	pthread_mutex_destroy(&pr.lock);
	if (ret) {
		ar_sozip_patch_free(sp);
		return ret;
	}
	for (size_t i = 0; i < sp->n; i++) {
		const struct patch_chunk *pc = &sp->ch[i];

		sp->crc ^= pc->crc_delta;
		growth += (int64_t)pc->len -
			  (int64_t)(x->off[pc->k + 1] - x->off[pc->k]);
	}
	sp->comp_size = m->pub.comp_size + (uint64_t)growth;
	sp->in_place = growth == 0;
	*out = sp;
	return 0;
}

bool ar_sozip_patch_in_place(const struct sozip_patch *sp)
{
	return sp->in_place;
}

/* ---- writing -------------------------------------------------------- */

int ar_sozip_patch_apply(const struct sozip_patch *sp, struct zip_entry *e,
			 time_t mtime, int out_fd, uint64_t data, uint64_t lh_off)
{
	unsigned char lh[8];
	int ret = 0;

	if (!sp->in_place)
		return -EINVAL;
	for (size_t i = 0; !ret && i < sp->n; i++)
		ret = io_pwrite_all(out_fd, sp->ch[i].data, sp->ch[i].len,
				    data + sp->x->off[sp->ch[i].k]);
	if (ret)
		return ret;
	e->crc = sp->crc;
	ar_dos_time(mtime, &e->time, &e->date);
	put16(lh, e->time);
	put16(lh + 2, e->date);
	put32(lh + 4, sp->crc);
	return io_pwrite_all(out_fd, lh, sizeof(lh), lh_off + 10);
}

/* Copy len bytes of in at src to out at dst, through a buffer or in the
 * kernel.  Returns 0 or -errno. */
static int copy_bytes(int in, uint64_t src, int out, uint64_t dst,
		      uint64_t len)
{
	unsigned char *buf = NULL;
	int ret = 0;

	while (len && !ret) {
		loff_t io = (loff_t)src, oo = (loff_t)dst;
		size_t step = len < (1u << 30) ? (size_t)len : 1u << 30;
		ssize_t n = buf ? -1 : copy_file_range(in, &io, out, &oo, step, 0);

		if (n < 0 && !buf && errno == EINTR)
			continue;
		if (n < 0) {
			if (!buf && !(buf = malloc(COPY_BUF)))
				return -ENOMEM;
			n = ar_pread_full(in, buf, step < COPY_BUF ? step
							: COPY_BUF, src);
			if (n > 0)
				ret = io_pwrite_all(out, buf, (size_t)n, dst);
			else if (n < 0)
				ret = (int)n;
		}
		if (!ret && n == 0)
			ret = -EIO;	/* the file shrank */
		if (ret)
			break;
		src += (uint64_t)n;
		dst += (uint64_t)n;
		len -= (uint64_t)n;
	}
	free(buf);
	return ret;
}

/* An untouched run: len bytes of in at src to out at dst, its whole
 * blocks cloned when src and dst are congruent modulo BLOCK and the
 * filesystem can, the rest copied.  *cloned counts cloned bytes. */
static int copy_run(int in, uint64_t src, int out, uint64_t dst,
		    uint64_t len, uint64_t *cloned)
{
	uint64_t head = (BLOCK - src % BLOCK) % BLOCK, whole;
	struct file_clone_range r;
	int ret;

	if (src % BLOCK != dst % BLOCK || len < head + BLOCK)
		return copy_bytes(in, src, out, dst, len);
	whole = (len - head) / BLOCK * BLOCK;
	r = (struct file_clone_range){ .src_fd = in, .src_offset = src + head,
				       .src_length = whole,
				       .dest_offset = dst + head };
	if (ioctl(out, FICLONERANGE, &r) < 0)
		return copy_bytes(in, src, out, dst, len);
	*cloned += whole;
	ret = copy_bytes(in, src, out, dst, head);
	if (!ret)
		ret = copy_bytes(in, src + head + whole, out, dst + head + whole,
				 len - head - whole);
	return ret;
}

/* The hidden index record of the new member e at pos (offs: nchunks + 1
 * new offsets).  Returns its length, or -errno. */
static ssize_t index_write(const struct sozip_patch *sp,
			   const struct zip_entry *e, const uint64_t *offs,
			   int out_fd, uint64_t pos)
{
	struct zip_entry ie = { .made_by = e->made_by, .needed = 20,
				.flags = e->flags & 0x800, .time = e->time,
				.date = e->date };
	uint64_t n = sp->x->nchunks;
	size_t dlen = INDEX_HDR + 8 * (size_t)(n - 1), hlen;
	unsigned char *rec = malloc(30 + e->name_len + 11u + dlen), *d;
	char *name = malloc(e->name_len + 11u);
	int ret = 0;

	if (!rec || !name) {
		free(rec);
		free(name);
		return -ENOMEM;
	}
	ie.name = name;
	ie.name_len = (uint16_t)ar_sozip_index_name(e->name, e->name_len, name);
	ie.comp_size = ie.size = dlen;
	hlen = ar_local_header_len(&ie, false);
	d = rec + hlen;
	put32(d, 1);			/* version */
	put32(d + 4, 0);		/* skip_bytes */
	put32(d + 8, sp->x->chunk_size);
	put32(d + 12, 8);		/* offset_size */
	put64(d + 16, sp->size);
	put64(d + 24, sp->comp_size);
	for (uint64_t k = 1; k < n; k++)
		put64(d + INDEX_HDR + 8 * (k - 1), offs[k]);
	ie.crc = crc32_update(0, d, dlen);
	ar_local_header(rec, &ie, false);
	ret = io_pwrite_all(out_fd, rec, hlen + dlen, pos);
	free(rec);
	free(name);
	return ret ? ret : (ssize_t)(hlen + dlen);
}

int ar_sozip_patch_write(struct archive *a, const struct sozip_patch *sp,
			 struct zip_entry *e, int out_fd, uint64_t *pos,
			 uint64_t *cloned)
{
	const struct sozip_map *x = sp->x;
	uint64_t n = x->nchunks, *offs, data, at, k = 0;
	unsigned char *hdr;
	bool zip64 = ar_local_needs_zip64(sp->size);
	size_t i = 0, hlen;
	ssize_t ilen;
	int ret = 0;

	e->method = ARCHIVE_DEFLATE;
	e->size = sp->size;
	e->comp_size = sp->comp_size;
	e->crc = sp->crc;
	e->lh_off = *pos;
	if (zip64 && e->needed < 45)
		e->needed = 45;
	if (!zip64 && sp->comp_size >= 0xffffffffu)
		return -EFBIG;
	/* the data starts where the old data did, modulo BLOCK */
	e->pad = 0;
	data = *pos + ar_local_header_len(e, zip64);
	e->pad = (uint16_t)((sp->data_off - data % BLOCK + BLOCK) % BLOCK);
	if (e->pad && e->pad < AR_PAD_MIN)
		e->pad += BLOCK;
	hdr = malloc(ar_local_header_len(e, zip64));
	offs = malloc((size_t)(n + 1) * sizeof(*offs));
	if (!hdr || !offs) {
		free(hdr);
		free(offs);
		return -ENOMEM;
	}
	hlen = ar_local_header(hdr, e, zip64);
	data = *pos + hlen;
	ret = io_pwrite_all(out_fd, hdr, hlen, *pos);
	/* untouched runs from the old file, touched chunks from sp */
	for (at = 0; !ret && k < n;) {
		if (i < sp->n && sp->ch[i].k == k) {
			offs[k] = at;
			ret = io_pwrite_all(out_fd, sp->ch[i].data,
					    sp->ch[i].len, data + at);
			at += sp->ch[i].len;
			i++;
			k++;
			continue;
		}
		uint64_t end = i < sp->n ? sp->ch[i].k : n;

		for (uint64_t j = k; j < end; j++)
			offs[j] = at + (x->off[j] - x->off[k]);
		ret = copy_run(a->fd, sp->data_off + x->off[k], out_fd,
			       data + at, x->off[end] - x->off[k], cloned);
		at += x->off[end] - x->off[k];
		k = end;
	}
	offs[n] = at;
	if (!ret && at != sp->comp_size)
		ret = -EIO;	/* cannot be */
	if (!ret) {
		ilen = index_write(sp, e, offs, out_fd, data + at);
		if (ilen < 0)
			ret = (int)ilen;
		else
			*pos = data + at + (uint64_t)ilen;
	}
	free(hdr);
	free(offs);
	return ret;
}
