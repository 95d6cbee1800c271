/* version.c - archive versions by reference count: the tree holds one
 * reference on its current archive, and tree_read_span one more, kept in
 * the calling thread's slot, for the zero-copy reply libfuse sends after
 * the callback returns (and after the tree lock is released).  The slot's
 * reference is released when that thread starts its next request
 * (tree_thread_release), exits, or frees the tree.
 *  Invariants: t->ar == t->ver->ar; an archive a commit replaced is
 *  retired (tables freed, descriptors kept) and closed by its last
 *  reference's version_put. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "mount_internal.h"

struct version {
	struct archive *ar;
	atomic_uint refs;
};

static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void slot_exit(void *v)
{
	version_put(v);		/* the thread exits holding a span */
}

static void slot_key_create(void)
{
	if (pthread_key_create(&slot_key, slot_exit))
		abort();	/* only PTHREAD_KEYS_MAX keys: cannot happen */
}

static pthread_key_t slot(void)
{
	pthread_once(&slot_once, slot_key_create);
	return slot_key;
}

int version_new(struct archive *ar, struct version **out)
{
	struct version *v = malloc(sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->ar = ar;
	atomic_init(&v->refs, 1);
	*out = v;
	return 0;
}

void version_put(struct version *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
		archive_close(v->ar);
		free(v);
	}
}

int version_reserve(struct tree *t, struct npz_err *err)
{
	if (!t->spare && version_new(NULL, &t->spare)) {
		npz_err_set(err, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void version_publish(struct tree *t, struct archive *nar)
{
	struct version *old = t->ver;

	/* nobody reads the old archive's tables any more (readers hold
	 * t->lock): only its descriptors stay, for zero-copy replies */
	archive_retire(old->ar);
	t->ver = t->spare;
	t->spare = NULL;
	t->ver->ar = nar;
	t->ar = nar;
	version_put(old);
}

int version_hold(struct version *v)
{
	tree_thread_release();
	atomic_fetch_add(&v->refs, 1);
	if (pthread_setspecific(slot(), v)) {
		version_put(v);
		return -EAGAIN;	/* no memory for the slot: copy instead */
	}
	return 0;
}

void tree_thread_release(void)
{
	struct version *v = pthread_getspecific(slot());

	if (v) {
		pthread_setspecific(slot(), NULL);
		version_put(v);
	}
}
