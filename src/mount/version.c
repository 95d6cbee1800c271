/* version.c - archive versions by reference count: the tree holds one
 * reference on its current archive, and tree_read_span one more, kept in
 * the calling thread's slot, for the zero-copy reply libfuse sends after
 * the callback returns (and after the tree lock is released).  The slot's
 * reference is released when that thread starts its next request
 * (tree_thread_release), exits, or frees the tree.
 *  Invariants: t->ar == t->ver->ar; an archive a commit replaced is
 *  retired (tables freed, descriptors kept) after its change ends, by the
 *  reaper thread, and closed by its last reference's version_put. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "mount_internal.h"

struct version {
	struct archive *ar;
	atomic_uint refs;
	atomic_uint readers;	/* references that read members through
				   ar's tables (version_ref_tables) */
	struct version *next;	/* in t->retired */
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
	atomic_init(&v->readers, 0);
	*out = v;
	return 0;
}

struct archive *version_archive(const struct version *v)
{
	return v->ar;
}

struct version *version_ref(struct version *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

struct version *version_ref_tables(struct version *v)
{
	atomic_fetch_add(&v->readers, 1);
	return version_ref(v);
}

void version_put_tables(struct version *v)
{
	atomic_fetch_sub(&v->readers, 1);
	version_put(v);
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

	t->ver = t->spare;
	t->spare = NULL;
	t->ver->ar = nar;
	t->ar = nar;
	old->next = t->retired;
	t->retired = old;
}

static void drop_retired(struct version *list)
{
	struct version *v, *next;

	for (v = list; v; v = next) {
		next = v->next;
		/* nobody reads its tables any more (readers took t->ar under
		 * t->lock): only its descriptors stay, for zero-copy replies;
		 * unless an edit's base reads its members (a deflated member's
		 * content): then all of it stays until its last reference.
		 * No reader starts after this: readers take the current
		 * version, and v is not current any more. */
		if (atomic_load(&v->readers) == 0)
			archive_retire(v->ar);
		version_put(v);
	}
}

static void *reaper_main(void *arg)
{
	struct tree *t = arg;
	struct version *list;

	pthread_mutex_lock(&t->reap_lock);
	for (;;) {
		while (!t->reap && !t->reap_stop)
			pthread_cond_wait(&t->reap_cv, &t->reap_lock);
		if (!t->reap)
			break;
		list = t->reap;
		t->reap = NULL;
		pthread_mutex_unlock(&t->reap_lock);
		drop_retired(list);
		pthread_mutex_lock(&t->reap_lock);
	}
	pthread_mutex_unlock(&t->reap_lock);
	return NULL;
}

/* Start the reaper with every signal blocked (they are the FUSE loop's).
 * reap_lock held.  False when no thread can be made. */
static bool reaper_start(struct tree *t)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&t->reaper, NULL, reaper_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	t->reaper_on = !ret;
	return !ret;
}

void version_reap(struct tree *t, struct version *list)
{
	struct version *last;

	if (!list)
		return;
	pthread_mutex_lock(&t->reap_lock);
	if (t->reap_stop || (!t->reaper_on && !reaper_start(t))) {
		pthread_mutex_unlock(&t->reap_lock);
		drop_retired(list);
		return;
	}
	for (last = list; last->next; last = last->next)
		;
	last->next = t->reap;
	t->reap = list;
	pthread_cond_signal(&t->reap_cv);
	pthread_mutex_unlock(&t->reap_lock);
}

void version_reaper_stop(struct tree *t)
{
	struct version *list;
	bool on;

	pthread_mutex_lock(&t->reap_lock);
	t->reap_stop = true;
	on = t->reaper_on;
	pthread_cond_signal(&t->reap_cv);
	pthread_mutex_unlock(&t->reap_lock);
	if (on)
		pthread_join(t->reaper, NULL);
	list = t->reap;		/* (none: the reaper drains before it ends) */
	t->reap = NULL;
	drop_retired(list);
	drop_retired(t->retired);
	t->retired = NULL;
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
