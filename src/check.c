/* check.c - `npzfs --check`: every member's CRC, npy header and place in
 * the file, one line per problem.
 *
 * Invariant: a member is reported at most once per kind of problem, in
 * central-directory order; the last line is always the summary (or the one
 * line saying why the archive cannot be opened).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "check.h"
#include "npy.h"

struct checker {
	struct archive *a;
	FILE *out;
	const char *path;
	char **layout_msg;	/* per member: what archive_check_layout() said */
	bool oom;
	size_t problems;
};

/* Print s with control characters and backslashes escaped, so that a
 * hostile name (also one quoted in a message) cannot forge or split lines. */
static void put_escaped(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
}

static void problem(struct checker *c, size_t i, const char *msg)
{
	put_escaped(c->out, archive_member(c->a, i)->name);
	fputs(": ", c->out);
	put_escaped(c->out, msg);
	fputc('\n', c->out);
	c->problems++;
}

static void layout_cb(void *ctx, size_t i, const char *msg)
{
	struct checker *c = ctx;

	if (c->layout_msg[i])
		return;
	c->layout_msg[i] = strdup(msg);
	if (!c->layout_msg[i])
		c->oom = true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Read exactly len bytes at off of member i.  0, -EIO (err set), -ENOMEM. */
static int read_exact(struct archive *a, size_t i, void *buf, size_t len,
		      struct npz_err *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = archive_member_read(a, i, (char *)buf + done,
						len - done, done, err);

		if (n < 0)
			return n == -ENOMEM ? -ENOMEM : -EIO;
		if (n == 0) {
			npz_err_set(err, "unexpected end of member");
			return -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

/* The npy header of member i must parse and match the member's size.
 * Returns 0 (sound), -EIO (a problem, err says why) or -ENOMEM. */
static int check_npy(struct archive *a, size_t i, struct npz_err *err)
{
	const struct archive_member *m = archive_member(a, i);
	unsigned char prefix[NPY_PREFIX_MAX], *head;
	size_t plen = m->size < NPY_PREFIX_MAX ? (size_t)m->size : NPY_PREFIX_MAX;
	struct npy_header hdr;
	size_t total;
	int ret;

	ret = read_exact(a, i, prefix, plen, err);
	if (ret)
		return ret;
	if (npy_header_size(prefix, plen, &total, err)) {
		npz_err_prefix(err, "npy header");
		return -EIO;
	}
	if (total > m->size) {
		npz_err_set(err, "npy header: %zu bytes long, member has only "
			    "%llu", total, (unsigned long long)m->size);
		return -EIO;
	}
	head = malloc(total);
	if (!head)
		return -ENOMEM;
	ret = read_exact(a, i, head, total, err);
	if (ret)
		goto out_free_head;
	ret = npy_header_parse(head, total, &hdr, err);
	if (ret) {
		if (ret != -ENOMEM) {
			npz_err_prefix(err, "npy header");
			ret = -EIO;
		}
		goto out_free_head;
	}
	if (!npy_dtype_has_object(&hdr.dtype) &&
	    (hdr.data_len > m->size - hdr.header_len ||
	     hdr.header_len + hdr.data_len != m->size)) {
		struct buf shape = BUF_INIT;

		npy_shape_format(hdr.ndim, hdr.shape, &shape);
		npz_err_set(err, "npy header says %llu bytes of data (shape "
			    "%s, %s), the member has %llu",
			    (unsigned long long)hdr.data_len, shape.data,
			    hdr.descr ? hdr.descr : "?",
			    (unsigned long long)(m->size - hdr.header_len));
		buf_release(&shape);
		ret = -EIO;
	}
	npy_header_release(&hdr);
out_free_head:
	free(head);
	return ret;
}

static int check_members(struct checker *c)
{
	struct npz_err err;
	size_t i, n = archive_count(c->a), idx;
	int ret;

	c->layout_msg = calloc(n ? n : 1, sizeof(*c->layout_msg));
	if (!c->layout_msg)
		return -ENOMEM;
	err.msg[0] = '\0';
	ret = archive_check_layout(c->a, layout_cb, c, &err);
	if (ret < 0 && ret != -ENOMEM) {
		/* cannot happen for an archive that opened; say it anyway */
		fprintf(c->out, "%s: layout: %s\n", c->path, err.msg);
		c->problems++;
	}
	if (ret == -ENOMEM || c->oom)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		const struct archive_member *m = archive_member(c->a, i);

		if (c->layout_msg[i])
			problem(c, i, c->layout_msg[i]);
		if (archive_find(c->a, m->name, &idx) == 0 && idx != i)
			problem(c, i, "duplicate name: hidden by a later "
				"member of the same name");
		err.msg[0] = '\0';
		ret = archive_check_member(c->a, i, &err);
		if (ret == -ENOMEM)
			return ret;
		if (ret) {
			problem(c, i, err.msg[0] ? err.msg : strerror(-ret));
			continue;
		}
		if (!ends_with(m->name, ".npy"))
			continue;
		err.msg[0] = '\0';
		ret = check_npy(c->a, i, &err);
		if (ret == -ENOMEM)
			return ret;
		if (ret)
			problem(c, i, err.msg[0] ? err.msg : strerror(-ret));
	}
	return 0;
}

int check_archive(const char *path, FILE *out)
{
	struct checker c = { .out = out, .path = path };
	struct npz_err err;
	size_t n, i;
	int ret;

	err.msg[0] = '\0';
	ret = archive_open(path, &c.a, &err);
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		fprintf(out, "%s: ", path);
		put_escaped(out, err.msg[0] ? err.msg : strerror(-ret));
		fputc('\n', out);
		return fflush(out) || ferror(out) ? -EIO : 1;
	}
	n = archive_count(c.a);
	ret = check_members(&c);
	if (ret == 0)
		fprintf(out, "%s: %zu member%s, %zu problem%s\n", path, n,
			n == 1 ? "" : "s", c.problems,
			c.problems == 1 ? "" : "s");
	if (c.layout_msg) {
		for (i = 0; i < n; i++)
			free(c.layout_msg[i]);
		free(c.layout_msg);
	}
	archive_close(c.a);
	if (ret)
		return ret;
	if (fflush(out) || ferror(out))
		return -EIO;
	return c.problems > INT32_MAX ? INT32_MAX : (int)c.problems;
}
