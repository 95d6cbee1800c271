/* grave.c - archives a commit replaced, closed GRAVE_SECONDS later:
 * tree_read_span hands out their descriptors for zero-copy replies that
 * are sent after the tree lock is released.
 *  Invariant: t->graves holds retired archives only (no member table). */
#include <stdlib.h>

#include "mount_internal.h"

#define GRAVE_SECONDS 2	/* how long replaced archives stay readable */

/* An archive a commit replaced, kept a while for zero-copy replies still
 * in flight (tree_read_span hands out descriptors and offsets that are
 * used after the tree lock is released). */
struct grave {
	struct archive *ar;
	time_t when;
	struct grave *next;
};

void grave_add(struct tree *t, struct archive *ar)
{
	struct grave *g = calloc(1, sizeof(*g));

	if (!g) {	/* no memory: release now rather than leak */
		archive_close(ar);
		return;
	}
	g->ar = ar;
	g->when = time(NULL);
	pthread_mutex_lock(&t->grave_lock);
	g->next = t->graves;
	t->graves = g;
	pthread_mutex_unlock(&t->grave_lock);
}

/* Close what was replaced more than GRAVE_SECONDS ago (all of
 * it when `all`). */
void grave_sweep(struct tree *t, bool all)
{
	time_t now = time(NULL);
	struct grave **p, *g, *done = NULL;

	pthread_mutex_lock(&t->grave_lock);
	for (p = &t->graves; (g = *p);) {
		if (all || now - g->when > GRAVE_SECONDS) {
			*p = g->next;
			g->next = done;
			done = g;
		} else {
			p = &g->next;
		}
	}
	pthread_mutex_unlock(&t->grave_lock);
	while ((g = done)) {
		done = g->next;
		archive_close(g->ar);
		free(g);
	}
}
