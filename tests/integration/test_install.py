"""test_install.py - `make install` (PREFIX, DESTDIR, the man page) and
mounting like any filesystem (SPEC.md "Command line"): `mount -t fuse.npzfs`,
fstab lines through `mount --fstab`, the mount's source (the archive's
absolute path) and type (fuse.npzfs), `umount ARCHIVE` and `umount MNT`.

mount(8) clears PATH and mount.fuse3 runs `/bin/sh -c 'npzfs ARCHIVE MNT -o
OPTIONS'`, so sh finds npzfs in its built-in default path only.  The tests of
`-t fuse.npzfs` put a symlink to the installed npzfs there (where no npzfs is
yet) and always remove it; the `fuse` type with `/path/to/npzfs#ARCHIVE`
needs no PATH.  Daemons started by mount(8) are found by their unique mount
point in /proc/PID/cmdline, and sanitizer reports go to files
(ASAN_OPTIONS=log_path) since a daemon's stderr is /dev/null."""
import contextlib
import errno
import fcntl
import filecmp
import json
import os
import re
import shutil
import stat
import subprocess

import numpy as np
import pytest

from conftest import BIN, REPO, EXIT_TIMEOUT, MOUNT_TIMEOUT, is_mounted, poll, run_npzfs

ARRAYS = dict(x=np.arange(12, dtype=np.float64).reshape(3, 4) / 7,
              n=np.arange(5, dtype=np.int32))
# everything an fstab line may hold that means nothing to npzfs
FSTAB_OPTS = ("defaults,noauto,user,nofail,_netdev,x-systemd.automount,"
              "x-systemd.idle-timeout=60,X-mount.mkdir,comment=npz,relatime,"
              "nodiratime,lazytime,nosuid,nodev,noexec")


def make_install(**var):
    """make install with var (PREFIX, DESTDIR) of the binary under test,
    never rebuilding it (-o)."""
    bindir = os.path.dirname(os.path.abspath(BIN))
    assert os.path.basename(BIN) == "npzfs", BIN
    args = ["make", "-s", "-C", str(REPO), "install", "B=" + bindir,
            "-o", os.path.join(bindir, "npzfs")]
    args += ["%s=%s" % kv for kv in var.items()]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def files_under(root):
    return sorted(os.path.relpath(os.path.join(top, f), root)
                  for top, _, names in os.walk(root) for f in names)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = tmp_path_factory.mktemp("prefix") / "opt"
    make_install(PREFIX=p)
    return p


def test_install_prefix(prefix):
    npzfs, man = prefix / "bin/npzfs", prefix / "share/man/man1/npzfs.1"
    assert files_under(prefix) == ["bin/npzfs", "share/man/man1/npzfs.1"]
    assert filecmp.cmp(npzfs, BIN, shallow=False)
    assert filecmp.cmp(man, REPO / "npzfs.1", shallow=False)
    assert stat.S_IMODE(npzfs.stat().st_mode) == 0o755
    assert stat.S_IMODE(man.stat().st_mode) == 0o644
    res = subprocess.run([npzfs, "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("npzfs "), res


def test_install_destdir(tmp_path):
    make_install(DESTDIR=tmp_path / "stage", PREFIX="/usr")
    assert files_under(tmp_path / "stage") == ["usr/bin/npzfs",
                                               "usr/share/man/man1/npzfs.1"]
    assert filecmp.cmp(tmp_path / "stage/usr/bin/npzfs", BIN, shallow=False)
    subprocess.run(["make", "-s", "-C", str(REPO), "uninstall",
                    "DESTDIR=%s" % (tmp_path / "stage"), "PREFIX=/usr"],
                   check=True, capture_output=True)
    assert files_under(tmp_path / "stage") == []


def test_man_page(prefix):
    """The installed page renders without a warning and names every option
    of npzfs --help."""
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    res = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                          prefix / "share/man/man1/npzfs.1"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    page = re.sub(r".\x08", "", res.stdout)
    for sect in ("NAME", "SYNOPSIS", "OPTIONS", "VIEWS", "CACHE",
                 "EXIT STATUS", "MOUNTING WITH mount(8) AND FSTAB"):
        assert "\n" + sect + "\n" in page, sect
    usage = run_npzfs("--help").stdout.decode()
    ours = usage[:usage.index("\n\n", usage.index("npzfs options:"))]
    opts = set(re.findall(r"-o ([a-z_]+)", ours))
    opts |= set(re.findall(r"^\s+(-[a-zA-Z]|--[a-z-]+)", ours, re.M))
    assert {"ro", "cache_size", "fsname", "-h", "--check"} <= opts, opts
    for o in sorted(opts | {"views", "-f", "-d", "-s", "allow_other"}):
        assert re.search(r"(^|\W)%s(\W|$)" % re.escape(o), page), o


def test_readme_systemd_units(tmp_path):
    """The README's mount and automount units pass systemd-analyze verify."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze missing (package systemd)")
    readme = (REPO / "README.md").read_text()
    units = re.findall(r"\n\n((?:    \[Unit\]\n)(?:    .*\n|\n(?=    ))+)", readme)
    kinds = {}
    for u in units:
        text = re.sub(r"(?m)^    ", "", u)
        kind = "automount" if "[Automount]" in text else "mount"
        kinds[kind] = text
    assert set(kinds) == {"mount", "automount"}, units
    where = re.search(r"(?m)^Where=(.*)$", kinds["mount"]).group(1)
    name = subprocess.run(["systemd-escape", "-p", where], capture_output=True,
                          text=True, check=True).stdout.strip()
    paths = []
    for kind, text in kinds.items():
        p = tmp_path / ("%s.%s" % (name, kind))
        p.write_text(text)
        paths.append(str(p))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


# ------------------------------------------------------------- mount(8)

def sh_default_path():
    res = subprocess.run(["env", "-i", "/bin/sh", "-c", 'echo "$PATH"'],
                         capture_output=True, text=True, check=True)
    return [d for d in res.stdout.strip().split(":") if d]


def sh_finds():
    res = subprocess.run(["env", "-i", "/bin/sh", "-c", "command -v npzfs"],
                         capture_output=True, text=True)
    return res.stdout.strip()


@pytest.fixture(scope="module")
def on_mount_path(prefix):
    """A symlink to the installed npzfs where mount(8)'s /bin/sh finds it
    first (/usr/local/bin unless an npzfs comes earlier), or a skip when a
    foreign npzfs is first; removed at the end.  Test runs take turns: the
    directory is flock()ed meanwhile."""
    dirs = sh_default_path()
    lock = os.open(dirs[0] if os.path.isdir(dirs[0]) else "/", os.O_RDONLY)
    try:
        if not poll(lambda: _try_lock(lock), 300, step=0.2):
            pytest.fail("another test run holds the lock on %s" % dirs[0])
        link = _pick_link_dir(dirs)
        if link is None:
            pytest.skip("a foreign npzfs comes first in /bin/sh's default "
                        "path: %s" % sh_finds())
        os.symlink(prefix / "bin/npzfs", link)
        try:
            assert sh_finds() == link
            yield link
        finally:
            if os.path.islink(link) and os.readlink(link) == str(prefix / "bin/npzfs"):
                os.unlink(link)
    finally:
        os.close(lock)


def _try_lock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _pick_link_dir(dirs):
    """Where a new npzfs link would be found first, or None."""
    before = []
    for d in dirs:
        p = os.path.join(d, "npzfs")
        # a link an interrupted run of this test left, dangling
        if os.path.islink(p) and "/pytest-of-" in os.readlink(p) \
                and not os.path.exists(p):
            os.unlink(p)
        if os.path.lexists(p):
            break
        if os.path.isdir(d) and not os.path.islink(d):
            before.append(d)
    if not before:
        return None
    d = "/usr/local/bin" if "/usr/local/bin" in before else before[0]
    return os.path.join(d, "npzfs")


def daemons_of(mnt):
    """PIDs of npzfs processes with the argument mnt."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.fsencode(str(mnt)) in argv and any(a.endswith(b"npzfs") for a in argv[:1]):
            pids.append(int(pid))
    return pids


def findmnt(mnt):
    res = subprocess.run(["findmnt", "-J", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS",
                          "--mountpoint", str(mnt)], capture_output=True, text=True)
    if res.returncode:
        return []
    return json.loads(res.stdout)["filesystems"]


class System:
    """Mounts made with mount(8) in one test: every one is unmounted and its
    daemon must exit without a sanitizer report."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.san = tmp_path / "san"
        self.env = dict(os.environ)
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            old = self.env.get(var)
            self.env[var] = (old + ":" if old else "") + "log_path=%s" % self.san
        self.mnts = []

    def mount(self, *args, mnt, cwd=None, key=None):
        """Run mount(8) with args; CompletedProcess.  mnt is remembered, and
        its daemon is the npzfs whose command line holds key (default mnt)."""
        mnt.mkdir(exist_ok=True)
        self.mnts.append((mnt, key or mnt))
        res = subprocess.run(["mount", *map(str, args)], env=self.env, cwd=cwd,
                             capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            assert poll(lambda: is_mounted(mnt), MOUNT_TIMEOUT)
        return res

    def wait_daemons_gone(self, mnt):
        pids = daemons_of(mnt)
        gone = poll(lambda: not any(os.path.exists("/proc/%d" % p) and
                                    not _zombie(p) for p in pids), EXIT_TIMEOUT)
        return gone, pids

    def close(self):
        problems = []
        for mnt, key in self.mnts:
            if is_mounted(mnt):
                if subprocess.run(["umount", str(mnt)]).returncode:
                    subprocess.run(["umount", "-l", str(mnt)])
            gone, pids = self.wait_daemons_gone(key)
            if not gone:
                problems.append("npzfs %s still running after the unmount" % pids)
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, 9)
        for f in self.tmp.glob("san*"):
            text = f.read_text(errors="replace")
            if text.strip():
                problems.append("sanitizer report:\n" + text)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def system(tmp_path):
    s = System(tmp_path)
    yield s
    s.close()


def archive(path, **kw):
    np.savez(path, **(kw or ARRAYS))
    return path


def assert_reads(mnt, arrays=ARRAYS):
    for name, a in arrays.items():
        got = np.load(mnt / (name + ".npy"))
        assert got.dtype == a.dtype and np.array_equal(got, a)
        txt = np.loadtxt(mnt / (name + ".txt"), dtype=a.dtype, ndmin=a.ndim)
        assert np.array_equal(txt, a)


def assert_named(mnt, source, rw):
    fs = findmnt(mnt)
    assert len(fs) == 1, fs
    assert fs[0]["source"] == str(source)
    assert fs[0]["fstype"] == "fuse.npzfs"
    assert fs[0]["options"].split(",")[0] == ("rw" if rw else "ro")


def test_mount_t_fuse_npzfs(system, on_mount_path, tmp_path):
    """mount -t fuse.npzfs with an fstab line's options; umount ARCHIVE."""
    a = archive(tmp_path / "run.npz")
    mnt = tmp_path / "mnt"
    # a relative ARCHIVE shows as its absolute path
    res = system.mount("-t", "fuse.npzfs", "-o", "ro," + FSTAB_OPTS, "run.npz",
                       mnt, mnt=mnt, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert_named(mnt, a, rw=False)
    assert_reads(mnt)
    with pytest.raises(OSError) as exc:
        open(mnt / "n.txt", "w")
    assert exc.value.errno == errno.EROFS
    res = subprocess.run(["umount", a], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not is_mounted(mnt)
    assert system.wait_daemons_gone(mnt)[0]


def test_fstab_line(system, on_mount_path, tmp_path):
    """mount --fstab FILE MNT: a writable mount with npzfs options among
    fstab's; an edit reaches the archive; umount MNT; mount -a mounts once."""
    a = archive(tmp_path / "data set, v2.npz")      # space and comma
    mnt = tmp_path / "mnt"
    esc = str(a).replace(" ", "\\040")
    tab = tmp_path / "fstab"
    tab.write_text("# npzfs\n%s %s fuse.npzfs %s,compress=deflate,cache_size=64M 0 0\n"
                   % (esc, mnt, FSTAB_OPTS))
    res = system.mount("--fstab", tab, mnt, mnt=mnt)
    assert res.returncode == 0, res.stderr
    assert_named(mnt, a, rw=True)
    assert_reads(mnt)
    with open(mnt / "n.txt", "w") as f:
        f.write("7\n8\n9\n")
    with np.load(a) as z:
        assert np.array_equal(z["n"], np.array([7, 8, 9], dtype=np.int32))
        assert np.array_equal(z["x"], ARRAYS["x"])
    res = subprocess.run(["umount", mnt], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert system.wait_daemons_gone(mnt)[0]
    # mount -a: a mounted line is recognised by its source and skipped
    tab.write_text("%s %s fuse.npzfs ro,nofail 0 0\n" % (esc, mnt))
    for _ in range(2):
        res = system.mount("--fstab", tab, "-a", mnt=mnt)
        assert res.returncode == 0, res.stderr
    assert len(findmnt(mnt)) == 1
    assert_named(mnt, a, rw=False)
    assert_reads(mnt, dict(x=ARRAYS["x"]))


def test_fuse_type_with_program(system, prefix, tmp_path):
    """-t fuse with PROGRAM#ARCHIVE: no PATH needed (npzfs installed
    elsewhere); still named after the archive, type fuse.npzfs."""
    a = archive(tmp_path / "run.npz")
    mnt = tmp_path / "mnt"
    res = system.mount("-t", "fuse", "-o", "ro,noauto,user,nofail",
                       "%s#%s" % (prefix / "bin/npzfs", a), mnt, mnt=mnt)
    assert res.returncode == 0, res.stderr
    assert_named(mnt, a, rw=False)
    assert_reads(mnt)


def test_drop_privileges(system, on_mount_path, tmp_path):
    """mount.fuse3's drop_privileges: it mounts, npzfs serves /dev/fd/N."""
    a = archive(tmp_path / "run.npz")
    mnt = tmp_path / "mnt"
    res = system.mount("-t", "fuse.npzfs", "-o", "drop_privileges,ro,fsname=%s" % a,
                       a, mnt, mnt=mnt, key=a)
    assert res.returncode == 0, res.stderr
    assert_named(mnt, a, rw=False)
    assert_reads(mnt)
    pids = daemons_of(a)
    assert len(pids) == 1
    with open("/proc/%d/cmdline" % pids[0], "rb") as f:
        assert b"\0/dev/fd/" in f.read()


def test_mount_refuses(system, prefix, tmp_path):
    """A missing archive and an unknown option fail through mount(8) with
    npzfs's exit status and its line on stderr."""
    mnt = tmp_path / "mnt"
    prog = prefix / "bin/npzfs"
    res = system.mount("-t", "fuse", "%s#%s" % (prog, tmp_path / "none.npz"),
                       mnt, mnt=mnt)
    assert res.returncode == 1
    assert "none.npz: No such file or directory" in res.stderr
    a = archive(tmp_path / "run.npz")
    res = system.mount("-t", "fuse", "-o", "ro,bogus=1", "%s#%s" % (prog, a),
                       mnt, mnt=mnt)
    assert res.returncode == 1
    assert "unknown option(s): `-o bogus=1'" in res.stderr
    assert not is_mounted(mnt)


# ------------------------------------------------------ npzfs directly

def mountinfo(mnt):
    """(source, type) of mnt in /proc/self/mountinfo, octal escapes decoded."""
    unesc = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if unesc(left.split()[4]) == str(mnt):
                typ, src = right.split()[:2]
                return unesc(src), typ
    return None


@pytest.mark.parametrize("name", ["run.npz", "a,b c\\d.npz"])
def test_source_is_archive(mount, tmp_path, name):
    a = archive(tmp_path / name)
    m = mount(a, "-o", "noauto,defaults,x-systemd.automount,rw,ro")
    assert mountinfo(m.path) == (str(a), "fuse.npzfs")
    with pytest.raises(OSError) as exc:       # ro came last
        open(m / "n.txt", "w")
    assert exc.value.errno == errno.EROFS


def test_fsname_given(mount, tmp_path):
    a = archive(tmp_path / "run.npz")
    m = mount(a, "-o", "fsname=results,ro,rw")
    assert mountinfo(m.path) == ("results", "fuse.npzfs")
    with open(m / "n.txt", "w") as f:       # rw came last
        f.write("1\n")
    with np.load(a) as z:
        assert z["n"].tolist() == [1]


def test_unknown_option_touches_nothing(tmp_path):
    (tmp_path / "mnt").mkdir()
    a = tmp_path / "new.npz"
    res = run_npzfs("-o", "create,colour=blue", a, tmp_path / "mnt")
    assert res.returncode == 1
    err = res.stderr.decode()
    assert "unknown option(s): `-o colour=blue'" in err, err
    assert "npzfs: bad options (see npzfs --help)" in err, err
    assert not a.exists()
    assert not is_mounted(tmp_path / "mnt")
