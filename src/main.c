/* main.c - command line, archive checks before mounting, fuse_main. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "archive.h"
#include "cache.h"
#include "check.h"
#include "io.h"
#include "npzfs.h"
#include "views.h"

#define OPT(t, p, v) { t, offsetof(struct npzfs_opts, p), v }

enum { KEY_RO, KEY_RW, KEY_FSNAME, KEY_SUBTYPE, KEY_VIEWS, KEY_VIEW_NAME };

/* Options of mount(8) and fstab that mean nothing to npzfs, accepted so that
 * `mount -t fuse.npzfs` and fstab lines work (libmount and mount.fuse3 drop
 * most of them, not all, before they run `npzfs ARCHIVE MNT -o OPTIONS`).
 * npzfs shows the zip entries' times and never updates atime, so the atime
 * family is moot; noatime and libfuse's own (dev, suid, exec, sync, ...)
 * pass on to the kernel; x-* and X-* are discarded in opt_proc. */
#define DISCARD(o) FUSE_OPT_KEY(o, FUSE_OPT_KEY_DISCARD)
#define MOUNT8_OPTS \
	DISCARD("defaults"), DISCARD("auto"), DISCARD("noauto"), \
	DISCARD("user"), DISCARD("nouser"), DISCARD("users"), \
	DISCARD("nousers"), DISCARD("owner"), DISCARD("noowner"), \
	DISCARD("group"), DISCARD("nogroup"), DISCARD("nofail"), \
	DISCARD("_netdev"), DISCARD("comment="), DISCARD("helper="), \
	DISCARD("uhelper="), DISCARD("relatime"), DISCARD("norelatime"), \
	DISCARD("strictatime"), DISCARD("nostrictatime"), \
	DISCARD("diratime"), DISCARD("nodiratime"), DISCARD("lazytime"), \
	DISCARD("nolazytime"), DISCARD("symfollow"), DISCARD("nosymfollow"), \
	DISCARD("mand"), DISCARD("nomand"), DISCARD("iversion"), \
	DISCARD("noiversion"), DISCARD("silent"), DISCARD("loud")

static const struct fuse_opt npzfs_opt_spec[] = {
	OPT("create", create, 1),
	OPT("compress=%s", compress, 0),
	OPT("level=%d", level, 0),
	OPT("commit=%s", commit, 0),
	OPT("cache_size=%s", cache_size, 0),
	OPT("cache_dir=%s", cache_dir, 0),
	OPT("max_read=%u", max_read, 0),
	OPT("-h", show_help, 1),
	OPT("--help", show_help, 1),
	OPT("-V", show_version, 1),
	OPT("--version", show_version, 1),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	MOUNT8_OPTS,
	FUSE_OPT_KEY("views=", KEY_VIEWS),
	/* "-o views=txt,csv" reaches us as "views=txt" and "csv" */
	FUSE_OPT_KEY("txt", KEY_VIEW_NAME),
	FUSE_OPT_KEY("csv", KEY_VIEW_NAME),
	FUSE_OPT_KEY("png", KEY_VIEW_NAME),
	FUSE_OPT_END
};

static const char usage[] =
"usage: npzfs [options] ARCHIVE MOUNTPOINT\n"
"       fusermount3 -u MOUNTPOINT      (unmount)\n"
"       npzfs --check ARCHIVE          (verify without mounting)\n"
"\n"
"Mount a NumPy .npz archive as a directory: every array NAME appears as\n"
"NAME.npy (its exact bytes) and NAME.txt (an editable text view), and\n"
"with -o views= as NAME.csv (an editable CSV view) and NAME.png (an\n"
"image, or a read-only heatmap of a matrix) too.\n"
"\n"
"npzfs options:\n"
"    -o ro                  read-only mount (writes fail with EROFS)\n"
"    -o compress=MODE       keep|store|deflate: how changed members are written\n"
"    -o level=N             deflate level 0-9 (default: zlib's default)\n"
"    -o commit=MODE         auto|rewrite: auto clones the archive where the\n"
"                           filesystem can (reflinks), rewrite always writes\n"
"                           the whole archive (for comparison)\n"
"    -o create              create ARCHIVE as an empty npz if it is missing\n"
"    -o views=LIST          the views shown beside NAME.npy: txt (default),\n"
"                           csv, png, comma separated;\n"
"                           views= (empty) shows NAME.npy alone\n"
"    -o cache_size=SIZE     disk budget for cached data: inflated members and\n"
"                           rendered text views (K/M/G suffixes; default 1G)\n"
"    -o cache_dir=DIR       where cached data and write spill files go\n"
"                           (default $TMPDIR, else /var/tmp)\n"
"    -o max_read=N          largest read the kernel sends, in bytes\n"
"                           (default 524288: spliced without a copy)\n"
"    -o fsname=NAME         the mount's source in findmnt and df\n"
"                           (default: ARCHIVE's absolute path)\n"
"    -o subtype=TYPE        type fuse.TYPE (default: fuse.npzfs)\n"
"    mount(8) and fstab options are accepted: rw, defaults, noauto, user,\n"
"    nofail, _netdev, x-*, the atime family, ... (see npzfs(1))\n"
"    -h, --help             this help\n"
"    -V, --version          print the version\n"
"    --check ARCHIVE        verify every member (CRC, npy header, local\n"
"                           header, place in the file) without mounting:\n"
"                           one line per problem, then a summary; exit\n"
"                           status 0 if sound, 1 otherwise\n"
"\n";

/* Positional arguments seen so far, and whether the user named the mount
 * (only main's thread parses options). */
static int nonopts;
static bool fsname_given, subtype_given;

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct npzfs_opts *opts = data;

	(void)outargs;
	switch (key) {
	case KEY_RO:
	case KEY_RW:		/* the last one wins, as in mount(8) */
		opts->ro = key == KEY_RO;
		return 1;	/* also pass it on to the kernel mount */
	case KEY_FSNAME:
		fsname_given = true;
		return 1;
	case KEY_SUBTYPE:
		subtype_given = true;
		return 1;
	case FUSE_OPT_KEY_OPT:	/* fstab comments: x-systemd.automount */
		if (!strncmp(arg, "x-", 2) || !strncmp(arg, "X-", 2))
			return 0;
		return 1;
	}
	if (key == KEY_VIEWS || key == KEY_VIEW_NAME) {
		struct npz_err err = { "" };
		unsigned mask;

		if (key == KEY_VIEW_NAME && !opts->views_set) {
			fprintf(stderr, "npzfs: -o %s: unknown option (did you mean -o views=txt,%s?)\n",
				arg, arg);
			return -1;
		}
		if (views_parse(key == KEY_VIEWS ? arg + 6 : arg, &mask, &err)) {
			fprintf(stderr, "npzfs: %s\n", err.msg);
			return -1;
		}
		opts->views = key == KEY_VIEWS ? mask : opts->views | mask;
		opts->views_set = 1;
		return 0;
	}
	if (key == FUSE_OPT_KEY_NONOPT && nonopts++ == 0) {
		opts->archive = strdup(arg);
		return 0;	/* the archive is ours; the mountpoint is FUSE's */
	}
	return 1;
}

static int fail(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "npzfs: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return 1;
}

/* Check ARCHIVE (creating it under -o create) and make its path absolute,
 * since the daemon changes directory to "/".  Returns 0 or exit status 1. */
static int prepare_archive(struct npzfs_opts *o)
{
	char abs[PATH_MAX];
	struct stat st;
	int ret;

	if (stat(o->archive, &st) && errno == ENOENT && o->create) {
		ret = archive_create_empty(o->archive);
		if (ret)
			return fail("%s: cannot create: %s", o->archive,
				    strerror(-ret));
	}
	if (stat(o->archive, &st))
		return fail("%s: %s", o->archive, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return fail("%s: %s", o->archive, strerror(EISDIR));
	if (!realpath(o->archive, abs))
		return fail("%s: %s", o->archive, strerror(errno));
	free(o->archive);
	o->archive = strdup(abs);
	return o->archive ? 0 : fail("%s%s", "out of memory", "");
}

static int check_options(const struct npzfs_opts *o)
{
	struct npz_err err = { "" };
	uint64_t size = CACHE_DEFAULT_SIZE;
	char dir[PATH_MAX];
	int ret;

	if (o->cache_size && cache_parse_size(o->cache_size, &size))
		return fail("cache_size=%s: expected a size like 512M or 4G%s",
			    o->cache_size, "");
	/* absolute: the daemon changes directory to "/" */
	if (o->cache_dir && !realpath(o->cache_dir, dir))
		return fail("cache_dir=%s: %s", o->cache_dir, strerror(errno));
	ret = cache_setup(o->cache_dir ? dir : NULL, size, &err);
	if (ret)
		return fail("%s%s", err.msg, "");
	if (strcmp(o->compress, "keep") && strcmp(o->compress, "store") &&
	    strcmp(o->compress, "deflate"))
		return fail("compress=%s: expected keep, store or deflate%s",
			    o->compress, "");
	if (strcmp(o->commit, "auto") && strcmp(o->commit, "rewrite"))
		return fail("commit=%s: expected auto or rewrite%s", o->commit,
			    "");
	archive_tune_commit(strcmp(o->commit, "rewrite") != 0);
	if (o->level < -1 || o->level > 9)
		return fail("level: expected 0 to 9%s%s", "", "");
	return 0;
}

/* Refuse options that neither npzfs nor libfuse knows before the archive is
 * touched: libfuse parses its own in fuse_new(), and names the unknown ones.
 * Returns 0 or exit status 1. */
static int check_fuse_options(const struct fuse_args *args)
{
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse *f = NULL;
	int i;

	for (i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]))
			goto out_free;
	f = fuse_new(&copy, &npzfs_ops, sizeof(npzfs_ops), NULL);
out_free:
	fuse_opt_free_args(&copy);
	if (!f)
		return fail("%s%s", "bad options (see npzfs --help)", "");
	fuse_destroy(f);
	return 0;
}

/* Name the mount after its archive unless the user did (-o fsname=): its
 * source is the archive's absolute path, as findmnt, df and `umount ARCHIVE`
 * expect.  libfuse splits -o at unescaped commas.  Returns 0 or -ENOMEM. */
static int name_mount(struct fuse_args *args, const char *archive)
{
	char *raw, *opt = NULL;
	int ret = -ENOMEM;

	if (fsname_given)
		return 0;
	if (asprintf(&raw, "fsname=%s", archive) < 0)
		return -ENOMEM;
	if (!fuse_opt_add_opt_escaped(&opt, raw) &&
	    !fuse_opt_add_arg(args, "-o") && !fuse_opt_add_arg(args, opt))
		ret = 0;
	free(opt);
	free(raw);
	return ret;
}

/* Mount, detach unless -f, serve until unmounted.  Returns the exit status. */
static int serve(struct fuse_args *args, const struct fuse_cmdline_opts *co,
		 struct npzfs *state)
{
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se;
	struct fuse *f;
	int ret = 1;

	f = fuse_new(args, &npzfs_ops, sizeof(npzfs_ops), state);
	if (!f)
		return 1;
	if (fuse_mount(f, co->mountpoint))
		goto out_destroy;
	/* 1 MiB reads instead of the kernel's 128 KiB (root only; the
	 * kernel keeps the smaller of this and max_readahead, fuse_ops.c) */
	(void)io_set_readahead(co->mountpoint, 1024);
	se = fuse_get_session(f);
	if (fuse_daemonize(co->foreground) || fuse_set_signal_handlers(se))
		goto out_unmount;
	if (!co->foreground)
		npz_log_to_syslog();
	if (co->singlethread) {
		ret = fuse_loop(f);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop)
			goto out_handlers;
		fuse_loop_cfg_set_clone_fd(loop, (unsigned int)co->clone_fd);
		fuse_loop_cfg_set_max_threads(loop, co->max_threads);
		/* libfuse 3.14.0 warns about its own UINT_MAX default */
		if (co->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(loop, co->max_idle_threads);
		ret = fuse_loop_mt(f, loop);
		fuse_loop_cfg_destroy(loop);
	}
	ret = ret ? 1 : 0;
out_handlers:
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_unmount(f);
out_destroy:
	fuse_destroy(f);
	return ret;
}

/* npzfs --check ARCHIVE: exit status 0 when sound, else 1. */
static int run_check(int argc, char *argv[])
{
	int ret;

	if (argc != 3) {
		fprintf(stderr, "npzfs: usage: npzfs --check ARCHIVE\n");
		return 1;
	}
	ret = check_archive(argv[2], stdout);
	if (ret < 0) {
		fprintf(stderr, "npzfs: --check %s: %s\n", argv[2],
			strerror(-ret));
		return 1;
	}
	return ret ? 1 : 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts co;
	struct npzfs state;
	struct npz_err err = { "" };
	struct tree_opts topts;
	struct stat st;
	int ret = 1;

	if (argc >= 2 && strcmp(argv[1], "--check") == 0)
		return run_check(argc, argv);
	memset(&state, 0, sizeof(state));
	memset(&co, 0, sizeof(co));
	state.opts.level = -1;
	state.opts.compress = strdup("keep");
	state.opts.commit = strdup("auto");
	state.opts.views = VIEWS_DEFAULT;
	if (fuse_opt_parse(&args, &state.opts, npzfs_opt_spec, opt_proc) == -1)
		goto out_args;
	if (state.opts.show_version) {
		printf("npzfs %s (libfuse %s)\n", NPZFS_VERSION,
		       fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (state.opts.show_help) {
		fputs(usage, stdout);
		fuse_cmdline_help();
		fuse_lib_help(&args);
		ret = 0;
		goto out_args;
	}
	/* type fuse.npzfs whatever the program's name: libfuse would take
	 * argv[0]'s, and none at all beside a given fsname */
	if (!subtype_given && fuse_opt_add_arg(&args, "-osubtype=npzfs"))
		goto out_args;
	if (fuse_parse_cmdline(&args, &co))
		goto out_args;
	/* the session and init() must agree on it (fuse_ops.c) */
	if (!state.opts.max_read)
		state.opts.max_read = NPZFS_MAX_READ;
	{
		char mr[40];

		snprintf(mr, sizeof(mr), "-omax_read=%u", state.opts.max_read);
		if (fuse_opt_add_arg(&args, mr))
			goto out_args;
	}
	if (!state.opts.archive || !co.mountpoint || nonopts != 2) {
		fprintf(stderr, "npzfs: expected ARCHIVE and MOUNTPOINT (see npzfs --help)\n");
		goto out_args;
	}
	if (check_fuse_options(&args) || check_options(&state.opts) ||
	    prepare_archive(&state.opts))
		goto out_args;
	if (name_mount(&args, state.opts.archive)) {
		fail("%s%s", "out of memory", "");
		goto out_args;
	}
	/* mount.fuse3 -o drop_privileges mounts itself and passes /dev/fd/N */
	if (strncmp(co.mountpoint, "/dev/fd/", 8) &&
	    (stat(co.mountpoint, &st) || !S_ISDIR(st.st_mode))) {
		fail("%s: %s", co.mountpoint,
		     strerror(stat(co.mountpoint, &st) ? errno : ENOTDIR));
		goto out_args;
	}
	ret = archive_clean_temps(state.opts.archive);
	if (ret > 0)
		fprintf(stderr, "npzfs: removed %d temporary file(s) of an interrupted commit beside %s\n",
			ret, state.opts.archive);
	/* check_archive() resolved the path: resolve it only once */
	ret = archive_open_resolved(state.opts.archive, &state.ar, &err);
	if (ret) {
		fail("%s: %s", state.opts.archive,
		     err.msg[0] ? err.msg : strerror(-ret));
		ret = 1;
		goto out_args;
	}
	if (!state.opts.ro && archive_spill_near(state.ar))
		npz_log("written files spill beside the archive (commits clone them in)");
	topts.ro = state.opts.ro;
	topts.views = state.opts.views;
	topts.level = state.opts.level;
	topts.compress = !strcmp(state.opts.compress, "store") ? TREE_STORE :
			 !strcmp(state.opts.compress, "deflate") ? TREE_DEFLATE :
			 TREE_KEEP;
	ret = tree_new(state.ar, &topts, &state.tree, &err);
	if (ret) {
		fail("%s: %s", state.opts.archive,
		     err.msg[0] ? err.msg : strerror(-ret));
		archive_close(state.ar);
		ret = 1;
		goto out_args;
	}
	state.ar = NULL;	/* the tree owns it now */
	state.singlethread = co.singlethread;
	state.uid = getuid();
	state.gid = getgid();
	ret = serve(&args, &co, &state);
	tree_free(state.tree);
out_args:
	free(co.mountpoint);
	free(state.opts.archive);
	free(state.opts.compress);
	free(state.opts.commit);
	free(state.opts.cache_size);
	free(state.opts.cache_dir);
	fuse_opt_free_args(&args);
	return ret;
}
