/* xattr.c - extended attributes user.npzfs.{dtype,shape,compression,error}.
 *  Invariant: listxattr names exactly the attributes getxattr returns. */
#include <errno.h>
#include <string.h>

#include "mount_internal.h"

#define XATTR_PREFIX "user.npzfs."

static const char *const xattr_names[] = {
	"dtype", "shape", "compression", "error"
};

/* Append attribute `name` (without prefix) of node n: 0 or -ENODATA. */
static int node_xattr(struct tree *t, struct node *n, const char *name,
		      struct buf *out)
{
	struct npy_header hdr;
	struct entry *e = n->e;
	int ret = -ENODATA;

	if (!strcmp(name, "error")) {
		const char *msg = e ? e->error : n->error;

		return msg ? buf_adds(out, msg) : -ENODATA;
	}
	if (n->kind == N_DIR || !e || !e->in_archive)
		return -ENODATA;
	if (!strcmp(name, "compression"))
		return buf_adds(out, archive_method_name(
				archive_member(t->ar, e->member)->method));
	if (!e->is_array)
		return -ENODATA;
	pthread_mutex_lock(&e->lock);
	if (array_header(t, e, &hdr) == 0) {
		const char *d = hdr.descr;
		size_t len = strlen(d);

		if (!strcmp(name, "dtype") && len >= 2 && d[0] == '\'')
			ret = buf_add(out, d + 1, len - 2);
		else if (!strcmp(name, "dtype"))
			ret = buf_add(out, d, len);
		else if (!strcmp(name, "shape"))
			ret = npy_shape_format(hdr.ndim, hdr.shape, out);
		npy_header_release(&hdr);
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int tree_getxattr(struct tree *t, const char *path, const char *name,
		  struct buf *out)
{
	struct node *n;
	int ret;

	pthread_rwlock_rdlock(&t->lock);
	n = ns_lookup(t, path);
	if (!n)
		ret = -ENOENT;
	else if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		ret = -ENODATA;
	else
		ret = node_xattr(t, n, name + strlen(XATTR_PREFIX), out);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int tree_listxattr(struct tree *t, const char *path, struct buf *out)
{
	struct buf val = BUF_INIT;
	struct node *n;
	int ret = 0;

	pthread_rwlock_rdlock(&t->lock);
	n = ns_lookup(t, path);
	if (!n)
		ret = -ENOENT;
	for (size_t i = 0; n && !ret && i < 4; i++) {
		buf_reset(&val);
		if (node_xattr(t, n, xattr_names[i], &val))
			continue;
		ret = buf_addf(out, "%s%s", XATTR_PREFIX, xattr_names[i]);
		if (!ret)
			ret = buf_addch(out, '\0');
	}
	pthread_rwlock_unlock(&t->lock);
	buf_release(&val);
	return ret;
}
