/* writebehind.c - a bounded queue of writes and the thread that does them.
 * Invariants: blocks are written in the order they were queued (so later
 * writes of a range win, as with pwrite); queue_bytes <= WB_QUEUE_MAX
 * (a block bigger than that waits for an empty queue); f->queued counts
 * f's blocks in the queue or being written. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "writebehind.h"

#define WB_MIN (64u << 10)	/* smaller writes are done at once */

#define WB_BLOCK (1u << 20)	/* blocks of up to this many bytes are kept
				   for reuse (no mmap and page faults) */

struct wb_block {
	struct wb_file *f;
	int fd;
	uint64_t off;
	size_t len, cap;
	struct wb_block *next;
	char data[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* all below */
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;	/* queue not empty */
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;	/* a block written */
static struct wb_block *head, *tail;
static struct wb_block *spare;	/* free blocks of WB_BLOCK bytes */
static size_t queue_bytes;
static enum { WRITER_NONE, WRITER_ON, WRITER_FAILED } writer;

/* pwrite the block (unless an earlier one of its file failed: err), start
 * its writeback.  Returns 0 or -errno. */
static int block_write(struct wb_block *b, int err)
{
	struct wb_file *f = b->f;
	uint64_t end = b->off + b->len;
	int ret = err ? err : io_pwrite_all(b->fd, b->data, b->len, b->off);

	if (!ret && f->writeback && end >= f->synced + WB_WRITEBACK) {
		/* only a hint: errors show up at fsync or clone */
		sync_file_range(b->fd, (off_t)f->synced,
				(off_t)(end - f->synced), SYNC_FILE_RANGE_WRITE);
		f->synced = end;
	}
	return ret;
}

static void block_put(struct wb_block *b);

static void *writer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct wb_block *b;
		int err, ret;

		while (!head)
			pthread_cond_wait(&work, &lock);
		b = head;
		err = b->f->err;
		/* f->synced is the writer's while f->queued > 0 */
		pthread_mutex_unlock(&lock);
		ret = block_write(b, err);
		pthread_mutex_lock(&lock);
		if (ret && !b->f->err)
			b->f->err = ret;
		head = b->next;
		if (!head)
			tail = NULL;
		queue_bytes -= b->len;
		b->f->queued--;
		block_put(b);
		pthread_cond_broadcast(&done);
	}
	return NULL;
}

/* Start the writer thread once.  lock held.  false: write synchronously. */
static bool writer_ready(void)
{
	sigset_t all, old;
	pthread_t th;

	if (writer == WRITER_NONE) {
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		writer = pthread_create(&th, NULL, writer_main, NULL) == 0 ?
			 WRITER_ON : WRITER_FAILED;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (writer == WRITER_ON)
			pthread_detach(th);
	}
	return writer == WRITER_ON;
}

/* A block for n bytes: a spare one, or new.  lock held. */
static struct wb_block *block_get(size_t n)
{
	size_t cap = n <= WB_BLOCK ? WB_BLOCK : n;
	struct wb_block *b;

	if (n < WB_MIN)
		return NULL;
	if (cap == WB_BLOCK && spare) {
		b = spare;
		spare = b->next;
		return b;
	}
	b = malloc(sizeof(*b) + cap);
	if (b)
		b->cap = cap;
	return b;
}

static void block_put(struct wb_block *b)
{
	if (b && b->cap == WB_BLOCK) {
		b->next = spare;
		spare = b;
	} else {
		free(b);
	}
}

int wb_pwrite(struct wb_file *f, int fd, const void *p, size_t n,
	      uint64_t off)
{
	struct wb_block *b;
	int ret;

	pthread_mutex_lock(&lock);
	b = block_get(n);
	if (!b || !writer_ready()) {
		/* in order after f's queued writes */
		while (f->queued)
			pthread_cond_wait(&done, &lock);
		block_put(b);
		pthread_mutex_unlock(&lock);
		/* nothing of f is queued: f is ours alone */
		ret = f->err;
		if (!ret)
			ret = f->err = io_pwrite_all(fd, p, n, off);
		return ret;
	}
	while (queue_bytes && queue_bytes + n > WB_QUEUE_MAX)
		pthread_cond_wait(&done, &lock);
	ret = f->err;
	if (ret) {
		block_put(b);
		pthread_mutex_unlock(&lock);
		return ret;
	}
	*b = (struct wb_block){ .f = f, .fd = fd, .off = off, .len = n,
				.cap = b->cap };
	memcpy(b->data, p, n);
	if (tail)
		tail->next = b;
	else
		head = b;
	tail = b;
	queue_bytes += n;
	f->queued++;
	pthread_cond_signal(&work);
	pthread_mutex_unlock(&lock);
	return 0;
}

int wb_drain(struct wb_file *f)
{
	int ret;

	pthread_mutex_lock(&lock);
	while (f->queued)
		pthread_cond_wait(&done, &lock);
	ret = f->err;
	pthread_mutex_unlock(&lock);
	return ret;
}
