/* deflate.c - new content for a commit: the zip_source that pread()s it from
 * the caller's fd and hands libzip stored bytes, or deflate data made here
 * (one zlib stream as numpy writes it, or, for big content, chunks deflated
 * in parallel on worker threads, the way pigz does). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "io.h"
#include "zip_internal.h"

#define COMMIT_IN_BLOCK (256u << 10)	/* content read per pread */

/* Parallel deflate of new content.
 *
 * Big content is deflated in independent chunks on worker threads, the way
 * pigz does it: chunk k (content bytes [k*C, k*C + C)) gets a deflate stream
 * of its own, primed with the 32 KiB of content before it as its dictionary
 * (deflateSetDictionary), and ends with Z_SYNC_FLUSH (an empty stored block:
 * byte-aligned, not final), the last chunk with Z_FINISH.  Concatenated in
 * order the chunks form one standard raw deflate stream; the CRC-32 of each
 * chunk is folded in with crc32_combine().  A worker pread()s its chunk and
 * the dictionary before it from the content fd itself, so reading is
 * parallel too and any chunk size works.
 *
 * Memory is bounded by a ring of 2 * threads compressed chunks: chunk k is
 * queued only once chunk k - ring has been handed to libzip.  libzip's
 * thread (pz_read) takes the chunks in order and waits for the next one when
 * it is not finished yet.
 *
 * protects: pz->lock guards queued, taken, stop and every slot's state; a
 * slot's other fields belong to the worker while it is PZ_BUSY and to the
 * reader once it is PZ_DONE or PZ_FAILED (the state change under the lock
 * orders them).
 */

#define PZ_DICT (32u << 10)		/* deflate's window */
#define PZ_CHUNK (1u << 20)		/* content per chunk */
#define PZ_MIN (4u << 20)		/* smaller content: one zlib stream */
#define PZ_MAX_THREADS 8		/* default; each holds 2 chunks */
#define PZ_MAX_CHUNK (64u << 20)	/* tuning limits */
#define PZ_MAX_TUNED_THREADS 64

enum pz_state { PZ_FREE, PZ_QUEUED, PZ_BUSY, PZ_DONE, PZ_FAILED };

struct pz_slot {
	int state;			/* enum pz_state; pz->lock */
	unsigned char *out;		/* the compressed chunk */
	size_t out_cap, out_len;
	size_t in_len;			/* content bytes of the chunk */
	uint32_t crc;			/* their CRC-32 */
	int err;			/* PZ_FAILED: errno, */
	int zip_code;			/* libzip's code for it */
	const char *what;		/* its text; NULL: strerror(err) */
	uint64_t *offs;			/* SOZip: where chunks 1.. of the
					   piece start in out */
	size_t noffs;
};

struct pz {
	const struct archive_change *c;	/* the content */
	uint64_t size;
	int level;
	size_t chunk;
	uint64_t nchunks;		/* at least 1 (empty content: 1) */
	bool sozip;			/* SOZip: no dictionary; a sync and a
					   full flush every AR_SOZIP_CHUNK
					   bytes; chunk a multiple of it */
	pthread_mutex_t lock;
	pthread_cond_t work;		/* workers: chunk queued, or stop */
	pthread_cond_t done;		/* reader: a chunk is done */
	uint64_t queued;		/* lock: chunks [0, queued) queued */
	uint64_t taken;			/* lock: [0, taken) taken by workers */
	bool stop;			/* lock: workers exit */
	struct pz_slot *slots;
	size_t nslots;
	pthread_t *threads;
	size_t nthreads;		/* started */
	/* the reader's (libzip's thread) */
	uint64_t emit;			/* chunk being handed to libzip */
	size_t emit_pos;		/* its bytes handed over */
	bool emit_ready;		/* its slot was seen done */
};

static _Atomic size_t pz_tune_chunk = PZ_CHUNK;
static _Atomic uint64_t pz_tune_min = PZ_MIN;
static _Atomic unsigned pz_tune_threads;	/* 0: from the CPU count */

void archive_tune_deflate(const struct archive_deflate_tuning *t)
{
	size_t chunk = t && t->chunk ? t->chunk : PZ_CHUNK;
	unsigned threads = t ? t->threads : 0;

	atomic_store(&pz_tune_chunk,
		     chunk < PZ_MAX_CHUNK ? chunk : PZ_MAX_CHUNK);
	atomic_store(&pz_tune_min, t ? t->min_parallel : PZ_MIN);
	atomic_store(&pz_tune_threads, threads < PZ_MAX_TUNED_THREADS ?
					       threads : PZ_MAX_TUNED_THREADS);
}

/* Worker threads for content of size bytes: the tuned count, or the online
 * CPUs (at least 2, at most PZ_MAX_THREADS); never more than chunks. */
static size_t pz_thread_count(uint64_t nchunks)
{
	unsigned t = atomic_load(&pz_tune_threads);
	long cpus;

	if (!t) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		t = cpus < 2 ? 2 : cpus > PZ_MAX_THREADS ? PZ_MAX_THREADS
							 : (unsigned)cpus;
	}
	return nchunks < t ? (size_t)nchunks : t;
}

/* Deflate z's input into sl->out (grown as needed), ending with Z_FINISH
 * when last, else Z_SYNC_FLUSH.  On failure sets sl->err (and sl->what). */
static void pz_deflate(struct pz_slot *sl, z_stream *z, int flush)
{
	bool last = flush == Z_FINISH;
	int zr;

	for (;;) {
		zr = deflate(z, flush);
		sl->out_len = sl->out_cap - z->avail_out;
		if (zr == Z_STREAM_ERROR) {
			sl->err = EIO;
			sl->what = "deflate failed";
			return;
		}
		if (last ? zr == Z_STREAM_END
			 : z->avail_in == 0 && z->avail_out != 0)
			return;
		if (z->avail_out == 0) {
			unsigned char *p = realloc(sl->out, 2 * sl->out_cap);

			if (!p) {
				sl->err = ENOMEM;
				sl->zip_code = ZIP_ER_MEMORY;
				return;
			}
			sl->out = p;
			z->next_out = p + sl->out_len;
			z->avail_out = (uInt)(2 * sl->out_cap - sl->out_len);
			sl->out_cap *= 2;
		}
	}
}

/* Compress chunk k into slot sl with z (reset here).  in holds PZ_DICT +
 * chunk bytes.  On failure sets sl->err (and sl->what). */
static void pz_chunk(struct pz *pz, uint64_t k, struct pz_slot *sl,
		     z_stream *z, unsigned char *in)
{
	uint64_t start = k * pz->chunk;
	size_t len = pz->size - start < pz->chunk ? (size_t)(pz->size - start)
						   : pz->chunk;
	size_t dict = pz->sozip ? 0 : start < PZ_DICT ? (size_t)start : PZ_DICT;
	bool last = k + 1 == pz->nchunks;
	size_t need;
	ssize_t n;

	sl->err = 0;
	sl->zip_code = ZIP_ER_MEMORY;
	sl->what = NULL;
	sl->out_len = 0;
	sl->in_len = len;
	if (!in) {
		sl->err = ENOMEM;
		return;
	}
	n = ar_content_pread(pz->c, in, dict + len, start - dict);
	sl->zip_code = ZIP_ER_READ;
	if (n < 0) {
		sl->err = (int)-n;
		return;
	}
	if ((size_t)n < dict + len) {
		sl->err = EIO;
		sl->what = "content shorter than its size";
		return;
	}
	sl->zip_code = ZIP_ER_ZLIB;
	sl->crc = crc32_update(0, in + dict, len);
	if (deflateReset(z) != Z_OK ||
	    (dict && deflateSetDictionary(z, in, (uInt)dict) != Z_OK)) {
		sl->err = EIO;
		sl->what = "deflate failed";
		return;
	}
	/* one call fits the chunk plus the 5-byte sync marker; grow if not */
	need = (size_t)deflateBound(z, (uLong)len) + 64;
	if (sl->out_cap < need) {
		free(sl->out);
		sl->out = malloc(need);
		sl->out_cap = sl->out ? need : 0;
		if (!sl->out) {
			sl->err = ENOMEM;
			sl->zip_code = ZIP_ER_MEMORY;
			return;
		}
	}
	z->next_in = in + dict;
	z->avail_in = (uInt)len;
	z->next_out = sl->out;
	z->avail_out = (uInt)sl->out_cap;
	if (!pz->sozip) {
		pz_deflate(sl, z, last ? Z_FINISH : Z_SYNC_FLUSH);
		return;
	}
	/* SOZip: every AR_SOZIP_CHUNK bytes a sync flush, then a full flush
	 * (the spec's pair): the next chunk starts on a byte and inflates on
	 * its own; where it starts goes to the index */
	sl->noffs = 0;
	for (size_t done = 0; done < len && !sl->err;) {
		size_t step = len - done < AR_SOZIP_CHUNK ? len - done
							  : AR_SOZIP_CHUNK;

		if (done)
			sl->offs[sl->noffs++] = sl->out_len;
		z->avail_in = (uInt)step;
		done += step;
		if (last && done == len) {
			pz_deflate(sl, z, Z_FINISH);
		} else {
			pz_deflate(sl, z, Z_SYNC_FLUSH);
			if (!sl->err)
				pz_deflate(sl, z, Z_FULL_FLUSH);
		}
	}
}

static void *pz_worker(void *arg)
{
	struct pz *pz = arg;
	unsigned char *in = malloc(PZ_DICT + pz->chunk);
	z_stream z;
	bool z_ready;

	memset(&z, 0, sizeof(z));
	/* what zipfile (numpy) uses: raw deflate, window 15, memLevel 8 */
	z_ready = deflateInit2(&z, pz->level, Z_DEFLATED, -MAX_WBITS, 8,
			       Z_DEFAULT_STRATEGY) == Z_OK;
	pthread_mutex_lock(&pz->lock);
	for (;;) {
		struct pz_slot *sl;
		uint64_t k;

		while (!pz->stop && pz->taken == pz->queued)
			pthread_cond_wait(&pz->work, &pz->lock);
		if (pz->stop)
			break;
		k = pz->taken++;
		sl = &pz->slots[k % pz->nslots];
		sl->state = PZ_BUSY;
		pthread_mutex_unlock(&pz->lock);
		pz_chunk(pz, k, sl, &z, z_ready ? in : NULL);
		pthread_mutex_lock(&pz->lock);
		sl->state = sl->err ? PZ_FAILED : PZ_DONE;
		pthread_cond_broadcast(&pz->done);
	}
	pthread_mutex_unlock(&pz->lock);
	if (z_ready)
		deflateEnd(&z);
	free(in);
	return NULL;
}

/* Stop the workers, wait for them and free pz.  NULL is a no-op. */
static void pz_free(struct pz *pz)
{
	size_t i;

	if (!pz)
		return;
	pthread_mutex_lock(&pz->lock);
	pz->stop = true;
	pthread_cond_broadcast(&pz->work);
	pthread_mutex_unlock(&pz->lock);
	for (i = 0; i < pz->nthreads; i++)
		pthread_join(pz->threads[i], NULL);
	for (i = 0; pz->slots && i < pz->nslots; i++) {
		free(pz->slots[i].out);
		free(pz->slots[i].offs);
	}
	free(pz->slots);
	free(pz->threads);
	pthread_cond_destroy(&pz->done);
	pthread_cond_destroy(&pz->work);
	pthread_mutex_destroy(&pz->lock);
	free(pz);
}

/* Start deflating size bytes of fd at level on worker threads.  Returns
 * the new state, or NULL when no thread could be started (ENOMEM, EAGAIN):
 * the caller then deflates in one stream itself. */
static struct pz *pz_new(const struct archive_change *c, uint64_t size,
			 int level, bool sozip)
{
	struct pz *pz = calloc(1, sizeof(*pz));
	sigset_t all, old;
	size_t want, i;

	if (!pz)
		return NULL;
	pz->c = c;
	pz->size = size;
	pz->level = level;
	pz->chunk = atomic_load(&pz_tune_chunk);
	pz->sozip = sozip;
	if (sozip)	/* pieces of whole SOZip chunks */
		pz->chunk = (pz->chunk + AR_SOZIP_CHUNK - 1) / AR_SOZIP_CHUNK *
			    AR_SOZIP_CHUNK;
	pz->nchunks = size ? (size - 1) / pz->chunk + 1 : 1;
	want = pz_thread_count(pz->nchunks);
	pz->nslots = 2 * want;
	pthread_mutex_init(&pz->lock, NULL);
	pthread_cond_init(&pz->work, NULL);
	pthread_cond_init(&pz->done, NULL);
	pz->slots = calloc(pz->nslots, sizeof(*pz->slots));
	pz->threads = calloc(want, sizeof(*pz->threads));
	if (!pz->slots || !pz->threads) {
		pz_free(pz);
		return NULL;
	}
	for (i = 0; sozip && i < pz->nslots; i++) {
		pz->slots[i].offs = malloc((pz->chunk / AR_SOZIP_CHUNK + 1) *
					   sizeof(uint64_t));
		if (!pz->slots[i].offs) {
			pz_free(pz);
			return NULL;
		}
	}
	/* fill the ring before the workers start */
	pz->queued = pz->nchunks < pz->nslots ? pz->nchunks : pz->nslots;
	for (i = 0; i < pz->queued; i++)
		pz->slots[i].state = PZ_QUEUED;
	/* signals stay with the FUSE threads */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < want; i++) {
		if (pthread_create(&pz->threads[i], NULL, pz_worker, pz) != 0)
			break;
		pz->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!pz->nthreads) {
		pz_free(pz);
		return NULL;
	}
	return pz;
}

ssize_t ar_content_pread(const struct archive_change *c, void *buf,
			 size_t len, uint64_t off)
{
	size_t done = 0;

	if (!c->read)
		return ar_pread_full(c->fd, buf, len, off);
	while (done < len) {
		ssize_t n = c->read(c->read_ctx, (char *)buf + done,
				    len - done, off + done);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* New content: pread() from the caller's fd, stored or deflated by us. */
struct content_src {
	const struct archive_change *c;
	struct file_src *s;		/* failures are reported there too */
	zip_error_t error;
	bool deflate;
	bool want_crc;			/* stored too (libzip's CRCs its own) */
	bool z_ready;
	bool done;			/* all output produced */
	struct pz *pz;			/* big content: in parallel */
	z_stream z;
	unsigned char *in;
	size_t in_pos, in_len;		/* stored: in[in_pos, in_len) unread */
	uint64_t pos;			/* content bytes read */
	uint64_t comp_size;		/* bytes produced (deflate) */
	uint32_t crc;			/* CRC-32 of the content read */
	struct sozip_index *idx;	/* wanted: SOZip chunks, offsets here */
};

/* Add offset off to idx.  Returns 0 or -1 (no memory). */
static int idx_add(struct sozip_index *idx, uint64_t off)
{
	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? 2 * idx->cap : 1024;
		uint64_t *p = realloc(idx->offs, cap * sizeof(*p));

		if (!p)
			return -1;
		idx->offs = p;
		idx->cap = cap;
	}
	idx->offs[idx->n++] = off;
	return 0;
}

static zip_int64_t csrc_fail(struct content_src *cs, int zip_code, int sys,
			     const char *what)
{
	zip_error_set(&cs->error, zip_code, sys);
	ar_fsrc_fail(cs->s, zip_code, sys, "member %s: %s", cs->c->name, what);
	return -1;
}

/* Read the next block of content at cs->pos into buf.  Returns bytes read
 * or -1 (content shorter than announced, read error). */
static zip_int64_t csrc_pread(struct content_src *cs, void *buf, size_t want)
{
	ssize_t n = ar_content_pread(cs->c, buf, want, cs->pos);

	if (n < 0)
		return csrc_fail(cs, ZIP_ER_READ, (int)-n, strerror((int)-n));
	if ((size_t)n < want)
		return csrc_fail(cs, ZIP_ER_READ, EIO, "content shorter "
				 "than its size");
	if (cs->deflate || cs->want_crc)
		cs->crc = crc32_update(cs->crc, buf, (size_t)n);
	cs->pos += (uint64_t)n;
	return n;
}

/* Hand libzip up to len bytes of the chunks deflated by cs->pz, in order,
 * waiting for the next chunk when needed.  Returns bytes or -1. */
static zip_int64_t pz_read(struct content_src *cs, unsigned char *data,
			   size_t len)
{
	struct pz *pz = cs->pz;
	size_t done = 0, n;

	while (done < len && pz->emit < pz->nchunks) {
		struct pz_slot *sl = &pz->slots[pz->emit % pz->nslots];

		if (!pz->emit_ready) {
			int st;

			pthread_mutex_lock(&pz->lock);
			while (sl->state != PZ_DONE && sl->state != PZ_FAILED)
				pthread_cond_wait(&pz->done, &pz->lock);
			st = sl->state;
			pthread_mutex_unlock(&pz->lock);
			if (st == PZ_FAILED)
				return csrc_fail(cs, sl->zip_code, sl->err,
						 sl->what ? sl->what :
						 strerror(sl->err));
			pz->emit_ready = true;
			if (pz->sozip) {
				/* the piece's chunks: where they start */
				uint64_t at = cs->comp_size + done;
				int bad = pz->emit ? idx_add(cs->idx, at) : 0;

				for (size_t i = 0; !bad && i < sl->noffs; i++)
					bad = idx_add(cs->idx, at + sl->offs[i]);
				if (bad)
					cs->idx->lost = true;
			}
		}
		n = sl->out_len - pz->emit_pos;
		if (n > len - done)
			n = len - done;
		memcpy(data + done, sl->out + pz->emit_pos, n);
		done += n;
		pz->emit_pos += n;
		if (pz->emit_pos < sl->out_len)
			break;
		cs->crc = (uint32_t)crc32_combine(cs->crc, sl->crc,
						  (z_off_t)sl->in_len);
		cs->pos += sl->in_len;
		pz->emit++;
		pz->emit_pos = 0;
		pz->emit_ready = false;
		/* the slot takes the chunk one ring further */
		pthread_mutex_lock(&pz->lock);
		sl->state = PZ_FREE;
		if (pz->queued < pz->nchunks) {
			pz->queued++;
			sl->state = PZ_QUEUED;
			pthread_cond_signal(&pz->work);
		}
		pthread_mutex_unlock(&pz->lock);
	}
	if (pz->emit == pz->nchunks)
		cs->done = true;
	cs->comp_size += done;
	return (zip_int64_t)done;
}

static zip_int64_t csrc_read(struct content_src *cs, void *data,
			     zip_uint64_t len)
{
	uint64_t size = cs->c->size;
	zip_int64_t n;
	int zr;

	if (!cs->deflate) {
		/* libzip reads 8 KiB at a time: serve it from cs->in */
		if (cs->in_pos == cs->in_len) {
			if (cs->pos >= size)
				return 0;
			if (len >= COMMIT_IN_BLOCK || !cs->in) {
				if (len > size - cs->pos)
					len = size - cs->pos;
				if (len > SSIZE_MAX)
					len = SSIZE_MAX;
				return csrc_pread(cs, data, (size_t)len);
			}
			cs->in_len = size - cs->pos < COMMIT_IN_BLOCK ?
				     (size_t)(size - cs->pos) : COMMIT_IN_BLOCK;
			cs->in_pos = 0;
			if (csrc_pread(cs, cs->in, cs->in_len) < 0) {
				cs->in_len = 0;
				return -1;
			}
		}
		if (len > cs->in_len - cs->in_pos)
			len = cs->in_len - cs->in_pos;
		memcpy(data, cs->in + cs->in_pos, (size_t)len);
		cs->in_pos += (size_t)len;
		return (zip_int64_t)len;
	}
	if (cs->pz) {
		if (len > SSIZE_MAX)
			len = SSIZE_MAX;
		return pz_read(cs, data, (size_t)len);
	}
	if (cs->done)
		return 0;
	if (len > UINT_MAX)
		len = UINT_MAX;
	cs->z.next_out = data;
	cs->z.avail_out = (uInt)len;
	while (cs->z.avail_out > 0 && !cs->done) {
		if (cs->z.avail_in == 0 && cs->pos < size) {
			size_t want = COMMIT_IN_BLOCK;

			if (size - cs->pos < want)
				want = (size_t)(size - cs->pos);
			n = csrc_pread(cs, cs->in, want);
			if (n < 0)
				return -1;
			cs->z.next_in = cs->in;
			cs->z.avail_in = (uInt)n;
		}
		zr = deflate(&cs->z, cs->pos == size ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_END)
			cs->done = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return csrc_fail(cs, ZIP_ER_ZLIB, 0, "deflate failed");
	}
	n = (zip_int64_t)(len - cs->z.avail_out);
	cs->comp_size += (uint64_t)n;
	return n;
}

/* ZIP_SOURCE_OPEN: start reading the content from its beginning (again),
 * set up to deflate it in one stream or on worker threads.  Returns 0 or
 * -1 (ENOMEM in cs->error). */
static zip_int64_t csrc_open(struct content_src *cs)
{
	cs->pos = cs->comp_size = 0;
	cs->crc = (uint32_t)crc32(0, NULL, 0);
	cs->done = false;
	cs->in_pos = cs->in_len = 0;
	pz_free(cs->pz);
	cs->pz = NULL;
	if (!cs->deflate) {
		/* small content is read in one go, without a buffer */
		if (!cs->in && cs->c->size > COMMIT_IN_BLOCK)
			cs->in = malloc(COMMIT_IN_BLOCK);
		return 0;
	}
	if (cs->idx) {
		cs->idx->n = 0;
		cs->idx->lost = false;
	}
	if (cs->c->size >= atomic_load(&pz_tune_min) ||
	    (cs->idx && cs->c->size > AR_SOZIP_CHUNK)) {
		cs->pz = pz_new(cs->c, cs->c->size,
				cs->c->level < 0 ? Z_DEFAULT_COMPRESSION
						 : cs->c->level,
				cs->idx && cs->c->size > AR_SOZIP_CHUNK);
		if (cs->pz)
			return 0;
		/* no thread: one stream, here (and no SOZip index) */
	}
	if (cs->idx)
		cs->idx->lost = true;
	if (!cs->in) {
		cs->in = malloc(COMMIT_IN_BLOCK);
		if (!cs->in) {
			zip_error_set(&cs->error, ZIP_ER_MEMORY, 0);
			return -1;
		}
	}
	if (cs->z_ready)
		deflateEnd(&cs->z);
	memset(&cs->z, 0, sizeof(cs->z));
	/* what zipfile (numpy) uses: raw deflate, window 15, memLevel 8 */
	cs->z_ready = deflateInit2(&cs->z, cs->c->level < 0 ?
				   Z_DEFAULT_COMPRESSION : cs->c->level,
				   Z_DEFLATED, -MAX_WBITS, 8,
				   Z_DEFAULT_STRATEGY) == Z_OK;
	if (!cs->z_ready) {
		zip_error_set(&cs->error, ZIP_ER_MEMORY, 0);
		return -1;
	}
	return 0;
}

/* ZIP_SOURCE_STAT: size, mtime and method; CRC and compressed size once
 * the content was read. */
static zip_int64_t csrc_stat(struct content_src *cs, void *data,
			     zip_uint64_t len)
{
	zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len,
					     &cs->error);
	if (!st)
		return -1;
	zip_stat_init(st);
	st->size = cs->c->size;
	st->mtime = cs->c->mtime;
	st->comp_method = cs->deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
	st->encryption_method = ZIP_EM_NONE;
	st->valid = ZIP_STAT_SIZE | ZIP_STAT_MTIME |
		    ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
	if (cs->deflate && cs->done) {
		/* once read: libzip takes the CRC from here */
		st->crc = cs->crc;
		st->comp_size = cs->comp_size;
		st->valid |= ZIP_STAT_CRC | ZIP_STAT_COMP_SIZE;
	}
	return sizeof(*st);
}

/* Free cs's deflate state and buffer (crc and comp_size stay). */
static void csrc_close(struct content_src *cs)
{
	pz_free(cs->pz);
	cs->pz = NULL;
	if (cs->z_ready)
		deflateEnd(&cs->z);
	cs->z_ready = false;
	free(cs->in);
	cs->in = NULL;
}

static zip_int64_t csrc_cb(void *ud, void *data, zip_uint64_t len,
			   zip_source_cmd_t cmd)
{
	struct content_src *cs = ud;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		return csrc_open(cs);
	case ZIP_SOURCE_READ:
		return csrc_read(cs, data, len);
	case ZIP_SOURCE_CLOSE:
		/* libzip keeps every source until zip_close() ends: give the
		 * deflate state back now (STAT needs only crc and comp_size) */
		csrc_close(cs);
		return 0;
	case ZIP_SOURCE_STAT:
		return csrc_stat(cs, data, len);
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&cs->error, data, len);
	case ZIP_SOURCE_FREE:
		csrc_close(cs);
		free(cs);
		return 0;
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN,
			ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
			ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
	default:
		zip_error_set(&cs->error, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

/* Returns a new source over c's content, or NULL (ENOMEM). */
zip_source_t *ar_content_source(const struct archive_change *c,
				struct file_src *s)
{
	struct content_src *cs = calloc(1, sizeof(*cs));
	zip_source_t *src;

	if (!cs)
		return NULL;
	cs->c = c;
	cs->s = s;
	cs->deflate = c->method == ARCHIVE_DEFLATE;
	zip_error_init(&cs->error);
	src = zip_source_function_create(csrc_cb, cs, NULL);
	if (!src)
		free(cs);
	return src;
}

int ar_content_write(const struct archive_change *c, struct file_src *s,
		     int out_fd, uint64_t off, uint64_t *comp_size,
		     uint32_t *crc, struct sozip_index *idx)
{
	struct content_src cs = { .c = c, .s = s, .want_crc = true,
				  .deflate = c->method == ARCHIVE_DEFLATE,
				  .idx = c->method == ARCHIVE_DEFLATE ? idx
								      : NULL };
	unsigned char *buf = malloc(COMMIT_IN_BLOCK);
	zip_int64_t n = -1;
	int ret = 0;

	zip_error_init(&cs.error);
	if (!buf || csrc_open(&cs) < 0) {
		ar_fsrc_fail(s, ZIP_ER_MEMORY, ENOMEM, "out of memory");
		ret = -ENOMEM;
	}
	while (!ret && (n = csrc_read(&cs, buf, COMMIT_IN_BLOCK)) > 0) {
		ret = io_pwrite_all(out_fd, buf, (size_t)n, off);
		off += (uint64_t)n;
		if (ret)
			ar_fsrc_fail(s, ZIP_ER_WRITE, -ret, "%s: writing the "
				     "new archive: %s", s->a->path,
				     strerror(-ret));
	}
	if (!ret && n < 0)
		ret = s->fail_errno ? -s->fail_errno : -EIO;
	*comp_size = cs.deflate ? cs.comp_size : cs.pos;
	*crc = cs.crc;
	csrc_close(&cs);
	zip_error_fini(&cs.error);
	free(buf);
	return ret;
}
