/* test_tree.c - the mount layer without FUSE: the name rules (names.c),
 * the (parent, name) namespace with its walk memo (namespace.c), and the
 * public tree API over a real archive built with archive_commit(): views,
 * writes and rejections, scratch files, renames, unlinks, and what
 * tree_unmount() stores; an edit frozen by a commit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "cache.h"
#include "tree.h"
#include "views.h"
#include "../../src/mount/mount_internal.h"
#include "test.h"

static char tmpdir[] = "/tmp/npzfs-test-tree-XXXXXX";
static char zpath[256];
static size_t a_size;		/* bytes of a.npy */

/* ---- names.c ---------------------------------------------------------- */

static bool member_path_is(const char *name, int want_ret, const char *want,
			   bool want_dir)
{
	struct buf b = BUF_INIT;
	bool is_dir = !want_dir, ok;
	int ret = name_member_path(name, &b, &is_dir);

	ok = ret == want_ret && (ret || (!strcmp(b.data, want) &&
					 is_dir == want_dir));
	buf_release(&b);
	return ok;
}

static void test_names(void)
{
	char *m;

	test_cond("member path: plain", member_path_is("a.npy", 0, "/a.npy", false));
	test_cond("member path: empty and '.' components dropped",
		  member_path_is("a/./b//c.npy", 0, "/a/b/c.npy", false));
	test_cond("member path: directory member", member_path_is("d/e/", 0, "/d/e", true));
	test_cond("member path: '..' refused", member_path_is("a/../b", -EINVAL, "", false));
	test_cond("member path: leading '..' refused", member_path_is("../b", -EINVAL, "", false));
	test_cond("member path: '...' is a name", member_path_is(".../b", 0, "/.../b", false));
	test_cond("member path: empty name refused", member_path_is("", -EINVAL, "", false));
	test_cond("member path: './' is the root", member_path_is("./", 0, "", true));

	test_cond("ends_with: x.npy", name_ends_with("x.npy", ".npy"));
	test_cond("ends_with: bare suffix is no name", !name_ends_with(".npy", ".npy"));
	test_cond("ends_with: suffix after a '/'", !name_ends_with("d/.npy", ".npy"));
	test_cond("ends_with: other suffix", !name_ends_with("x.npz", ".npy"));
	test_cond("array kind: .npy",
		  name_array_kind("/d/x.npy", VIEWS_DEFAULT) == NAME_NPY);
	test_cond("array kind: .txt",
		  name_array_kind("/d/x.txt", VIEWS_DEFAULT) == VIEW_TXT);
	test_cond("array kind: .csv not shown: other",
		  name_array_kind("/d/x.csv", VIEWS_DEFAULT) == NAME_OTHER);
	test_cond("array kind: .csv shown",
		  name_array_kind("/d/x.csv", 1u << VIEW_CSV) == VIEW_CSV);
	test_cond("array kind: .txt without txt: other",
		  name_array_kind("/d/x.txt", 1u << VIEW_CSV) == NAME_OTHER);
	test_cond("array kind: .png shown",
		  name_array_kind("/d/x.png", ~0u) == VIEW_PNG);
	test_cond("array kind: .png not shown: other",
		  name_array_kind("/d/x.png", VIEWS_DEFAULT) == NAME_OTHER);
	test_cond("array kind: other",
		  name_array_kind("/d/x.md", ~0u) == NAME_OTHER);
	test_cond("array kind: '/d/.txt'",
		  name_array_kind("/d/.txt", ~0u) == NAME_OTHER);
	{
		unsigned mask = 7;
		struct npz_err err = { "" };

		test_cond("views: txt,csv", !views_parse("txt,csv", &mask, NULL) &&
			  mask == ((1u << VIEW_TXT) | (1u << VIEW_CSV)));
		test_cond("views: csv:png", !views_parse("csv:png", &mask, NULL) &&
			  mask == ((1u << VIEW_CSV) | (1u << VIEW_PNG)));
		test_cond("views: empty", !views_parse("", &mask, NULL) && !mask);
		test_cond("views: unknown", views_parse("txt,xls", &mask, &err) == -EINVAL &&
			  strstr(err.msg, "unknown view 'xls'"));
	}

	test_cond("base: /a/b", !strcmp(name_base("/a/b"), "b"));
	test_cond("base: no slash", !strcmp(name_base("b"), "b"));
	test_cond("member of a path", !strcmp(name_member("/d/x.npy"), "d/x.npy"));
	m = name_array_member("/d/x.txt");
	test_cond("array member of a .txt path", m && !strcmp(m, "d/x.npy"));
	free(m);
	m = name_array_member("/d/x.csv");
	test_cond("array member of a .csv path", m && !strcmp(m, "d/x.npy"));
	free(m);
	m = name_with_view("/d/x.npy", VIEW_CSV);
	test_cond("view path of a .npy path", m && !strcmp(m, "/d/x.csv"));
	free(m);
	m = name_array_member("/x.npy");
	test_cond("array member of a .npy path", m && !strcmp(m, "x.npy"));
	free(m);

	test_cond("backup: hidden name", name_is_backup(".x.swp"));
	test_cond("backup: '~' at the end", name_is_backup("notes~"));
	test_cond("backup: plain name", !name_is_backup("notes.md"));
	test_cond("backup: '~' inside", !name_is_backup("a~b"));
}

/* ---- A small archive -------------------------------------------------- */

/* A .npy of int64 values v[0..n) (numpy's layout: header padded to 64). */
static size_t npy_i8(char *out, const int64_t *v, size_t n)
{
	char dict[128];
	size_t dl, hl;

	dl = (size_t)snprintf(dict, sizeof(dict),
			      "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu,), }",
			      n);
	hl = (10 + dl + 1 + 63) / 64 * 64 - 10;
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (char)(hl & 0xff);
	out[9] = (char)(hl >> 8);
	memset(out + 10, ' ', hl);
	memcpy(out + 10, dict, dl);
	out[10 + hl - 1] = '\n';
	memcpy(out + 10 + hl, v, n * 8);
	return 10 + hl + n * 8;
}

static int content_fd(const void *data, size_t len)
{
	char p[300];
	int fd;

	snprintf(p, sizeof(p), "%s/content-XXXXXX", tmpdir);
	fd = mkstemp(p);
	if (fd < 0)
		return -1;
	unlink(p);
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* archive.npz with a.npy = [1, 2, 3], sub/b.npy = [7], notes.bin. */
static int make_archive(void)
{
	static const unsigned char eocd[22] = { 'P', 'K', 5, 6 };
	const int64_t a[] = { 1, 2, 3 }, b[] = { 7 };
	char na[256], nb[256];
	struct archive_change ch[3] = {
		{ .name = "a.npy", .from = -1, .method = ARCHIVE_STORE },
		{ .name = "sub/b.npy", .from = -1, .method = ARCHIVE_DEFLATE,
		  .level = -1 },
		{ .name = "notes.bin", .from = -1, .method = ARCHIVE_STORE },
	};
	struct archive *ar, *nar;
	FILE *f;
	int ret;

	snprintf(zpath, sizeof(zpath), "%s/archive.npz", tmpdir);
	f = fopen(zpath, "wb");
	if (!f || fwrite(eocd, 1, sizeof(eocd), f) != sizeof(eocd) || fclose(f))
		return -EIO;
	ch[0].size = a_size = npy_i8(na, a, 3);
	ch[1].size = npy_i8(nb, b, 1);
	ch[2].size = 5;
	ch[0].fd = content_fd(na, ch[0].size);
	ch[1].fd = content_fd(nb, ch[1].size);
	ch[2].fd = content_fd("hello", 5);
	ret = archive_open(zpath, &ar, NULL);
	if (!ret)
		ret = archive_commit(ar, ch, 3, &nar, NULL);
	if (!ret)
		archive_close(nar);
	archive_close(ar);
	for (int i = 0; i < 3; i++)
		close(ch[i].fd);
	return ret;
}

/* ---- namespace.c ------------------------------------------------------ */

static void test_namespace(struct tree *t)
{
	struct node *d, *n, *same1, *same2, *moved = NULL;
	struct buf path = BUF_INIT;
	char name[32];
	bool all = true;

	pthread_rwlock_wrlock(&t->lock);
	test_cond("dir_get creates the chain",
		  ns_dir_get(t, "/h/i/j", 6, &d) == 0 && d->kind == N_DIR);
	test_cond("find: the same node", ns_find(t, "/h/i/j") == d);
	test_cond("find: '//' and a trailing '/' are ignored",
		  ns_find(t, "//h//i/j/") == d);
	test_cond("node_path walks the parents",
		  node_path(d, &path) == 0 && !strcmp(path.data, "/h/i/j"));
	for (int i = 0; i < 3000; i++) {	/* past the first 1024 buckets */
		snprintf(name, sizeof(name), "k%d", i);
		if (node_add(t, d, name, strlen(name), N_DIR, &n))
			all = false;
	}
	test_cond("3000 nodes added", all);
	test_cond("the hash map grew", t->nbuckets >= 4096);
	for (int i = 0; i < 3000; i += 7) {
		snprintf(name, sizeof(name), "/h/i/j/k%d", i);
		n = ns_find(t, name);
		if (!n || n->parent != d || strcmp(n->name, name + 7))
			all = false;
	}
	test_cond("every node found after the growth (memo walks)", all);
	test_cond("no such kid", !ns_find(t, "/h/i/j/k3000"));
	test_cond("a kid of a missing dir", !ns_find(t, "/h/x/j/k1"));

	/* one name under two parents: the hash key holds the parent */
	test_cond("same name, two parents",
		  !node_add(t, ns_find(t, "/h"), "same", 4, N_DIR, &same1) &&
		  !node_add(t, d, "same", 4, N_DIR, &same2) && same1 != same2 &&
		  ns_find(t, "/h/same") == same1 &&
		  ns_find(t, "/h/i/j/same") == same2);

	/* the memo remembers /h/i/j; a move must not be hidden by it */
	n = ns_find(t, "/h/i/j/k10");
	test_cond("move k10 to /h/moved",
		  n && !node_move(t, n, same1, "/h/same/moved") &&
		  (moved = ns_find(t, "/h/same/moved")) == n);
	test_cond("the old path is gone", !ns_find(t, "/h/i/j/k10"));
	buf_reset(&path);
	test_cond("the moved node's path",
		  moved && !node_path(moved, &path) &&
		  !strcmp(path.data, "/h/same/moved"));
	test_cond("parent_of: a file in the way",
		  ns_parent_of(t, "/a.npy/x", &n) == -ENOTDIR);
	test_cond("parent_of: missing", ns_parent_of(t, "/nope/x", &n) == -ENOENT);
	test_cond("parent_of: the root", !ns_parent_of(t, "/x", &n) && n == t->root);
	test_cond("dir_get: a file in the way",
		  ns_dir_get(t, "/a.npy/x", 8, &n) == -ENOTDIR);

	node_detach(t, ns_find(t, "/h/i/j/k11"));
	test_cond("a detached node is gone", !ns_find(t, "/h/i/j/k11"));
	test_cond("its siblings stay", ns_find(t, "/h/i/j/k12") != NULL);
	test_cond("kids count", d->nkids == 3000 - 1 - 1 + 1);
	pthread_rwlock_unlock(&t->lock);
	buf_release(&path);
}

/* ---- The public API --------------------------------------------------- */

static int fill_count(void *ctx, const char *name, const struct tree_stat *st,
		      uint64_t next)
{
	struct buf *names = ctx;

	(void)st;
	(void)next;
	buf_adds(names, name);
	buf_addch(names, '|');
	return 0;
}

static ssize_t write_file(struct tree *t, const char *path, const char *s,
			  int *flush_ret)
{
	struct tree_file *f;
	ssize_t w;

	if (tree_create(t, path, O_WRONLY | O_CREAT, &f))
		return -1;
	w = tree_write(t, f, s, strlen(s), 0);
	*flush_ret = tree_flush(t, f);
	tree_release(t, f);
	return w;
}

static ssize_t read_all(struct tree *t, const char *path, char *buf,
			size_t len)
{
	struct tree_file *f;
	ssize_t r;

	if (tree_open(t, path, O_RDONLY, &f))
		return -1;
	r = tree_read(t, f, buf, len, 0);
	tree_release(t, f);
	return r;
}

static bool xattr_is(struct tree *t, const char *path, const char *name,
		     const char *want)
{
	struct buf b = BUF_INIT;
	bool ok = !tree_getxattr(t, path, name, &b) &&
		  (!want || !strcmp(b.data, want));

	buf_release(&b);
	return ok;
}

static void test_api(struct tree *t)
{
	struct buf names = BUF_INIT;
	struct tree_stat st;
	char text[512];
	ssize_t r;
	int fr = 1;

	test_cond("stat a.npy", !tree_stat(t, "/a.npy", &st) &&
		  st.kind == TREE_FILE && st.size == a_size &&
		  a_size % 64 == 24);
	test_cond("stat sub", !tree_stat(t, "/sub", &st) && st.kind == TREE_DIR);
	test_cond("stat a view", !tree_stat(t, "/sub/b.txt", &st) && st.size > 0);
	test_cond("no view for a plain member", tree_stat(t, "/notes.txt", &st) == -ENOENT);
	test_cond("readdir /", !tree_readdir(t, "/", true, 0, fill_count, &names) &&
		  strstr(names.data, "|a.txt|") && strstr(names.data, "a.npy|") &&
		  strstr(names.data, "|sub|") && strstr(names.data, "|notes.bin|"));
	test_cond("readdir of a file", tree_readdir(t, "/a.npy", false, 0, fill_count,
						    &names) == -ENOTDIR);
	r = read_all(t, "/a.txt", text, sizeof(text) - 1);
	text[r > 0 ? r : 0] = '\0';
	test_cond("the view's text ends with the values",
		  r > 6 && !strcmp(text + r - 6, "1\n2\n3\n"));
	test_cond("the view's size is what a read gives",
		  !tree_stat(t, "/a.txt", &st) && st.size == (uint64_t)r);
	test_cond("xattr dtype", xattr_is(t, "/a.txt", "user.npzfs.dtype", "<i8"));
	test_cond("xattr compression", xattr_is(t, "/sub/b.npy", "user.npzfs.compression",
						"deflated"));

	/* a new array from text */
	test_cond("write c.txt", write_file(t, "/c.txt", "1 2\n3 4\n", &fr) == 8 &&
		  fr == 0);
	test_cond("c.npy appeared", !tree_stat(t, "/c.npy", &st));
	test_cond("c's shape", xattr_is(t, "/c.npy", "user.npzfs.shape", "(2, 2)"));
	/* rejected content: the array stays */
	test_cond("junk into a.npy is rejected",
		  write_file(t, "/a.npy", "junk", &fr) == 4 && fr == -EINVAL);
	test_cond("a.npy unchanged", !tree_stat(t, "/a.npy", &st) && st.size == a_size);
	test_cond("the reason is kept", xattr_is(t, "/a.npy", "user.npzfs.error", NULL));

	/* scratch files stay out of the archive until unmount */
	test_cond("write notes.md", write_file(t, "/notes.md", "hi", &fr) == 2 && fr == 0);
	test_cond("a scratch file is not a member",
		  !xattr_is(t, "/notes.md", "user.npzfs.compression", NULL));
	test_cond("write backup~", write_file(t, "/backup~", "x", &fr) == 1);
	test_cond("write .hidden", write_file(t, "/.hidden", "x", &fr) == 1);
	test_cond("rename a scratch file", !tree_rename(t, "/notes.md", "/n2.md", 0) &&
		  tree_stat(t, "/notes.md", &st) == -ENOENT);
	test_cond("a view renamed out is a scratch copy",
		  !tree_rename(t, "/sub/b.txt", "/b_text.md", 0) &&
		  !tree_stat(t, "/sub/b.txt", &st) && !tree_stat(t, "/b_text.md", &st));
	test_cond("rename: no RENAME_EXCHANGE", tree_rename(t, "/n2.md", "/x", 2) == -EINVAL);
	test_cond("rename: NOREPLACE", tree_rename(t, "/n2.md", "/c.npy", 1) == -EEXIST);

	/* unlink of an array takes its view; the view's unlink still works */
	test_cond("unlink a.npy", !tree_unlink(t, "/a.npy"));
	test_cond("a.txt went with it", tree_stat(t, "/a.txt", &st) == -ENOENT);
	test_cond("unlink a.txt after it (rm -r)", !tree_unlink(t, "/a.txt"));
	test_cond("but only once", tree_unlink(t, "/a.txt") == -ENOENT);

	test_cond("mkdir", !tree_mkdir(t, "/m") && !tree_stat(t, "/m", &st) &&
		  st.kind == TREE_DIR);
	test_cond("mkdir twice", tree_mkdir(t, "/m") == -EEXIST);
	test_cond("rmdir non-empty", tree_rmdir(t, "/sub") == -ENOTEMPTY);
	test_cond("rmdir the root", tree_rmdir(t, "/") == -EBUSY);
	test_cond("rmdir", !tree_rmdir(t, "/m") && tree_stat(t, "/m", &st) == -ENOENT);
	buf_release(&names);
}

/* ---- An edit frozen by a running commit ------------------------------- */

struct writer_arg {
	struct tree *t;
	struct tree_file *f;
	ssize_t ret;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;

	a->ret = tree_write(a->t, a->f, "zz", 2, 0);
	return NULL;
}

static bool reads(struct tree *t, struct tree_file *f, const char *want)
{
	char buf[8];

	return tree_read(t, f, buf, sizeof(buf), 0) == (ssize_t)strlen(want) &&
	       !memcmp(buf, want, strlen(want));
}

/* What commit_node does around a commit, by hand: in a change, freeze the
 * edit; readers read it, a writer waits until the change ends. */
static void test_frozen(struct tree *t)
{
	struct writer_arg a = { t, NULL, -1 };
	struct timespec ts;
	struct node *n;
	pthread_t th;

	if (tree_create(t, "/.frz", O_RDWR | O_CREAT, &a.f) ||
	    tree_write(t, a.f, "xy", 2, 0) != 2) {
		test_cond("a file to freeze", false);
		return;
	}
	n = a.f->node;
	pthread_mutex_lock(&t->change_lock);	/* a commit is running */
	pthread_mutex_lock(&n->lock);
	test_cond("freeze: the edit is in its spill file",
		  !edit_freeze(n) && n->frozen && n->edit->fd >= 0);
	pthread_mutex_unlock(&n->lock);
	test_cond("a frozen edit reads", reads(t, a.f, "xy"));
	test_cond("a writer starts", !pthread_create(&th, NULL, writer, &a));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000 * 1000;
	if (ts.tv_nsec >= 1000 * 1000 * 1000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000 * 1000 * 1000;
	}
	test_cond("the write waits for the change",
		  pthread_timedjoin_np(th, NULL, &ts) == ETIMEDOUT &&
		  reads(t, a.f, "xy"));
	pthread_mutex_lock(&n->lock);
	edit_thaw(n);
	pthread_mutex_unlock(&n->lock);
	pthread_mutex_unlock(&t->change_lock);
	pthread_join(th, NULL);
	test_cond("then it lands", a.ret == 2 && reads(t, a.f, "zz"));
	tree_release(t, a.f);
}

/* What tree_unmount() stored: the archive's member names, '|'-joined. */
static void test_stored(void)
{
	struct buf names = BUF_INIT;
	struct archive *ar;

	if (archive_open(zpath, &ar, NULL)) {
		test_cond("archive reopens", false);
		return;
	}
	buf_addch(&names, '|');
	for (size_t i = 0; i < archive_count(ar); i++) {
		buf_adds(&names, archive_member(ar, i)->name);
		buf_addch(&names, '|');
	}
	test_cond("stored: exact member list",
		  !strcmp(names.data, "|sub/b.npy|notes.bin|c.npy|n2.md|b_text.md|") ||
		  !strcmp(names.data, "|sub/b.npy|notes.bin|c.npy|b_text.md|n2.md|"));
	if (test_failed_)
		printf("members: %s\n", names.data);
	archive_close(ar);
	buf_release(&names);
}

int main(void)
{
	struct tree_opts opts = { .ro = false, .compress = TREE_KEEP, .level = -1,
				  .views = VIEWS_DEFAULT };
	struct archive *ar;
	struct tree *t;
	char cmd[300];

	test_names();
	if (!mkdtemp(tmpdir) || cache_setup(tmpdir, 64 << 20, NULL) ||
	    make_archive() || archive_open(zpath, &ar, NULL)) {
		test_cond("fixture archive", false);
		return test_report();
	}
	if (tree_new(ar, &opts, &t, NULL)) {
		archive_close(ar);
		test_cond("tree_new", false);
		return test_report();
	}
	test_namespace(t);
	test_api(t);
	test_frozen(t);
	test_cond("unmount", tree_unmount(t) == 0);
	tree_free(t);
	test_stored();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		printf("could not remove %s\n", tmpdir);
	return test_report();
}
