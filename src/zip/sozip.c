/* sozip.c - SOZip members (seek-optimized zip, spec 0.5): random access
 * into a deflated member through its hidden chunk index.
 *
 * A SOZip member is an ordinary deflated member whose writer fully flushed
 * the deflate stream every chunk_size bytes of input, so every chunk starts
 * on a byte boundary with an empty window and inflates on its own.  Right
 * after the member's data (and data descriptor, if any) a local header
 * that no central entry lists holds the index, stored, under the name
 * "DIR/.BASE.sozip.idx" for the member "DIR/BASE": a 32-byte header
 * (version 1, skip_bytes, chunk_size, offset_size 4 or 8, uncompressed
 * size, compressed size), skip_bytes bytes, then the compressed offset of
 * every chunk but the first.
 *
 * Detection: on a member's first read (ar_sozip_read) or commit
 * (ar_sozip_extent_end), once: the record is found, checked in full
 * (ar_sozip_parse: name, stored, sizes, CRC of the index data, its sizes
 * equal to the central directory's, 1 KiB <= chunk_size <= 256 MiB, more
 * than one chunk, offsets strictly increasing below comp_size, exactly
 * ceil(size / chunk_size) - 1 of them) and published in m->sz by
 * compare-and-swap, without a lock (two racing readers may both parse;
 * one result wins, the other is freed).  A member without such a record is
 * silently not SOZip; one whose record is damaged is logged once and read
 * the ordinary way (inflate.c).  The offsets stay in memory with the member
 * table (8 bytes a chunk: 256 KiB for 1 GiB in 32 KiB chunks), outside the
 * cache budget.
 *
 * Reads: the chunks covering [off, off + len) are inflated each by a fresh
 * raw ISA-L inflate stream (reset between chunks; 2x zlib's speed,
 * docs/bench.md issue 11), straight into the caller's
 * buffer; bytes of a first or last chunk outside the range go through a
 * small scratch buffer.  No cache file, nothing inflated outside those
 * chunks, no member state: every chunk has its own stream and buffers, so
 * reads of one member or of many run in parallel.  A read of two or more
 * chunks inflates them on the chunk pool (below), each into its place.  Each chunk must give
 * exactly its size (chunk_size, the last one the remainder), the last one
 * must end the deflate stream and no other may.  A chunk that does not is
 * taken as a damaged index: the index is dropped (logged once) and the
 * read, like every later one, takes the ordinary path, which reports EIO
 * (ar_member_fail) if the deflate data itself is damaged.
 *
 * CRC: not checked on this path.  A random read cannot check it, and a
 * sequential one through FUSE arrives in pieces, sometimes out of order;
 * the chunk sizes and the deflate stream's own consistency are what is
 * checked.  `npzfs --check` inflates the whole member and checks the CRC.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/igzip_lib.h>

#include "zip_internal.h"

#define SOZIP_MIN_CHUNK 1024u
#define SOZIP_MAX_CHUNK (256u << 20)
#define SOZIP_HDR 32u			/* the index data's header */
#define SOZIP_SUFFIX ".sozip.idx"
#define SOZIP_SUFFIX_LEN 10u
#define SOZIP_SKIP_MAX (1u << 20)	/* most skip_bytes we read */
#define SOZIP_IN_CAP (256u << 10)	/* compressed bytes per pread */
#define SOZIP_SCRATCH (16u << 10)	/* output outside the caller's range */

/* A chunk did not inflate as the index says (sozip_read, internal). */
#define SOZIP_BAD_CHUNK 2

/* m->sz of a member that has no usable index. */
static struct sozip_map sozip_none;

static void tail_forget(const struct sozip_map *x);

void ar_sozip_free(struct sozip_map *x)
{
	if (!x || x == &sozip_none)
		return;
	tail_forget(x);
	free(x->off);
	free(x);
}

void ar_sozip_release(struct member *m)
{
	ar_sozip_free(atomic_exchange(&m->sz, NULL));
}

size_t ar_sozip_index_name(const char *name, size_t name_len, char *out)
{
	const char *slash = memrchr(name, '/', name_len);
	size_t dir = slash ? (size_t)(slash + 1 - name) : 0;

	memcpy(out, name, dir);
	out[dir] = '.';
	memcpy(out + dir + 1, name + dir, name_len - dir);
	memcpy(out + 1 + name_len, SOZIP_SUFFIX, SOZIP_SUFFIX_LEN);
	return name_len + 1 + SOZIP_SUFFIX_LEN;
}

/* Is idx[0..idx_len) the index name of member name[0..name_len)? */
static bool index_name_matches(const unsigned char *idx, size_t idx_len,
			       const char *name, size_t name_len)
{
	char *want;
	bool same;

	if (idx_len != name_len + 1 + SOZIP_SUFFIX_LEN)
		return false;
	want = malloc(idx_len);
	same = want && ar_sozip_index_name(name, name_len, want) == idx_len &&
	       memcmp(idx, want, idx_len) == 0;
	free(want);
	return same;
}

int ar_sozip_index_data(uint64_t size, uint64_t comp_size,
			const struct sozip_index *idx, unsigned char **out,
			size_t *len)
{
	unsigned char *d;

	*len = SOZIP_HDR + 8 * idx->n;
	d = malloc(*len);
	if (!d)
		return -ENOMEM;
	put32(d, 1);			/* version */
	put32(d + 4, 0);		/* skip_bytes */
	put32(d + 8, AR_SOZIP_CHUNK);
	put32(d + 12, 8);		/* offset_size */
	put64(d + 16, size);
	put64(d + 24, comp_size);
	for (size_t i = 0; i < idx->n; i++)
		put64(d + SOZIP_HDR + 8 * i, idx->offs[i]);
	*out = d;
	return 0;
}

int ar_sozip_parse(const unsigned char *rec, size_t len, const char *name,
		   size_t name_len, uint64_t size, uint64_t comp_size,
		   struct sozip_map **out, struct npz_err *err)
{
	uint32_t flags, method, crc, csize, usize, version, skip, chunk, osz;
	const unsigned char *d, *p;
	uint64_t n, count, avail, prev = 0, data, v;
	struct sozip_map *x;
	size_t nlen, xlen;

	if (len < 30 || get32(rec) != SIG_LOCAL)
		return -ENOENT;
	nlen = get16(rec + 26);
	xlen = get16(rec + 28);
	if (30 + nlen > len ||
	    !index_name_matches(rec + 30, nlen, name, name_len))
		return -ENOENT;
	flags = get16(rec + 6);
	method = get16(rec + 8);
	crc = get32(rec + 14);
	csize = get32(rec + 18);
	usize = get32(rec + 22);
	if (flags & 1) {
		npz_err_set(err, "index encrypted");
		return -EINVAL;
	}
	if (flags & 8) {
		npz_err_set(err, "index sizes deferred to a data descriptor");
		return -EINVAL;
	}
	if (method != ARCHIVE_STORE) {
		npz_err_set(err, "index not stored (method %u)", method);
		return -EINVAL;
	}
	if (csize != usize) {
		npz_err_set(err, "index sizes differ (%u, %u)", csize, usize);
		return -EINVAL;
	}
	data = 30 + (uint64_t)nlen + xlen;
	if (data > len || csize > len - data) {
		npz_err_set(err, "index of %u bytes past its end", csize);
		return -EINVAL;
	}
	d = rec + data;
	if (crc32_update(0, d, csize) != crc) {
		npz_err_set(err, "index CRC mismatch");
		return -EINVAL;
	}
	if (csize < SOZIP_HDR) {
		npz_err_set(err, "index of %u bytes, shorter than its header",
			    csize);
		return -EINVAL;
	}
	version = get32(d);
	skip = get32(d + 4);
	chunk = get32(d + 8);
	osz = get32(d + 12);
	if (version != 1) {
		npz_err_set(err, "index version %u", version);
		return -EINVAL;
	}
	if (get64(d + 16) != size || get64(d + 24) != comp_size) {
		npz_err_set(err, "index for %llu bytes in %llu, the member has "
			    "%llu in %llu", (unsigned long long)get64(d + 16),
			    (unsigned long long)get64(d + 24),
			    (unsigned long long)size,
			    (unsigned long long)comp_size);
		return -EINVAL;
	}
	if (chunk < SOZIP_MIN_CHUNK || chunk > SOZIP_MAX_CHUNK) {
		npz_err_set(err, "chunk size %u outside [%u, %u]", chunk,
			    SOZIP_MIN_CHUNK, SOZIP_MAX_CHUNK);
		return -EINVAL;
	}
	if (size <= chunk) {
		npz_err_set(err, "member of %llu bytes not bigger than one "
			    "chunk of %u", (unsigned long long)size, chunk);
		return -EINVAL;
	}
	if (osz != 4 && osz != 8) {
		npz_err_set(err, "offset size %u", osz);
		return -EINVAL;
	}
	if (skip > csize - SOZIP_HDR) {
		npz_err_set(err, "skip_bytes %u past the index's end", skip);
		return -EINVAL;
	}
	n = (size - 1) / chunk;		/* offsets: chunks but the first */
	avail = csize - SOZIP_HDR - skip;
	count = avail / osz;
	/* A writer that flushes after a last chunk of exactly chunk_size
	 * bytes may record one more chunk, empty, that only ends the
	 * stream: its offset is checked, then it belongs to the last one. */
	if (avail % osz || (count != n && !(count == n + 1 && size % chunk == 0))) {
		npz_err_set(err, "%llu bytes of offsets for %llu chunks of %u",
			    (unsigned long long)avail,
			    (unsigned long long)(n + 1), chunk);
		return -EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->off = malloc((size_t)(n + 2) * sizeof(*x->off));
	if (!x->off) {
		free(x);
		return -ENOMEM;
	}
	x->chunk_size = chunk;
	x->nchunks = n + 1;
	x->off[0] = 0;
	p = d + SOZIP_HDR + skip;
	for (uint64_t k = 0; k < count; k++, p += osz) {
		v = osz == 4 ? get32(p) : get64(p);
		if (v <= prev || v >= comp_size) {
			npz_err_set(err, "offset %llu of chunk %llu %s",
				    (unsigned long long)v,
				    (unsigned long long)(k + 1),
				    v <= prev ? "not after the previous one"
					      : "past the member's data");
			ar_sozip_free(x);
			return -EINVAL;
		}
		if (k < n)
			x->off[k + 1] = v;
		prev = v;
	}
	x->off[n + 1] = comp_size;
	*out = x;
	return 0;
}

/* Look for m's index record right after its data (and data descriptor).
 * Returns 0 and *out (an index, or &sozip_none with why[0] set when a
 * record was found but is unusable), or -errno (nothing learnt). */
static int sozip_detect(struct archive *a, struct member *m,
			struct sozip_map **out, struct npz_err *why,
			struct npz_err *err)
{
	static const unsigned skips_dd[] = { 16, 12, 24, 20 }, skip0[] = { 0 };
	const unsigned *skips = m->flags & 8 ? skips_dd : skip0;
	size_t nskips = m->flags & 8 ? 4 : 1, k, idx_len = m->raw_len + 1u +
			SOZIP_SUFFIX_LEN;
	unsigned char head[24 + 30], *rec;
	uint64_t pos, rec_off = 0, rec_len, max_len;
	int64_t data_off;
	ssize_t n;
	int ret;

	*out = &sozip_none;
	data_off = ar_member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	pos = (uint64_t)data_off + m->pub.comp_size;
	if (pos >= a->cd_off)
		return 0;
	n = ar_pread_full(a->fd, head, sizeof(head), pos);
	if (n < 0) {
		npz_err_set(err, "member %s: %s", m->pub.name,
			    strerror((int)-n));
		return (int)n;
	}
	for (k = 0; k < nskips; k++) {
		const unsigned char *h = head + skips[k];

		if (skips[k] + 30 <= (size_t)n && get32(h) == SIG_LOCAL &&
		    get16(h + 26) == idx_len &&
		    (skips[k] == 0 || get32(head) == SIG_DESCRIPTOR ||
		     skips[k] % 8 == 4))
			break;
	}
	if (k == nskips)
		return 0;
	rec_off = pos + skips[k];
	if (rec_off >= a->cd_off)
		return 0;
	rec_len = 30 + (uint64_t)idx_len + get16(head + skips[k] + 28) +
		  get32(head + skips[k] + 18);
	/* header, skip_bytes and eight bytes a chunk of the smallest size */
	max_len = 30 + 2 * 65535ull + SOZIP_HDR + SOZIP_SKIP_MAX +
		  8 * (m->pub.size / SOZIP_MIN_CHUNK + 2);
	if (rec_len > max_len || rec_len > a->cd_off - rec_off) {
		npz_err_set(why, "index record of %llu bytes %s",
			    (unsigned long long)rec_len, rec_len > max_len ?
			    "too big" : "past the central directory");
		return 0;
	}
	rec = malloc((size_t)rec_len);
	if (!rec)
		return -ENOMEM;
	n = ar_pread_full(a->fd, rec, (size_t)rec_len, rec_off);
	if (n != (ssize_t)rec_len) {
		ret = n < 0 ? (int)n : -EIO;
		npz_err_set(err, "member %s: reading its SOZip index: %s",
			    m->pub.name, strerror(-ret));
	} else {
		ret = ar_sozip_parse(rec, (size_t)rec_len, m->raw_name,
				     m->raw_len, m->pub.size,
				     m->pub.comp_size, out, why);
		if (ret == -ENOENT || ret == -EINVAL) {
			*out = &sozip_none;
			ret = 0;
		} else if (!ret) {
			(*out)->rec_end = rec_off + rec_len;
		}
	}
	free(rec);
	if (!ret && ar_file_unchanged(a)) {
		ar_sozip_free(*out);
		*out = &sozip_none;
		npz_err_set(err, "member %s: the archive changed on disk",
			    m->pub.name);
		return -EIO;
	}
	return ret;
}

/* m's index (looked for once), &sozip_none, or NULL with *ret set. */
static struct sozip_map *sozip_get(struct archive *a, struct member *m,
				     int *ret, struct npz_err *err)
{
	struct sozip_map *x = atomic_load(&m->sz), *seen = NULL;
	struct npz_err why = { "" };

	if (x)
		return x;
	x = &sozip_none;
	/* not deflated, or too small for two chunks: no need to look */
	if (m->pub.method == ARCHIVE_DEFLATE && m->pub.size > SOZIP_MIN_CHUNK &&
	    !(m->flags & 1)) {
		*ret = sozip_detect(a, m, &x, &why, err);
		if (*ret)
			return NULL;
	}
	if (!atomic_compare_exchange_strong(&m->sz, &seen, x)) {
		ar_sozip_free(x);
		return seen;
	}
	if (x == &sozip_none && why.msg[0])
		npz_log("%s: member %s: SOZip index ignored (%s); read as a "
			"plain deflated member", a->path, m->pub.name,
			why.msg);
	return x;
}

uint64_t ar_sozip_extent_end(struct archive *a, struct member *m)
{
	struct sozip_map *x;
	int ret = 0;

	if (m->pub.method != ARCHIVE_DEFLATE)
		return 0;
	x = sozip_get(a, m, &ret, NULL);
	return x ? x->rec_end : 0;
}

struct sozip_map *ar_sozip_map(struct archive *a, struct member *m)
{
	struct sozip_map *x;
	int ret = 0;

	if (m->pub.method != ARCHIVE_DEFLATE)
		return NULL;
	x = sozip_get(a, m, &ret, NULL);
	return !x || x == &sozip_none || atomic_load(&x->broken) ? NULL : x;
}

bool archive_member_sozip(struct archive *a, size_t i)
{
	return i < a->count && ar_sozip_map(a, &a->m[i]) != NULL;
}

/* One read's inflate state: its stream, a window of compressed input and
 * a scratch buffer. */
struct chunk_io {
	struct archive *a;
	struct member *m;
	const struct sozip_map *x;
	uint64_t data_off;
	struct inflate_state *z;
	unsigned char *in, *scratch;
	size_t in_cap;
	uint64_t lo, hi;	/* in holds compressed bytes [lo, hi) */
	uint64_t limit;		/* the read needs nothing past this */
	uint64_t fed;		/* compressed bytes before this were given */
	char why[128];		/* what was wrong with a bad chunk */
};

/* Give the stream the compressed bytes from io->fed on, up to stop.
 * Returns 0 or -errno (err set). */
static int feed(struct chunk_io *io, uint64_t stop, struct npz_err *err)
{
	uint64_t pos = io->fed;

	if (pos < io->lo || pos >= io->hi) {
		size_t want = io->limit - pos < io->in_cap ?
			      (size_t)(io->limit - pos) : io->in_cap;
		ssize_t n = ar_pread_full(io->a->fd, io->in, want,
					  io->data_off + pos);

		if (n != (ssize_t)want) {
			int ret = n < 0 ? (int)n : -EIO;

			npz_err_set(err, "member %s: read error: %s",
				    io->m->pub.name, strerror(-ret));
			return ret;
		}
		io->lo = pos;
		io->hi = pos + want;
	}
	io->z->next_in = io->in + (pos - io->lo);
	io->z->avail_in = (uint32_t)((io->hi < stop ? io->hi : stop) - pos);
	io->fed = pos + io->z->avail_in;
	return 0;
}

/* Inflate chunk c on its own; the part of it inside [off, end) goes to
 * buf (buf[0] is byte off), the rest to the scratch buffer.  Returns 0,
 * SOZIP_BAD_CHUNK (io->why says why) or -errno. */
static int chunk_inflate(struct chunk_io *io, uint64_t c, unsigned char *buf,
			 uint64_t off, uint64_t end, struct npz_err *err)
{
	const struct sozip_map *x = io->x;
	uint64_t us = c * x->chunk_size, ue = us + x->chunk_size, pos = us;
	uint64_t in_end = x->off[c + 1];
	bool last = c + 1 == x->nchunks, ended = false;
	const uint8_t *in0;
	int zr, ret;

	if (ue > io->m->pub.size)
		ue = io->m->pub.size;
	io->fed = x->off[c];
	isal_inflate_init(io->z);
	io->z->crc_flag = ISAL_DEFLATE;	/* raw deflate, no check */
	io->z->avail_in = 0;
	for (;;) {
		unsigned char *dst = io->scratch;
		size_t cap = SOZIP_SCRATCH, produced;
		uint64_t upto = ue;

		if (io->z->avail_in == 0 && io->fed < in_end) {
			ret = feed(io, in_end, err);
			if (ret)
				return ret;
		}
		if (pos >= off && pos < end && pos < ue) {
			dst = buf + (pos - off);
			upto = end < ue ? end : ue;
			cap = (size_t)(upto - pos);
		} else if (pos < ue) {
			if (pos < off && off < ue)
				upto = off;
			if (upto - pos < cap)
				cap = (size_t)(upto - pos);
		}
		if (cap > (1u << 30))
			cap = 1u << 30;
		io->z->next_out = dst;
		io->z->avail_out = (uint32_t)cap;
		in0 = io->z->next_in;
		zr = isal_inflate(io->z);
		if (zr < 0) {
			snprintf(io->why, sizeof(io->why), "inflate error %d", zr);
			return SOZIP_BAD_CHUNK;
		}
		produced = cap - io->z->avail_out;
		if (produced && pos >= ue) {
			snprintf(io->why, sizeof(io->why), "more than %llu "
				 "bytes", (unsigned long long)(ue - us));
			return SOZIP_BAD_CHUNK;
		}
		pos += produced;
		if (io->z->block_state == ISAL_BLOCK_FINISH) {
			ended = true;
			break;
		}
		/* stopped for want of input, with none left (ISA-L keeps
		 * nothing back at a chunk's byte-aligned end: tested) */
		if (io->z->avail_out && io->z->avail_in == 0 &&
		    io->fed >= in_end)
			break;
		if (!produced && io->z->avail_in && io->z->avail_out &&
		    io->z->next_in == in0) {
			snprintf(io->why, sizeof(io->why), "inflate stuck");
			return SOZIP_BAD_CHUNK;
		}
	}
	if (pos != ue)
		snprintf(io->why, sizeof(io->why), "%llu bytes, not %llu",
			 (unsigned long long)(pos - us),
			 (unsigned long long)(ue - us));
	else if (last && !ended)
		snprintf(io->why, sizeof(io->why), "the deflate stream does "
			 "not end in the last chunk");
	else if (!last && ended)
		snprintf(io->why, sizeof(io->why), "the deflate stream ends "
			 "before the last chunk");
	else
		return 0;
	return SOZIP_BAD_CHUNK;
}

/* Give io buffers for reading chunks [first, last]: compressed input,
 * scratch and an inflate state.  Returns 0 or -ENOMEM. */
static int io_alloc(struct chunk_io *io, uint64_t first, uint64_t last)
{
	const struct sozip_map *x = io->x;
	uint64_t span;

	io->limit = x->off[last + 1];
	span = io->limit - x->off[first];
	io->in_cap = span < SOZIP_IN_CAP ? (size_t)span : SOZIP_IN_CAP;
	io->in = malloc(io->in_cap + SOZIP_SCRATCH);
	io->z = malloc(sizeof(*io->z));
	if (!io->in || !io->z) {
		free(io->in);
		free(io->z);
		return -ENOMEM;
	}
	io->scratch = io->in + io->in_cap;
	io->lo = io->hi = 0;
	return 0;
}

static void io_free(struct chunk_io *io)
{
	free(io->in);
	free(io->z);
}

/* ---- the inflate pool: a read of two or more chunks inflates them on
 * several threads, each chunk into its place in the caller's buffer.
 * Threads (at least 2, at most the online CPUs) start on the first such
 * read (in the daemon, after it forked), all signals blocked, and live as
 * long as the process.  The caller queues its chunks but the first, does
 * the first itself, then takes back any of its chunks no thread has taken
 * yet, and waits for the rest.  One lock for the queue and all batches. */
#define POOL_MAX_THREADS 64

struct sozip_job {
	struct chunk_io io;
	uint64_t c;			/* the chunk */
	unsigned char *buf;
	uint64_t off, end;		/* buf[0] is byte off; [off, end) */
	int ret;
	struct npz_err err;
	struct sozip_batch *batch;
	struct sozip_job *next;		/* in the queue */
};

struct sozip_batch {
	size_t pending;			/* jobs queued or running */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static struct sozip_job *queue_head, *queue_tail;
static enum { POOL_NONE, POOL_ON, POOL_FAILED } pool_state;

static void job_run(struct sozip_job *j)
{
	j->ret = io_alloc(&j->io, j->c, j->c);
	if (!j->ret) {
		j->ret = chunk_inflate(&j->io, j->c, j->buf, j->off, j->end,
				       &j->err);
		io_free(&j->io);
	}
}

static void *pool_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool_lock);
	for (;;) {
		struct sozip_job *j;

		while (!queue_head)
			pthread_cond_wait(&pool_work, &pool_lock);
		j = queue_head;
		queue_head = j->next;
		if (!queue_head)
			queue_tail = NULL;
		pthread_mutex_unlock(&pool_lock);
		job_run(j);
		pthread_mutex_lock(&pool_lock);
		if (--j->batch->pending == 0)
			pthread_cond_broadcast(&pool_done);
	}
	return NULL;
}

/* Start the pool once.  pool_lock held.  false: read serially. */
static bool pool_ready(void)
{
	sigset_t all, old;
	long cpus;
	unsigned t, started = 0;
	pthread_t th;

	if (pool_state != POOL_NONE)
		return pool_state == POOL_ON;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	t = cpus < 2 ? 2 : cpus > POOL_MAX_THREADS ? POOL_MAX_THREADS
						   : (unsigned)cpus;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; started < t; started++) {
		if (pthread_create(&th, NULL, pool_main, NULL) != 0)
			break;
		pthread_detach(th);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pool_state = started ? POOL_ON : POOL_FAILED;
	return pool_state == POOL_ON;
}

/* Chunks [first, last] (two or more) through the pool.  Returns as
 * sozip_read; -EAGAIN: no pool, read serially. */
static int pool_read(struct chunk_io *io, unsigned char *buf, uint64_t off,
		     uint64_t end, uint64_t first, uint64_t last, uint64_t *bad,
		     struct npz_err *err)
{
	size_t n = (size_t)(last - first + 1), k;
	struct sozip_batch batch = { 0 };
	struct sozip_job *jobs = calloc(n, sizeof(*jobs));
	int ret = 0;

	if (!jobs)
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		jobs[k].io = *io;
		jobs[k].c = first + k;
		jobs[k].buf = buf;
		jobs[k].off = off;
		jobs[k].end = end;
		jobs[k].batch = &batch;
	}
	pthread_mutex_lock(&pool_lock);
	if (!pool_ready()) {
		pthread_mutex_unlock(&pool_lock);
		free(jobs);
		return -EAGAIN;
	}
	batch.pending = n - 1;
	for (k = 1; k < n; k++) {
		if (queue_tail)
			queue_tail->next = &jobs[k];
		else
			queue_head = &jobs[k];
		queue_tail = &jobs[k];
	}
	pthread_cond_broadcast(&pool_work);
	pthread_mutex_unlock(&pool_lock);
	job_run(&jobs[0]);
	pthread_mutex_lock(&pool_lock);
	/* take back our jobs no thread has started */
	for (;;) {
		struct sozip_job *j = queue_head, *prev = NULL;

		while (j && j->batch != &batch) {
			prev = j;
			j = j->next;
		}
		if (!j)
			break;
		if (prev)
			prev->next = j->next;
		else
			queue_head = j->next;
		if (queue_tail == j)
			queue_tail = prev;
		pthread_mutex_unlock(&pool_lock);
		job_run(j);
		pthread_mutex_lock(&pool_lock);
		batch.pending--;
	}
	while (batch.pending)
		pthread_cond_wait(&pool_done, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	/* the first chunk that failed decides, as if read in order */
	for (k = 0; k < n; k++) {
		if (jobs[k].ret) {
			ret = jobs[k].ret;
			*bad = jobs[k].c;
			memcpy(io->why, jobs[k].io.why, sizeof(io->why));
			if (err && jobs[k].err.msg[0])
				*err = jobs[k].err;
			break;
		}
	}
	free(jobs);
	return ret;
}

/* Read chunks through the pool (false: each in order on this thread);
 * for tests. */
static _Atomic bool pool_off;

void ar_sozip_set_parallel(bool on)
{
	atomic_store(&pool_off, !on);
}

/* ---- the last chunks read in part: a read smaller than a chunk (FUSE
 * sends 128 KiB reads where read-ahead is the kernel's default) inflates
 * its whole chunk anyway, so the chunk is kept for the reads of its other
 * parts.  A few process-wide slots (LRU), chunks of at most TAIL_MAX
 * bytes, keyed by index (x: freed maps are forgotten first) and chunk.
 * tails.lock guards every slot and is a leaf. */
#define TAIL_SLOTS 8
#define TAIL_MAX (1u << 20)

static struct {
	pthread_mutex_t lock;
	uint64_t tick, hits;
	struct tail_slot {
		const struct sozip_map *x;	/* NULL: empty */
		uint64_t c, tick;
		size_t len;
		unsigned char *data;
	} s[TAIL_SLOTS];
} tails = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void tail_forget(const struct sozip_map *x)
{
	size_t i;

	pthread_mutex_lock(&tails.lock);
	for (i = 0; i < TAIL_SLOTS; i++)
		if (tails.s[i].x == x) {
			free(tails.s[i].data);
			tails.s[i].data = NULL;
			tails.s[i].x = NULL;
		}
	pthread_mutex_unlock(&tails.lock);
}

uint64_t ar_sozip_tail_hits(void)
{
	uint64_t n;

	pthread_mutex_lock(&tails.lock);
	n = tails.hits;
	pthread_mutex_unlock(&tails.lock);
	return n;
}

/* Copy bytes [off, end) of chunk c from its slot: true, or false when it
 * is not kept. */
static bool tail_copy(const struct sozip_map *x, uint64_t c,
		      unsigned char *buf, uint64_t off, uint64_t end)
{
	uint64_t us = c * x->chunk_size;
	bool hit = false;
	size_t i;

	pthread_mutex_lock(&tails.lock);
	for (i = 0; i < TAIL_SLOTS && !hit; i++) {
		struct tail_slot *t = &tails.s[i];

		if (t->x == x && t->c == c && end - us <= t->len) {
			memcpy(buf, t->data + (off - us), (size_t)(end - off));
			t->tick = ++tails.tick;
			tails.hits++;
			hit = true;
		}
	}
	pthread_mutex_unlock(&tails.lock);
	return hit;
}

/* Keep data (len bytes: chunk c, whole) in the least recently used slot;
 * the slot owns data from now on. */
static void tail_keep(const struct sozip_map *x, uint64_t c,
		      unsigned char *data, size_t len)
{
	struct tail_slot *t = &tails.s[0];
	unsigned char *old;
	size_t i;

	pthread_mutex_lock(&tails.lock);
	for (i = 1; i < TAIL_SLOTS; i++)
		if (tails.s[i].tick < t->tick)
			t = &tails.s[i];
	old = t->data;
	t->x = x;
	t->c = c;
	t->len = len;
	t->data = data;
	t->tick = ++tails.tick;
	pthread_mutex_unlock(&tails.lock);
	free(old);
}

/* Bytes [off, end) of chunk c, a part of it: from its slot, else the
 * whole chunk is inflated and kept.  Returns as chunk_inflate(). */
static int chunk_part(struct chunk_io *io, uint64_t c, unsigned char *buf,
		      uint64_t off, uint64_t end, struct npz_err *err)
{
	const struct sozip_map *x = io->x;
	uint64_t us = c * x->chunk_size, ue = us + x->chunk_size;
	unsigned char *whole;
	int ret;

	if (ue > io->m->pub.size)
		ue = io->m->pub.size;
	if (off < us)
		off = us;
	if (end > ue)
		end = ue;
	if ((off == us && end == ue) || x->chunk_size > TAIL_MAX)
		return chunk_inflate(io, c, buf, off, end, err);
	if (tail_copy(x, c, buf, off, end))
		return 0;
	whole = malloc((size_t)(ue - us));
	if (!whole)
		return chunk_inflate(io, c, buf, off, end, err);
	ret = chunk_inflate(io, c, whole, us, ue, err);
	if (ret) {
		free(whole);
		return ret;
	}
	memcpy(buf, whole + (off - us), (size_t)(end - off));
	tail_keep(x, c, whole, (size_t)(ue - us));
	return 0;
}

/* Inflate the chunks covering [off, off + len) into buf.  Returns 0,
 * SOZIP_BAD_CHUNK (*bad: which one; io->why) or -errno. */
static int sozip_read(struct chunk_io *io, unsigned char *buf, size_t len,
		      uint64_t off, uint64_t *bad, struct npz_err *err)
{
	const struct sozip_map *x = io->x;
	uint64_t end = off + len, first = off / x->chunk_size;
	uint64_t last = (end - 1) / x->chunk_size, c;
	int ret = 0;

	if (last > first && !atomic_load(&pool_off)) {
		ret = pool_read(io, buf, off, end, first, last, bad, err);
		if (ret != -EAGAIN)
			return ret;
		ret = 0;
	}
	ret = io_alloc(io, first, last);
	if (ret)
		return ret;
	for (c = first; !ret && c <= last; c++) {
		uint64_t lo = c == first ? off : c * x->chunk_size;

		ret = chunk_part(io, c, buf + (lo - off), lo, end, err);
		*bad = c;
	}
	io_free(io);
	return ret;
}

int ar_sozip_read(struct archive *a, struct member *m, void *buf, size_t len,
		  uint64_t off, struct npz_err *err)
{
	struct chunk_io io;
	struct sozip_map *x;
	int64_t data_off;
	uint64_t bad = 0;
	int ret = 0;

	x = sozip_get(a, m, &ret, err);
	if (!x)
		return ret;
	if (x == &sozip_none || atomic_load(&x->broken))
		return AR_SOZIP_NONE;
	data_off = ar_member_data_off(a, m, err);
	if (data_off < 0)
		return (int)data_off;
	memset(&io, 0, sizeof(io));
	io.a = a;
	io.m = m;
	io.x = x;
	io.data_off = (uint64_t)data_off;
	ret = sozip_read(&io, buf, len, off, &bad, err);
	if (ret != SOZIP_BAD_CHUNK)
		return ret;
	if (ar_file_unchanged(a)) {
		npz_err_set(err, "member %s: the archive changed on disk",
			    m->pub.name);
		return -EIO;
	}
	if (!atomic_exchange(&x->broken, true))
		npz_log("%s: member %s: SOZip index does not match the data "
			"(chunk %llu: %s); read as a plain deflated member",
			a->path, m->pub.name, (unsigned long long)bad, io.why);
	return AR_SOZIP_NONE;
}
