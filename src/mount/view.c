/* view.c - an array's npy header and its views (the kinds of views.h:
 * text, CSV, ...): rendering into the cache (memory then the shared file
 * for small views, a file of its own for big ones), eviction by the cache
 * budget.  Every kind goes through the same code: its codec is called
 * through the table (views.h), from the start of the view to its end.
 *  Invariant: vs->rendered means the whole view (vs->len bytes) is in
 *  vs->fd, or at vs->off of t->cache_fd; charged to the budget. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "mount_internal.h"

#define HEAD_PEEK 4096
#define VIEW_MEM_MAX (16u << 20)	/* views whose text is at most this
					   (bound) are rendered in memory, then
					   appended to the shared cache file;
					   bigger ones get a cache file each */
#define CACHE_RETRY_SECONDS 1	/* after caching a view failed */

bool view_on(const struct tree *t, enum view_id k)
{
	return (t->opts.views >> k & 1) && view_kind(k);
}

/* Drop the cached rendering of vs (it stays sized).  e->lock held. */
void view_drop(struct view_state *vs)
{
	if (!vs->rendered)
		return;
	if (vs->fd >= 0)
		close(vs->fd);
	else if (vs->len)
		fallocate(vs->e->t->cache_fd,
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)vs->off, (off_t)vs->len);
	vs->fd = -1;
	vs->rendered = false;
}

void view_reset_all(struct entry *e)
{
	for (int k = 0; k < VIEW_KINDS; k++) {
		struct view_state *vs = &e->vs[k];

		view_drop(vs);
		cache_drop(&vs->ci);
		vs->sized = false;
		vs->len = 0;
		vs->cache_failed = 0;
	}
}

/* The budget wants a view back (cache.h: must not block). */
bool view_evict(struct cache_item *it)
{
	struct view_state *vs = (struct view_state *)((char *)it -
				offsetof(struct view_state, ci));

	if (pthread_mutex_trylock(&vs->e->lock))
		return false;
	view_drop(vs);
	pthread_mutex_unlock(&vs->e->lock);
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
 * needs (state, data_len, each view's visibility and bound): RAM stays small with many members.
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
		e->data_len = hdr->data_len;
		for (int k = 0; k < VIEW_KINDS; k++) {
			const struct view_kind *vk = view_kind(k);
			struct view_state *vs = &e->vs[k];

			vs->visible = vk && vk->visible(hdr);
			vs->ro = vs->visible && vk->read_only &&
				 vk->read_only(hdr);
			vs->bound = vs->visible ? vk->size_bound(hdr) : UINT64_MAX;
		}
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

/* A view is hidden when its kind does not show its array (objects, a
 * shape it has no form for). */
bool view_visible(struct tree *t, const struct node *n)
{
	struct entry *e = n->e;
	bool visible;

	if (atomic_load(&e->vs[n->vk].big_render))
		return true;	/* it renders: it has a view */
	pthread_mutex_lock(&e->lock);
	visible = array_load(t, e) || e->vs[n->vk].visible;
	pthread_mutex_unlock(&e->lock);
	return visible;
}

bool view_read_only(struct tree *t, const struct node *n)
{
	struct entry *e = n->e;
	bool ro;

	if (!view_kind(n->vk)->read_only)
		return false;	/* the kind is never read-only: no lock */
	if (atomic_load(&e->vs[n->vk].big_render))
		return e->vs[n->vk].ro;	/* set before it began (state OK),
					   unchanged while it renders */
	pthread_mutex_lock(&e->lock);
	ro = !array_load(t, e) && e->vs[n->vk].ro;
	pthread_mutex_unlock(&e->lock);
	return ro;
}

/* Rendering a view: it goes to the view's cache (memory then the
 * shared file for small views, a file of its own for big ones) while the
 * budget lets it, and the bytes of a window [win_off, win_off + win_len)
 * are copied out on the way (a read of a view that is not cached). */
struct render_ctx {
	struct tree *t;
	struct entry *e;
	struct view_state *vs;
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
		cache_drop(&rc->vs->ci);
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
		if (cache_charge(&rc->vs->ci, len)) {
			render_uncache(rc);
		} else if (io_pwrite_all(rc->fd, buf, len, rc->pos)) {
			cache_release(&rc->vs->ci, len);
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
	struct view_state *vs = rc->vs;
	uint64_t off;

	if (t->cache_fd < 0 || cache_charge(&vs->ci, rc->mem.len))
		return false;
	pthread_mutex_lock(&t->cache_lock);
	off = t->cache_end;
	t->cache_end = (off + rc->mem.len + 63) & ~63ull;
	pthread_mutex_unlock(&t->cache_lock);
	if (io_pwrite_all(t->cache_fd, rc->mem.data, rc->mem.len, off)) {
		cache_drop(&vs->ci);
		return false;
	}
	vs->off = off;
	vs->fd = -1;
	return true;
}

/* The rendering is over and whole: its size is known; keep it when it was
 * kept on the way. */
static void render_done(struct render_ctx *rc)
{
	struct view_state *vs = rc->vs;
	const struct view_kind *vk = view_kind(vs - rc->e->vs);

	vs->sized = true;
	vs->len = rc->pos;
	if (rc->caching && rc->in_mem)
		rc->caching = render_keep_mem(rc);
	else if (rc->caching)
		vs->fd = rc->fd;
	vs->rendered = rc->caching;
	if (!rc->caching && !vs->cache_failed)
		npz_log("member '%s': %s view (%llu bytes) not kept in the "
			"cache (cache_size=%llu): it is rendered again for "
			"reads", rc->e->mname, vk->label,
			(unsigned long long)rc->pos,
			(unsigned long long)cache_limit());
	if (!rc->caching)
		vs->cache_failed = time(NULL);
}

/* Render e's view k when its bound is at most max_bound bytes: learn its
 * size, keep it in the cache when the budget lets it, and copy the window
 * [win_off, win_off + win_len) into win (when win is not NULL; *got says
 * how many bytes).  Every kind renders from its start (a PNG cannot start
 * elsewhere): the window is cut out of the stream.  Called with e->lock
 * held.  Returns 0, -EFBIG (bigger than max_bound: nothing done) or -EIO
 * (logged: a damaged member, an array without this view). */
int array_render(struct tree *t, struct entry *e, enum view_id k,
		 uint64_t max_bound, char *win, uint64_t win_off,
		 size_t win_len, size_t *got)
{
	const struct view_kind *vk = view_kind(k);
	struct view_state *vs = &e->vs[k];
	struct npz_err err = { "" };
	struct render_ctx rc = { .t = t, .e = e, .vs = vs, .err = &err,
				 .fd = -1, .win = win, .win_off = win_off,
				 .win_len = win_len };
	struct text_src src = { render_src_read, &rc };
	struct text_sink sink = { render_sink_write, &rc };
	struct npy_header hdr;
	int ret;

	if (e->state == ARRAY_OK && (!vs->visible || vs->bound > max_bound))
		return vs->visible ? -EFBIG : -EIO;
	ret = array_header(t, e, &hdr);
	if (ret)
		return ret;
	if (!vs->visible || vs->bound > max_bound) {
		npy_header_release(&hdr);
		return vs->visible ? -EFBIG : -EIO;
	}
	rc.data_off = hdr.header_len;
	buf_init(&rc.mem);
	rc.in_mem = vs->bound <= VIEW_MEM_MAX;
	rc.caching = !vs->rendered && time(NULL) - vs->cache_failed >=
		     CACHE_RETRY_SECONDS &&
		     (!vs->sized || vs->len <= cache_limit());
	if (rc.caching && !rc.in_mem) {
		rc.fd = cache_tmpfile();
		rc.caching = rc.fd >= 0;
	}
	rc.stop_after_win = win && vs->sized;
	if (vs->bound > TREE_STAT_TEXT_MAX)
		atomic_store(&vs->big_render, true);
	ret = vk->format(&hdr, &src, &sink, &err);
	atomic_store(&vs->big_render, false);
	npy_header_release(&hdr);
	if (!ret)
		render_done(&rc);
	else if (ret == -ECANCELED && rc.stop_after_win)
		ret = 0;
	if (ret) {
		render_uncache(&rc);
		npz_log("member '%s': cannot render %s view: %s", e->mname,
			vk->label, err.msg[0] ? err.msg : strerror(-ret));
		return -EIO;
	}
	buf_release(&rc.mem);
	if (got)
		*got = rc.win_got;
	return 0;
}

/* Load e and render its view k if it is not cached (and was not given up
 * on a moment ago): 0 or -EIO. */
int view_ready(struct tree *t, struct entry *e, enum view_id k)
{
	struct view_state *vs = &e->vs[k];
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = array_load(t, e);
	if (!ret && (!vs->sized || (!vs->rendered &&
				    time(NULL) - vs->cache_failed >=
				    CACHE_RETRY_SECONDS)))
		ret = array_render(t, e, k, UINT64_MAX, NULL, 0, 0, NULL);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

ssize_t view_read(struct tree *t, struct entry *e, enum view_id k,
		  void *buf, size_t len, uint64_t off)
{
	struct view_state *vs = &e->vs[k];
	size_t got = 0;
	ssize_t r;

	/* under e->lock: the cached view cannot be evicted meanwhile */
	pthread_mutex_lock(&e->lock);
	r = array_load(t, e);
	if (!r && vs->rendered) {
		if (off >= vs->len)
			len = 0;
		else if (len > vs->len - off)
			len = (size_t)(vs->len - off);
		r = pread(vs->fd >= 0 ? vs->fd : t->cache_fd, buf, len,
			  (off_t)((vs->fd >= 0 ? 0 : vs->off) + off));
		if (r == (ssize_t)len) {
			cache_touch(&vs->ci);
		} else {	/* the cache failed us: render this read */
			view_drop(vs);
			cache_drop(&vs->ci);
			vs->cache_failed = time(NULL);
			r = 0;
		}
	}
	if (!r && !vs->rendered) {
		r = array_render(t, e, k, UINT64_MAX, buf, off, len, &got);
		if (!r)
			r = (ssize_t)got;
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

uint64_t view_size(struct tree *t, struct entry *e, enum view_id k)
{
	struct view_state *vs = &e->vs[k];
	uint64_t size = 0;

	if (atomic_load(&vs->big_render))
		return 0;	/* a big view being rendered: 0 until its
				   open is done */
	pthread_mutex_lock(&e->lock);
	/* only small views are rendered to learn their size */
	if (!vs->sized && e->in_archive && e->state != ARRAY_BAD)
		array_render(t, e, k, TREE_STAT_TEXT_MAX, NULL, 0, 0, NULL);
	if (vs->sized)
		size = vs->len;
	pthread_mutex_unlock(&e->lock);
	return size;
}
