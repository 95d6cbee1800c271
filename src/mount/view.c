/* view.c - an array's npy header and its text view: rendering into the
 * cache (memory then the shared file for small views, a file of its own
 * for big ones), eviction by the cache budget.
 *  Invariant: e->rendered means the whole text (e->text_len bytes) is in
 *  e->view_fd, or at e->text_off of t->cache_fd; charged to the budget. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "text.h"
#include "mount_internal.h"

#define HEAD_PEEK 4096
#define VIEW_MEM_MAX (16u << 20)	/* views whose text is at most this
					   (bound) are rendered in memory, then
					   appended to the shared cache file;
					   bigger ones get a cache file each */
#define CACHE_RETRY_SECONDS 1	/* after caching a view failed */

/* Drop the cached text of e (it stays sized).  e->lock held. */
void view_drop(struct entry *e)
{
	if (!e->rendered)
		return;
	if (e->view_fd >= 0)
		close(e->view_fd);
	else if (e->text_len)
		fallocate(e->t->cache_fd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)e->text_off, (off_t)e->text_len);
	e->view_fd = -1;
	e->rendered = false;
}

/* The budget wants e's text back (cache.h: must not block). */
bool view_evict(struct cache_item *it)
{
	struct entry *e = (struct entry *)((char *)it -
					   offsetof(struct entry, ci));

	if (pthread_mutex_trylock(&e->lock))
		return false;
	view_drop(e);
	pthread_mutex_unlock(&e->lock);
	return true;
}

/* Read exactly len bytes of member data at off: 0 or -EIO. */
static int member_read_full(struct tree *t, size_t member, void *buf,
			    size_t len, uint64_t off, struct npz_err *err)
{
	char *p = buf;

	while (len) {
		ssize_t r = archive_member_read(t->ar, member, p, len, off, err);

		if (r < 0)
			return (int)r;
		if (r == 0) {
			npz_err_set(err, "unexpected end of member data");
			return -EIO;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int array_parse(struct tree *t, struct entry *e,
		       struct npy_header *hdr, struct npz_err *err)
{
	const struct archive_member *m = archive_member(t->ar, e->member);
	char head[HEAD_PEEK];
	size_t got = m->size < sizeof(head) ? (size_t)m->size : sizeof(head);
	size_t total;
	char *big;
	int ret;

	ret = member_read_full(t, e->member, head, got, 0, err);
	if (ret)
		return ret;
	ret = npy_header_size(head, got, &total, err);
	if (ret)
		return ret;
	if (total > m->size) {
		npz_err_set(err, "header length %zu past end of member (%llu bytes)",
			    total, (unsigned long long)m->size);
		return -EINVAL;
	}
	if (total <= got)
		return npy_header_parse(head, got, hdr, err);
	big = malloc(total);
	if (!big)
		return -ENOMEM;
	ret = member_read_full(t, e->member, big, total, 0, err);
	if (!ret)
		ret = npy_header_parse(big, total, hdr, err);
	free(big);
	return ret;
}

/* Parse the array's header into *hdr (release it with
 * npy_header_release).  Headers are not kept, only what the namespace
 * needs (state, viewable, data_len): RAM stays small with many members.
 * Called with e->lock held.  Returns 0 or -EIO (logged once, naming the
 * member). */
int array_header(struct tree *t, struct entry *e,
		 struct npy_header *hdr)
{
	const struct archive_member *m;
	struct npz_err err = { "" };
	int ret;

	if (e->state == ARRAY_BAD || !e->in_archive)
		return -EIO;
	m = archive_member(t->ar, e->member);
	ret = array_parse(t, e, hdr, &err);
	if (!ret && npy_check_data_len(hdr, m->size, false, &err)) {
		npy_header_release(hdr);
		ret = -EINVAL;
	}
	if (ret) {
		e->state = ARRAY_BAD;
		npz_log("member '%s': bad npy: %s", m->name,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	if (e->state == ARRAY_UNKNOWN) {
		e->state = ARRAY_OK;
		e->viewable = text_viewable(hdr);
		e->data_len = hdr->data_len;
		e->text_bound = text_size_bound(hdr);
	}
	return 0;
}

/* Learn the array's state once.  Called with e->lock held: 0 or -EIO. */
int array_load(struct tree *t, struct entry *e)
{
	struct npy_header hdr;
	int ret;

	if (e->state == ARRAY_OK)
		return 0;
	ret = array_header(t, e, &hdr);
	if (!ret)
		npy_header_release(&hdr);
	return ret;
}

/* A view is hidden when its array holds objects. */
bool view_visible(struct tree *t, struct entry *e)
{
	bool visible;

	if (atomic_load(&e->big_render))
		return true;	/* it renders: it has a view */
	pthread_mutex_lock(&e->lock);
	visible = array_load(t, e) || e->viewable;
	pthread_mutex_unlock(&e->lock);
	return visible;
}

/* Rendering a view: the text goes to the view's cache (memory then the
 * shared file for small views, a file of its own for big ones) while the
 * budget lets it, and the bytes of a window [win_off, win_off + win_len)
 * are copied out on the way (a read of a view that is not cached). */
struct render_ctx {
	struct tree *t;
	struct entry *e;
	uint64_t data_off;	/* the npy header's length */
	struct npz_err *err;
	uint64_t pos;		/* text produced so far */
	bool caching;		/* still keeping the text */
	bool in_mem;		/* keeping it in mem, else in fd */
	struct buf mem;
	int fd;
	char *win;
	uint64_t win_off;
	size_t win_len, win_got;
	bool stop_after_win;	/* the size is known: stop after the window */
};

static int render_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct render_ctx *rc = ctx;

	return member_read_full(rc->t, rc->e->member, buf, len,
				rc->data_off + off, rc->err);
}

/* Stop keeping the text (budget full, disk full): the render goes on for
 * the window and the size. */
static void render_uncache(struct render_ctx *rc)
{
	rc->caching = false;
	buf_release(&rc->mem);
	if (rc->fd >= 0) {
		close(rc->fd);
		rc->fd = -1;
		cache_drop(&rc->e->ci);
	}
}

static int render_sink_write(void *ctx, const void *buf, size_t len)
{
	struct render_ctx *rc = ctx;
	uint64_t wend = rc->win_off + rc->win_len;

	if (rc->win && rc->pos + len > rc->win_off && rc->pos < wend) {
		uint64_t from = rc->pos > rc->win_off ? rc->pos : rc->win_off;
		uint64_t to = rc->pos + len < wend ? rc->pos + len : wend;

		memcpy(rc->win + (from - rc->win_off),
		       (const char *)buf + (from - rc->pos), (size_t)(to - from));
		rc->win_got = (size_t)(to - rc->win_off);
	}
	if (rc->caching && rc->in_mem) {
		if (buf_add(&rc->mem, buf, len))
			render_uncache(rc);
	} else if (rc->caching) {
		if (cache_charge(&rc->e->ci, len)) {
			render_uncache(rc);
		} else if (io_pwrite_all(rc->fd, buf, len, rc->pos)) {
			cache_release(&rc->e->ci, len);
			render_uncache(rc);
		}
	}
	rc->pos += len;
	if (!rc->caching && rc->stop_after_win && rc->pos >= wend)
		return -ECANCELED;	/* the window is full */
	return 0;
}

/* Keep a small view rendered in memory: charge it and append it to the
 * shared file.  e->lock held.  Returns true when it is cached. */
static bool render_keep_mem(struct render_ctx *rc)
{
	struct tree *t = rc->t;
	struct entry *e = rc->e;
	uint64_t off;

	if (t->cache_fd < 0 || cache_charge(&e->ci, rc->mem.len))
		return false;
	pthread_mutex_lock(&t->cache_lock);
	off = t->cache_end;
	t->cache_end = (off + rc->mem.len + 63) & ~63ull;
	pthread_mutex_unlock(&t->cache_lock);
	if (io_pwrite_all(t->cache_fd, rc->mem.data, rc->mem.len, off)) {
		cache_drop(&e->ci);
		return false;
	}
	e->text_off = off;
	e->view_fd = -1;
	return true;
}

/* Render e's view when its text is at most max_bound bytes (by
 * text_size_bound): learn its size, keep it in the cache when the budget
 * lets it, and copy the window [win_off, win_off + win_len) into win (when
 * win is not NULL; *got says how many bytes).  Called with e->lock held.
 * Returns 0, -EFBIG (bigger than max_bound: nothing done) or -EIO (logged:
 * a damaged member, an object array). */
int array_render(struct tree *t, struct entry *e, uint64_t max_bound,
		 char *win, uint64_t win_off, size_t win_len,
		 size_t *got)
{
	struct npz_err err = { "" };
	struct render_ctx rc = { .t = t, .e = e, .err = &err, .fd = -1,
				 .win = win, .win_off = win_off,
				 .win_len = win_len };
	struct text_src src = { render_src_read, &rc };
	struct text_sink sink = { render_sink_write, &rc };
	struct npy_header hdr;
	bool full;
	int ret;

	if (e->state == ARRAY_OK && (!e->viewable || e->text_bound > max_bound))
		return e->viewable ? -EFBIG : -EIO;
	ret = array_header(t, e, &hdr);
	if (ret)
		return ret;
	if (!e->viewable || e->text_bound > max_bound) {
		npy_header_release(&hdr);
		return e->viewable ? -EFBIG : -EIO;
	}
	rc.data_off = hdr.header_len;
	buf_init(&rc.mem);
	rc.in_mem = e->text_bound <= VIEW_MEM_MAX;
	rc.caching = !e->rendered && time(NULL) - e->cache_failed >=
		     CACHE_RETRY_SECONDS &&
		     (!e->sized || e->text_len <= cache_limit());
	if (rc.caching && !rc.in_mem) {
		rc.fd = cache_tmpfile();
		rc.caching = rc.fd >= 0;
	}
	rc.stop_after_win = win && e->sized;
	if (e->text_bound > TREE_STAT_TEXT_MAX)
		atomic_store(&e->big_render, true);
	ret = text_format(&hdr, &src, &sink, &err);
	atomic_store(&e->big_render, false);
	npy_header_release(&hdr);
	full = !ret;
	if (ret == -ECANCELED && rc.stop_after_win)
		ret = 0;
	if (ret) {
		render_uncache(&rc);
		npz_log("member '%s': cannot render text view: %s", e->mname,
			err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	if (full) {
		e->sized = true;
		e->text_len = rc.pos;
		if (rc.caching && rc.in_mem)
			rc.caching = render_keep_mem(&rc);
		else if (rc.caching)
			e->view_fd = rc.fd;
		e->rendered = rc.caching;
		if (!rc.caching && !e->cache_failed)
			npz_log("member '%s': text view (%llu bytes) not kept "
				"in the cache (cache_size=%llu): it is rendered "
				"again for reads", e->mname,
				(unsigned long long)rc.pos,
				(unsigned long long)cache_limit());
		if (!rc.caching)
			e->cache_failed = time(NULL);
	}
	buf_release(&rc.mem);
	if (got)
		*got = rc.win_got;
	return 0;
}

/* Load e and render its view if it is not cached (and was not given up
 * on a moment ago): 0 or -EIO. */
int view_ready(struct tree *t, struct entry *e)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = array_load(t, e);
	if (!ret && (!e->sized || (!e->rendered &&
				   time(NULL) - e->cache_failed >=
				   CACHE_RETRY_SECONDS)))
		ret = array_render(t, e, UINT64_MAX, NULL, 0, 0, NULL);
	pthread_mutex_unlock(&e->lock);
	return ret;
}
